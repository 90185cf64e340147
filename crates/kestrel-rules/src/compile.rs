//! Compiles parsed conditions into [`Node`] trees: inlines macros, expands lists, resolves
//! fields to cache slots, prebuilds matchers, and derives the facts the rule index uses.

use std::collections::{HashMap, HashSet};

use aho_corasick::AhoCorasick;
use regex::Regex;

use crate::diag::{ErrorKind, ItemKind, ItemRef, Location, RuleError};
use crate::eval::{DynOp, Matcher, NetOp, NetSet, Node, NumOp, StrSet, NO_CHECK_ID};
use crate::event::{Source, SourceSet};
use crate::fields::{FieldError, FieldSpec, IndexKey, Registry};
use crate::loader::{CondText, Defs, ExcItem, ExceptionDef, RuleDef, StatefulKindDef};
use crate::parse::{self, Expr, FieldRef, Literal, Op, Operand, Span};
use crate::stateful::{SeqStep, StateKind, StateSpec, SuppressSpec};

/// One segment of a rendered output.
#[derive(Debug, Clone)]
pub enum Seg {
    Lit(String),
    Field { slot: usize, name: String },
}

/// The cheap facts a rule requires; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub verb: Option<Vec<String>>,
    pub resource: Option<Vec<String>>,
    pub stage: Option<Vec<String>>,
}

/// Where a condition's text lives, for error locations.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    cond: &'a CondText,
    item: &'a ItemRef,
}

pub struct Compiler<'a> {
    defs: &'a Defs,
    files: &'a [(String, String)],
    /// The sources whose fields the item being compiled may read.
    pub sources: SourceSet,
    pub registry: &'a mut Registry,
    macros: HashMap<String, Result<Expr, RuleError>>,
    macro_items: HashMap<String, ItemRef>,
}

impl<'a> Compiler<'a> {
    /// Parses every macro once; returns the compiler and the macros' syntax errors.
    pub fn new(
        defs: &'a Defs,
        sources: &'a [(String, String)],
        registry: &'a mut Registry,
    ) -> (Self, Vec<RuleError>) {
        let mut macros = HashMap::new();
        let mut macro_items = HashMap::new();
        let mut errors = Vec::new();
        let mut names: Vec<&String> = defs.macros.keys().collect();
        names.sort_by_key(|n| {
            let m = &defs.macros[*n];
            (m.loc.file.clone(), m.loc.line)
        });
        for name in names {
            let m = &defs.macros[name];
            let item = ItemRef {
                kind: ItemKind::Macro,
                name: name.clone(),
            };
            let parsed = parse::parse_condition(&m.cond.text).map_err(|e| RuleError {
                location: m.cond.locate(sources, e.offset),
                item: Some(item.clone()),
                rule: None,
                kind: ErrorKind::Syntax(e.message),
            });
            if let Err(e) = &parsed {
                errors.push(e.clone());
            }
            macros.insert(name.clone(), parsed);
            macro_items.insert(name.clone(), item);
        }
        (
            Compiler {
                defs,
                files: sources,
                sources: SourceSet::of(Source::K8sAudit),
                registry,
                macros,
                macro_items,
            },
            errors,
        )
    }

    fn error(&self, ctx: Ctx<'_>, span: Span, kind: ErrorKind) -> Box<RuleError> {
        Box::new(RuleError {
            location: ctx.cond.locate(self.files, span.start),
            item: Some(ctx.item.clone()),
            rule: None,
            kind,
        })
    }

    /// Compiles a rule's condition plus its exceptions.
    pub fn rule(
        &mut self,
        name: &str,
        cond: &CondText,
        exceptions: &[ExceptionDef],
        loc: &Location,
    ) -> Result<Node, Box<RuleError>> {
        let item = ItemRef {
            kind: ItemKind::Rule,
            name: name.to_string(),
        };
        let ctx = Ctx { cond, item: &item };
        let expr = parse::parse_condition(&cond.text).map_err(|e| {
            self.error(
                ctx,
                Span {
                    start: e.offset,
                    end: e.offset,
                },
                ErrorKind::Syntax(e.message),
            )
        })?;
        let mut stack = Vec::new();
        let node = self.expr(&expr, ctx, &mut stack).map_err(|mut e| {
            if e.item.as_ref() != Some(&item) {
                e.rule = Some(name.to_string());
            }
            e
        })?;
        let mut excs = Vec::new();
        for ex in exceptions {
            if let Some(n) = self.exception(ex, &item, loc)? {
                excs.push(n);
            }
        }
        Ok(if excs.is_empty() {
            node
        } else {
            let exc = if excs.len() == 1 {
                excs.pop().unwrap()
            } else {
                Node::Or(excs.into())
            };
            Node::And(vec![node, Node::Not(Box::new(exc))].into())
        })
    }

