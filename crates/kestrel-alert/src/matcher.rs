//! Label matchers with Alertmanager's semantics: `=`, `!=`, `=~`, `!~`, regexes anchored at
//! both ends, a missing label reading as the empty string; parsed from Alertmanager's
//! `name="value"` string syntax and from the older `match`/`match_re` maps.
//!
//! The string syntax is parsed by hand: it is a few lines, and no maintained crate implements
//! Alertmanager's matcher grammar.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One condition on one label.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The value compiled as `^(?:value)$` for the regex operators.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Matcher::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A matcher that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid matcher {text:?}: {reason}")]
pub struct MatcherError {
    pub text: String,
    pub reason: String,
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Matcher {
    /// A matcher from its parts; fails on a bad label name or regex.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, MatcherError> {
        let err = |reason: String| MatcherError {
            text: format!("{name}{}{value:?}", op.as_str()),
            reason,
        };
        if !is_label_name(name) {
            return Err(err(format!(
                "{name:?} is not a label name (letters, digits and _, not starting with a digit)"
            )));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| err(format!("bad regex: {e}")))?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Parses `name="value"`, `name!=value`, `name=~"re"`, `name!~"re"` (quotes optional).
    pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
        let err = |reason: &str| MatcherError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        let name_end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| err("no operator (=, !=, =~ or !~)"))?;
        let (name, rest) = t.split_at(name_end);
        let rest = rest.trim_start();
        let (op, raw) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchOp::Regex, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchOp::Equal, r)
        } else {
            return Err(err("no operator (=, !=, =~ or !~)"));
        };
        let value = unquote(raw.trim()).map_err(|r| err(&r))?;
        Matcher::new(name, op, &value).map_err(|e| MatcherError {
            text: text.to_string(),
            reason: e.reason,
        })
    }

    /// Parses a list like `{a="b", c=~"d"}` (braces optional), as `amtool` accepts.
    pub fn parse_list(text: &str) -> Result<Vec<Matcher>, MatcherError> {
        let t = text.trim();
        let t = t
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(t);
        split_outside_quotes(t)
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(Matcher::parse)
            .collect()
    }

    /// Whether the labels satisfy this matcher (a missing label is the empty string).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

/// Whether every matcher holds.
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

fn unquote(raw: &str) -> Result<String, String> {
    let Some(inner) = raw.strip_prefix('"') else {
        return Ok(raw.to_string());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                return if chars.as_str().trim().is_empty() {
                    Ok(out)
                } else {
                    Err("text after the closing quote".into())
                };
            }
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(c) => out.push(c),
                None => return Err("unfinished escape".into()),
            },
            c => out.push(c),
        }
    }
    Err("missing closing quote".into())
}

fn split_outside_quotes(t: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, c) in t.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                parts.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&t[start..]);
    parts
}

/// Matchers from the three ways a config may write them: `matchers: ['a="b"']`, the older
/// `match: {a: b}` and `match_re: {a: "b.*"}`.
pub fn from_config(
    matchers: &[String],
    match_eq: &BTreeMap<String, String>,
    match_re: &BTreeMap<String, String>,
) -> Result<Vec<Matcher>, Vec<MatcherError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for m in matchers {
        match Matcher::parse_list(m) {
            Ok(ms) => out.extend(ms),
            Err(e) => errors.push(e),
        }
    }
    for (k, v) in match_eq {
        match Matcher::new(k, MatchOp::Equal, v) {
            Ok(m) => out.push(m),
            Err(e) => errors.push(e),
        }
    }
    for (k, v) in match_re {
        match Matcher::new(k, MatchOp::Regex, v) {
            Ok(m) => out.push(m),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_alertmanager_syntax_and_matches() {
        let l = labels(&[("rule", "Exec Into Pod"), ("namespace", "shop")]);
        for (text, want) in [
            (r#"rule="Exec Into Pod""#, true),
            (r#"rule = "Exec Into Pod""#, true),
            ("namespace=shop", true),
            ("namespace!=shop", false),
            (r#"namespace=~"sh.*""#, true),
            (r#"namespace=~"h""#, false), // anchored
            (r#"namespace!~"kube-.*""#, true),
            (r#"missing="""#, true), // a missing label is ""
            (r#"missing!="""#, false),
            (r#"rule=~"Exec.*|Attach.*""#, true),
        ] {
            let m = Matcher::parse(text).unwrap();
            assert_eq!(m.matches(&l), want, "{text}");
        }
        let m = Matcher::parse(r#"msg="say \"hi\", ok""#).unwrap();
        assert_eq!(m.value, r#"say "hi", ok"#);
        assert_eq!(Matcher::parse(&m.to_string()).unwrap(), m);
    }

    #[test]
    fn lists_and_bad_input() {
        let ms = Matcher::parse_list(r#"{a="1,2", b!~"x"}"#).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].value, "1,2");
        for bad in ["a", "a~b", "1a=b", r#"a="x"#, r#"a=~"(""#, r#"a="x" y"#] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
        let errs = from_config(
            &["a=b".into(), "oops".into()],
            &[("c".to_string(), "d".to_string())].into(),
            &[("e".to_string(), "(".to_string())].into(),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2);
    }
}
