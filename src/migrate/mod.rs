//! Migrate: a resumable, shardable copy of a source into MongoDB.
//!
//! * [`job`] a job: a fixed split into ranges, each copied with its own checkpoint,
//!   several at once, shardable across processes; indexes once every range is copied.
//! * [`pipeline`] one range: source → transform → batches → sink, every stage bounded,
//!   the checkpoint moved only past acknowledged documents.
//! * [`checkpoint`] the job and range records in MongoDB and their state machine.
//! * [`lease`] one process per range: leases in the range records, renewed while a run
//!   lasts, taken over once expired.
//! * [`claim`] one process per job-wide step (planning the job, building its indexes),
//!   so N shards started at the same instant agree on one plan.
//! * [`progress`] the counters a run reports (per collection and overall).
//! * [`target`] a new job refuses (or drops, or writes into) target collections that
//!   already hold documents.
//! * [`retry_dead`] `--retry-dead-letters`: a job's dead letters read and written again.
//! * [`from_report`] `--only-from-report`: the documents a verify report lists copied
//!   again.

pub mod checkpoint;
pub mod claim;
pub mod from_report;
pub mod job;
pub mod lease;
pub mod pipeline;
pub mod progress;
pub mod retry_dead;
pub mod target;
