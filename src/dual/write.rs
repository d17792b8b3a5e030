//! The write path of the modes whose primary is Firestore (`firestore_only` and the
//! two dual modes), after the store has resolved and routed a batch:
//!
//! 1. one Firestore `Commit` holds the document write(s) **and**, when some collection
//!    has MongoDB as its secondary, an outbox entry naming those paths, so the intent
//!    to update MongoDB is durable exactly when the write is;
//! 2. the secondary write (bounded by `secondary_timeout`, never failing the call):
//!    the states the commit left — known from the call for a create (or a set whose
//!    mapping ignores the create time), else read back — transformed, stamped and
//!    written with guarded upserts and deletes;
//! 3. on success the entry goes to the settler ([`SettleQueue`]); on failure it stays
//!    for the reconciler.
//!
//! A create or set the mapping would refuse is refused before anything is written, so
//! the two databases cannot start to differ on it.

use std::collections::HashMap;
use std::time::Instant;

use gcloud_sdk::google::firestore::v1::Document;
use gcloud_sdk::tonic::{Code, Status};

use super::core::Core;
use super::error::{DualError, DualResult};
use super::op::{firestore_write, Applied, Secondary, Target, WriteOp, WriteResult};
use super::outbox::{self, SettleJob, SettleQueue};
use crate::mapping::item::WriteItem;
use crate::path::DocPath;
use crate::sink::guard;

