//! The outbox: durable intents to bring MongoDB up to date, kept in Firestore (the
//! primary, the database that just accepted the write) and written in the same commit
//! as the documents they name.
//!
//! An entry (`_fireshift_outbox/<id>`) holds `paths` (relative document paths),
//! `created`, `attempts`, `next_attempt` and `last_error`. It carries no document
//! content: replaying an entry means **reading the document's current state from
//! Firestore and pushing it, guarded** ([`DualStore::sync_path`]). So replays are
//! idempotent, their order does not matter, and an entry replayed after a newer write
//! cannot roll MongoDB back.
//!
//! Three things remove entries:
//! * the **settler** (background, fed by the write path after a successful secondary
//!   write): one confirming read per path, then the entry is deleted. The confirming
//!   read closes the one race the guard cannot: a stale upsert that lands after a
//!   concurrent delete (a delete has no document left to carry a time). If the state
//!   changed since it was applied, the path is synced again before the entry goes;
//! * the **reconciler** (background, every `reconcile_interval`): entries whose
//!   `next_attempt` has come — left by a failed or timed-out secondary write, by a full
//!   settle queue, or by a process that died — are synced path by path; failures are
//!   recorded on the entry with exponential backoff, and it is tried again later;
//! * [`DualStore::drain`], the same pass without waiting for `next_attempt` (tests,
//!   shutdown, before flipping writes).
//!
//! Several processes may reconcile at once: a process **claims** an entry before
//! syncing it (moves its `next_attempt` one lease ahead, conditioned on the entry's
//! update time), so each entry is normally synced by one process; a process that dies
//! holding a claim only delays the entry by the lease. Syncing an entry twice would be
//! harmless anyway (idempotent and guarded). The settler does not claim: it handles
//! only the entries its own process just wrote.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use gcloud_sdk::google::firestore::v1::{
    precondition, structured_query, value::ValueType, Document, DocumentMask, Precondition,
    StructuredQuery, Value, Write,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::{DualError, DualResult};
use super::mode::Mode;
use super::store::{now_timestamp, string_array, Applied, DualStore};
use crate::sink::guard;

/// Default Firestore collection of the outbox.
pub const OUTBOX_COLLECTION: &str = crate::own::OUTBOX;
/// Read–apply rounds before a document that keeps changing is left for later.
const MAX_SYNC_ROUNDS: usize = 5;
/// Entries synced at once by one reconciler pass.
const RECONCILE_CONCURRENCY: usize = 8;
/// Settle jobs handled per round.
const SETTLE_BATCH: usize = 64;

/// A confirmation for the settler: the entry, and what the write path applied.
#[derive(Debug)]
pub(crate) struct SettleJob {
    pub entry: String,
    pub applied: Vec<(String, Applied)>,
}

/// What one reconciler pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Entries whose every path was synced and which were removed.
    pub synced: usize,
    /// Entries that failed this time (kept, with the error and a later attempt).
    pub failed: usize,
}

/// A fresh entry id: the creation time first, so names sort roughly by age.
pub(crate) fn new_entry_id() -> String {
    format!("{:020}-{:016x}", guard::now_nanos(), rand::random::<u64>())
}

fn ts_value(t: gcloud_sdk::prost_types::Timestamp) -> Value {
    Value {
        value_type: Some(ValueType::TimestampValue(t)),
    }
}

fn int_value(i: i64) -> Value {
    Value {
        value_type: Some(ValueType::IntegerValue(i)),
    }
}

/// The entry written in the same commit as the documents it names.
pub(crate) fn entry_write(store: &DualStore, id: &str, paths: &[String]) -> Write {
    let now = guard::now_nanos();
    let grace = store.inner.config.outbox_grace.as_nanos() as i64;
    let fields = HashMap::from([
        ("paths".to_string(), string_array(paths)),
        ("created".to_string(), ts_value(guard::nanos_timestamp(now))),
        (
            "next_attempt".to_string(),
            ts_value(guard::nanos_timestamp(now.saturating_add(grace))),
        ),
        ("attempts".to_string(), int_value(0)),
    ]);
    Write {
        operation: Some(gcloud_sdk::google::firestore::v1::write::Operation::Update(
            Document {
                name: store.entry_name(id),
                fields,
                ..Default::default()
            },
        )),
        current_document: Some(Precondition {
            condition_type: Some(precondition::ConditionType::Exists(false)),
        }),
        ..Default::default()
    }
}

