//! Compiled conditions: a tree of field slots and prebuilt matchers, evaluated against the
//! per-event [`Extractor`] cache.

// foldhash: these sets are built from rule literals and only looked up with event values, so a
// fast hasher is safe here (nothing an event sends can grow them).
use foldhash::HashSet;

use aho_corasick::AhoCorasick;
use regex::Regex;

use crate::fields::{Extractor, Val};

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Check {
        slot: usize,
        matcher: Matcher,
        /// Identical checks (same field, same test) share an id, so that a check inlined into
        /// many rules by a macro (`kevt`, `pod`, ...) runs once per event.
        id: u32,
    },
    /// A comparison with another field of the same event (`val(field)`).
    CheckField {
        slot: usize,
        op: DynOp,
        rhs: usize,
    },
}

/// The id of a check not yet interned (evaluated without the per-event cache).
pub const NO_CHECK_ID: u32 = u32::MAX;

/// Operators usable with a `val(field)` right-hand side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynOp {
    Eq,
    Ne,
    Num(NumOp),
    In,
    Intersects,
    Contains,
    IContains,
    StartsWith,
    EndsWith,
}

impl DynOp {
    fn one(self, l: &str, r: &str) -> bool {
        match self {
            DynOp::Eq | DynOp::In | DynOp::Intersects => l == r,
            DynOp::Ne => l != r,
            DynOp::Num(op) => match (l.trim().parse::<f64>(), r.trim().parse::<f64>()) {
                (Ok(a), Ok(b)) => match op {
                    NumOp::Lt => a < b,
                    NumOp::Le => a <= b,
                    NumOp::Gt => a > b,
                    NumOp::Ge => a >= b,
                },
                _ => false,
            },
            DynOp::Contains => l.contains(r),
            DynOp::IContains => l.to_lowercase().contains(&r.to_lowercase()),
            DynOp::StartsWith => l.starts_with(r),
            DynOp::EndsWith => l.ends_with(r),
        }
    }

    /// Falco semantics with a field on the right: unavailable on either side fails; `in` means
    /// every left value is among the right values, `intersects` and the rest mean some pair
    /// matches (`!=`: no pair is equal).
    pub fn test(self, lhs: &Val<'_>, rhs: &Val<'_>) -> bool {
        let (l, r) = (vals(lhs), vals(rhs));
        if l.is_empty() || r.is_empty() {
            return false;
        }
        match self {
            DynOp::In => l.iter().all(|a| r.iter().any(|b| self.one(a, b))),
            DynOp::Ne => l.iter().all(|a| r.iter().all(|b| self.one(a, b))),
            _ => l.iter().any(|a| r.iter().any(|b| self.one(a, b))),
        }
    }
}

