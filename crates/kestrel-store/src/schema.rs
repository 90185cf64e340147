//! Arrow schemas of Kestrel's tables and the conversion of typed rows into Arrow record batches.
//!
//! Every column is nullable, even where a row always has a value: a column written as
//! non-nullable in newer files makes DataFusion answer `IS NULL` wrongly over older files that
//! lack it.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use kestrel_event::{AuditRecord, DeadLetter};

/// The type of every `time` column: UTC nanoseconds.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn utf8_list(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        true,
    )
}

/// Schema of the `audit` table.
pub fn audit_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("time", time_type(), true),
                Field::new("request_received_time", time_type(), true),
                utf8("cluster"),
                utf8("audit_id"),
                utf8("stage"),
                utf8("level"),
                utf8("api_version"),
                utf8("verb"),
                utf8("request_uri"),
                utf8("user_name"),
                utf8("user_uid"),
                utf8_list("user_groups"),
                utf8("user_extra"),
                utf8("impersonated_user_name"),
                utf8_list("impersonated_user_groups"),
                utf8("source_ip"),
                utf8_list("source_ips"),
                utf8("user_agent"),
                utf8("resource"),
                utf8("subresource"),
                utf8("namespace"),
                utf8("name"),
                utf8("object_uid"),
                utf8("api_group"),
                utf8("object_api_version"),
                utf8("resource_version"),
                Field::new("response_code", DataType::Int32, true),
                utf8("response_status"),
                utf8("response_reason"),
                utf8("response_message"),
                utf8("authorization_decision"),
                utf8("authorization_reason"),
                utf8("annotations"),
                utf8("request_object"),
                utf8("response_object"),
            ]))
        })
        .clone()
}

/// Schema of the `dead_letter` table.
pub fn dead_letter_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("time", time_type(), true),
                utf8("source"),
                utf8("kind"),
                utf8("reason"),
                utf8("location"),
                Field::new("size_bytes", DataType::Int64, true),
                utf8("payload"),
            ]))
        })
        .clone()
}

/// A column type as people read it: SQL-like and short (`string`, `timestamp`, `list<string>`).
pub fn sql_type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            "unsigned".into()
        }
        DataType::Float32 | DataType::Float64 => "double".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("list<{}>", sql_type_name(f.data_type()))
        }
        other => other.to_string(),
    }
}

/// Each column's name and [`sql_type_name`], in schema order.
pub fn column_types(schema: &Schema) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), sql_type_name(f.data_type())))
        .collect()
}

fn strings<'a>(it: impl Iterator<Item = Option<&'a str>>, cap: usize) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(cap, cap * 16);
    for v in it {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn string_lists<'a>(it: impl Iterator<Item = &'a [String]>, cap: usize) -> ArrayRef {
    let mut b = ListBuilder::with_capacity(StringBuilder::new(), cap);
    for vs in it {
        for v in vs {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn times(it: impl Iterator<Item = Option<i64>>, cap: usize) -> ArrayRef {
    let mut b = TimestampNanosecondBuilder::with_capacity(cap).with_timezone("UTC");
    for v in it {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

/// Arrow batch of `audit` rows.
pub fn audit_batch(rows: &[AuditRecord]) -> RecordBatch {
    let n = rows.len();
    macro_rules! s {
        ($f:ident) => {
            strings(rows.iter().map(|r| r.$f.as_deref()), n)
        };
    }
    macro_rules! sr {
        ($f:ident) => {
            strings(rows.iter().map(|r| Some(r.$f.as_str())), n)
        };
    }
    let mut codes = Int32Builder::with_capacity(n);
    for r in rows {
        codes.append_option(r.response_code);
    }
    let columns: Vec<ArrayRef> = vec![
        times(rows.iter().map(|r| Some(r.time)), n),
        times(rows.iter().map(|r| r.request_received_time), n),
        s!(cluster),
        sr!(audit_id),
        sr!(stage),
        sr!(level),
        s!(api_version),
        sr!(verb),
        sr!(request_uri),
        sr!(user_name),
        s!(user_uid),
        string_lists(rows.iter().map(|r| r.user_groups.as_slice()), n),
        s!(user_extra),
        s!(impersonated_user_name),
        string_lists(
            rows.iter().map(|r| r.impersonated_user_groups.as_slice()),
            n,
        ),
        s!(source_ip),
        string_lists(rows.iter().map(|r| r.source_ips.as_slice()), n),
        s!(user_agent),
        s!(resource),
        s!(subresource),
        s!(namespace),
        s!(name),
        s!(object_uid),
        s!(api_group),
        s!(object_api_version),
        s!(resource_version),
        Arc::new(codes.finish()),
        s!(response_status),
        s!(response_reason),
        s!(response_message),
        s!(authorization_decision),
        s!(authorization_reason),
        s!(annotations),
        s!(request_object),
        s!(response_object),
    ];
    RecordBatch::try_new(audit_schema(), columns).expect("audit columns match audit_schema")
}

/// Arrow batch of `dead_letter` rows.
pub fn dead_letter_batch(rows: &[DeadLetter]) -> RecordBatch {
    let n = rows.len();
    let mut sizes = Int64Builder::with_capacity(n);
    for r in rows {
        sizes.append_value(r.size_bytes);
    }
    let columns: Vec<ArrayRef> = vec![
        times(rows.iter().map(|r| Some(r.time)), n),
        strings(rows.iter().map(|r| Some(r.source.as_str())), n),
        strings(rows.iter().map(|r| Some(r.kind.as_str())), n),
        strings(rows.iter().map(|r| Some(r.reason.as_str())), n),
        strings(rows.iter().map(|r| r.location.as_deref()), n),
        Arc::new(sizes.finish()),
        strings(rows.iter().map(|r| Some(r.payload.as_str())), n),
    ];
    RecordBatch::try_new(dead_letter_schema(), columns)
        .expect("dead letter columns match dead_letter_schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_nullable() {
        for schema in [audit_schema(), dead_letter_schema()] {
            assert!(schema.fields().iter().all(|f| f.is_nullable()));
            assert_eq!(schema.field(0).name(), "time");
        }
    }

    #[test]
    fn column_types_read_like_sql() {
        let cols = column_types(&audit_schema());
        assert_eq!(cols[0], ("time".to_string(), "timestamp".to_string()));
        let find = |n: &str| cols.iter().find(|(c, _)| c == n).map(|(_, t)| t.as_str());
        assert_eq!(find("user_groups"), Some("list<string>"));
        assert_eq!(find("response_code"), Some("int"));
        assert_eq!(find("verb"), Some("string"));
    }

    #[test]
    fn audit_rows_become_a_batch() {
        let row = AuditRecord {
            time: 1,
            audit_id: "a".into(),
            user_groups: vec!["g1".into(), "g2".into()],
            response_code: Some(201),
            ..Default::default()
        };
        let batch = audit_batch(&[row.clone(), row]);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.num_columns(), audit_schema().fields().len());
    }
}
