//! Writing sealed Parquet files: rows sorted by time, split into `date=`/`hour=` partitions,
//! zstd-compressed, with statistics and bloom filters on identity columns.
//!
//! A file is written under a temporary name, fsynced, renamed into place and its directory
//! fsynced, so a reader never sees half a file. Names carry the WAL segment whose rows they hold
//! (`<segment:020>-<n>.parquet`); recovery deletes the files of any segment still in the WAL.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, RecordBatch, TimestampNanosecondArray};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch, SortOptions};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;

use crate::wal::sync_dir;
use crate::StoreError;

/// Columns that get a bloom filter: the identities people search for.
const BLOOM_COLUMNS: &[&str] = &[
    "audit_id",
    "user_name",
    "namespace",
    "name",
    "source_ip",
    "pod",
];

/// Rows per row group: large enough to scan fast, small enough to prune on time.
const ROW_GROUP_ROWS: usize = 128 * 1024;

fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]));
    for col in BLOOM_COLUMNS {
        if schema.field_with_name(col).is_ok() {
            props = props.set_column_bloom_filter_enabled(ColumnPath::from(*col), true);
        }
    }
    props.build()
}

/// Name of the `n`-th file written from WAL segment `segment`.
pub fn file_name(segment: u64, n: usize) -> String {
    format!("{segment:020}-{n}.parquet")
}

/// The WAL segment a sealed file was written from, read back from its name.
pub fn segment_of(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".parquet")?;
    stem.split('-').next()?.parse().ok()
}

/// Writes `batches` (all of `schema`) as sealed Parquet files under `table_dir`, one per
/// `date=`/`hour=` partition their rows fall in. Returns the paths written.
pub fn write_partitioned(
    table_dir: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    segment: u64,
) -> Result<Vec<PathBuf>, StoreError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(Vec::new());
    }
    let all = concat_batches(schema, batches)?;
    let order = sort_to_indices(
        all.column(0),
        Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
        None,
    )?;
    let sorted = take_record_batch(&all, &order)?;
    let times = sorted
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .expect("column 0 of every table is `time`");

    let props = writer_properties(schema);
    let mut written = Vec::new();
    let mut start = 0;
    while start < sorted.num_rows() {
        let part = partition_at(times, start);
        let mut end = start + 1;
        while end < sorted.num_rows() && partition_at(times, end) == part {
            end += 1;
        }
        let dir = table_dir
            .join(format!("date={}", part.0))
            .join(format!("hour={}", part.1));
        fs::create_dir_all(&dir)?;
        let path = dir.join(file_name(segment, written.len()));
        write_file(&path, &sorted.slice(start, end - start), props.clone())?;
        written.push(path);
        start = end;
    }
    Ok(written)
}

fn partition_at(times: &TimestampNanosecondArray, i: usize) -> (String, String) {
    let nanos = if times.is_null(i) { 0 } else { times.value(i) };
    kestrel_event::time::partition_of(nanos)
}

fn write_file(path: &Path, batch: &RecordBatch, props: WriterProperties) -> Result<(), StoreError> {
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp)?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().expect("a file has a parent"))?;
    Ok(())
}

/// Every sealed file under `table_dir` (and the `.tmp` leftovers of interrupted writes, which
/// the caller deletes).
pub fn scan_table_dir(table_dir: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut sealed = Vec::new();
    let mut leftovers = Vec::new();
    if !table_dir.exists() {
        return Ok((sealed, leftovers));
    }
    let mut stack = vec![table_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                sealed.push(path);
            } else if path.extension().is_some_and(|e| e == "tmp") {
                leftovers.push(path);
            }
        }
    }
    sealed.sort();
    Ok((sealed, leftovers))
}

/// Reads a sealed file back (used by recovery to rebuild de-duplication keys, and by tests).
pub fn read_file(path: &Path, columns: &[&str]) -> Result<Vec<RecordBatch>, StoreError> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::arrow::ProjectionMask;
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let schema = builder.parquet_schema();
    let indices: Vec<usize> = schema
        .columns()
        .iter()
        .enumerate()
        .filter(|(_, c)| columns.contains(&c.path().string().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::leaves(schema, indices);
    let reader = builder.with_projection(mask).build()?;
    let mut out = Vec::new();
    for batch in reader {
        out.push(batch?);
    }
    Ok(out)
}
