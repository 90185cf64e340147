//! Alerts and their delivery log in SQLite: mutable state (status, counts) that SQL over
//! Parquet is not made for.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use kestrel_event::time::to_rfc3339;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::model::{fingerprint, Alert, AlertStatus, NewAlert};
use crate::quiet::QuietSeries;
use crate::silence::Silence;
use crate::AlertError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    priority TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT NOT NULL,
    tags TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    event TEXT,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    status_by TEXT,
    status_at TEXT
);
CREATE INDEX IF NOT EXISTS alerts_last_seen ON alerts (last_seen_ns);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    receiver TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_alert ON deliveries (alert_id);
CREATE TABLE IF NOT EXISTS delivery_alerts (
    delivery_id INTEGER NOT NULL,
    alert_id TEXT NOT NULL,
    PRIMARY KEY (alert_id, delivery_id)
);
CREATE TABLE IF NOT EXISTS quiet_series (
    key TEXT PRIMARY KEY,
    series TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at TEXT NOT NULL
);
";

/// Columns added after the first release, for databases made before them.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("alerts", "generator_url", "TEXT"),
    ("deliveries", "channel", "TEXT NOT NULL DEFAULT 'webhook'"),
    ("deliveries", "group_key", "TEXT NOT NULL DEFAULT ''"),
    ("deliveries", "reason", "TEXT NOT NULL DEFAULT 'update'"),
    ("deliveries", "created_at", "TEXT NOT NULL DEFAULT ''"),
];

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    pub priority: Option<String>,
    pub rule: Option<String>,
    /// Only alerts whose `namespace` label is this.
    pub namespace: Option<String>,
    /// Only alerts seen at or after this time (UTC nanoseconds).
    pub since_ns: Option<i64>,
    pub limit: Option<usize>,
}

/// How often one rule matched, summed over its alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStats {
    pub rule: String,
    /// Distinct alerts (label sets) the rule raised.
    pub alerts: i64,
    /// Matches, duplicates included.
    pub matches: i64,
    /// The latest match, RFC 3339.
    pub last_seen: String,
}

/// One notification to one channel of a receiver, and its fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub receiver: String,
    /// `webhook`, `alertmanager`, `slack`, `dingtalk`, `pagerduty`, `sms` or `email`.
    pub channel: String,
    pub group_key: String,
    /// `update`, `repeat` or `escalation N`.
    pub reason: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The alerts the notification was about.
    pub alert_ids: Vec<String>,
}

/// A delivery about to be attempted.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    pub receiver: &'a str,
    pub channel: &'a str,
    pub group_key: &'a str,
    pub reason: &'a str,
    pub alert_ids: Vec<&'a str>,
}

