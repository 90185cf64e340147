//! The tables Kestrel stores and the typed rows an append carries.

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use kestrel_event::{AuditRecord, DeadLetter, FalcoEvent};

use crate::agent_tables;
use crate::falco_table;
use crate::schema;
use crate::StoreError;

/// A table of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Kubernetes audit events.
    Audit,
    /// Input that could not become a record, with the reason.
    DeadLetter,
    /// Container output (stdout/stderr) from the node agents.
    ContainerLog,
    /// Ingress controller access logs.
    Ingress,
    /// CoreDNS queries.
    Dns,
    /// Netfilter (network policy) packet logs.
    Netflow,
    /// systemd journal entries.
    Journal,
    /// Kubernetes events.
    K8sEvent,
    /// Events posted by Falco (`http_output`).
    Falco,
}

impl Table {
    /// Every table, in a fixed order.
    pub const ALL: [Table; 9] = [
        Table::Audit,
        Table::DeadLetter,
        Table::ContainerLog,
        Table::Ingress,
        Table::Dns,
        Table::Netflow,
        Table::Journal,
        Table::K8sEvent,
        Table::Falco,
    ];

    /// The table's SQL name, which is also its directory name.
    pub fn name(self) -> &'static str {
        match self {
            Table::Audit => "audit",
            Table::DeadLetter => "dead_letter",
            Table::ContainerLog => "container_log",
            Table::Ingress => "ingress",
            Table::Dns => "dns",
            Table::Netflow => "netflow",
            Table::Journal => "journal",
            Table::K8sEvent => "k8s_event",
            Table::Falco => "falco",
        }
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Audit => schema::audit_schema(),
            Table::DeadLetter => schema::dead_letter_schema(),
            Table::Falco => falco_table::falco_schema(),
            agent_table => {
                agent_tables::schema(agent_table).expect("every other table is fed by agents")
            }
        }
    }

    /// Retention in days when the configuration does not say.
    pub fn default_retention_days(self) -> u32 {
        match self {
            Table::Audit | Table::Falco => 180,
            Table::DeadLetter => 30,
            Table::ContainerLog | Table::Journal => 30,
            Table::Ingress | Table::Dns | Table::Netflow | Table::K8sEvent => 90,
        }
    }

    /// Looks a table up by its SQL name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether rows come in agent batches, de-duplicated by their `batch_id` column.
    pub(crate) fn has_batch_id(self) -> bool {
        !matches!(self, Table::Audit | Table::DeadLetter | Table::Falco)
    }
}

/// Rows for one table, as appended.
#[derive(Debug, Clone, PartialEq)]
pub enum TableRows {
    Audit(Vec<AuditRecord>),
    DeadLetter(Vec<DeadLetter>),
    /// Falco events, de-duplicated by their `uuid`.
    Falco(Vec<FalcoEvent>),
    /// Rows of an agent batch, already in the table's Arrow schema, stored all or nothing: when
    /// a batch with the same `batch_key` was stored before, none are.
    Batch {
        table: Table,
        rows: RecordBatch,
        batch_key: String,
    },
}

impl TableRows {
    pub fn table(&self) -> Table {
        match self {
            TableRows::Audit(_) => Table::Audit,
            TableRows::DeadLetter(_) => Table::DeadLetter,
            TableRows::Falco(_) => Table::Falco,
            TableRows::Batch { table, .. } => *table,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TableRows::Audit(r) => r.len(),
            TableRows::DeadLetter(r) => r.len(),
            TableRows::Falco(r) => r.len(),
            TableRows::Batch { rows, .. } => rows.num_rows(),
        }
    }

    /// The key of an all-or-nothing agent batch.
    pub(crate) fn batch_key(&self) -> Option<String> {
        match self {
            TableRows::Batch {
                table, batch_key, ..
            } => Some(batch_dedup_key(*table, batch_key)),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The de-duplication key of row `i`, if its table has one: `(auditID, stage)` for audit
    /// events, so the API server's retries never count twice; `uuid` for Falco events.
    pub(crate) fn dedup_key(&self, i: usize) -> Option<String> {
        match self {
            TableRows::Audit(r) => {
                let r = &r[i];
                (!r.audit_id.is_empty()).then(|| dedup_key(&r.audit_id, &r.stage))
            }
            TableRows::Falco(r) => r[i].uuid.as_deref().map(falco_dedup_key),
            TableRows::DeadLetter(_) | TableRows::Batch { .. } => None,
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
            TableRows::Falco(r) => retain(r, keep),
            TableRows::Batch { rows, .. } => {
                // All or nothing: a batch is either wholly kept or wholly dropped.
                if !keep.iter().all(|k| *k) {
                    *rows = rows.slice(0, 0);
                }
            }
        }
    }

    /// The rows as an Arrow batch of the table's schema.
    pub fn to_batch(&self) -> RecordBatch {
        match self {
            TableRows::Audit(r) => schema::audit_batch(r),
            TableRows::DeadLetter(r) => schema::dead_letter_batch(r),
            TableRows::Falco(r) => falco_table::falco_batch(r),
            TableRows::Batch { rows, .. } => rows.clone(),
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

/// The de-duplication keys of a batch's rows: `(auditID, stage)` for audit events, the
/// agent batch identities for agent-fed tables; the dead-letter table has none.
pub(crate) fn dedup_keys(table: Table, batch: &RecordBatch) -> Vec<String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
    };
    if table.has_batch_id() {
        let Some(ids) = column("batch_id") else {
            return Vec::new();
        };
        // Rows of one agent batch are contiguous, so comparing with the previous row finds
        // each identity once without hashing every row.
        let mut keys: Vec<String> = Vec::new();
        let mut previous: Option<&str> = None;
        for i in (0..ids.len()).filter(|&i| ids.is_valid(i)) {
            let id = ids.value(i);
            if previous != Some(id) {
                keys.push(batch_dedup_key(table, id));
                previous = Some(id);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        return keys;
    }
    if table == Table::Falco {
        let Some(uuids) = column("uuid") else {
            return Vec::new();
        };
        return (0..uuids.len())
            .filter(|&i| uuids.is_valid(i))
            .map(|i| falco_dedup_key(uuids.value(i)))
            .collect();
    }
    if table != Table::Audit {
        return Vec::new();
    }
    let (Some(ids), Some(stages)) = (column("audit_id"), column("stage")) else {
        return Vec::new();
    };
    (0..batch.num_rows())
        .filter(|&i| ids.is_valid(i) && !ids.value(i).is_empty())
        .map(|i| dedup_key(ids.value(i), stages.value(i)))
        .collect()
}

/// The de-duplication key of an agent batch in a table: `<table>\x01<batch id>`.
fn batch_dedup_key(table: Table, batch_id: &str) -> String {
    format!("{}\u{1}{batch_id}", table.name())
}

/// Whether a de-duplication key names an agent batch (else an audit event).
pub(crate) fn is_batch_key(key: &str) -> bool {
    key.contains('\u{1}')
}

/// The de-duplication key of a Falco event: `falco\x02<uuid>` (never equal to an audit key,
/// whose separator is NUL).
fn falco_dedup_key(uuid: &str) -> String {
    format!("falco\u{2}{uuid}")
}

fn dedup_key(audit_id: &str, stage: &str) -> String {
    format!("{audit_id}\u{0}{stage}")
}
