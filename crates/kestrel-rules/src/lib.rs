//! Kestrel's Falco-compatible rule engine, for Kubernetes audit events and every source the
//! node agent collects (container logs, ingress, DNS, netflow, journal, Kubernetes events).
//!
//! Pipeline: YAML sources → [`loader`] (lists, macros, rules; `append`/`override`) →
//! [`parse`] (conditions) → [`compile`] (macros inlined, lists expanded, fields resolved to
//! cache slots against the rule's [`Source`], matchers prebuilt) → [`RuleSet`], which indexes
//! rules by source (and audit rules by the verb, resource and stage they require) and evaluates
//! only candidate rules against an [`Event`].
//!
//! Architecture invariant: no I/O (callers read rule files and pass their text), no async,
//! no storage. A bad rule never disables the others: loading returns the good rules and a
//! [`LoadReport`].

pub mod compile;
pub mod diag;
pub mod eval;
pub mod event;
pub mod fields;
pub mod loader;
pub mod parse;
pub mod priority;
pub mod ruletest;
pub mod stateful;

use std::collections::BTreeMap;

// The index's keys come from the rules; events only look them up, so a fast hasher is safe.
use foldhash::HashMap;

use kestrel_event::AuditEvent;
use serde::Serialize;

pub use diag::{ErrorKind, ItemKind, ItemRef, LoadReport, Location, RuleError, RuleWarning};
pub use event::{Event, OwnedEvent, Source, SourceSet};
pub use fields::{FieldArg, FieldInfo, FieldType};
pub use priority::{ParsePriorityError, Priority};
pub use stateful::{Detector, RestoreReport, Snapshot, StateStats};

use compile::{Compiler, Facts, Seg};
use eval::Node;
use fields::{Extractor, Registry};

/// Falco's name of the Kubernetes audit source.
pub const K8S_AUDIT_SOURCE: &str = "k8s_audit";

/// The bundled packs, in load order (the correlation pack uses the others' lists and macros).
const BUNDLED: &[(&str, &str)] = &[
    (
        "kestrel_audit_rules.yaml",
        include_str!("../../../rules/kestrel_audit_rules.yaml"),
    ),
    (
        "kestrel_ingress_rules.yaml",
        include_str!("../../../rules/kestrel_ingress_rules.yaml"),
    ),
    (
        "kestrel_dns_rules.yaml",
        include_str!("../../../rules/kestrel_dns_rules.yaml"),
    ),
    (
        "kestrel_netflow_rules.yaml",
        include_str!("../../../rules/kestrel_netflow_rules.yaml"),
    ),
    (
        "kestrel_container_log_rules.yaml",
        include_str!("../../../rules/kestrel_container_log_rules.yaml"),
    ),
    (
        "kestrel_k8s_event_rules.yaml",
        include_str!("../../../rules/kestrel_k8s_event_rules.yaml"),
    ),
    (
        "kestrel_journal_rules.yaml",
        include_str!("../../../rules/kestrel_journal_rules.yaml"),
    ),
    (
        "kestrel_correlation_rules.yaml",
        include_str!("../../../rules/kestrel_correlation_rules.yaml"),
    ),
];

/// How many rules may fire per event (Falco's `rule_matching`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleMatching {
    /// Every matching rule fires.
    #[default]
    All,
    /// Only the first matching rule, in load order, fires (Falco's default).
    First,
}

/// A loaded rule, as listed by [`RuleSet::rules`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleInfo {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub source: String,
    pub enabled: bool,
    /// The file that defined the rule.
    pub file: String,
    /// Enabled and of a source Kestrel evaluates.
    pub active: bool,
    /// Kestrel's stateful key (`threshold`, `sequence`, `first_seen`, `baseline`), if any.
    pub stateful: Option<String>,
}

/// A rule that fired on an event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleMatch {
    pub rule: String,
    pub priority: Priority,
    /// The output with every `%field` substituted (`<NA>` when missing).
    pub output: String,
    pub tags: Vec<String>,
    /// The source of the event that made the rule fire.
    pub source: String,
    /// Every `%field` used in the output, with its value.
    pub output_fields: BTreeMap<String, String>,
    /// How many matches this alert stands for: 1 for a plain rule, the matches in the window
    /// for a `threshold`, the steps of a `sequence`, plus the alerts a `suppress` window
    /// merged into this one.
    pub count: u64,
}