    fn exception(
        &mut self,
        ex: &ExceptionDef,
        item: &ItemRef,
        loc: &Location,
    ) -> Result<Option<Node>, Box<RuleError>> {
        let fail = |msg: String| {
            Box::new(RuleError {
                location: loc.clone(),
                item: Some(item.clone()),
                rule: None,
                kind: ErrorKind::Compile(format!("exception {:?}: {msg}", ex.name)),
            })
        };
        let mut fields = Vec::new();
        for (f, c) in ex.fields.iter().zip(&ex.comps) {
            let fr = parse::parse_field(f).map_err(|e| fail(e.message))?;
            let op = parse::parse_op(c).ok_or_else(|| fail(format!("unknown comparison `{c}`")))?;
            fields.push((fr, op));
        }
        let lit = |s: &str| Literal {
            text: s.to_string(),
            quoted: false,
            span: Span::default(),
        };
        let mut alts = Vec::new();
        for row in &ex.values {
            let mut conj = Vec::new();
            for ((field, op), v) in fields.iter().zip(row) {
                let operand = match (op.takes_list(), v) {
                    (true, ExcItem::List(l)) => Operand::List(l.iter().map(|s| lit(s)).collect()),
                    (true, ExcItem::Scalar(s)) => Operand::List(vec![lit(s)]),
                    (false, ExcItem::Scalar(s)) => Operand::Single(lit(s)),
                    (false, ExcItem::List(_)) => {
                        return Err(fail(format!("a list value needs `in`, not {op:?}")))
                    }
                };
                conj.push(Expr::Compare {
                    field: field.clone(),
                    op: *op,
                    operand,
                });
            }
            alts.push(Expr::And(conj));
        }
        if alts.is_empty() {
            return Ok(None);
        }
        let cond = CondText::default();
        let ctx = Ctx { cond: &cond, item };
        let mut stack = Vec::new();
        self.expr(&Expr::Or(alts), ctx, &mut stack)
            .map(Some)
            .map_err(|e| fail(e.kind.to_string()))
    }

    fn expr(
        &mut self,
        e: &Expr,
        ctx: Ctx<'_>,
        stack: &mut Vec<String>,
    ) -> Result<Node, Box<RuleError>> {
        match e {
            Expr::And(v) => {
                let mut out = Vec::with_capacity(v.len());
                for x in v {
                    match self.expr(x, ctx, stack)? {
                        Node::And(inner) => out.extend(inner.into_vec()),
                        n => out.push(n),
                    }
                }
                Ok(if out.len() == 1 {
                    out.pop().expect("one item")
                } else {
                    Node::And(out.into())
                })
            }
            Expr::Or(v) => {
                let mut out = Vec::with_capacity(v.len());
                for x in v {
                    match self.expr(x, ctx, stack)? {
                        Node::Or(inner) => out.extend(inner.into_vec()),
                        n => out.push(n),
                    }
                }
                let mut out = merge_alternatives(out);
                Ok(if out.len() == 1 {
                    out.pop().expect("one item")
                } else {
                    Node::Or(out.into())
                })
            }
            Expr::Not(x) => Ok(Node::Not(Box::new(self.expr(x, ctx, stack)?))),
            Expr::Macro { name, span } => {
                if stack.contains(name) {
                    return Err(self.error(
                        ctx,
                        *span,
                        ErrorKind::Compile(format!("macro `{name}` refers to itself")),
                    ));
                }
                let parsed = match self.macros.get(name) {
                    None => {
                        return Err(self.error(ctx, *span, ErrorKind::UndefinedMacro(name.clone())))
                    }
                    Some(Err(_)) => {
                        return Err(self.error(
                            ctx,
                            *span,
                            ErrorKind::Compile(format!("macro `{name}` has errors")),
                        ))
                    }
                    Some(Ok(p)) => p.clone(),
                };
                let def = &self.defs.macros[name];
                let item = self.macro_items[name].clone();
                stack.push(name.clone());
                let inner = Ctx {
                    cond: &def.cond,
                    item: &item,
                };
                let r = self.expr(&parsed, inner, stack);
                stack.pop();
                r
            }
            Expr::Compare { field, op, operand } => self.compare(field, *op, operand, ctx),
        }
    }

