//! `kestrel rules`: run Falco-format rules offline over events of any source, test, lint and
//! explain rules, and list the fields rules may read. Glue over `kestrel-rules` and
//! `kestrel-parse`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kestrel_event::AuditEvent;
use kestrel_parse::{parse_event_list, parse_json_lines, AuditParseConfig};
use kestrel_rules::{
    fields, ruletest, Detector, LoadReport, OwnedEvent, RuleMatching, RuleSet, Source,
};
use serde::Serialize;

use crate::cli::{FieldsFormat, RuleMatchingArg, RulesAction, RulesArgs, RulesFormat};

pub fn run(args: RulesArgs) -> Result<()> {
    match args.action {
        RulesAction::Run {
            rules,
            events,
            source,
            rule_matching,
            format,
        } => run_rules(&rules, &events, &source, rule_matching, format),
        RulesAction::Lint { files } => lint(&files),
        RulesAction::Test { file, rules } => test(&file, &rules),
        RulesAction::Explain { rule, rules } => explain(&rule, &rules),
        RulesAction::Fields { source, format } => list_fields(source.as_deref(), format),
    }
}

fn source_arg(name: &str) -> Result<Source> {
    Source::from_name(name).with_context(|| {
        let known: Vec<&str> = Source::ALL.iter().map(|s| s.name()).collect();
        format!("unknown source {name:?} (known: {})", known.join(", "))
    })
}

fn list_fields(source: Option<&str>, format: FieldsFormat) -> Result<()> {
    let source = source.map(source_arg).transpose()?;
    let all = RuleSet::fields();
    let selected: Vec<&fields::FieldInfo> = all
        .iter()
        .filter(|f| source.is_none_or(|s| f.sources.contains(s)))
        .collect();
    let text = match (format, source) {
        (FieldsFormat::Markdown, None) => fields::catalog::markdown(),
        (FieldsFormat::Text, None) => fields::catalog::text(),
        (FieldsFormat::Json, _) => serde_json::to_string_pretty(&selected)? + "\n",
        (FieldsFormat::Markdown, Some(_)) => {
            let mut s = String::from("| Field | Type | Description |\n|---|---|---|\n");
            for f in &selected {
                s.push_str(&format!(
                    "| `{}` | {} | {} |\n",
                    f.display_name(),
                    f.ty.name(),
                    f.desc.replace('|', "\\|")
                ));
            }
            s
        }
        (FieldsFormat::Text, Some(_)) => selected
            .iter()
            .map(|f| format!("{:<40} {:<7} {}\n", f.display_name(), f.ty.name(), f.desc))
            .collect(),
    };
    print!("{text}");
    Ok(())
}

/// Reads rule files in order; with none, the bundled pack.
fn read_sources(files: &[PathBuf]) -> Result<Vec<(String, String)>> {
    if files.is_empty() {
        return Ok(RuleSet::bundled_sources());
    }
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read rule file {}", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// Loads rules; any load error is fatal here (offline runs must not silently lose a rule).
fn load(files: &[PathBuf]) -> Result<(RuleSet, LoadReport)> {
    let sources = read_sources(files)?;
    let (rs, report) = RuleSet::from_sources(&sources);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if !report.errors.is_empty() {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        bail!("{} rule error(s): no rules were run", report.errors.len());
    }
    Ok((rs, report))
}

/// One alert as a JSON line, with Falco's JSON output keys.
#[derive(Serialize)]
struct Alert<'a> {
    time: String,
    rule: &'a str,
    priority: &'a str,
    output: &'a str,
    output_fields: &'a std::collections::BTreeMap<String, String>,
    source: &'a str,
    tags: &'a [String],
    /// Matches this alert stands for (thresholds, suppression); 1 for plain rules.
    count: u64,
}

/// Events of `source` from a file: audit events as [`read_audit_events`] reads them, other
/// sources' rows as JSON lines or one JSON array. Returns the events and the number of items
/// that could not be read (each reported).
fn read_events(path: &Path, source: Source) -> Result<(Vec<OwnedEvent>, usize)> {
    if source == Source::K8sAudit {
        let (evs, bad) = read_audit_events(path)?;
        return Ok((
            evs.into_iter()
                .map(|e| OwnedEvent::Audit(Box::new(e)))
                .collect(),
            bad,
        ));
    }
    let data = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read events {}", path.display()))?;
    let name = path.display().to_string();
    let items: Vec<(String, serde_json::Result<serde_json::Value>)> =
        if data.trim_start().starts_with('[') {
            match serde_json::from_str::<Vec<serde_json::Value>>(&data) {
                Ok(v) => v
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (format!("item {}", i + 1), Ok(v)))
                    .collect(),
                Err(e) => bail!("{name}: not a JSON array of {source} rows: {e}"),
            }
        } else {
            data.lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .map(|(i, l)| (format!("line {}", i + 1), serde_json::from_str(l)))
                .collect()
        };
    let mut events = Vec::with_capacity(items.len());
    let mut bad = 0;
    for (at, item) in items {
        match item
            .map_err(|e| e.to_string())
            .and_then(|v| OwnedEvent::from_json(source, v))
        {
            Ok(e) => events.push(e),
            Err(e) => {
                bad += 1;
                eprintln!("warning: {name}: {at}: {e}");
            }
        }
    }
    Ok((events, bad))
}