fn vals<'a>(v: &'a Val<'_>) -> Vec<&'a str> {
    match v {
        Val::NA => Vec::new(),
        Val::One(s) => vec![s.as_ref()],
        Val::Many(vs) => vs.iter().map(|s| s.as_ref()).collect(),
    }
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

    /// The items: in written order for a small set, sorted for a hashed one.
    pub fn items(&self) -> Vec<String> {
        match self {
            StrSet::Small(v) => v.iter().map(|s| s.to_string()).collect(),
            StrSet::Hashed(h) => {
                let mut v: Vec<String> = h.iter().map(|s| s.to_string()).collect();
                v.sort();
                v
            }
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
    ContainsAny(AhoCorasick, Box<[Box<str>]>),
    /// Case-insensitive containment (ASCII), with the needle for display.
    IContains(AhoCorasick, Box<str>),
    StartsWith(Box<str>),
    /// Merged `startswith` alternatives.
    StartsWithAny(Box<[Box<str>]>),
    EndsWith(Box<str>),
    /// The value's bytes contain these bytes.
    BContains(Box<[u8]>),
    /// The value's bytes start with these bytes.
    BStartsWith(Box<[u8]>),
    Num(NumOp, f64),
    Regex(Regex),
    PMatch(Box<[Box<str>]>),
    /// An IP field against addresses and CIDR networks (values that are no address are
    /// compared as text with `exact`).
    Net(NetSet),
}

/// How a [`Matcher::Net`] combines its operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetOp {
    Eq,
    Ne,
    In,
    Intersects,
}

/// Addresses and networks of an IP comparison.
#[derive(Debug, Clone)]
pub struct NetSet {
    pub op: NetOp,
    pub nets: Box<[ipnet::IpNet]>,
    pub exact: StrSet,
    /// The operand as written, for display.
    pub written: Box<[Box<str>]>,
}

impl NetSet {
    fn hit(&self, v: &str) -> bool {
        match v.parse::<std::net::IpAddr>() {
            Ok(ip) => self.nets.iter().any(|n| n.contains(&ip)),
            Err(_) => self.exact.contains(v),
        }
    }
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
            Matcher::ContainsAny(ac, _) | Matcher::IContains(ac, _) => ac.is_match(v),
            Matcher::StartsWith(s) => v.starts_with(&**s),
            Matcher::StartsWithAny(v2) => v2.iter().any(|p| v.starts_with(&**p)),
            Matcher::EndsWith(s) => v.ends_with(&**s),
            Matcher::BContains(b) => memchr::memmem::find(v.as_bytes(), b).is_some(),
            Matcher::BStartsWith(b) => v.as_bytes().starts_with(b),
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
            Matcher::Net(n) => n.hit(v) != (n.op == NetOp::Ne),
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
                Matcher::Net(n) if n.op == NetOp::In => {
                    !vs.is_empty() && vs.iter().all(|v| self.one(v))
                }
                Matcher::Net(n) if n.op == NetOp::Ne => vs.iter().all(|v| self.one(v)),
                Matcher::Ne(s) => vs.iter().all(|v| v != &**s),
                Matcher::Exists => !vs.is_empty(),
                _ => vs.iter().any(|v| self.one(v)),
            },
        }
    }
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| !(c.is_whitespace() || "()\",'".contains(c)))
    {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| quote(&s)).collect();
    format!("({})", v.join(", "))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Matcher {
    /// The operator and operand in condition syntax (`in (a, b)`).
    pub fn describe(&self) -> String {
        let num = |op: &NumOp| match op {
            NumOp::Lt => "<",
            NumOp::Le => "<=",
            NumOp::Gt => ">",
            NumOp::Ge => ">=",
        };
        match self {
            Matcher::Exists => "exists".into(),
            Matcher::Eq(s) => format!("= {}", quote(s)),
            Matcher::Ne(s) => format!("!= {}", quote(s)),
            Matcher::In(set) => format!("in {}", list(set.items())),
            Matcher::Intersects(set) => format!("intersects {}", list(set.items())),
            Matcher::Contains(s) => format!("contains {}", quote(s)),
            Matcher::ContainsAny(_, v) => {
                format!("contains any of {}", list(v.iter().map(|s| s.to_string())))
            }
            Matcher::IContains(_, s) => format!("icontains {}", quote(s)),
            Matcher::StartsWith(s) => format!("startswith {}", quote(s)),
            Matcher::StartsWithAny(v) => {
                format!(
                    "startswith any of {}",
                    list(v.iter().map(|s| s.to_string()))
                )
            }
            Matcher::EndsWith(s) => format!("endswith {}", quote(s)),
            Matcher::BContains(b) => format!("bcontains {}", hex(b)),
            Matcher::BStartsWith(b) => format!("bstartswith {}", hex(b)),
            Matcher::Num(op, n) => format!("{} {n}", num(op)),
            Matcher::Regex(r) => format!("regex {}", quote(r.as_str())),
            Matcher::PMatch(v) => format!("pmatch {}", list(v.iter().map(|s| s.to_string()))),
            Matcher::Net(n) => {
                let items = || n.written.iter().map(|s| s.to_string());
                match n.op {
                    NetOp::Eq => format!("= {}", quote(&n.written[0])),
                    NetOp::Ne => format!("!= {}", quote(&n.written[0])),
                    NetOp::In => format!("in {}", list(items())),
                    NetOp::Intersects => format!("intersects {}", list(items())),
                }
            }
        }
    }
}