/// How a rule compiled, for `kestrel rules explain`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub rule: String,
    pub file: String,
    pub source: String,
    pub priority: Priority,
    pub active: bool,
    /// The compiled condition (macros inlined, lists expanded, exceptions added); `None` for a
    /// rule that is not evaluated (disabled, or of another source).
    pub condition: Option<String>,
    /// Every field the condition and the output read, in first-use order.
    pub fields: Vec<String>,
    /// The verbs, resources and stages an event must have for the rule to be tried (`None`:
    /// any).
    pub verbs: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    pub stages: Option<Vec<String>>,
}

#[derive(Debug)]
struct Active {
    /// The rule's own source: its condition filters events of this source.
    source: Source,
    /// Every source the rule reads: its own and its sequence steps'.
    sources: SourceSet,
    rule: String,
    priority: Priority,
    tags: Vec<String>,
    node: Node,
    output: Vec<Seg>,
    facts: Facts,
    state: Option<stateful::StateSpec>,
    suppress: Option<stateful::SuppressSpec>,
    /// The stages the rule admits, as [`stage_bit`]s.
    stages: u8,
}

/// One bit per audit stage; unknown stages share the last bit.
fn stage_bit(stage: Option<&str>) -> u8 {
    match stage {
        Some("ResponseComplete") => 1,
        Some("ResponseStarted") => 2,
        Some("RequestReceived") => 4,
        Some("Panic") => 8,
        Some(_) => 16,
        None => 32,
    }
}

fn stage_mask(stages: &Option<Vec<String>>) -> u8 {
    match stages {
        None => u8::MAX,
        Some(v) => v.iter().fold(0, |m, s| m | stage_bit(Some(s))) & !32,
    }
}

/// A compiled, indexed set of rules.
#[derive(Debug)]
pub struct RuleSet {
    infos: Vec<RuleInfo>,
    active: Vec<Active>,
    registry: Registry,
    /// Candidate audit rules (indexes into `active`, in order) per verb, then per resource.
    index: Index,
    /// Candidate rules of every other source (indexes into `active`, in order), by
    /// [`Source::index`].
    by_source: [Box<[u32]>; Source::ALL.len()],
    matching: RuleMatching,
}

fn admits(list: &Option<Vec<String>>, v: Option<&str>) -> bool {
    match list {
        None => true,
        Some(l) => v.is_some_and(|v| l.iter().any(|x| x == v)),
    }
}

