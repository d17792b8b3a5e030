//! The batcher of one range: takes the source's changes in order, transforms each one
//! (or makes it a dead letter), registers it in the range's window and groups it into
//! its collection's batch; keeps at most one batch of documents past the position, and
//! on a resume skips the islands the crashed run left.

use tokio::sync::mpsc;

use super::islands::{HeldDoc, IslandMatcher, Matched};
use super::{Outcome, Outgoing, PipelineConfig, Shared};
use crate::ack::{relieve, Group, GroupLimits, Groups, Relief};
use crate::error::{Error, Result};
use crate::mapping::item::WriteItem;
use crate::mapping::outcome::Rejection;
use crate::mapping::transform::Transformer;
use crate::migrate::progress::Progress;
use crate::sink::{Batch, SinkConfig};
use crate::source::{Change, Position};

/// Open batches, bounded in bytes, and the way to the writer.
struct Batches<'a> {
    out: mpsc::Sender<Outgoing>,
    groups: Groups<String, (WriteItem, String)>,
    config: &'a PipelineConfig,
    progress: &'a Progress,
    shared: &'a Shared,
    /// At most this many documents past the range's position (`lag_batches` batches,
    /// one for a source in collection order): past it, the
    /// open batch holding the oldest unacknowledged document is sent early (so the
    /// position does not wait on a collection that fills slowly) and the batcher waits
    /// for the writer's acknowledgements. It is what a crash can make a resume read and
    /// write again.
    max_lag: usize,
}

impl Batches<'_> {
    async fn send(&self, g: Group<String, (WriteItem, String)>) -> Result<()> {
        self.progress
            .note(&self.config.label, "handing a batch to the writer");
        *self.shared.in_flight.lock().unwrap() += g.seqs.len();
        let mut batch = Batch::new(g.key);
        let mut patterns = Vec::with_capacity(g.items.len());
        for (item, pattern) in g.items {
            batch.push(item);
            patterns.push(pattern);
        }
        let outgoing = Outgoing {
            batch,
            patterns,
            seqs: g.seqs,
        };
        self.out
            .send(outgoing)
            .await
            .map_err(|_| Error::Internal("the writer of a range stopped early".into()))
    }

    /// Holds the batcher until at most `max_lag` documents are past the position (see
    /// [`crate::ack::relieve`]). Returns when nothing in flight can help either: the
    /// rest is held by the island matcher, which more reading releases.
    async fn keep_lag_bounded(&mut self) -> Result<()> {
        loop {
            let relief = relieve(
                &self.shared.window.lock().unwrap(),
                &mut self.groups,
                self.max_lag,
            );
            match relief {
                Relief::Within => return Ok(()),
                Relief::Send(g) => self.send(g).await?,
                Relief::Wait => {
                    if *self.shared.in_flight.lock().unwrap() == 0 {
                        return Ok(());
                    }
                    self.progress.note(
                        &self.config.label,
                        "waiting for the sink to acknowledge a batch",
                    );
                    tokio::select! {
                        () = self.shared.acked.notified() => {}
                        // The writer stopped (its error is reported by the caller).
                        () = self.out.closed() => {
                            return Err(Error::Internal("the writer of a range stopped early".into()));
                        }
                    }
                }
            }
        }
    }

    /// Adds one document (already registered under its `seq`) to its collection's batch.
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
        if let Some(reads) = &self.config.reads {
            // Holding the next document back holds the source back too: its bounded
            // channel fills and its stream stops pulling from Firestore.
            self.progress
                .note(&self.config.label, "held by --max-reads-per-second");
            reads.take(1).await;
        }
        let bytes = item.command_bytes();
        for g in self.groups.push(collection, (item, pattern), seq, bytes) {
            self.send(g).await?;
        }
        self.keep_lag_bounded().await?;
        self.progress.note(&self.config.label, "reading the source");
        Ok(())
    }

    /// Sends every open batch, oldest first, so the position advances as the tail drains.
    async fn finish(mut self) -> Result<()> {
        for g in self.groups.drain() {
            self.send(g).await?;
        }
        Ok(())
    }
}

