//! Reads Falco-format YAML rule files into definitions (lists, macros, rules), applying
//! `append` and `override` across files in order, and remembers where each item came from.

use std::collections::HashMap;

use serde_yaml_ng::{Mapping, Value};

use crate::diag::{ErrorKind, ItemKind, ItemRef, LoadReport, Location, RuleError, RuleWarning};
use crate::priority::Priority;

/// A piece of condition text and where it starts in its file (conditions grow by `append`).
#[derive(Debug, Clone)]
pub struct Piece {
    /// Offset of this piece in the combined condition text.
    pub at: usize,
    pub file: usize,
    /// Byte offset in the file right after `condition:`, when found.
    pub raw_start: Option<usize>,
    pub line: Option<u32>,
}

/// Condition text with its origin.
#[derive(Debug, Clone, Default)]
pub struct CondText {
    pub text: String,
    pub pieces: Vec<Piece>,
}

impl CondText {
    fn new(text: String, piece: Piece) -> Self {
        CondText {
            text,
            pieces: vec![piece],
        }
    }

    /// Condition text known only by its file and line (e.g. a sequence step).
    pub fn detached(text: String, file: usize, line: Option<u32>) -> Self {
        CondText::new(
            text,
            Piece {
                at: 0,
                file,
                raw_start: None,
                line,
            },
        )
    }

    fn append(&mut self, text: &str, mut piece: Piece) {
        self.text.push(' ');
        piece.at = self.text.len();
        self.text.push_str(text);
        self.pieces.push(piece);
    }

    /// The file location of byte `offset` of the condition.
    pub fn locate(&self, sources: &[(String, String)], offset: usize) -> Location {
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.at <= offset)
            .unwrap_or(&self.pieces[0]);
        let (file, raw) = &sources[piece.file];
        let end = self
            .pieces
            .iter()
            .find(|p| p.at > piece.at)
            .map_or(self.text.len(), |p| p.at - 1);
        let text = &self.text[piece.at..end];
        let local = offset.saturating_sub(piece.at).min(text.len());
        match piece.raw_start {
            Some(start) => {
                let off = locate_in_raw(raw, start, text, local);
                let (line, col) = line_col(raw, off);
                Location {
                    file: file.clone(),
                    line: Some(line),
                    col: Some(col),
                }
            }
            None => Location {
                file: file.clone(),
                line: piece.line,
                col: None,
            },
        }
    }
}

/// Maps an offset in a YAML scalar's value back to the raw file: folding and indentation only
/// change whitespace, so the n-th non-blank character of the value is the n-th of the raw text.
fn locate_in_raw(raw: &str, start: usize, text: &str, local: usize) -> usize {
    let mut n = text[..local].chars().filter(|c| !c.is_whitespace()).count();
    let at_end = text[local..].trim().is_empty();
    let bytes = raw.as_bytes();
    let mut i = start;
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'>' | b'|') => {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        }
        Some(b'"' | b'\'') => i += 1,
        _ => {}
    }
    let mut last_end = i;
    for (j, c) in raw[i..].char_indices() {
        if c.is_whitespace() {
            continue;
        }
        if n == 0 {
            return if at_end { last_end } else { i + j };
        }
        n -= 1;
        last_end = i + j + c.len_utf8();
    }
    last_end
}

pub fn line_col(raw: &str, off: usize) -> (u32, u32) {
    let before = &raw[..off.min(raw.len())];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
    (line, col)
}