/// `field <= value`.
fn at_most(field: &str, value: Value) -> structured_query::Filter {
    structured_query::Filter {
        filter_type: Some(structured_query::filter::FilterType::FieldFilter(
            structured_query::FieldFilter {
                field: Some(structured_query::FieldReference {
                    field_path: field.to_string(),
                }),
                op: structured_query::field_filter::Operator::LessThanOrEqual as i32,
                value: Some(value),
            },
        )),
    }
}

fn order(field: &str) -> structured_query::Order {
    structured_query::Order {
        field: Some(structured_query::FieldReference {
            field_path: field.to_string(),
        }),
        direction: structured_query::Direction::Ascending as i32,
    }
}

/// An entry as read back.
#[derive(Debug)]
struct Entry {
    name: String,
    paths: Vec<String>,
    attempts: i64,
    /// Guard nanoseconds; the entry was written in the same commit as its writes.
    created: i64,
    /// The entry's own update time: the precondition of a claim.
    update_time: Option<gcloud_sdk::prost_types::Timestamp>,
}

fn parse_entry(d: &Document) -> Entry {
    let paths = match d.fields.get("paths").and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::ArrayValue(a)) => a
            .values
            .iter()
            .filter_map(|v| match &v.value_type {
                Some(ValueType::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let attempts = match d.fields.get("attempts").and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::IntegerValue(i)) => *i,
        _ => 0,
    };
    let created = match d.fields.get("created").and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::TimestampValue(t)) => guard::timestamp_nanos(t),
        _ => 0,
    };
    Entry {
        name: d.name.clone(),
        paths,
        attempts,
        created,
        update_time: d.update_time,
    }
}

impl DualStore {
    fn outbox_parent(&self) -> String {
        self.inner.root.clone()
    }

    pub(crate) fn entry_name(&self, id: &str) -> String {
        format!(
            "{}/{}/{id}",
            self.inner.root, self.inner.config.outbox_collection
        )
    }

    /// Brings MongoDB to Firestore's current state of one document and confirms it:
    /// read, apply (guarded), read again; done when two reads in a row agree with what
    /// was applied. `last` is what the caller already applied, if anything.
    pub(crate) async fn sync_path(&self, rel: &str, mut last: Option<Applied>) -> DualResult<()> {
        let t = self.target(rel)?;
        for _ in 0..MAX_SYNC_ROUNDS {
            let (mut states, read_time) = self.fs_get(std::slice::from_ref(&t.name)).await?;
            let doc = states.remove(&t.name).flatten();
            let observed = Applied::of(doc.as_ref());
            if last == Some(observed) {
                return Ok(());
            }
            self.apply_secondary(&t, doc, read_time).await?;
            last = Some(observed);
        }
        Err(DualError::Io(crate::error::Error::Config(format!(
            "`{rel}` kept changing during {MAX_SYNC_ROUNDS} sync rounds; left for the next pass"
        ))))
    }

    /// Syncs every path of an entry. A path that can no longer be resolved (its
    /// collection became unsupported) is dropped with an error log.
    ///
    /// A collection already in `MongoOnly` gets no more Firestore writes, and MongoDB
    /// has had writes of its own (stamped with the wall clock): the Firestore state is
    /// pushed once, guarded, and a document Firestore no longer has is deleted only if
    /// MongoDB's copy predates the entry, so a document created in `MongoOnly` is
    /// never removed by an old entry.
    async fn sync_entry(&self, entry: &Entry) -> DualResult<()> {
        for rel in &entry.paths {
            match self.target(rel) {
                Ok(t) if t.mode == Mode::MongoOnly => {
                    let (mut states, _) = self.fs_get(std::slice::from_ref(&t.name)).await?;
                    let doc = states.remove(&t.name).flatten();
                    self.apply_secondary(&t, doc, entry.created).await?;
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(path = %rel, entry = %entry.name, error = %e, "outbox entry path cannot be synced; dropped");
                    continue;
                }
            }
            self.sync_path(rel, None).await?;
        }
        Ok(())
    }

