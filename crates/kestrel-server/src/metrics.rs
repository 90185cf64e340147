//! The server's Prometheus metrics, all named `kestrel_<subsystem>_<name>_<unit>_total` and
//! declared here, with bounded label values.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use kestrel_store::{Store, Table};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// Labels of ingest counters: which input (`audit_webhook`, ...), a fixed set.
pub type SourceLabel = Vec<(&'static str, &'static str)>;

/// Counters the request handlers update.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events stored, by source.
    pub ingest_events: Family<SourceLabel, Counter>,
    /// Events dropped as re-sent duplicates, by source.
    pub ingest_duplicates: Family<SourceLabel, Counter>,
    /// Inputs dead-lettered, by source.
    pub ingest_dead_letters: Family<SourceLabel, Counter>,
    /// Request bodies refused as a whole, by source.
    pub ingest_rejected_bodies: Family<SourceLabel, Counter>,
    /// Rule matches.
    pub rule_matches: Counter,
    /// Alerts created or re-opened.
    pub alerts_notified: Counter,
    /// Requests refused for a missing or wrong token.
    pub auth_failures: Counter,
}

/// Source label value.
pub fn source(s: &'static str) -> SourceLabel {
    vec![("source", s)]
}

/// Store counters, read at scrape time.
#[derive(Debug)]
struct StoreCollector(Arc<Store>);

impl prometheus_client::collector::Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        for table in Table::ALL {
            let v = s.rows_written[table as usize].load(Ordering::Relaxed);
            let name = format!("kestrel_store_{}_rows_written", table.name());
            let e = encoder.encode_descriptor(
                &name,
                "rows written to the table's WAL",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(e)?;
        }
        let counters: [(&str, &str, u64); 11] = [
            (
                "kestrel_store_wal_bytes",
                "bytes appended to the WAL",
                s.wal_bytes.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_wal_syncs",
                "WAL fsyncs (group commits)",
                s.wal_syncs.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_duplicate_rows",
                "rows dropped as duplicates",
                s.duplicate_rows.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_flushes",
                "WAL segments sealed into Parquet",
                s.flushes.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_flush_errors",
                "failed attempts to seal a segment",
                s.flush_errors.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_files_written",
                "Parquet files written",
                s.files_written.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_files_deleted_by_retention",
                "Parquet files deleted by retention",
                s.files_deleted_by_retention.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_files_quarantined",
                "Parquet files moved to quarantine because they failed to open or decode",
                s.files_quarantined.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_unrecorded_files",
                "files found in a table directory that no manifest entry records (run kestrel verify)",
                s.unrecorded_files.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_appends_refused_disk_full",
                "appends refused because free space fell below the table's reserve",
                s.appends_refused_disk_full.load(Ordering::Relaxed),
            ),
            (
                "kestrel_store_manifest_errors",
                "failed manifest appends (the seal or retention is retried)",
                s.manifest_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(e)?;
        }
        let e = encoder.encode_descriptor(
            "kestrel_store_free_bytes",
            "free bytes on the data directory's file system at the last append",
            None,
            MetricType::Gauge,
        )?;
        prometheus_client::metrics::gauge::ConstGauge::new(
            s.free_bytes.load(Ordering::Relaxed) as i64
        )
        .encode(e)?;
        Ok(())
    }
}

/// Notification counters, read at scrape time.
#[derive(Debug)]
struct AlertingCollector(Arc<kestrel_alert::Alerting>);

impl prometheus_client::collector::Collector for AlertingCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        let counters: [(&str, &str, u64); 4] = [
            (
                "kestrel_alerts_deliveries_delivered",
                "notifications delivered to a receiver channel",
                s.delivered.load(Ordering::Relaxed),
            ),
            (
                "kestrel_alerts_deliveries_failed",
                "notifications given up after every attempt, or dropped on a full queue",
                s.failed.load(Ordering::Relaxed),
            ),
            (
                "kestrel_alerts_delivery_retries",
                "failed delivery attempts that were retried",
                s.retries.load(Ordering::Relaxed),
            ),
            (
                "kestrel_alerts_alertmanager_reposts",
                "re-posts of firing alerts to an Alertmanager",
                s.resends.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(e)?;
        }
        Ok(())
    }
}

/// State of stateful rules, read at scrape time.
#[derive(Debug)]
struct DetectionCollector(Arc<crate::detection::Detection>);

impl prometheus_client::collector::Collector for DetectionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::gauge::ConstGauge;
        let s = self.0.stats();
        let gauges: [(&str, &str, i64); 2] = [
            (
                "kestrel_rules_state_keys",
                "keys held by stateful rules (thresholds, sequences, first-seen, baselines)",
                s.keys as i64,
            ),
            (
                "kestrel_rules_state_bytes",
                "estimated heap bytes of the state of stateful rules",
                s.approx_bytes as i64,
            ),
        ];
        for (name, help, v) in gauges {
            let e = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(e)?;
        }
        let counters: [(&str, &str, u64); 2] = [
            (
                "kestrel_rules_state_evictions",
                "keys evicted because a stateful rule's state was full",
                s.evictions,
            ),
            (
                "kestrel_rules_state_saves",
                "snapshots of the state of stateful rules written",
                self.0.saves(),
            ),
        ];
        for (name, help, v) in counters {
            let e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(e)?;
        }
        Ok(())
    }
}

/// The registry behind `/metrics`.
#[derive(Debug)]
pub struct MetricsRegistry {
    registry: Registry,
}

impl MetricsRegistry {
    pub fn new(
        metrics: &Metrics,
        store: Arc<Store>,
        alerting: Arc<kestrel_alert::Alerting>,
        detection: Arc<crate::detection::Detection>,
    ) -> Self {
        let mut registry = Registry::default();
        registry.register(
            "kestrel_ingest_events",
            "events stored",
            metrics.ingest_events.clone(),
        );
        registry.register(
            "kestrel_ingest_duplicates",
            "events dropped as re-sent duplicates",
            metrics.ingest_duplicates.clone(),
        );
        registry.register(
            "kestrel_ingest_dead_letters",
            "inputs kept aside as dead letters",
            metrics.ingest_dead_letters.clone(),
        );
        registry.register(
            "kestrel_ingest_rejected_bodies",
            "request bodies refused as a whole",
            metrics.ingest_rejected_bodies.clone(),
        );
        registry.register(
            "kestrel_rules_matches",
            "rule matches",
            metrics.rule_matches.clone(),
        );
        registry.register(
            "kestrel_alerts_notified",
            "alerts created or re-opened",
            metrics.alerts_notified.clone(),
        );
        registry.register(
            "kestrel_http_auth_failures",
            "requests refused for a missing or wrong token",
            metrics.auth_failures.clone(),
        );
        registry.register_collector(Box::new(StoreCollector(store)));
        registry.register_collector(Box::new(AlertingCollector(alerting)));
        registry.register_collector(Box::new(DetectionCollector(detection)));
        MetricsRegistry { registry }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String does not fail");
        out
    }
}
