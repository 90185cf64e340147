//! Kestrel's storage: a write-ahead log with group commit, tables sealed into Hive-partitioned
//! Parquet (`<root>/<table>/date=YYYY-MM-DD/hour=HH/*.parquet`), retention, and read-only SQL
//! with DataFusion over sealed and unsealed rows alike.

mod agent_tables;
mod falco_table;
pub mod functions;
pub mod manifest;
mod parquet_files;
mod query;
mod rows;
mod schema;
pub mod schema_doc;
mod store;
pub mod verify;
pub mod wal;

pub use agent_tables::ingest_batches;
pub use query::{check_read_only, json_value, ArrowResult, QueryError, QueryOptions, QueryResult};
pub use rows::{Table, TableRows};
pub use schema::{audit_schema, column_types, dead_letter_schema, sql_type_name};
pub use store::{free_bytes, AppendOutcome, QuarantinedFile, Store, StoreConfig, StoreStats};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("wal write failed: {0}")]
    Wal(String),
    #[error("the store refuses writes after a wal failure; restart to recover")]
    Poisoned,
    #[error("the store is shut down")]
    Closed,
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// Free space on the data directory is below the table's reserve; retry later.
    #[error("the data directory has {free_bytes} bytes free, below the {reserve_bytes}-byte reserve for {table}; retry later")]
    DiskFull {
        table: &'static str,
        free_bytes: u64,
        reserve_bytes: u64,
    },
}
