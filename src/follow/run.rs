//! The follower's loop: one Listen stream over every followed collection group, its
//! changes applied in chunks, its position saved at consistent points only after
//! MongoDB acknowledged everything before them; reopened after a fault from the saved
//! tokens; a group read again in full when its absences cannot be trusted (a resend
//! during the copy, a refused resume point, an existence-filter mismatch).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use mongodb::bson::DateTime;
use tokio::sync::watch as signal;
use tokio_util::sync::CancellationToken;

use super::apply::{rel_of, Applier, Pending, CHUNK};
use super::listen::{self, ListenTarget, Resume};
use super::record::{FollowRecord, FollowStore, GroupState, Holder};
use super::watch::{Event, Watch};
use crate::error::{Error, Result};
use crate::ledger::group_of;
use crate::sink::guard::{nanos_rfc3339, nanos_timestamp, now_nanos, timestamp_nanos};
use crate::source::FirestoreSource;

/// Tuning and identity of one follower.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// Collection groups followed besides those found (a subcollection id nothing
    /// names: `--collection-group`).
    pub extra_groups: Vec<String>,
    /// How often the root collections are listed for new ones.
    pub discover_every: Duration,
    /// How often the follower logs its lag and renews its heartbeat.
    pub report_every: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            extra_groups: Vec::new(),
            discover_every: Duration::from_secs(30),
            report_every: Duration::from_secs(5),
        }
    }
}

/// How the follower ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The cutover was recorded and everything up to its time is applied.
    CutOver,
    /// Stopped on request (a signal); the position is saved.
    Stopped,
}

/// What the follower shows while it runs (terminal line, metrics): its record as last
/// saved, `None` before it runs.
#[derive(Debug, Clone, Default)]
pub struct FollowView {
    pub record: Option<FollowRecord>,
}

/// One follower of one job.
pub struct Follower {
    pub source: FirestoreSource,
    pub applier: Applier,
    pub store: FollowStore,
    pub config: FollowConfig,
    pub view: Arc<Mutex<FollowView>>,
}

/// Why a stream session ended.
enum Session {
    /// Reopen (a group added, a resync, a fault ridden out).
    Reopen,
    Ended(Ended),
}