    fn expand(&self, items: &[Literal]) -> Vec<String> {
        fn go(defs: &Defs, s: &str, depth: usize, out: &mut Vec<String>) {
            match defs.lists.get(s) {
                Some(l) if depth < 16 => {
                    for i in &l.items {
                        go(defs, i, depth + 1, out);
                    }
                }
                _ => out.push(s.to_string()),
            }
        }
        let mut out = Vec::new();
        for l in items {
            if l.quoted {
                out.push(l.text.clone());
            } else {
                go(self.defs, &l.text, 0, &mut out);
            }
        }
        out
    }

    fn compare(
        &mut self,
        field: &FieldRef,
        op: Op,
        operand: &Operand,
        ctx: Ctx<'_>,
    ) -> Result<Node, Box<RuleError>> {
        let spec = self.resolve(field, ctx)?;
        let bad = |msg: String, span: Span| self.error(ctx, span, ErrorKind::Compile(msg));
        if let Operand::Field(rhs) = operand {
            let dynop = match op {
                Op::Eq => DynOp::Eq,
                Op::Ne => DynOp::Ne,
                Op::Lt => DynOp::Num(NumOp::Lt),
                Op::Le => DynOp::Num(NumOp::Le),
                Op::Gt => DynOp::Num(NumOp::Gt),
                Op::Ge => DynOp::Num(NumOp::Ge),
                Op::In => DynOp::In,
                Op::Intersects => DynOp::Intersects,
                Op::Contains => DynOp::Contains,
                Op::IContains => DynOp::IContains,
                Op::StartsWith => DynOp::StartsWith,
                Op::EndsWith => DynOp::EndsWith,
                _ => {
                    return Err(bad(
                        format!("operator {op:?} cannot compare with `val(...)`").to_lowercase(),
                        rhs.span,
                    ))
                }
            };
            let rhs_spec = self.resolve(rhs, ctx)?;
            let slot = self.registry.slot_named(spec, field.to_string());
            let rhs = self.registry.slot_named(rhs_spec, rhs.to_string());
            return Ok(Node::CheckField {
                slot,
                op: dynop,
                rhs,
            });
        }
        let matcher = match self.net_matcher(spec.is_ip(), op, operand) {
            Some(m) => m,
            None => self.matcher(field, op, operand, ctx)?,
        };
        let slot = self.registry.slot_named(spec, field.to_string());
        Ok(Node::Check {
            slot,
            matcher,
            id: NO_CHECK_ID,
        })
    }

    fn resolve(&self, field: &FieldRef, ctx: Ctx<'_>) -> Result<FieldSpec, Box<RuleError>> {
        let spec =
            FieldSpec::resolve(&field.name, field.arg.as_deref(), self.sources).map_err(|e| {
                let kind = match e {
                    FieldError::Unknown => ErrorKind::UnknownField(field.to_string()),
                    FieldError::WrongSource(has) => ErrorKind::Compile(format!(
                        "field `{}` is not available in `{}` events (it is a field of {has})",
                        field.name, self.sources
                    )),
                    FieldError::ArgRequired => {
                        ErrorKind::Compile(format!("field `{}` requires an argument", field.name))
                    }
                    FieldError::ArgNotAllowed => {
                        ErrorKind::Compile(format!("field `{}` takes no argument", field.name))
                    }
                };
                self.error(ctx, field.span, kind)
            })?;
        Ok(spec.with_transforms(&field.transforms))
    }

