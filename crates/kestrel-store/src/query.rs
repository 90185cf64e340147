//! Read-only SQL over the store's tables with DataFusion.
//!
//! Each query gets a fresh session whose tables are a snapshot of the store: sealed Parquet
//! files and the rows still in memory, unioned. Only `SELECT` (and `EXPLAIN SELECT`) is
//! accepted: statements are checked on the parsed syntax tree before planning, and the session
//! refuses DDL, DML and other statements as a second line of defence. No function that reads or
//! writes files is registered, and URL tables (`SELECT * FROM '/etc/passwd'`) stay disabled.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, RecordBatch, StringArray, UInt16Array, UInt32Array, UInt64Array,
    UInt8Array,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::Dialect;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{col, lit, Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use futures::StreamExt;
use serde_json::Value;

use crate::manifest::FileRecord;
use crate::rows::Table;
use crate::store::{Shared, Store};
use std::path::Path;

/// Limits of one query.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Rows returned at most; the result says when it was cut.
    pub max_rows: usize,
    /// Time a query may run.
    pub timeout: Duration,
    /// Memory the query's operators may hold (sorts and aggregations fail beyond it).
    pub memory_limit_bytes: usize,
    /// Only rows with `time >= since` (nanoseconds since the epoch), in every table.
    pub since: Option<i64>,
    /// Only rows with `time < until`, in every table.
    pub until: Option<i64>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            max_rows: 10_000,
            timeout: Duration::from_secs(30),
            memory_limit_bytes: 512 * 1024 * 1024,
            since: None,
            until: None,
        }
    }
}

/// A query's answer: column names and rows of JSON values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// True when more rows matched than `max_rows`.
    pub truncated: bool,
    /// What the caller should know about the answer, like files quarantined while answering
    /// (their rows are missing from it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A query's answer as Arrow data.
#[derive(Debug, Clone)]
pub struct ArrowResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// True when more rows matched than `max_rows`.
    pub truncated: bool,
    /// What the caller should know about the answer, like files quarantined while answering.
    pub warnings: Vec<String>,
}

impl ArrowResult {
    /// The answer as an Arrow IPC stream (`application/vnd.apache.arrow.stream`).
    pub fn to_ipc_stream(&self) -> Result<Vec<u8>, QueryError> {
        use datafusion::arrow::ipc::writer::StreamWriter;
        let internal =
            |e: datafusion::arrow::error::ArrowError| QueryError::Internal(e.to_string());
        let mut w = StreamWriter::try_new(Vec::new(), &self.schema).map_err(internal)?;
        for b in &self.batches {
            w.write(b).map_err(internal)?;
        }
        w.finish().map_err(internal)?;
        w.into_inner().map_err(internal)
    }
}

/// Why a query was not answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement is not a read-only query.
    #[error("{0}")]
    Forbidden(String),
    /// The SQL does not parse or plan (unknown table or column, type error, ...).
    #[error("{0}")]
    Invalid(String),
    /// A limit (time, memory) was hit.
    #[error("{0}")]
    Limit(String),
    /// Something went wrong inside Kestrel; likely a bug.
    #[error("internal error, likely a bug: {0}")]
    Internal(String),
}

/// Checks that `sql` is a single read-only query, and says what it is otherwise. It uses
/// DataFusion's own parser, so its extensions (`CREATE EXTERNAL TABLE`, `COPY`) are seen too.
pub fn check_read_only(sql: &str) -> Result<(), QueryError> {
    let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
        .map_err(|e| QueryError::Invalid(format!("sql does not parse: {}", e.strip_backtrace())))?;
    match statements.len() {
        0 => Err(QueryError::Invalid("empty query".into())),
        1 => check_statement(&statements[0]),
        _ => Err(QueryError::Forbidden(
            "only one statement per query is allowed".into(),
        )),
    }
}

fn check_statement(s: &DFStatement) -> Result<(), QueryError> {
    let refused = |what: &str| {
        Err(QueryError::Forbidden(format!(
            "queries are read-only: only SELECT (and EXPLAIN SELECT) is allowed, not {what}"
        )))
    };
    match s {
        DFStatement::Statement(inner) => match inner.as_ref() {
            Statement::Query(_) => Ok(()),
            Statement::Explain { statement, .. } => {
                check_statement(&DFStatement::Statement(statement.clone()))
            }
            other => {
                let text = other.to_string();
                let kind = text
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_uppercase();
                refused(&kind)
            }
        },
        DFStatement::Explain(e) => check_statement(&e.statement),
        DFStatement::CreateExternalTable(_) => refused("CREATE EXTERNAL TABLE"),
        DFStatement::CopyTo(_) => refused("COPY"),
        DFStatement::Reset(_) => refused("RESET"),
    }
}

