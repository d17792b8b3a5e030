//! The writer of one range: writes batches (at most `in_flight` at once), stores dead
//! letters for documents the server refuses, acknowledges each batch's documents in the
//! range's window, and saves the checkpoint whenever the position moves — with the
//! batches acknowledged past it as islands.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::{tally, Checkpointer, Outcome, Outgoing, PipelineConfig, Shared};
use crate::error::{Error, Result};
use crate::mapping::item::WriteItem;
use crate::migrate::checkpoint::SaveCheckpoint;
use crate::migrate::checkpoint::{Counts, Island};
use crate::migrate::progress::Progress;
use crate::sink::{Batch, DocFailure, Sink};

/// Writes batches with at most `in_flight` at once; records dead letters for documents
/// the server refused.
pub(super) async fn write_batches<K: Sink, C: SaveCheckpoint>(
    sink: K,
    batches: mpsc::Receiver<Outgoing>,
    config: PipelineConfig,
    progress: Progress,
    shared: Arc<Shared>,
    mut checkpoint: Option<Checkpointer<C>>,
) -> Result<Option<Checkpointer<C>>> {
    let started = std::time::Instant::now();
    let done_at_start = checkpoint.as_ref().map_or(0, |c| c.record.counts.done());
    let stream =
        futures::stream::unfold(
            batches,
            |mut rx| async move { rx.recv().await.map(|o| (o, rx)) },
        );
    // Each batch is written by a task of its own. The driver makes progress on an
    // operation only while its future is polled: written inline, the batches in flight
    // would stand still while this loop awaits a checkpoint save, each holding a pooled
    // connection with its answer unread, and with as many batches in flight as the pool
    // has connections the save could never get one — the "saving a checkpoint" stall.
    let results = stream
        .map(|o| {
            let sink = sink.clone();
            let dry_run = config.dry_run;
            let writes = config.writes.clone();
            let ledger = config.ledger.clone();
            let task = tokio::spawn(async move {
                if let Some(writes) = writes {
                    writes.throttle().take(o.batch.items.len() as u64).await;
                }
                let started = std::time::Instant::now();
                let result = if dry_run {
                    Ok(crate::sink::BatchResult {
                        written: o.batch.items.len(),
                        failures: Vec::new(),
                        ..Default::default()
                    })
                } else {
                    match sink.write(&o.batch).await {
                        Ok(r) => record_in_ledger(&sink, ledger.as_ref(), &o.batch)
                            .await
                            .map(|()| r),
                        Err(e) => Err(e),
                    }
                };
                (o, result, started.elapsed())
            });
            async move {
                task.await
                    .map_err(|e| Error::Internal(format!("a batch write task failed: {e}")))
            }
        })
        .buffer_unordered(config.in_flight.max(1));
    let mut results = std::pin::pin!(results);
    while let Some(written) = results.next().await {
        let (o, result, took) = written?;
        let result = result?;
        if let (Some(pace), false) = (&config.writes, config.dry_run) {
            let changed = pace.observe(
                std::time::Instant::now(),
                o.batch.items.len(),
                took,
                result.pushed_back.as_deref(),
            );
            if let Some(said) = changed {
                tracing::warn!("{said}");
            }
        }
        let acks = outcomes(&sink, &config, &progress, &o, &result).await?;
        let (position, mut counts, new_island) = {
            let mut w = shared.window.lock().unwrap();
            *shared.in_flight.lock().unwrap() -= o.seqs.len();
            for (seq, outcome) in &acks {
                w.ack(*seq, *outcome);
            }
            let (position, counts) = match w.advance() {
                Some((position, outcomes)) => (Some(position), tally(&outcomes)),
                None => (None, Counts::default()),
            };
            // What of this batch the position does not cover yet is an island: saved
            // now, so a crash does not make the resume write it again.
            let past: Vec<&(u64, Outcome)> =
                acks.iter().filter(|(seq, _)| *seq >= w.base()).collect();
            let island = match (past.first(), past.last()) {
                (Some((first, _)), Some((last, _))) => {
                    let outcomes: Vec<Outcome> = past.iter().map(|(_, o)| *o).collect();
                    let name = |seq: &u64| {
                        w.position(*seq)
                            .map(|p| p.name().to_string())
                            .unwrap_or_default()
                    };
                    let island = Island {
                        collection: o.batch.collection.clone(),
                        first: name(first),
                        last: name(last),
                        docs: past.len() as u64,
                    };
                    let seqs: Vec<u64> = past.iter().map(|(seq, _)| *seq).collect();
                    for seq in &seqs {
                        w.ack(*seq, Outcome::Counted);
                    }
                    Some((island, seqs, tally(&outcomes)))
                }
                _ => None,
            };
            shared.book.lock().unwrap().prune(&w);
            (position, counts, island)
        };
        let moved = position.is_some() || new_island.is_some();
        if let Some((island, seqs, island_counts)) = new_island {
            counts.written += island_counts.written;
            counts.dead_lettered += island_counts.dead_lettered;
            shared.book.lock().unwrap().add(island, seqs);
        }
        if let (Some(c), true) = (checkpoint.as_mut(), moved) {
            if !config.dry_run {
                progress.note(&config.label, "saving a checkpoint");
                let islands = shared.book.lock().unwrap().islands();
                c.save(position, counts, islands, &started, done_at_start)
                    .await?;
            }
        }
        // After the save: the batcher's bound on documents past the position holds for
        // the stored position, not only the one in memory.
        shared.acked.notify_one();
    }
    Ok(checkpoint)
}

