//! Redaction of secrets in message text, on the node, before anything reaches the disk buffer.
//!
//! Built-in patterns (on by default) find bearer tokens and `Authorization` headers, JWTs, AWS
//! access key ids and secret keys, private key PEM blocks, passwords in query strings and URLs,
//! and GitHub and Slack tokens; configured rules add regexes of their own. Each match is replaced
//! by `[REDACTED:<name>]` (a built-in keeps the key or header name before the secret) and
//! counted by pattern name.
//!
//! Cost: almost every log line holds no secret, so the common case must stay cheap. Each
//! built-in pattern has literal anchors (`eyJ`, `AKIA`, `-----BEGIN`, `bearer`, ...) that any
//! match must contain; one Aho–Corasick pass over the line (case-insensitive) finds which
//! patterns may match, and only those regexes run. Configured rules have no known anchors:
//! one `RegexSet` pass tells which of them match at all.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet};
use serde::Deserialize;

/// `redaction:` in the agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    /// Apply the built-in patterns (see [`BUILTIN_NAMES`]).
    #[serde(default = "yes")]
    pub builtin: bool,
    /// Built-in patterns to leave off, by name (like `password`).
    #[serde(default)]
    pub disable_builtin: Vec<String>,
    /// Patterns of your own, applied after the built-in ones.
    #[serde(default)]
    pub rules: Vec<RedactionRule>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            builtin: true,
            disable_builtin: Vec::new(),
            rules: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// One configured redaction rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionRule {
    /// The rule's name, in metrics and in the default replacement.
    pub name: String,
    /// Regular expression (Rust `regex` syntax) of the text to replace.
    pub pattern: String,
    /// What replaces each match; `$1`, `${name}` refer to the pattern's groups. Default
    /// `[REDACTED:<name>]`.
    #[serde(default)]
    pub replacement: Option<String>,
}

/// A built-in pattern: its name, the regex, whether group 1 (a key or header name before the
/// secret) is kept, and literals one of which every match contains.
struct Builtin {
    name: &'static str,
    pattern: &'static str,
    keep_prefix: bool,
    /// Text the match ends with that is kept (the regex crate has no look-ahead).
    keep_suffix: &'static str,
    anchors: &'static [&'static str],
    /// The anchors are words people write in any case (`Authorization`, `PASSWORD=`).
    anchors_any_case: bool,
    /// When not empty, one of these must be in the text too before the regex runs: an anchor
    /// as common as `://` (every URL) would otherwise run the regex on most access logs.
    requires: &'static [&'static str],
}

