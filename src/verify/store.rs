//! What the verifier keeps in its *state database*, so that memory stays bounded and a
//! run can resume. The state database is never the target database: verify only reads
//! the target (it needs no write access there, and a mistyped `--database` creates
//! nothing). [`Store`] reads the target through `target` and writes only to `state`.
//!
//! * `_fireshift_verify_runs`: one record per run — what it compares (project, databases,
//!   sample, transform fingerprint), its state (`comparing → extras → recheck → done`),
//!   the pass-1 cursor and the counts up to it.
//! * `_fireshift_verify_mismatches`: one record per suspected mismatch, keyed by
//!   `{r: run, c: collection, i: _id}` so that finding it twice (a resumed generation)
//!   stores it once; `state` goes `pending → confirmed | resolved` in the recheck, which
//!   adds the hashes and field diffs. Kept after the run for audit (the report lists at
//!   most `--max-listed`; the store has them all); drop the collection when done with it.
//! * `_fireshift_verify_seen_<run>`: scratch, `{c: collection, i: _id}` for every
//!   expected document found in the target; the extras scan streams each target
//!   collection's `_id`s and looks each batch up in it (`$in` on the indexed `i`: a
//!   `$lookup` cannot join across databases). Dropped when the run is done.

use futures::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use serde::{Deserialize, Serialize};

use super::diff_record::DiffRecord;
use super::{CollectionCounts, Finding, Kind, Mismatch, Recheck, UNPARSEABLE};
use crate::error::{Error, Result};
use crate::path::DocPath;
use crate::retry::RetryPolicy;

pub const RUNS_COLLECTION: &str = crate::own::VERIFY_RUNS;
pub const MISMATCHES_COLLECTION: &str = crate::own::VERIFY_MISMATCHES;
pub const SEEN_PREFIX: &str = crate::own::VERIFY_SEEN_PREFIX;
/// Version of the run record layout; a resume of another version is refused.
pub const RUN_RECORD_VERSION: i32 = 1;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Pass 1: streaming the source from `cursor`.
    Comparing,
    /// Counting target collections and scanning them for extras (redone whole on resume).
    Extras,
    /// Rechecking pending mismatches (resume continues with those still pending).
    Recheck,
    /// Finished; the report can be rendered again from the store.
    Done,
}

/// The durable state of one verify run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub version: i32,
    pub project: String,
    pub firestore_database: String,
    pub database: String,
    /// The export compared (its path as given), for a `--from-export` run: a live run
    /// and an export run never resume each other (their positions differ in kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<String>,
    pub sample: f64,
    /// The transform's fingerprint: a resume with other rules is refused.
    pub transform: String,
    pub dead_letter_collection: String,
    pub state: RunState,
    /// Where pass 1 stands: every source document up to it was compared and its
    /// suspects stored. Records from before positions existed hold only `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<crate::source::Position>,
    /// The last source document name compared with everything before it (the position
    /// of a `__name__`-ordered source), kept for older readers and messages.
    pub cursor: Option<String>,
    /// Source documents up to the position.
    pub docs: u64,
    pub collections: Vec<CollectionCounts>,
    pub started_at: DateTime,
    pub updated_at: DateTime,
    pub finished_at: Option<DateTime>,
    /// How many times the run was started or resumed.
    pub invocations: u32,
}

impl RunRecord {
    /// Where pass 1 resumes: the stored position, or an older record's cursor.
    pub fn resume_position(&self) -> Option<crate::source::Position> {
        self.position
            .clone()
            .or_else(|| self.cursor.clone().map(crate::source::Position::after))
    }

    /// Moves pass 1's position (and the `cursor` older readers see).
    pub fn set_position(&mut self, position: crate::source::Position) {
        self.cursor = Some(position.name().to_string());
        self.position = Some(position);
    }
}

/// One row of the mismatch tally: how many records of a kind and state a collection has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The collection the mismatch counts against (for a missing dead letter: the
    /// collection the source document would have landed in).
    pub collection: String,
    pub kind: Kind,
    pub state: String,
    pub n: u64,
}

