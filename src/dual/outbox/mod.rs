//! The outbox: durable intents to bring MongoDB up to date, kept in Firestore (the
//! primary, the database that just accepted the write) and written in the same commit
//! as the documents they name.
//!
//! An entry (`_fireshift_outbox/<id>`) holds `paths` (relative document paths),
//! `created`, `attempts`, `next_attempt` and `last_error`. It carries no document
//! content: replaying an entry means **reading the document's current state from
//! Firestore and pushing it, guarded** (`sync_path`). So replays are idempotent, their
//! order does not matter, and an entry replayed after a newer write cannot roll MongoDB
//! back.
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
//! * `DualStore::drain`, the same pass without waiting for `next_attempt` (tests,
//!   shutdown, before flipping writes).
//!
//! Several processes may reconcile at once: a process **claims** an entry before
//! syncing it (moves its `next_attempt` one lease ahead, conditioned on the entry's
//! update time), so each entry is normally synced by one process; a process that dies
//! holding a claim only delays the entry by the lease. Syncing an entry twice would be
//! harmless anyway (idempotent and guarded). The settler does not claim: it handles
//! only the entries its own process just wrote.
//!
//! Everything here works over the store's core; `DualStore`'s `reconcile_once`,
//! `outbox_stats`, `drain` and `spawn_background` delegate to it. The write path only
//! adds entries (`entry_write` in its commit) and hands confirmations to the
//! `SettleQueue`.

mod entry;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::entry::{claim, delete_entries, due_entries, entry_name, record_failure, Entry};
pub(crate) use self::entry::{entry_write, new_entry_id, outbox_stats};
use super::core::Core;
use super::error::{DualError, DualResult};
use super::mode::Mode;
use super::op::Applied;
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

/// The queue from the write path to the settler. Offering never waits: a full queue
/// (or a store whose background was never started) leaves the entry to the reconciler,
/// which only delays its removal, since the entry is durable.
pub(crate) struct SettleQueue {
    tx: mpsc::Sender<SettleJob>,
    /// Taken by the one settler [`spawn`] starts.
    rx: Mutex<Option<mpsc::Receiver<SettleJob>>>,
}

impl SettleQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    pub(crate) fn offer(&self, job: SettleJob) {
        let _ = self.tx.try_send(job);
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<SettleJob>> {
        self.rx.lock().expect("poisoned").take()
    }
}

/// What one reconciler pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Entries whose every path was synced and which were removed.
    pub synced: usize,
    /// Entries that failed this time (kept, with the error and a later attempt).
    pub failed: usize,
}

/// Brings MongoDB to Firestore's current state of one document and confirms it:
/// read, apply (guarded), read again; done when two reads in a row agree with what
/// was applied. `last` is what the caller already applied, if anything.
async fn sync_path(core: &Core, rel: &str, mut last: Option<Applied>) -> DualResult<()> {
    let t = core.target(rel)?;
    for _ in 0..MAX_SYNC_ROUNDS {
        let (mut states, read_time) = core.fs_get(std::slice::from_ref(&t.name)).await?;
        let doc = states.remove(&t.name).flatten();
        let observed = Applied::of(doc.as_ref());
        if last == Some(observed) {
            return Ok(());
        }
        core.apply_secondary(&t, doc, read_time).await?;
        last = Some(observed);
    }
    Err(DualError::Io(crate::error::Error::Contention {
        what: format!("`{rel}`"),
        message: format!(
            "it kept changing during {MAX_SYNC_ROUNDS} sync rounds; left for the next pass"
        ),
    }))
}

/// Syncs every path of an entry. A path that can no longer be resolved (its
/// collection became unsupported) is dropped with an error log.
///
/// A collection already in `MongoOnly` gets no more Firestore writes, and MongoDB
/// has had writes of its own (stamped with the wall clock): the Firestore state is
/// pushed once, guarded, and a document Firestore no longer has is deleted only if
/// MongoDB's copy predates the entry, so a document created in `MongoOnly` is
/// never removed by an old entry.
async fn sync_entry(core: &Core, entry: &Entry) -> DualResult<()> {
    for rel in &entry.paths {
        match core.target(rel) {
            Ok(t) if t.mode == Mode::MongoOnly => {
                let (mut states, _) = core.fs_get(std::slice::from_ref(&t.name)).await?;
                let doc = states.remove(&t.name).flatten();
                core.apply_secondary(&t, doc, entry.created).await?;
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(path = %rel, entry = %entry.name, error = %e, "outbox entry path cannot be synced; dropped");
                continue;
            }
        }
        sync_path(core, rel, None).await?;
    }
    Ok(())
}