/// Token characters of secrets in text: never a quote, backslash, space or separator, so a
/// replacement inside a JSON string or a header keeps its quoting.
const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "private_key",
        // To the END line, or to the end of the text when the block was cut.
        pattern: r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?s:.*?)(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\z)",
        keep_prefix: false,
        keep_suffix: "",
        anchors: &["-----BEGIN"],
        anchors_any_case: false,
        requires: &[],
    },
    Builtin {
        name: "authorization",
        pattern: r#"(?i)(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:basic|bearer|token|digest|negotiate)\s+)?)[^\s"'\\,;]{4,}"#,
        keep_prefix: true,
        keep_suffix: "",
        anchors: &["authorization"],
        anchors_any_case: true,
        requires: &[],
    },
    Builtin {
        name: "bearer",
        pattern: r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{8,}=*",
        keep_prefix: true,
        keep_suffix: "",
        anchors: &["bearer"],
        anchors_any_case: true,
        requires: &[],
    },
    Builtin {
        name: "jwt",
        pattern: r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        keep_prefix: false,
        keep_suffix: "",
        anchors: &["eyJ"],
        anchors_any_case: false,
        requires: &[],
    },
    Builtin {
        name: "aws_access_key_id",
        pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)[A-Z0-9]{16}\b",
        keep_prefix: false,
        keep_suffix: "",
        anchors: &[
            "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA",
            "ASCA",
        ],
        anchors_any_case: false,
        requires: &[],
    },
    Builtin {
        name: "aws_secret_access_key",
        pattern: r#"(?i)((?:aws_?)?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?)[A-Za-z0-9/+=]{40}\b"#,
        keep_prefix: true,
        keep_suffix: "",
        anchors: &["secret"],
        anchors_any_case: true,
        requires: &["key", "Key", "KEY"],
    },
    Builtin {
        name: "github_token",
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        keep_prefix: false,
        keep_suffix: "",
        anchors: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        anchors_any_case: false,
        requires: &[],
    },
    Builtin {
        name: "slack_token",
        pattern: r"\bxox[abposr]-[A-Za-z0-9-]{10,250}|hooks\.slack\.com/services/[A-Za-z0-9/]{16,}",
        keep_prefix: false,
        keep_suffix: "",
        anchors: &["xox", "hooks.slack.com"],
        anchors_any_case: false,
        requires: &[],
    },
    Builtin {
        name: "password",
        // `password=...` in query strings, form bodies and key=value logs.
        pattern: r"(?i)(\b(?:password|passwd|pwd|passphrase)=)[^\s&'\x22\\#;,]+",
        keep_prefix: true,
        keep_suffix: "",
        anchors: &["password=", "passwd=", "pwd=", "passphrase="],
        anchors_any_case: true,
        requires: &[],
    },
    Builtin {
        name: "url_password",
        // `scheme://user:password@host`.
        pattern: r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\x22\\]+:)[^\s/@'\x22\\]+@",
        keep_prefix: true,
        keep_suffix: "@",
        anchors: &["://"],
        anchors_any_case: false,
        requires: &["@"],
    },
];

/// Names of the built-in patterns, in the order they are applied.
pub const BUILTIN_NAMES: &[&str] = &[
    "private_key",
    "authorization",
    "bearer",
    "jwt",
    "aws_access_key_id",
    "aws_secret_access_key",
    "github_token",
    "slack_token",
    "password",
    "url_password",
];

/// A compiled pattern.
#[derive(Debug)]
struct Compiled {
    name: String,
    regex: Regex,
    replacement: String,
    /// See [`Builtin::requires`].
    requires: &'static [&'static str],
}

/// Redacts text; built from a [`RedactionConfig`] once and shared.
#[derive(Debug)]
pub struct Redactor {
    /// Built-in patterns in use.
    builtins: Vec<Compiled>,
    /// Anchors of the built-ins in use (pattern id → index into `builtins` through
    /// `anchor_owner`). Leftmost-first, so the automaton uses its SIMD (Teddy) prefilter; no
    /// two anchors overlap in a way that would hide one behind another.
    anchors: Option<AhoCorasick>,
    anchor_owner: Vec<usize>,
    rules: Vec<Compiled>,
    rule_set: Option<RegexSet>,
}

/// Matches replaced, by pattern index (built-ins first, then rules).
pub type RedactionCounts = Vec<u64>;

