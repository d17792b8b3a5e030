//! Durable progress of a migration job, kept in the target MongoDB database.
//!
//! A job is a fixed list of key ranges (decided once, when the job is created, and stored
//! in the job record so every shard and every rerun sees the same split). Each range has
//! one checkpoint document: its cursor — the last `__name__` such that it and every
//! document before it in the range were acknowledged by the sink — its counts, and its
//! state. The cursor only moves after acknowledgement, so a crash at any moment loses
//! nothing: a rerun resumes after the cursor and replays at most the unacknowledged
//! window, which the idempotent sink absorbs.
//!
//! Records carry `version` so a future layout change can migrate or refuse old ones.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use mongodb::bson::{doc, DateTime};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::migrate::lease::Lease;
use crate::mongo::is_duplicate_key;
use crate::retry::RetryPolicy;
use crate::source::{Position, Range};

pub const CHECKPOINT_COLLECTION: &str = crate::own::CHECKPOINTS;
pub const RECORD_VERSION: u32 = 1;

/// Where a range is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RangeState {
    /// Not started.
    Pending,
    /// Being copied; the cursor says how far.
    Copying,
    /// Every document of the range acknowledged.
    Copied,
    /// Copied, and the collection indexes built.
    Indexed,
    /// Stopped by an error; a rerun resumes from the cursor.
    Failed { reason: String },
    /// Stopped on the operator's request (a signal) after saving its checkpoint; a rerun
    /// resumes from the cursor.
    Interrupted,
}

impl RangeState {
    pub fn is_done(&self) -> bool {
        matches!(self, RangeState::Copied | RangeState::Indexed)
    }

    pub fn name(&self) -> &'static str {
        match self {
            RangeState::Pending => "pending",
            RangeState::Copying => "copying",
            RangeState::Copied => "copied",
            RangeState::Indexed => "indexed",
            RangeState::Failed { .. } => "failed",
            RangeState::Interrupted => "interrupted",
        }
    }
}

/// Documents acknowledged past the cursor: one acknowledged batch of `collection` (a
/// target collection, or the dead-letter collection) whose documents, in this range's
/// stream order, run from `first` to `last`, `docs` of them (a batch holds every
/// document of its collection the batcher read between its first and its last).
///
/// Batches are acknowledged out of order, so the cursor can lag behind documents that
/// already landed. A resume skips the documents of an island instead of writing them
/// again, which bounds what a crash makes the sink redo to the batches that were in
/// flight. An island is only trusted when its documents come back exactly: the resume
/// holds the documents of `collection` from `first` on and skips them only once `last`
/// arrives within `docs` of them; otherwise it writes them (a rewrite is harmless,
/// a skipped document that never landed would be lost).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Island {
    pub collection: String,
    pub first: String,
    pub last: String,
    pub docs: u64,
}

/// Islands kept per range; dropping one only means its documents are written again.
pub const MAX_ISLANDS: usize = 64;

/// Counts of documents at or before the cursor, plus those of the islands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub written: u64,
    pub dead_lettered: u64,
}

impl Counts {
    pub fn done(&self) -> u64 {
        self.written + self.dead_lettered
    }
}

/// The job record: what every shard and rerun must agree on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    #[serde(rename = "_id")]
    pub job: String,
    pub kind: String,
    pub version: u32,
    /// `projects/P/databases/D/documents` the job reads.
    pub source: String,
    /// Hash of the mappings (transform configuration) the copy uses.
    pub mappings_hash: String,
    /// The source's split, fixed when the job is created (stored as the source made
    /// it: `{start_at, end_before}` for key ranges, as records always held).
    pub ranges: Vec<Range>,
    pub created_at: DateTime,
}

/// One range's checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeCheckpoint {
    /// `{job}#{index}`.
    #[serde(rename = "_id")]
    pub id: String,
    pub kind: String,
    pub version: u32,
    pub job: String,
    pub index: u32,
    /// Where the range's stream stands: everything up to it was acknowledged. Written
    /// by every version that knows positions; older records hold only `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// Last `__name__` acknowledged with everything before it: the position of a
    /// `__name__`-ordered source, kept so older readers (and `status`) still see it.
    pub cursor: Option<String>,
    #[serde(flatten)]
    pub state: RangeState,
    pub counts: Counts,
    /// Acknowledged batches past the cursor (their documents are in `counts`).
    #[serde(default)]
    pub islands: Vec<Island>,
    pub mappings_hash: String,
    pub started_at: Option<DateTime>,
    pub updated_at: DateTime,
    /// Documents per second over the last run of this range.
    pub rate: f64,
    pub last_error: Option<String>,
    /// The process copying the range, while it runs (see [`crate::migrate::lease`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
}