fn classify(e: DataFusionError) -> QueryError {
    match e {
        DataFusionError::ResourcesExhausted(m) => {
            QueryError::Limit(format!("query needs more memory than allowed: {m}"))
        }
        DataFusionError::Internal(m) => QueryError::Internal(m),
        DataFusionError::Context(ctx, inner) => match classify(*inner) {
            QueryError::Invalid(m) => QueryError::Invalid(format!("{ctx}: {m}")),
            other => other,
        },
        other => QueryError::Invalid(other.strip_backtrace()),
    }
}

/// Whether a failure came from reading a file (it may be corrupt) rather than from the query.
fn is_file_error(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::ParquetError(_)
        | DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ArrowError(..)
        | DataFusionError::External(_) => true,
        DataFusionError::Context(_, inner) => is_file_error(inner),
        DataFusionError::Shared(inner) => is_file_error(inner),
        DataFusionError::Execution(m) => m.contains("arquet"),
        _ => false,
    }
}

/// What is wrong with a sealed file, if anything: its size differs from the manifest's record,
/// its Parquet footer does not read, or (with `deep`) its bytes differ from the recorded
/// SHA-256.
fn file_problem(path: &Path, record: Option<&FileRecord>, deep: bool) -> Option<String> {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    if let Some(rec) = record {
        if rec.size != size {
            return Some(format!(
                "its size is {size} bytes, {} when sealed",
                rec.size
            ));
        }
    }
    let footer = std::fs::File::open(path)
        .map_err(DataFusionError::from)
        .and_then(|f| {
            datafusion::parquet::file::reader::SerializedFileReader::new(f)
                .map_err(DataFusionError::from)
        });
    if let Err(e) = footer {
        return Some(format!(
            "its parquet metadata does not read: {}",
            e.strip_backtrace()
        ));
    }
    if deep {
        match (crate::manifest::hash_file(path), record) {
            (Err(e), _) => return Some(format!("cannot read it: {e}")),
            (Ok((sha, _)), Some(rec)) if sha != rec.sha256 => {
                return Some("its bytes differ from those sealed (SHA-256 mismatch)".into())
            }
            _ => {}
        }
    }
    None
}

impl Store {
    /// Runs a read-only SQL query over every table; rows as JSON values.
    pub async fn query(&self, sql: &str, opts: &QueryOptions) -> Result<QueryResult, QueryError> {
        let answer = self.query_arrow(sql, opts).await?;
        let columns: Vec<String> = answer
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut rows = Vec::new();
        for batch in &answer.batches {
            append_json_rows(batch, &mut rows);
        }
        Ok(QueryResult {
            columns,
            rows,
            truncated: answer.truncated,
            warnings: answer.warnings,
        })
    }