impl Redactor {
    /// Compiles `config`; every problem (unknown built-in name, bad regex, duplicate name) is
    /// returned at once.
    pub fn new(config: &RedactionConfig) -> Result<Redactor, Vec<String>> {
        let mut problems = Vec::new();
        for name in &config.disable_builtin {
            if !BUILTIN_NAMES.contains(&name.as_str()) {
                problems.push(format!(
                    "redaction.disable_builtin: unknown built-in pattern {name:?} (known: {})",
                    BUILTIN_NAMES.join(", ")
                ));
            }
        }
        let mut builtins = Vec::new();
        let mut anchor_texts: Vec<String> = Vec::new();
        let mut anchor_owner = Vec::new();
        if config.builtin {
            for b in BUILTINS
                .iter()
                .filter(|b| !config.disable_builtin.iter().any(|d| d == b.name))
            {
                let index = builtins.len();
                builtins.push(Compiled {
                    name: b.name.to_string(),
                    regex: Regex::new(b.pattern).expect("built-in redaction patterns compile"),
                    replacement: format!(
                        "{}[REDACTED:{}]{}",
                        if b.keep_prefix { "${1}" } else { "" },
                        b.name,
                        b.keep_suffix
                    ),
                    requires: b.requires,
                });
                for a in b.anchors {
                    let variants = if b.anchors_any_case {
                        case_variants(a)
                    } else {
                        vec![a.to_string()]
                    };
                    for variant in variants {
                        if !anchor_texts.contains(&variant) {
                            anchor_texts.push(variant);
                            anchor_owner.push(index);
                        }
                    }
                }
            }
        }
        let anchors = (!anchor_texts.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .build(&anchor_texts)
                .expect("redaction anchors build")
        });
        let mut rules = Vec::new();
        let mut names: Vec<&str> = builtins.iter().map(|b| b.name.as_str()).collect();
        for (i, r) in config.rules.iter().enumerate() {
            if r.name.is_empty() {
                problems.push(format!("redaction.rules[{i}]: name must not be empty"));
            } else if names.contains(&r.name.as_str()) || BUILTIN_NAMES.contains(&r.name.as_str()) {
                problems.push(format!(
                    "redaction.rules[{i}]: the name {:?} is taken; give each rule its own",
                    r.name
                ));
            }
            names.push(&r.name);
            match Regex::new(&r.pattern) {
                Ok(regex) => {
                    if regex.is_match("") {
                        problems.push(format!(
                            "redaction.rules[{i}] ({}): the pattern {:?} matches empty text",
                            r.name, r.pattern
                        ));
                    }
                    rules.push(Compiled {
                        name: r.name.clone(),
                        regex,
                        replacement: r
                            .replacement
                            .clone()
                            .unwrap_or_else(|| format!("[REDACTED:{}]", r.name)),
                        requires: &[],
                    });
                }
                Err(e) => problems.push(format!(
                    "redaction.rules[{i}] ({}): invalid pattern: {e}",
                    r.name
                )),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let rule_set = (!rules.is_empty()).then(|| {
            RegexSet::new(rules.iter().map(|r| r.regex.as_str())).expect("each rule compiled")
        });
        Ok(Redactor {
            builtins,
            anchors,
            anchor_owner,
            rules,
            rule_set,
        })
    }

    /// A redactor that changes nothing.
    pub fn disabled() -> Redactor {
        Redactor::new(&RedactionConfig {
            builtin: false,
            disable_builtin: Vec::new(),
            rules: Vec::new(),
        })
        .expect("an empty configuration is valid")
    }

    /// Whether any pattern is in use.
    pub fn is_active(&self) -> bool {
        !self.builtins.is_empty() || !self.rules.is_empty()
    }

    /// Pattern names, in the order of [`RedactionCounts`].
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.builtins
            .iter()
            .chain(&self.rules)
            .map(|c| c.name.as_str())
    }

    /// Counters for [`Redactor::redact`], one per pattern.
    pub fn new_counts(&self) -> RedactionCounts {
        vec![0; self.builtins.len() + self.rules.len()]
    }

    /// `text` with every secret replaced; borrowed when nothing matched. Matches are added to
    /// `counts`.
    pub fn redact<'a>(&self, text: &'a str, counts: &mut RedactionCounts) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        if let Some(anchors) = &self.anchors {
            // Which built-ins may match: a bit per pattern (there are fewer than 64). A clean
            // line is one SIMD scan that finds nothing.
            let mut candidates = 0u64;
            for m in anchors.find_iter(text) {
                candidates |= 1 << self.anchor_owner[m.pattern().as_usize()];
            }
            while candidates != 0 {
                let i = candidates.trailing_zeros() as usize;
                candidates &= candidates - 1;
                let pattern = &self.builtins[i];
                if pattern.requires.is_empty()
                    || pattern
                        .requires
                        .iter()
                        .any(|r| memchr::memmem::find(out.as_bytes(), r.as_bytes()).is_some())
                {
                    apply(pattern, &mut out, &mut counts[i]);
                }
            }
        }
        if let Some(set) = &self.rule_set {
            let matched = set.matches(&out);
            if matched.matched_any() {
                let offset = self.builtins.len();
                for i in matched.iter() {
                    apply(&self.rules[i], &mut out, &mut counts[offset + i]);
                }
            }
        }
        out
    }

    /// Redacts every string in a JSON value (an audit event), keeping it valid JSON.
    pub fn redact_json(&self, value: &mut serde_json::Value, counts: &mut RedactionCounts) {
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s, counts) {
                    *s = r;
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    self.redact_json(v, counts);
                }
            }
            serde_json::Value::Object(map) => {
                for v in map.values_mut() {
                    self.redact_json(v, counts);
                }
            }
            _ => {}
        }
    }
}

