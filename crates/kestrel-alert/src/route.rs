//! The routing tree, compiled: Alertmanager's matching (depth first; a matching child stops the
//! search among its siblings unless it has `continue`; a node none of whose children match
//! takes the alert itself) and inheritance of receiver, grouping, timings and escalation.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{ReceiverConfig, RouteConfig};
use crate::matcher::{self, Matcher};

/// How a route splits its alerts into groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `[...]`: every label, so one group per alert.
    All,
    /// These labels (none: one group for the whole route).
    Labels(Vec<String>),
}

impl GroupBy {
    /// The labels of the group an alert with `labels` belongs to.
    pub fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match self {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

/// An escalation tier, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationTier {
    pub after: Duration,
    pub receivers: Vec<String>,
    pub repeat_interval: Option<Duration>,
}

/// A node of the tree with everything inherited resolved.
#[derive(Debug, Clone)]
pub struct RouteNode {
    /// Index in [`RouteTree`]; 0 is the root.
    pub id: usize,
    /// Path of child indexes from the root, like `0/2/1`; part of group keys.
    pub path: String,
    pub matchers: Vec<Matcher>,
    /// Receiver name; empty for the implicit root of a configuration without a route (which
    /// sends nothing itself).
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub continue_matching: bool,
    pub escalation: Vec<EscalationTier>,
    /// Names of time intervals muting this route (not inherited).
    pub mute_time_intervals: Vec<String>,
    /// Names of time intervals outside which this route is muted (not inherited).
    pub active_time_intervals: Vec<String>,
    pub children: Vec<usize>,
}

/// Alertmanager's defaults.
const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 60 * 60);

/// The compiled routing tree.
#[derive(Debug, Clone)]
pub struct RouteTree {
    nodes: Vec<RouteNode>,
}

struct Inherited {
    receiver: Option<String>,
    group_by: GroupBy,
    group_wait: Duration,
    group_interval: Duration,
    repeat_interval: Duration,
    escalation: Vec<EscalationTier>,
}

