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

use crate::manifest::HashingWriter;
use crate::wal::sync_dir;
use crate::StoreError;

/// A file a seal wrote: where, how big, and its SHA-256 (hex), for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedFile {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// Columns that get a bloom filter: the identities people search for.
pub(crate) const BLOOM_COLUMNS: &[&str] = &[
    "audit_id",
    "user_name",
    "namespace",
    "name",
    "source_ip",
    "pod",
    "client_ip",
    "query_name",
    "src_ip",
    "dst_ip",
    "uuid",
];

/// Rows per row group: large enough to scan fast, small enough to prune on time.
pub(crate) const ROW_GROUP_ROWS: usize = 128 * 1024;

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
/// `date=`/`hour=` partition their rows fall in, rows sorted by time. Returns the files written.
///
/// Rows usually arrive in time order already; then the batches are written as they are, with no
/// copy. Otherwise they are concatenated and sorted first.
pub fn write_partitioned(
    table_dir: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    segment: u64,
) -> Result<Vec<SealedFile>, StoreError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(Vec::new());
    }
    let sorted: Vec<RecordBatch> = if is_time_ordered(batches) {
        batches.to_vec()
    } else {
        let all = concat_batches(schema, batches)?;
        let order = sort_to_indices(
            all.column(0),
            Some(SortOptions {
                descending: false,
                nulls_first: false,
            }),
            None,
        )?;
        vec![take_record_batch(&all, &order)?]
    };

    let props = writer_properties(schema);
    let mut written = Vec::new();
    let mut open: Option<OpenFile> = None;
    for batch in &sorted {
        let times = time_column(batch);
        let mut start = 0;
        while start < batch.num_rows() {
            let hour = hour_at(times, start);
            let mut end = start + 1;
            while end < batch.num_rows() && hour_at(times, end) == hour {
                end += 1;
            }
            if open.as_ref().is_none_or(|f| f.hour != hour) {
                if let Some(done) = open.take() {
                    written.push(done.seal()?);
                }
                let part = kestrel_event::time::partition_of(hour * NANOS_PER_HOUR);
                let dir = table_dir
                    .join(format!("date={}", part.0))
                    .join(format!("hour={}", part.1));
                fs::create_dir_all(&dir)?;
                open = Some(OpenFile::create(
                    dir.join(file_name(segment, written.len())),
                    hour,
                    schema,
                    props.clone(),
                )?);
            }
            if let Some(f) = open.as_mut() {
                f.writer.write(&batch.slice(start, end - start))?;
            }
            start = end;
        }
    }
    if let Some(done) = open.take() {
        written.push(done.seal()?);
    }
    Ok(written)
}

fn time_column(batch: &RecordBatch) -> &TimestampNanosecondArray {
    batch
        .column(0)
        .as_any()
        .downcast_ref::<TimestampNanosecondArray>()
        .expect("column 0 of every table is `time`")
}

/// Whether the `time` column never decreases across all batches (and has no nulls).
fn is_time_ordered(batches: &[RecordBatch]) -> bool {
    let mut last = i64::MIN;
    for batch in batches {
        let times = time_column(batch);
        if times.null_count() > 0 {
            return false;
        }
        for &t in times.values().iter() {
            if t < last {
                return false;
            }
            last = t;
        }
    }
    true
}

/// The UTC hour (since the epoch) row `i` falls in; rows of one hour share a partition.
fn hour_at(times: &TimestampNanosecondArray, i: usize) -> i64 {
    let nanos = if times.is_null(i) { 0 } else { times.value(i) };
    nanos.div_euclid(NANOS_PER_HOUR)
}

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// A Parquet file being written under a temporary name.
struct OpenFile {
    path: PathBuf,
    tmp: PathBuf,
    hour: i64,
    writer: ArrowWriter<HashingWriter<File>>,
}

impl OpenFile {
    fn create(
        path: PathBuf,
        hour: i64,
        schema: &SchemaRef,
        props: WriterProperties,
    ) -> Result<Self, StoreError> {
        let tmp = path.with_extension("parquet.tmp");
        let writer = ArrowWriter::try_new(
            HashingWriter::new(File::create(&tmp)?),
            schema.clone(),
            Some(props),
        )?;
        Ok(OpenFile {
            path,
            tmp,
            hour,
            writer,
        })
    }

    /// Finishes the file, makes it durable and renames it into place.
    fn seal(self) -> Result<SealedFile, StoreError> {
        let (file, sha256, size) = self.writer.into_inner()?.finish();
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        sync_dir(self.path.parent().expect("a file has a parent"))?;
        Ok(SealedFile {
            path: self.path,
            size,
            sha256,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{audit_batch, audit_schema};
    use kestrel_event::AuditRecord;

    fn rows(times: &[i64]) -> RecordBatch {
        let recs: Vec<AuditRecord> = times
            .iter()
            .map(|&t| AuditRecord {
                time: t,
                audit_id: t.to_string(),
                ..Default::default()
            })
            .collect();
        audit_batch(&recs)
    }

    fn times_in(path: &Path) -> Vec<i64> {
        read_file(path, &["time"])
            .unwrap()
            .iter()
            .flat_map(|b| time_column(b).values().to_vec())
            .collect()
    }

    #[test]
    fn files_hold_their_hour_sorted_whether_input_is_ordered_or_not() {
        let h = NANOS_PER_HOUR;
        for batches in [
            vec![rows(&[1, 2]), rows(&[3, h + 1]), rows(&[h + 2])],
            vec![rows(&[h + 2, 3]), rows(&[1, h + 1]), rows(&[2])],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let sealed = write_partitioned(dir.path(), &audit_schema(), &batches, 7).unwrap();
            for f in &sealed {
                assert_eq!(
                    crate::manifest::hash_file(&f.path).unwrap(),
                    (f.sha256.clone(), f.size)
                );
            }
            let files: Vec<PathBuf> = sealed.into_iter().map(|f| f.path).collect();
            assert_eq!(files.len(), 2);
            assert!(files[0].ends_with("date=1970-01-01/hour=00/00000000000000000007-0.parquet"));
            assert!(files[1].ends_with("date=1970-01-01/hour=01/00000000000000000007-1.parquet"));
            assert_eq!(times_in(&files[0]), vec![1, 2, 3]);
            assert_eq!(times_in(&files[1]), vec![h + 1, h + 2]);
            assert_eq!(segment_of(&files[1]), Some(7));
        }
    }
}
