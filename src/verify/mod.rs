//! The verifier: proves (or disproves) that the MongoDB target holds what the migration
//! promised, document by document, before cutover.
//!
//! ```text
//! pass 1   FirestoreSource ─► transform (same as migrate) ─► per-collection chunks of ids
//!          ─► find({_id: {$in: chunk}}) ─► canonical compare ─► pending mismatches (store)
//!                                                           └─► ids seen (scratch collection)
//! extras   per target collection: its _ids in batches, looked up in the ids seen ─► pending extras
//! recheck  each pending mismatch: fresh source read + fresh target read ─► confirmed | resolved
//! report   counts per collection + confirmed mismatches with field diffs ─► JSON, HTML, terminal
//! ```
//!
//! * [`compare`] the canonical form, its hash, field diffs and sampling (pure).
//! * [`diff_record`] a field diff as stored and reported.
//! * [`databases`] the target (only read; must exist) and the state database (written,
//!   never the target), checked before any read of the source.
//! * [`store`] what the verifier keeps in its state database: runs (cursor and counts,
//!   for resume), mismatches (pending → confirmed | resolved) and the scratch collection
//!   of seen ids.
//! * `recheck` judges each suspect again against fresh reads of both sides.
//! * [`report`] the JSON (`docs/verify-report.md`), HTML and terminal renderings.
//! * [`ttl`] the target's TTL indexes: a document they expired is not missing.
//!
//! # Memory
//!
//! Bounded whatever the data size; nothing holds a set of all ids:
//! * the source channel holds at most `read_ahead` documents;
//! * partly filled chunks hold at most `chunk_size` documents per target collection and
//!   at most `buffer_bytes` in all (past it the largest is sent early), and at most
//!   `in_flight` chunks are compared at once (each holds its expected documents and the
//!   target documents one `$in` query returned);
//! * the open generations (see *Resume*) are at most the chunks in flight plus one;
//! * counts are per target collection (their number is the schema's, not the data's);
//! * mismatches go to a MongoDB collection as they are found, extras stream from an
//!   aggregation cursor in batches, the recheck and the report read the mismatch store in
//!   batches; the report lists at most `max_listed` mismatches and writes them as it
//!   reads them.
//!
//! # Resume
//!
//! Pass 1 advances in *generations* of about `checkpoint_docs` source documents: when a
//! generation ends, its partly filled chunks are sent at once, and when every chunk of
//! it (and of every earlier one) has been compared and its mismatches and seen ids are
//! stored, the run record gets the generation's last document name as its cursor and
//! the counts up to it. A rerun continues after the cursor; the documents of an
//! unfinished generation are compared again, which is harmless because the mismatch and
//! seen-id writes are idempotent for this purpose (same `_id`s; duplicate seen ids only
//! repeat a fact).

mod chunk;
pub mod compare;
pub mod databases;
pub mod diff_record;
mod pass;
pub mod place;
mod recheck;
pub mod report;
pub mod store;
pub mod ttl;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use mongodb::bson::{Bson, RawBson};
use mongodb::Database;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mapping::transform::Transformer;
use crate::path::DocPath;
use crate::retry::RetryPolicy;
use crate::source::{FirestoreSource, Source};

use compare::{canonical_bytes, FieldDiff};

/// Collections fireshift itself keeps in the target database (dead letters,
/// checkpoints, verify state) start with it: never compared, never "extra".
pub use crate::source::OWN_COLLECTION_PREFIX;

/// Where a rejected document is counted when its name cannot even be parsed.
pub const UNPARSEABLE: &str = "(unparseable names)";

/// Verifier tuning; the defaults suit documents of a few KiB.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Ids per `find({_id: {$in: …}})`.
    pub chunk_size: usize,
    /// Chunks compared at once.
    pub in_flight: usize,
    /// Source documents read ahead of the comparison.
    pub read_ahead: usize,
    /// Bytes of expected documents held in partly filled chunks, all collections together.
    pub buffer_bytes: usize,
    /// Source documents per generation (the unit of resume).
    pub checkpoint_docs: u64,
    /// Fraction of source documents compared, 0 < sample ≤ 1 (see [`compare::in_sample`]).
    pub sample: f64,
    /// Where migrate put documents it could not convert or write.
    pub dead_letter_collection: String,
    /// Field diffs kept per mismatch (the rest are counted).
    pub max_diffs: usize,
    /// Mismatches rechecked per batch (one BatchGetDocuments, one `$in` per collection).
    pub recheck_batch: usize,
    /// Stop pass 1 (resumably) after this many source documents in this invocation.
    pub max_docs: Option<u64>,
    pub retry: RetryPolicy,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            chunk_size: 500,
            in_flight: 4,
            read_ahead: 4096,
            buffer_bytes: 64 * 1024 * 1024,
            checkpoint_docs: 50_000,
            sample: 1.0,
            dead_letter_collection: crate::sink::dead_letter::DEAD_LETTER_COLLECTION.to_string(),
            max_diffs: 50,
            recheck_batch: 100,
            max_docs: None,
            retry: RetryPolicy::default(),
        }
    }
}

