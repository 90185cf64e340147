//! The tables Kestrel stores and the typed rows an append carries.

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use kestrel_event::{AuditRecord, DeadLetter};

use crate::schema;
use crate::StoreError;

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

/// Rows for one table, as appended.
#[derive(Debug, Clone, PartialEq)]
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
                (!r.audit_id.is_empty()).then(|| dedup_key(&r.audit_id, &r.stage))
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

/// A WAL entry: one byte naming the table, then the rows as an Arrow IPC stream. Arrow IPC is
/// the in-memory layout written out, so logging a batch costs little more than copying it, and
/// replay yields batches directly.
pub(crate) fn encode_wal_entry(table: Table, batch: &RecordBatch) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    out.push(table.index() as u8);
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// Reads a WAL entry back.
pub(crate) fn decode_wal_entry(entry: &[u8]) -> Result<(Table, Vec<RecordBatch>), StoreError> {
    let (&tag, ipc) = entry
        .split_first()
        .ok_or_else(|| StoreError::Wal("empty wal entry".into()))?;
    let table = Table::ALL
        .into_iter()
        .find(|t| t.index() == usize::from(tag))
        .ok_or_else(|| StoreError::Wal(format!("wal entry names unknown table {tag}")))?;
    let reader = StreamReader::try_new(std::io::Cursor::new(ipc), None)?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok((table, batches))
}

/// The de-duplication keys of a batch's rows: `(auditID, stage)` for audit events; other
/// tables have none.
pub(crate) fn dedup_keys(table: Table, batch: &RecordBatch) -> Vec<String> {
    if table != Table::Audit {
        return Vec::new();
    }
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    };
    let (Some(ids), Some(stages)) = (column("audit_id"), column("stage")) else {
        return Vec::new();
    };
    (0..batch.num_rows())
        .filter(|&i| ids.is_valid(i) && !ids.value(i).is_empty())
        .map(|i| dedup_key(ids.value(i), stages.value(i)))
        .collect()
}

fn dedup_key(audit_id: &str, stage: &str) -> String {
    format!("{audit_id}\u{0}{stage}")
}
