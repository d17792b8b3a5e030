//! The export source: the files of a Firestore managed export, read from a local
//! directory or from Cloud Storage (`gs://`).
//!
//! * [`storage`] where the files are read from: list, whole reads, resumable streams.

mod gcs;
pub mod storage;