/// A stored finding, as the report lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredFinding {
    pub c: String,
    pub i: Bson,
    pub kind: Kind,
    pub source_path: Option<String>,
    pub expected_hash: Option<String>,
    pub actual_hash: Option<String>,
    pub note: Option<String>,
    #[serde(default)]
    pub diffs: Vec<DiffRecord>,
    #[serde(default)]
    pub diffs_omitted: u64,
}

/// Access to the verifier's collections for one run: its own in the state database,
/// the compared ones (read only) in the target database.
#[derive(Clone)]
pub struct Store {
    /// Where runs, mismatches and the scratch collection live (written).
    state: Database,
    /// The database being verified (only read).
    target: Database,
    /// Redacted.
    uri: String,
    run_id: String,
    retry: RetryPolicy,
}

impl Store {
    /// `state` must not be `target` (see the module docs); refused otherwise.
    pub fn new(
        state: Database,
        target: Database,
        uri: String,
        run_id: String,
        retry: RetryPolicy,
    ) -> Result<Self> {
        if state.name() == target.name() {
            return Err(Error::Config(format!(
                "the verifier's state database must not be the verified database `{}`",
                target.name()
            )));
        }
        Ok(Self {
            state,
            target,
            uri,
            run_id,
            retry,
        })
    }

    pub fn state_database(&self) -> &Database {
        &self.state
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn seen_collection(&self) -> String {
        format!("{SEEN_PREFIX}{}", self.run_id)
    }

    /// `database.collection` of one of the verifier's own collections.
    fn own(&self, collection: &str) -> String {
        format!("{}.{collection}", self.state.name())
    }

    /// `database.collection` of a verified collection.
    fn target(&self, collection: &str) -> String {
        format!("{}.{collection}", self.target.name())
    }

    /// An error on one of the verifier's own collections.
    fn err(&self, op: &'static str, collection: &str, e: mongodb::error::Error) -> Error {
        crate::mongo::error(op, self.own(collection), &self.uri, e)
    }

    /// An error on a verified collection.
    fn target_err(&self, op: &'static str, collection: &str, e: mongodb::error::Error) -> Error {
        crate::mongo::error(op, self.target(collection), &self.uri, e)
    }

    /// Creates the indexes the verifier's queries rely on (idempotent).
    pub async fn ensure_indexes(&self) -> Result<()> {
        let seen = self.seen_collection();
        self.retry
            .run(
                || "create the verifier's indexes".into(),
                || async {
                    self.state
                        .collection::<Document>(MISMATCHES_COLLECTION)
                        .create_index(
                            IndexModel::builder()
                                .keys(doc! {"run": 1, "state": 1, "c": 1})
                                .options(
                                    IndexOptions::builder()
                                        .name("run_state_c".to_string())
                                        .build(),
                                )
                                .build(),
                        )
                        .await
                        .map_err(|e| self.err("createIndexes", MISMATCHES_COLLECTION, e))?;
                    self.state
                        .collection::<Document>(&seen)
                        .create_index(IndexModel::builder().keys(doc! {"i": 1}).build())
                        .await
                        .map_err(|e| self.err("createIndexes", &seen, e))?;
                    Ok(())
                },
            )
            .await
    }

    /// The most recent unfinished run comparing this source with this target.
    pub async fn latest_unfinished(
        db: &Database,
        uri: &str,
        project: &str,
        firestore_database: &str,
        database: &str,
        export: Option<&str>,
    ) -> Result<Option<RunRecord>> {
        // `null` also matches records without the field (live runs, older records).
        db.collection::<RunRecord>(RUNS_COLLECTION)
            .find_one(doc! {
                "project": project,
                "firestore_database": firestore_database,
                "database": database,
                "export": export,
                "state": {"$ne": "done"},
            })
            .sort(doc! {"started_at": -1})
            .await
            .map_err(|e| {
                crate::mongo::error("find", format!("{}.{RUNS_COLLECTION}", db.name()), uri, e)
            })
    }

    pub async fn load_run(db: &Database, uri: &str, id: &str) -> Result<Option<RunRecord>> {
        db.collection::<RunRecord>(RUNS_COLLECTION)
            .find_one(doc! {"_id": id})
            .await
            .map_err(|e| {
                crate::mongo::error("find", format!("{}.{RUNS_COLLECTION}", db.name()), uri, e)
            })
    }

    /// Writes the run record (whole-document replacement, so a retry is harmless).
    pub async fn save_run(&self, run: &mut RunRecord) -> Result<()> {
        run.updated_at = DateTime::now();
        let coll = self.state.collection::<RunRecord>(RUNS_COLLECTION);
        self.retry
            .run(
                || format!("save verify run {}", run.id),
                || async {
                    coll.replace_one(doc! {"_id": &run.id}, &*run)
                        .upsert(true)
                        .await
                        .map_err(|e| self.err("replace", RUNS_COLLECTION, e))
                },
            )
            .await?;
        Ok(())
    }

    /// Runs an `insert` or `update` command, retried; write errors with a code in
    /// `tolerated` are ignored (duplicate keys of an idempotent insert).
    async fn write_command(
        &self,
        op: &'static str,
        collection: &str,
        cmd: Document,
        tolerated: &[i32],
    ) -> Result<()> {
        let reply = self
            .retry
            .run(
                || format!("{op} into {}", self.own(collection)),
                || async {
                    self.state
                        .run_command(cmd.clone())
                        .await
                        .map_err(|e| self.err(op, collection, e))
                },
            )
            .await?;
        if let Ok(errors) = reply.get_array("writeErrors") {
            for e in errors.iter().filter_map(Bson::as_document) {
                let code = match e.get("code") {
                    Some(Bson::Int32(c)) => *c,
                    Some(Bson::Int64(c)) => *c as i32,
                    _ => 0,
                };
                if !tolerated.contains(&code) {
                    return Err(Error::Mongo {
                        operation: op,
                        target: self.own(collection),
                        uri: self.uri.clone(),
                        message: format!(
                            "write error {code}: {}",
                            e.get_str("errmsg").unwrap_or("")
                        ),
                        retryable: false,
                    });
                }
            }
        }
        Ok(())
    }

    fn key(&self, m: &Mismatch) -> Document {
        doc! {"r": &self.run_id, "c": &m.collection, "i": m.id.clone()}
    }

    /// Records suspects as pending (a suspect already recorded is left as it is).
    pub async fn insert_pending(&self, mismatches: &[Mismatch]) -> Result<()> {
        if mismatches.is_empty() {
            return Ok(());
        }
        let now = DateTime::now();
        let docs: Vec<Document> = mismatches
            .iter()
            .map(|m| {
                doc! {
                    "_id": self.key(m),
                    "run": &self.run_id,
                    "c": &m.collection,
                    "i": m.id.clone(),
                    "counts_as": counts_as(m),
                    "kind": m.kind.as_str(),
                    "source_path": m.source_path.clone(),
                    "state": "pending",
                    "found_at": now,
                }
            })
            .collect();
        let cmd = doc! {"insert": MISMATCHES_COLLECTION, "documents": docs, "ordered": false};
        self.write_command("insert", MISMATCHES_COLLECTION, cmd, &[11000])
            .await
    }

    /// Records target ids found in `collection` (for the extras anti-join).
    pub async fn insert_seen(&self, collection: &str, ids: &[Bson]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let seen = self.seen_collection();
        let docs: Vec<Document> = ids
            .iter()
            .map(|i| doc! {"_id": ObjectId::new(), "c": collection, "i": i.clone()})
            .collect();
        let cmd = doc! {"insert": &seen, "documents": docs, "ordered": false};
        self.write_command("insert", &seen, cmd, &[]).await
    }

    /// Target collections to compare: every collection but fireshift's own, the dead
    /// letters (which may be named otherwise) and `system.*`.
    pub async fn target_collections(&self, dead_letters: &str) -> Result<Vec<String>> {
        let mut names = self
            .retry
            .run(
                || format!("list the collections of {}", self.target.name()),
                || async {
                    self.target
                        .list_collection_names()
                        .await
                        .map_err(|e| self.target_err("listCollections", "*", e))
                },
            )
            .await?;
        names.retain(|n| {
            !n.starts_with(super::OWN_COLLECTION_PREFIX)
                && !n.starts_with("system.")
                && n != dead_letters
        });
        names.sort();
        Ok(names)
    }

    /// Documents in a collection (exact count), holders of embedded children whose
    /// parent is absent not included (`holds`: the arrays embedded children fill there;
    /// see [`crate::sink::holder`]).
    pub async fn count(&self, collection: &str, holds: &[String]) -> Result<u64> {
        let coll = self.target.collection::<Document>(collection);
        let filter = crate::sink::holder::not_holding(holds, crate::sink::guard::GUARD_FIELD);
        self.retry
            .run(
                || format!("count {}", self.target(collection)),
                || async {
                    coll.count_documents(filter.clone())
                        .await
                        .map_err(|e| self.target_err("count", collection, e))
                },
            )
            .await
    }

    /// Elements of the array `field` over every document of `collection` (embedded
    /// children); a document without the array holds none.
    pub async fn count_elements(&self, collection: &str, field: &str) -> Result<u64> {
        let coll = self.target.collection::<Document>(collection);
        let path = format!("${field}");
        let pipeline = vec![doc! { "$group": {
            "_id": Bson::Null,
            "n": { "$sum": { "$cond": [ { "$isArray": &path }, { "$size": &path }, 0 ] } },
        } }];
        self.retry
            .run(
                || format!("count the elements of {}.{field}", self.target(collection)),
                || async {
                    let mut cursor = coll
                        .aggregate(pipeline.clone())
                        .await
                        .map_err(|e| self.target_err("aggregate", collection, e))?;
                    let first = cursor
                        .try_next()
                        .await
                        .map_err(|e| self.target_err("aggregate", collection, e))?;
                    Ok(first.map_or(0, |d| match d.get("n") {
                        Some(Bson::Int32(n)) => *n as u64,
                        Some(Bson::Int64(n)) => *n as u64,
                        Some(Bson::Double(n)) => *n as u64,
                        _ => 0,
                    }))
                },
            )
            .await
    }

    /// Streams the documents of `collection` that no expected document matched into
    /// pending `extra` mismatches, `batch` at a time: the target's `_id`s are read in
    /// batches and each batch is looked up in the seen ids of the state database (one
    /// `$in` on the indexed `i`), so memory holds one batch. Returns how many. Redone
    /// whole on resume: the pending records are keyed, so a second scan stores nothing
    /// twice. A holder of embedded children is not an extra (its children are compared
    /// on their own rows); a holder that holds nothing is.
    pub async fn scan_extras(
        &self,
        collection: &str,
        holds: &[String],
        batch: usize,
    ) -> Result<u64> {
        let coll = self.target.collection::<Document>(collection);
        let filter = crate::sink::holder::not_holding(holds, crate::sink::guard::GUARD_FIELD);
        let batch = batch.max(1);
        // A failed scan is restarted from the beginning (idempotent), so the retry
        // wraps the whole scan.
        self.retry
            .run(
                || format!("scan {} for extra documents", self.target(collection)),
                || async {
                    let mut cursor = coll
                        .find(filter.clone())
                        .projection(doc! {"_id": 1})
                        .batch_size(batch as u32)
                        .await
                        .map_err(|e| self.target_err("find", collection, e))?;
                    let mut n = 0u64;
                    let mut ids = Vec::with_capacity(batch);
                    loop {
                        let next = cursor
                            .try_next()
                            .await
                            .map_err(|e| self.target_err("find", collection, e))?;
                        let end = next.is_none();
                        if let Some(d) = next {
                            ids.push(d.get("_id").cloned().unwrap_or(Bson::Null));
                        }
                        if ids.len() >= batch || (end && !ids.is_empty()) {
                            let unseen = self.unseen(collection, &ids).await?;
                            n += unseen.len() as u64;
                            let extras: Vec<Mismatch> = unseen
                                .into_iter()
                                .map(|id| Mismatch {
                                    kind: Kind::Extra,
                                    collection: collection.to_string(),
                                    id,
                                    source_path: None,
                                })
                                .collect();
                            self.insert_pending(&extras).await?;
                            ids.clear();
                        }
                        if end {
                            return Ok(n);
                        }
                    }
                },
            )
            .await
    }

    /// The ids of `ids` that pass 1 did not see in `collection`.
    async fn unseen(&self, collection: &str, ids: &[Bson]) -> Result<Vec<Bson>> {
        let seen = self.seen_collection();
        let found: Vec<Document> = self
            .state
            .collection::<Document>(&seen)
            .find(doc! {"c": collection, "i": {"$in": ids}})
            .projection(doc! {"_id": 0, "i": 1})
            .await
            .map_err(|e| self.err("find", &seen, e))?
            .try_collect()
            .await
            .map_err(|e| self.err("find", &seen, e))?;
        // Compared by canonical bytes (type included), as pass 1 keys ids: `$in`
        // matches 5 and 5.0 alike, and a seen id has the bytes of the target `_id` it
        // was found under.
        let found: std::collections::HashSet<Vec<u8>> = found
            .iter()
            .filter_map(|d| d.get("i"))
            .map(super::id_key)
            .collect::<Result<_>>()?;
        let mut out = Vec::new();
        for id in ids {
            if !found.contains(&super::id_key(id)?) {
                out.push(id.clone());
            }
        }
        Ok(out)
    }

    /// Up to `n` pending mismatches of this run.
    pub async fn pending(&self, n: usize) -> Result<Vec<Mismatch>> {
        let coll = self.state.collection::<Document>(MISMATCHES_COLLECTION);
        let docs: Vec<Document> = self
            .retry
            .run(
                || "read pending mismatches".into(),
                || async {
                    coll.find(doc! {"run": &self.run_id, "state": "pending"})
                        .limit(n as i64)
                        .await
                        .map_err(|e| self.err("find", MISMATCHES_COLLECTION, e))?
                        .try_collect()
                        .await
                        .map_err(|e| self.err("find", MISMATCHES_COLLECTION, e))
                },
            )
            .await?;
        docs.into_iter()
            .map(|d| {
                let kind: Kind =
                    mongodb::bson::from_bson(d.get("kind").cloned().unwrap_or(Bson::Null))
                        .map_err(|e| Error::CorruptState {
                            location: MISMATCHES_COLLECTION.into(),
                            message: format!("bad mismatch record {d}: {e}"),
                        })?;
                Ok(Mismatch {
                    kind,
                    collection: d.get_str("c").unwrap_or_default().to_string(),
                    id: d.get("i").cloned().unwrap_or(Bson::Null),
                    source_path: d.get_str("source_path").ok().map(str::to_string),
                })
            })
            .collect()
    }

    /// Stores the recheck's verdicts (one `update` command for the batch).
    pub async fn record_verdicts(
        &self,
        mismatches: &[Mismatch],
        verdicts: &[Recheck],
    ) -> Result<()> {
        let now = DateTime::now();
        let mut updates = Vec::with_capacity(mismatches.len());
        for (m, v) in mismatches.iter().zip(verdicts) {
            let set = match v {
                Recheck::Resolved => doc! {"state": "resolved", "checked_at": now},
                Recheck::Confirmed(f) => finding_fields(f, now)?,
            };
            updates.push(doc! {"q": {"_id": self.key(m)}, "u": {"$set": set}});
        }
        if updates.is_empty() {
            return Ok(());
        }
        let cmd = doc! {"update": MISMATCHES_COLLECTION, "updates": updates, "ordered": false};
        self.write_command("update", MISMATCHES_COLLECTION, cmd, &[])
            .await
    }

    /// Counts of this run's mismatch records by collection, kind and state.
    pub async fn tally(&self) -> Result<Vec<Tally>> {
        let pipeline = vec![
            doc! {"$match": {"run": &self.run_id}},
            doc! {"$group": {"_id": {"c": "$counts_as", "k": "$kind", "s": "$state"}, "n": {"$sum": 1}}},
        ];
        let coll = self.state.collection::<Document>(MISMATCHES_COLLECTION);
        let rows: Vec<Document> = self
            .retry
            .run(
                || "tally mismatches".into(),
                || async {
                    coll.aggregate(pipeline.clone())
                        .await
                        .map_err(|e| self.err("aggregate", MISMATCHES_COLLECTION, e))?
                        .try_collect()
                        .await
                        .map_err(|e| self.err("aggregate", MISMATCHES_COLLECTION, e))
                },
            )
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let id = r.get_document("_id").cloned().unwrap_or_default();
            let kind: Kind = mongodb::bson::from_bson(id.get("k").cloned().unwrap_or(Bson::Null))
                .map_err(|e| Error::CorruptState {
                location: MISMATCHES_COLLECTION.into(),
                message: format!("bad mismatch tally {r}: {e}"),
            })?;
            let n = match r.get("n") {
                Some(Bson::Int32(n)) => *n as u64,
                Some(Bson::Int64(n)) => *n as u64,
                Some(Bson::Double(n)) => *n as u64,
                _ => 0,
            };
            out.push(Tally {
                collection: id.get_str("c").unwrap_or_default().to_string(),
                kind,
                state: id.get_str("s").unwrap_or_default().to_string(),
                n,
            });
        }
        Ok(out)
    }