/// Confirms what the write path applied and removes the entries (see module docs).
async fn settle(core: &Core, jobs: Vec<SettleJob>) {
    let names: Vec<String> = jobs
        .iter()
        .flat_map(|j| j.applied.iter())
        .map(|(rel, _)| core.document_name(rel))
        .collect();
    let states = match core.fs_get(&names).await {
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
            let name = core.document_name(rel);
            let observed = Applied::of(states.get(&name).and_then(|d| d.as_ref()));
            if observed != *applied {
                if let Err(e) = sync_path(core, rel, Some(*applied)).await {
                    tracing::warn!(path = %rel, error = %e, "settling: sync failed; the reconciler will replay it");
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            done.push(entry_name(core, &job.entry));
        }
    }
    if let Err(e) = delete_entries(core, done).await {
        tracing::warn!(error = %e, "settling: removing outbox entries failed; the reconciler will replay them (harmless)");
    }
}

/// One reconciler pass over the entries that are due (`force`: over all entries,
/// due or not). Updates the outbox depth and age metrics.
pub(crate) async fn reconcile_once(core: &Core, force: bool) -> DualResult<ReconcileReport> {
    let entries = due_entries(core, force, None).await?;
    reconcile_entries(core, entries).await
}

async fn reconcile_entries(core: &Core, entries: Vec<Entry>) -> DualResult<ReconcileReport> {
    let results: Vec<(Entry, DualResult<()>)> = futures::stream::iter(entries)
        .map(|e| async move {
            match claim(core, &e).await {
                Ok(true) => {}
                // Another process holds it (or removed it).
                Ok(false) => return None,
                Err(err) => return Some((e, Err(err))),
            }
            let r = sync_entry(core, &e).await;
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
                core.metrics()
                    .reconciled
                    .with_label_values(&["synced"])
                    .inc();
                done.push(entry.name);
            }
            Err(e) => {
                report.failed += 1;
                core.metrics()
                    .reconciled
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(entry = %entry.name, attempts = entry.attempts + 1, error = %e, "outbox entry failed; will retry");
                if let Err(e2) = record_failure(core, &entry, &e).await {
                    tracing::warn!(entry = %entry.name, error = %e2, "recording the failure failed");
                }
            }
        }
    }
    delete_entries(core, done).await?;
    outbox_stats(core).await?;
    Ok(report)
}

/// Replays every entry created before the call, due or not, until none is left;
/// fails when some still fail after `timeout`. Entries written meanwhile by
/// concurrent writes are left to the reconciler, so a drain ends under load.
pub(crate) async fn drain(core: &Core, timeout: Duration) -> DualResult<()> {
    let started = guard::now_nanos();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match due_entries(core, true, Some(started)).await {
            Ok(entries) if entries.is_empty() => {
                outbox_stats(core).await?;
                return Ok(());
            }
            Ok(entries) => reconcile_entries(core, entries).await,
            Err(e) => Err(e),
        };
        if tokio::time::Instant::now() >= deadline {
            let (depth, _) = outbox_stats(core).await?;
            return Err(DualError::Io(crate::error::Error::Config(format!(
                "outbox still holds {depth} entries after {timeout:?} (last pass: {last:?})"
            ))));
        }
        if !matches!(&last, Ok(r) if r.failed == 0) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Starts the settler (unless an earlier call took the queue) and the reconciler; the
/// caller may add more periodic tasks ([`Background::every`]).
pub(crate) fn spawn(core: &Arc<Core>, queue: &SettleQueue) -> Background {
    let (stop, _) = watch::channel(false);
    let mut background = Background {
        stop,
        tasks: Vec::new(),
    };
    if let Some(mut rx) = queue.take_receiver() {
        let core = core.clone();
        let mut stop = background.stop.subscribe();
        background.tasks.push(tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(SETTLE_BATCH);
            loop {
                tokio::select! {
                    n = rx.recv_many(&mut jobs, SETTLE_BATCH) => {
                        if n == 0 { return; }
                        settle(&core, std::mem::take(&mut jobs)).await;
                    }
                    _ = stop.changed() => return,
                }
            }
        }));
    }
    let reconciler = core.clone();
    background.every(core.config().reconcile_interval, move || {
        let core = reconciler.clone();
        async move {
            match reconcile_once(&core, false).await {
                Ok(r) if r.synced + r.failed > 0 => {
                    tracing::info!(synced = r.synced, failed = r.failed, "reconciler pass")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reconciler pass failed"),
            }
        }
    });
    background
}

/// The running background tasks of a store.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Runs `pass` now and then `interval` after each pass ends, until shutdown.
    pub(crate) fn every<F, Fut>(&mut self, interval: Duration, mut pass: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let mut stop = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move {
            loop {
                pass().await;
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.changed() => return,
                }
            }
        }));
    }

    /// Stops the tasks and waits for them. Entries not yet settled stay in the outbox
    /// (durable) for the next process.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
