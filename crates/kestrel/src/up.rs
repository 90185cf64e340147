//! `kestrel up` (server + demo on embedded defaults) and `kestrel server`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use kestrel_server::{state_db_path, Role, Server, ServerConfig, TokenStore};
use serde_json::{json, Value};
use tracing::info;

use crate::agent::shutdown_signal;
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
    ensure_token(
        data_dir,
        &data_dir.join("admin.token"),
        "admin",
        Role::Admin,
    )
}

/// A token named `name` with `role`, kept in `file`: reused while it is valid, created
/// otherwise.
fn ensure_token(data_dir: &Path, file: &Path, name: &str, role: Role) -> Result<String> {
    let tokens = TokenStore::open(&state_db_path(data_dir))?;
    if let Ok(existing) = std::fs::read_to_string(file) {
        let existing = existing.trim().to_string();
        if tokens.verify(&existing)?.is_some_and(|p| p.role == role) {
            return Ok(existing);
        }
    }
    if tokens.exists(name)? {
        tokens.revoke(name)?;
    }
    let token = tokens.create(name, role)?;
    write_private(file, &format!("{token}\n"))?;
    Ok(token)
}

pub async fn run(args: UpArgs) -> Result<()> {
    let config = load_config(args.config.as_deref(), args.data_dir, args.listen)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.clone();
    let token = ensure_admin_token(&data_dir)?;
    let mut server = Server::bind(config).await?;
    if let Some(p) = args.config {
        server.set_config_path(p);
    }
    let addr = server.local_addr();
    let url = format!("{}://{addr}", server.scheme());
    std::fs::write(data_dir.join("server.url"), format!("{url}\n"))?;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(server.serve(async {
        let _ = server_stopped.await;
    }));

    let demo = if args.no_demo || data_dir.join(DEMO_MARKER).exists() {
        None
    } else {
        Some(replay_demo(&url, &token, &data_dir).await?)
    };
    let agent = if args.no_agent {
        None
    } else {
        start_local_agent(&url, &data_dir).await?
    };
    print_welcome(
        &url,
        &data_dir,
        demo,
        agent.as_ref().map(|(_, p)| p.as_path()),
    );
    tokio::select! {
        () = shutdown_signal() => {}
        // The server stopped on its own (an error): stop the agent too and report it.
        r = &mut serving => {
            if let Some((agent, _)) = agent {
                agent.shutdown(Duration::from_secs(1)).await;
            }
            return r?;
        }
    }
    // The agent first, so its last batches still reach the server.
    if let Some((agent, _)) = agent {
        agent.shutdown(Duration::from_secs(5)).await;
    }
    let _ = stop_server.send(());
    serving.await??;
    Ok(())
}

/// The directory kubelet writes pod logs to, when this machine is a Kubernetes node.
const NODE_POD_LOGS: &str = "/var/log/pods";

/// Starts an agent that tails this node's pod logs (or, on a machine that is no node, the demo
/// pod logs written under the data directory) and ships them to the server at `url`.
async fn start_local_agent(
    url: &str,
    data_dir: &Path,
) -> Result<Option<(kestrel_agent::Agent, PathBuf)>> {
    let node_logs = Path::new(NODE_POD_LOGS);
    let demo_logs = data_dir.join("demo").join("pods");
    let pods = if std::fs::read_dir(node_logs).is_ok() {
        node_logs.to_path_buf()
    } else if demo_logs.is_dir() {
        demo_logs
    } else {
        return Ok(None);
    };
    let token_file = data_dir.join("agent.token");
    ensure_token(data_dir, &token_file, "local-agent", Role::Ingest)?;
    let yaml = [
        "server:".to_string(),
        format!("  url: {url}"),
        format!("  token_file: {}", token_file.display()),
        format!("data_dir: {}", data_dir.join("agent").display()),
        "listen: \"127.0.0.1:0\"".to_string(),
        "inputs:".to_string(),
        "  - type: pod_logs".to_string(),
        format!("    path: {}", pods.display()),
    ]
    .join("\n");
    let config = kestrel_agent::config::AgentConfig::from_yaml(&yaml)?;
    let agent = kestrel_agent::Agent::start(config).await?;
    Ok(Some((agent, pods)))
}

pub async fn run_server(args: ServerArgs) -> Result<()> {
    let config = load_config(args.config.as_deref(), args.data_dir, args.listen)?;
    let mut server = Server::bind(config).await?;
    if let Some(p) = args.config {
        server.set_config_path(p);
    }
    server.serve(shutdown_signal()).await
}

/// Writes the demo's pod logs (the same attack, seen from the nodes) under
/// `DIR/demo/pods/<namespace>_<pod>_<uid>/<container>/0.log`, as kubelet lays them out, for the
/// local agent to read.
fn write_demo_pod_logs(data_dir: &Path, end: chrono::DateTime<chrono::Utc>) -> Result<()> {
    let root = data_dir.join("demo").join("pods");
    for file in kestrel_demo::demo_pod_logs(end, 42) {
        let path = root.join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut text = file.lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

struct DemoSummary {
    events: usize,
    alerts: usize,
    dead_letters: usize,
}

/// Sends the demo scenario through the audit webhook, as a kube-apiserver would.
async fn replay_demo(url: &str, token: &str, data_dir: &Path) -> Result<DemoSummary> {
    let now = chrono::Utc::now();
    write_demo_pod_logs(data_dir, now)?;
    let events = kestrel_demo::demo_scenario(now, 42);
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

fn print_welcome(url: &str, data_dir: &Path, demo: Option<DemoSummary>, agent: Option<&Path>) {
    let dir: PathBuf = data_dir.to_path_buf();
    let mut out = String::new();
    out.push_str(&format!("\nKestrel is up at {url}\n"));
    out.push_str(&format!("  data:        {}\n", dir.display()));
    out.push_str(&format!(
        "  admin token: {} (mode 0600)\n",
        dir.join("admin.token").display()
    ));
    out.push_str(&format!(
        "  console:     {url}/ (sign in with the admin token)\n"
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
        out.push_str("Seen from the nodes (pod logs read by the local agent):\n");
        for story in kestrel_demo::node_log_story()
            .iter()
            .filter(|s| matches!(s.source, "ingress" | "container_log" | "dns"))
        {
            out.push_str(&format!("  - {}: {}\n", story.source, story.description));
        }
    }
    match agent {
        Some(pods) => out.push_str(&format!(
            "\nThe local agent tails {} into the container_log, ingress and dns tables.\n",
            pods.display()
        )),
        None => out.push_str("\nNo local agent: no pod logs to read on this machine.\n"),
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