impl RangeCheckpoint {
    /// Where a resume starts: the stored position, or for records written before
    /// positions existed, their `__name__` cursor.
    pub fn resume_position(&self) -> Option<Position> {
        self.position
            .clone()
            .or_else(|| self.cursor.clone().map(Position::after))
    }

    /// Moves the range's position (and the `cursor` older readers see).
    pub fn set_position(&mut self, position: Position) {
        self.cursor = Some(position.name().to_string());
        self.position = Some(position);
    }

    pub fn new(job: &str, index: u32, mappings_hash: &str) -> Self {
        Self {
            id: format!("{job}#{index}"),
            kind: "range".into(),
            version: RECORD_VERSION,
            job: job.to_string(),
            index,
            position: None,
            cursor: None,
            state: RangeState::Pending,
            counts: Counts::default(),
            islands: Vec::new(),
            mappings_hash: mappings_hash.to_string(),
            started_at: None,
            updated_at: DateTime::now(),
            rate: 0.0,
            last_error: None,
            lease: None,
        }
    }
}

/// Where a range's checkpoint is saved. Contract: when `save` returns `Ok`, the record
/// is durable (a crash after it resumes from it). [`CheckpointStore`] is the real one;
/// tests keep records in memory.
pub trait SaveCheckpoint: Send + Sync + 'static {
    fn save(
        &self,
        record: &RangeCheckpoint,
    ) -> impl std::future::Future<Output = Result<()>> + Send;
}

impl SaveCheckpoint for CheckpointStore {
    async fn save(&self, record: &RangeCheckpoint) -> Result<()> {
        CheckpointStore::save(self, record).await
    }
}

