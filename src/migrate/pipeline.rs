//! The migration pipeline: source → transform → batcher → sink, every stage bounded.
//!
//! ```text
//! FirestoreSource ──(channel: read_ahead docs)──► batcher task ──(channel: in_flight batches)──► writer
//!                                                 transform, per-collection                     ≤ in_flight
//!                                                 buffers ≤ buffer_bytes                        batches at once
//! ```
//!
//! Memory is bounded by `read_ahead` documents, `buffer_bytes` of pending batches and
//! `2 × in_flight` batches in the channel and at the server, whatever the data size.
//! Crash cost is bounded too: at most one batch (`--batch-size` documents) per range is
//! ever past the range's saved cursor, so a resume after `kill -9` reads and writes
//! again at most that much, however many batches `in_flight` lets overlap (they share
//! the one-batch window: several small batches of interleaved collections, or one full
//! batch).
//! When the sink is slow, the writer stops taking batches, the batcher blocks on its
//! send, stops reading the source channel, and the source reader stops pulling from
//! gRPC: backpressure reaches Firestore instead of growing a queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use gcloud_sdk::google::firestore::v1::Document;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::mapping::item::WriteItem;
use crate::mapping::transform::{Rejection, Transformer};
use crate::migrate::checkpoint::{CheckpointStore, Counts, Island, RangeCheckpoint, MAX_ISLANDS};
use crate::migrate::progress::{CollectionStats, Progress};
use crate::sink::dead_letter::DEAD_LETTER_COLLECTION;
use crate::sink::{Batch, DocFailure, MongoSink};
use crate::source::{FirestoreSource, KeyRange};

/// Pipeline bounds.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Documents read ahead of the transform.
    pub read_ahead: usize,
    /// Batches being written at once.
    pub in_flight: usize,
    /// Bytes held in partly filled batches across all collections; past it the largest
    /// is flushed early.
    pub buffer_bytes: usize,
    /// Where refused documents go.
    pub dead_letter_collection: String,
    /// Stamped on dead letters so an operator can tell runs apart.
    pub run_id: String,
    /// Transform and count, but write nothing (not even dead letters).
    pub dry_run: bool,
    /// Stop the run (checkpoints kept) once more documents than this were dead-lettered.
    pub max_dead_letters: Option<u64>,
    /// Dead letters of this run so far, shared by every range the process copies (the
    /// limit is per run, not per range).
    pub dead_letters: Arc<AtomicU64>,
}

