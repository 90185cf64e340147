//! Multiline joining for pod logs: which containers' lines are joined into records (stack
//! traces, tracebacks, panics), by which pattern, with presets for common runtimes.
//!
//! Joining runs per file after the runtime's partial lines are merged
//! (`kestrel_parse::MultilineJoiner`). A pod annotated `kestrel.io/multiline-start: <regex>`
//! gets that start pattern whatever the configuration says (once its metadata is known).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kestrel_parse::MultilineJoiner;
use serde::{Deserialize, Deserializer};

use crate::config::PodMatch;

/// The pod annotation that sets a pod's multiline start pattern.
pub const MULTILINE_START_ANNOTATION: &str = "kestrel.io/multiline-start";

/// Ready-made patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultilinePreset {
    /// Java stack traces: indented lines, `Caused by:`, `... N more` and exception class lines
    /// (`java.lang.IllegalStateException: ...`) continue the record.
    Java,
    /// Python tracebacks: `Traceback (most recent call last):`, indented frames, the chained
    /// exception notes and the final `SomethingError: ...` line continue the record.
    Python,
    /// Go panics: `goroutine N [...]:`, function lines, indented file lines, blank lines and
    /// `exit status N` continue the record.
    Go,
    /// A record starts at a line beginning with a date (`2026-11-20`, `[2026-11-20 ...`,
    /// `2026/11/20`) or a syslog-like time stamp (`Nov 20 09:00:01`).
    Timestamp,
}

impl MultilinePreset {
    /// `(pattern, the pattern matches continuation lines)`.
    fn pattern(self) -> (&'static str, bool) {
        match self {
            MultilinePreset::Java => (
                r"^(?:\s|Caused by:|Suppressed:|\.\.\. \d+ (?:more|common frames omitted)|[\w$]+(?:\.[\w$]+)+(?:Exception|Error|Throwable)(?::|$))",
                true,
            ),
            MultilinePreset::Python => (
                r"^(?:\s|$|Traceback \(most recent call last\):|During handling of the above exception|The above exception was the direct cause|[\w.]*(?:Error|Exception|Warning|Exit|Interrupt|StopIteration)(?::|$))",
                true,
            ),
            MultilinePreset::Go => (
                r"^(?:\s|$|goroutine \d+ \[|created by |exit status \d+|\[signal |[\w./*()-]+\(.*\)$)",
                true,
            ),
            MultilinePreset::Timestamp => (
                r"^\[?(?:\d{4}[-/]\d{2}[-/]\d{2}|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2}|[IWEF]\d{4} \d{2}:\d{2}:\d{2})",
                false,
            ),
        }
    }
}