    /// An IP field compared with CIDR networks: `=`, `!=`, `in`, `intersects` match by
    /// containment. `None` when the comparison is an ordinary one.
    fn net_matcher(&self, ip: bool, op: Op, operand: &Operand) -> Option<Matcher> {
        if !ip {
            return None;
        }
        let (netop, written) = match (op, operand) {
            (Op::Eq, Operand::Single(l)) => (NetOp::Eq, vec![l.text.clone()]),
            (Op::Ne, Operand::Single(l)) => (NetOp::Ne, vec![l.text.clone()]),
            (Op::In, Operand::List(items)) => (NetOp::In, self.expand(items)),
            (Op::Intersects, Operand::List(items)) => (NetOp::Intersects, self.expand(items)),
            _ => return None,
        };
        if !written.iter().any(|w| w.contains('/')) {
            return None;
        }
        let mut nets = Vec::new();
        let mut exact = Vec::new();
        for w in &written {
            match (w.parse::<ipnet::IpNet>(), w.parse::<std::net::IpAddr>()) {
                (Ok(n), _) => nets.push(n),
                (_, Ok(a)) => nets.push(ipnet::IpNet::from(a)),
                _ => exact.push(w.clone()),
            }
        }
        Some(Matcher::Net(NetSet {
            op: netop,
            nets: nets.into(),
            exact: StrSet::new(exact),
            written: written.into_iter().map(String::into_boxed_str).collect(),
        }))
    }