#[derive(Debug, Clone)]
pub struct ListDef {
    pub items: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MacroDef {
    pub name: String,
    pub cond: CondText,
    pub loc: Location,
}

/// One value of an exception tuple: a scalar or a list (for `in`-like comparisons).
#[derive(Debug, Clone)]
pub enum ExcItem {
    Scalar(String),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct ExceptionDef {
    pub name: String,
    pub fields: Vec<String>,
    /// `fields` was a single field name (values are then a flat list).
    pub single: bool,
    pub comps: Vec<String>,
    pub values: Vec<Vec<ExcItem>>,
}

#[derive(Debug, Clone)]
pub struct RuleDef {
    pub name: String,
    pub cond: CondText,
    pub output: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub source: String,
    pub exceptions: Vec<ExceptionDef>,
    pub skip_if_unknown_filter: bool,
    /// Kestrel's stateful key (`threshold`, `sequence`, `first_seen` or `baseline`), if any.
    pub stateful: Option<StatefulDef>,
    /// Kestrel's `suppress` key, if any.
    pub suppress: Option<SuppressDef>,
    pub loc: Location,
}

/// A stateful rule key as written (durations in ns).
#[derive(Debug, Clone)]
pub enum StatefulKindDef {
    Threshold {
        count: u64,
        window: i64,
        /// Count distinct values of this field instead of matches.
        distinct: Option<String>,
    },
    Sequence {
        steps: Vec<SeqStepDef>,
        within: i64,
    },
    FirstSeen {
        history: i64,
        learn: i64,
    },
    Baseline {
        bucket: i64,
        history: usize,
        warmup: usize,
        threshold: f64,
        min_count: u64,
    },
}

impl StatefulKindDef {
    /// The key's name as written (`threshold`, `sequence`, `first_seen`, `baseline`).
    pub fn name(&self) -> &'static str {
        match self {
            StatefulKindDef::Threshold { .. } => "threshold",
            StatefulKindDef::Sequence { .. } => "sequence",
            StatefulKindDef::FirstSeen { .. } => "first_seen",
            StatefulKindDef::Baseline { .. } => "baseline",
        }
    }
}

/// One step of a `sequence`: a condition, on the rule's source unless it names another, and
/// the fields that key it there (the sequence's `group_by` by default).
#[derive(Debug, Clone)]
pub struct SeqStepDef {
    pub condition: String,
    pub source: Option<String>,
    pub group_by: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct StatefulDef {
    pub kind: StatefulKindDef,
    /// Fields whose values form the group key.
    pub group_by: Vec<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone)]
pub struct SuppressDef {
    pub window: i64,
    pub group_by: Vec<String>,
    pub max_keys: usize,
}

/// The stateful keys a rule may carry (Kestrel extensions).
pub const STATEFUL_KEYS: &[&str] = &["threshold", "sequence", "first_seen", "baseline"];

fn duration_ns(m: &Item<'_>, key: &str, what: &str) -> Result<Option<i64>, String> {
    let Some(text) = m.string(key)? else {
        return Ok(None);
    };
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("`{what}.{key}`: {e} (write a duration like \"30s\", \"5m\", \"1h\", \"7d\")")
    })?;
    if d.is_zero() {
        return Err(format!("`{what}.{key}` must be longer than zero"));
    }
    Ok(Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
}

fn number<T: std::str::FromStr>(m: &Item<'_>, key: &str, what: &str) -> Result<Option<T>, String> {
    match m.string(key)? {
        None => Ok(None),
        Some(t) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("`{what}.{key}` must be a number")),
    }
}