/// This machine's name, as the follow record shows the holder.
pub fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The collection groups a set of mappings names (every collection id of every pattern).
pub fn mapped_groups(set: &crate::mapping::MappingSet) -> BTreeSet<String> {
    set.mappings()
        .flat_map(|m| {
            m.pattern
                .to_string()
                .split('/')
                .filter(|s| *s != "{}")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

impl Follower {
    /// Follows until the cutover (or a stop). `copy_done` turns true once every range of
    /// the job's copy is acknowledged; before that, absences are not trusted.
    pub async fn run(
        &self,
        mut record: FollowRecord,
        mut copy_done: signal::Receiver<bool>,
        stop: CancellationToken,
    ) -> Result<Ended> {
        record.holder = Some(Holder {
            host: host(),
            pid: std::process::id(),
            heartbeat: DateTime::now(),
        });
        // Groups: what the record follows, what the mappings and the operator name,
        // the root collections now. New ones start from the record's time.
        let mut wanted: BTreeSet<String> = record.groups.keys().cloned().collect();
        wanted.extend(self.config.extra_groups.iter().cloned());
        wanted.extend(mapped_groups(&self.applier.mappings));
        wanted.extend(self.list_root().await?);
        for g in wanted {
            record.groups.entry(g).or_default();
        }
        let mut resync: BTreeSet<String> = BTreeSet::new();
        self.applier.ensure_ledger_indexes().await?;
        self.store.save(&record).await?;
        let mut backoff = self.applier.sink.config().retry.backoff();
        let mut last_log = Instant::now();
        // Set once stale resume points were dropped: the same refusal again is an error.
        let mut refused_resume = false;
        loop {
            if *copy_done.borrow() && !record.copy_done {
                self.finish_copy(&mut record, &mut resync).await?;
            }
            match self
                .session(
                    &mut record,
                    &mut resync,
                    &mut copy_done,
                    &stop,
                    &mut last_log,
                )
                .await
            {
                Ok(Session::Ended(e)) => return Ok(e),
                Ok(Session::Reopen) => {
                    backoff.reset();
                    refused_resume = false;
                }
                // A resume point the server no longer keeps (older than the version
                // retention, or a token it does not know): every group that resumed
                // from one is read again in full; the ledger reconciles its absences.
                Err(e) if !refused_resume && stale_resume(&e) => {
                    refused_resume = true;
                    tracing::warn!("the server refused the saved resume points ({e}): every group is read again in full");
                    let groups: Vec<String> = record.groups.keys().cloned().collect();
                    for g in groups {
                        self.resync(&mut record, &mut resync, &g);
                    }
                }
                Err(e) if e.is_retryable() => {
                    record.counts.restarts += 1;
                    tracing::warn!(
                        "the Listen stream failed ({e}); reopening from the saved position"
                    );
                    backoff.wait(e, "follow Firestore's changes").await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn list_root(&self) -> Result<Vec<String>> {
        Ok(self
            .source
            .root_collections()
            .await?
            .into_iter()
            .filter(|c| !crate::own::is_own_collection(c))
            .collect())
    }

    /// Once the copy is done: its tombstones applied again, the groups it wrote
    /// followed, and the groups whose resends it overlapped read again in full.
    async fn finish_copy(
        &self,
        record: &mut FollowRecord,
        resync: &mut BTreeSet<String>,
    ) -> Result<()> {
        let swept = self.applier.sweep_tombstones().await?;
        record.counts.swept += swept;
        for g in self.applier.ledger_groups().await? {
            record.groups.entry(g).or_default();
        }
        for (g, state) in record.groups.iter_mut() {
            if state.dirty {
                state.token = None;
                resync.insert(g.clone());
                record.counts.resyncs += 1;
            }
        }
        record.copy_done = true;
        self.store.save(record).await?;
        tracing::info!(
            swept,
            resyncs = resync.len(),
            "the copy is done: its tombstones applied again; groups whose deletes it could hide are read again"
        );
        Ok(())
    }

    /// One stream, from open to a reason to reopen or to end.
    async fn session(
        &self,
        record: &mut FollowRecord,
        resync: &mut BTreeSet<String>,
        copy_done: &mut signal::Receiver<bool>,
        stop: &CancellationToken,
        last_log: &mut Instant,
    ) -> Result<Session> {
        let groups: Vec<String> = record.groups.keys().cloned().collect();
        let targets: Vec<ListenTarget> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let state = &record.groups[g];
                let resume = match (&state.token, resync.contains(g)) {
                    (_, true) => Resume::Full,
                    (Some(tok), false) => Resume::Token(B64.decode(tok).unwrap_or_default()),
                    (None, false) => Resume::Time(nanos_timestamp(record.applied_or_start())),
                };
                ListenTarget {
                    id: i as i32 + 1,
                    group: g.clone(),
                    resume,
                }
            })
            .collect();
        let group_of_target: HashMap<i32, String> =
            targets.iter().map(|t| (t.id, t.group.clone())).collect();
        let conn = self.source.connection();
        let mut stream = listen::open(conn, self.source.root(), &targets).await?;
        let mut watch = Watch::new(targets.iter().map(|t| (t.id, t.resume == Resume::Full)));
        // Groups in a resend, with the epoch their records are marked with.
        let mut epochs: HashMap<String, i64> = targets
            .iter()
            .filter(|t| t.resume == Resume::Full)
            .map(|t| (t.group.clone(), now_nanos()))
            .collect();
        let mut chunk: HashMap<String, Pending> = HashMap::new();
        // Each second: the heartbeat, a look for a cutover or a gate waiting; the lag
        // line every `report_every`.
        let mut report = tokio::time::interval(Duration::from_secs(1));
        report.tick().await;
        // When the stream last said anything: a gate waiting on a quiet stream reopens
        // it, never one that is busy (a resend of a large group, say: reopening would
        // start that resend again, and again, and the gate would never pass).
        let mut heard = Instant::now();
        let mut discover = tokio::time::interval(self.config.discover_every);
        discover.tick().await;
        loop {
            let resp = tokio::select! {
                biased;
                () = stop.cancelled() => {
                    // Unsaved changes after the last consistent point are read again.
                    record.holder = None;
                    self.store.save(record).await?;
                    return Ok(Session::Ended(Ended::Stopped));
                }
                changed = copy_done.changed(), if !record.copy_done => {
                    if changed.is_ok() && *copy_done.borrow() {
                        return Ok(Session::Reopen);
                    }
                    continue;
                }
                _ = report.tick() => {
                    if let Some(h) = record.holder.as_mut() {
                        h.heartbeat = DateTime::now();
                    }
                    self.store.save(record).await?;
                    self.publish(record);
                    if last_log.elapsed() >= self.config.report_every {
                        *last_log = Instant::now();
                        log_lag(record);
                    }
                    if self.cut_over(record).await? {
                        return Ok(Session::Ended(Ended::CutOver));
                    }
                    // A cutover waits for a consistent point past its time, and a quiet
                    // stream may send none (the emulator sends one only on a change):
                    // a reopened stream sends one at once.
                    // A resend in progress ends in a consistent point of its own: it
                    // is given longer before it counts as quiet.
                    let quiet = Duration::from_secs(if epochs.is_empty() { 3 } else { 30 });
                    if record.cutover_pending && heard.elapsed() >= quiet {
                        // A gate waits: the root collections it must see are listed now,
                        // not at the next discovery.
                        self.discover(record, resync).await?;
                        return Ok(Session::Reopen);
                    }
                    continue;
                }
                _ = discover.tick() => {
                    if self.discover(record, resync).await? {
                        return Ok(Session::Reopen);
                    }
                    continue;
                }
                resp = stream.next(conn) => resp?,
            };
            heard = Instant::now();
            let Some(resp) = resp else {
                return Err(Error::Firestore {
                    operation: "Listen",
                    endpoint: conn.endpoint().to_string(),
                    code: tonic::Code::Unavailable,
                    message: "the server ended the stream".into(),
                });
            };
            for event in watch.on(resp) {
                match event {
                    Event::Upsert(doc) => {
                        if chunk.len() >= CHUNK {
                            self.flush(&mut chunk, &epochs, record).await?;
                        }
                        chunk.insert(rel_of(&doc.name), Pending::Upsert(doc));
                    }
                    Event::Delete { name, time } => {
                        if chunk.len() >= CHUNK {
                            self.flush(&mut chunk, &epochs, record).await?;
                        }
                        // Without the server's time: just after the last consistent
                        // point, before which the document was seen.
                        let t = time
                            .as_ref()
                            .map(timestamp_nanos)
                            .unwrap_or(record.applied_or_start() + 1);
                        chunk.insert(rel_of(&name), Pending::Delete(t));
                    }
                    Event::Reset(t) => {
                        // What came before the reset is applied as it stands.
                        self.flush(&mut chunk, &epochs, record).await?;
                        if let Some(g) = group_of_target.get(&t) {
                            epochs.insert(g.clone(), now_nanos());
                            record.counts.resets += 1;
                        }
                    }
                    Event::Filter { target, count } => {
                        self.flush(&mut chunk, &epochs, record).await?;
                        let Some(g) = group_of_target.get(&target) else {
                            continue;
                        };
                        if epochs.contains_key(g) {
                            continue;
                        }
                        let live = self.applier.live_count(g).await?;
                        if live != count.max(0) as u64 {
                            tracing::warn!(group = %g, server = count, ledger = live, "an existence filter disagrees with the ledger: the group is read again");
                            self.resync(record, resync, g);
                            return Ok(Session::Reopen);
                        }
                    }
                    Event::Removed { target, cause } => {
                        let Some(g) = group_of_target.get(&target) else {
                            continue;
                        };
                        tracing::warn!(group = %g, "the server dropped the target ({cause}): the group is read again");
                        self.resync(record, resync, g);
                        return Ok(Session::Reopen);
                    }
                    Event::Consistent {
                        read_time,
                        tokens,
                        resent,
                    } => {
                        self.flush(&mut chunk, &epochs, record).await?;
                        let time = timestamp_nanos(&read_time);
                        for t in resent {
                            let Some(g) = group_of_target.get(&t) else {
                                continue;
                            };
                            let Some(epoch) = epochs.remove(g) else {
                                continue;
                            };
                            resync.remove(g);
                            if record.copy_done {
                                let gone = self.applier.reconcile(g, epoch, time).await?;
                                record.counts.deletes += gone;
                                if let Some(s) = record.groups.get_mut(g) {
                                    s.dirty = false;
                                }
                            } else if let Some(s) = record.groups.get_mut(g) {
                                // The copy may still write documents this resend did
                                // not see: their absence means nothing yet.
                                s.dirty = true;
                            }
                        }
                        for (t, tok) in tokens {
                            if let Some(s) = group_of_target
                                .get(&t)
                                .and_then(|g| record.groups.get_mut(g))
                            {
                                s.token = Some(B64.encode(tok));
                            }
                        }
                        record.applied = Some(record.applied.map_or(time, |a| a.max(time)));
                        self.store.save(record).await?;
                        self.publish(record);
                        if self.cut_over(record).await? {
                            return Ok(Session::Ended(Ended::CutOver));
                        }
                    }
                }
            }
        }
    }

    /// Lists the root collections; a new one is followed from its first document (a
    /// full read of it). Whether one was added (the stream must be reopened).
    async fn discover(
        &self,
        record: &mut FollowRecord,
        resync: &mut BTreeSet<String>,
    ) -> Result<bool> {
        let mut added = false;
        for c in self.list_root().await? {
            if !record.groups.contains_key(&c) {
                tracing::info!(collection = %c, "a new root collection: followed from its first document");
                record.groups.insert(c.clone(), GroupState::default());
                resync.insert(c);
                added = true;
            }
        }
        if added {
            self.store.save(record).await?;
        }
        Ok(added)
    }

    fn resync(&self, record: &mut FollowRecord, resync: &mut BTreeSet<String>, group: &str) {
        if let Some(s) = record.groups.get_mut(group) {
            s.token = None;
        }
        resync.insert(group.to_string());
        record.counts.resyncs += 1;
    }

    async fn flush(
        &self,
        chunk: &mut HashMap<String, Pending>,
        epochs: &HashMap<String, i64>,
        record: &mut FollowRecord,
    ) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let items: Vec<(String, Pending)> = chunk.drain().collect();
        let epochs: HashMap<String, i64> = epochs
            .iter()
            .filter(|(g, _)| items.iter().any(|(r, _)| group_of(r) == g.as_str()))
            .map(|(g, e)| (g.clone(), *e))
            .collect();
        self.applier.apply(items, &epochs, &mut record.counts).await
    }

    fn publish(&self, record: &FollowRecord) {
        let mut v = self.view.lock().unwrap();
        v.record = Some(record.clone());
    }

    /// Whether a recorded cutover is reached: then the follower records that it left.
    async fn cut_over(&self, record: &mut FollowRecord) -> Result<bool> {
        let stored = self.store.load(&record.job).await?;
        let want = stored.as_ref().and_then(|r| r.want);
        record.cutover_pending = want.is_some_and(|w| record.applied_or_start() < w);
        let Some(cutover) = stored.and_then(|r| r.cutover) else {
            return Ok(false);
        };
        if record.applied_or_start() < cutover.time || !record.copy_done {
            record.cutover_pending = true;
            return Ok(false);
        }
        record.cutover = Some(cutover);
        record.finished = Some(DateTime::now());
        record.holder = None;
        self.store.save(record).await?;
        tracing::info!("cutover recorded and every change up to it applied: the follower leaves");
        Ok(true)
    }
}

/// Whether a Listen failure means the resume points were refused: Firestore answers a
/// `read_time` older than its version retention with FAILED_PRECONDITION and a resume
/// token it cannot use with INVALID_ARGUMENT (or OUT_OF_RANGE).
fn stale_resume(e: &Error) -> bool {
    matches!(
        e,
        Error::Firestore {
            operation: "Listen",
            code: tonic::Code::FailedPrecondition
                | tonic::Code::InvalidArgument
                | tonic::Code::OutOfRange,
            ..
        }
    )
}

/// The lag line: the consistent time applied, how far behind now it is, the counts.
pub fn lag_line(record: &FollowRecord) -> String {
    let lag = record.lag_secs();
    let c = &record.counts;
    format!(
        "following: applied up to {} (lag {lag:.1}s); {} upserts, {} unchanged, {} deletes, {} resets, {} resyncs, {} restarts, {} dead letters",
        nanos_rfc3339(record.applied_or_start()),
        c.upserts, c.unchanged, c.deletes, c.resets, c.resyncs, c.restarts, c.dead_letters
    )
}

fn log_lag(record: &FollowRecord) {
    tracing::info!("{}", lag_line(record));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen_error(code: tonic::Code) -> Error {
        Error::Firestore {
            operation: "Listen",
            endpoint: "e".into(),
            code,
            message: "m".into(),
        }
    }

    #[test]
    fn refused_resume_points_are_told_apart_from_other_failures() {
        assert!(stale_resume(&listen_error(tonic::Code::FailedPrecondition)));
        assert!(stale_resume(&listen_error(tonic::Code::InvalidArgument)));
        assert!(!stale_resume(&listen_error(tonic::Code::Unavailable)));
        assert!(!stale_resume(&listen_error(tonic::Code::PermissionDenied)));
        let other = Error::Firestore {
            operation: "RunQuery",
            endpoint: "e".into(),
            code: tonic::Code::FailedPrecondition,
            message: "m".into(),
        };
        assert!(
            !stale_resume(&other),
            "only the Listen stream's resume points"
        );
    }
}
