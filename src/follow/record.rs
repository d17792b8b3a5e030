//! The follow record: where a job's follower stands, kept beside the job's checkpoints
//! (`_fireshift_checkpoints`, `_id: "{job}#follow"`). It is where the follower, `status`
//! and `cutover` meet: the follower saves its position there only after MongoDB
//! acknowledged every change before it; `cutover` reads the applied time and asks for
//! the cutover there; `status` shows the lag from it.

use std::collections::BTreeMap;

use mongodb::bson::{doc, DateTime};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The record's `_id` for a job.
pub fn record_id(job: &str) -> String {
    format!("{job}#follow")
}

/// How long a follower's heartbeat stays fresh: past it, the follower is taken as gone
/// (by `cutover`, `status`, and a second follower, which may then take over).
pub const HEARTBEAT_TTL_SECS: i64 = 30;

/// One collection group's stream state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// The target's resume token at the last saved consistent point (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A resend of the group was applied while the copy was still writing, so its
    /// absences could not be trusted: the group is read again (a full resend) once the
    /// copy is done.
    #[serde(default)]
    pub dirty: bool,
}

/// What the follower did, for `status`, the summary and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FollowCounts {
    pub upserts: u64,
    /// Documents resent unchanged (only their ledger epoch written).
    #[serde(default)]
    pub unchanged: u64,
    pub deletes: u64,
    pub dead_letters: u64,
    /// `RESET`s and full resends applied (the initial one included).
    pub resets: u64,
    /// Groups read again on purpose: after the copy, a refused resume point, an
    /// existence-filter mismatch.
    pub resyncs: u64,
    /// Streams opened again after a fault.
    pub restarts: u64,
    /// Tombstones applied again once the copy ended.
    #[serde(default)]
    pub swept: u64,
}

/// Who follows, and since when it was last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub heartbeat: DateTime,
}

/// The cutover, as `fireshift cutover` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cutover {
    /// The consistent time the gate waited for (ns since the epoch).
    pub time: i64,
    pub at: DateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub kind: String,
    pub job: String,
    /// `projects/P/databases/D/documents`.
    pub source: String,
    /// The time the follow starts from (ns): taken before the copy's first read, so no
    /// change falls between the copy and the follow.
    pub start: i64,
    /// The last consistent time whose changes are all in MongoDB (ns); `None` before
    /// the first consistent point.
    #[serde(default)]
    pub applied: Option<i64>,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupState>,
    /// Every range of the copy is done and its tombstones were applied again.
    #[serde(default)]
    pub copy_done: bool,
    #[serde(default)]
    pub counts: FollowCounts,
    #[serde(default)]
    pub holder: Option<Holder>,
    #[serde(default)]
    pub cutover: Option<Cutover>,
    /// A time a gate waits for the follower to pass (set by `cutover`).
    #[serde(default)]
    pub want: Option<i64>,
    /// Set by the follower once it applied everything up to the cutover time and left.
    #[serde(default)]
    pub finished: Option<DateTime>,
    pub updated_at: DateTime,
    /// In memory only: a cutover is recorded and not reached yet.
    #[serde(skip)]
    pub cutover_pending: bool,
}

impl FollowRecord {
    pub fn new(job: &str, source: &str, start: i64) -> Self {
        Self {
            id: record_id(job),
            kind: "follow".into(),
            job: job.into(),
            source: source.into(),
            start,
            applied: None,
            groups: BTreeMap::new(),
            copy_done: false,
            counts: FollowCounts::default(),
            holder: None,
            cutover: None,
            want: None,
            finished: None,
            updated_at: DateTime::now(),
            cutover_pending: false,
        }
    }

    /// The time up to which MongoDB holds every change: the last consistent point, or
    /// the start before there was one.
    pub fn applied_or_start(&self) -> i64 {
        self.applied.unwrap_or(self.start)
    }

    /// How far behind the wall clock the applied time is (seconds, never negative).
    pub fn lag_secs(&self) -> f64 {
        (crate::sink::guard::now_nanos() - self.applied_or_start()).max(0) as f64 / 1e9
    }

    /// Whether a follower was seen within [`HEARTBEAT_TTL_SECS`].
    pub fn follower_alive(&self, now: DateTime) -> bool {
        self.finished.is_none()
            && self.holder.as_ref().is_some_and(|h| {
                now.timestamp_millis() - h.heartbeat.timestamp_millis() <= HEARTBEAT_TTL_SECS * 1000
            })
    }

