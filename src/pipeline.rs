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
//! When the sink is slow, the writer stops taking batches, the batcher blocks on its
//! send, stops reading the source channel, and the source reader stops pulling from
//! gRPC: backpressure reaches Firestore instead of growing a queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use gcloud_sdk::google::firestore::v1::Document;
use tokio::sync::mpsc;

use crate::checkpoint::{CheckpointStore, Counts, RangeCheckpoint};
use crate::error::{Error, Result};
use crate::path::CollectionPattern;
use crate::progress::{CollectionStats, Progress};
use crate::sink::{Batch, DocFailure, MongoSink, WriteItem};
use crate::source::{FirestoreSource, KeyRange};
use crate::transform::{Rejection, Transformer, DEAD_LETTER_COLLECTION};

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
            }
            last = self.window.pop_front().map(|(name, _)| name);
            self.base += 1;
        }
        last.map(|name| (name, counts))
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

/// Saves a range's checkpoint whenever its cursor moves.
pub struct Checkpointer {
    pub store: CheckpointStore,
    pub record: RangeCheckpoint,
}

impl Checkpointer {
    async fn advance(
        &mut self,
        cursor: String,
        counts: Counts,
        started: &std::time::Instant,
        done_at_start: u64,
    ) -> Result<()> {
        self.record.cursor = Some(cursor);
        self.record.counts.written += counts.written;
        self.record.counts.dead_lettered += counts.dead_lettered;
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
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let (btx, brx) = mpsc::channel::<Outgoing>(config.in_flight.max(1));
    let writer = tokio::spawn(write_batches(
        sink.clone(),
        brx,
        config.clone(),
        progress.clone(),
        tracker.clone(),
        checkpoint,
    ));
    let docs = source.stream(range, config.read_ahead);
    let batched = batch_documents(
        source,
        docs,
        btx,
        sink,
        transformer,
        config,
        progress,
        &tracker,
    )
    .await;
    // The batcher dropped its sender: the writer drains what is queued and ends. On a
    // batcher error the writer still finishes what was sent, so the checkpoint keeps
    // every acknowledged document.
    let written = writer
        .await
        .map_err(|e| Error::Config(format!("writer task failed: {e}")))?;
    batched?;
    let checkpoint = written?;
    Ok((Summary::from_progress(progress), checkpoint))
}

/// Transforms documents and groups them into per-collection batches.
#[allow(clippy::too_many_arguments)]
async fn batch_documents(
    source: &FirestoreSource,
    mut docs: mpsc::Receiver<Result<Document>>,
    out: mpsc::Sender<Outgoing>,
    sink: &MongoSink,
    transformer: &Transformer,
    config: &PipelineConfig,
    progress: &Progress,
    tracker: &Mutex<Tracker>,
) -> Result<()> {
    let limits = sink.config().clone();
    // Past this many unacknowledged documents, the partial batch holding the oldest one
    // is sent early, so a crash replays at most about this many documents.
    let max_lag = limits.max_batch_docs * (config.in_flight + 1);
    let mut buffers: HashMap<String, Outgoing> = HashMap::new();
    let mut buffered_bytes = 0usize;
    let send = |o: Outgoing| async {
        out.send(o)
            .await
            .map_err(|_| Error::Config("writer stopped early".into()))
    };
    while let Some(doc) = docs.recv().await {
        let doc = doc?;
        let guard = sink.config().guard_field.as_deref();
        let applied = transformer
            .apply(&doc)
            .and_then(|t| crate::dual::guard::stamp_transformed(t, &doc, guard));
        let (collection, pattern, item) = match applied {
            Ok(t) => {
                let pattern = t.pattern.to_string();
                if progress.see(&pattern, &t.collection) {
                    spawn_pattern_count(source, &t.pattern, progress);
                }
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
        progress.read(&pattern, 1);
        let (seq, lag, oldest) = {
            let mut t = tracker.lock().unwrap();
            let seq = t.register(doc.name.clone());
            (seq, t.lag(), t.oldest_pending())
        };
        let entry = buffers
            .entry(collection.clone())
            .or_insert_with(|| Outgoing::new(&collection));
        if entry.batch.would_overflow(&item, &limits) {
            let full = std::mem::replace(entry, Outgoing::new(&collection));
            buffered_bytes -= full.batch.bytes;
            send(full).await?;
        }
        let entry = buffers.get_mut(&collection).expect("inserted above");
        let before = entry.batch.bytes;
        entry.batch.push(item);
        entry.patterns.push(pattern);
        entry.seqs.push(seq);
        buffered_bytes += entry.batch.bytes - before;
        if lag > max_lag {
            let holder = buffers
                .iter()
                .find(|(_, o)| o.seqs.first().copied() == oldest)
                .map(|(k, _)| k.clone());
            if let Some(k) = holder {
                let o = buffers.remove(&k).expect("present");
                buffered_bytes -= o.batch.bytes;
                send(o).await?;
                continue;
            }
        }
        if buffered_bytes > config.buffer_bytes {
            // Many collections interleave in `__name__` order; flushing the largest
            // partial batch keeps memory bounded without tiny batches.
            let largest = buffers
                .iter()
                .max_by_key(|(_, o)| o.batch.bytes)
                .map(|(k, _)| k.clone())
                .expect("non-empty");
            let o = buffers.remove(&largest).expect("present");
            buffered_bytes -= o.batch.bytes;
            send(o).await?;
        }
    }
    let mut rest: Vec<Outgoing> = buffers.into_values().collect();
    // Oldest first, so the cursor advances as the tail drains.
    rest.sort_by_key(|o| o.seqs.first().copied());
    for o in rest {
        if !o.batch.is_empty() {
            send(o).await?;
        }
    }
    Ok(())
}

/// Fills a collection's bar length from a collection-group count, in the background.
/// Display only: two patterns ending in the same collection id share one count.
fn spawn_pattern_count(source: &FirestoreSource, pattern: &CollectionPattern, progress: &Progress) {
    if !progress.is_tty() {
        return;
    }
    let (source, progress) = (source.clone(), progress.clone());
    let (name, id) = (pattern.to_string(), pattern.collection_id().to_string());
    tokio::spawn(async move {
        if let Ok(n) = source.count_collection_group(&id).await {
            progress.set_pattern_total(&name, n);
        }
    });
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
    tracker: Arc<Mutex<Tracker>>,
    mut checkpoint: Option<Checkpointer>,
) -> Result<Option<Checkpointer>> {
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
            store_refused(&sink, &config, &progress, refused).await?;
        }
        let advanced = {
            let mut t = tracker.lock().unwrap();
            for (seq, outcome) in acks {
                t.ack(seq, outcome);
            }
            t.advance()
        };
        if let (Some(c), Some((cursor, counts))) = (checkpoint.as_mut(), advanced) {
            if !config.dry_run {
                c.advance(cursor, counts, &started, done_at_start).await?;
            }
        }
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
            rule: "sink",
            field: None,
            reason: format!("server error {}: {}", failure.code, failure.message),
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