    /// Runs a read-only SQL query over every table; rows as Arrow record batches (for Arrow
    /// IPC answers), at most `max_rows` of them.
    ///
    /// When reading a sealed file fails, the files are checked (size and footer first, then
    /// their SHA-256 against the manifest); a corrupt one is quarantined, the query runs again
    /// without it, and the answer carries a warning naming it.
    pub async fn query_arrow(
        &self,
        sql: &str,
        opts: &QueryOptions,
    ) -> Result<ArrowResult, QueryError> {
        check_read_only(sql)?;
        let mut warnings = Vec::new();
        loop {
            match self.run_query(sql, opts).await {
                Ok(mut result) => {
                    result.warnings = warnings;
                    return Ok(result);
                }
                Err((e, true)) if warnings.is_empty() => {
                    let found = self.quarantine_corrupt_files().await;
                    if found.is_empty() {
                        return Err(e);
                    }
                    warnings = found;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Finds corrupt sealed files of every table and quarantines them; returns one warning per
    /// file.
    async fn quarantine_corrupt_files(&self) -> Vec<String> {
        let mut candidates = Vec::new();
        for table in Table::ALL {
            for (path, rec) in self.recorded_files(table) {
                candidates.push((table, path, rec));
            }
        }
        let found = tokio::task::spawn_blocking(move || {
            let check = |deep: bool| {
                candidates
                    .iter()
                    .filter_map(|(t, p, r)| {
                        file_problem(p, r.as_ref(), deep).map(|why| (*t, p.clone(), why))
                    })
                    .collect::<Vec<_>>()
            };
            let quick = check(false);
            if quick.is_empty() {
                check(true)
            } else {
                quick
            }
        })
        .await
        .unwrap_or_default();
        let mut warnings = Vec::new();
        for (table, path, why) in found {
            match self.quarantine(table, &path, &why) {
                Ok(Some(dest)) => warnings.push(format!(
                    "{} file {} was quarantined to {} because {why}; its rows are missing from this answer",
                    table.name(),
                    path.display(),
                    dest.display()
                )),
                Ok(None) => {}
                Err(e) => tracing::error!(file = %path.display(), error = %e, "cannot quarantine a corrupt file"),
            }
        }
        warnings
    }

    /// One run of a query; the flag says whether the failure came from reading a file.
    async fn run_query(
        &self,
        sql: &str,
        opts: &QueryOptions,
    ) -> Result<ArrowResult, (QueryError, bool)> {
        let ctx = self.session(opts).map_err(|e| (e, false))?;
        let run = async {
            let options = SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let df = ctx
                .sql_with_options(sql, options)
                .await
                .map_err(|e| (classify(e), false))?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let file_error = |e: DataFusionError| {
                let from_file = is_file_error(&e);
                (classify(e), from_file)
            };
            let mut stream = df.execute_stream().await.map_err(file_error)?;
            let mut batches = Vec::new();
            let mut rows = 0usize;
            let mut truncated = false;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(file_error)?;
                let room = opts.max_rows - rows;
                if batch.num_rows() > room {
                    // More rows than allowed: the result is cut here.
                    truncated = true;
                    if room > 0 {
                        batches.push(batch.slice(0, room));
                    }
                    break;
                }
                rows += batch.num_rows();
                if batch.num_rows() > 0 {
                    batches.push(batch);
                }
            }
            Ok(ArrowResult {
                schema,
                batches,
                truncated,
                warnings: Vec::new(),
            })
        };
        tokio::time::timeout(opts.timeout, run).await.map_err(|_| {
            (
                QueryError::Limit(format!(
                    "query ran longer than the {}s limit",
                    opts.timeout.as_secs_f64()
                )),
                false,
            )
        })?
    }

    fn session(&self, opts: &QueryOptions) -> Result<SessionContext, QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(opts.memory_limit_bytes, 1.0)
            .build_arc()
            .map_err(classify)?;
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(2);
        // PostgreSQL's dialect rather than the generic one, whose projection trailing commas
        // read `SELECT pod, cluster FROM t` as `SELECT pod, CLUSTER ...` and fail.
        config.options_mut().sql_parser.dialect = Dialect::PostgreSQL;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        crate::functions::register(&ctx);
        for table in Table::ALL {
            let (files, batches) = self.snapshot(table);
            let provider = Arc::new(SnapshotTable {
                schema: table.schema(),
                files,
                batches,
                shared: self.shared(),
            });
            if opts.since.is_none() && opts.until.is_none() {
                ctx.register_table(table.name(), provider)
                    .map_err(classify)?;
                continue;
            }
            // The query's time range applies to every table: a view that filters `time`,
            // pushed down into the scan, where it prunes partitions.
            let mut range: Option<Expr> = None;
            let ts = |ns: i64| {
                lit(ScalarValue::TimestampNanosecond(
                    Some(ns),
                    Some("UTC".into()),
                ))
            };
            if let Some(since) = opts.since {
                range = Some(col("time").gt_eq(ts(since)));
            }
            if let Some(until) = opts.until {
                let upper = col("time").lt(ts(until));
                range = Some(match range {
                    Some(r) => r.and(upper),
                    None => upper,
                });
            }
            let view = ctx
                .read_table(provider)
                .and_then(|df| df.filter(range.expect("a bound is set")))
                .map_err(classify)?
                .into_view();
            ctx.register_table(table.name(), view).map_err(classify)?;
        }
        Ok(ctx)
    }
}

/// One table as a query sees it: sealed files plus in-memory rows.
#[derive(Debug)]
struct SnapshotTable {
    schema: SchemaRef,
    files: Vec<std::path::PathBuf>,
    batches: Vec<RecordBatch>,
    shared: Arc<Shared>,
}

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// A timestamp literal in nanoseconds since the epoch.
fn timestamp_nanos(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => Some(t.saturating_mul(1_000)),
        ScalarValue::TimestampMillisecond(Some(t), _) => Some(t.saturating_mul(1_000_000)),
        ScalarValue::TimestampSecond(Some(t), _) => Some(t.saturating_mul(1_000_000_000)),
        _ => None,
    }
}

fn is_time_column(e: &Expr) -> bool {
    match e {
        Expr::Column(c) => c.name == "time",
        _ => false,
    }
}

/// Narrows `[lo, hi]` (inclusive, nanoseconds) by what `filter` says about `time`. Only
/// conjunctions of comparisons with timestamp literals count; anything else leaves the bounds
/// as they are, which is always safe (DataFusion still applies every filter to every row).
fn narrow_time_bounds(filter: &Expr, lo: &mut i64, hi: &mut i64) {
    use datafusion::logical_expr::{Between, BinaryExpr, Operator};
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                narrow_time_bounds(left, lo, hi);
                narrow_time_bounds(right, lo, hi);
                return;
            }
            // `time <op> literal`, or `literal <op> time` with the operator swapped.
            let (op, t) = match (left.as_ref(), right.as_ref()) {
                (l, Expr::Literal(v, _)) if is_time_column(l) => (*op, timestamp_nanos(v)),
                (Expr::Literal(v, _), r) if is_time_column(r) => match op.swap() {
                    Some(op) => (op, timestamp_nanos(v)),
                    None => return,
                },
                _ => return,
            };
            let Some(t) = t else { return };
            match op {
                Operator::Gt => *lo = (*lo).max(t.saturating_add(1)),
                Operator::GtEq => *lo = (*lo).max(t),
                Operator::Lt => *hi = (*hi).min(t.saturating_sub(1)),
                Operator::LtEq => *hi = (*hi).min(t),
                Operator::Eq => {
                    *lo = (*lo).max(t);
                    *hi = (*hi).min(t);
                }
                _ => {}
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_time_column(expr) => {
            if let Expr::Literal(v, _) = low.as_ref() {
                if let Some(t) = timestamp_nanos(v) {
                    *lo = (*lo).max(t);
                }
            }
            if let Expr::Literal(v, _) = high.as_ref() {
                if let Some(t) = timestamp_nanos(v) {
                    *hi = (*hi).min(t);
                }
            }
        }
        _ => {}
    }
}

