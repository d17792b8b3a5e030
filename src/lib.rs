//! fireshift moves a live application from Cloud Firestore to MongoDB.
//!
//! # Layout
//!
//! In data-flow order; a module imports only the shared modules and the folders before
//! it (docs/architecture.md draws the flow and says what each folder may import).
//!
//! ```text
//! Firestore ─► source ─► mapping (transform) ─► sink ─► MongoDB
//!                 └──────── migrate: job, pipeline, checkpoints ───┘
//!              verify, plan, dual build on the same parts
//! ```
//!
//! Data path:
//!
//! * [`source`] where documents come from: the Firestore query source (one kindless,
//!   all-descendants `RunQuery` in `__name__` order, resumed from a cursor) and its split
//!   into key ranges.
//! * [`mapping`] what each document becomes: value conversion (the type table), the
//!   operator's TOML mappings (schema, validation with file:line errors, field rules,
//!   path-derived identities, indexes) and the transformer that applies them.
//! * [`sink`] how it lands in MongoDB: idempotent, bounded, retried bulk upserts, the
//!   update-time guard, guarded removals and holders of orphaned embedded children.
//! * [`ack`] the ordered-acknowledgement window migrate and verify share: a position
//!   that moves only past what the sink acknowledged, with byte-bounded buffering.
//! * [`migrate`] a resumable, shardable job of ranges, each copied by the pipeline with
//!   its own checkpoint; progress counters.
//! * [`ledger`] a following job's record of every document it wrote (place, update
//!   time, tombstones), in MongoDB: what absences and late copy pages are judged by.
//! * [`follow`] keeps MongoDB in step with the live database after the copy: one Listen
//!   stream, a target per collection group, guarded writes and removals, a saved
//!   position, the cutover.
//!
//! Built on the data path:
//!
//! * [`verify`] re-reads the source, transforms as migrate does, compares canonical
//!   hashes with the target and writes the parity report (JSON, HTML, terminal).
//! * [`plan`] samples a database before a migration: patterns, counts, types, read
//!   estimate, skeleton mappings and a report.
//! * [`dual`] the dual-write library: per-collection modes, primary-then-secondary writes
//!   guarded by update time, a durable outbox with a reconciler, shadow reads, metrics.
//!
//! Shared by all of them:
//!
//! * [`firestore`] connects to Firestore (endpoint, TLS, Application Default Credentials
//!   or the emulator) and writes documents in bulk.
//! * [`mongo`] connects to MongoDB (connection string, CA file, explicit shutdown).
//! * [`tls`] the process's one rustls crypto provider and operators' extra CAs.
//! * [`path`] Firestore document names and the identities they derive in MongoDB.
//! * [`own`] the names of fireshift's own collections.
//! * [`retry`] the one retry loop: exponential backoff, full jitter, a deadline.
//! * [`throttle`] rate limits (documents read and written per second) shared by a
//!   process's ranges.
//! * [`redact`] keeps secrets in connection strings out of logs and reports.
//! * [`error`] typed errors, classified retryable or fatal.

pub mod ack;
pub mod dual;
pub mod error;
pub mod firestore;
pub mod follow;
pub mod ledger;
pub mod mapping;
pub mod migrate;
pub mod mongo;
pub mod own;
pub mod path;
pub mod plan;
pub mod redact;
pub mod retry;
pub mod sink;
pub mod source;
#[cfg(test)]
mod test_support;
pub mod throttle;
pub mod tls;
pub mod verify;