/// Audit events from a file: an `EventList` (or a JSON array of events) or JSON lines.
/// Returns the events and the number of items that are not audit events.
fn read_audit_events(path: &Path) -> Result<(Vec<AuditEvent>, usize)> {
    let data =
        std::fs::read(path).with_context(|| format!("cannot read events {}", path.display()))?;
    let name = path.display().to_string();
    let cfg = AuditParseConfig::default();
    let now = kestrel_event::time::now_nanos();
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    let first_line = data.split(|b| *b == b'\n').next().unwrap_or_default();
    let is_list = first == Some(&b'[')
        || serde_json::from_slice::<serde_json::Value>(first_line)
            .ok()
            .is_some_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some("EventList"))
        || (first == Some(&b'{') && serde_json::from_slice::<serde_json::Value>(&data).is_ok());
    let batch = if is_list {
        parse_event_list(&data, &cfg, &name, now).map_err(|e| anyhow::anyhow!("{name}: {e}"))?
    } else {
        parse_json_lines(&data, 1, &cfg, &name, now)
    };
    for d in &batch.dead_letters {
        let at = d.location.as_deref().unwrap_or("input");
        eprintln!(
            "warning: {name}: {at}: not an audit event ({}): {}",
            d.kind, d.reason
        );
    }
    Ok((batch.events, batch.dead_letters.len()))
}

fn run_rules(
    rules: &[PathBuf],
    events: &Path,
    source: &str,
    matching: RuleMatchingArg,
    format: RulesFormat,
) -> Result<()> {
    let source = source_arg(source)?;
    let (rs, _) = load(rules)?;
    let rs = rs.with_rule_matching(match matching {
        RuleMatchingArg::All => RuleMatching::All,
        RuleMatchingArg::First => RuleMatching::First,
    });
    let (evs, bad) = read_events(events, source)?;
    // Stateful rules count with the events' own clock; events without a time use the previous
    // event's.
    let mut detector = Detector::new(rs);
    let mut clock = 0i64;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut alerts = 0usize;
    for e in &evs {
        let e = e.as_event();
        if let Some(t) = e.time() {
            clock = t;
        }
        let time = kestrel_event::time::to_rfc3339(clock);
        for m in detector.evaluate(&e, clock) {
            alerts += 1;
            match format {
                RulesFormat::Json => {
                    let a = Alert {
                        time: time.clone(),
                        count: m.count,
                        rule: &m.rule,
                        priority: m.priority.as_str(),
                        output: &m.output,
                        output_fields: &m.output_fields,
                        source: &m.source,
                        tags: &m.tags,
                    };
                    serde_json::to_writer(&mut out, &a)?;
                    writeln!(out)?;
                }
                RulesFormat::Text => {
                    writeln!(out, "{time}: {} {}", m.priority, m.output)?;
                }
            }
        }
    }
    out.flush()?;
    eprintln!(
        "{} {source} event(s), {bad} unreadable, {alerts} alert(s) from {} rule(s)",
        evs.len(),
        detector.rules().active_len()
    );
    Ok(())
}

/// Runs a rule test file (events and expected alerts); its `rules` are read relative to it,
/// unless `--rules` names the files.
fn test(file: &Path, rules: &[PathBuf]) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read rule test file {}", file.display()))?;
    let parsed = ruletest::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let files: Vec<PathBuf> = if rules.is_empty() {
        parsed.rules.iter().map(|r| dir.join(r)).collect()
    } else {
        rules.to_vec()
    };
    let (rs, _) = load(&files)?;
    let report = ruletest::run(&std::sync::Arc::new(rs), &parsed);
    for f in &report.failures {
        println!("FAIL {f}");
    }
    if !report.untested_rules.is_empty() {
        println!(
            "rules no case expects: {}",
            report.untested_rules.join(", ")
        );
    }
    println!("{} passed, {} failed", report.passed, report.failures.len());
    if !report.failures.is_empty() {
        bail!("{} rule test(s) failed", report.failures.len());
    }
    Ok(())
}

fn lint(files: &[PathBuf]) -> Result<()> {
    if files.is_empty() {
        bail!("give one or more rule files to lint");
    }
    let sources = read_sources(files)?;
    let (rs, report) = RuleSet::from_sources(&sources);
    for e in &report.errors {
        println!("error: {e}");
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    let all = rs.rules();
    println!(
        "{} rule(s) loaded, {} active, {} error(s), {} warning(s)",
        all.len(),
        rs.active_len(),
        report.errors.len(),
        report.warnings.len()
    );
    if !report.errors.is_empty() {
        bail!("{} rule error(s)", report.errors.len());
    }
    Ok(())
}

fn explain(rule: &str, files: &[PathBuf]) -> Result<()> {
    let (rs, _) = load(files)?;
    let Some(x) = rs.explain(rule) else {
        let known: Vec<String> = rs.rules().into_iter().map(|r| r.name).collect();
        bail!(
            "no rule named {rule:?} (loaded: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    println!("rule:      {}", x.rule);
    println!("file:      {}", x.file);
    println!("source:    {}", x.source);
    println!("priority:  {}", x.priority);
    println!("active:    {}", x.active);
    if let Some(c) = &x.condition {
        println!("condition: {c}");
    }
    println!("fields:    {}", x.fields.join(", "));
    let facts = |v: &Option<Vec<String>>| v.as_ref().map_or("any".to_string(), |v| v.join(", "));
    println!("verbs:     {}", facts(&x.verbs));
    println!("resources: {}", facts(&x.resources));
    println!("stages:    {}", facts(&x.stages));
    Ok(())
}