/// The first nanosecond of the hour a sealed file's `date=YYYY-MM-DD/hour=HH` directories name.
fn partition_start(path: &std::path::Path) -> Option<i64> {
    let hour_dir = path.parent()?;
    let hour: u32 = hour_dir
        .file_name()?
        .to_str()?
        .strip_prefix("hour=")?
        .parse()
        .ok()?;
    let date = hour_dir
        .parent()?
        .file_name()?
        .to_str()?
        .strip_prefix("date=")?;
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let start = day.and_hms_opt(hour, 0, 0)?.and_utc();
    start.timestamp_nanos_opt()
}

/// The files whose partition can hold rows within `[lo, hi]`; files whose partition cannot be
/// read from their path are always kept.
fn prune_files(files: &[std::path::PathBuf], lo: i64, hi: i64) -> Vec<std::path::PathBuf> {
    files
        .iter()
        .filter(|f| match partition_start(f) {
            Some(start) => start <= hi && start.saturating_add(NANOS_PER_HOUR) > lo,
            None => true,
        })
        .cloned()
        .collect()
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Filters prune files and row groups; DataFusion still applies them to every row.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        for f in filters {
            narrow_time_bounds(f, &mut lo, &mut hi);
        }
        let files = prune_files(&self.files, lo, hi);
        let pruned = (self.files.len() - files.len()) as u64;
        self.shared
            .stats
            .query_files_pruned
            .fetch_add(pruned, std::sync::atomic::Ordering::Relaxed);
        if !files.is_empty() {
            let urls = files
                .iter()
                .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(Arc::clone(&self.schema));
            let listing = ListingTable::try_new(config)?;
            inputs.push(listing.scan(state, projection, filters, limit).await?);
        }
        if !self.batches.is_empty() || inputs.is_empty() {
            let mem = MemTable::try_new(Arc::clone(&self.schema), vec![self.batches.clone()])?;
            inputs.push(mem.scan(state, projection, filters, limit).await?);
        }
        UnionExec::try_new(inputs)
    }
}

