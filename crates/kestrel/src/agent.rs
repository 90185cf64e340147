//! `kestrel agent`: the node agent (or, with `--mode cluster`, the cluster agent) from a
//! configuration file, until SIGTERM or Ctrl-C.

use std::time::Duration;

use anyhow::{Context, Result};
use kestrel_agent::config::{AgentConfig, AgentMode};
use kestrel_agent::Agent;

use crate::cli::{AgentArgs, AgentModeArg};

/// Time given to batches in flight at shutdown before the agent stops (they stay in the disk
/// buffer otherwise).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub async fn run(args: AgentArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let mode = args.mode.map(|m| match m {
        AgentModeArg::Node => AgentMode::Node,
        AgentModeArg::Cluster => AgentMode::Cluster,
    });
    let config = AgentConfig::from_yaml_in_mode(&text, mode)
        .with_context(|| format!("in {}", args.config.display()))?;
    if args.check {
        eprintln!("{}: the configuration is valid", args.config.display());
        return Ok(());
    }
    let agent = Agent::start(config).await?;
    shutdown_signal().await;
    tracing::info!("stopping the agent");
    agent.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
