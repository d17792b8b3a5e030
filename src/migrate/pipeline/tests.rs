//! The pipeline against an in-memory source, sink and checkpoint store (no services):
//! backpressure from a stalled sink reaches the source with bounded memory, and a
//! checkpoint never moves past a document the sink has not acknowledged, whichever
//! batch fails or stalls.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, Value};
use tokio::sync::{mpsc, watch};

use super::{run, Checkpointer, PipelineConfig};
use crate::error::{Error, Result};
use crate::mapping::transform::Transformer;
use crate::migrate::checkpoint::{RangeCheckpoint, SaveCheckpoint};
use crate::migrate::progress::Progress;
use crate::sink::{Batch, BatchResult, Sink, SinkConfig};
use crate::source::{Change, Position, Range, Source};

const ROOT: &str = "projects/p/databases/(default)/documents";

/// `n` documents of three subcollections that interleave in `__name__` order (as
/// subcollections under the same parents do), so batches of several collections are
/// in flight at once.
fn documents(n: usize) -> Vec<Document> {
    let mut docs: Vec<Document> = (0..n)
        .map(|i| {
            let mut fields = HashMap::new();
            fields.insert(
                "n".to_string(),
                Value {
                    value_type: Some(ValueType::IntegerValue(i as i64)),
                },
            );
            Document {
                name: format!("{ROOT}/p/{i:06}/c{}/d", i % 3),
                fields,
                ..Default::default()
            }
        })
        .collect();
    docs.sort_by(|a, b| a.name.cmp(&b.name));
    docs
}

/// A source over a fixed, ordered list of documents; counts what it has handed over.
#[derive(Clone)]
struct MemSource {
    docs: Arc<Vec<Document>>,
    /// Documents put into the stream's channel so far.
    produced: Arc<AtomicUsize>,
}

