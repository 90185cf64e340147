//! Drop and keep filters: which records of an input are not shipped.
//!
//! An input's filters are checked in order; the first whose conditions all hold decides
//! (`drop` drops the record, `keep` keeps it and ends the checks); a record no filter matches is
//! kept. So "only errors from namespace shop" is a `keep` filter on `shop` with a message
//! pattern followed by a `drop` filter on `shop`. Conditions on the pod (namespace, pod,
//! container, labels) are the same for every line of a file and are resolved once per chunk
//! ([`Filters::for_pod`]); only message patterns run per record.
//!
//! A dropped record's bytes are still acknowledged: its file's checkpoint moves past it like
//! past any line that was shipped.

use std::collections::BTreeMap;

use kestrel_event::PodIdentity;
use regex::Regex;
use serde::Deserialize;

/// What a filter does with the records it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterAction {
    /// The record is not shipped (counted in `kestrel_agent_dropped_by_filter_total`).
    Drop,
    /// The record is shipped; later filters are not checked.
    Keep,
}

/// One filter of an input (`inputs[].filters[]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The filter's name, in metrics (`filter` label).
    pub name: String,
    /// `drop` or `keep`.
    pub action: FilterAction,
    /// Namespace globs (`shop`, `team-*`); the record's namespace must match one. Pod logs only.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Pod name globs (`web-*`). Pod logs only.
    #[serde(default)]
    pub pods: Vec<String>,
    /// Container name globs. Pod logs only.
    #[serde(default)]
    pub containers: Vec<String>,
    /// Pod labels that must all be present with these values (from the Kubernetes API; a pod
    /// whose metadata is not known yet has no labels). Pod logs only.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Regular expression searched in the message (for audit and kern.log inputs: the line).
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug)]
struct Filter {
    name: String,
    action: FilterAction,
    namespaces: Vec<glob::Pattern>,
    pods: Vec<glob::Pattern>,
    containers: Vec<glob::Pattern>,
    labels: BTreeMap<String, String>,
    message: Option<Regex>,
}

/// The compiled filters of one input.
#[derive(Debug, Default)]
pub struct Filters {
    filters: Vec<Filter>,
}

/// The filters that apply to one pod's records, in order: their index and message pattern.
#[derive(Debug, Clone, Default)]
pub struct ActiveFilters {
    /// `(filter index, action, pattern)`; `None` pattern: every record matches.
    active: Vec<(usize, FilterAction, Option<Regex>)>,
}

impl ActiveFilters {
    /// True when no filter can drop anything.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The index of the filter that drops `message`, if one does.
    pub fn dropping(&self, message: &str) -> Option<usize> {
        for (index, action, pattern) in &self.active {
            if pattern.as_ref().is_none_or(|p| p.is_match(message)) {
                return match action {
                    FilterAction::Drop => Some(*index),
                    FilterAction::Keep => None,
                };
            }
        }
        None
    }
}