/// Transforms changes and groups them into per-collection batches; on a resume, skips
/// the islands the crashed run left. Ends with [`Error::Interrupted`] once
/// `config.stop` is cancelled, after sending what it holds.
pub(super) async fn batch_documents(
    mut changes: mpsc::Receiver<Result<(Change, Position)>>,
    out: mpsc::Sender<Outgoing>,
    limits: SinkConfig,
    transformer: &Transformer,
    config: &PipelineConfig,
    progress: &Progress,
    shared: &Shared,
) -> Result<()> {
    let guard = limits.guard_field.clone();
    let mut batches = Batches {
        out,
        groups: Groups::new(GroupLimits {
            max_items: limits.max_batch_docs,
            max_group_bytes: limits.max_batch_bytes,
            max_bytes: config.buffer_bytes,
        }),
        max_lag: limits.max_batch_docs * config.lag_batches.max(1),
        config,
        progress,
        shared,
    };
    let mut matcher = IslandMatcher::new(&shared.book.lock().unwrap().islands());
    progress.note(&config.label, "reading the source");
    loop {
        let change = tokio::select! {
            // Checked first: once a stop is asked for, no further document is read.
            biased;
            () = config.stop.cancelled() => {
                // What the open batches hold lands and is checkpointed; documents the
                // island matcher holds stay unread for the resume (the position is
                // before them).
                batches.finish().await?;
                return Err(Error::Interrupted);
            }
            change = changes.recv() => change,
        };
        let Some(change) = change else { break };
        let (change, position) = match change {
            Ok(c) => c,
            Err(e) => {
                // The source failed for good: what was read before the fault lands and
                // is checkpointed, so the rerun starts right at it (a damaged export
                // record, a Firestore outage past the deadline).
                batches.finish().await?;
                return Err(e);
            }
        };
        let (name, collection, pattern, item) = match change {
            Change::Upsert { doc, update_time } => {
                let applied = transformer.apply(&doc).and_then(|t| {
                    crate::sink::guard::stamp_transformed_at(
                        t,
                        update_time.as_ref(),
                        guard.as_deref(),
                    )
                });
                match applied {
                    Ok(t) => {
                        let pattern = t.pattern.to_string();
                        progress.see(&pattern, &t.collection);
                        (doc.name, t.collection, pattern, t.item)
                    }
                    Err(rejection) => {
                        let pattern = pattern_name(&rejection);
                        progress.see(&pattern, "");
                        tracing::warn!(path = %rejection.source_path, rule = rejection.rule, "dead letter: {}", rejection.reason);
                        let item = rejection.dead_letter(Some(&doc), &config.run_id);
                        let dead = config.dead_letter_collection.clone();
                        (doc.name, dead, pattern, item)
                    }
                }
            }
            // A record the source could not read, which the operator chose to skip
            // (`--skip-corrupt`): a dead letter saying where it is and why.
            Change::Corrupt { at, reason, bytes } => {
                progress.see(CORRUPT_PATTERN, "");
                tracing::warn!(record = %at, "dead letter: unreadable record: {reason}");
                let item =
                    crate::sink::dead_letter::corrupt_record(&at, &reason, &bytes, &config.run_id);
                let dead = config.dead_letter_collection.clone();
                (at, dead, CORRUPT_PATTERN.to_string(), item)
            }
            // Only a follower yields deletes; the copy reads a snapshot, whose sources
            // (a query, an export) report none.
            Change::Delete { name, .. } => {
                return Err(Error::Internal(format!(
                    "the copy pipeline was given a delete ({name}); only a follower applies deletes"
                )))
            }
        };
        let seq = shared.window.lock().unwrap().register(position);
        let held = HeldDoc {
            name,
            collection,
            pattern,
            item,
            seq,
        };
        if matcher.is_idle() {
            batches.push(held).await?;
            continue;
        }
        match matcher.offer(held) {
            Matched::Write(docs) => {
                for d in docs {
                    batches.push(d).await?;
                }
            }
            Matched::Held => {}
            Matched::Skip(island, seqs) => {
                tracing::debug!(collection = %island.collection, first = %island.first, docs = island.docs, "skipping an island the previous run wrote");
                let mut w = shared.window.lock().unwrap();
                for seq in &seqs {
                    w.ack(*seq, Outcome::Counted);
                }
                shared.book.lock().unwrap().confirm(&island, seqs);
            }
        }
    }
    for d in matcher.release_all() {
        batches.push(d).await?;
    }
    batches.finish().await
}

/// The progress line of records a source could not read (`--skip-corrupt`).
const CORRUPT_PATTERN: &str = "(unreadable records)";

fn pattern_name(r: &Rejection) -> String {
    r.pattern
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "(unparseable names)".into())
}