/// Writes a batch whose collections all have Firestore as their primary (steps 1–3
/// above); the result of each write is the primary's.
pub(crate) async fn write_firestore(
    core: &Core,
    settle: &SettleQueue,
    ops: Vec<WriteOp>,
    targets: Vec<Target>,
) -> DualResult<Vec<WriteResult>> {
    let started = Instant::now();
    let mut writes = Vec::with_capacity(ops.len() + 1);
    for (op, t) in ops.iter().zip(&targets) {
        if t.mode.mongo_secondary() {
            prevalidate(core, op, t)?;
        }
        writes.push(firestore_write(op, t)?);
    }
    let secondary_paths: Vec<String> = targets
        .iter()
        .filter(|t| t.mode.mongo_secondary())
        .map(|t| t.rel.clone())
        .collect();
    let entry = if secondary_paths.is_empty() {
        None
    } else {
        let id = outbox::new_entry_id();
        writes.push(outbox::entry_write(core, &id, &secondary_paths));
        Some(id)
    };
    let resp = core.fs_commit(writes).await.map_err(|s| {
        for t in &targets {
            core.metrics()
                .writes
                .with_label_values(&[&t.pattern, t.mode.as_str(), "primary_error"])
                .inc();
        }
        commit_error(core, s, &ops)
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    for (op, t) in ops.iter().zip(&targets) {
        core.metrics()
            .primary_latency
            .with_label_values(&[&t.pattern, op.name()])
            .observe(elapsed);
    }
    let commit_time = resp
        .commit_time
        .as_ref()
        .map(guard::timestamp_nanos)
        .unwrap_or_else(guard::now_nanos);
    let times: Vec<i64> = (0..ops.len())
        .map(|i| {
            resp.write_results
                .get(i)
                .and_then(|w| w.update_time.as_ref())
                .map(guard::timestamp_nanos)
                .unwrap_or(commit_time)
        })
        .collect();

    let secondary = match &entry {
        None => vec![Secondary::None; ops.len()],
        Some(entry) => {
            write_secondary(core, settle, entry, &ops, &targets, &times, commit_time).await
        }
    };
    Ok(targets
        .into_iter()
        .zip(times)
        .zip(secondary)
        .map(|((t, update_time), secondary)| {
            let outcome = match secondary {
                Secondary::Deferred => "secondary_deferred",
                _ => "ok",
            };
            core.metrics()
                .writes
                .with_label_values(&[&t.pattern, t.mode.as_str(), outcome])
                .inc();
            WriteResult {
                path: t.rel,
                mode: t.mode,
                update_time,
                secondary,
            }
        })
        .collect())
}

/// Whether the collection's mapping ignores the create time (so a `set` needs no
/// read-back to know the document's full state).
fn keeps_no_create_time(core: &Core, t: &Target) -> bool {
    DocPath::parse(&t.rel)
        .map(|p| core.mapping_of(&p).create_time.is_none())
        .unwrap_or(false)
}

/// Refuses, before anything is written, a create or set whose document the mapping
/// would refuse (so the two databases cannot start to differ on it).
fn prevalidate(core: &Core, op: &WriteOp, t: &Target) -> DualResult<()> {
    let fields = match op {
        WriteOp::Create { fields, .. } | WriteOp::Set { fields, .. } => fields,
        _ => return Ok(()),
    };
    let now = guard::nanos_timestamp(guard::now_nanos());
    let doc = Document {
        name: t.name.clone(),
        fields: fields.clone(),
        create_time: Some(now),
        update_time: Some(now),
    };
    core.transform(&doc).map(|_| ())
}

/// Step 2 of the write path, bounded by the secondary timeout. Never fails the call.
async fn write_secondary(
    core: &Core,
    settle: &SettleQueue,
    entry: &str,
    ops: &[WriteOp],
    targets: &[Target],
    times: &[i64],
    commit_time: i64,
) -> Vec<Secondary> {
    let started = Instant::now();
    let work = async {
        // The state a create or set leaves is known without reading it back: the
        // fields sent, at the write's update time. A set keeps the old create time,
        // which only matters when the mapping stores it.
        let known: Vec<Option<Document>> = ops
            .iter()
            .zip(targets)
            .zip(times)
            .map(|((op, t), time)| {
                let (fields, create_time) = match op {
                    WriteOp::Create { fields, .. } => (fields, Some(*time)),
                    WriteOp::Set { fields, .. } if keeps_no_create_time(core, t) => (fields, None),
                    _ => return None,
                };
                Some(Document {
                    name: t.name.clone(),
                    fields: fields.clone(),
                    create_time: create_time.map(guard::nanos_timestamp),
                    update_time: Some(guard::nanos_timestamp(*time)),
                })
            })
            .collect();
        let reads: Vec<&Target> = ops
            .iter()
            .zip(targets)
            .zip(&known)
            .filter(|((op, t), k)| {
                t.mode.mongo_secondary() && k.is_none() && !matches!(op, WriteOp::Delete { .. })
            })
            .map(|((_, t), _)| t)
            .collect();
        let states = if reads.is_empty() {
            HashMap::new()
        } else {
            let names: Vec<String> = reads.iter().map(|t| t.name.clone()).collect();
            core.fs_get(&names).await?.0
        };
        let mut applied = Vec::new();
        // Consecutive upserts to one collection go in one command; a delete ends
        // the run, so the order of the batch's writes is kept.
        let mut run: Option<(String, Vec<WriteItem>)> = None;
        for ((op, t), known) in ops.iter().zip(targets).zip(known) {
            if !t.mode.mongo_secondary() {
                continue;
            }
            let a = match op {
                WriteOp::Delete { .. } => {
                    if let Some((c, items)) = run.take() {
                        core.mongo_upsert_many(&c, &items).await?;
                    }
                    core.mongo_delete(t, commit_time).await?;
                    Applied::Absent
                }
                _ => {
                    // `get`, not `remove`: a batch may write one path twice.
                    let doc = known.or_else(|| states.get(&t.name).cloned().flatten());
                    let a = Applied::of(doc.as_ref());
                    match core.prepare_secondary(t, doc) {
                        None => {
                            if let Some((c, items)) = run.take() {
                                core.mongo_upsert_many(&c, &items).await?;
                            }
                            core.mongo_delete(t, commit_time).await?;
                        }
                        Some((c, item)) => match &mut run {
                            Some((rc, items)) if *rc == c => items.push(item),
                            _ => {
                                if let Some((rc, items)) = run.replace((c, vec![item])) {
                                    core.mongo_upsert_many(&rc, &items).await?;
                                }
                            }
                        },
                    }
                    a
                }
            };
            applied.push((t.rel.clone(), a));
        }
        if let Some((c, items)) = run.take() {
            core.mongo_upsert_many(&c, &items).await?;
        }
        Ok::<_, DualError>(applied)
    };
    let timeout = core.config().secondary_timeout;
    let result = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(DualError::Io(
            core.mongo_unanswered("secondary write", timeout),
        )),
    };
    let elapsed = started.elapsed().as_secs_f64();
    let mut out = Vec::with_capacity(targets.len());
    match result {
        Ok(applied) => {
            for t in targets {
                core.metrics()
                    .secondary_latency
                    .with_label_values(&[&t.pattern])
                    .observe(elapsed);
                out.push(if t.mode.mongo_secondary() {
                    Secondary::Written
                } else {
                    Secondary::None
                });
            }
            let job = SettleJob {
                entry: entry.to_string(),
                applied,
            };
            // A full queue only delays the entry's removal to the reconciler.
            settle.offer(job);
        }
        Err(e) => {
            tracing::warn!(entry, error = %e, "secondary write failed; the outbox entry will replay it");
            for t in targets {
                if t.mode.mongo_secondary() {
                    core.metrics()
                        .secondary_failures
                        .with_label_values(&[&t.pattern])
                        .inc();
                    out.push(Secondary::Deferred);
                } else {
                    out.push(Secondary::None);
                }
            }
        }
    }
    out
}

fn commit_error(core: &Core, s: Status, ops: &[WriteOp]) -> DualError {
    let first = |want: fn(&WriteOp) -> bool| {
        ops.iter()
            .find(|o| want(o))
            .map(|o| o.path().to_string())
            .unwrap_or_default()
    };
    match s.code() {
        Code::AlreadyExists => DualError::AlreadyExists {
            path: first(|o| matches!(o, WriteOp::Create { .. })),
        },
        Code::NotFound => DualError::NotFound {
            path: first(|o| matches!(o, WriteOp::Update { .. })),
        },
        _ => DualError::Io(core.fs_error("Commit", s)),
    }
}