impl PipelineConfig {
    /// Counts `n` more dead letters; fails once the run's total passes the limit. Called
    /// before the documents are acknowledged, so the cursor stays before them and a rerun
    /// sees them again.
    fn count_dead_letters(&self, n: u64) -> Result<()> {
        let total = self.dead_letters.fetch_add(n, Ordering::Relaxed) + n;
        match self.max_dead_letters {
            Some(limit) if total > limit => Err(Error::DeadLetterLimit { limit }),
            _ => Ok(()),
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            read_ahead: 4096,
            in_flight: 4,
            buffer_bytes: 64 * 1024 * 1024,
            dead_letter_collection: DEAD_LETTER_COLLECTION.to_string(),
            run_id: String::new(),
            dry_run: false,
            max_dead_letters: None,
            dead_letters: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub collections: Vec<CollectionStats>,
    pub read: u64,
    pub written: u64,
    pub dead_lettered: u64,
    pub elapsed_secs: f64,
    /// The mappings' indexes, when this run built them (after every range was copied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indexes: Option<Vec<crate::mapping::indexes::IndexReport>>,
}

impl Summary {
    /// The counts so far, per collection and in total.
    pub fn from_progress(progress: &Progress) -> Self {
        let collections = progress.snapshot();
        Self {
            read: collections.iter().map(|c| c.read).sum(),
            written: collections.iter().map(|c| c.written).sum(),
            dead_lettered: collections.iter().map(|c| c.dead_lettered).sum(),
            collections,
            elapsed_secs: progress.elapsed().as_secs_f64(),
            indexes: None,
        }
    }

    /// Every document read either landed or was dead-lettered with a reason.
    pub fn accounted_for(&self) -> bool {
        self.read == self.written + self.dead_lettered
    }
}

/// A batch bound for the writer, with the pattern of each item for accounting.
struct Outgoing {
    batch: Batch,
    patterns: Vec<String>,
    /// Sequence number of each item in read order (for the checkpoint cursor).
    seqs: Vec<u64>,
}

impl Outgoing {
    fn new(collection: &str) -> Self {
        Self {
            batch: Batch::new(collection),
            patterns: Vec::new(),
            seqs: Vec::new(),
        }
    }
}

/// What finally happened to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    DeadLettered,
    /// Already in the checkpoint's counts: an island (of this run or of the crashed run
    /// this one resumes).
    Counted,
}

/// Tracks documents from read to acknowledgement, in read order, to find the checkpoint
/// cursor: the last name such that it and everything before it were acknowledged.
/// Batches are acknowledged out of order (several in flight, several collections), so
/// acknowledged documents wait here until everything before them is acknowledged too.
/// The window is bounded by the pipeline's lag limit.
#[derive(Default)]
struct Tracker {
    /// Sequence number of `window[0]`.
    base: u64,
    window: std::collections::VecDeque<(String, Option<Outcome>)>,
    /// Documents handed to the writer and not yet acknowledged by it.
    in_flight: usize,
}

impl Tracker {
    fn register(&mut self, name: String) -> u64 {
        self.window.push_back((name, None));
        self.base + self.window.len() as u64 - 1
    }

    fn ack(&mut self, seq: u64, outcome: Outcome) {
        if let Some(slot) = seq
            .checked_sub(self.base)
            .and_then(|i| self.window.get_mut(i as usize))
        {
            slot.1 = Some(outcome);
        }
    }

    /// Pops the acknowledged prefix: the new cursor and what it adds to the counts.
    fn advance(&mut self) -> Option<(String, Counts)> {
        let mut last = None;
        let mut counts = Counts::default();
        while let Some((_, Some(outcome))) = self.window.front() {
            match outcome {
                Outcome::Written => counts.written += 1,
                Outcome::DeadLettered => counts.dead_lettered += 1,
                Outcome::Counted => {}
            }
            last = self.window.pop_front().map(|(name, _)| name);
            self.base += 1;
        }
        last.map(|name| (name, counts))
    }

    /// The name of a document not yet covered by the cursor.
    fn name(&self, seq: u64) -> Option<&str> {
        seq.checked_sub(self.base)
            .and_then(|i| self.window.get(i as usize))
            .map(|(name, _)| name.as_str())
    }

    /// Documents read but not yet covered by the cursor.
    fn lag(&self) -> usize {
        self.window.len()
    }