fn append_json_rows(batch: &RecordBatch, rows: &mut Vec<Vec<Value>>) {
    for i in 0..batch.num_rows() {
        rows.push(
            batch
                .columns()
                .iter()
                .map(|col| json_value(col, i))
                .collect(),
        );
    }
}

/// One cell as JSON: numbers and booleans as such, timestamps as RFC 3339 strings, lists as
/// arrays, everything else as its display text.
pub fn json_value(col: &ArrayRef, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    macro_rules! num {
        ($t:ty) => {
            Value::from(
                col.as_any()
                    .downcast_ref::<$t>()
                    .expect("type checked")
                    .value(i),
            )
        };
    }
    match col.data_type() {
        DataType::Boolean => Value::Bool(
            col.as_any()
                .downcast_ref::<BooleanArray>()
                .expect("type checked")
                .value(i),
        ),
        DataType::Int8 => num!(Int8Array),
        DataType::Int16 => num!(Int16Array),
        DataType::Int32 => num!(Int32Array),
        DataType::Int64 => num!(Int64Array),
        DataType::UInt8 => num!(UInt8Array),
        DataType::UInt16 => num!(UInt16Array),
        DataType::UInt32 => num!(UInt32Array),
        DataType::UInt64 => num!(UInt64Array),
        DataType::Float32 => num!(Float32Array),
        DataType::Float64 => serde_json::Number::from_f64(
            col.as_any()
                .downcast_ref::<Float64Array>()
                .expect("type checked")
                .value(i),
        )
        .map(Value::Number)
        .unwrap_or(Value::Null),
        DataType::Utf8 => Value::String(
            col.as_any()
                .downcast_ref::<StringArray>()
                .expect("type checked")
                .value(i)
                .to_owned(),
        ),
        DataType::Utf8View => Value::String(col.as_string_view().value(i).to_owned()),
        DataType::LargeUtf8 => Value::String(col.as_string::<i64>().value(i).to_owned()),
        DataType::Timestamp(unit, _) => {
            use datafusion::arrow::datatypes::{
                TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
                TimestampSecondType,
            };
            let nanos = match unit {
                TimeUnit::Second => col
                    .as_primitive::<TimestampSecondType>()
                    .value(i)
                    .saturating_mul(1_000_000_000),
                TimeUnit::Millisecond => col
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i)
                    .saturating_mul(1_000_000),
                TimeUnit::Microsecond => col
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(i)
                    .saturating_mul(1_000),
                TimeUnit::Nanosecond => col.as_primitive::<TimestampNanosecondType>().value(i),
            };
            Value::String(kestrel_event::time::to_rfc3339(nanos))
        }
        DataType::List(_) => {
            let values = col.as_list::<i32>().value(i);
            Value::Array((0..values.len()).map(|j| json_value(&values, j)).collect())
        }
        DataType::LargeList(_) => {
            let values = col.as_list::<i64>().value(i);
            Value::Array((0..values.len()).map(|j| json_value(&values, j)).collect())
        }
        _ => match ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()) {
            Ok(f) => Value::String(f.value(i).to_string()),
            Err(_) => Value::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_select_and_explain_pass() {
        assert!(check_read_only("SELECT 1").is_ok());
        assert!(check_read_only("select verb, count(*) from audit group by verb").is_ok());
        assert!(check_read_only("EXPLAIN SELECT * FROM audit").is_ok());
        assert!(check_read_only("WITH x AS (SELECT 1) SELECT * FROM x").is_ok());
        for bad in [
            "CREATE TABLE t (a INT)",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "INSERT INTO audit VALUES (1)",
            "DELETE FROM audit",
            "UPDATE audit SET verb = 'x'",
            "DROP TABLE audit",
            "COPY audit TO '/tmp/x.parquet'",
            "SET datafusion.execution.batch_size = 1",
            "CREATE VIEW v AS SELECT 1",
            "EXPLAIN INSERT INTO audit VALUES (1)",
            "SELECT 1; DROP TABLE audit",
        ] {
            assert!(
                matches!(check_read_only(bad), Err(QueryError::Forbidden(_))),
                "{bad} was not refused"
            );
        }
    }
}