    async fn delete_entries(&self, names: Vec<String>) -> DualResult<()> {
        for chunk in names.chunks(500) {
            let deletes = chunk
                .iter()
                .map(|n| Write {
                    operation: Some(gcloud_sdk::google::firestore::v1::write::Operation::Delete(
                        n.clone(),
                    )),
                    ..Default::default()
                })
                .collect();
            self.fs_commit(deletes)
                .await
                .map_err(|s| self.fs_error("Commit", s))?;
        }
        Ok(())
    }

    /// Confirms what the write path applied and removes the entries (see module docs).
    async fn settle(&self, jobs: Vec<SettleJob>) {
        let names: Vec<String> = jobs
            .iter()
            .flat_map(|j| j.applied.iter())
            .map(|(rel, _)| format!("{}/{rel}", self.inner.root))
            .collect();
        let states = match self.fs_get(&names).await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "settling outbox entries: read failed; the reconciler will replay them");
                return;
            }
        };
        let mut done = Vec::new();
        for job in jobs {
            let mut ok = true;
            for (rel, applied) in &job.applied {
                let name = format!("{}/{rel}", self.inner.root);
                let observed = Applied::of(states.get(&name).and_then(|d| d.as_ref()));
                if observed != *applied {
                    if let Err(e) = self.sync_path(rel, Some(*applied)).await {
                        tracing::warn!(path = %rel, error = %e, "settling: sync failed; the reconciler will replay it");
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                done.push(self.entry_name(&job.entry));
            }
        }
        if let Err(e) = self.delete_entries(done).await {
            tracing::warn!(error = %e, "settling: removing outbox entries failed; the reconciler will replay them (harmless)");
        }
    }

    /// Entries due now (`force`: all; `created_before`: all created up to then), at
    /// most `reconcile_batch`.
    async fn due_entries(
        &self,
        force: bool,
        created_before: Option<i64>,
    ) -> DualResult<Vec<Entry>> {
        let query = StructuredQuery {
            from: vec![structured_query::CollectionSelector {
                collection_id: self.inner.config.outbox_collection.clone(),
                all_descendants: false,
            }],
            r#where: match (force, created_before) {
                (_, Some(t)) => Some(at_most("created", ts_value(guard::nanos_timestamp(t)))),
                (true, None) => None,
                (false, None) => Some(at_most("next_attempt", ts_value(now_timestamp()))),
            },
            order_by: match (force, created_before) {
                (_, Some(_)) => vec![order("created")],
                (true, None) => Vec::new(),
                (false, None) => vec![order("next_attempt")],
            },
            limit: Some(self.inner.config.reconcile_batch.min(10_000) as i32),
            ..Default::default()
        };
        let docs = self.fs_query(self.outbox_parent(), query).await?;
        Ok(docs.iter().map(parse_entry).collect())
    }

    /// Takes an entry for this process: moves its `next_attempt` one lease ahead, on
    /// the condition that nobody changed it since it was read. A process that dies
    /// holding it only delays it by the lease. `false`: someone else has it.
    async fn claim(&self, entry: &Entry) -> DualResult<bool> {
        let Some(seen) = entry.update_time else {
            return Ok(true);
        };
        let lease = (self.inner.config.secondary_timeout * 4).max(Duration::from_secs(30));
        let until = guard::now_nanos().saturating_add(lease.as_nanos() as i64);
        let write = Write {
            operation: Some(gcloud_sdk::google::firestore::v1::write::Operation::Update(
                Document {
                    name: entry.name.clone(),
                    fields: HashMap::from([(
                        "next_attempt".to_string(),
                        ts_value(guard::nanos_timestamp(until)),
                    )]),
                    ..Default::default()
                },
            )),
            update_mask: Some(DocumentMask {
                field_paths: vec!["next_attempt".into()],
            }),
            current_document: Some(Precondition {
                condition_type: Some(precondition::ConditionType::UpdateTime(seen)),
            }),
            ..Default::default()
        };
        match self.fs_commit(vec![write]).await {
            Ok(_) => Ok(true),
            Err(s)
                if matches!(
                    s.code(),
                    gcloud_sdk::tonic::Code::FailedPrecondition
                        | gcloud_sdk::tonic::Code::NotFound
                        | gcloud_sdk::tonic::Code::Aborted
                ) =>
            {
                Ok(false)
            }
            Err(s) => Err(self.fs_error("Commit", s).into()),
        }
    }

    /// Records a failed attempt on an entry and when to try again.
    async fn record_failure(&self, entry: &Entry, error: &DualError) -> DualResult<()> {
        let policy = self.inner.config.reconcile_backoff;
        let exp = entry.attempts.clamp(0, 30) as u32;
        let backoff = policy
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(policy.max_backoff);
        // Jitter keeps many failed entries from coming due in one burst.
        let backoff = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        let next = guard::now_nanos().saturating_add(backoff.as_nanos() as i64);
        let mut message = error.to_string();
        message.truncate(2000);
        let fields = HashMap::from([
            ("attempts".to_string(), int_value(entry.attempts + 1)),
            (
                "last_error".to_string(),
                Value {
                    value_type: Some(ValueType::StringValue(message)),
                },
            ),
            (
                "next_attempt".to_string(),
                ts_value(guard::nanos_timestamp(next)),
            ),
        ]);
        let write = Write {
            operation: Some(gcloud_sdk::google::firestore::v1::write::Operation::Update(
                Document {
                    name: entry.name.clone(),
                    fields,
                    ..Default::default()
                },
            )),
            update_mask: Some(DocumentMask {
                field_paths: vec![
                    "attempts".into(),
                    "last_error".into(),
                    "next_attempt".into(),
                ],
            }),
            current_document: Some(Precondition {
                condition_type: Some(precondition::ConditionType::Exists(true)),
            }),
            ..Default::default()
        };
        match self.fs_commit(vec![write]).await {
            Ok(_) => Ok(()),
            // Another process synced and removed it meanwhile.
            Err(s) if s.code() == gcloud_sdk::tonic::Code::NotFound => Ok(()),
            Err(s) => Err(self.fs_error("Commit", s).into()),
        }
    }

    /// One reconciler pass over the entries that are due (`force`: over all entries,
    /// due or not). Updates the outbox depth and age metrics.
    pub async fn reconcile_once(&self, force: bool) -> DualResult<ReconcileReport> {
        let entries = self.due_entries(force, None).await?;
        self.reconcile_entries(entries).await
    }

    async fn reconcile_entries(&self, entries: Vec<Entry>) -> DualResult<ReconcileReport> {
        let results: Vec<(Entry, DualResult<()>)> = futures::stream::iter(entries)
            .map(|e| async move {
                match self.claim(&e).await {
                    Ok(true) => {}
                    // Another process holds it (or removed it).
                    Ok(false) => return None,
                    Err(err) => return Some((e, Err(err))),
                }
                let r = self.sync_entry(&e).await;
                Some((e, r))
            })
            .buffer_unordered(RECONCILE_CONCURRENCY)
            .filter_map(|x| async move { x })
            .collect()
            .await;
        let mut report = ReconcileReport::default();
        let mut done = Vec::new();
        for (entry, r) in results {
            match r {
                Ok(()) => {
                    report.synced += 1;
                    self.inner
                        .metrics
                        .reconciled
                        .with_label_values(&["synced"])
                        .inc();
                    done.push(entry.name);
                }
                Err(e) => {
                    report.failed += 1;
                    self.inner
                        .metrics
                        .reconciled
                        .with_label_values(&["failed"])
                        .inc();
                    tracing::warn!(entry = %entry.name, attempts = entry.attempts + 1, error = %e, "outbox entry failed; will retry");
                    if let Err(e2) = self.record_failure(&entry, &e).await {
                        tracing::warn!(entry = %entry.name, error = %e2, "recording the failure failed");
                    }
                }
            }
        }
        self.delete_entries(done).await?;
        self.outbox_stats().await?;
        Ok(report)
    }

    /// Outbox depth and the age of the oldest entry; also sets the metrics.
    pub async fn outbox_stats(&self) -> DualResult<(u64, Option<Duration>)> {
        let from = vec![structured_query::CollectionSelector {
            collection_id: self.inner.config.outbox_collection.clone(),
            all_descendants: false,
        }];
        let count_req = crate::source::count_request(
            &self.outbox_parent(),
            StructuredQuery {
                from: from.clone(),
                ..Default::default()
            },
        );
        let stream = self
            .inner
            .fs
            .client()
            .run_aggregation_query(count_req)
            .await
            .map_err(|s| self.fs_error("RunAggregationQuery", s))?
            .into_inner();
        let depth = crate::source::read_count(stream)
            .await
            .map_err(|s| self.fs_error("RunAggregationQuery", s))?;
        let mut oldest = None;
        if depth > 0 {
            let query = StructuredQuery {
                from,
                order_by: vec![structured_query::Order {
                    field: Some(structured_query::FieldReference {
                        field_path: "created".into(),
                    }),
                    direction: structured_query::Direction::Ascending as i32,
                }],
                limit: Some(1),
                ..Default::default()
            };
            let first = self.fs_query(self.outbox_parent(), query).await?;
            if let Some(Some(ValueType::TimestampValue(t))) = first
                .first()
                .and_then(|d| d.fields.get("created"))
                .map(|v| v.value_type.as_ref())
            {
                let age = guard::now_nanos() - guard::timestamp_nanos(t);
                oldest = Some(Duration::from_nanos(age.max(0) as u64));
            }
        }
        self.inner.metrics.outbox_depth.set(depth as i64);
        self.inner
            .metrics
            .outbox_oldest_age_seconds
            .set(oldest.map(|d| d.as_secs_f64()).unwrap_or(0.0));
        Ok((depth, oldest))
    }

    /// Replays every entry created before the call, due or not, until none is left;
    /// fails when some still fail after `timeout`. Entries written meanwhile by
    /// concurrent writes are left to the reconciler, so a drain ends under load.
    pub async fn drain(&self, timeout: Duration) -> DualResult<()> {
        let started = guard::now_nanos();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let last = match self.due_entries(true, Some(started)).await {
                Ok(entries) if entries.is_empty() => {
                    self.outbox_stats().await?;
                    return Ok(());
                }
                Ok(entries) => self.reconcile_entries(entries).await,
                Err(e) => Err(e),
            };
            if tokio::time::Instant::now() >= deadline {
                let (depth, _) = self.outbox_stats().await?;
                return Err(DualError::Io(crate::error::Error::Config(format!(
                    "outbox still holds {depth} entries after {timeout:?} (last pass: {last:?})"
                ))));
            }
            if !matches!(&last, Ok(r) if r.failed == 0) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Starts the background tasks: the settler, the reconciler and (when configured)
    /// the settings poller. Call once per store; they stop with [`Background::shutdown`].
    pub fn spawn_background(&self) -> Background {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(mut rx) = self.inner.settle_rx.lock().expect("poisoned").take() {
            let store = self.clone();
            let mut stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let mut jobs = Vec::with_capacity(SETTLE_BATCH);
                loop {
                    tokio::select! {
                        n = rx.recv_many(&mut jobs, SETTLE_BATCH) => {
                            if n == 0 { return; }
                            store.settle(std::mem::take(&mut jobs)).await;
                        }
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        {
            let store = self.clone();
            let mut stop = stop_rx.clone();
            let every = self.inner.config.reconcile_interval;
            tasks.push(tokio::spawn(async move {
                loop {
                    match store.reconcile_once(false).await {
                        Ok(r) if r.synced + r.failed > 0 => {
                            tracing::info!(synced = r.synced, failed = r.failed, "reconciler pass")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "reconciler pass failed"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        if let Some(every) = self.inner.config.settings_poll {
            let store = self.clone();
            let mut stop = stop_rx;
            tasks.push(tokio::spawn(async move {
                loop {
                    if let Err(e) = store.refresh_settings().await {
                        tracing::warn!(error = %e, "reading the dual-write settings document failed; keeping the current modes");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        Background {
            stop: stop_tx,
            tasks,
        }
    }
}

/// The running background tasks of a store.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Stops the tasks and waits for them. Entries not yet settled stay in the outbox
    /// (durable) for the next process.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
