//! The command line: clap derive, one subcommand per mode, environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Kestrel: Kubernetes security monitoring — collect, store, detect, alert.
#[derive(Debug, Parser)]
#[command(name = "kestrel", version, about)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). `KESTREL_LOG` takes a full filter.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// All in one on embedded defaults: server on 127.0.0.1, data in ./kestrel-data, and a demo
    /// attack scenario.
    #[cfg(feature = "server")]
    Up(UpArgs),
    /// The server alone, from a configuration file.
    #[cfg(feature = "server")]
    Server(ServerArgs),
    /// Manage API tokens (works on the data directory directly).
    #[cfg(feature = "server")]
    Token(TokenArgs),
    /// Measure ingest, rule evaluation and query speed on generated audit traffic.
    #[cfg(feature = "server")]
    Bench(BenchArgs),
    /// The node agent: tail this node's logs and ship them to the server.
    Agent(AgentArgs),
    /// Run Falco-format rules offline over audit events, lint rule files, explain a rule.
    #[cfg(feature = "server")]
    Rules(RulesArgs),
    /// Check stored files against their tables' hash-chained manifests: finds modified,
    /// deleted, swapped or inserted files and rewritten, removed or reordered entries. Works
    /// offline on the data directory (or beside a running server: it only reads).
    #[cfg(feature = "server")]
    Verify(VerifyArgs),
    /// Run a read-only SQL query.
    Query(QueryArgs),
    /// List and change alerts.
    Alerts(AlertsArgs),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Data directory (default ./kestrel-data, or the config's data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7070, or the config's listen).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Do not replay the demo scenario.
    #[arg(long)]
    pub no_demo: bool,
    /// Do not start the local agent.
    #[arg(long)]
    pub no_agent: bool,
    /// Server configuration (YAML).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Agent configuration (YAML).
    #[arg(long, short = 'c', env = "KESTREL_AGENT_CONFIG")]
    pub config: PathBuf,
    /// Only check the configuration and print what is wrong with it.
    #[arg(long)]
    pub check: bool,
    /// `node` (a DaemonSet: this node's logs, journal and kernel log) or `cluster` (one agent
    /// per cluster: Kubernetes events); overrides the configuration's `mode`.
    #[arg(long, value_enum)]
    pub mode: Option<AgentModeArg>,
}

/// What an agent collects (`--mode`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AgentModeArg {
    Node,
    Cluster,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Server configuration (YAML).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Overrides the config's data_dir.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Overrides the config's listen address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The server's data directory (before or after the action: `token create ... --data-dir D`).
    #[arg(
        long,
        global = true,
        default_value = "kestrel-data",
        env = "KESTREL_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print it (it is shown only once).
    Create {
        /// admin, ingest (agents and webhooks: write only) or viewer (read only).
        #[arg(long)]
        role: String,
        /// A unique name for the token.
        #[arg(long)]
        name: String,
    },
    /// List tokens (names and roles, never values).
    List,
    /// Revoke a token by name; it stops working at once.
    Revoke { name: String },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// What to measure; without a subcommand, the server's audit ingest, rules and queries.
    #[command(subcommand)]
    pub target: Option<BenchTarget>,
    /// Number of generated audit events.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Events per webhook-sized batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Directory for the benchmark's store (a temporary one by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// The node agent: tail, join, enrich, batch and send generated CRI logs of 283-byte lines.
    Agent(AgentBenchArgs),
    /// Alerting: routing throughput through 100 routes, and event-to-notification latency to a
    /// local webhook (no group wait).
    Alerts,
}