impl MemSource {
    fn new(n: usize) -> Self {
        Self {
            docs: Arc::new(documents(n)),
            produced: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Source for MemSource {
    fn root(&self) -> &str {
        ROOT
    }

    fn endpoint(&self) -> &str {
        "memory"
    }

    async fn split(&self, _n: usize) -> Result<Vec<Range>> {
        Ok(vec![Range::all()])
    }

    async fn estimate(&self) -> Result<Option<u64>> {
        Ok(Some(self.docs.len() as u64))
    }

    fn stream(
        &self,
        _range: &Range,
        after: Option<Position>,
        capacity: usize,
    ) -> mpsc::Receiver<Result<(Change, Position)>> {
        let (tx, rx) = mpsc::channel(capacity);
        let (docs, produced) = (self.docs.clone(), self.produced.clone());
        tokio::spawn(async move {
            for d in docs.iter() {
                if after.as_ref().is_some_and(|a| d.name.as_str() <= a.name()) {
                    continue;
                }
                let position = Position::after(d.name.clone());
                if tx
                    .send(Ok((Change::upsert(d.clone()), position)))
                    .await
                    .is_err()
                {
                    return;
                }
                produced.fetch_add(1, Ordering::SeqCst);
            }
        });
        rx
    }

    async fn root_collections(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .docs
            .iter()
            .filter_map(|d| d.name.strip_prefix(&format!("{ROOT}/")))
            .filter_map(|rel| rel.split('/').next().map(str::to_string))
            .collect();
        ids.dedup();
        Ok(ids)
    }

    async fn read_back(&self, _names: &[String]) -> Result<HashMap<String, Option<Document>>> {
        Ok(HashMap::new())
    }
}

/// What the sink does with the `n`th batch it is given (1-based).
#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// Batch `n` fails for good (a non-retryable server error).
    FailAt(usize),
    /// Batch `n` and every later one wait until the gate opens.
    StallFrom(usize),
    /// Batch `n` alone never returns; the others land.
    StallOnly(usize),
}

/// A sink that keeps what it acknowledged.
#[derive(Clone)]
struct MemSink {
    config: SinkConfig,
    fault: Fault,
    batches: Arc<AtomicUsize>,
    /// Source paths of the documents acknowledged (written) so far.
    acked: Arc<Mutex<BTreeSet<String>>>,
    gate: watch::Receiver<bool>,
}

impl MemSink {
    fn new(batch: usize, fault: Fault) -> (Self, watch::Sender<bool>) {
        let (open, gate) = watch::channel(false);
        let sink = Self {
            config: SinkConfig {
                max_batch_docs: batch,
                ..SinkConfig::default()
            },
            fault,
            batches: Arc::new(AtomicUsize::new(0)),
            acked: Arc::default(),
            gate,
        };
        (sink, open)
    }

    fn acked(&self) -> BTreeSet<String> {
        self.acked.lock().unwrap().clone()
    }
}

impl Sink for MemSink {
    fn config(&self) -> &SinkConfig {
        &self.config
    }

    async fn write(&self, batch: &Batch) -> Result<BatchResult> {
        let n = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fault {
            Fault::FailAt(k) if k == n => {
                return Err(Error::Mongo {
                    operation: "update",
                    target: batch.collection.clone(),
                    uri: "memory".into(),
                    message: format!("batch {n} refused"),
                    retryable: false,
                })
            }
            Fault::StallFrom(k) if n >= k => {
                let mut gate = self.gate.clone();
                let _ = gate.wait_for(|open| *open).await;
            }
            Fault::StallOnly(k) if n == k => std::future::pending::<()>().await,
            _ => {}
        }
        let mut acked = self.acked.lock().unwrap();
        for item in &batch.items {
            acked.insert(item.source_path.clone());
        }
        Ok(BatchResult {
            written: batch.items.len(),
            failures: Vec::new(),
            ..Default::default()
        })
    }
}

/// A saved checkpoint and the documents the sink had acknowledged when it was saved.
type Saved = (RangeCheckpoint, BTreeSet<String>);

/// Every checkpoint saved, in order.
#[derive(Clone)]
struct MemCheckpoints {
    sink: MemSink,
    saved: Arc<Mutex<Vec<Saved>>>,
}

impl SaveCheckpoint for MemCheckpoints {
    async fn save(&self, record: &RangeCheckpoint) -> Result<()> {
        let acked = self.sink.acked();
        self.saved.lock().unwrap().push((record.clone(), acked));
        Ok(())
    }
}

fn config(in_flight: usize, read_ahead: usize) -> PipelineConfig {
    PipelineConfig {
        in_flight,
        read_ahead,
        ..PipelineConfig::default()
    }
}

/// Asserts each saved checkpoint covers only acknowledged documents: every document up
/// to its position, and every document of its islands, was acknowledged by the sink
/// before the save; its counts are no more than what the sink acknowledged.
fn assert_checkpoints_cover_only_acknowledged(source: &MemSource, saved: &[Saved], context: &str) {
    for (record, acked) in saved {
        if let Some(position) = record.resume_position() {
            for d in source
                .docs
                .iter()
                .filter(|d| d.name.as_str() <= position.name())
            {
                assert!(
                    acked.contains(&d.name),
                    "{context}: the checkpoint at {} covers {}, which the sink had not acknowledged",
                    position.name(),
                    d.name
                );
            }
        }
        for island in &record.islands {
            for name in [&island.first, &island.last] {
                assert!(
                    acked.contains(name),
                    "{context}: island document {name} not acknowledged"
                );
            }
        }
        assert!(
            record.counts.written as usize <= acked.len(),
            "{context}: {} counted written, {} acknowledged",
            record.counts.written,
            acked.len()
        );
    }
}

#[tokio::test]
async fn a_stalled_sink_stops_the_source_with_bounded_memory_and_a_released_one_finishes() {
    let total = 20_000;
    let (read_ahead, batch, in_flight) = (64, 25, 2);
    let source = MemSource::new(total);
    let (sink, open) = MemSink::new(batch, Fault::StallFrom(1));
    let checkpoints = MemCheckpoints {
        sink: sink.clone(),
        saved: Arc::default(),
    };
    let record = RangeCheckpoint::new("job", 0, "hash");
    let task = {
        let (source, sink, checkpoints) = (source.clone(), sink.clone(), checkpoints.clone());
        tokio::spawn(async move {
            run(
                &source,
                &sink,
                &Transformer::default(),
                &Range::all(),
                None,
                &config(in_flight, read_ahead),
                &Progress::new(),
                Some(Checkpointer {
                    store: checkpoints,
                    record,
                }),
            )
            .await
        })
    };
    // Wait until the source stops handing documents over.
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = source.produced.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        last = now;
    }
    // What is held anywhere: the read-ahead channel, the one batch past the position
    // the batcher allows, and the batches queued for and at the stalled sink.
    let bound = read_ahead + batch * (2 * in_flight + 2);
    assert!(
        last <= bound,
        "the source handed over {last} documents to a stalled sink (bound {bound})"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        source.produced.load(Ordering::SeqCst),
        last,
        "the source kept reading while the sink was stalled"
    );
    assert!(sink.acked().is_empty());
    assert!(checkpoints.saved.lock().unwrap().is_empty());
    // Released: everything lands, and the last checkpoint is at the last document.
    open.send(true).unwrap();
    let (summary, checkpoint) = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the pipeline finishes once the sink is released")
        .unwrap()
        .unwrap();
    assert_eq!(
        (summary.read, summary.written),
        (total as u64, total as u64)
    );
    assert_eq!(sink.acked().len(), total);
    let record = checkpoint.unwrap().record;
    assert_eq!(
        record.resume_position().unwrap().name(),
        source.docs.last().unwrap().name
    );
    assert_eq!(record.counts.written, total as u64);
    assert_checkpoints_cover_only_acknowledged(
        &source,
        &checkpoints.saved.lock().unwrap(),
        "stall",
    );
}

#[tokio::test]
async fn a_checkpoint_never_passes_a_document_the_sink_did_not_acknowledge() {
    let total = 240;
    let batch = 10;
    // Every batch of the run, failed in turn, then stalled alone in turn (the batches
    // after it land, so a position that skipped over it would show).
    let batches = {
        let source = MemSource::new(total);
        let (sink, _open) = MemSink::new(batch, Fault::None);
        let checkpoints = MemCheckpoints {
            sink: sink.clone(),
            saved: Arc::default(),
        };
        let (summary, _) = run(
            &source,
            &sink,
            &Transformer::default(),
            &Range::all(),
            None,
            &config(3, 32),
            &Progress::new(),
            Some(Checkpointer {
                store: checkpoints.clone(),
                record: RangeCheckpoint::new("job", 0, "hash"),
            }),
        )
        .await
        .unwrap();
        assert_eq!(summary.written, total as u64);
        assert_checkpoints_cover_only_acknowledged(
            &source,
            &checkpoints.saved.lock().unwrap(),
            "clean",
        );
        sink.batches.load(Ordering::SeqCst)
    };
    assert!(batches >= total / batch, "{batches} batches");
    for n in 1..=batches {
        for fault in [Fault::FailAt(n), Fault::StallOnly(n)] {
            let context = format!("{fault:?}");
            let source = MemSource::new(total);
            let (sink, _open) = MemSink::new(batch, fault);
            let checkpoints = MemCheckpoints {
                sink: sink.clone(),
                saved: Arc::default(),
            };
            let (transformer, range, cfg, progress) = (
                Transformer::default(),
                Range::all(),
                config(3, 32),
                Progress::new(),
            );
            let pipeline = run(
                &source,
                &sink,
                &transformer,
                &range,
                None,
                &cfg,
                &progress,
                Some(Checkpointer {
                    store: checkpoints.clone(),
                    record: RangeCheckpoint::new("job", 0, "hash"),
                }),
            );
            match fault {
                Fault::FailAt(_) => {
                    let err = pipeline
                        .await
                        .err()
                        .unwrap_or_else(|| panic!("{context}: no error"));
                    assert!(
                        err.to_string().contains(&format!("batch {n} refused")),
                        "{context}: {err}"
                    );
                }
                // A stalled sink never finishes: the run is given up (as a kill would).
                _ => {
                    assert!(
                        tokio::time::timeout(Duration::from_millis(150), pipeline)
                            .await
                            .is_err(),
                        "{context}: finished although batch {n} never returned"
                    );
                }
            }
            let saved = checkpoints.saved.lock().unwrap();
            assert_checkpoints_cover_only_acknowledged(&source, &saved, &context);
            // Positions only move forward.
            let positions: Vec<String> = saved
                .iter()
                .filter_map(|(r, _)| r.resume_position().map(|p| p.name().to_string()))
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] <= w[1]),
                "{context}: {positions:?}"
            );
        }
    }
}