    /// The oldest document not yet acknowledged.
    fn oldest_pending(&self) -> Option<u64> {
        self.window
            .iter()
            .position(|(_, o)| o.is_none())
            .map(|i| self.base + i as u64)
    }
}

/// What the batcher and the writer of one range share.
struct RangeState {
    tracker: Mutex<Tracker>,
    book: Mutex<IslandBook>,
    /// Signalled by the writer after each acknowledged batch (and its checkpoint save).
    acked: tokio::sync::Notify,
}

/// Saves a range's checkpoint whenever its cursor moves.
pub struct Checkpointer {
    pub store: CheckpointStore,
    pub record: RangeCheckpoint,
}

impl Checkpointer {
    /// Saves the range's progress: the new cursor (if it moved), the documents it adds,
    /// and the islands past it.
    async fn save(
        &mut self,
        cursor: Option<String>,
        counts: Counts,
        islands: Vec<Island>,
        started: &std::time::Instant,
        done_at_start: u64,
    ) -> Result<()> {
        if cursor.is_some() {
            self.record.cursor = cursor;
        }
        self.record.counts.written += counts.written;
        self.record.counts.dead_lettered += counts.dead_lettered;
        self.record.islands = islands;
        self.record.updated_at = mongodb::bson::DateTime::now();
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        self.record.rate = (self.record.counts.done() - done_at_start) as f64 / secs;
        self.store.save(&self.record).await
    }
}

/// Runs a migration of `range` to completion.
pub async fn run(
    source: &FirestoreSource,
    sink: &MongoSink,
    transformer: &Transformer,
    range: KeyRange,
    config: &PipelineConfig,
    progress: &Progress,
    checkpoint: Option<Checkpointer>,
) -> Result<(Summary, Option<Checkpointer>)> {
    let shared = Arc::new(RangeState {
        tracker: Mutex::new(Tracker::default()),
        book: Mutex::new(IslandBook {
            kept: checkpoint
                .as_ref()
                .map(|c| c.record.islands.iter().map(|i| (i.clone(), None)).collect())
                .unwrap_or_default(),
        }),
        acked: tokio::sync::Notify::new(),
    });
    let (btx, brx) = mpsc::channel::<Outgoing>(config.in_flight.max(1));
    let writer = tokio::spawn(write_batches(
        sink.clone(),
        brx,
        config.clone(),
        progress.clone(),
        shared.clone(),
        checkpoint,
    ));
    let docs = source.stream(range, config.read_ahead);
    let batched = batch_documents(docs, btx, sink, transformer, config, progress, &shared).await;
    // The batcher dropped its sender: the writer drains what is queued and ends. On a
    // batcher error the writer still finishes what was sent, so the checkpoint keeps
    // every acknowledged document.
    let written = writer
        .await
        .map_err(|e| Error::Config(format!("writer task failed: {e}")))?;
    // When the writer failed, the batcher only saw it stop: the writer's error is the cause.
    let checkpoint = match (batched, written) {
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
        (Ok(()), Ok(checkpoint)) => checkpoint,
    };
    Ok((Summary::from_progress(progress), checkpoint))
}

/// Per-collection batches being filled, bounded in bytes and in lag.
struct Buffers<'a> {
    out: mpsc::Sender<Outgoing>,
    limits: crate::sink::SinkConfig,
    config: &'a PipelineConfig,
    progress: &'a Progress,
    tracker: &'a Mutex<Tracker>,
    /// At most this many documents past the range's checkpoint cursor (one batch): past
    /// it, the partial batch holding the oldest unacknowledged document is sent early (so
    /// the cursor does not wait on a collection that fills slowly) and the batcher waits
    /// for the writer's acknowledgements. It is what a crash can make a resume read and
    /// write again.
    max_lag: usize,
    /// Signalled by the writer after each acknowledged batch.
    acked: &'a tokio::sync::Notify,
    open: HashMap<String, Outgoing>,
    bytes: usize,
}