/// Alert state in a SQLite file.
#[derive(Debug)]
pub struct AlertStore {
    conn: Mutex<Connection>,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, decl) in ADDED_COLUMNS {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let has = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .filter_map(Result::ok)
            .any(|c| c == *column);
        if !has {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

impl AlertStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, AlertError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        add_missing_columns(&conn)?;
        Ok(AlertStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an occurrence. Returns the alert and whether it is new (or firing again after
    /// being resolved); a repeat of a firing or acknowledged alert only counts.
    pub fn record(&self, new: &NewAlert) -> Result<(Alert, bool), AlertError> {
        let id = fingerprint(&new.labels);
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let existing: Option<(String, i64)> = tx
            .query_row(
                "SELECT status, last_seen_ns FROM alerts WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let event = new.event.as_ref().map(serde_json::to_string).transpose()?;
        let notify = match existing {
            None => {
                tx.execute(
                    "INSERT INTO alerts (id, rule, priority, source, status, output, tags, labels,
                        annotations, event, first_seen, last_seen, first_seen_ns, last_seen_ns, count,
                        generator_url)
                     VALUES (?1, ?2, ?3, ?4, 'firing', ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?11, 1, ?12)",
                    params![
                        id,
                        new.rule,
                        new.priority,
                        new.source,
                        new.output,
                        serde_json::to_string(&new.tags)?,
                        serde_json::to_string(&new.labels)?,
                        serde_json::to_string(&new.annotations)?,
                        event,
                        to_rfc3339(new.time),
                        new.time,
                        new.generator_url,
                    ],
                )?;
                true
            }
            Some((status, last_seen_ns)) => {
                let reopen = status == AlertStatus::Resolved.as_str();
                let latest = new.time >= last_seen_ns;
                tx.execute(
                    "UPDATE alerts SET count = count + 1,
                        output = CASE WHEN ?2 THEN ?3 ELSE output END,
                        event = CASE WHEN ?2 THEN ?4 ELSE event END,
                        annotations = CASE WHEN ?2 THEN ?5 ELSE annotations END,
                        last_seen = CASE WHEN ?2 THEN ?6 ELSE last_seen END,
                        last_seen_ns = max(last_seen_ns, ?7),
                        first_seen = CASE WHEN ?7 < first_seen_ns THEN ?6 ELSE first_seen END,
                        first_seen_ns = min(first_seen_ns, ?7),
                        status = CASE WHEN ?8 THEN 'firing' ELSE status END,
                        status_by = CASE WHEN ?8 THEN NULL ELSE status_by END,
                        status_at = CASE WHEN ?8 THEN NULL ELSE status_at END
                     WHERE id = ?1",
                    params![
                        id,
                        latest,
                        new.output,
                        event,
                        serde_json::to_string(&new.annotations)?,
                        to_rfc3339(new.time),
                        new.time,
                        reopen,
                    ],
                )?;
                reopen
            }
        };
        tx.commit()?;
        let alert = get_alert(&conn, &id)?.expect("alert was just written");
        Ok((alert, notify))
    }

    /// Alerts, most recent first.
    pub fn list(&self, filter: &AlertFilter) -> Result<Vec<Alert>, AlertError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT * FROM alerts
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR lower(priority) = lower(?2))
               AND (?3 IS NULL OR rule = ?3)
               AND (?4 IS NULL OR json_extract(labels, '$.namespace') = ?4)
               AND (?5 IS NULL OR last_seen_ns >= ?5)
             ORDER BY last_seen_ns DESC LIMIT ?6",
        )?;
        let limit = filter.limit.unwrap_or(1000) as i64;
        let rows = stmt.query_map(
            params![
                filter.status.map(AlertStatus::as_str),
                filter.priority,
                filter.rule,
                filter.namespace,
                filter.since_ns,
                limit
            ],
            alert_from_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Alerts not resolved, for the dispatcher after a restart.
    pub fn open_alerts(&self) -> Result<Vec<Alert>, AlertError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT * FROM alerts WHERE status != 'resolved'")?;
        let rows = stmt.query_map([], alert_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// One alert by id.
    pub fn get(&self, id: &str) -> Result<Option<Alert>, AlertError> {
        get_alert(&self.conn(), id)
    }

    /// Sets an alert's status, saying who did it; `None` when there is no such alert.
    pub fn set_status(
        &self,
        id: &str,
        status: AlertStatus,
        by: &str,
    ) -> Result<Option<Alert>, AlertError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE alerts SET status = ?2, status_by = ?3, status_at = ?4 WHERE id = ?1",
            params![id, status.as_str(), by, now()],
        )?;
        if n == 0 {
            return Ok(None);
        }
        get_alert(&conn, id)
    }

    /// Starts a delivery record and returns its id.
    pub fn delivery_started(&self, d: &NewDelivery<'_>) -> Result<i64, AlertError> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        let at = now();
        tx.execute(
            "INSERT INTO deliveries (alert_id, receiver, channel, group_key, reason, status,
                attempts, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6)",
            params![
                d.alert_ids.first().copied().unwrap_or(""),
                d.receiver,
                d.channel,
                d.group_key,
                d.reason,
                at
            ],
        )?;
        let id = tx.last_insert_rowid();
        for a in &d.alert_ids {
            tx.execute(
                "INSERT OR IGNORE INTO delivery_alerts (delivery_id, alert_id) VALUES (?1, ?2)",
                params![id, a],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// Updates a delivery after an attempt.
    pub fn delivery_attempted(
        &self,
        id: i64,
        status: &str,
        attempts: u32,
        last_error: Option<&str>,
    ) -> Result<(), AlertError> {
        self.conn().execute(
            "UPDATE deliveries SET status = ?2, attempts = ?3, last_error = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, status, attempts, last_error, now()],
        )?;
        Ok(())
    }

    /// The delivery log, newest first, optionally only notifications about one alert.
    pub fn deliveries(
        &self,
        alert_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, AlertError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT d.id, d.receiver, d.channel, d.group_key, d.reason, d.status, d.attempts,
                    d.last_error, d.created_at, d.updated_at,
                    (SELECT json_group_array(alert_id) FROM delivery_alerts x WHERE x.delivery_id = d.id)
             FROM deliveries d
             WHERE ?1 IS NULL OR d.id IN (SELECT delivery_id FROM delivery_alerts WHERE alert_id = ?1)
                OR (d.alert_id = ?1 AND NOT EXISTS (SELECT 1 FROM delivery_alerts x WHERE x.delivery_id = d.id))
             ORDER BY d.id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![alert_id, limit as i64], |r| {
            let ids: Option<String> = r.get(10)?;
            Ok(Delivery {
                id: r.get(0)?,
                receiver: r.get(1)?,
                channel: r.get(2)?,
                group_key: r.get(3)?,
                reason: r.get(4)?,
                status: r.get(5)?,
                attempts: r.get(6)?,
                last_error: r.get(7)?,
                created_at: r.get(8)?,
                updated_at: r.get(9)?,
                alert_ids: ids
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Match counts per rule, over every alert stored.
    pub fn rule_stats(&self) -> Result<Vec<RuleStats>, AlertError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT rule, count(*), sum(count), max(last_seen_ns) FROM alerts GROUP BY rule",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(RuleStats {
                rule: r.get(0)?,
                alerts: r.get(1)?,
                matches: r.get(2)?,
                last_seen: to_rfc3339(r.get(3)?),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Alerts by status, for `/metrics`.
    pub fn count_by_status(&self) -> Result<Vec<(String, i64)>, AlertError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT status, count(*) FROM alerts GROUP BY status")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Saves the state of senders watched by `quiet_sources`.
    pub fn save_quiet_series(&self, series: &[QuietSeries]) -> Result<(), AlertError> {
        if series.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO quiet_series (key, series) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET series = excluded.series",
            )?;
            for s in series {
                stmt.execute(params![s.key, serde_json::to_string(s)?])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The saved state of senders watched by `quiet_sources`; unreadable rows are skipped.
    pub fn quiet_series(&self) -> Result<Vec<QuietSeries>, AlertError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT series FROM quiet_series")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(s) = serde_json::from_str(&row?) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Stores a new silence.
    pub fn add_silence(&self, s: &Silence) -> Result<(), AlertError> {
        self.conn().execute(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                s.id,
                serde_json::to_string(&s.matchers)?,
                s.starts_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                s.ends_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                s.created_by,
                s.comment,
                s.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            ],
        )?;
        Ok(())
    }

    /// Every silence, newest first.
    pub fn silences(&self) -> Result<Vec<Silence>, AlertError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at
             FROM silences ORDER BY created_at DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            let time = |i: usize| -> rusqlite::Result<DateTime<Utc>> {
                let t: String = r.get(i)?;
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            i,
                            rusqlite::types::Type::Text,
                            Box::new(e),
                        )
                    })
            };
            let matchers: String = r.get(1)?;
            Ok(Silence {
                id: r.get(0)?,
                matchers: serde_json::from_str(&matchers).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?,
                starts_at: time(2)?,
                ends_at: time(3)?,
                created_by: r.get(4)?,
                comment: r.get(5)?,
                created_at: time(6)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Ends a silence at `at` (if it has not ended before); `false` when there is no such
    /// silence.
    pub fn expire_silence(&self, id: &str, at: DateTime<Utc>) -> Result<bool, AlertError> {
        let conn = self.conn();
        let exists = conn
            .query_row("SELECT 1 FROM silences WHERE id = ?1", params![id], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        let at = at.to_rfc3339_opts(SecondsFormat::Millis, true);
        conn.execute(
            "UPDATE silences SET ends_at = ?2,
                starts_at = CASE WHEN starts_at > ?2 THEN ?2 ELSE starts_at END
             WHERE id = ?1 AND ends_at > ?2",
            params![id, at],
        )?;
        Ok(exists)
    }
}

fn get_alert(conn: &Connection, id: &str) -> Result<Option<Alert>, AlertError> {
    Ok(conn
        .query_row(
            "SELECT * FROM alerts WHERE id = ?1",
            params![id],
            alert_from_row,
        )
        .optional()?)
}

fn json_col<T: serde::de::DeserializeOwned + Default>(
    r: &Row<'_>,
    name: &str,
) -> rusqlite::Result<T> {
    let text: Option<String> = r.get(name)?;
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

fn alert_from_row(r: &Row<'_>) -> rusqlite::Result<Alert> {
    let status: String = r.get("status")?;
    let event: Option<String> = r.get("event")?;
    Ok(Alert {
        id: r.get("id")?,
        rule: r.get("rule")?,
        priority: r.get("priority")?,
        source: r.get("source")?,
        status: AlertStatus::parse(&status).unwrap_or(AlertStatus::Firing),
        output: r.get("output")?,
        tags: json_col(r, "tags")?,
        labels: json_col(r, "labels")?,
        annotations: json_col(r, "annotations")?,
        event: event.and_then(|e| serde_json::from_str(&e).ok()),
        first_seen: r.get("first_seen")?,
        last_seen: r.get("last_seen")?,
        count: r.get("count")?,
        status_by: r.get("status_by")?,
        status_at: r.get("status_at")?,
        generator_url: r.get("generator_url")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn new_alert(rule: &str, ns: &str, time: i64) -> NewAlert {
        let labels: BTreeMap<String, String> = [
            ("rule".to_string(), rule.to_string()),
            ("namespace".to_string(), ns.to_string()),
        ]
        .into();
        NewAlert {
            rule: rule.into(),
            priority: "Warning".into(),
            source: "k8s_audit".into(),
            output: format!("{rule} in {ns} at {time}"),
            tags: vec!["k8s".into()],
            labels,
            annotations: BTreeMap::new(),
            event: None,
            time,
            generator_url: None,
        }
    }

    #[test]
    fn repeats_are_counted_not_renotified_until_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open(&dir.path().join("state.db")).unwrap();
        let (a, notify) = store.record(&new_alert("Exec", "shop", 10)).unwrap();
        assert!(notify);
        assert_eq!(a.count, 1);
        let (a2, notify) = store.record(&new_alert("Exec", "shop", 20)).unwrap();
        assert!(!notify);
        assert_eq!((a2.id.as_str(), a2.count), (a.id.as_str(), 2));
        assert_eq!(a2.output, "Exec in shop at 20");
        // An older occurrence arriving late does not replace the latest output.
        let (a3, _) = store.record(&new_alert("Exec", "shop", 5)).unwrap();
        assert_eq!(a3.output, "Exec in shop at 20");
        assert_eq!(a3.count, 3);
        let (_, notify) = store.record(&new_alert("Exec", "other", 20)).unwrap();
        assert!(notify);

        let acked = store
            .set_status(&a.id, AlertStatus::Acknowledged, "alice")
            .unwrap()
            .unwrap();
        assert_eq!(acked.status_by.as_deref(), Some("alice"));
        assert!(!store.record(&new_alert("Exec", "shop", 30)).unwrap().1);
        store
            .set_status(&a.id, AlertStatus::Resolved, "alice")
            .unwrap();
        let (again, notify) = store.record(&new_alert("Exec", "shop", 40)).unwrap();
        assert!(notify);
        assert_eq!(again.status, AlertStatus::Firing);

        let firing = store
            .list(&AlertFilter {
                status: Some(AlertStatus::Firing),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(firing.len(), 2);
        assert!(store
            .set_status("nope", AlertStatus::Resolved, "x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn lists_by_namespace_and_time_and_sums_matches_per_rule() {
        let dir = tempfile::tempdir().unwrap();
        let store = AlertStore::open(&dir.path().join("state.db")).unwrap();
        store.record(&new_alert("Exec", "shop", 10)).unwrap();
        store.record(&new_alert("Exec", "shop", 30)).unwrap();
        store.record(&new_alert("Exec", "web", 20)).unwrap();
        store.record(&new_alert("Secret", "web", 5)).unwrap();

        let in_web = store
            .list(&AlertFilter {
                namespace: Some("web".into()),
                ..Default::default()
            })
            .unwrap();
        let mut rules: Vec<_> = in_web.iter().map(|a| a.rule.as_str()).collect();
        rules.sort();
        assert_eq!(rules, ["Exec", "Secret"]);
        let recent = store
            .list(&AlertFilter {
                since_ns: Some(20),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(recent.len(), 2, "alerts last seen at 30 and 20");

        let mut stats = store.rule_stats().unwrap();
        stats.sort_by(|a, b| a.rule.cmp(&b.rule));
        assert_eq!(
            stats
                .iter()
                .map(|s| (s.rule.as_str(), s.alerts, s.matches))
                .collect::<Vec<_>>(),
            [("Exec", 2, 3), ("Secret", 1, 1)]
        );
        assert_eq!(stats[0].last_seen, to_rfc3339(30));
    }
}