    fn matcher(
        &self,
        field: &FieldRef,
        op: Op,
        operand: &Operand,
        ctx: Ctx<'_>,
    ) -> Result<Matcher, Box<RuleError>> {
        let bad = |msg: String, span: Span| self.error(ctx, span, ErrorKind::Compile(msg));
        Ok(match (op, operand) {
            (Op::Exists, _) => Matcher::Exists,
            (op, Operand::List(items)) if op.takes_list() => {
                let vals = self.expand(items);
                match op {
                    Op::In => Matcher::In(StrSet::new(vals)),
                    Op::Intersects => Matcher::Intersects(StrSet::new(vals)),
                    _ => Matcher::PMatch(vals.into_iter().map(String::into_boxed_str).collect()),
                }
            }
            (op, Operand::Single(l)) if op.takes_list() => {
                return Err(bad(
                    format!("{op:?} expects a value list `( ... )`").to_lowercase(),
                    l.span,
                ))
            }
            (_, Operand::List(items)) => {
                let span = items.first().map_or(field.span, |l| l.span);
                return Err(bad(
                    format!("operator {op:?} takes a single value, not a list").to_lowercase(),
                    span,
                ));
            }
            (_, Operand::None) => return Err(bad("missing value".into(), field.span)),
            (_, Operand::Field(_)) => unreachable!("field operands handled by the caller"),
            (op, Operand::Single(l)) => {
                let v = l.text.as_str();
                match op {
                    Op::Eq => Matcher::Eq(v.into()),
                    Op::Ne => Matcher::Ne(v.into()),
                    Op::Contains => Matcher::Contains(v.into()),
                    Op::StartsWith => Matcher::StartsWith(v.into()),
                    Op::EndsWith => Matcher::EndsWith(v.into()),
                    Op::IContains => Matcher::IContains(
                        AhoCorasick::builder()
                            .ascii_case_insensitive(true)
                            .build([v])
                            .map_err(|e| bad(e.to_string(), l.span))?,
                        v.into(),
                    ),
                    Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                        let n: f64 = v
                            .parse()
                            .map_err(|_| bad(format!("`{v}` is not a number"), l.span))?;
                        let nop = match op {
                            Op::Lt => NumOp::Lt,
                            Op::Le => NumOp::Le,
                            Op::Gt => NumOp::Gt,
                            _ => NumOp::Ge,
                        };
                        Matcher::Num(nop, n)
                    }
                    Op::BContains | Op::BStartsWith => {
                        let bytes = hex_bytes(v).ok_or_else(|| {
                            bad(
                                format!("`{v}` is not hexadecimal bytes (e.g. 68656c6c6f)"),
                                l.span,
                            )
                        })?;
                        if op == Op::BContains {
                            Matcher::BContains(bytes.into())
                        } else {
                            Matcher::BStartsWith(bytes.into())
                        }
                    }
                    Op::Regex | Op::Glob | Op::IGlob => {
                        let pat = match op {
                            // Falco (RE2) matches the whole value.
                            Op::Regex => format!("^(?:{v})$"),
                            Op::Glob => glob_to_regex(v),
                            _ => format!("(?i){}", glob_to_regex(v)),
                        };
                        Matcher::Regex(
                            Regex::new(&pat)
                                .map_err(|e| bad(format!("invalid pattern: {e}"), l.span))?,
                        )
                    }
                    _ => unreachable!("list and unary operators handled above"),
                }
            }
        })
    }

    /// Compiles a rule's stateful key and `suppress`: group-by fields to slots, sequence steps
    /// to conditions (each on its own source). Returns them with every source the rule reads:
    /// its own, and those of its sequence's steps.
    #[allow(clippy::type_complexity)]
    pub(crate) fn stateful(
        &mut self,
        r: &RuleDef,
        source: Source,
        sources: &[(String, String)],
    ) -> Result<(Option<StateSpec>, Option<SuppressSpec>, SourceSet), Box<RuleError>> {
        let item = ItemRef {
            kind: ItemKind::Rule,
            name: r.name.clone(),
        };
        let file = sources
            .iter()
            .position(|(n, _)| *n == r.loc.file)
            .unwrap_or(0);
        let fail = |msg: String| {
            Box::new(RuleError {
                location: r.loc.clone(),
                item: Some(item.clone()),
                rule: None,
                kind: ErrorKind::Compile(msg),
            })
        };
        let mut reads = SourceSet::of(source);
        let state = match &r.stateful {
            None => None,
            Some(def) => {
                let group_by = self
                    .group_slots(&def.group_by, "group_by", SourceSet::of(source), file, r)
                    .map_err(fail)?;
                let kind = match &def.kind {
                    StatefulKindDef::Threshold {
                        count,
                        window,
                        distinct,
                    } => StateKind::Threshold {
                        count: *count,
                        window: *window,
                        distinct: match distinct {
                            Some(f) => Some(
                                self.group_slots(
                                    std::slice::from_ref(f),
                                    "threshold.distinct",
                                    SourceSet::of(source),
                                    file,
                                    r,
                                )
                                .map_err(fail)?[0],
                            ),
                            None => None,
                        },
                    },
                    StatefulKindDef::FirstSeen { history, learn } => StateKind::FirstSeen {
                        history: *history,
                        learn: *learn,
                    },
                    StatefulKindDef::Baseline {
                        bucket,
                        history,
                        warmup,
                        threshold,
                        min_count,
                    } => StateKind::Baseline {
                        bucket: *bucket,
                        history: *history,
                        warmup: *warmup,
                        threshold: *threshold,
                        min_count: *min_count,
                    },
                    StatefulKindDef::Sequence { steps, within } => {
                        let mut nodes = Vec::new();
                        let mut keys: Vec<(Source, Vec<usize>)> = vec![(source, group_by.clone())];
                        for (i, step) in steps.iter().enumerate() {
                            let n = i + 1;
                            let src = match &step.source {
                                None => source,
                                Some(name) => Source::from_name(name).ok_or_else(|| {
                                    fail(format!(
                                        "sequence step {n}: unknown source `{name}` (known: {})",
                                        SourceSet::ALL
                                    ))
                                })?,
                            };
                            reads = reads.with(src);
                            let gb = match &step.group_by {
                                Some(g) => self
                                    .group_slots(g, "group_by", SourceSet::of(src), file, r)
                                    .map_err(|e| fail(format!("sequence step {n}: {e}")))?,
                                None if src == source || group_by.is_empty() => group_by.clone(),
                                None => {
                                    return Err(fail(format!(
                                        "sequence step {n} reads `{src}` events: give it a `group_by` of `{src}` fields matching the sequence's"
                                    )))
                                }
                            };
                            if gb.len() != group_by.len() {
                                return Err(fail(format!(
                                    "sequence step {n}: `group_by` has {} field(s), the sequence's has {}",
                                    gb.len(),
                                    group_by.len()
                                )));
                            }
                            match keys.iter().find(|(s, _)| *s == src) {
                                Some((_, k)) if *k != gb => {
                                    return Err(fail(format!(
                                        "sequence step {n}: every step of source `{src}` must use the same `group_by`"
                                    )))
                                }
                                Some(_) => {}
                                None => keys.push((src, gb)),
                            }
                            let cond = CondText::detached(step.condition.clone(), file, r.loc.line);
                            let ctx = Ctx {
                                cond: &cond,
                                item: &item,
                            };
                            let expr = parse::parse_condition(&step.condition).map_err(|e| {
                                fail(format!("sequence step {n}: syntax error: {}", e.message))
                            })?;
                            let mut stack = Vec::new();
                            self.sources = SourceSet::of(src);
                            let node = self.expr(&expr, ctx, &mut stack);
                            self.sources = SourceSet::of(source);
                            let node =
                                node.map_err(|e| fail(format!("sequence step {n}: {}", e.kind)))?;
                            nodes.push(SeqStep { source: src, node });
                        }
                        StateKind::Sequence {
                            steps: nodes,
                            within: *within,
                            keys,
                        }
                    }
                };
                Some(StateSpec {
                    kind,
                    group_by,
                    max_keys: def.max_keys,
                })
            }
        };
        let suppress = match &r.suppress {
            Some(d) => Some(SuppressSpec {
                window: d.window,
                group_by: self
                    .group_slots(&d.group_by, "suppress.group_by", reads, file, r)
                    .map_err(fail)?,
                max_keys: d.max_keys,
            }),
            None => None,
        };
        Ok((state, suppress, reads))
    }

    /// Resolves the fields of a `group_by` (or similar) list to slots.
    fn group_slots(
        &mut self,
        fields: &[String],
        what: &str,
        sources: SourceSet,
        file: usize,
        r: &RuleDef,
    ) -> Result<Vec<usize>, String> {
        let item = ItemRef {
            kind: ItemKind::Rule,
            name: r.name.clone(),
        };
        let detached = CondText::detached(String::new(), file, r.loc.line);
        let ctx = Ctx {
            cond: &detached,
            item: &item,
        };
        let saved = std::mem::replace(&mut self.sources, sources);
        let mut out = Vec::new();
        let mut result = Ok(());
        for f in fields {
            let resolved = parse::parse_field(f)
                .map_err(|e| format!("`{what}` field `{f}`: {}", e.message))
                .and_then(|fr| {
                    self.resolve(&fr, ctx)
                        .map(|spec| (fr, spec))
                        .map_err(|e| format!("`{what}`: {}", e.kind))
                });
            match resolved {
                Ok((fr, spec)) => out.push(self.registry.slot_named(spec, fr.to_string())),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.sources = saved;
        result.map(|()| out)
    }

    /// Parses `%field` references in an output into segments.
    pub fn output(&mut self, out: &str) -> Result<Vec<Seg>, String> {
        let mut segs = Vec::new();
        let mut lit = String::new();
        let mut rest = out;
        while let Some(i) = rest.find('%') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let name_len = after
                .char_indices()
                .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .map_or(after.len(), |(j, _)| j);
            let name = after[..name_len].trim_end_matches('.');
            if name.is_empty() || !after.starts_with(|c: char| c.is_ascii_alphabetic()) {
                lit.push('%');
                rest = after;
                continue;
            }
            let mut consumed = name.len();
            let mut arg = None;
            if name.len() == name_len && after[name_len..].starts_with('[') {
                if let Some(close) = after[name_len..].find(']') {
                    arg = Some(&after[name_len + 1..name_len + close]);
                    consumed = name_len + close + 1;
                }
            }
            let spec = FieldSpec::resolve(name, arg, self.sources).map_err(|e| match e {
                FieldError::Unknown => format!("unknown field `{name}` in output"),
                FieldError::WrongSource(has) => format!(
                    "field `{name}` in output is not available in `{}` events (it is a field of {has})",
                    self.sources
                ),
                FieldError::ArgRequired => format!("field `{name}` in output requires an argument"),
                FieldError::ArgNotAllowed => format!("field `{name}` in output takes no argument"),
            })?;
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit)));
            }
            let full = &after[..consumed];
            segs.push(Seg::Field {
                slot: self
                    .registry
                    .slot_named(spec, after[..consumed].to_string()),
                name: full.to_string(),
            });
            rest = &after[consumed..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Ok(segs)
    }
}

