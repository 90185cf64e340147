//! `kestrel`: one binary, one subcommand per mode. Glue only: the engines live in the
//! libraries (`kestrel-store`, `kestrel-rules`, `kestrel-server`, ...).

mod agent;
#[cfg(feature = "server")]
mod bench;
#[cfg(feature = "server")]
mod bench_agent;
mod cli;
mod client;
#[cfg(feature = "server")]
mod local;
mod output;
#[cfg(feature = "server")]
mod rules;
#[cfg(feature = "server")]
mod up;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Ingest allocates and frees many short strings on several threads; mimalloc handles that
/// pattern far better than the system allocator (measured with `kestrel bench`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`kestrel query ... | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", one_line(&chain.join(": ")));
            ExitCode::from(1)
        }
    }
}

/// Errors print as one line, even when a message (a SQL planner's, say) spans several.
fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KESTREL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        #[cfg(feature = "server")]
        Command::Up(args) => up::run(args).await,
        #[cfg(feature = "server")]
        Command::Server(args) => up::run_server(args).await,
        #[cfg(feature = "server")]
        Command::Token(args) => local::token(args),
        #[cfg(feature = "server")]
        Command::Bench(args) => bench::run(args).await,
        Command::Agent(args) => agent::run(args).await,
        #[cfg(feature = "server")]
        Command::Rules(args) => rules::run(args),
        #[cfg(feature = "server")]
        Command::Verify(args) => local::verify(args),
        Command::Query(args) => client::query(args).await,
        Command::Alerts(args) => client::alerts(args).await,
    }
}