impl Buffers<'_> {
    async fn send(&self, o: Outgoing) -> Result<()> {
        self.tracker.lock().unwrap().in_flight += o.seqs.len();
        self.out
            .send(o)
            .await
            .map_err(|_| Error::Config("writer stopped early".into()))
    }

    /// Holds the batcher until at most `max_lag` documents are past the cursor: sends
    /// the partial batch holding the oldest unacknowledged document, else waits for the
    /// writer to acknowledge what is in flight. Returns when neither can help either
    /// (the rest is held by the island matcher, which more reading releases).
    async fn keep_lag_bounded(&mut self) -> Result<()> {
        loop {
            // The common case (within the bound) costs one lock and no scan: finding the
            // oldest pending document walks the window.
            let (oldest, in_flight) = {
                let t = self.tracker.lock().unwrap();
                if t.lag() <= self.max_lag {
                    return Ok(());
                }
                (t.oldest_pending(), t.in_flight)
            };
            let holder = self
                .open
                .iter()
                .find(|(_, o)| o.seqs.first().copied() == oldest)
                .map(|(k, _)| k.clone());
            if let Some(k) = holder {
                let o = self.open.remove(&k).expect("present");
                self.bytes -= o.batch.bytes;
                self.send(o).await?;
                continue;
            }
            if in_flight == 0 {
                return Ok(());
            }
            tokio::select! {
                () = self.acked.notified() => {}
                // The writer stopped (its error is reported by the caller).
                () = self.out.closed() => {
                    return Err(Error::Config("writer stopped early".into()));
                }
            }
        }
    }

    /// Adds one document (already registered under `seq`) to its collection's batch.
    async fn push(&mut self, doc: HeldDoc) -> Result<()> {
        let HeldDoc {
            collection,
            pattern,
            item,
            seq,
            ..
        } = doc;
        if collection == self.config.dead_letter_collection {
            self.config.count_dead_letters(1)?;
        }
        self.progress.read(&pattern, 1);
        let entry = self
            .open
            .entry(collection.clone())
            .or_insert_with(|| Outgoing::new(&collection));
        if entry.batch.would_overflow(&item, &self.limits) {
            let full = std::mem::replace(entry, Outgoing::new(&collection));
            self.bytes -= full.batch.bytes;
            self.send(full).await?;
        }
        let entry = self.open.get_mut(&collection).expect("inserted above");
        let before = entry.batch.bytes;
        entry.batch.push(item);
        entry.patterns.push(pattern);
        entry.seqs.push(seq);
        self.bytes += entry.batch.bytes - before;
        self.keep_lag_bounded().await?;
        if self.bytes > self.config.buffer_bytes {
            // Many collections interleave in `__name__` order; flushing the largest
            // partial batch keeps memory bounded without tiny batches.
            let largest = self
                .open
                .iter()
                .max_by_key(|(_, o)| o.batch.bytes)
                .map(|(k, _)| k.clone())
                .expect("non-empty");
            let o = self.open.remove(&largest).expect("present");
            self.bytes -= o.batch.bytes;
            self.send(o).await?;
        }
        Ok(())
    }

    /// Sends every partial batch, oldest first, so the cursor advances as the tail drains.
    async fn finish(mut self) -> Result<()> {
        let mut rest: Vec<Outgoing> = std::mem::take(&mut self.open).into_values().collect();
        rest.sort_by_key(|o| o.seqs.iter().min().copied());
        for o in rest {
            if !o.batch.is_empty() {
                self.send(o).await?;
            }
        }
        Ok(())
    }
}

/// A document held while the resume checks that it belongs to an island.
struct HeldDoc {
    name: String,
    collection: String,
    pattern: String,
    item: WriteItem,
    seq: u64,
}

/// Recognises, in a resumed stream, the islands a crashed run left (see
/// [`crate::migrate::checkpoint::Island`]): the documents of an island's collection are held from
/// its `first` on and skipped once its `last` arrives within `docs` of them; past that
/// many without `last`, or at the end of the stream, they are released and written.
#[derive(Default)]
struct IslandMatcher {
    waiting: HashMap<(String, String), Island>,
    active: HashMap<String, (Island, Vec<HeldDoc>)>,
}

/// What the matcher decided for one document.
enum Matched {
    /// Not part of an island: write it (with any documents released before it).
    Write(Vec<HeldDoc>),
    /// Held until its island is confirmed or released.
    Held,
    /// An island is confirmed: these documents landed before and are skipped.
    Skip(Island, Vec<u64>),
}

impl IslandMatcher {
    fn new(islands: &[Island]) -> Self {
        Self {
            waiting: islands
                .iter()
                .map(|i| ((i.collection.clone(), i.first.clone()), i.clone()))
                .collect(),
            active: HashMap::new(),
        }
    }

    fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.active.is_empty()
    }

    fn offer(&mut self, doc: HeldDoc) -> Matched {
        let key = doc.collection.clone();
        let name = doc.name.clone();
        if let Some((island, held)) = self.active.get_mut(&key) {
            held.push(doc);
            let n = held.len() as u64;
            let confirmed = n == island.docs && name == island.last;
            if !confirmed && n < island.docs {
                return Matched::Held;
            }
            let (island, held) = self.active.remove(&key).expect("active");
            return if confirmed {
                Matched::Skip(island, held.into_iter().map(|d| d.seq).collect())
            } else {
                Matched::Write(held)
            };
        }
        match self.waiting.remove(&(key.clone(), name.clone())) {
            Some(island) if island.docs == 1 && island.last == name => {
                Matched::Skip(island, vec![doc.seq])
            }
            Some(island) if island.docs > 1 => {
                self.active.insert(key, (island, vec![doc]));
                Matched::Held
            }
            _ => Matched::Write(vec![doc]),
        }
    }

    /// Everything still held, in read order: the stream ended before its island did.
    fn release_all(&mut self) -> Vec<HeldDoc> {
        let mut held: Vec<HeldDoc> = self.active.drain().flat_map(|(_, (_, h))| h).collect();
        held.sort_by_key(|d| d.seq);
        held
    }
}

/// The islands of a range (see [`Island`]): those a crashed run left, and those this run
/// leaves past its cursor; saved with every checkpoint.
#[derive(Default)]
struct IslandBook {
    /// With the sequence numbers of the island's documents once this run has them, so the
    /// island shrinks as the cursor passes over it and goes when it is covered (a resume
    /// starts after the cursor: an island starting behind it would never be recognised).
    kept: Vec<(Island, Option<Vec<u64>>)>,
}

impl IslandBook {
    fn confirm(&mut self, island: &Island, seqs: Vec<u64>) {
        if let Some(entry) = self.kept.iter_mut().find(|(i, _)| i == island) {
            entry.1 = Some(seqs);
        }
    }

    fn add(&mut self, island: Island, seqs: Vec<u64>) {
        self.kept.push((island, Some(seqs)));
        if self.kept.len() > MAX_ISLANDS {
            // Forgetting an island only means writing its documents again after a crash.
            self.kept.remove(0);
        }
    }

    /// Trims the islands to what the cursor does not cover.
    fn prune(&mut self, tracker: &Tracker) {
        self.kept.retain_mut(|(island, seqs)| {
            let Some(seqs) = seqs else { return true };
            seqs.retain(|s| *s >= tracker.base);
            match seqs.first().and_then(|s| tracker.name(*s)) {
                Some(first) => {
                    island.first = first.to_string();
                    island.docs = seqs.len() as u64;
                    true
                }
                None => false,
            }
        });
    }

    fn islands(&self) -> Vec<Island> {
        self.kept.iter().map(|(i, _)| i.clone()).collect()
    }
}