impl DynOp {
    fn symbol(self) -> &'static str {
        match self {
            DynOp::Eq => "=",
            DynOp::Ne => "!=",
            DynOp::Num(NumOp::Lt) => "<",
            DynOp::Num(NumOp::Le) => "<=",
            DynOp::Num(NumOp::Gt) => ">",
            DynOp::Num(NumOp::Ge) => ">=",
            DynOp::In => "in",
            DynOp::Intersects => "intersects",
            DynOp::Contains => "contains",
            DynOp::IContains => "icontains",
            DynOp::StartsWith => "startswith",
            DynOp::EndsWith => "endswith",
        }
    }
}

impl Node {
    /// The compiled condition in condition syntax; `name` gives each slot's field name.
    pub fn describe(&self, name: &dyn Fn(usize) -> String) -> String {
        let group = |n: &Node| match n {
            Node::Or(_) | Node::And(_) => format!("({})", n.describe(name)),
            _ => n.describe(name),
        };
        match self {
            Node::And(v) => v.iter().map(group).collect::<Vec<_>>().join(" and "),
            Node::Or(v) => v.iter().map(group).collect::<Vec<_>>().join(" or "),
            Node::Not(n) => format!("not {}", group(n)),
            Node::Check { slot, matcher, .. } => {
                format!("{} {}", name(*slot), matcher.describe())
            }
            Node::CheckField { slot, op, rhs } => {
                format!("{} {} val({})", name(*slot), op.symbol(), name(*rhs))
            }
        }
    }

    /// Gives every check an id shared with identical checks (see [`Node::Check`]).
    pub fn intern_checks(&mut self, reg: &mut crate::fields::Registry) {
        match self {
            Node::And(v) | Node::Or(v) => v.iter_mut().for_each(|n| n.intern_checks(reg)),
            Node::Not(n) => n.intern_checks(reg),
            Node::Check { slot, matcher, id } => *id = reg.check_id(*slot, &matcher.describe()),
            Node::CheckField { .. } => {}
        }
    }

    /// Every slot the condition reads.
    pub fn slots(&self, out: &mut Vec<usize>) {
        match self {
            Node::And(v) | Node::Or(v) => v.iter().for_each(|n| n.slots(out)),
            Node::Not(n) => n.slots(out),
            Node::Check { slot, .. } => out.push(*slot),
            Node::CheckField { slot, rhs, .. } => out.extend([*slot, *rhs]),
        }
    }

    pub fn eval(&self, x: &mut Extractor<'_, '_>) -> bool {
        match self {
            Node::And(v) => v.iter().all(|n| n.eval(x)),
            Node::Or(v) => v.iter().any(|n| n.eval(x)),
            Node::Not(n) => !n.eval(x),
            Node::Check { slot, matcher, id } => {
                if let Some(v) = x.check(*id) {
                    return v;
                }
                let v = matcher.test(x.get(*slot));
                x.set_check(*id, v);
                v
            }
            Node::CheckField { slot, op, rhs } => {
                let r = x.get(*rhs).clone();
                op.test(x.get(*slot), &r)
            }
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
        assert!(Matcher::IContains(ac, "PASS".into()).test(&v));
        let n = Val::One(Cow::Borrowed("403"));
        assert!(Matcher::Num(NumOp::Ge, 400.0).test(&n));
        assert!(!Matcher::Num(NumOp::Lt, 400.0).test(&n));
        assert!(!Matcher::Num(NumOp::Lt, 400.0).test(&Val::One(Cow::Borrowed("x"))));
    }
}
