//! fireshift moves a live application from Cloud Firestore to MongoDB.
//!
//! # Layout
//!
//! * [`path`] parses Firestore document names and derives a document's identity in
//!   MongoDB (the DESIGN "Identity" rules), used by conversion and by references.
//! * [`value`] converts lossless Firestore protobuf values to BSON (the DESIGN type table).
//! * [`tls`] the process's one rustls crypto provider and operators' extra CAs.
//! * [`firestore`] connects to Firestore: endpoint, TLS, Application Default Credentials
//!   (or the emulator), used by everything that reads or writes Firestore.
//! * [`mongo`] connects to MongoDB: connection string, CA file, explicit shutdown.
//! * [`source`] streams raw Firestore documents in `__name__` order over gRPC.
//! * [`sink`] writes BSON documents to MongoDB with idempotent, bounded, retried bulk upserts.
//! * [`transform`] applies a collection's mapping to one document (pure), or says why not.
//! * [`mapping`] the TOML mapping files: schema, validation with file:line errors, field
//!   rules, path-derived identities, indexes, and the `check`/`indexes` commands.
//! * [`progress`] per-collection counters, shown as bars on a TTY and log lines elsewhere.
//! * [`checkpoint`] durable per-range progress of a job in MongoDB (cursor, counts, state).
//! * [`ranges`] splits the `__name__` key space into balanced ranges for parallel readers.
//! * [`job`] a resumable, shardable job: its ranges, copied in parallel, each checkpointed.
//! * [`pipeline`] wires source → transform → sink with bounded queues and reports progress.
//! * [`plan`] samples a database before a migration: patterns, counts, types, read
//!   estimate, skeleton mappings and a report.
//! * [`verify`] re-reads the source, transforms as migrate does, compares canonical hashes
//!   with the target and writes the parity report (JSON, HTML, terminal).
//! * [`dual`] the dual-write library: per-collection modes, primary-then-secondary writes
//!   guarded by update time, a durable outbox with a reconciler, shadow reads, metrics.
//! * [`redact`] keeps secrets in connection strings out of logs and reports.
//! * [`retry`] the shared retry loop: exponential backoff, full jitter, a deadline.
//! * [`error`] typed errors, classified retryable or fatal.

pub mod checkpoint;
pub mod dual;
pub mod error;
pub mod firestore;
pub mod job;
pub mod mapping;
pub mod mongo;
pub mod path;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod ranges;
pub mod redact;
pub mod retry;
pub mod sink;
pub mod source;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod transform;
pub mod value;
pub mod verify;