/// Transforms documents and groups them into per-collection batches; on a resume, skips
/// the islands the crashed run left.
#[allow(clippy::too_many_arguments)]
async fn batch_documents(
    mut docs: mpsc::Receiver<Result<Document>>,
    out: mpsc::Sender<Outgoing>,
    sink: &MongoSink,
    transformer: &Transformer,
    config: &PipelineConfig,
    progress: &Progress,
    shared: &RangeState,
) -> Result<()> {
    let RangeState {
        tracker,
        book,
        acked,
    } = shared;
    let limits = sink.config().clone();
    let mut buffers = Buffers {
        out,
        max_lag: limits.max_batch_docs,
        acked,
        limits,
        config,
        progress,
        tracker,
        open: HashMap::new(),
        bytes: 0,
    };
    let mut matcher = IslandMatcher::new(&book.lock().unwrap().islands());
    while let Some(doc) = docs.recv().await {
        let doc = doc?;
        let guard = sink.config().guard_field.as_deref();
        let applied = transformer
            .apply(&doc)
            .and_then(|t| crate::sink::guard::stamp_transformed(t, &doc, guard));
        let (collection, pattern, item) = match applied {
            Ok(t) => {
                let pattern = t.pattern.to_string();
                progress.see(&pattern, &t.collection);
                (t.collection, pattern, t.item)
            }
            Err(rejection) => {
                let pattern = pattern_name(&rejection);
                progress.see(&pattern, "");
                tracing::warn!(path = %rejection.source_path, rule = rejection.rule, "dead letter: {}", rejection.reason);
                let item = rejection.dead_letter(Some(&doc), &config.run_id);
                (config.dead_letter_collection.clone(), pattern, item)
            }
        };
        let seq = tracker.lock().unwrap().register(doc.name.clone());
        let doc = HeldDoc {
            name: doc.name,
            collection,
            pattern,
            item,
            seq,
        };
        if matcher.is_idle() {
            buffers.push(doc).await?;
            continue;
        }
        match matcher.offer(doc) {
            Matched::Write(docs) => {
                for d in docs {
                    buffers.push(d).await?;
                }
            }
            Matched::Held => {}
            Matched::Skip(island, seqs) => {
                tracing::debug!(collection = %island.collection, first = %island.first, docs = island.docs, "skipping an island the previous run wrote");
                let mut t = tracker.lock().unwrap();
                for seq in &seqs {
                    t.ack(*seq, Outcome::Counted);
                }
                book.lock().unwrap().confirm(&island, seqs);
            }
        }
    }
    for d in matcher.release_all() {
        buffers.push(d).await?;
    }
    buffers.finish().await
}

fn pattern_name(r: &Rejection) -> String {
    r.pattern
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "(unparseable names)".into())
}