    /// Groups whose absences must be read again before the record can be trusted.
    pub fn dirty_groups(&self) -> Vec<&str> {
        self.groups
            .iter()
            .filter(|(_, g)| g.dirty)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Reads and writes follow records.
#[derive(Clone)]
pub struct FollowStore {
    records: Collection<FollowRecord>,
    target: String,
}

impl FollowStore {
    pub fn new(db: &mongodb::Database) -> Self {
        Self {
            records: db.collection(crate::own::CHECKPOINTS),
            target: format!("{}.{}", db.name(), crate::own::CHECKPOINTS),
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

    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl std::future::IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(crate::mongo::ANSWER_TIMEOUT, call.into_future()).await {
            Ok(r) => r.map_err(|e| self.err(operation, e)),
            Err(_) => Err(Error::Mongo {
                operation,
                target: self.target.clone(),
                uri: String::new(),
                retryable: true,
                message: format!(
                    "no answer within {}s",
                    crate::mongo::ANSWER_TIMEOUT.as_secs()
                ),
            }),
        }
    }

    pub async fn load(&self, job: &str) -> Result<Option<FollowRecord>> {
        self.call(
            "load the follow record",
            self.records
                .find_one(doc! { "_id": record_id(job), "kind": "follow" }),
        )
        .await
    }

    /// The jobs whose follow has not been cut over yet.
    pub async fn unfinished_jobs(&self) -> Result<Vec<String>> {
        let values = self
            .call(
                "list the follow records",
                self.records.distinct(
                    "job",
                    doc! { "kind": "follow", "finished": { "$in": [null] } },
                ),
            )
            .await?;
        Ok(values
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect())
    }

    /// Stores a new record unless one exists; returns the stored one.
    pub async fn create(&self, record: FollowRecord) -> Result<FollowRecord> {
        let job = record.job.clone();
        match self
            .call("create the follow record", self.records.insert_one(&record))
            .await
        {
            Ok(_) => Ok(record),
            Err(Error::Mongo { message, .. })
                if message.contains("E11000") || message.contains("11000") =>
            {
                self.load(&job)
                    .await?
                    .ok_or_else(|| Error::Internal("the follow record vanished".into()))
            }
            Err(e) => Err(e),
        }
    }

    /// Saves the follower's part of the record (position, groups, counts, heartbeat),
    /// leaving what `cutover` writes alone.
    pub async fn save(&self, r: &FollowRecord) -> Result<()> {
        let set = doc! {
            "applied": r.applied,
            "groups": mongodb::bson::to_bson(&r.groups).map_err(|e| Error::Internal(e.to_string()))?,
            "copy_done": r.copy_done,
            "counts": mongodb::bson::to_bson(&r.counts).map_err(|e| Error::Internal(e.to_string()))?,
            "holder": mongodb::bson::to_bson(&r.holder).map_err(|e| Error::Internal(e.to_string()))?,
            "finished": r.finished,
            "updated_at": DateTime::now(),
        };
        // An upsert: a `--restart` of the job deletes its records after the follower
        // took its start time, and the follower's record must come back whole.
        let on_insert = doc! {
            "kind": "follow",
            "job": &r.job,
            "source": &r.source,
            "start": r.start,
        };
        self.call(
            "save the follow position",
            self.records
                .update_one(
                    doc! { "_id": &r.id },
                    doc! { "$set": set, "$setOnInsert": on_insert },
                )
                .upsert(true),
        )
        .await?;
        Ok(())
    }

    /// Asks the follower to reach a consistent point at or after `time` (ns) soon: a
    /// gate waits for it, and a quiet stream may otherwise send none.
    pub async fn want(&self, job: &str, time: i64) -> Result<()> {
        self.call(
            "ask the follower to catch up",
            self.records.update_one(
                doc! { "_id": record_id(job) },
                doc! { "$set": { "want": time } },
            ),
        )
        .await?;
        Ok(())
    }

    /// Forgets a job's follow record (with its ledger, a `--restart`).
    pub async fn delete(&self, job: &str) -> Result<()> {
        self.call(
            "delete the follow record",
            self.records.delete_one(doc! { "_id": record_id(job) }),
        )
        .await?;
        Ok(())
    }

    /// Records the cutover time `time` (ns) the gate waits for.
    pub async fn request_cutover(&self, job: &str, time: i64) -> Result<()> {
        let c = Cutover {
            time,
            at: DateTime::now(),
        };
        self.call(
            "record the cutover",
            self.records.update_one(
                doc! { "_id": record_id(job) },
                doc! { "$set": { "cutover": mongodb::bson::to_bson(&c).map_err(|e| Error::Internal(e.to_string()))? } },
            ),
        )
        .await?;
        Ok(())
    }
}