impl VerifyConfig {
    /// Checked before any I/O.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !(self.sample > 0.0 && self.sample <= 1.0) {
            return bad(format!("--sample {} must be > 0 and ≤ 1", self.sample));
        }
        if self.chunk_size == 0 || self.chunk_size > 10_000 {
            return bad(format!(
                "chunk size {} must be between 1 and 10000",
                self.chunk_size
            ));
        }
        if self.in_flight == 0 || self.read_ahead == 0 || self.checkpoint_docs == 0 {
            return bad("in-flight, read-ahead and checkpoint sizes must be at least 1".into());
        }
        if self.max_diffs == 0 || self.recheck_batch == 0 {
            return bad("max diffs and recheck batch must be at least 1".into());
        }
        if !self
            .dead_letter_collection
            .starts_with(OWN_COLLECTION_PREFIX)
        {
            // Otherwise the dead letters would be compared as an ordinary collection.
            return bad(format!(
                "the dead-letter collection `{}` must start with `{OWN_COLLECTION_PREFIX}`",
                self.dead_letter_collection
            ));
        }
        Ok(())
    }

    pub fn sampled(&self) -> bool {
        self.sample < 1.0
    }
}

/// What kind of difference a mismatch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The source document has no target document.
    Missing,
    /// A target document no source document maps to.
    Extra,
    /// Both exist; their canonical forms differ.
    Differing,
    /// The transform refuses the source document, and no dead letter records it.
    DeadLetterMissing,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Differing => "differing",
            Kind::DeadLetterMissing => "dead_letter_missing",
        }
    }

    pub const ALL: [Kind; 4] = [
        Kind::Missing,
        Kind::Extra,
        Kind::Differing,
        Kind::DeadLetterMissing,
    ];
}

/// A suspected difference at one target key, as pass 1 or the extras scan found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub kind: Kind,
    /// Target collection (the dead-letter collection for `DeadLetterMissing`).
    pub collection: String,
    /// Target `_id` (the source path for `DeadLetterMissing`).
    pub id: Bson,
    /// Full Firestore document name, when known (for extras: derived, see
    /// [`source_relative_path`]).
    pub source_path: Option<String>,
}

/// A mismatch that survived the recheck, with the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub mismatch: Mismatch,
    /// Canonical hash of the expected document (source → transform), if there is one.
    pub expected_hash: Option<String>,
    /// Canonical hash of the target document, if there is one.
    pub actual_hash: Option<String>,
    pub diffs: Vec<FieldDiff>,
    pub diffs_omitted: usize,
    /// A remark for the reviewer (e.g. why the source could not be read back).
    pub note: Option<String>,
}

/// The verdict of a recheck.
#[derive(Debug, Clone, PartialEq)]
pub enum Recheck {
    /// Source and target agree now (the document was written during the verify).
    Resolved,
    /// Still different; the kind may have changed (e.g. missing → differing).
    Confirmed(Box<Finding>),
}

/// Per target collection counts of pass 1 (and the target count from the extras phase).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionCounts {
    pub collection: String,
    /// Source documents that map to this collection (dead-lettered and sampled-out ones
    /// included).
    pub source: u64,
    /// Of those, documents migrate dead-lettered instead (transform refused, or the
    /// server refused and a dead letter records it).
    pub dead_lettered: u64,
    /// Of those, documents absent from the target because its TTL index expired them
    /// ([`ttl`]). Absent from run records written before it existed.
    #[serde(default)]
    pub expired: u64,
    /// Not compared because outside the sample.
    pub sampled_out: u64,
    /// Compared against the target (or, when refused by the transform, against the dead
    /// letters).
    pub compared: u64,
    /// Found equal in pass 1.
    pub matched: u64,
    /// Pass-1 suspects (before recheck).
    pub missing: u64,
    pub differing: u64,
    pub dead_letters_missing: u64,
    /// Documents in the target collection (counted after pass 1).
    pub target: Option<u64>,
}

impl CollectionCounts {
    pub fn named(collection: &str) -> Self {
        Self {
            collection: collection.to_string(),
            ..Default::default()
        }
    }

    fn add(&mut self, o: &CollectionCounts) {
        self.source += o.source;
        self.dead_lettered += o.dead_lettered;
        self.expired += o.expired;
        self.sampled_out += o.sampled_out;
        self.compared += o.compared;
        self.matched += o.matched;
        self.missing += o.missing;
        self.differing += o.differing;
        self.dead_letters_missing += o.dead_letters_missing;
    }
}

/// Counts keyed by target collection.
pub type Counts = BTreeMap<String, CollectionCounts>;

fn bump<'a>(counts: &'a mut Counts, collection: &str) -> &'a mut CollectionCounts {
    counts
        .entry(collection.to_string())
        .or_insert_with(|| CollectionCounts::named(collection))
}

