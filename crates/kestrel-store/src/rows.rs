//! The tables Kestrel stores and the typed rows an append carries.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use kestrel_event::{AuditRecord, DeadLetter};
use serde::{Deserialize, Serialize};

use crate::schema;

/// A table of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Kubernetes audit events.
    Audit,
    /// Input that could not become a record, with the reason.
    DeadLetter,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 2] = [Table::Audit, Table::DeadLetter];

    /// The table's SQL name, which is also its directory name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Audit => "audit",
            Table::DeadLetter => "dead_letter",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Audit => schema::audit_schema(),
            Table::DeadLetter => schema::dead_letter_schema(),
        }
    }

    /// Retention in days when the configuration does not say.
    pub fn default_retention_days(self) -> u32 {
        match self {
            Table::Audit => 180,
            Table::DeadLetter => 30,
        }
    }

    /// Looks a table up by its SQL name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Rows for one table, as appended and as written to the WAL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "rows", rename_all = "snake_case")]
pub enum TableRows {
    Audit(Vec<AuditRecord>),
    DeadLetter(Vec<DeadLetter>),
}

impl TableRows {
    pub fn table(&self) -> Table {
        match self {
            TableRows::Audit(_) => Table::Audit,
            TableRows::DeadLetter(_) => Table::DeadLetter,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TableRows::Audit(r) => r.len(),
            TableRows::DeadLetter(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The de-duplication key of row `i`, if its table has one: `(auditID, stage)` for audit
    /// events, so the API server's retries never count twice.
    pub(crate) fn dedup_key(&self, i: usize) -> Option<String> {
        match self {
            TableRows::Audit(r) => {
                let r = &r[i];
                (!r.audit_id.is_empty()).then(|| format!("{}\u{0}{}", r.audit_id, r.stage))
            }
            TableRows::DeadLetter(_) => None,
        }
    }

    /// Keeps only the rows whose index `keep` accepts.
    pub(crate) fn retain_indices(&mut self, keep: &[bool]) {
        fn retain<T>(v: &mut Vec<T>, keep: &[bool]) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        }
        match self {
            TableRows::Audit(r) => retain(r, keep),
            TableRows::DeadLetter(r) => retain(r, keep),
        }
    }

    /// The rows as an Arrow batch of the table's schema.
    pub fn to_batch(&self) -> RecordBatch {
        match self {
            TableRows::Audit(r) => schema::audit_batch(r),
            TableRows::DeadLetter(r) => schema::dead_letter_batch(r),
        }
    }
}