fn only_keys(m: &Mapping, allowed: &[&str], what: &str) -> Result<(), String> {
    for k in m.keys().filter_map(scalar_string) {
        if !allowed.contains(&k.as_str()) {
            return Err(format!(
                "unknown key `{what}.{k}` (expected one of: {})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

fn stateful(it: &Item<'_>) -> Result<Option<StatefulDef>, String> {
    let given: Vec<&str> = STATEFUL_KEYS
        .iter()
        .copied()
        .filter(|k| it.get(k).is_some())
        .collect();
    let what = match given.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(format!("a rule takes one of {given:?}, not several")),
    };
    let Some(Value::Mapping(map)) = it.get(what) else {
        return Err(format!("`{what}` must be a mapping"));
    };
    let m = Item { map };
    let need = |o: Option<i64>, k: &str| o.ok_or_else(|| format!("`{what}.{k}` is required"));
    let group_key = if what == "first_seen" {
        "fields"
    } else {
        "group_by"
    };
    let group_by = m.strings(group_key)?.unwrap_or_default();
    let max_keys = number(&m, "max_keys", what)?.unwrap_or(crate::stateful::DEFAULT_MAX_KEYS);
    if max_keys == 0 {
        return Err(format!("`{what}.max_keys` must be at least 1"));
    }
    let kind = match what {
        "threshold" => {
            only_keys(
                map,
                &["count", "window", "group_by", "distinct", "max_keys"],
                what,
            )?;
            let count: u64 = number(&m, "count", what)?.ok_or("`threshold.count` is required")?;
            if count == 0 {
                return Err("`threshold.count` must be at least 1".into());
            }
            StatefulKindDef::Threshold {
                count,
                window: need(duration_ns(&m, "window", what)?, "window")?,
                distinct: m.string("distinct")?,
            }
        }
        "sequence" => {
            only_keys(map, &["steps", "within", "group_by", "max_keys"], what)?;
            let steps = sequence_steps(m.get("steps"))?;
            if steps.len() < 2 {
                return Err("`sequence.steps` needs at least two conditions".into());
            }
            StatefulKindDef::Sequence {
                steps,
                within: need(duration_ns(&m, "within", what)?, "within")?,
            }
        }
        "first_seen" => {
            only_keys(map, &["fields", "history", "learn", "max_keys"], what)?;
            if group_by.is_empty() {
                return Err("`first_seen.fields` needs at least one field".into());
            }
            StatefulKindDef::FirstSeen {
                history: need(duration_ns(&m, "history", what)?, "history")?,
                learn: duration_ns(&m, "learn", what)?.unwrap_or(0),
            }
        }
        _ => {
            only_keys(
                map,
                &[
                    "bucket",
                    "history",
                    "warmup",
                    "threshold",
                    "min_count",
                    "group_by",
                    "max_keys",
                ],
                what,
            )?;
            let history: usize = number(&m, "history", what)?.unwrap_or(24);
            let warmup: usize = number(&m, "warmup", what)?.unwrap_or(history.min(12));
            if history == 0 || warmup > history {
                return Err("`baseline.history` must be at least 1 and at least `warmup`".into());
            }
            StatefulKindDef::Baseline {
                bucket: need(duration_ns(&m, "bucket", what)?, "bucket")?,
                history,
                warmup,
                threshold: number(&m, "threshold", what)?.unwrap_or(3.5),
                min_count: number(&m, "min_count", what)?.unwrap_or(1),
            }
        }
    };
    Ok(Some(StatefulDef {
        kind,
        group_by,
        max_keys,
    }))
}

/// `sequence.steps`: each a condition, or a mapping with `condition` and optionally `source`
/// and `group_by`.
fn sequence_steps(v: Option<&Value>) -> Result<Vec<SeqStepDef>, String> {
    let Some(Value::Sequence(items)) = v else {
        return Err("`sequence.steps` must be a list of conditions".into());
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let what = format!("sequence.steps[{i}]");
        out.push(match item {
            Value::Mapping(map) => {
                only_keys(map, &["condition", "source", "group_by"], &what)?;
                let m = Item { map };
                SeqStepDef {
                    condition: m
                        .string("condition")?
                        .ok_or_else(|| format!("`{what}.condition` is required"))?,
                    source: m.string("source")?,
                    group_by: m.strings("group_by")?,
                }
            }
            other => SeqStepDef {
                condition: scalar_string(other).ok_or_else(|| {
                    format!("`{what}` must be a condition or a mapping with `condition`")
                })?,
                source: None,
                group_by: None,
            },
        });
    }
    Ok(out)
}

fn suppress(it: &Item<'_>) -> Result<Option<SuppressDef>, String> {
    let Some(v) = it.get("suppress") else {
        return Ok(None);
    };
    let Value::Mapping(map) = v else {
        return Err("`suppress` must be a mapping".into());
    };
    only_keys(map, &["window", "group_by", "max_keys"], "suppress")?;
    let m = Item { map };
    let max_keys = number(&m, "max_keys", "suppress")?.unwrap_or(crate::stateful::DEFAULT_MAX_KEYS);
    Ok(Some(SuppressDef {
        window: duration_ns(&m, "window", "suppress")?.ok_or("`suppress.window` is required")?,
        group_by: m.strings("group_by")?.unwrap_or_default(),
        max_keys: max_keys.max(1),
    }))
}

/// Everything defined by the loaded files.
#[derive(Debug, Default)]
pub struct Defs {
    pub lists: HashMap<String, ListDef>,
    pub macros: HashMap<String, MacroDef>,
    pub rules: Vec<RuleDef>,
    rule_idx: HashMap<String, usize>,
}

const RULE_KEYS: &[&str] = &[
    "rule",
    "condition",
    "output",
    "desc",
    "priority",
    "tags",
    "enabled",
    "source",
    "exceptions",
    "append",
    "override",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "capture",
    "capture_duration",
    "threshold",
    "sequence",
    "first_seen",
    "baseline",
    "suppress",
];

/// Byte offsets of the top-level items: lines starting with `- ` at the indentation of the
/// file's first item (some files, such as Falco's legacy ruleset, indent the whole list).
fn item_starts(raw: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = 0;
    let mut indent: Option<usize> = None;
    for line in raw.split_inclusive('\n') {
        let l = line.trim_end_matches(['\n', '\r']);
        let t = l.trim_start_matches(' ');
        let ind = l.len() - t.len();
        if indent.is_none() && (t == "-" || t.starts_with("- ")) {
            indent = Some(ind);
        }
        if Some(ind) == indent && (t == "-" || t.starts_with("- ")) {
            out.push(off);
        }
        off += line.len();
    }
    out
}

/// Falco plugins whose fields Kestrel provides: the k8saudit family (Kubernetes audit events from
/// any cloud) and `json` (`json.*`/`jevt.*`).
pub const KNOWN_PLUGINS: &[&str] = &[
    "k8saudit",
    "k8saudit-aks",
    "k8saudit-eks",
    "k8saudit-gke",
    "k8saudit-ovh",
    "json",
];

/// Checks `required_plugin_versions`: each entry (or one of its `alternatives`) must name a
/// plugin Kestrel stands in for; versions are not compared, since Kestrel implements the fields
/// itself.
fn check_plugins(v: &Value) -> Result<(), String> {
    let Value::Sequence(entries) = v else {
        return Err("`required_plugin_versions` must be a list".into());
    };
    let mut unknown = Vec::new();
    for e in entries {
        let Value::Mapping(m) = e else {
            return Err("each required plugin must be a mapping with `name` and `version`".into());
        };
        let it = Item { map: m };
        let name = it
            .string("name")?
            .ok_or("a required plugin without `name`")?;
        it.string("version")?
            .ok_or_else(|| format!("required plugin `{name}` without `version`"))?;
        let mut names = vec![name];
        if let Some(Value::Sequence(alts)) = it.get("alternatives") {
            for a in alts {
                if let Some(n) = a.get("name").and_then(scalar_string) {
                    names.push(n);
                }
            }
        }
        if !names.iter().any(|n| KNOWN_PLUGINS.contains(&n.as_str())) {
            unknown.push(names[0].clone());
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "requires Falco plugin(s) {unknown:?}, whose fields Kestrel does not provide; rules using them will not load"
        ))
    }
}

/// Byte offset right after `key:` within `[from, to)` of `raw`, on a line of its own or after
/// the item's `- `.
fn key_offset(raw: &str, from: usize, to: usize, key: &str) -> Option<usize> {
    let mut off = from;
    for line in raw[from..to].split_inclusive('\n') {
        let t = line.trim_start();
        let t2 = t.strip_prefix("- ").map(str::trim_start).unwrap_or(t);
        if let Some(rest) = t2.strip_prefix(key) {
            if rest.starts_with(':') {
                let col = line.len() - t2.len() + key.len() + 1;
                return Some(off + col);
            }
        }
        off += line.len();
    }
    None
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

struct Item<'m> {
    map: &'m Mapping,
}

impl Item<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        self.map.get(k)
    }

    fn string(&self, k: &str) -> Result<Option<String>, String> {
        match self.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar_string(v)
                .map(Some)
                .ok_or_else(|| format!("`{k}` must be a string")),
        }
    }

    fn boolean(&self, k: &str) -> Result<Option<bool>, String> {
        match self.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(_) => Err(format!("`{k}` must be true or false")),
        }
    }

    fn strings(&self, k: &str) -> Result<Option<Vec<String>>, String> {
        match self.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Sequence(s)) => s
                .iter()
                .map(|v| scalar_string(v).ok_or_else(|| format!("`{k}` must be a list of strings")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(format!("`{k}` must be a list")),
        }
    }
}