/// The source path a target document would have come from, under the default `keep`
/// identity (DESIGN "Identity"): a root document's `_id` is its Firestore id (path
/// `collection/id`), a subcollection document's `_id` is its relative path. `None` when
/// the id cannot be one (not a string). The recheck confirms the guess by transforming
/// the source document and checking it lands on this very key, so a wrong guess can only
/// make an extra stay an extra.
///
/// This is the inverse of the identity rule in `crate::path`; when mappings with other
/// identities arrive, they must supply their own inverse here (`objectid` keeps the
/// Firestore path in a field).
pub fn source_relative_path(collection: &str, id: &Bson) -> Option<String> {
    let Bson::String(id) = id else { return None };
    let relative = if id.contains('/') {
        id.clone()
    } else {
        format!("{collection}/{id}")
    };
    let ok = DocPath::parse(&relative).is_ok();
    ok.then_some(relative)
}

/// How pass 1 ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// The whole source was compared.
    Complete,
    /// Stopped by `max_docs`; the run record holds the cursor to continue from.
    Paused,
}

/// Live counters for progress lines.
#[derive(Debug, Default)]
pub struct Progress {
    pub docs: AtomicU64,
    pub suspects: AtomicU64,
}

/// Compares a source (the Firestore query source unless told otherwise) with one
/// MongoDB database.
#[derive(Clone)]
pub struct Verifier<S: Source = FirestoreSource> {
    source: S,
    db: Database,
    /// Redacted connection string, for messages.
    uri: String,
    transformer: Transformer,
    config: VerifyConfig,
    /// The target's TTL indexes, listed once per collection.
    ttl: std::sync::Arc<ttl::TtlIndexes>,
}

impl<S: Source> Verifier<S> {
    /// `uri` must already be redacted (it only appears in messages).
    pub fn new(
        source: S,
        db: Database,
        uri: String,
        transformer: Transformer,
        config: VerifyConfig,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            source,
            db,
            uri,
            transformer,
            config,
            ttl: Default::default(),
        })
    }

    pub fn config(&self) -> &VerifyConfig {
        &self.config
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn transformer(&self) -> &Transformer {
        &self.transformer
    }

    /// Whether a TTL index of `collection` may have removed `expected`, which belongs
    /// at `place`, by now. Only whole documents expire: an embedded element is never
    /// removed on its own.
    pub(crate) async fn expired(
        &self,
        collection: &str,
        place: &place::Place,
        expected: &mongodb::bson::RawDocument,
    ) -> Result<bool> {
        if !matches!(place, place::Place::Doc { .. }) {
            return Ok(false);
        }
        let indexes = self
            .ttl
            .of(&self.db, &self.uri, &self.config.retry, collection)
            .await?;
        let now = mongodb::bson::DateTime::now().timestamp_millis();
        Ok(ttl::expired_by(&indexes, expected, now).is_some())
    }
}

/// The map key of an `_id`: its canonical bytes (type included, so `"5"` and `5` differ).
pub fn id_key(id: &Bson) -> Result<Vec<u8>> {
    let raw = RawBson::try_from(id.clone())
        .map_err(|e| Error::Internal(format!("cannot encode _id {id}: {e}")))?;
    canonical_bytes(raw.as_raw_bson_ref())
        .map_err(|e| Error::Internal(format!("cannot encode _id {id}: {e}")))
}

fn malformed(collection: &str, e: compare::RawError) -> Error {
    Error::CorruptState {
        location: collection.to_string(),
        message: format!("malformed BSON: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_path_is_derived_from_the_default_identity() {
        let s = |c: &str, id: Bson| source_relative_path(c, &id);
        assert_eq!(
            s("users", Bson::String("u1".into())).as_deref(),
            Some("users/u1")
        );
        assert_eq!(
            s(
                "content.comments",
                Bson::String("content/c1/comments/k1".into())
            )
            .as_deref(),
            Some("content/c1/comments/k1")
        );
        // Not an identity the default mapping produces: no candidate.
        assert_eq!(s("users", Bson::Int64(5)), None);
        assert_eq!(s("users", Bson::String("a/b/c".into())), None);
    }

    #[test]
    fn id_keys_keep_the_type() {
        assert_ne!(
            id_key(&Bson::String("5".into())).unwrap(),
            id_key(&Bson::Int64(5)).unwrap()
        );
        assert_ne!(
            id_key(&Bson::Int32(5)).unwrap(),
            id_key(&Bson::Int64(5)).unwrap()
        );
        assert_eq!(
            id_key(&Bson::String("u1".into())).unwrap(),
            id_key(&Bson::String("u1".into())).unwrap()
        );
    }

    #[test]
    fn config_is_validated_before_any_io() {
        let ok = VerifyConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            VerifyConfig {
                sample: 0.0,
                ..VerifyConfig::default()
            },
            VerifyConfig {
                sample: 1.5,
                ..VerifyConfig::default()
            },
            VerifyConfig {
                sample: f64::NAN,
                ..VerifyConfig::default()
            },
            VerifyConfig {
                chunk_size: 0,
                ..VerifyConfig::default()
            },
            VerifyConfig {
                in_flight: 0,
                ..VerifyConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
