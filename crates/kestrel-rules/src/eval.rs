//! Compiled conditions: a tree of field slots and prebuilt matchers, evaluated against the
//! per-event [`Extractor`] cache.

use std::collections::HashSet;

use aho_corasick::AhoCorasick;
use regex::Regex;

use crate::fields::{Extractor, Val};

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Check { slot: usize, matcher: Matcher },
}

/// Sets of literals: a linear scan for a few items, a hash set beyond.
#[derive(Debug, Clone)]
pub enum StrSet {
    Small(Box<[Box<str>]>),
    Hashed(HashSet<Box<str>>),
}

impl StrSet {
    pub fn new(items: Vec<String>) -> StrSet {
        if items.len() <= 8 {
            StrSet::Small(items.into_iter().map(String::into_boxed_str).collect())
        } else {
            StrSet::Hashed(items.into_iter().map(String::into_boxed_str).collect())
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| &**x == s),
            StrSet::Hashed(h) => h.contains(s),
        }
    }

    pub fn items(&self) -> Vec<String> {
        match self {
            StrSet::Small(v) => v.iter().map(|s| s.to_string()).collect(),
            StrSet::Hashed(h) => h.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// A prebuilt test on one field's value(s).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exists,
    Eq(Box<str>),
    Ne(Box<str>),
    /// Every value is in the set (and there is at least one).
    In(StrSet),
    /// Some value is in the set.
    Intersects(StrSet),
    Contains(Box<str>),
    /// Some value contains one of several needles (merged `contains` alternatives).
    ContainsAny(AhoCorasick),
    IContains(AhoCorasick),
    StartsWith(Box<str>),
    /// Merged `startswith` alternatives.
    StartsWithAny(Box<[Box<str>]>),
    EndsWith(Box<str>),
    Num(NumOp, f64),
    Regex(Regex),
    PMatch(Box<[Box<str>]>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumOp {
    Lt,
    Le,
    Gt,
    Ge,
}

fn pmatch(prefix: &str, path: &str) -> bool {
    path == prefix
        || (path.starts_with(prefix)
            && (prefix.ends_with('/') || path.as_bytes().get(prefix.len()) == Some(&b'/')))
}

impl Matcher {
    fn one(&self, v: &str) -> bool {
        match self {
            Matcher::Exists => true,
            Matcher::Eq(s) => v == &**s,
            Matcher::Ne(s) => v != &**s,
            Matcher::In(set) | Matcher::Intersects(set) => set.contains(v),
            Matcher::Contains(s) => v.contains(&**s),
            Matcher::ContainsAny(ac) | Matcher::IContains(ac) => ac.is_match(v),
            Matcher::StartsWith(s) => v.starts_with(&**s),
            Matcher::StartsWithAny(v2) => v2.iter().any(|p| v.starts_with(&**p)),
            Matcher::EndsWith(s) => v.ends_with(&**s),
            Matcher::Num(op, rhs) => match v.trim().parse::<f64>() {
                Ok(x) => match op {
                    NumOp::Lt => x < *rhs,
                    NumOp::Le => x <= *rhs,
                    NumOp::Gt => x > *rhs,
                    NumOp::Ge => x >= *rhs,
                },
                Err(_) => false,
            },
            Matcher::Regex(r) => r.is_match(v),
            Matcher::PMatch(ps) => ps.iter().any(|p| pmatch(p, v)),
        }
    }

    /// Falco semantics: an unavailable field fails every test; a list field passes `in` when all
    /// its values are in the set, `!=` when none equals, and any other test when some value does.
    pub fn test(&self, val: &Val<'_>) -> bool {
        match val {
            Val::NA => false,
            Val::One(v) => self.one(v),
            Val::Many(vs) => match self {
                Matcher::In(_) => !vs.is_empty() && vs.iter().all(|v| self.one(v)),
                Matcher::Ne(s) => vs.iter().all(|v| v != &**s),
                Matcher::Exists => !vs.is_empty(),
                _ => vs.iter().any(|v| self.one(v)),
            },
        }
    }
}

impl Node {
    pub fn eval(&self, x: &mut Extractor<'_, '_>) -> bool {
        match self {
            Node::And(v) => v.iter().all(|n| n.eval(x)),
            Node::Or(v) => v.iter().any(|n| n.eval(x)),
            Node::Not(n) => !n.eval(x),
            Node::Check { slot, matcher } => matcher.test(x.get(*slot)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn many(v: &[&'static str]) -> Val<'static> {
        Val::Many(v.iter().map(|s| Cow::Borrowed(*s)).collect())
    }

    #[test]
    fn list_semantics() {
        let set = || StrSet::new(vec!["a".into(), "b".into()]);
        assert!(Matcher::In(set()).test(&many(&["a", "b"])));
        assert!(!Matcher::In(set()).test(&many(&["a", "c"])));
        assert!(!Matcher::In(set()).test(&many(&[])));
        assert!(Matcher::Intersects(set()).test(&many(&["c", "b"])));
        assert!(!Matcher::Intersects(set()).test(&many(&["c"])));
        assert!(Matcher::Intersects(set()).test(&Val::One(Cow::Borrowed("a"))));
        assert!(Matcher::Eq("b".into()).test(&many(&["a", "b"])));
        assert!(!Matcher::Ne("b".into()).test(&many(&["a", "b"])));
        assert!(!Matcher::Eq("x".into()).test(&Val::NA));
        assert!(!Matcher::Ne("x".into()).test(&Val::NA));
        assert!(!Matcher::Exists.test(&Val::NA));
    }

    #[test]
    fn scalar_operators() {
        let v = Val::One(Cow::Borrowed("/etc/passwd"));
        assert!(Matcher::PMatch(vec!["/etc".into()].into()).test(&v));
        assert!(!Matcher::PMatch(vec!["/et".into()].into()).test(&v));
        assert!(Matcher::StartsWith("/etc".into()).test(&v));
        assert!(Matcher::EndsWith("wd".into()).test(&v));
        assert!(Matcher::Contains("c/p".into()).test(&v));
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(["PASS"])
            .unwrap();
        assert!(Matcher::IContains(ac).test(&v));
        let n = Val::One(Cow::Borrowed("403"));
        assert!(Matcher::Num(NumOp::Ge, 400.0).test(&n));
        assert!(!Matcher::Num(NumOp::Lt, 400.0).test(&n));
        assert!(!Matcher::Num(NumOp::Lt, 400.0).test(&Val::One(Cow::Borrowed("x"))));
    }
}
