//! Pass 1: the source streamed in order, each document transformed exactly as migrate
//! does and routed into a chunk of its target collection; chunks compared a few at
//! once ([`super::chunk`]); the run record's position moved through the shared
//! ordered-acknowledgement window ([`crate::ack`]), so a resume continues after the
//! last document whose comparison (and stored suspects) is complete.

use std::sync::atomic::Ordering;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::chunk::{Chunk, ChunkOutcome, Item};
use super::compare;
use super::place::{Expected, Place};
use super::store::{RunRecord, Store};
use super::{bump, CollectionCounts, Counts, PassEnd, Progress, Verifier, UNPARSEABLE};
use crate::ack::{relieve, AckWindow, Group, GroupLimits, Groups, Relief};
use crate::error::{Error, Result};
use crate::source::{Change, Position, Source};

type Window = AckWindow<Position, CollectionCounts>;

fn into_chunk(g: Group<String, Item>, dead_letter_collection: &str) -> Chunk {
    Chunk {
        dead_letters: g.key == dead_letter_collection,
        collection: g.key,
        items: g.items,
    }
}

impl<S: Source> Verifier<S> {
    /// Pass 1 from the run's position: stream, transform, compare in chunks, record
    /// suspects and seen ids; the run record advances as the acknowledged prefix grows
    /// (saved every `checkpoint_docs` documents and at the end).
    pub async fn compare_source(
        &self,
        store: &Store,
        run: &mut RunRecord,
        progress: &Progress,
    ) -> Result<PassEnd> {
        let cfg = &self.config;
        let record_seen = !cfg.sampled();
        let mut docs = Some(
            self.source
                .stream_all(run.resume_position(), cfg.read_ahead),
        );
        let mut window = Window::default();
        let mut groups: Groups<String, Item> = Groups::new(GroupLimits {
            max_items: cfg.chunk_size,
            // Chunks are bounded by their count; all of them together by bytes.
            max_group_bytes: usize::MAX,
            max_bytes: cfg.buffer_bytes,
        });
        // Documents behind the position: what a resume compares again, and what the
        // window holds in memory (a position and a few counters each).
        let max_lag = (cfg.chunk_size * cfg.in_flight * 4).max(1);
        let mut queue: Vec<Chunk> = Vec::new();
        let mut running = FuturesUnordered::new();
        let mut read_here = 0u64;
        let mut unsaved = 0u64;
        let mut paused = false;
        let mut committed: Counts = run
            .collections
            .iter()
            .map(|c| (c.collection.clone(), c.clone()))
            .collect();
        loop {
            // Keep the window within its bound before reading more.
            while window.lag() > max_lag {
                match relieve(&window, &mut groups, max_lag) {
                    Relief::Send(g) => queue.push(into_chunk(g, &cfg.dead_letter_collection)),
                    Relief::Within | Relief::Wait => break,
                }
            }
            while running.len() < cfg.in_flight && !queue.is_empty() {
                let chunk = queue.remove(0);
                let (this, store) = (self.clone(), store.clone());
                running.push(tokio::spawn(async move {
                    this.compare_chunk(&store, chunk, record_seen).await
                }));
            }
            if docs.is_none() && queue.is_empty() && running.is_empty() {
                break;
            }
            let can_read = docs.is_some()
                && queue.is_empty()
                && running.len() < cfg.in_flight
                && window.lag() <= max_lag;
            tokio::select! {
                biased;
                joined = running.next(), if !running.is_empty() => {
                    let outcome: ChunkOutcome = joined
                        .expect("non-empty")
                        .map_err(|e| Error::Internal(format!("a verify task failed: {e}")))??;
                    for (seq, c) in outcome.outcomes {
                        progress.suspects.fetch_add(
                            c.missing + c.differing + c.dead_letters_missing,
                            Ordering::Relaxed,
                        );
                        window.ack(seq, c);
                    }
                }
                change = recv(&mut docs), if can_read => {
                    match change {
                        Some(change) => {
                            let (change, position) = change?;
                            let doc = match change {
                                Change::Upsert { doc, .. } => doc,
                                Change::Delete { name, .. } => {
                                    return Err(Error::Internal(format!(
                                        "verify was given a delete ({name}); it compares snapshots"
                                    )))
                                }
                                // Nothing to compare a record with that cannot be read:
                                // parity cannot be claimed, so verify stops and says where.
                                Change::Corrupt { at, reason, .. } => {
                                    return Err(Error::Export { location: at, reason })
                                }
                            };
                            for g in self.take(doc, position, &mut window, &mut groups)? {
                                queue.push(into_chunk(g, &cfg.dead_letter_collection));
                            }
                            read_here += 1;
                            progress.docs.fetch_add(1, Ordering::Relaxed);
                            if cfg.max_docs.is_some_and(|m| read_here >= m) {
                                paused = true;
                                docs = None; // dropping the receiver stops the reader
                            }
                        }
                        None => docs = None,
                    }
                    if docs.is_none() {
                        // The end (or the pause): every open chunk goes now.
                        queue.extend(
                            groups
                                .drain()
                                .into_iter()
                                .map(|g| into_chunk(g, &cfg.dead_letter_collection)),
                        );
                    }
                }
            }
            if let Some((position, outcomes)) = window.advance() {
                for c in &outcomes {
                    bump(&mut committed, &c.collection).add(c);
                }
                run.set_position(position);
                run.docs += outcomes.len() as u64;
                unsaved += outcomes.len() as u64;
                if unsaved >= cfg.checkpoint_docs {
                    run.collections = committed.values().cloned().collect();
                    store.save_run(run).await?;
                    unsaved = 0;
                }
            }
        }
        if unsaved > 0 {
            run.collections = committed.values().cloned().collect();
            store.save_run(run).await?;
        }
        Ok(if paused {
            PassEnd::Paused
        } else {
            PassEnd::Complete
        })
    }