/// Writes batches with at most `in_flight` at once; records dead letters for documents
/// the server refused.
async fn write_batches(
    sink: MongoSink,
    batches: mpsc::Receiver<Outgoing>,
    config: PipelineConfig,
    progress: Progress,
    shared: Arc<RangeState>,
    mut checkpoint: Option<Checkpointer>,
) -> Result<Option<Checkpointer>> {
    let RangeState {
        tracker,
        book,
        acked,
    } = &*shared;
    let started = std::time::Instant::now();
    let done_at_start = checkpoint.as_ref().map_or(0, |c| c.record.counts.done());
    let stream =
        futures::stream::unfold(
            batches,
            |mut rx| async move { rx.recv().await.map(|o| (o, rx)) },
        );
    let results = stream
        .map(|o| {
            let sink = sink.clone();
            let dry_run = config.dry_run;
            async move {
                let result = if dry_run {
                    Ok(crate::sink::BatchResult {
                        written: o.batch.items.len(),
                        failures: Vec::new(),
                    })
                } else {
                    sink.write(&o.batch).await
                };
                (o, result)
            }
        })
        .buffer_unordered(config.in_flight.max(1));
    let mut results = std::pin::pin!(results);
    while let Some((o, result)) = results.next().await {
        let result = result?;
        let is_dead_letter_batch = o.batch.collection == config.dead_letter_collection;
        let failed: HashMap<&str, &DocFailure> = result
            .failures
            .iter()
            .map(|f| (f.source_path.as_str(), f))
            .collect();
        let mut refused = Vec::new();
        let mut acks = Vec::with_capacity(o.seqs.len());
        for ((item, pattern), seq) in o.batch.items.iter().zip(&o.patterns).zip(&o.seqs) {
            match failed.get(item.source_path.as_str()) {
                None if is_dead_letter_batch => {
                    progress.dead_lettered(pattern, 1);
                    acks.push((*seq, Outcome::DeadLettered));
                }
                None => {
                    progress.written(pattern, 1);
                    acks.push((*seq, Outcome::Written));
                }
                Some(f) if is_dead_letter_batch => {
                    // A dead letter that cannot be stored is a fatal condition: the
                    // document would otherwise vanish without a trace.
                    return Err(Error::Config(format!(
                        "could not store the dead letter for {}: {}",
                        f.source_path, f.message
                    )));
                }
                Some(f) => {
                    refused.push((item, pattern.clone(), *f));
                    acks.push((*seq, Outcome::DeadLettered));
                }
            }
        }
        if !refused.is_empty() {
            config.count_dead_letters(refused.len() as u64)?;
            store_refused(&sink, &config, &progress, refused).await?;
        }
        let (cursor, mut counts, new_island) = {
            let mut t = tracker.lock().unwrap();
            t.in_flight -= o.seqs.len();
            for (seq, outcome) in &acks {
                t.ack(*seq, *outcome);
            }
            let (cursor, counts) = match t.advance() {
                Some((cursor, counts)) => (Some(cursor), counts),
                None => (None, Counts::default()),
            };
            // What of this batch the cursor does not cover yet is an island: saved now,
            // so a crash does not make the resume write it again.
            let past: Vec<&(u64, Outcome)> =
                acks.iter().filter(|(seq, _)| *seq >= t.base).collect();
            let island = match (past.first(), past.last()) {
                (Some((first, _)), Some((last, _))) => {
                    let mut island_counts = Counts::default();
                    for (_, outcome) in &past {
                        match outcome {
                            Outcome::Written => island_counts.written += 1,
                            Outcome::DeadLettered => island_counts.dead_lettered += 1,
                            Outcome::Counted => {}
                        }
                    }
                    let island = Island {
                        collection: o.batch.collection.clone(),
                        first: t.name(*first).unwrap_or_default().to_string(),
                        last: t.name(*last).unwrap_or_default().to_string(),
                        docs: past.len() as u64,
                    };
                    for (seq, _) in &past {
                        t.ack(*seq, Outcome::Counted);
                    }
                    let seqs: Vec<u64> = past.iter().map(|(seq, _)| *seq).collect();
                    Some((island, seqs, island_counts))
                }
                _ => None,
            };
            book.lock().unwrap().prune(&t);
            (cursor, counts, island)
        };
        let moved = cursor.is_some() || new_island.is_some();
        if let Some((island, seqs, island_counts)) = new_island {
            counts.written += island_counts.written;
            counts.dead_lettered += island_counts.dead_lettered;
            book.lock().unwrap().add(island, seqs);
        }
        if let (Some(c), true) = (checkpoint.as_mut(), moved) {
            if !config.dry_run {
                let islands = book.lock().unwrap().islands();
                c.save(cursor, counts, islands, &started, done_at_start)
                    .await?;
            }
        }
        // After the save: the batcher's bound on documents past the cursor holds for the
        // stored cursor, not only the one in memory.
        acked.notify_one();
    }
    Ok(checkpoint)
}

