//! `kestrel up` (server + demo on embedded defaults) and `kestrel server`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use kestrel_server::{shutdown_signal, state_db_path, Role, Server, ServerConfig, TokenStore};
use serde_json::{json, Value};
use tracing::info;

use crate::cli::{ServerArgs, UpArgs};

/// Marks a data directory whose demo scenario was replayed, so a restart does not add it again.
const DEMO_MARKER: &str = "demo.loaded";

/// The configuration file (or the defaults), with the command line's overrides applied.
fn load_config(
    path: Option<&Path>,
    data_dir: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
) -> Result<ServerConfig> {
    let mut config = match path {
        Some(p) => ServerConfig::load(p)?,
        None => ServerConfig::default(),
    };
    if let Some(d) = data_dir {
        config.data_dir = d;
    }
    if let Some(l) = listen {
        config.listen = l;
    }
    Ok(config)
}

/// Writes `contents` to `path` readable by the owner only.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The admin token in `DIR/admin.token`: reused while it is valid, created otherwise.
fn ensure_admin_token(data_dir: &Path) -> Result<String> {
    let tokens = TokenStore::open(&state_db_path(data_dir))?;
    let file = data_dir.join("admin.token");
    if let Ok(existing) = std::fs::read_to_string(&file) {
        let existing = existing.trim().to_string();
        if tokens
            .verify(&existing)?
            .is_some_and(|p| p.role == Role::Admin)
        {
            return Ok(existing);
        }
    }
    if tokens.exists("admin")? {
        tokens.revoke("admin")?;
    }
    let token = tokens.create("admin", Role::Admin)?;
    write_private(&file, &format!("{token}\n"))?;
    Ok(token)
}

pub async fn run(args: UpArgs) -> Result<()> {
    let config = load_config(args.config.as_deref(), args.data_dir, args.listen)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.clone();
    let token = ensure_admin_token(&data_dir)?;
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    let url = format!("{}://{addr}", server.scheme());
    std::fs::write(data_dir.join("server.url"), format!("{url}\n"))?;
    let serving = tokio::spawn(server.serve(shutdown_signal()));

    let demo = if args.no_demo || data_dir.join(DEMO_MARKER).exists() {
        None
    } else {
        Some(replay_demo(&url, &token, &data_dir).await?)
    };
    print_welcome(&url, &data_dir, demo);
    serving.await??;
    Ok(())
}

pub async fn run_server(args: ServerArgs) -> Result<()> {
    let config = load_config(args.config.as_deref(), args.data_dir, args.listen)?;
    let server = Server::bind(config).await?;
    server.serve(shutdown_signal()).await
}

struct DemoSummary {
    events: usize,
    alerts: usize,
    dead_letters: usize,
}

/// Sends the demo scenario through the audit webhook, as a kube-apiserver would.
async fn replay_demo(url: &str, token: &str, data_dir: &Path) -> Result<DemoSummary> {
    let events = kestrel_demo::demo_scenario(chrono::Utc::now(), 42);
    info!(
        events = events.len(),
        "replaying the demo scenario through the audit webhook"
    );
    // The demo goes to our own listener; with TLS its certificate may name another host.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(url.starts_with("https://"))
        .build()?;
    let mut summary = DemoSummary {
        events: 0,
        alerts: 0,
        dead_letters: 0,
    };
    for chunk in events.chunks(400) {
        let body = json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": chunk});
        let resp = client
            .post(format!("{url}/v1/audit/webhook"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .context("sending the demo to the server")?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!("the server refused the demo batch: {status} {v}");
        }
        summary.events += v["accepted"].as_u64().unwrap_or(0) as usize;
        summary.alerts += v["alerts"].as_u64().unwrap_or(0) as usize;
        summary.dead_letters += v["dead_letters"].as_u64().unwrap_or(0) as usize;
    }
    std::fs::write(data_dir.join(DEMO_MARKER), chrono::Utc::now().to_rfc3339())?;
    Ok(summary)
}

fn print_welcome(url: &str, data_dir: &Path, demo: Option<DemoSummary>) {
    let dir: PathBuf = data_dir.to_path_buf();
    let mut out = String::new();
    out.push_str(&format!("\nKestrel is up at {url}\n"));
    out.push_str(&format!("  data:        {}\n", dir.display()));
    out.push_str(&format!(
        "  admin token: {} (mode 0600)\n",
        dir.join("admin.token").display()
    ));
    if let Some(d) = demo {
        out.push_str(&format!(
            "\nDemo scenario replayed: {} audit events stored, {} alerts raised, {} dead letters.\n",
            d.events, d.alerts, d.dead_letters
        ));
        out.push_str("The story, step by step:\n");
        for step in kestrel_demo::scenario_steps() {
            out.push_str(&format!("  - {}: {}\n", step.name, step.description));
        }
    }
    out.push_str("\nTry next (in another terminal, from this directory):\n");
    out.push_str("  kestrel alerts\n");
    out.push_str("  kestrel query \"SELECT user_name, verb, resource, count(*) AS n FROM audit GROUP BY 1, 2, 3 ORDER BY n DESC LIMIT 10\"\n");
    out.push_str("  kestrel query \"SELECT time, user_name, verb, resource, namespace, name FROM audit WHERE user_agent LIKE 'curl%' ORDER BY time\"\n");
    out.push_str("  kestrel query \"SELECT kind, reason FROM dead_letter\"\n");
    out.push_str("  (with cargo: cargo run --release -- query \"...\")\n");
    out.push_str(
        "\nCtrl-C stops the server; everything acknowledged is sealed to Parquet first.\n",
    );
    eprintln!("{out}");
}
