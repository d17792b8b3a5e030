//! The verifier: proves (or disproves) that the MongoDB target holds what the migration
//! promised, document by document, before cutover.
//!
//! ```text
//! pass 1   FirestoreSource ─► transform (same as migrate) ─► per-collection chunks of ids
//!          ─► find({_id: {$in: chunk}}) ─► canonical compare ─► pending mismatches (store)
//!                                                           └─► ids seen (scratch collection)
//! extras   per target collection: $lookup anti-join against the ids seen ─► pending extras
//! recheck  each pending mismatch: fresh source read + fresh target read ─► confirmed | resolved
//! report   counts per collection + confirmed mismatches with field diffs ─► JSON, HTML, terminal
//! ```
//!
//! * [`compare`] the canonical form, its hash, field diffs and sampling (pure).
//! * [`diff_record`] a field diff as stored and reported.
//! * [`store`] what the verifier keeps in MongoDB: runs (cursor and counts, for resume),
//!   mismatches (pending → confirmed | resolved) and the scratch collection of seen ids.
//! * `recheck` judges each suspect again against fresh reads of both sides.
//! * [`report`] the JSON (`docs/verify-report.md`), HTML and terminal renderings.
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

pub mod compare;
pub mod diff_record;
pub mod place;
mod recheck;
pub mod report;
pub mod store;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use gcloud_sdk::google::firestore::v1::Document;
use mongodb::bson::{doc, Bson, RawBson, RawDocumentBuf};
use mongodb::Database;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mapping::transform::Transformer;
use crate::path::DocPath;
use crate::retry::RetryPolicy;
use crate::source::{FirestoreSource, KeyRange};
use place::{Expected, Place};

use compare::{canonical_bytes, documents_equal, FieldDiff};
use store::{RunRecord, Store};

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

/// One expected document waiting for comparison.
struct Item {
    source_path: String,
    id: Bson,
    /// `None` for a dead-letter check (only existence matters).
    doc: Option<RawDocumentBuf>,
    /// The collection whose counts this item adds to.
    counts_as: String,
    /// Where `doc` is in the target.
    place: Place,
}

/// A batch of items bound for one collection, from one generation.
struct Chunk {
    gen: u64,
    collection: String,
    dead_letters: bool,
    items: Vec<Item>,
    bytes: usize,
}

struct ChunkOutcome {
    gen: u64,
    counts: Counts,
}

/// A generation of pass 1: see the module doc.
struct Generation {
    id: u64,
    /// Name of the last source document read in it.
    last_name: Option<String>,
    docs: u64,
    /// Chunks sent and not yet compared.
    outstanding: usize,
    closed: bool,
    counts: Counts,
}

