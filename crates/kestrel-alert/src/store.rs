//! Alerts and their delivery log in SQLite: mutable state (status, counts) that SQL over
//! Parquet is not made for.

use std::path::Path;
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use kestrel_event::time::to_rfc3339;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::model::{fingerprint, Alert, AlertStatus, NewAlert};
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
";

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

/// One notification's fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub alert_id: String,
    pub receiver: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub updated_at: String,
}

/// Alert state in a SQLite file.
#[derive(Debug)]
pub struct AlertStore {
    conn: Mutex<Connection>,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl AlertStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, AlertError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(AlertStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a match. Returns the alert and whether it is new (or firing again after being
    /// resolved), which is when receivers are told; a repeat of a firing or acknowledged alert
    /// only counts.
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
                        annotations, event, first_seen, last_seen, first_seen_ns, last_seen_ns, count)
                     VALUES (?1, ?2, ?3, ?4, 'firing', ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?11, 1)",
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

    /// One alert by id.
    pub fn get(&self, id: &str) -> Result<Option<Alert>, AlertError> {
        get_alert(&self.conn(), id)
    }

    /// Sets an alert's status by hand; `None` when there is no such alert.
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
    pub fn delivery_started(&self, alert_id: &str, receiver: &str) -> Result<i64, AlertError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO deliveries (alert_id, receiver, status, attempts, updated_at)
             VALUES (?1, ?2, 'pending', 0, ?3)",
            params![alert_id, receiver, now()],
        )?;
        Ok(conn.last_insert_rowid())
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

    /// The delivery log, newest first, optionally for one alert.
    pub fn deliveries(
        &self,
        alert_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, AlertError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, alert_id, receiver, status, attempts, last_error, updated_at FROM deliveries
             WHERE (?1 IS NULL OR alert_id = ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![alert_id, limit as i64], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                alert_id: r.get(1)?,
                receiver: r.get(2)?,
                status: r.get(3)?,
                attempts: r.get(4)?,
                last_error: r.get(5)?,
                updated_at: r.get(6)?,
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