    /// Every confirmed finding of the run in (collection, _id) order, as a cursor (the
    /// report writes them as they come).
    pub async fn confirmed(&self) -> Result<mongodb::Cursor<StoredFinding>> {
        self.state
            .collection::<StoredFinding>(MISMATCHES_COLLECTION)
            .find(doc! {"run": &self.run_id, "state": "confirmed"})
            .sort(doc! {"c": 1, "i": 1})
            .await
            .map_err(|e| self.err("find", MISMATCHES_COLLECTION, e))
    }

    /// The first `limit` confirmed findings that count against `collection` (a report
    /// row), in `_id` order.
    pub async fn confirmed_in(
        &self,
        collection: &str,
        limit: usize,
    ) -> Result<mongodb::Cursor<StoredFinding>> {
        self.state
            .collection::<StoredFinding>(MISMATCHES_COLLECTION)
            .find(doc! {"run": &self.run_id, "state": "confirmed", "counts_as": collection})
            .sort(doc! {"c": 1, "i": 1})
            .limit(limit as i64)
            .await
            .map_err(|e| self.err("find", MISMATCHES_COLLECTION, e))
    }

    /// Drops the scratch collection of seen ids.
    pub async fn drop_seen(&self) -> Result<()> {
        self.drop_collection(&self.seen_collection()).await
    }

