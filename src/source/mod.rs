//! Sources: where documents come from. Every source is one [`Source`]: split into
//! ranges, each streamed as an ordered sequence of [`Change`]s, each change followed by
//! the [`Position`] a resume starts after. The copy (migrate), the verifier and later
//! the export reader and the live follower all go through it.
//!
//! * [`query`] the Firestore query source: one kindless, all-descendants `RunQuery` in
//!   `__name__` order, paged and resumed from a `__name__` cursor.
//! * [`ranges`] splits the `__name__` key space into balanced ranges for parallel readers.
//! * [`export`] the export source: the files of a managed export (local or `gs://`),
//!   one range per output file, resumed from a record offset.

pub mod export;
pub mod query;
pub mod ranges;

use std::collections::HashMap;
use std::future::Future;

use gcloud_sdk::google::firestore::v1::Document;
use gcloud_sdk::prost_types::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::Result;

pub use query::{
    collection_query, is_own_document, is_unreachable, kindless_query, FirestoreSource, KeyRange,
    SourceConfig, DEFAULT_DATABASE_ID, OWN_COLLECTION_PREFIX,
};

/// One change a source reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A document's state: the raw document (lossless protobuf values) and the time it
    /// was last updated, when the source knows it (a query does; an export does not).
    Upsert {
        doc: Document,
        update_time: Option<Timestamp>,
    },
    /// A document deleted at `time`.
    Delete { name: String, time: Timestamp },
    /// A record the source could not read (an export file's damaged or undecodable
    /// record, yielded only when the operator chose to skip them): dead-lettered with
    /// where it is and why, never dropped silently.
    Corrupt {
        /// `{root}#{file}@{offset}`: the source, the file and the byte where the
        /// record starts (the dead letter's key, counted with the source's).
        at: String,
        reason: String,
        /// The record's bytes as far as they could be read.
        bytes: Vec<u8>,
    },
}

impl Change {
    /// A document as a query returns it: its update time is the document's own.
    pub fn upsert(doc: Document) -> Self {
        let update_time = doc.update_time;
        Change::Upsert { doc, update_time }
    }

    /// The full document name the change is about.
    /// (For a corrupt record: where it is.)
    pub fn name(&self) -> &str {
        match self {
            Change::Upsert { doc, .. } => &doc.name,
            Change::Delete { name, .. } => name,
            Change::Corrupt { at, .. } => at,
        }
    }
}

/// Where a range's stream stands: stored with checkpoints, and what a resume starts
/// after. Opaque to everything but the source that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// After this document name (`__name__` order): the query source.
    After { name: String },
    /// After the record that ends at byte `end` of `file` (an export's output file,
    /// relative to the export); `name` is that record's document (or `file@offset` for
    /// a corrupt record), for messages and for the islands of a resume.
    Record {
        file: String,
        end: u64,
        name: String,
    },
}

impl Position {
    pub fn after(name: impl Into<String>) -> Self {
        Position::After { name: name.into() }
    }

    /// The document name a `__name__`-ordered position stands at. Checkpoints written
    /// before positions existed hold only this name (their `cursor` field).
    pub fn name(&self) -> &str {
        match self {
            Position::After { name } | Position::Record { name, .. } => name,
        }
    }
}

/// A share of a source that one reader streams: stored in a job record so that every
/// shard and every rerun sees the same split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Range {
    /// One output file of an export (relative to the export's folder), whole. First:
    /// an untagged `Keys` would match any object, its fields being optional.
    File { file: String },
    /// Document names from `start_at` (inclusive; `None`: the beginning) to `end_before`
    /// (exclusive; `None`: the end). The shape job records had before ranges had kinds.
    Keys {
        start_at: Option<String>,
        end_before: Option<String>,
    },
}

impl Range {
    /// The whole source.
    pub fn all() -> Self {
        Range::Keys {
            start_at: None,
            end_before: None,
        }
    }
}

/// A source of documents.
///
/// Contract: [`Source::stream`] yields the changes of one range in one fixed order, each
/// with the position just after it; a stream started after a position yields exactly
/// the changes after it (nothing skipped, nothing repeated). Transient faults are
/// retried inside the stream and resume from the last position delivered; a persistent
/// or fatal fault ends the stream with the error as its last item. The channel is
/// bounded by `capacity`: a consumer that stops taking stops the source.
pub trait Source: Clone + Send + Sync + 'static {
    /// What the source reads, for messages and to bind a job to it
    /// (`projects/P/databases/D/documents` for Firestore).
    fn root(&self) -> &str;

    /// Where it reads from, for messages (never holds a secret).
    fn endpoint(&self) -> &str;

    /// Splits the source into at most `n` ranges of similar size (one range for `n ≤ 1`).
    fn split(&self, n: usize) -> impl Future<Output = Result<Vec<Range>>> + Send;

    /// How many documents the source holds, for progress: an estimate, `None` when it
    /// cannot tell cheaply.
    fn estimate(&self) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Streams `range` from just after `after` (`None`: its beginning).
    fn stream(
        &self,
        range: &Range,
        after: Option<Position>,
        capacity: usize,
    ) -> mpsc::Receiver<Result<(Change, Position)>>;

    /// How many full write batches' worth of documents a range's position may lag
    /// behind its read. A source that yields each collection's documents together (the
    /// query, in name order) needs one: batches fill as they are read. One whose
    /// collections interleave (an export, in the order it was written) needs more, or
    /// every batch would be sent a sliver full. The documents a resume reads again are
    /// bounded by it; those acknowledged past the position are skipped as islands.
    fn lag_batches(&self) -> usize {
        1
    }

    /// Streams the whole source, range after range in a fixed order, from just after
    /// `after` (`None`: the beginning): what one reader of everything sees (the
    /// verifier). Same contract as [`Source::stream`].
    fn stream_all(
        &self,
        after: Option<Position>,
        capacity: usize,
    ) -> mpsc::Receiver<Result<(Change, Position)>> {
        self.stream(&Range::all(), after, capacity)
    }

    /// The ids of the root collections, for the target collections a job may write
    /// (see [`crate::migrate::target`]).
    fn root_collections(&self) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The current state of each named document (`None`: it does not exist), for the
    /// verifier's recheck of suspects.
    fn read_back(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Option<Document>>>> + Send;
}