/// One multiline rule of a pod logs input (`inputs[].multiline[]`); the first rule whose
/// selector matches a container applies to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Which containers (namespace, pod name prefix, container name; empty fields match
    /// anything).
    #[serde(default, rename = "match")]
    pub selector: PodMatch,
    /// A preset: `java`, `python`, `go` or `timestamp`.
    #[serde(default)]
    pub preset: Option<MultilinePreset>,
    /// Regular expression of the first line of a record (instead of a preset).
    #[serde(default)]
    pub start: Option<String>,
    /// Regular expression of the lines that continue a record (instead of a preset).
    #[serde(default)]
    pub continuation: Option<String>,
    /// Most lines in one record; the next line starts a new record.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
    /// Longest record in bytes; the rest is cut (counted in
    /// `kestrel_agent_multiline_truncated_records_total`).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// A record is shipped once its file has been quiet this long, like `2s`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_max_lines() -> usize {
    500
}
fn default_max_bytes() -> usize {
    256 * 1024
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

/// Compiled multiline rules of one input.
#[derive(Debug, Default)]
pub struct MultilineRules {
    rules: Vec<(PodMatch, MultilineJoiner)>,
    /// Joiner settings for annotated pods (`max_bytes`, `max_lines`, timeout in ns).
    annotation_limits: (usize, usize, i64),
    /// Joiners compiled from annotations, by pattern (`None`: the pattern is invalid).
    annotated: Mutex<HashMap<String, Option<MultilineJoiner>>>,
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl MultilineRules {
    /// Compiles an input's rules; every problem is returned, prefixed with
    /// `inputs.<input>.multiline`.
    pub fn new(input: &str, configs: &[MultilineConfig]) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let at = format!("inputs.{input}.multiline[{i}]");
            let given = [
                c.preset.is_some(),
                c.start.is_some(),
                c.continuation.is_some(),
            ]
            .iter()
            .filter(|g| **g)
            .count();
            if given != 1 {
                problems.push(format!(
                    "{at}: give exactly one of preset, start and continuation"
                ));
                continue;
            }
            if c.max_lines == 0 {
                problems.push(format!("{at}.max_lines must be at least 1"));
            }
            if c.max_bytes < 64 {
                problems.push(format!("{at}.max_bytes must be at least 64"));
            }
            if c.timeout.is_zero() {
                problems.push(format!("{at}.timeout must be more than 0"));
            }
            let (pattern, continuation) = match (&c.preset, &c.start, &c.continuation) {
                (Some(p), _, _) => (p.pattern().0.to_string(), p.pattern().1),
                (_, Some(s), _) => (s.clone(), false),
                (_, _, Some(s)) => (s.clone(), true),
                _ => unreachable!("exactly one is given"),
            };
            let joiner = if continuation {
                MultilineJoiner::continuation(&pattern, c.max_bytes, nanos(c.timeout))
            } else {
                MultilineJoiner::new(&pattern, c.max_bytes, nanos(c.timeout))
            };
            match joiner {
                Ok(j) => rules.push((c.selector.clone(), j.with_max_lines(c.max_lines))),
                Err(e) => problems.push(format!("{at}: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let annotation_limits = configs.first().map_or(
            (
                default_max_bytes(),
                default_max_lines(),
                nanos(default_timeout()),
            ),
            |c| (c.max_bytes, c.max_lines, nanos(c.timeout)),
        );
        Ok(MultilineRules {
            rules,
            annotation_limits,
            annotated: Mutex::new(HashMap::new()),
        })
    }

    /// A fresh joiner for a container, if a rule selects it.
    pub fn joiner_for(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Option<MultilineJoiner> {
        self.rules
            .iter()
            .find(|(m, _)| m.matches(namespace, pod, container))
            .map(|(_, j)| j.clone())
    }

    /// A fresh joiner for a start pattern given by a pod annotation; `None` when the pattern is
    /// not a valid regex (warned once per pattern). Limits are the first rule's, else defaults.
    pub fn joiner_for_annotation(&self, pattern: &str) -> Option<MultilineJoiner> {
        let mut cache = self.annotated.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(pattern.to_string())
            .or_insert_with(|| {
                let (max_bytes, max_lines, timeout) = self.annotation_limits;
                match MultilineJoiner::new(pattern, max_bytes, timeout) {
                    Ok(j) => Some(j.with_max_lines(max_lines)),
                    Err(e) => {
                        tracing::warn!(annotation = MULTILINE_START_ANNOTATION, error = %e, "ignoring a pod's multiline annotation");
                        None
                    }
                }
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kestrel_event::{ContainerLog, LogStream};

    fn join(preset: MultilinePreset, lines: &[&str]) -> Vec<String> {
        let rules = MultilineRules::new(
            "pod_logs",
            &[MultilineConfig {
                selector: PodMatch::default(),
                preset: Some(preset),
                start: None,
                continuation: None,
                max_lines: 500,
                max_bytes: 65536,
                timeout: Duration::from_secs(2),
            }],
        )
        .unwrap();
        let mut j = rules.joiner_for("ns", "pod", "c").unwrap();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let log = ContainerLog {
                time: i as i64,
                stream: LogStream::Stdout,
                message: (*l).to_string(),
                truncated: false,
            };
            out.extend(j.push(log, 0).map(|r| r.message));
        }
        while let Some(r) = j.flush() {
            out.push(r.message);
        }
        out
    }

    #[test]
    fn java_stack_traces_are_one_record() {
        let out = join(
            MultilinePreset::Java,
            &[
                "2026-11-20 09:00:01 INFO started",
                "2026-11-20 09:00:02 ERROR request failed",
                "java.lang.IllegalStateException: boom",
                "\tat com.shop.Orders.place(Orders.java:42)",
                "\tat com.shop.Api.handle(Api.java:7)",
                "Caused by: java.io.IOException: disk",
                "\t... 12 more",
                "2026-11-20 09:00:03 INFO next",
            ],
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out[1].starts_with("2026-11-20 09:00:02 ERROR request failed\njava.lang.IllegalStateException: boom\n\tat com.shop.Orders"));
        assert!(out[1].ends_with("\t... 12 more"));
    }

    #[test]
    fn python_tracebacks_are_one_record() {
        let out = join(
            MultilinePreset::Python,
            &[
                "ERROR:root:payment failed",
                "Traceback (most recent call last):",
                "  File \"/app/pay.py\", line 10, in charge",
                "    raise ValueError(\"card declined\")",
                "ValueError: card declined",
                "INFO:root:next request",
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].ends_with("ValueError: card declined"));
    }

    #[test]
    fn go_panics_are_one_record() {
        let out = join(
            MultilinePreset::Go,
            &[
                "panic: runtime error: index out of range [3] with length 2",
                "",
                "goroutine 1 [running]:",
                "main.lookup(...)",
                "\t/app/main.go:12",
                "net/http.(*conn).serve(0xc0000b6000, {0x6f0e08, 0xc000096a80})",
                "\t/usr/local/go/src/net/http/server.go:1995 +0x612",
                "exit status 2",
                "listening on :8080",
            ],
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].ends_with("exit status 2"));
        assert_eq!(out[1], "listening on :8080");
    }

    #[test]
    fn timestamps_start_records() {
        let out = join(
            MultilinePreset::Timestamp,
            &[
                "2026-11-20T09:00:01Z first",
                "  detail",
                "[2026-11-20 09:00:02] second",
                "E1120 09:00:03.123 klog line",
            ],
        );
        assert_eq!(
            out,
            [
                "2026-11-20T09:00:01Z first\n  detail",
                "[2026-11-20 09:00:02] second",
                "E1120 09:00:03.123 klog line"
            ]
        );
    }

    #[test]
    fn rules_pick_containers_and_problems_are_listed() {
        let configs: Vec<MultilineConfig> = serde_yaml_ng::from_str(
            "- {match: {namespace: shop, container: api}, preset: java}\n- {start: '^\\S', timeout: 500ms}\n",
        )
        .unwrap();
        let rules = MultilineRules::new("pod_logs", &configs).unwrap();
        assert!(rules.joiner_for("shop", "api-1", "api").is_some());
        assert!(
            rules.joiner_for("web", "x", "y").is_some(),
            "second rule: everything"
        );
        assert!(rules.joiner_for_annotation("^START").is_some());
        assert!(rules.joiner_for_annotation("(bad").is_none());
        let configs: Vec<MultilineConfig> = serde_yaml_ng::from_str(
            "- {preset: java, start: x}\n- {start: '(x', max_lines: 0, max_bytes: 1}\n",
        )
        .unwrap();
        let problems = MultilineRules::new("pod_logs", &configs).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(serde_yaml_ng::from_str::<Vec<MultilineConfig>>("- {preset: cobol}\n").is_err());
    }
}
