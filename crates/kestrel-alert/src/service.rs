//! [`Alerting`]: the alert store, the dispatcher and the notifier joined, and the task that
//! drives the dispatcher's timers. What a server embeds.

use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tracing::warn;

use crate::config::CompiledAlerting;
use crate::engine::{Clock, Engine, Muted, TickOutput};
use crate::inbound::InboundAlert;
use crate::matcher::Matcher;
use crate::model::{Alert, AlertStatus, NewAlert};
use crate::notify::{Notifier, NotifierStats};
use crate::quiet::{QuietChange, QuietWatch};
use crate::silence::Silence;
use crate::store::AlertStore;
use crate::AlertError;

/// The longest the driver sleeps: escalations, timeouts and silences ending are checked at
/// least this often.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// How often the last-seen times of quiet-source senders are saved (and at every change).
const QUIET_SAVE_INTERVAL: chrono::Duration = chrono::Duration::seconds(30);

/// Alerting as a service.
pub struct Alerting {
    store: Arc<AlertStore>,
    engine: Mutex<Engine>,
    notifier: RwLock<Arc<Notifier>>,
    stats: Arc<NotifierStats>,
    clock: Arc<dyn Clock>,
    wake: Notify,
    quiet: Mutex<QuietWatch>,
    quiet_saved_at: Mutex<DateTime<Utc>>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("engine", &*self.engine())
            .finish()
    }
}

