//! Load diagnostics: errors and warnings that name the file, the rule/macro/list and, where
//! known, the line and column.

use std::fmt;

/// `file:line:col`; line and column are 1-based and absent when unknown.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub file: String,
    pub line: Option<u32>,
    pub col: Option<u32>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.col {
                write!(f, ":{c}")?;
            }
        }
        Ok(())
    }
}

/// The kind of item a diagnostic is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Rule,
    Macro,
    List,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Rule => "rule",
            ItemKind::Macro => "macro",
            ItemKind::List => "list",
        })
    }
}

/// A named item of a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRef {
    pub kind: ItemKind,
    pub name: String,
}

impl fmt::Display for ItemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("invalid yaml: {0}")]
    Yaml(String),
    /// A malformed item: missing or mistyped key, bad priority, append to nothing.
    #[error("{0}")]
    Schema(String),
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("undefined macro `{0}`")]
    UndefinedMacro(String),
    /// Any other problem found while compiling a condition, output or exception.
    #[error("{0}")]
    Compile(String),
}

/// A load error. The item it names did not load; every other item did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    pub location: Location,
    /// The rule, macro or list at fault; `None` for file-level problems.
    pub item: Option<ItemRef>,
    /// For errors found inside a macro while compiling a rule: the rule that failed.
    pub rule: Option<String>,
    pub kind: ErrorKind,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location)?;
        if let Some(r) = &self.rule {
            write!(f, "rule {r:?}: ")?;
        }
        if let Some(i) = &self.item {
            write!(f, "{i}: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// A load warning: the rules still load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleWarning {
    pub location: Location,
    pub item: Option<ItemRef>,
    pub message: String,
}

impl fmt::Display for RuleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location)?;
        if let Some(i) = &self.item {
            write!(f, "{i}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Everything found while loading rule files. Bad items are reported here and left out; the
/// rest of the rule set loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub errors: Vec<RuleError>,
    pub warnings: Vec<RuleWarning>,
}

impl LoadReport {
    /// No errors (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// The names of the rules that failed to load.
    pub fn failed_rules(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .errors
            .iter()
            .filter_map(|e| {
                e.rule.as_deref().or(e
                    .item
                    .as_ref()
                    .filter(|i| i.kind == ItemKind::Rule)
                    .map(|i| i.name.as_str()))
            })
            .collect();
        v.dedup();
        v
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