/// Merges `f contains a or f contains b` into one Aho–Corasick matcher (and likewise
/// `startswith`), keeping the other alternatives as they are.
fn merge_alternatives(nodes: Vec<Node>) -> Vec<Node> {
    let mut contains: HashMap<usize, Vec<String>> = HashMap::new();
    let mut starts: HashMap<usize, Vec<String>> = HashMap::new();
    for n in &nodes {
        if let Node::Check { slot, matcher, .. } = n {
            match matcher {
                Matcher::Contains(s) => contains.entry(*slot).or_default().push(s.to_string()),
                Matcher::StartsWith(s) => starts.entry(*slot).or_default().push(s.to_string()),
                _ => {}
            }
        }
    }
    contains.retain(|_, v| v.len() > 1);
    starts.retain(|_, v| v.len() > 1);
    if contains.is_empty() && starts.is_empty() {
        return nodes;
    }
    let mut out = Vec::new();
    let mut done: HashSet<(usize, bool)> = HashSet::new();
    for n in nodes {
        match &n {
            Node::Check {
                slot,
                matcher: Matcher::Contains(_),
                ..
            } if contains.contains_key(slot) => {
                if done.insert((*slot, true)) {
                    if let Ok(ac) = AhoCorasick::new(&contains[slot]) {
                        out.push(Node::Check {
                            id: NO_CHECK_ID,
                            slot: *slot,
                            matcher: Matcher::ContainsAny(
                                ac,
                                contains[slot]
                                    .iter()
                                    .map(|s| s.clone().into_boxed_str())
                                    .collect(),
                            ),
                        });
                    }
                }
            }
            Node::Check {
                slot,
                matcher: Matcher::StartsWith(_),
                ..
            } if starts.contains_key(slot) => {
                if done.insert((*slot, false)) {
                    out.push(Node::Check {
                        id: NO_CHECK_ID,
                        slot: *slot,
                        matcher: Matcher::StartsWithAny(
                            starts[slot]
                                .iter()
                                .map(|s| s.clone().into_boxed_str())
                                .collect(),
                        ),
                    });
                }
            }
            _ => out.push(n),
        }
    }
    out
}