    /// Registers one source document in the window and routes it into its chunk, or,
    /// when it is outside the sample, only counts it. Returns the chunks now full.
    fn take(
        &self,
        doc: gcloud_sdk::google::firestore::v1::Document,
        position: Position,
        window: &mut Window,
        groups: &mut Groups<String, Item>,
    ) -> Result<Vec<Group<String, Item>>> {
        let seq = window.register(position);
        let sampled = compare::in_sample(&doc.name, self.config.sample);
        let expected = self
            .transformer
            .apply(&doc)
            .map(|t| Expected::from_transformed(t).map_err(|e| (doc.name.clone(), e)));
        let (collection, item) = match expected {
            Ok(Ok(e)) => {
                let mut outcome = CollectionCounts::named(&e.collection);
                outcome.source = 1;
                let item = Item {
                    source_path: doc.name,
                    id: e.id,
                    doc: Some(e.doc),
                    place: e.place,
                    seq,
                    outcome,
                };
                (e.collection, item)
            }
            Ok(Err((name, e))) => {
                // The transform produced it, so this is a bug, not bad data: stop loudly.
                return Err(Error::Internal(format!(
                    "malformed transformed document for {name}: {e}"
                )));
            }
            Err(r) => {
                let counts_as = r
                    .pattern
                    .as_ref()
                    .map(|p| p.default_target())
                    .unwrap_or_else(|| UNPARSEABLE.to_string());
                let mut outcome = CollectionCounts::named(&counts_as);
                outcome.source = 1;
                outcome.dead_lettered = 1;
                let item = Item {
                    id: mongodb::bson::Bson::String(r.source_path.clone()),
                    source_path: r.source_path,
                    doc: None,
                    place: Place::Doc { strip: Vec::new() },
                    seq,
                    outcome,
                };
                (self.config.dead_letter_collection.clone(), item)
            }
        };
        let mut item = item;
        if !sampled {
            item.outcome.sampled_out = 1;
            window.ack(seq, item.outcome);
            return Ok(Vec::new());
        }
        item.outcome.compared = 1;
        let bytes = item.doc.as_ref().map_or(0, |d| d.as_bytes().len()) + item.source_path.len();
        Ok(groups.push(collection, item, seq, bytes))
    }
}

async fn recv<T>(docs: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match docs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