/// Loads sources in order into `defs`, reporting problems into `report`.
pub fn load(sources: &[(String, String)], defs: &mut Defs, report: &mut LoadReport) {
    for (fi, (file, raw)) in sources.iter().enumerate() {
        let doc: Value = match serde_yaml_ng::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                let loc = e.location();
                report.errors.push(RuleError {
                    location: Location {
                        file: file.clone(),
                        line: loc.as_ref().map(|l| l.line() as u32),
                        col: loc.as_ref().map(|l| l.column() as u32),
                    },
                    item: None,
                    rule: None,
                    kind: ErrorKind::Yaml(e.to_string()),
                });
                continue;
            }
        };
        let items = match doc {
            Value::Null => continue,
            Value::Sequence(s) => s,
            _ => {
                report.errors.push(RuleError {
                    location: Location {
                        file: file.clone(),
                        line: None,
                        col: None,
                    },
                    item: None,
                    rule: None,
                    kind: ErrorKind::Schema("a rules file must be a list of items".into()),
                });
                continue;
            }
        };
        let starts = item_starts(raw);
        let starts = (starts.len() == items.len()).then_some(starts);
        for (ii, item) in items.iter().enumerate() {
            let range = starts.as_ref().map(|s| {
                let from = s[ii];
                let to = s.get(ii + 1).copied().unwrap_or(raw.len());
                (from, to)
            });
            let line = range.map(|(f, _)| line_col(raw, f).0);
            let loc = Location {
                file: file.clone(),
                line,
                col: line.map(|_| 1),
            };
            let cond_piece = |key: &str| Piece {
                at: 0,
                file: fi,
                raw_start: range.and_then(|(f, t)| key_offset(raw, f, t, key)),
                line,
            };
            let Value::Mapping(map) = item else {
                report.errors.push(RuleError {
                    location: loc,
                    item: None,
                    rule: None,
                    kind: ErrorKind::Schema("each item must be a mapping".into()),
                });
                continue;
            };
            let it = Item { map };
            let result = if it.get("rule").is_some() {
                load_rule(&it, defs, loc.clone(), cond_piece("condition"), report)
            } else if it.get("macro").is_some() {
                load_macro(&it, defs, loc.clone(), cond_piece("condition"))
            } else if it.get("list").is_some() {
                load_list(&it, defs)
            } else if let Some(v) = it.get("required_plugin_versions") {
                if let Err(message) = check_plugins(v) {
                    report.warnings.push(RuleWarning {
                        location: loc.clone(),
                        item: None,
                        message,
                    });
                }
                Ok(())
            } else if let Some(v) = it.get("required_engine_version") {
                match v {
                    Value::Number(_) => Ok(()),
                    Value::String(s) if s.split('.').all(|p| p.parse::<u32>().is_ok()) => Ok(()),
                    _ => Err((
                        None,
                        "`required_engine_version` must be a number or a version like 0.31.0"
                            .to_string(),
                    )),
                }
            } else {
                let keys: Vec<String> = map.keys().filter_map(scalar_string).collect();
                report.warnings.push(RuleWarning {
                    location: loc.clone(),
                    item: None,
                    message: format!("unknown item with keys {keys:?}, ignored"),
                });
                Ok(())
            };
            if let Err((item, msg)) = result {
                report.errors.push(RuleError {
                    location: loc,
                    item,
                    rule: None,
                    kind: ErrorKind::Schema(msg),
                });
            }
        }
    }
}

