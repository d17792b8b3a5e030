//! The export source: reading the files of a Firestore managed export.

pub mod entity;
pub mod log;
pub mod metadata;