impl RouteTree {
    /// Builds the tree and lists its problems (the tree is usable only without any); without
    /// a route, every receiver gets every alert at once, one notification per alert (children
    /// of an empty root, each with `continue`).
    pub fn compile(
        route: Option<&RouteConfig>,
        receivers: &[ReceiverConfig],
    ) -> (RouteTree, Vec<String>) {
        let implicit;
        let route = match route {
            Some(r) => r,
            None => {
                implicit = RouteConfig {
                    receiver: Some(String::new()),
                    group_by: Some(vec!["...".into()]),
                    group_wait: Some(Duration::ZERO),
                    routes: receivers
                        .iter()
                        .map(|r| RouteConfig {
                            receiver: Some(r.name.clone()),
                            continue_matching: true,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                &implicit
            }
        };
        let mut problems = Vec::new();
        if route.receiver.is_none() {
            problems.push("route: the root route needs a receiver".to_string());
        }
        if !route.matchers.is_empty() || !route.match_eq.is_empty() || !route.match_re.is_empty() {
            problems.push("route: the root route matches every alert; it takes no matchers".into());
        }
        if !route.mute_time_intervals.is_empty() || !route.active_time_intervals.is_empty() {
            problems.push(
                "route: the root route cannot have mute_time_intervals or active_time_intervals (put them on a child route)"
                    .into(),
            );
        }
        let mut tree = RouteTree { nodes: Vec::new() };
        let root = Inherited {
            receiver: None,
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            escalation: Vec::new(),
        };
        tree.add(route, &root, "0".into(), "route".into(), &mut problems);
        (tree, problems)
    }

    fn add(
        &mut self,
        cfg: &RouteConfig,
        parent: &Inherited,
        path: String,
        at: String,
        problems: &mut Vec<String>,
    ) -> usize {
        let matchers = match matcher::from_config(&cfg.matchers, &cfg.match_eq, &cfg.match_re) {
            Ok(m) => m,
            Err(es) => {
                problems.extend(es.into_iter().map(|e| format!("{at}: {e}")));
                Vec::new()
            }
        };
        let group_by = match &cfg.group_by {
            None => parent.group_by.clone(),
            Some(labels) if labels.iter().any(|l| l == "...") => {
                if labels.len() > 1 {
                    problems.push(format!(
                        "{at}: group_by [...] means every label; it cannot be combined with others"
                    ));
                }
                GroupBy::All
            }
            Some(labels) => GroupBy::Labels(labels.clone()),
        };
        let escalation = match &cfg.escalation {
            None => parent.escalation.clone(),
            Some(tiers) => {
                let compiled: Vec<EscalationTier> = tiers
                    .iter()
                    .map(|t| EscalationTier {
                        after: t.after,
                        receivers: t.receivers.clone(),
                        repeat_interval: t.repeat_interval,
                    })
                    .collect();
                if compiled.windows(2).any(|w| w[0].after >= w[1].after) {
                    problems.push(format!(
                        "{at}: escalation tiers must come in order of increasing `after`"
                    ));
                }
                if compiled.iter().any(|t| t.receivers.is_empty()) {
                    problems.push(format!("{at}: an escalation tier lists no receiver"));
                }
                if compiled
                    .iter()
                    .any(|t| t.repeat_interval.is_some_and(|r| r.is_zero()))
                {
                    problems.push(format!("{at}: escalation repeat_interval must be above 0"));
                }
                compiled
            }
        };
        let inherited = Inherited {
            receiver: cfg.receiver.clone().or_else(|| parent.receiver.clone()),
            group_by,
            group_wait: cfg.group_wait.unwrap_or(parent.group_wait),
            group_interval: cfg.group_interval.unwrap_or(parent.group_interval),
            repeat_interval: cfg.repeat_interval.unwrap_or(parent.repeat_interval),
            escalation,
        };
        if inherited.group_interval.is_zero() {
            problems.push(format!("{at}: group_interval must be above 0"));
        }
        if inherited.repeat_interval.is_zero() {
            problems.push(format!("{at}: repeat_interval must be above 0"));
        }
        let id = self.nodes.len();
        self.nodes.push(RouteNode {
            id,
            path: path.clone(),
            matchers,
            receiver: inherited.receiver.clone().unwrap_or_default(),
            group_by: inherited.group_by.clone(),
            group_wait: inherited.group_wait,
            group_interval: inherited.group_interval,
            repeat_interval: inherited.repeat_interval,
            continue_matching: cfg.continue_matching,
            escalation: inherited.escalation.clone(),
            mute_time_intervals: cfg.mute_time_intervals.clone(),
            active_time_intervals: cfg.active_time_intervals.clone(),
            children: Vec::new(),
        });
        for (i, child) in cfg.routes.iter().enumerate() {
            let c = self.add(
                child,
                &inherited,
                format!("{path}/{i}"),
                format!("{at}.routes[{i}]"),
                problems,
            );
            self.nodes[id].children.push(c);
        }
        id
    }

    /// Where each receiver is named, for validation: (`route.routes[1]`, name).
    pub fn receiver_references(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let at = format!("route {}", n.path);
            out.push((at.clone(), n.receiver.clone()));
            for (i, t) in n.escalation.iter().enumerate() {
                for r in &t.receivers {
                    out.push((format!("{at} escalation[{i}]"), r.clone()));
                }
            }
        }
        out
    }

    /// Where each time interval is named, for validation.
    pub fn time_interval_references(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for name in &n.mute_time_intervals {
                out.push((
                    format!("route {} mute_time_intervals", n.path),
                    name.clone(),
                ));
            }
            for name in &n.active_time_intervals {
                out.push((
                    format!("route {} active_time_intervals", n.path),
                    name.clone(),
                ));
            }
        }
        out
    }

    pub fn node(&self, id: usize) -> &RouteNode {
        &self.nodes[id]
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The routes that take an alert with `labels`, in tree order.
    pub fn matching(&self, labels: &BTreeMap<String, String>) -> Vec<usize> {
        let mut out = Vec::new();
        self.match_node(0, labels, &mut out);
        out
    }

    fn match_node(
        &self,
        id: usize,
        labels: &BTreeMap<String, String>,
        out: &mut Vec<usize>,
    ) -> bool {
        let node = &self.nodes[id];
        if !matcher::all_match(&node.matchers, labels) {
            return false;
        }
        let before = out.len();
        for &c in &node.children {
            if self.match_node(c, labels, out) && !self.nodes[c].continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(id);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlertingConfig;

    fn tree(yaml: &str) -> RouteTree {
        let cfg: AlertingConfig = serde_yaml_ng::from_str(yaml).unwrap();
        cfg.compile().unwrap().routes
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const RECEIVERS: &str = r#"
receivers:
  - {name: default, webhook: {url: "http://127.0.0.1:1/a"}}
  - {name: prod, webhook: {url: "http://127.0.0.1:1/b"}}
  - {name: db, webhook: {url: "http://127.0.0.1:1/c"}}
  - {name: audit, webhook: {url: "http://127.0.0.1:1/d"}}
  - {name: lead, webhook: {url: "http://127.0.0.1:1/e"}}
"#;

    #[test]
    fn alertmanager_matching_continue_and_inheritance() {
        let t = tree(&format!(
            r#"
route:
  receiver: default
  group_by: [rule]
  group_wait: 10s
  escalation: [{{after: 15m, receivers: [lead]}}]
  routes:
    - matchers: ['namespace="prod"']
      receiver: prod
      group_by: [...]
      routes:
        - match_re: {{rule: "DB.*"}}
          receiver: db
          group_wait: 0s
    - matchers: ['source="k8s_audit"']
      receiver: audit
      continue: true
    - match: {{priority: Critical}}
      receiver: prod
      repeat_interval: 1h
{RECEIVERS}"#
        ));
        let receivers = |l: &[(&str, &str)]| -> Vec<String> {
            t.matching(&labels(l))
                .into_iter()
                .map(|i| t.node(i).receiver.clone())
                .collect()
        };
        // Nothing matches: the root takes it.
        assert_eq!(receivers(&[("rule", "x")]), ["default"]);
        // prod matches and does not continue: the later siblings are not tried.
        assert_eq!(
            receivers(&[("namespace", "prod"), ("source", "k8s_audit")]),
            ["prod"]
        );
        // A matching grandchild takes it instead of its parent.
        assert_eq!(
            receivers(&[("namespace", "prod"), ("rule", "DB drop")]),
            ["db"]
        );
        // `continue` lets the next sibling match too.
        assert_eq!(
            receivers(&[("source", "k8s_audit"), ("priority", "Critical")]),
            ["audit", "prod"]
        );
        assert_eq!(receivers(&[("source", "k8s_audit")]), ["audit"]);

        let db = t
            .matching(&labels(&[("namespace", "prod"), ("rule", "DB x")]))
            .into_iter()
            .next()
            .unwrap();
        let db = t.node(db);
        assert_eq!(db.group_by, GroupBy::All, "inherited from prod");
        assert_eq!(db.group_wait, Duration::ZERO);
        assert_eq!(db.group_interval, DEFAULT_GROUP_INTERVAL);
        assert_eq!(db.escalation.len(), 1, "inherited from the root");
        let crit = t.node(
            t.matching(&labels(&[("priority", "Critical")]))
                .into_iter()
                .next()
                .unwrap(),
        );
        assert_eq!(crit.group_by, GroupBy::Labels(vec!["rule".into()]));
        assert_eq!(crit.group_wait, Duration::from_secs(10));
        assert_eq!(crit.repeat_interval, Duration::from_secs(3600));
    }

    #[test]
    fn without_a_route_every_receiver_gets_every_alert_at_once() {
        let t = tree(RECEIVERS);
        let hits = t.matching(&labels(&[("rule", "x")]));
        assert_eq!(hits.len(), 5);
        for i in hits {
            assert_eq!(t.node(i).group_wait, Duration::ZERO);
            assert_eq!(t.node(i).group_by, GroupBy::All);
        }
    }
}