type ItemResult = Result<(), (Option<ItemRef>, String)>;

fn item_ref(kind: ItemKind, name: &str) -> Option<ItemRef> {
    Some(ItemRef {
        kind,
        name: name.to_string(),
    })
}

/// `override: {key: append|replace}` as a map.
fn overrides(it: &Item<'_>) -> Result<HashMap<String, String>, String> {
    match it.get("override") {
        None | Some(Value::Null) => Ok(HashMap::new()),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| match (scalar_string(k), scalar_string(v)) {
                (Some(k), Some(v)) if v == "append" || v == "replace" => Ok((k, v)),
                _ => Err("`override` values must be `append` or `replace`".to_string()),
            })
            .collect(),
        Some(_) => Err("`override` must be a mapping".into()),
    }
}

fn load_list(it: &Item<'_>, defs: &mut Defs) -> ItemResult {
    let name = it
        .string("list")
        .map_err(|m| (None, m))?
        .unwrap_or_default();
    let err = |m: String| (item_ref(ItemKind::List, &name), m);
    let items = it.strings("items").map_err(err)?;
    let append = it.boolean("append").map_err(err)?.unwrap_or(false)
        || overrides(it)
            .map_err(err)?
            .get("items")
            .is_some_and(|v| v == "append");
    let Some(items) = items else {
        return Err(err("missing `items`".into()));
    };
    if append {
        match defs.lists.get_mut(&name) {
            Some(l) => l.items.extend(items),
            None => return Err(err("`append` to a list that is not defined".into())),
        }
    } else {
        defs.lists.insert(name, ListDef { items });
    }
    Ok(())
}