impl Generation {
    fn new(id: u64) -> Self {
        Self {
            id,
            last_name: None,
            docs: 0,
            outstanding: 0,
            closed: false,
            counts: Counts::new(),
        }
    }
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

/// Compares one Firestore database with one MongoDB database.
#[derive(Clone)]
pub struct Verifier {
    source: FirestoreSource,
    db: Database,
    /// Redacted connection string, for messages.
    uri: String,
    transformer: Transformer,
    config: VerifyConfig,
}

/// Maps a driver error to the library's error with its context.
pub(crate) fn mongo_error(
    operation: &'static str,
    target: String,
    uri: &str,
    e: mongodb::error::Error,
) -> Error {
    Error::Mongo {
        operation,
        target,
        uri: uri.to_string(),
        retryable: crate::mongo::is_retryable(&e),
        message: e.to_string(),
    }
}

impl Verifier {
    /// `uri` must already be redacted (it only appears in messages).
    pub fn new(
        source: FirestoreSource,
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
        })
    }

    pub fn config(&self) -> &VerifyConfig {
        &self.config
    }

    pub fn source(&self) -> &FirestoreSource {
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

    /// Pass 1 from the run's cursor: stream, transform, compare in chunks, record
    /// suspects and seen ids; the run record advances generation by generation.
    pub async fn compare_source(
        &self,
        store: &Store,
        run: &mut RunRecord,
        progress: &Progress,
    ) -> Result<PassEnd> {
        let cfg = &self.config;
        let record_seen = !cfg.sampled();
        let range = KeyRange {
            start_after: run.cursor.clone(),
            ..Default::default()
        };
        let mut docs = Some(self.source.stream(range, cfg.read_ahead));
        let mut buffers: HashMap<String, Chunk> = HashMap::new();
        let mut buffered_bytes = 0usize;
        let mut gens: VecDeque<Generation> = VecDeque::from([Generation::new(0)]);
        let mut next_gen = 1u64;
        let mut queue: VecDeque<Chunk> = VecDeque::new();
        let mut running = FuturesUnordered::new();
        let mut read_here = 0u64;
        let mut paused = false;
        let mut committed: Counts = run
            .collections
            .iter()
            .map(|c| (c.collection.clone(), c.clone()))
            .collect();

        loop {
            while running.len() < cfg.in_flight {
                let Some(chunk) = queue.pop_front() else {
                    break;
                };
                let this = self.clone();
                let store = store.clone();
                running.push(tokio::spawn(async move {
                    this.compare_chunk(&store, chunk, record_seen).await
                }));
            }
            if docs.is_none() && queue.is_empty() && running.is_empty() {
                break;
            }
            let can_read = docs.is_some() && queue.is_empty() && running.len() < cfg.in_flight;
            tokio::select! {
                biased;
                joined = running.next(), if !running.is_empty() => {
                    let outcome = joined
                        .expect("non-empty")
                        .map_err(|e| Error::Config(format!("verify task failed: {e}")))??;
                    let g = gens
                        .iter_mut()
                        .find(|g| g.id == outcome.gen)
                        .expect("a chunk's generation stays open until it is compared");
                    g.outstanding -= 1;
                    for (name, c) in &outcome.counts {
                        bump(&mut g.counts, name).add(c);
                        progress
                            .suspects
                            .fetch_add(c.missing + c.differing + c.dead_letters_missing, Ordering::Relaxed);
                    }
                }
                doc = recv(&mut docs), if can_read => {
                    match doc {
                        Some(doc) => {
                            let doc = doc?;
                            self.take(doc, gens.back_mut().expect("one open generation"), &mut buffers, &mut buffered_bytes, &mut queue)?;
                            read_here += 1;
                            progress.docs.fetch_add(1, Ordering::Relaxed);
                            if buffered_bytes > cfg.buffer_bytes {
                                // Many collections interleave in `__name__` order; sending
                                // the largest partial chunk keeps memory bounded without
                                // making chunks tiny.
                                let largest = buffers
                                    .iter()
                                    .max_by_key(|(_, c)| c.bytes)
                                    .map(|(k, _)| k.clone())
                                    .expect("bytes are buffered");
                                let c = buffers.remove(&largest).expect("present");
                                buffered_bytes -= c.bytes;
                                gens.back_mut().expect("open").outstanding += 1;
                                queue.push_back(c);
                            }
                            if cfg.max_docs.is_some_and(|m| read_here >= m) {
                                paused = true;
                                docs = None; // dropping the receiver stops the reader
                            }
                        }
                        None => docs = None,
                    }
                    let g = gens.back_mut().expect("open");
                    if docs.is_none() || g.docs >= cfg.checkpoint_docs {
                        // Close the generation: its partial chunks go out now.
                        g.closed = true;
                        for (_, c) in buffers.drain() {
                            g.outstanding += 1;
                            queue.push_back(c);
                        }
                        buffered_bytes = 0;
                        if docs.is_some() {
                            gens.push_back(Generation::new(next_gen));
                            next_gen += 1;
                        }
                    }
                }
            }
            // Commit every finished generation at the front, in order.
            let mut advanced = false;
            while gens.front().is_some_and(|g| g.closed && g.outstanding == 0) {
                let g = gens.pop_front().expect("checked");
                for (name, c) in &g.counts {
                    bump(&mut committed, name).add(c);
                }
                if g.last_name.is_some() {
                    run.cursor = g.last_name;
                }
                run.docs += g.docs;
                advanced = true;
            }
            if advanced {
                run.collections = committed.values().cloned().collect();
                store.save_run(run).await?;
            }
        }
        Ok(if paused {
            PassEnd::Paused
        } else {
            PassEnd::Complete
        })
    }

    /// Routes one source document into a chunk buffer (or only counts it).
    fn take(
        &self,
        doc: Document,
        gen: &mut Generation,
        buffers: &mut HashMap<String, Chunk>,
        buffered_bytes: &mut usize,
        queue: &mut VecDeque<Chunk>,
    ) -> Result<()> {
        gen.docs += 1;
        let sampled = compare::in_sample(&doc.name, self.config.sample);
        let expected = self
            .transformer
            .apply(&doc)
            .map(|t| Expected::from_transformed(t).map_err(|e| (doc.name.clone(), e)));
        let (collection, counts_as, dead_letters, item) = match expected {
            Ok(Ok(e)) => {
                let c = bump(&mut gen.counts, &e.collection);
                c.source += 1;
                let item = Item {
                    source_path: doc.name.clone(),
                    id: e.id,
                    doc: Some(e.doc),
                    counts_as: e.collection.clone(),
                    place: e.place,
                };
                (e.collection.clone(), e.collection, false, item)
            }
            Ok(Err((name, e))) => {
                // The transform produced it, so this is a bug, not bad data: stop loudly.
                return Err(Error::Config(format!(
                    "malformed transformed document for {name}: {e}"
                )));
            }
            Err(r) => {
                let counts_as = r
                    .pattern
                    .as_ref()
                    .map(|p| p.default_target())
                    .unwrap_or_else(|| UNPARSEABLE.to_string());
                let c = bump(&mut gen.counts, &counts_as);
                c.source += 1;
                c.dead_lettered += 1;
                let item = Item {
                    id: Bson::String(r.source_path.clone()),
                    source_path: r.source_path,
                    doc: None,
                    counts_as: counts_as.clone(),
                    place: Place::Doc { strip: Vec::new() },
                };
                (
                    self.config.dead_letter_collection.clone(),
                    counts_as,
                    true,
                    item,
                )
            }
        };
        gen.last_name = Some(doc.name);
        let c = bump(&mut gen.counts, &counts_as);
        if !sampled {
            c.sampled_out += 1;
            return Ok(());
        }
        c.compared += 1;
        let bytes = item.doc.as_ref().map_or(0, |d| d.as_bytes().len()) + item.source_path.len();
        let chunk = buffers.entry(collection.clone()).or_insert_with(|| Chunk {
            gen: gen.id,
            collection: collection.clone(),
            dead_letters,
            items: Vec::new(),
            bytes: 0,
        });
        chunk.items.push(item);
        chunk.bytes += bytes;
        *buffered_bytes += bytes;
        if chunk.items.len() >= self.config.chunk_size {
            let full = buffers.remove(&collection).expect("present");
            *buffered_bytes -= full.bytes;
            gen.outstanding += 1;
            queue.push_back(full);
        }
        Ok(())
    }

    /// Fetches the target documents of a chunk and compares; stores suspects and seen ids.
    async fn compare_chunk(
        &self,
        store: &Store,
        chunk: Chunk,
        record_seen: bool,
    ) -> Result<ChunkOutcome> {
        let mut counts = Counts::new();
        let mut suspects: Vec<Mismatch> = Vec::new();
        let ids: Vec<Bson> = chunk.items.iter().map(|i| i.id.clone()).collect();
        if chunk.dead_letters {
            let present = self.fetch_ids(&chunk.collection, &ids).await?;
            for item in &chunk.items {
                if !present.contains_key(&id_key(&item.id)?) {
                    bump(&mut counts, &item.counts_as).dead_letters_missing += 1;
                    suspects.push(Mismatch {
                        kind: Kind::DeadLetterMissing,
                        collection: chunk.collection.clone(),
                        id: item.id.clone(),
                        source_path: Some(item.source_path.clone()),
                    });
                }
            }
            store.insert_pending(&suspects).await?;
            return Ok(ChunkOutcome {
                gen: chunk.gen,
                counts,
            });
        }
        // Every item of a chunk has the same kind of place (a row is either a collection
        // or one embedded array), so one query serves the chunk.
        let fetch_collection = chunk
            .items
            .first()
            .map(|i| i.place.fetch_key(&chunk.collection, &i.id).0.to_string())
            .unwrap_or_else(|| chunk.collection.clone());
        let fetch_ids: Vec<Bson> = chunk
            .items
            .iter()
            .map(|i| i.place.fetch_key(&chunk.collection, &i.id).1.clone())
            .collect();
        let actual = self.fetch_docs(&fetch_collection, &fetch_ids).await?;
        let mut seen = Vec::new();
        let mut absent: Vec<&Item> = Vec::new();
        for item in &chunk.items {
            let expected = item.doc.as_ref().expect("target chunks carry documents");
            let c = bump(&mut counts, &item.counts_as);
            let fetched = actual.get(&id_key(
                item.place.fetch_key(&chunk.collection, &item.id).1,
            )?);
            let found = match fetched {
                Some(f) => item
                    .place
                    .view(&item.id, f)
                    .map_err(|e| malformed(&chunk.collection, e))?,
                None => None,
            };
            match found {
                None => absent.push(item),
                Some(found) => {
                    // Embedded rows take no part in the extras scan (it scans collections).
                    if matches!(item.place, Place::Doc { .. }) {
                        seen.push(item.id.clone());
                    }
                    if documents_equal(expected, &found)
                        .map_err(|e| malformed(&chunk.collection, e))?
                    {
                        c.matched += 1;
                    } else {
                        c.differing += 1;
                        suspects.push(Mismatch {
                            kind: Kind::Differing,
                            collection: chunk.collection.clone(),
                            id: item.id.clone(),
                            source_path: Some(item.source_path.clone()),
                        });
                    }
                }
            }
        }
        if !absent.is_empty() {
            // A document the server refused is dead-lettered by migrate (rule `sink`):
            // accounted for, not missing.
            let paths: Vec<Bson> = absent
                .iter()
                .map(|i| Bson::String(i.source_path.clone()))
                .collect();
            let dead = self
                .fetch_ids(&self.config.dead_letter_collection, &paths)
                .await?;
            for item in absent {
                let c = bump(&mut counts, &item.counts_as);
                if dead.contains_key(&id_key(&Bson::String(item.source_path.clone()))?) {
                    c.dead_lettered += 1;
                } else {
                    c.missing += 1;
                    suspects.push(Mismatch {
                        kind: Kind::Missing,
                        collection: chunk.collection.clone(),
                        id: item.id.clone(),
                        source_path: Some(item.source_path.clone()),
                    });
                }
            }
        }
        if record_seen {
            store.insert_seen(&chunk.collection, &seen).await?;
        }
        store.insert_pending(&suspects).await?;
        Ok(ChunkOutcome {
            gen: chunk.gen,
            counts,
        })
    }

    /// The target documents with these `_id`s, keyed by [`id_key`].
    async fn fetch_docs(
        &self,
        collection: &str,
        ids: &[Bson],
    ) -> Result<HashMap<Vec<u8>, RawDocumentBuf>> {
        // The update-time guard (dual writes, `migrate --guard-update-time`) is
        // bookkeeping, not data: compare without it.
        let projection = doc! { crate::sink::guard::GUARD_FIELD: 0 };
        self.fetch(collection, ids, Some(projection)).await
    }

    /// Which of these `_id`s exist (values are just the `_id`).
    async fn fetch_ids(
        &self,
        collection: &str,
        ids: &[Bson],
    ) -> Result<HashMap<Vec<u8>, RawDocumentBuf>> {
        self.fetch(collection, ids, Some(doc! {"_id": 1})).await
    }

    async fn fetch(
        &self,
        collection: &str,
        ids: &[Bson],
        projection: Option<mongodb::bson::Document>,
    ) -> Result<HashMap<Vec<u8>, RawDocumentBuf>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let coll = self.db.collection::<RawDocumentBuf>(collection);
        let target = format!("{}.{collection}", self.db.name());
        let docs: Vec<RawDocumentBuf> = self
            .config
            .retry
            .run(
                || format!("read {} documents from {target}", ids.len()),
                || async {
                    let mut find = coll
                        .find(doc! {"_id": {"$in": ids}})
                        .batch_size(ids.len().min(10_000) as u32);
                    if let Some(p) = &projection {
                        find = find.projection(p.clone());
                    }
                    let cursor = find
                        .await
                        .map_err(|e| mongo_error("find", target.clone(), &self.uri, e))?;
                    cursor
                        .try_collect()
                        .await
                        .map_err(|e| mongo_error("find", target.clone(), &self.uri, e))
                },
            )
            .await?;
        let mut out = HashMap::with_capacity(docs.len());
        for d in docs {
            let id = d
                .get("_id")
                .map_err(|e| malformed(collection, e))?
                .ok_or_else(|| Error::Config(format!("a document of {target} has no _id")))?;
            let key = canonical_bytes(id).map_err(|e| malformed(collection, e))?;
            out.insert(key, d);
        }
        Ok(out)
    }
}

async fn recv(
    docs: &mut Option<tokio::sync::mpsc::Receiver<Result<Document>>>,
) -> Option<Result<Document>> {
    match docs {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The map key of an `_id`: its canonical bytes (type included, so `"5"` and `5` differ).
pub fn id_key(id: &Bson) -> Result<Vec<u8>> {
    let raw = RawBson::try_from(id.clone())
        .map_err(|e| Error::Config(format!("cannot encode _id {id}: {e}")))?;
    canonical_bytes(raw.as_raw_bson_ref())
        .map_err(|e| Error::Config(format!("cannot encode _id {id}: {e}")))
}

fn malformed(collection: &str, e: compare::RawError) -> Error {
    Error::Config(format!("malformed BSON in {collection}: {e}"))
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