impl RuleSet {
    /// Loads several YAML documents in order (later files can append to or override earlier
    /// ones), given as `(name, text)` pairs.
    pub fn from_sources(sources: &[(String, String)]) -> (RuleSet, LoadReport) {
        let mut report = LoadReport::default();
        let mut defs = loader::Defs::default();
        loader::load(sources, &mut defs, &mut report);
        let mut registry = Registry::default();
        let mut infos = Vec::new();
        let mut active = Vec::new();
        let mut inactive_sources: BTreeMap<(String, String), usize> = BTreeMap::new();
        {
            let (mut compiler, macro_errors) = Compiler::new(&defs, sources, &mut registry);
            report.errors.extend(macro_errors);
            for r in &defs.rules {
                let info = RuleInfo {
                    name: r.name.clone(),
                    desc: r.desc.clone(),
                    priority: r.priority,
                    tags: r.tags.clone(),
                    source: r.source.clone(),
                    enabled: r.enabled,
                    file: r.loc.file.clone(),
                    active: false,
                    stateful: r.stateful.as_ref().map(|s| s.kind.name().to_string()),
                };
                let Some(source) = Source::from_name(&r.source) else {
                    *inactive_sources
                        .entry((r.loc.file.clone(), r.source.clone()))
                        .or_default() += 1;
                    infos.push(info);
                    continue;
                };
                compiler.sources = SourceSet::of(source);
                let mut node = match compiler.rule(&r.name, &r.cond, &r.exceptions, &r.loc) {
                    Ok(n) => n,
                    Err(e) => {
                        if r.skip_if_unknown_filter && matches!(e.kind, ErrorKind::UnknownField(_))
                        {
                            report.warnings.push(RuleWarning {
                                location: e.location.clone(),
                                item: e.item.clone(),
                                message: format!("rule {:?} skipped: {}", r.name, e.kind),
                            });
                        } else {
                            report.errors.push(*e);
                        }
                        continue;
                    }
                };
                let (mut state, suppress, reads) = match compiler.stateful(r, source, sources) {
                    Ok(x) => x,
                    Err(e) => {
                        report.errors.push(*e);
                        continue;
                    }
                };
                // The output may name fields of every source the rule reads (a sequence's
                // alert shows the fields its earlier steps captured).
                compiler.sources = reads;
                let output = compiler.output(&r.output);
                compiler.sources = SourceSet::of(source);
                let output = match output {
                    Ok(o) => o,
                    Err(msg) => {
                        report.errors.push(RuleError {
                            location: r.loc.clone(),
                            item: Some(ItemRef {
                                kind: ItemKind::Rule,
                                name: r.name.clone(),
                            }),
                            rule: None,
                            kind: ErrorKind::Compile(msg),
                        });
                        continue;
                    }
                };
                infos.push(RuleInfo {
                    active: r.enabled,
                    ..info
                });
                if r.enabled {
                    node.intern_checks(compiler.registry);
                    if let Some(stateful::StateSpec {
                        kind: stateful::StateKind::Sequence { steps, .. },
                        ..
                    }) = &mut state
                    {
                        steps
                            .iter_mut()
                            .for_each(|s| s.node.intern_checks(compiler.registry));
                    }
                    let facts = audit_facts(source, &node, state.as_ref(), compiler.registry);
                    let stages = stage_mask(&facts.stage);
                    active.push(Active {
                        source,
                        sources: reads,
                        stages,
                        rule: r.name.clone(),
                        priority: r.priority,
                        tags: r.tags.clone(),
                        node,
                        output,
                        facts,
                        state,
                        suppress,
                    });
                }
            }
        }
        for ((file, source), n) in inactive_sources {
            report.warnings.push(RuleWarning {
                location: Location {
                    file,
                    line: None,
                    col: None,
                },
                item: None,
                message: format!(
                    "{n} rule(s) of source `{source}` loaded inactive: kestrel evaluates rules of {}",
                    SourceSet::ALL
                ),
            });
        }
        let order = |file: &str| sources.iter().position(|(n, _)| n == file);
        report
            .errors
            .sort_by_key(|e| (order(&e.location.file), e.location.line, e.location.col));
        let audit: Vec<(u32, &Facts)> = active
            .iter()
            .enumerate()
            .filter(|(_, a)| a.sources.contains(Source::K8sAudit))
            .map(|(i, a)| (i as u32, &a.facts))
            .collect();
        let index = Index::build(&audit);
        let by_source = Source::ALL.map(|s| {
            active
                .iter()
                .enumerate()
                .filter(|(_, a)| s != Source::K8sAudit && a.sources.contains(s))
                .map(|(i, _)| i as u32)
                .collect()
        });
        (
            RuleSet {
                infos,
                active,
                registry,
                index,
                by_source,
                matching: RuleMatching::All,
            },
            report,
        )
    }

    /// The rules Kestrel ships (`rules/*.yaml`, embedded at build time).
    pub fn bundled() -> RuleSet {
        RuleSet::from_sources(&Self::bundled_sources()).0
    }

    /// The bundled rule files as `(name, text)`, e.g. to load them before the user's own.
    pub fn bundled_sources() -> Vec<(String, String)> {
        BUNDLED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect()
    }

    /// Sets how many rules may fire per event.
    pub fn set_rule_matching(&mut self, m: RuleMatching) {
        self.matching = m;
    }

    pub fn with_rule_matching(mut self, m: RuleMatching) -> Self {
        self.matching = m;
        self
    }

    pub fn rule_matching(&self) -> RuleMatching {
        self.matching
    }