/// Records a written batch's documents in the job's ledger (a following job only),
/// before they are acknowledged: a document the position passes is always recorded.
async fn record_in_ledger<K: Sink>(
    sink: &K,
    ledger: Option<&crate::ledger::Ledger>,
    batch: &Batch,
) -> Result<()> {
    let (Some(ledger), Some(field)) = (ledger, sink.config().guard_field.as_deref()) else {
        return Ok(());
    };
    let Some(records) = ledger.records_of(batch, field, &|_| None) else {
        return Ok(());
    };
    let result = sink.write(&records).await?;
    match result.failures.first() {
        None => Ok(()),
        Some(f) => Err(Error::Internal(format!(
            "the ledger refused the record of {}: {}",
            f.source_path, f.message
        ))),
    }
}

/// What became of each document of a written batch: written, or dead-lettered (by the
/// transform, or now, because the server refused it: stored before it is
/// acknowledged, so the position never passes a document that left no trace).
async fn outcomes<K: Sink>(
    sink: &K,
    config: &PipelineConfig,
    progress: &Progress,
    o: &Outgoing,
    result: &crate::sink::BatchResult,
) -> Result<Vec<(u64, Outcome)>> {
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
                // A dead letter that cannot be stored is a fatal condition: the document
                // would otherwise vanish without a trace.
                return Err(Error::DeadLetterStore {
                    source_path: f.source_path.clone(),
                    message: f.message.clone(),
                });
            }
            Some(f) => {
                refused.push((item, pattern.clone(), *f));
                acks.push((*seq, Outcome::DeadLettered));
            }
        }
    }
    if !refused.is_empty() {
        config.count_dead_letters(refused.len() as u64)?;
        store_refused(sink, config, progress, refused).await?;
    }
    Ok(acks)
}

/// Documents the server refused become dead letters (reason: the server's message).
async fn store_refused<K: Sink>(
    sink: &K,
    config: &PipelineConfig,
    progress: &Progress,
    refused: Vec<(&WriteItem, String, &DocFailure)>,
) -> Result<()> {
    let mut batch = Batch::new(config.dead_letter_collection.clone());
    let mut patterns = Vec::new();
    for (item, pattern, failure) in refused {
        tracing::warn!(path = %item.source_path, code = failure.code, "server refused document: {}", failure.message);
        let rejection = failure.rejection(&item.source_path);
        batch.push(rejection.dead_letter(None, &config.run_id));
        patterns.push(pattern);
    }
    let result = sink.write(&batch).await?;
    if let Some(f) = result.failures.first() {
        return Err(Error::DeadLetterStore {
            source_path: f.source_path.clone(),
            message: f.message.clone(),
        });
    }
    for p in patterns {
        progress.dead_lettered(&p, 1);
    }
    Ok(())
}