/// Reads and writes job and range records in one collection.
#[derive(Clone)]
pub struct CheckpointStore {
    jobs: Collection<JobRecord>,
    ranges: Collection<RangeCheckpoint>,
    target: String,
    /// Checkpoint writes ride out the same outages as data writes; a checkpoint that
    /// cannot be saved stops the run (the previous one stays valid).
    retry: RetryPolicy,
    /// One writer at a time per range record within this process: a checkpoint save
    /// and a lease renewal of the same record never race each other.
    writing: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl CheckpointStore {
    pub fn new(db: &mongodb::Database, collection: &str, retry: RetryPolicy) -> Self {
        Self {
            jobs: db.collection(collection),
            ranges: db.collection(collection),
            target: format!("{}.{collection}", db.name()),
            retry,
            writing: Arc::default(),
        }
    }

    /// Runs one driver call: a server that took the command and never answers fails it
    /// (retryably) after [`crate::mongo::ANSWER_TIMEOUT`] instead of holding the run.
    pub(crate) async fn call<T>(
        &self,
        operation: &'static str,
        call: impl std::future::IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(crate::mongo::ANSWER_TIMEOUT, call.into_future()).await {
            Ok(r) => r.map_err(|e| self.err(operation, e)),
            Err(_) => Err(self.no_answer(operation)),
        }
    }

    /// Holds the write lock of one range record (see `writing`).
    pub(crate) async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .writing
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// The checkpoint collection as plain documents, for the records that are neither
    /// jobs nor ranges (claims).
    pub(crate) fn records(&self) -> Collection<mongodb::bson::Document> {
        self.ranges.clone_with_type()
    }

    pub(crate) fn mongo_error(&self, operation: &'static str, e: mongodb::error::Error) -> Error {
        self.err(operation, e)
    }

    pub(crate) fn no_answer(&self, operation: &'static str) -> Error {
        Error::Mongo {
            operation,
            target: self.target.clone(),
            uri: String::new(),
            retryable: true,
            message: format!(
                "no answer within {}s",
                crate::mongo::ANSWER_TIMEOUT.as_secs()
            ),
        }
    }

    fn err(&self, operation: &'static str, e: mongodb::error::Error) -> Error {
        Error::Mongo {
            operation,
            target: self.target.clone(),
            uri: String::new(),
            retryable: crate::mongo::is_retryable(&e),
            message: e.to_string(),
        }
    }

    pub async fn load_job(&self, job: &str) -> Result<Option<JobRecord>> {
        self.call(
            "load job",
            self.jobs.find_one(doc! { "_id": job, "kind": "job" }),
        )
        .await
    }

    /// Creates the job unless another process (another shard) created it first; either
    /// way returns the record that is now stored, so all shards share one split.
    pub async fn create_job(&self, record: JobRecord) -> Result<JobRecord> {
        let inserted = tokio::time::timeout(
            crate::mongo::ANSWER_TIMEOUT,
            self.jobs.insert_one(&record).into_future(),
        )
        .await
        .map_err(|_| self.no_answer("create job"))?;
        match inserted {
            Ok(_) => Ok(record),
            Err(e) if is_duplicate_key(&e) => {
                self.load_job(&record.job)
                    .await?
                    .ok_or_else(|| Error::Contention {
                        what: format!("job {}", record.job),
                        message:
                            "another process created it and it was deleted before it could be read"
                                .into(),
                    })
            }
            Err(e) => Err(self.err("create job", e)),
        }
    }

    pub async fn set_job_hash(&self, job: &str, hash: &str) -> Result<()> {
        self.call(
            "update job",
            self.jobs.update_one(
                doc! { "_id": job },
                doc! { "$set": { "mappings_hash": hash } },
            ),
        )
        .await?;
        Ok(())
    }

    /// Deletes a job, its range checkpoints and its follow record (`--restart`).
    pub async fn delete_job(&self, job: &str) -> Result<()> {
        self.call(
            "delete job",
            self.ranges.delete_many(doc! { "$or": [
                { "_id": job },
                { "job": job, "kind": "range" },
                { "job": job, "kind": "claim" },
                { "job": job, "kind": "follow" },
            ] }),
        )
        .await?;
        Ok(())
    }

    pub async fn load_ranges(&self, job: &str) -> Result<Vec<RangeCheckpoint>> {
        let find = async {
            self.ranges
                .find(doc! { "job": job, "kind": "range" })
                .await?
                .try_collect::<Vec<RangeCheckpoint>>()
                .await
        };
        let mut out = self.call("load checkpoints", find).await?;
        out.sort_by_key(|r| r.index);
        Ok(out)
    }

    /// One range record.
    pub(crate) async fn load_range(&self, id: &str) -> Result<Option<RangeCheckpoint>> {
        self.call(
            "load a checkpoint",
            self.ranges.find_one(doc! { "_id": id }),
        )
        .await
    }

    /// All job records, for `status` without `--job`.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>> {
        let find = async {
            self.jobs
                .find(doc! { "kind": "job" })
                .await?
                .try_collect()
                .await
        };
        self.call("list jobs", find).await
    }

    /// Updates one range record under its write lock; how many records matched.
    pub(crate) async fn update_range(
        &self,
        operation: &'static str,
        id: &str,
        filter: mongodb::bson::Document,
        update: mongodb::bson::Document,
    ) -> Result<u64> {
        let _writing = self.lock(id).await;
        let mut filter = filter;
        filter.insert("_id", id);
        let r = self
            .call(operation, self.ranges.update_one(filter, update))
            .await?;
        Ok(r.matched_count)
    }