#[derive(Debug, Args)]
pub struct AgentBenchArgs {
    /// Megabytes of generated pod log for the throughput runs.
    #[arg(long, default_value_t = 512)]
    pub megabytes: u64,
    /// Rate of the follow run, in MB/s.
    #[arg(long, default_value_t = 10)]
    pub follow_rate: u64,
    /// Length of the follow run, in seconds.
    #[arg(long, default_value_t = 30)]
    pub follow_seconds: u64,
    /// Working directory (a temporary one by default).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The server's data directory.
    #[arg(long, default_value = "kestrel-data", env = "KESTREL_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Only this table (repeat for several); every table by default.
    #[arg(long = "table")]
    pub tables: Vec<String>,
    /// Print each table's current manifest head as JSON (signed when the server signs them)
    /// instead of verifying; keep it somewhere else and pass it to `--heads` later.
    #[arg(long)]
    pub export_head: bool,
    /// Heads exported earlier (`--export-head` output): each chain must still hold its head.
    #[arg(long)]
    pub heads: Option<PathBuf>,
    /// Ed25519 public key (SPKI PEM, as `openssl pkey -pubout` writes it, or 64 hex digits)
    /// that must have signed the heads.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Print the full report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where the server is and which token to use.
#[derive(Debug, Args, Clone)]
pub struct ConnectArgs {
    /// Server URL; else `KESTREL_SERVER`, else `<data-dir>/server.url`.
    #[arg(long)]
    pub server: Option<String>,
    /// File holding the token; else `KESTREL_TOKEN` (the value), else `<data-dir>/admin.token`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Data directory of a local `kestrel up`, used when nothing else says where to go.
    #[arg(long, default_value = "kestrel-data")]
    pub data_dir: PathBuf,
    /// PEM certificate(s) to trust for an `https://` server with a private CA or self-signed
    /// certificate; else `KESTREL_CA_FILE`.
    #[arg(long, env = "KESTREL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Output formats of `kestrel query`: those of every listing, plus Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    Table,
    Json,
    Csv,
    /// An Arrow IPC stream on stdout (`pyarrow.ipc.open_stream`, `duckdb`, `polars`), typed.
    Arrow,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL (SELECT only), e.g. "SELECT verb, count(*) FROM audit GROUP BY verb".
    pub sql: String,
    /// Only rows from this time on, in every table: a duration before now (`15m`, `1h`, `7d`)
    /// or an RFC 3339 time. Older partitions are not even opened.
    #[arg(long)]
    pub since: Option<String>,
    /// Only rows before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "table")]
    pub format: QueryFormat,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: Option<AlertsAction>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// List alerts, most recent first.
    List {
        /// firing, acknowledged or resolved.
        #[arg(long)]
        status: Option<String>,
        /// A Falco priority, e.g. Critical.
        #[arg(long)]
        priority: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// Show one alert: its labels, status, why it is muted, and its deliveries.
    Show { id: String },
    /// Acknowledge an alert by id (stops repeats and escalation).
    Ack { id: String },
    /// Resolve an alert by id.
    Resolve { id: String },
    /// The delivery log: every notification, its receiver, status, attempts and last error.
    Deliveries {
        /// Only notifications about this alert.
        id: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// Silence alerts for a while, list silences, or end one.
    #[command(subcommand)]
    Silence(SilenceAction),
}

#[derive(Debug, Subcommand)]
pub enum SilenceAction {
    /// Silence alerts matching every matcher, e.g. `kestrel alerts silence add
    /// 'namespace="dev"' 'rule=~"Exec.*"' --duration 2h --comment "load test"`.
    Add {
        /// Matchers in Alertmanager's syntax: name="value", name!=value, name=~"re", name!~"re".
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long, like 2h or 30m.
        #[arg(long, default_value = "1h")]
        duration: String,
        /// Why (shown with the silence).
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List silences (pending, active and expired).
    List {
        #[arg(long, short = 'f', value_enum, default_value = "table")]
        format: Format,
    },
    /// End a silence now.
    Expire { id: String },
}

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub action: RulesAction,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuleMatchingArg {
    /// Every matching rule fires.
    All,
    /// Only the first matching rule, in load order (Falco's default).
    First,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RulesFormat {
    /// One JSON object per alert and line, with Falco's keys.
    Json,
    /// `time: Priority output`, as Falco prints alerts.
    Text,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FieldsFormat {
    /// One line per field.
    Text,
    /// The field reference page (docs/fields.md).
    Markdown,
    /// A JSON array of fields.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum RulesAction {
    /// Evaluate rules over a file of events and print one line per alert: audit events (JSON
    /// lines or an EventList), or rows of another source's table (JSON lines or a JSON array,
    /// as `kestrel query --format json` prints them).
    Run {
        /// A rule file (Falco YAML); repeat to load several, in order. Default: the bundled pack.
        #[arg(long = "rules", short = 'r')]
        rules: Vec<PathBuf>,
        /// The events: JSON lines (an audit log, table rows) or an EventList / JSON array.
        #[arg(long)]
        events: PathBuf,
        /// The events' source: k8s_audit (or audit), container_log, ingress, dns, netflow,
        /// journal, k8s_event.
        #[arg(long, default_value = "k8s_audit")]
        source: String,
        /// How many rules may fire per event.
        #[arg(long, value_enum, default_value = "all")]
        rule_matching: RuleMatchingArg,
        /// Output format.
        #[arg(long, short = 'f', value_enum, default_value = "json")]
        format: RulesFormat,
    },
    /// Run rule unit tests: a YAML file of events and the alerts they must raise.
    Test {
        /// The test file (`rules:` in it names the rule files, relative to it).
        file: PathBuf,
        /// Rule files to test instead of the ones the test file names.
        #[arg(long = "rules", short = 'r')]
        rules: Vec<PathBuf>,
    },
    /// Load rule files and report every error and warning with file, line and column.
    Lint {
        /// Rule files, loaded in order.
        files: Vec<PathBuf>,
    },
    /// List every field rules may read, per source, with its type and description.
    Fields {
        /// Only this source's fields.
        #[arg(long)]
        source: Option<String>,
        /// Output format (`markdown` is docs/fields.md).
        #[arg(long, short = 'f', value_enum, default_value = "text")]
        format: FieldsFormat,
    },
    /// Show a rule's compiled condition (macros inlined, lists expanded) and the fields it reads.
    Explain {
        /// The rule's name.
        rule: String,
        /// Rule files to load, in order. Default: the bundled pack.
        #[arg(long = "rules", short = 'r')]
        rules: Vec<PathBuf>,
    },
}