    /// Every loaded rule (including disabled ones and those of other sources), in load order.
    pub fn rules(&self) -> Vec<RuleInfo> {
        self.infos.clone()
    }

    /// Number of rules that are evaluated.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// How the rule named `name` compiled; `None` when no such rule is loaded.
    pub fn explain(&self, name: &str) -> Option<Explanation> {
        let info = self.infos.iter().find(|r| r.name == name)?;
        let active = self.active.iter().find(|a| a.rule == name);
        let mut slots = Vec::new();
        if let Some(a) = active {
            a.node.slots(&mut slots);
            slots.extend(a.output.iter().filter_map(|s| match s {
                Seg::Field { slot, .. } => Some(*slot),
                Seg::Lit(_) => None,
            }));
        }
        let mut fields: Vec<String> = Vec::new();
        for s in slots {
            let n = self.registry.name(s).to_string();
            if !fields.contains(&n) {
                fields.push(n);
            }
        }
        Some(Explanation {
            rule: info.name.clone(),
            file: info.file.clone(),
            source: info.source.clone(),
            priority: info.priority,
            active: info.active,
            condition: active.map(|a| a.node.describe(&|s| self.registry.name(s).to_string())),
            fields,
            verbs: active.and_then(|a| a.facts.verb.clone()),
            resources: active.and_then(|a| a.facts.resource.clone()),
            stages: active.and_then(|a| a.facts.stage.clone()),
        })
    }

    /// The field catalog: every field rules may read, per source.
    pub fn fields() -> &'static [FieldInfo] {
        fields::catalog()
    }

    /// Whether the rule named `name` is loaded with a stateful key or `suppress`.
    pub fn is_stateful(&self, name: &str) -> bool {
        self.active
            .iter()
            .any(|a| a.rule == name && (a.state.is_some() || a.suppress.is_some()))
    }

    /// Evaluates the stateless active rules against one audit event (see
    /// [`RuleSet::evaluate`]).
    pub fn evaluate_audit(&self, event: &AuditEvent) -> Vec<RuleMatch> {
        self.evaluate(&Event::Audit(event))
    }

    /// Evaluates the stateless active rules of the event's source against it. Rules with a
    /// stateful key (`threshold`, `sequence`, `first_seen`, `baseline`) need a [`Detector`]
    /// and are skipped here; `suppress` is ignored.
    pub fn evaluate(&self, event: &Event<'_>) -> Vec<RuleMatch> {
        let mut out = Vec::new();
        let source = event.source();
        self.each_candidate(*event, |r, x| {
            if r.state.is_some() || r.source != source || !r.node.eval(x) {
                return true;
            }
            out.push(render(r, x, source, None));
            self.matching == RuleMatching::All
        });
        out
    }

    /// Calls `f` for each rule the index admits for `event`, in load order, sharing one field
    /// cache, until `f` returns false.
    fn each_candidate<'s, 'e>(
        &'s self,
        event: Event<'e>,
        mut f: impl FnMut(&'s Active, &mut Extractor<'_, 'e>) -> bool,
    ) {
        let Event::Audit(audit) = event else {
            let cands = &self.by_source[event.source().index()];
            if cands.is_empty() {
                return;
            }
            let mut x = Extractor::new(&self.registry, event);
            for &i in cands.iter() {
                if !f(&self.active[i as usize], &mut x) {
                    break;
                }
            }
            return;
        };
        let resource = audit.object_ref_field(|o| o.resource.as_ref());
        let cands = self.index.candidates(&audit.verb, resource);
        if cands.is_empty() {
            return;
        }
        let stage = stage_bit((!audit.stage.is_empty()).then_some(audit.stage.as_str()));
        let mut x: Option<Extractor<'_, 'e>> = None;
        for &i in cands {
            let r = &self.active[i as usize];
            if r.stages & stage == 0 {
                continue;
            }
            let x = x.get_or_insert_with(|| Extractor::new(&self.registry, event));
            if !f(r, x) {
                break;
            }
        }
    }
}

