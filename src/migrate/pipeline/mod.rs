//! The migration pipeline of one range: source → transform → batcher → sink, every
//! stage bounded.
//!
//! ```text
//! Source ──(channel: read_ahead changes)──► batcher ──(channel: in_flight batches)──► writer
//!                                            transform, per-collection                 ≤ in_flight
//!                                            groups ≤ buffer_bytes                     batches at once
//! ```
//!
//! * [`batcher`] transforms each change and groups documents into per-collection batches
//!   ([`crate::ack::Groups`]); on a resume it skips the islands a crashed run left.
//! * [`writer`] writes batches, stores dead letters, acknowledges documents in the
//!   shared [`crate::ack::AckWindow`] and saves the checkpoint whenever the position moves.
//! * [`islands`] batches acknowledged past the position, saved so a resume skips them.
//!
//! Memory is bounded by `read_ahead` changes, `buffer_bytes` of open batches and
//! `2 × in_flight` batches in the channel and at the server, whatever the data size.
//! Crash cost is bounded too: at most one batch (`--batch-size` documents) per range is
//! ever past the range's saved position, so a resume after `kill -9` reads and writes
//! again at most that much, however many batches `in_flight` lets overlap.
//! When the sink is slow, the writer stops taking batches, the batcher blocks on its
//! send, stops reading the source channel, and the source stops reading: backpressure
//! reaches Firestore instead of growing a queue.

mod batcher;
mod islands;
pub mod pushback;
#[cfg(test)]
mod tests;
mod writer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::ack::AckWindow;
use crate::error::{Error, Result};
use crate::mapping::transform::Transformer;
use crate::migrate::checkpoint::{
    CheckpointStore, Counts, Island, RangeCheckpoint, SaveCheckpoint,
};
use crate::migrate::progress::{CollectionStats, Progress};
use crate::sink::dead_letter::DEAD_LETTER_COLLECTION;
use crate::sink::{Batch, Sink};
use crate::source::{Position, Range, Source};
use islands::IslandBook;

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
    /// The range this pipeline copies, for progress reports (`range 3`).
    pub label: String,
    /// Cancelled when the operator asks the run to stop: the batcher stops reading, what
    /// it holds is written and checkpointed, and the run ends with
    /// [`Error::Interrupted`].
    pub stop: tokio_util::sync::CancellationToken,
    /// `--max-reads-per-second`: taken for each document read from the source, shared
    /// by every range of the process.
    pub reads: Option<Arc<crate::throttle::Throttle>>,
    /// Full batches' worth of documents the range's position may lag behind the read
    /// ([`crate::source::Source::lag_batches`]).
    pub lag_batches: usize,
    /// The write pace: `--max-writes-per-second` (or none), lowered by itself when
    /// MongoDB pushes back ([`pushback`]); taken for each document of a batch before it
    /// is written (dead letters included: they are writes too).
    pub writes: Option<Arc<pushback::Pushback>>,
    /// A following job's ledger ([`crate::ledger`]): each written batch's documents are
    /// recorded there (place and update time) before they are acknowledged, so the
    /// follower can tell a deleted document by its absence from a resend.
    pub ledger: Option<crate::ledger::Ledger>,
}

impl PipelineConfig {
    /// Counts `n` more dead letters; fails once the run's total passes the limit. Called
    /// before the documents are acknowledged, so the position stays before them and a
    /// rerun sees them again.
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
            label: String::new(),
            stop: tokio_util::sync::CancellationToken::new(),
            reads: None,
            writes: None,
            lag_batches: 1,
            ledger: None,
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

/// What finally happened to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    DeadLettered,
    /// Already in the checkpoint's counts: an island (of this run or of the crashed run
    /// this one resumes).
    Counted,
}

/// What a run of outcomes adds to the counts.
fn tally(outcomes: &[Outcome]) -> Counts {
    let mut counts = Counts::default();
    for o in outcomes {
        match o {
            Outcome::Written => counts.written += 1,
            Outcome::DeadLettered => counts.dead_lettered += 1,
            Outcome::Counted => {}
        }
    }
    counts
}

/// The range's documents from read to acknowledgement.
type Window = AckWindow<Position, Outcome>;

/// A batch bound for the writer, with each item's pattern (for accounting) and
/// sequence number in read order (for the position).
struct Outgoing {
    batch: Batch,
    patterns: Vec<String>,
    seqs: Vec<u64>,
}

/// What the batcher and the writer of one range share.
struct Shared {
    window: Mutex<Window>,
    /// Documents handed to the writer and not yet acknowledged by it.
    in_flight: Mutex<usize>,
    book: Mutex<IslandBook>,
    /// Signalled by the writer after each acknowledged batch (and its checkpoint save).
    acked: tokio::sync::Notify,
}

/// Saves a range's checkpoint whenever its position moves.
pub struct Checkpointer<C: SaveCheckpoint = CheckpointStore> {
    pub store: C,
    pub record: RangeCheckpoint,
}

impl<C: SaveCheckpoint> Checkpointer<C> {
    /// Saves the range's progress: the new position (if it moved), the documents it
    /// adds, and the islands past it.
    async fn save(
        &mut self,
        position: Option<Position>,
        counts: Counts,
        islands: Vec<Island>,
        started: &std::time::Instant,
        done_at_start: u64,
    ) -> Result<()> {
        if let Some(p) = position {
            self.record.set_position(p);
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

/// Copies `range` from just after `start` to its end.
#[allow(clippy::too_many_arguments)]
pub async fn run<S: Source, K: Sink, C: SaveCheckpoint>(
    source: &S,
    sink: &K,
    transformer: &Transformer,
    range: &Range,
    start: Option<Position>,
    config: &PipelineConfig,
    progress: &Progress,
    checkpoint: Option<Checkpointer<C>>,
) -> Result<(Summary, Option<Checkpointer<C>>)> {
    let shared = Arc::new(Shared {
        window: Mutex::new(Window::default()),
        in_flight: Mutex::new(0),
        book: Mutex::new(IslandBook {
            kept: checkpoint
                .as_ref()
                .map(|c| c.record.islands.iter().map(|i| (i.clone(), None)).collect())
                .unwrap_or_default(),
        }),
        acked: tokio::sync::Notify::new(),
    });
    let (btx, brx) = mpsc::channel::<Outgoing>(config.in_flight.max(1));
    let writer = tokio::spawn(writer::write_batches(
        sink.clone(),
        brx,
        config.clone(),
        progress.clone(),
        shared.clone(),
        checkpoint,
    ));
    let changes = source.stream(range, start, config.read_ahead);
    let batched = batcher::batch_documents(
        changes,
        btx,
        sink.config().clone(),
        transformer,
        config,
        progress,
        &shared,
    )
    .await;
    // The batcher dropped its sender: the writer drains what is queued and ends. On a
    // batcher error the writer still finishes what was sent, so the checkpoint keeps
    // every acknowledged document.
    let written = writer
        .await
        .map_err(|e| Error::Internal(format!("the writer task of a range failed: {e}")))?;
    progress.done_with(&config.label);
    // When the writer failed, the batcher only saw it stop: the writer's error is the cause.
    let checkpoint = match (batched, written) {
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
        (Ok(()), Ok(checkpoint)) => checkpoint,
    };
    Ok((Summary::from_progress(progress), checkpoint))
}