impl Alerting {
    /// Starts the notifier's tasks (needs a tokio runtime) and takes the open alerts and the
    /// silences of `store` into the dispatcher. Call [`Alerting::spawn_driver`] to run timers.
    pub fn new(
        config: &CompiledAlerting,
        store: Arc<AlertStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Alerting>, AlertError> {
        let stats = Arc::new(NotifierStats::default());
        let notifier = Notifier::start(config, Arc::clone(&store), Arc::clone(&stats));
        let mut engine = Engine::new(config);
        let now = clock.now();
        engine.set_silences(store.silences()?);
        let open = store.open_alerts()?;
        let mut quiet = QuietWatch::new(config.quiet_checks.clone());
        quiet.load(store.quiet_series()?);
        quiet.restore_open_alerts(&open, now);
        for alert in open {
            engine.restore(alert, now);
        }
        Ok(Arc::new(Alerting {
            store,
            engine: Mutex::new(engine),
            notifier: RwLock::new(Arc::new(notifier)),
            stats,
            clock,
            wake: Notify::new(),
            quiet: Mutex::new(quiet),
            quiet_saved_at: Mutex::new(now),
        }))
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> &Arc<AlertStore> {
        &self.store
    }

    pub fn stats(&self) -> &NotifierStats {
        &self.stats
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs the dispatcher's timers until `self` is dropped.
    pub fn spawn_driver(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Alerting> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(this) = weak.upgrade() else { return };
                // A tick writes the delivery log (SQLite, fsync): off the async threads.
                let ticker = Arc::clone(&this);
                if tokio::task::spawn_blocking(move || ticker.tick())
                    .await
                    .is_err()
                {
                    warn!("an alerting tick panicked; going on");
                }
                let now = this.clock.now();
                let sleep = this
                    .engine()
                    .next_deadline()
                    .map(|d| (d - now).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(MAX_IDLE)
                    .min(MAX_IDLE);
                let woken = async {
                    tokio::select! {
                        _ = this.wake.notified() => {}
                        _ = tokio::time::sleep(sleep) => {}
                    }
                };
                woken.await;
            }
        })
    }

    fn quiet(&self) -> std::sync::MutexGuard<'_, QuietWatch> {
        self.quiet.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes data arriving from a sender (labels `source`, `input`, `node`, `agent`,
    /// `cluster`), for the `quiet_sources` checks: a quiet sender that sends again has its
    /// `SourceQuiet` alert resolved.
    pub fn observe_data(&self, labels: &std::collections::BTreeMap<String, String>) {
        let changes = {
            let mut quiet = self.quiet();
            if !quiet.is_active() {
                return;
            }
            quiet.observe(labels, self.clock.now())
        };
        self.apply_quiet(changes);
    }

    fn apply_quiet(&self, changes: Vec<QuietChange>) {
        for change in changes {
            let result = match &change {
                QuietChange::Quiet(alert) => self.record(alert).map(|_| ()),
                QuietChange::Resumed { alert_id } => self
                    .set_status(alert_id, AlertStatus::Resolved, "data resumed")
                    .map(|_| ()),
            };
            if let Err(e) = result {
                warn!(error = %e, ?change, "cannot record a change of a quiet source");
            }
        }
    }

    /// Raises alerts for senders gone quiet and saves the senders' state now and then.
    fn check_quiet(&self, now: DateTime<Utc>) {
        let (changes, dirty) = {
            let mut quiet = self.quiet();
            if !quiet.is_active() {
                return;
            }
            let changes = quiet.check(now);
            let mut saved_at = self
                .quiet_saved_at
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let dirty = if !changes.is_empty() || now - *saved_at >= QUIET_SAVE_INTERVAL {
                *saved_at = now;
                quiet.take_dirty()
            } else {
                Vec::new()
            };
            (changes, dirty)
        };
        if let Err(e) = self.store.save_quiet_series(&dirty) {
            warn!(error = %e, "cannot save the state of quiet-source senders");
        }
        self.apply_quiet(changes);
    }

    /// Does everything due now: quiet senders, resolutions by timeout, group notifications,
    /// escalations.
    pub fn tick(&self) -> TickOutput {
        self.check_quiet(self.clock.now());
        let out = self.engine().tick(self.clock.now());
        for (id, by) in &out.resolved {
            if let Err(e) = self.store.set_status(id, AlertStatus::Resolved, by) {
                warn!(error = %e, alert = %id, "cannot record a resolution");
            }
        }
        let notifier = Arc::clone(&self.notifier.read().unwrap_or_else(|p| p.into_inner()));
        for n in &out.notifications {
            notifier.send(n.clone());
        }
        out
    }

    /// Records an occurrence (a rule match); returns the alert and whether it is new or
    /// re-opened. Notifications follow from the routing tree.
    pub fn record(&self, new: &NewAlert) -> Result<(Alert, bool), AlertError> {
        let (alert, is_new) = self.store.record(new)?;
        self.engine().upsert(alert.clone(), None, self.clock.now());
        self.wake.notify_one();
        Ok((alert, is_new))
    }

    /// Records an alert posted by another system; one whose `endsAt` has passed resolves it.
    pub fn record_inbound(&self, inbound: &InboundAlert) -> Result<(Alert, bool), AlertError> {
        let now = self.clock.now();
        if inbound.ends_at.is_some_and(|e| e <= now) {
            let id = crate::model::fingerprint(&inbound.alert.labels);
            return match self.set_status(&id, AlertStatus::Resolved, "sender")? {
                Some(a) => Ok((a, false)),
                // Resolved before Kestrel saw it fire: recorded, as resolved.
                None => {
                    let (a, _) = self.store.record(&inbound.alert)?;
                    let a = self
                        .store
                        .set_status(&a.id, AlertStatus::Resolved, "sender")?
                        .unwrap_or(a);
                    Ok((a, false))
                }
            };
        }
        let (alert, is_new) = self.store.record(&inbound.alert)?;
        self.engine()
            .upsert(alert.clone(), inbound.ends_at, self.clock.now());
        self.wake.notify_one();
        Ok((alert, is_new))
    }

    /// Acknowledges, resolves or re-opens an alert by hand; `None` when there is no such alert.
    pub fn set_status(
        &self,
        id: &str,
        status: AlertStatus,
        by: &str,
    ) -> Result<Option<Alert>, AlertError> {
        let Some(alert) = self.store.set_status(id, status, by)? else {
            return Ok(None);
        };
        self.engine().set_status(alert.clone(), self.clock.now());
        self.wake.notify_one();
        Ok(Some(alert))
    }

    /// Why an alert is muted now (a silence or an inhibiting alert), if it is.
    pub fn muted(&self, id: &str) -> Option<Muted> {
        self.engine().muted(id, self.clock.now())
    }

    /// Creates a silence.
    pub fn add_silence(
        &self,
        matchers: Vec<Matcher>,
        starts_at: Option<DateTime<Utc>>,
        ends_at: DateTime<Utc>,
        created_by: &str,
        comment: &str,
    ) -> Result<Silence, AlertError> {
        let now = self.clock.now();
        let starts_at = starts_at.unwrap_or(now);
        if matchers.is_empty() {
            return Err(AlertError::Invalid(
                "a silence needs at least one matcher".into(),
            ));
        }
        if ends_at <= starts_at {
            return Err(AlertError::Invalid(
                "a silence must end after it starts".into(),
            ));
        }
        if ends_at <= now {
            return Err(AlertError::Invalid(
                "the silence would end in the past".into(),
            ));
        }
        if matchers.iter().all(|m| m.matches(&Default::default())) {
            return Err(AlertError::Invalid(
                "these matchers match every alert (even one with no labels); add one that needs a label".into(),
            ));
        }
        let silence = Silence {
            id: uuid::Uuid::new_v4().to_string(),
            matchers,
            starts_at,
            ends_at,
            created_by: created_by.to_string(),
            comment: comment.to_string(),
            created_at: now,
        };
        self.store.add_silence(&silence)?;
        self.refresh_silences()?;
        Ok(silence)
    }

    /// Ends a silence now; `false` when there is no such silence.
    pub fn expire_silence(&self, id: &str) -> Result<bool, AlertError> {
        let found = self.store.expire_silence(id, self.clock.now())?;
        self.refresh_silences()?;
        Ok(found)
    }

    /// Every silence, newest first.
    pub fn silences(&self) -> Result<Vec<Silence>, AlertError> {
        self.store.silences()
    }

    fn refresh_silences(&self) -> Result<(), AlertError> {
        let silences = self.store.silences()?;
        self.engine().set_silences(silences);
        self.wake.notify_one();
        Ok(())
    }

    /// Takes a new configuration: new receivers' tasks start, the old ones finish what they
    /// have queued; alerts are routed again without notifying them anew.
    pub fn reload(&self, config: &CompiledAlerting) {
        let notifier = Notifier::start(config, Arc::clone(&self.store), Arc::clone(&self.stats));
        *self.notifier.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(notifier);
        self.engine().reconfigure(config, self.clock.now());
        self.quiet().reconfigure(config.quiet_checks.clone());
        self.wake.notify_one();
    }

    /// Saves the state of quiet-source senders (on shutdown).
    pub fn save_quiet_state(&self) {
        let dirty = self.quiet().take_dirty();
        if let Err(e) = self.store.save_quiet_series(&dirty) {
            warn!(error = %e, "cannot save the state of quiet-source senders");
        }
    }
}