/// `bcontains`/`bstartswith` operands: hex digits, two per byte (spaces allowed between bytes).
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

fn glob_to_regex(g: &str) -> String {
    let mut r = String::from("^");
    let mut chars = g.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => r.push_str(".*"),
            '?' => r.push('.'),
            '[' => {
                r.push('[');
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' {
                        r.push('\\');
                    }
                    r.push(c);
                }
                r.push(']');
            }
            c => r.push_str(&regex::escape(&c.to_string())),
        }
    }
    r.push('$');
    r
}

/// The values an indexed field must take for `node` to be true, if the node pins them.
fn required(node: &Node, reg: &Registry, key: IndexKey) -> Option<HashSet<String>> {
    match node {
        Node::Check { slot, matcher, .. } if reg.spec(*slot).index_key() == Some(key) => {
            match matcher {
                Matcher::Eq(s) => Some(HashSet::from([s.to_string()])),
                Matcher::In(set) | Matcher::Intersects(set) => {
                    Some(set.items().into_iter().collect())
                }
                _ => None,
            }
        }
        Node::And(v) => v
            .iter()
            .filter_map(|n| required(n, reg, key))
            .reduce(|a, b| a.intersection(&b).cloned().collect()),
        Node::Or(v) => {
            let mut acc = HashSet::new();
            for n in v.iter() {
                acc.extend(required(n, reg, key)?);
            }
            Some(acc)
        }
        _ => None,
    }
}

pub fn facts(node: &Node, reg: &Registry) -> Facts {
    let get = |k| {
        required(node, reg, k).map(|s| {
            let mut v: Vec<String> = s.into_iter().collect();
            v.sort();
            v
        })
    };
    Facts {
        verb: get(IndexKey::Verb),
        resource: get(IndexKey::Resource),
        stage: get(IndexKey::Stage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let r = Regex::new(&glob_to_regex("/etc/*.conf")).unwrap();
        assert!(r.is_match("/etc/a/b.conf"));
        assert!(!r.is_match("/etc/a.confx"));
        let r = Regex::new(&glob_to_regex("ab?[cd]")).unwrap();
        assert!(r.is_match("abxd"));
    }
}
