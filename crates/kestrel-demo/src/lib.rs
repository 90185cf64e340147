//! Realistic generated Kubernetes audit traffic. Pure: no I/O.
//!
//! The simulated cluster has three nodes (`node-a` runs the control plane), the usual system
//! components (kubelets, controller manager and its controllers, scheduler, CoreDNS,
//! metrics-server, kube-proxy), ArgoCD, a GitLab runner running CI build pods, a `shop`
//! application, and a developer, `alice@example.com`, with kubectl.
//!
//! - [`demo_scenario`]: two hours of that traffic with a deploy, an ArgoCD sync and an attack
//!   story (a stolen CI service-account token used from 203.0.113.45), as `serde_json::Value`
//!   events, for `kestrel up`.
//! - [`scenario_steps`]: the attack story step by step, with a query for each.
//! - [`background_traffic`]: endless ordinary traffic as JSON lines, for `kestrel bench`;
//!   rendered from precompiled templates, several million events per second.
//! - [`demo_pod_logs`] and [`demo_node_logs`]: the same story as the nodes log it in the last
//!   hour (container logs under `/var/log/pods`, CoreDNS, ingress-nginx, `kern.log`, the
//!   journal); [`node_log_story`] says which source shows which step.

mod background;
mod cluster;
mod dns;
mod event;
mod logfmt;
mod node_logs;
mod pod_logs;
mod scenario;
mod template;

pub use background::background_traffic;
pub use node_logs::demo_node_logs;
pub use pod_logs::{
    demo_pod_logs, node_log_story, DemoLogFile, SourceStory, NODE_LOG_SPAN_MINUTES,
};
pub use scenario::{demo_scenario, scenario_steps, ScenarioStep, SCENARIO_SPAN_MINUTES};