/// An anchor as written, in lower case, capitalised and in upper case. Case-sensitive anchors
/// keep the automaton on its SIMD prefilter (an ASCII case-insensitive one falls back to a
/// byte-at-a-time scan, several times slower on clean lines); the regexes themselves ignore
/// case where the secret's syntax does (`BEARER`, `Password=`). A key written in mixed case
/// (`PassWord=`) is not seen.
fn case_variants(anchor: &str) -> Vec<String> {
    let lower = anchor.to_ascii_lowercase();
    let mut capital = lower.clone();
    if let Some(first) = capital.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let mut out = vec![anchor.to_string()];
    for v in [lower, capital, anchor.to_ascii_uppercase()] {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Replaces every match of `pattern` in `text`, counting them.
fn apply(pattern: &Compiled, text: &mut Cow<'_, str>, count: &mut u64) {
    let mut n = 0u64;
    let replaced = pattern
        .regex
        .replace_all(text, |caps: &regex::Captures<'_>| {
            n += 1;
            let mut s = String::new();
            caps.expand(&pattern.replacement, &mut s);
            s
        });
    if let Cow::Owned(r) = replaced {
        *count += n;
        *text = Cow::Owned(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(r: &Redactor, text: &str) -> (String, Vec<(String, u64)>) {
        let mut counts = r.new_counts();
        let out = r.redact(text, &mut counts).into_owned();
        let hits = r
            .names()
            .zip(counts)
            .filter(|(_, c)| *c > 0)
            .map(|(n, c)| (n.to_string(), c))
            .collect();
        (out, hits)
    }

    fn builtin() -> Redactor {
        Redactor::new(&RedactionConfig::default()).unwrap()
    }

    #[test]
    fn clean_lines_are_borrowed_untouched() {
        let r = builtin();
        let mut counts = r.new_counts();
        for line in [
            "GET /api/v1/orders 200 12ms",
            "connected to https://db.internal:5432/shop",
            "secret rotation finished for 3 keys",
            "user logged in with password reset flow",
        ] {
            assert!(
                matches!(r.redact(line, &mut counts), Cow::Borrowed(_)),
                "{line}"
            );
        }
        assert!(counts.iter().all(|c| *c == 0));
    }

    #[test]
    fn each_builtin_pattern_is_replaced_and_counted() {
        let r = builtin();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let cases: &[(&str, &str, &str)] = &[
            (
                "curl -H 'Authorization: Bearer abcdef0123456789xyz' https://x",
                "curl -H 'Authorization: Bearer [REDACTED:authorization]' https://x",
                "authorization",
            ),
            (
                "login PASSWORD=hunter2 ok",
                "login PASSWORD=[REDACTED:password] ok",
                "password",
            ),
            (
                "BEARER abcdefgh12345678 sent",
                "BEARER [REDACTED:bearer] sent",
                "bearer",
            ),
            (
                "sending bearer abcdef0123456789xyz== upstream",
                "sending bearer [REDACTED:bearer] upstream",
                "bearer",
            ),
            (
                &format!("token={jwt} ok"),
                "token=[REDACTED:jwt] ok",
                "jwt",
            ),
            (
                "using key AKIAIOSFODNN7EXAMPLE for s3",
                "using key [REDACTED:aws_access_key_id] for s3",
                "aws_access_key_id",
            ),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY done",
                "aws_secret_access_key = [REDACTED:aws_secret_access_key] done",
                "aws_secret_access_key",
            ),
            (
                "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY----- loaded",
                "key: [REDACTED:private_key] loaded",
                "private_key",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
                "[REDACTED:private_key]",
                "private_key",
            ),
            (
                "GET /login?user=bob&password=hunter2&next=/ 302",
                "GET /login?user=bob&password=[REDACTED:password]&next=/ 302",
                "password",
            ),
            (
                "dsn postgres://app:s3cr3t@db:5432/shop",
                "dsn postgres://app:[REDACTED:url_password]@db:5432/shop",
                "url_password",
            ),
            (
                "push with ghp_0123456789abcdefghijABCDEFGHIJ0123456789 now",
                "push with [REDACTED:github_token] now",
                "github_token",
            ),
            (
                "slack xoxb-1234567890-abcdefghij posted",
                "slack [REDACTED:slack_token] posted",
                "slack_token",
            ),
        ];
        for (input, want, name) in cases {
            let (out, hits) = redact(&r, input);
            assert_eq!(&out, want, "{name}");
            assert_eq!(hits, vec![(name.to_string(), 1)], "{input}");
        }
    }

    #[test]
    fn json_stays_valid_and_names_are_kept() {
        let r = builtin();
        let mut v = serde_json::json!({
            "requestURI": "/api?password=x1&y=2",
            "headers": {"Authorization": "Bearer abcdefgh12345678"},
            "n": 3,
        });
        let mut counts = r.new_counts();
        r.redact_json(&mut v, &mut counts);
        assert_eq!(v["requestURI"], "/api?password=[REDACTED:password]&y=2");
        assert_eq!(
            v["headers"]["Authorization"], "Bearer [REDACTED:bearer]",
            "{v}"
        );
        let (out, _) = redact(&r, r#"{"authorization":"Basic dXNlcjpwYXNz","a":1}"#);
        assert_eq!(
            out,
            r#"{"authorization":"Basic [REDACTED:authorization]","a":1}"#
        );
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }

    #[test]
    fn configured_rules_and_disabled_builtins() {
        let config: RedactionConfig = serde_yaml_ng::from_str(
            "disable_builtin: [password]\nrules:\n  - {name: card, pattern: '\\b\\d{4}-\\d{4}-\\d{4}-\\d{4}\\b'}\n  - {name: email, pattern: '([a-z]+)@example\\.com', replacement: '$1@[hidden]'}\n",
        )
        .unwrap();
        let r = Redactor::new(&config).unwrap();
        let (out, hits) = redact(
            &r,
            "paid 4111-1111-1111-1111 by bob@example.com password=kept",
        );
        assert_eq!(out, "paid [REDACTED:card] by bob@[hidden] password=kept");
        assert_eq!(
            hits,
            vec![("card".to_string(), 1), ("email".to_string(), 1)]
        );
        let off = Redactor::new(&RedactionConfig {
            builtin: false,
            ..RedactionConfig::default()
        })
        .unwrap();
        assert!(!off.is_active());
    }

    #[test]
    fn every_problem_is_reported() {
        let config: RedactionConfig = serde_yaml_ng::from_str(
            "disable_builtin: [nope]\nrules:\n  - {name: jwt, pattern: 'x'}\n  - {name: bad, pattern: '(x'}\n  - {name: empty, pattern: 'a*'}\n",
        )
        .unwrap();
        let problems = Redactor::new(&config).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("nope"));
        assert!(problems[1].contains("taken"));
        assert!(problems[2].contains("invalid pattern"));
        assert!(problems[3].contains("matches empty"));
    }

    #[test]
    fn builtin_names_list_every_builtin() {
        let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        assert_eq!(names, BUILTIN_NAMES);
    }
}