fn load_macro(it: &Item<'_>, defs: &mut Defs, loc: Location, piece: Piece) -> ItemResult {
    let name = it
        .string("macro")
        .map_err(|m| (None, m))?
        .unwrap_or_default();
    let err = |m: String| (item_ref(ItemKind::Macro, &name), m);
    let cond = it.string("condition").map_err(err)?;
    let append = it.boolean("append").map_err(err)?.unwrap_or(false)
        || overrides(it)
            .map_err(err)?
            .get("condition")
            .is_some_and(|v| v == "append");
    let Some(cond) = cond else {
        return Err(err("missing `condition`".into()));
    };
    if append {
        match defs.macros.get_mut(&name) {
            Some(m) => m.cond.append(&cond, piece),
            None => return Err(err("`append` to a macro that is not defined".into())),
        }
    } else {
        defs.macros.insert(
            name.clone(),
            MacroDef {
                name,
                cond: CondText::new(cond, piece),
                loc,
            },
        );
    }
    Ok(())
}

fn exceptions(it: &Item<'_>) -> Result<Vec<ExceptionDef>, String> {
    let Some(v) = it.get("exceptions") else {
        return Ok(Vec::new());
    };
    let Value::Sequence(seq) = v else {
        return Err("`exceptions` must be a list".into());
    };
    let mut out = Vec::new();
    for e in seq {
        let Value::Mapping(m) = e else {
            return Err("each exception must be a mapping".into());
        };
        let ei = Item { map: m };
        let name = ei.string("name")?.ok_or("exception without `name`")?;
        let (fields, single) = match ei.get("fields") {
            Some(Value::Sequence(_)) => (ei.strings("fields")?.unwrap_or_default(), false),
            Some(v) => (
                vec![scalar_string(v).ok_or("exception `fields` must be a string or list")?],
                true,
            ),
            // Appending values to an exception defined earlier.
            None => (Vec::new(), false),
        };
        let comps = match ei.get("comps") {
            None | Some(Value::Null) => {
                vec![if single { "in" } else { "=" }.to_string(); fields.len()]
            }
            Some(Value::Sequence(_)) => ei.strings("comps")?.unwrap_or_default(),
            Some(v) => vec![scalar_string(v).ok_or("exception `comps` must be a string or list")?],
        };
        if !fields.is_empty() && comps.len() != fields.len() {
            return Err(format!(
                "exception {name:?}: `fields` and `comps` differ in length"
            ));
        }
        let mut values = Vec::new();
        match ei.get("values") {
            None | Some(Value::Null) => {}
            Some(Value::Sequence(vals)) => {
                if single {
                    let items: Vec<String> = vals.iter().filter_map(scalar_string).collect();
                    if !items.is_empty() {
                        values.push(vec![ExcItem::List(items)]);
                    }
                } else {
                    for tuple in vals {
                        let Value::Sequence(t) = tuple else {
                            return Err(format!("exception {name:?}: each value must be a list"));
                        };
                        if !fields.is_empty() && t.len() != fields.len() {
                            return Err(format!(
                                "exception {name:?}: a value has {} items for {} fields",
                                t.len(),
                                fields.len()
                            ));
                        }
                        let mut row = Vec::new();
                        for x in t {
                            row.push(match x {
                                Value::Sequence(l) => {
                                    ExcItem::List(l.iter().filter_map(scalar_string).collect())
                                }
                                other => ExcItem::Scalar(
                                    scalar_string(other)
                                        .ok_or_else(|| format!("exception {name:?}: bad value"))?,
                                ),
                            });
                        }
                        values.push(row);
                    }
                }
            }
            Some(_) => return Err(format!("exception {name:?}: `values` must be a list")),
        }
        out.push(ExceptionDef {
            name,
            fields,
            single,
            comps,
            values,
        });
    }
    Ok(out)
}