    async fn drop_collection(&self, name: &str) -> Result<()> {
        self.state
            .collection::<Document>(name)
            .drop()
            .await
            .map_err(|e| self.err("drop", name, e))
    }

    /// Drops the scratch collections of other runs that are finished (or gone): left
    /// behind when a process stopped between finishing a run and dropping its scratch.
    /// Unfinished runs keep theirs (they may be resumed).
    pub async fn drop_stale_scratch(&self) -> Result<Vec<String>> {
        let names = self
            .state
            .list_collection_names()
            .await
            .map_err(|e| self.err("listCollections", "*", e))?;
        let mut dropped = Vec::new();
        for name in names {
            let Some(run) = name.strip_prefix(SEEN_PREFIX) else {
                continue;
            };
            if run == self.run_id {
                continue;
            }
            let finished = match Self::load_run(&self.state, &self.uri, run).await? {
                None => true,
                Some(r) => r.state == RunState::Done,
            };
            if finished {
                self.drop_collection(&name).await?;
                dropped.push(name);
            }
        }
        Ok(dropped)
    }
}

/// The collection a mismatch counts against in the report.
fn counts_as(m: &Mismatch) -> String {
    if m.kind != Kind::DeadLetterMissing {
        return m.collection.clone();
    }
    m.source_path
        .as_deref()
        .and_then(|p| DocPath::parse(p).ok())
        .map(|p| p.pattern().default_target())
        .unwrap_or_else(|| UNPARSEABLE.to_string())
}

fn finding_fields(f: &Finding, now: DateTime) -> Result<Document> {
    let diffs: Vec<Bson> = f
        .diffs
        .iter()
        .map(|d| {
            mongodb::bson::to_bson(&DiffRecord::from_diff(d))
                .map_err(|e| Error::Internal(format!("cannot encode a field diff: {e}")))
        })
        .collect::<Result<_>>()?;
    Ok(doc! {
        "state": "confirmed",
        "kind": f.mismatch.kind.as_str(),
        "source_path": f.mismatch.source_path.clone(),
        "expected_hash": f.expected_hash.clone(),
        "actual_hash": f.actual_hash.clone(),
        "note": f.note.clone(),
        "diffs": diffs,
        "diffs_omitted": f.diffs_omitted as i64,
        "checked_at": now,
    })
}