    /// Inserts a range record; `false` when one with its id exists already.
    pub(crate) async fn insert_range(&self, record: &RangeCheckpoint) -> Result<bool> {
        let _writing = self.lock(&record.id).await;
        let inserted = tokio::time::timeout(
            crate::mongo::ANSWER_TIMEOUT,
            self.ranges.insert_one(record).into_future(),
        )
        .await
        .map_err(|_| self.no_answer("create a checkpoint"))?;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(self.err("create a checkpoint", e)),
        }
    }

    /// Gives back every lease `token` holds among `ids`.
    pub(crate) async fn release_many(&self, ids: &[String], token: &str) -> Result<()> {
        self.call(
            "release range leases",
            self.ranges.update_many(
                doc! { "_id": { "$in": ids }, "lease.token": token },
                doc! { "$unset": { "lease": "" } },
            ),
        )
        .await?;
        Ok(())
    }

    /// Records why a range stopped, keeping its cursor and counts as last saved, and
    /// gives its lease back (fenced: only while `lease` still holds it).
    pub async fn mark_failed(&self, id: &str, lease: Option<&Lease>, reason: &str) -> Result<()> {
        self.mark_stopped(
            id,
            lease,
            doc! { "state": "failed", "reason": reason, "last_error": reason, "updated_at": DateTime::now() },
        )
        .await
    }

    /// Records that a range stopped on request (its checkpoint is already saved) and
    /// gives its lease back.
    pub async fn mark_interrupted(&self, id: &str, lease: Option<&Lease>) -> Result<()> {
        self.mark_stopped(
            id,
            lease,
            doc! { "state": "interrupted", "updated_at": DateTime::now() },
        )
        .await
    }

    async fn mark_stopped(
        &self,
        id: &str,
        lease: Option<&Lease>,
        set: mongodb::bson::Document,
    ) -> Result<()> {
        let mut filter = doc! {};
        if let Some(lease) = lease {
            filter.insert("lease.token", &lease.token);
        }
        self.update_range(
            "record why a range stopped",
            id,
            filter,
            doc! { "$set": set, "$unset": { "lease": "" } },
        )
        .await?;
        Ok(())
    }

    /// Gives a finished range's lease back (fenced by its token).
    pub async fn release(&self, record: &mut RangeCheckpoint) -> Result<()> {
        if let Some(lease) = record.lease.take() {
            self.update_range(
                "release a range lease",
                &record.id,
                doc! { "lease.token": &lease.token },
                doc! { "$unset": { "lease": "" } },
            )
            .await?;
        }
        Ok(())
    }

    /// Moves a copied range to `indexed` once the job's indexes are built. Not fenced by
    /// a lease: every range is copied, so nobody copies this one any more, and the shard
    /// that copied it may be giving its lease back at this very moment (a save of the
    /// record as read, lease included, would then fail with [`Error::LeaseLost`]).
    /// Idempotent, so retried on transient errors.
    pub async fn mark_indexed(&self, id: &str) -> Result<()> {
        let now = DateTime::now();
        self.retry
            .run(
                || format!("mark range {id} indexed"),
                || {
                    self.update_range(
                        "mark a range indexed",
                        id,
                        doc! { "state": "copied" },
                        doc! { "$set": { "state": "indexed", "updated_at": now } },
                    )
                },
            )
            .await?;
        Ok(())
    }

    /// Replaces a range's checkpoint (idempotent, so retried on transient errors). A
    /// leased record is saved only while its lease is still this process's (the save
    /// also renews it); otherwise [`Error::LeaseLost`]: another process took the range.
    pub async fn save(&self, record: &RangeCheckpoint) -> Result<()> {
        let mut record = record.clone();
        let mut filter = doc! { "_id": &record.id };
        if let Some(lease) = record.lease.as_mut() {
            lease.refresh();
            filter.insert("lease.token", &lease.token);
        }
        let fenced = record.lease.is_some();
        let _writing = self.lock(&record.id).await;
        let result = self
            .retry
            .run(
                || format!("save checkpoint {}", record.id),
                || {
                    self.call(
                        "save checkpoint",
                        self.ranges
                            .replace_one(filter.clone(), &record)
                            .upsert(!fenced),
                    )
                },
            )
            .await?;
        if fenced && result.matched_count == 0 {
            return Err(Error::LeaseLost {
                range: record.id.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_a_tagged_enum_with_reason() {
        let mut r = RangeCheckpoint::new("job", 3, "h");
        r.state = RangeState::Failed {
            reason: "boom".into(),
        };
        let d = mongodb::bson::to_document(&r).unwrap();
        assert_eq!(d.get_str("state").unwrap(), "failed");
        assert_eq!(d.get_str("reason").unwrap(), "boom");
        assert_eq!(d.get_str("_id").unwrap(), "job#3");
        let back: RangeCheckpoint = mongodb::bson::from_document(d).unwrap();
        assert_eq!(back, r);
        assert!(RangeState::Copied.is_done() && RangeState::Indexed.is_done());
        assert!(!RangeState::Copying.is_done());
    }
}