fn load_rule(
    it: &Item<'_>,
    defs: &mut Defs,
    loc: Location,
    piece: Piece,
    report: &mut LoadReport,
) -> ItemResult {
    let name = it
        .string("rule")
        .map_err(|m| (None, m))?
        .unwrap_or_default();
    let err = |m: String| (item_ref(ItemKind::Rule, &name), m);
    for k in it.map.keys().filter_map(scalar_string) {
        if !RULE_KEYS.contains(&k.as_str()) {
            report.warnings.push(RuleWarning {
                location: loc.clone(),
                item: item_ref(ItemKind::Rule, &name),
                message: format!("unknown key `{k}`, ignored"),
            });
        }
    }
    let cond = it.string("condition").map_err(err)?;
    let output = it.string("output").map_err(err)?;
    let desc = it.string("desc").map_err(err)?;
    let priority = match it.string("priority").map_err(err)? {
        Some(p) => Some(p.parse::<Priority>().map_err(|e| err(e.to_string()))?),
        None => None,
    };
    let tags = it.strings("tags").map_err(err)?;
    let enabled = it.boolean("enabled").map_err(err)?;
    let source = it.string("source").map_err(err)?;
    let skip = it.boolean("skip-if-unknown-filter").map_err(err)?;
    let exc = exceptions(it).map_err(err)?;
    let state = stateful(it).map_err(err)?;
    let sup = suppress(it).map_err(err)?;
    let append = it.boolean("append").map_err(err)?.unwrap_or(false);
    let ov = overrides(it).map_err(err)?;

    let existing = defs.rule_idx.get(&name).copied();
    if append || !ov.is_empty() {
        let Some(i) = existing else {
            return Err(err(
                "`append`/`override` of a rule that is not defined".into()
            ));
        };
        let r = &mut defs.rules[i];
        let mode = |k: &str| ov.get(k).map(String::as_str).or(append.then_some("append"));
        if let Some(c) = cond {
            match mode("condition") {
                Some("append") => r.cond.append(&c, piece),
                Some("replace") => r.cond = CondText::new(c, piece),
                _ => return Err(err("`condition` given without `override` for it".into())),
            }
        }
        if let Some(o) = output {
            match mode("output") {
                Some("append") => {
                    r.output.push(' ');
                    r.output.push_str(o.trim());
                }
                _ => r.output = o.trim().to_string(),
            }
        }
        if let Some(d) = desc {
            match mode("desc") {
                Some("append") => {
                    r.desc.push(' ');
                    r.desc.push_str(d.trim());
                }
                _ => r.desc = d.trim().to_string(),
            }
        }
        if let Some(p) = priority {
            r.priority = p;
        }
        if let Some(t) = tags {
            match mode("tags") {
                Some("append") => r.tags.extend(t),
                _ => r.tags = t,
            }
        }
        if let Some(e) = enabled {
            r.enabled = e;
        }
        if state.is_some() {
            r.stateful = state;
        }
        if sup.is_some() {
            r.suppress = sup;
        }
        if mode("exceptions") == Some("replace") {
            r.exceptions = exc;
        } else {
            for e in exc {
                match r.exceptions.iter_mut().find(|x| x.name == e.name) {
                    Some(x) if x.single => x.values.extend(e.values.into_iter().map(|row| {
                        let mut items = Vec::new();
                        for i in row {
                            match i {
                                ExcItem::Scalar(s) => items.push(s),
                                ExcItem::List(l) => items.extend(l),
                            }
                        }
                        vec![ExcItem::List(items)]
                    })),
                    Some(x) => {
                        if e.values.iter().any(|row| row.len() != x.fields.len()) {
                            return Err(err(format!(
                                "exception {:?}: appended values do not match its {} fields",
                                x.name,
                                x.fields.len()
                            )));
                        }
                        x.values.extend(e.values)
                    }
                    None if e.fields.is_empty() => {
                        return Err(err(format!("exception {:?} without `fields`", e.name)))
                    }
                    None => r.exceptions.push(e),
                }
            }
        }
        return Ok(());
    }

    // `- rule: X` with only `enabled` toggles an existing rule.
    if cond.is_none() && output.is_none() && priority.is_none() {
        if let (Some(i), Some(e)) = (existing, enabled) {
            defs.rules[i].enabled = e;
            return Ok(());
        }
    }
    if let Some(e) = exc.iter().find(|e| e.fields.is_empty()) {
        return Err(err(format!("exception {:?} without `fields`", e.name)));
    }
    let mut missing = Vec::new();
    if cond.is_none() {
        missing.push("condition");
    }
    if output.is_none() {
        missing.push("output");
    }
    if priority.is_none() {
        missing.push("priority");
    }
    if !missing.is_empty() {
        return Err(err(format!("missing `{}`", missing.join("`, `"))));
    }
    let def = RuleDef {
        name: name.clone(),
        cond: CondText::new(cond.unwrap_or_default(), piece),
        output: output.unwrap_or_default().trim().to_string(),
        desc: desc.unwrap_or_default().trim().to_string(),
        priority: priority.unwrap_or(Priority::Debug),
        tags: tags.unwrap_or_default(),
        enabled: enabled.unwrap_or(true),
        source: source.unwrap_or_else(|| "syscall".to_string()),
        exceptions: exc,
        skip_if_unknown_filter: skip.unwrap_or(false),
        stateful: state,
        suppress: sup,
        loc,
    };
    match existing {
        Some(i) => defs.rules[i] = def,
        None => {
            defs.rule_idx.insert(name, defs.rules.len());
            defs.rules.push(def);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_offsets_in_folded_scalars() {
        let raw = "- rule: r\n  condition: >\n    a and\n    b.c = x\n";
        let start = key_offset(raw, 0, raw.len(), "condition").unwrap();
        let text = "a and b.c = x\n";
        let off = locate_in_raw(raw, start, text, 6);
        assert_eq!(line_col(raw, off), (4, 5));
        let off = locate_in_raw(raw, start, text, text.len());
        assert_eq!(line_col(raw, off), (4, 12));
        let raw = "- macro: m\n  condition: a and b\n";
        let start = key_offset(raw, 0, raw.len(), "condition").unwrap();
        let off = locate_in_raw(raw, start, "a and b", 6);
        assert_eq!(line_col(raw, off), (2, 20));
    }
}