impl Filters {
    /// Compiles an input's filters; `pod_fields` tells whether the input's records have a pod
    /// (pod logs). Every problem is returned, prefixed with `inputs.<input>.filters`.
    pub fn new(
        input: &str,
        configs: &[FilterConfig],
        pod_fields: bool,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut filters = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, c) in configs.iter().enumerate() {
            let at = format!("inputs.{input}.filters[{i}]");
            if c.name.is_empty() {
                problems.push(format!("{at}: name must not be empty"));
            } else if !names.insert(c.name.as_str()) {
                problems.push(format!(
                    "{at}: two filters are named {:?}; give each its own name",
                    c.name
                ));
            }
            let mut globs = |what: &str, list: &[String]| -> Vec<glob::Pattern> {
                list.iter()
                    .filter_map(|g| match glob::Pattern::new(g) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            problems.push(format!("{at}.{what}: {g:?}: {e}"));
                            None
                        }
                    })
                    .collect()
            };
            let namespaces = globs("namespaces", &c.namespaces);
            let pods = globs("pods", &c.pods);
            let containers = globs("containers", &c.containers);
            let has_pod_condition = !(c.namespaces.is_empty()
                && c.pods.is_empty()
                && c.containers.is_empty()
                && c.labels.is_empty());
            if has_pod_condition && !pod_fields {
                problems.push(format!(
                    "{at}: namespaces, pods, containers and labels apply to pod logs only; this input's records have no pod"
                ));
            }
            let message = match c.message.as_deref().map(Regex::new) {
                None => None,
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    problems.push(format!("{at}.message: invalid pattern: {e}"));
                    None
                }
            };
            filters.push(Filter {
                name: c.name.clone(),
                action: c.action,
                namespaces,
                pods,
                containers,
                labels: c.labels.clone(),
                message,
            });
        }
        if problems.is_empty() {
            Ok(Filters { filters })
        } else {
            Err(problems)
        }
    }

    /// Whether there are no filters.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// The filter names, by index.
    pub fn name(&self, index: usize) -> &str {
        &self.filters[index].name
    }

    /// The filters whose pod conditions hold for `pod` (all of them when the input has no pods).
    pub fn for_pod(&self, pod: Option<&PodIdentity>) -> ActiveFilters {
        let any = |globs: &[glob::Pattern], value: Option<&str>| {
            globs.is_empty() || value.is_some_and(|v| globs.iter().any(|g| g.matches(v)))
        };
        let labels: Option<BTreeMap<String, String>> = pod
            .and_then(|p| p.labels.as_deref())
            .and_then(|l| serde_json::from_str(l).ok());
        let active = self
            .filters
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                any(&f.namespaces, pod.and_then(|p| p.namespace.as_deref()))
                    && any(&f.pods, pod.and_then(|p| p.pod.as_deref()))
                    && any(&f.containers, pod.and_then(|p| p.container.as_deref()))
                    && f.labels.iter().all(|(k, v)| {
                        labels
                            .as_ref()
                            .and_then(|l| l.get(k))
                            .is_some_and(|have| have == v)
                    })
            })
            .map(|(i, f)| (i, f.action, f.message.clone()))
            .collect();
        ActiveFilters { active }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(yaml: &str, pods: bool) -> Result<Filters, Vec<String>> {
        let configs: Vec<FilterConfig> = serde_yaml_ng::from_str(yaml).unwrap();
        Filters::new("pod_logs", &configs, pods)
    }

    fn pod(ns: &str, name: &str, container: &str, labels: Option<&str>) -> PodIdentity {
        PodIdentity {
            namespace: Some(ns.into()),
            pod: Some(name.into()),
            container: Some(container.into()),
            labels: labels.map(str::to_string),
            ..PodIdentity::default()
        }
    }

    #[test]
    fn the_first_matching_filter_decides() {
        let f = filters(
            "- {name: health, action: drop, message: 'GET /(healthz|readyz)'}\n\
             - {name: shop-errors, action: keep, namespaces: [shop], message: ERROR}\n\
             - {name: shop-rest, action: drop, namespaces: [shop]}\n\
             - {name: scratch, action: drop, labels: {tier: scratch}}\n",
            true,
        )
        .unwrap();
        let shop = f.for_pod(Some(&pod("shop", "web-1", "nginx", None)));
        assert_eq!(
            shop.dropping("GET /healthz 200").map(|i| f.name(i)),
            Some("health")
        );
        assert_eq!(shop.dropping("ERROR payment failed"), None);
        assert_eq!(
            shop.dropping("INFO ok").map(|i| f.name(i)),
            Some("shop-rest")
        );
        let other = f.for_pod(Some(&pod("web", "a", "b", Some(r#"{"tier":"prod"}"#))));
        assert_eq!(other.dropping("INFO ok"), None);
        assert_eq!(
            other.dropping("GET /readyz").map(|i| f.name(i)),
            Some("health")
        );
        let scratch = f.for_pod(Some(&pod("web", "a", "b", Some(r#"{"tier":"scratch"}"#))));
        assert_eq!(
            scratch.dropping("INFO ok").map(|i| f.name(i)),
            Some("scratch")
        );
        // Labels unknown (no API): label conditions do not hold.
        assert_eq!(
            f.for_pod(Some(&pod("web", "a", "b", None))).dropping("x"),
            None
        );
    }

    #[test]
    fn globs_on_names() {
        let f = filters(
            "- {name: noisy, action: drop, namespaces: ['team-*'], pods: ['batch-*'], containers: [worker, sidecar]}\n",
            true,
        )
        .unwrap();
        assert!(f
            .for_pod(Some(&pod("team-a", "batch-7", "worker", None)))
            .dropping("x")
            .is_some());
        assert!(f
            .for_pod(Some(&pod("team-a", "web-7", "worker", None)))
            .is_empty());
        assert!(f.for_pod(None).is_empty(), "no pod: pod conditions fail");
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = filters(
            "- {name: a, action: drop, message: '(x'}\n- {name: a, action: keep, namespaces: ['[']}\n- {name: '', action: drop}\n",
            true,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        let problems = filters("- {name: a, action: drop, namespaces: [x]}\n", false).unwrap_err();
        assert!(problems[0].contains("pod logs only"), "{problems:?}");
    }
}
