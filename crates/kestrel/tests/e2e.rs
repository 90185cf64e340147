//! End-to-end tests of the `kestrel` binary. They run the real program: each test starts
//! `kestrel up --no-demo` as a child process on an ephemeral port with its own data directory,
//! talks to it over HTTP as kube-apiserver's audit webhook and as users would, runs the CLI
//! (`kestrel token`, `kestrel query`, `kestrel alerts`), and kills or stops the process to test
//! what survives. Nothing is mocked; waits are bounded polls, never sleeps standing in for
//! synchronisation.
//!
//! - `agent`: `kestrel agent` processes ship pod logs exactly once through agent crashes, a
//!   server outage and a full disk buffer.
//! - `agent_inputs`: the journal (real journal files), kmsg and Kubernetes events (cluster
//!   mode) inputs, exactly once through agent crashes.
//! - `crash`: SIGKILL and SIGTERM in the middle of a stream of webhook batches.
//! - `malformed`: broken bodies and items are refused or dead-lettered, good events kept.
//! - `redaction`: Secret values and tokens reach no answer and no file.
//! - `read_only_sql`: SQL over HTTP cannot define, change or write anything.
//! - `auth`: tokens and roles on every endpoint.
//! - `alerts`: rule matches become alerts, notified once, acknowledged.
//! - `cli`: `kestrel query` output formats and errors, and `/metrics`.
//! - `rules_cli`: `kestrel rules run|test|lint|explain` offline.
//! - `storage`: `kestrel verify` finds a tampered file; a corrupt file is quarantined.

#[path = "e2e/harness.rs"]
mod harness;

#[path = "e2e/events.rs"]
mod events;

#[path = "e2e/agent.rs"]
mod agent;
#[path = "e2e/agent_inputs.rs"]
mod agent_inputs;
#[path = "e2e/alerts.rs"]
mod alerts;
#[path = "e2e/auth.rs"]
mod auth;
#[path = "e2e/cli.rs"]
mod cli;
#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/malformed.rs"]
mod malformed;
#[path = "e2e/read_only_sql.rs"]
mod read_only_sql;
#[path = "e2e/redaction.rs"]
mod redaction;
#[path = "e2e/rules_cli.rs"]
mod rules_cli;
#[path = "e2e/storage.rs"]
mod storage;