/// Documents the server refused become dead letters (reason: the server's message).
async fn store_refused(
    sink: &MongoSink,
    config: &PipelineConfig,
    progress: &Progress,
    refused: Vec<(&WriteItem, String, &DocFailure)>,
) -> Result<()> {
    let mut batch = Batch::new(config.dead_letter_collection.clone());
    let mut patterns = Vec::new();
    for (item, pattern, failure) in refused {
        tracing::warn!(path = %item.source_path, code = failure.code, "server refused document: {}", failure.message);
        let rejection = Rejection {
            source_path: item.source_path.clone(),
            pattern: crate::path::DocPath::parse(&item.source_path)
                .ok()
                .map(|p| p.pattern()),
            rule: failure.rule,
            field: None,
            reason: match failure.rule {
                // The embed-limit message already says what happened and how to fix it.
                "sink" => format!("server error {}: {}", failure.code, failure.message),
                _ => failure.message.clone(),
            },
        };
        batch.push(rejection.dead_letter(None, &config.run_id));
        patterns.push(pattern);
    }
    let result = sink.write(&batch).await?;
    if let Some(f) = result.failures.first() {
        return Err(Error::Config(format!(
            "could not store the dead letter for {}: {}",
            f.source_path, f.message
        )));
    }
    for p in patterns {
        progress.dead_lettered(&p, 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{rawdoc, Bson};

    fn held(collection: &str, name: &str, seq: u64) -> HeldDoc {
        HeldDoc {
            name: name.to_string(),
            collection: collection.to_string(),
            pattern: collection.to_string(),
            item: WriteItem {
                source_path: name.to_string(),
                id: Bson::String(name.to_string()),
                doc: rawdoc! {},
                literal: false,
                kind: Default::default(),
            },
            seq,
        }
    }

    fn island(collection: &str, first: &str, last: &str, docs: u64) -> Island {
        Island {
            collection: collection.into(),
            first: first.into(),
            last: last.into(),
            docs,
        }
    }

    #[test]
    fn an_island_that_comes_back_exactly_is_skipped_and_others_pass() {
        let mut m = IslandMatcher::new(&[island("a", "a1", "a3", 3)]);
        assert!(matches!(m.offer(held("a", "a0", 0)), Matched::Write(d) if d.len() == 1));
        assert!(matches!(m.offer(held("a", "a1", 1)), Matched::Held));
        // Other collections flow past while the island is held.
        assert!(matches!(m.offer(held("b", "b1", 2)), Matched::Write(_)));
        assert!(matches!(m.offer(held("a", "a2", 3)), Matched::Held));
        match m.offer(held("a", "a3", 4)) {
            Matched::Skip(i, seqs) => {
                assert_eq!(i.first, "a1");
                assert_eq!(seqs, vec![1, 3, 4]);
            }
            _ => panic!("the island is confirmed"),
        }
        assert!(m.is_idle());
    }

    #[test]
    fn an_island_that_does_not_come_back_exactly_is_written() {
        // `a3` was deleted since: the held documents are released, never skipped.
        let mut m = IslandMatcher::new(&[island("a", "a1", "a3", 2)]);
        assert!(matches!(m.offer(held("a", "a1", 0)), Matched::Held));
        match m.offer(held("a", "a4", 1)) {
            Matched::Write(d) => {
                assert_eq!(d.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![0, 1])
            }
            _ => panic!("released"),
        }
        // The stream ends inside an island: what is held is written, in read order.
        let mut m = IslandMatcher::new(&[island("a", "a1", "a9", 5), island("b", "b1", "b9", 5)]);
        assert!(matches!(m.offer(held("b", "b1", 0)), Matched::Held));
        assert!(matches!(m.offer(held("a", "a1", 1)), Matched::Held));
        let rest: Vec<u64> = m.release_all().iter().map(|d| d.seq).collect();
        assert_eq!(rest, vec![0, 1]);
    }

    #[test]
    fn islands_shrink_as_the_cursor_passes_and_go_when_covered() {
        let mut t = Tracker::default();
        for n in ["x1", "y1", "x2", "x3"] {
            t.register(n.to_string());
        }
        let mut book = IslandBook::default();
        book.add(island("x", "x1", "x3", 3), vec![0, 2, 3]);
        t.ack(0, Outcome::Counted);
        t.ack(1, Outcome::Written);
        let (cursor, counts) = t.advance().unwrap();
        assert_eq!((cursor.as_str(), counts.written), ("y1", 1));
        book.prune(&t);
        assert_eq!(book.islands(), vec![island("x", "x2", "x3", 2)]);
        t.ack(2, Outcome::Counted);
        t.ack(3, Outcome::Counted);
        let (_, counts) = t.advance().unwrap();
        assert_eq!(
            counts.done(),
            0,
            "island documents are counted once, when saved"
        );
        book.prune(&t);
        assert!(book.islands().is_empty());
    }
}