/// The facts an audit event must have for the rule to be tried: those of its condition (when
/// it is an audit rule) and of its sequence's audit steps.
fn audit_facts(
    source: Source,
    node: &Node,
    state: Option<&stateful::StateSpec>,
    registry: &Registry,
) -> Facts {
    let audit_steps: Vec<Node> = match state {
        Some(stateful::StateSpec {
            kind: stateful::StateKind::Sequence { steps, .. },
            ..
        }) => steps
            .iter()
            .filter(|s| s.source == Source::K8sAudit)
            .map(|s| s.node.clone())
            .collect(),
        _ => Vec::new(),
    };
    let steps = (!audit_steps.is_empty()).then(|| Node::Or(audit_steps.into()));
    match (source == Source::K8sAudit, steps) {
        (true, None) => compile::facts(node, registry),
        (true, Some(steps)) => {
            compile::facts(&Node::And(vec![node.clone(), steps].into()), registry)
        }
        (false, Some(steps)) => compile::facts(&steps, registry),
        (false, None) => Facts::default(),
    }
}

/// The rule's alert on this event; fields missing here take the value `captured` at a
/// sequence's earlier steps, if any.
fn render(
    r: &Active,
    x: &mut Extractor<'_, '_>,
    source: Source,
    captured: Option<&BTreeMap<String, String>>,
) -> RuleMatch {
    let mut output = String::new();
    let mut output_fields = BTreeMap::new();
    for seg in &r.output {
        match seg {
            Seg::Lit(s) => output.push_str(s),
            Seg::Field { slot, name } => {
                let v = match (x.get(*slot), captured.and_then(|c| c.get(name))) {
                    (fields::Val::NA, Some(c)) => c.clone(),
                    (v, _) => v.render(),
                };
                output.push_str(&v);
                output_fields.insert(name.clone(), v);
            }
        }
    }
    RuleMatch {
        rule: r.rule.clone(),
        priority: r.priority,
        output,
        tags: r.tags.clone(),
        source: source.name().to_string(),
        output_fields,
        count: 1,
    }
}

/// Candidate rules per resource, for one verb.
#[derive(Debug, Default)]
struct ResourceIndex {
    by_resource: HashMap<Box<str>, Box<[u32]>>,
    /// For resources no rule names (and events without a resource).
    other: Box<[u32]>,
}

/// The rule index: two hash lookups per event (verb, then resource) give the rules that can
/// match, in load order; rules that pin neither are in every list.
#[derive(Debug, Default)]
struct Index {
    by_verb: HashMap<Box<str>, ResourceIndex>,
    other: ResourceIndex,
}

impl Index {
    /// Builds the index of the given rules (index into the active rules, facts).
    fn build(active: &[(u32, &Facts)]) -> Index {
        let named = |f: fn(&Facts) -> &Option<Vec<String>>| -> Vec<String> {
            let mut v: Vec<String> = active
                .iter()
                .filter_map(|(_, facts)| f(facts).clone())
                .flatten()
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let verbs = named(|f| &f.verb);
        let resources = named(|f| &f.resource);
        let list = |verb: Option<&str>, resource: Option<&str>| -> Box<[u32]> {
            active
                .iter()
                .filter(|(_, facts)| {
                    let v_ok = match verb {
                        Some(v) => admits(&facts.verb, Some(v)),
                        None => facts.verb.is_none(),
                    };
                    let r_ok = match resource {
                        Some(r) => admits(&facts.resource, Some(r)),
                        None => facts.resource.is_none(),
                    };
                    v_ok && r_ok
                })
                .map(|(i, _)| *i)
                .collect()
        };
        let per_verb = |verb: Option<&str>| ResourceIndex {
            by_resource: resources
                .iter()
                .map(|r| (Box::<str>::from(r.as_str()), list(verb, Some(r))))
                .collect(),
            other: list(verb, None),
        };
        Index {
            by_verb: verbs
                .iter()
                .map(|v| (Box::<str>::from(v.as_str()), per_verb(Some(v))))
                .collect(),
            other: per_verb(None),
        }
    }

    fn candidates(&self, verb: &str, resource: Option<&str>) -> &[u32] {
        let v = self.by_verb.get(verb).unwrap_or(&self.other);
        resource
            .and_then(|r| v.by_resource.get(r))
            .unwrap_or(&v.other)
    }
}
