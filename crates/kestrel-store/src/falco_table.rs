//! The `falco` table: events posted by Falco's `http_output`. Its schema is derived from the
//! code that fills it, as for the agent tables; `uuid` is the key that makes a re-sent event
//! land once.

use std::sync::OnceLock;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use kestrel_event::FalcoEvent;

use crate::agent_tables::Columns;

/// Arrow batch of `falco` rows.
pub(crate) fn falco_batch(rows: &[FalcoEvent]) -> RecordBatch {
    let mut c = Columns::new(rows.len());
    c.time("time", rows.iter().map(|r| Some(r.time)));
    c.text("cluster", rows.iter().map(|r| r.cluster.as_deref()));
    c.text("hostname", rows.iter().map(|r| r.hostname.as_deref()));
    c.text("uuid", rows.iter().map(|r| r.uuid.as_deref()));
    c.text("rule", rows.iter().map(|r| Some(r.rule.as_str())));
    c.text("priority", rows.iter().map(|r| r.priority.as_deref()));
    c.text("source", rows.iter().map(|r| r.source.as_deref()));
    c.text("output", rows.iter().map(|r| r.output.as_deref()));
    c.text_list("tags", rows.iter().map(|r| r.tags.as_slice()));
    c.text("namespace", rows.iter().map(|r| r.namespace.as_deref()));
    c.text("pod", rows.iter().map(|r| r.pod.as_deref()));
    c.text(
        "container_id",
        rows.iter().map(|r| r.container_id.as_deref()),
    );
    c.text("container", rows.iter().map(|r| r.container.as_deref()));
    c.text("image", rows.iter().map(|r| r.image.as_deref()));
    c.text(
        "output_fields",
        rows.iter().map(|r| r.output_fields.as_deref()),
    );
    c.finish()
}

/// Schema of the `falco` table.
pub(crate) fn falco_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA.get_or_init(|| falco_batch(&[]).schema()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_nullable_and_rows_fit_the_schema() {
        let row = FalcoEvent {
            time: 1,
            rule: "Terminal shell in container".into(),
            tags: vec!["container".into(), "shell".into()],
            ..Default::default()
        };
        let batch = falco_batch(&[row.clone(), row]);
        assert_eq!(batch.schema(), falco_schema());
        assert_eq!(batch.num_rows(), 2);
        assert!(falco_schema().fields().iter().all(|f| f.is_nullable()));
        assert_eq!(falco_schema().field(0).name(), "time");
    }
}
