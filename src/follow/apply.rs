//! Applying the follower's changes to MongoDB: states through the mappings with the
//! update-time guard, deletes as guarded removals with tombstones, each recorded in the
//! job's ledger ([`crate::ledger`]) after the write it records. Also the two passes
//! over the ledger: the absences of a completed resend, and the tombstones once the
//! copy has ended. Everything in bounded chunks.

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use gcloud_sdk::google::firestore::v1::Document;
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use mongodb::Collection;

use crate::error::{Error, Result};
use crate::follow::record::FollowCounts;
use crate::ledger::{group_of, place, Entry, Ledger, LEDGER_COLLECTION};
use crate::mapping::item::WriteItem;
use crate::mapping::transform::Transformer;
use crate::mapping::MappingSet;
use crate::path::relative_path;
use crate::sink::delete::Removal;
use crate::sink::guard::{stamp_transformed_at, timestamp_nanos};
use crate::sink::{Batch, MongoSink};

/// Documents per chunk: what the follower holds between two writes.
pub const CHUNK: usize = 500;

/// A change waiting in a chunk (the latest one per document wins).
#[derive(Debug, Clone)]
pub enum Pending {
    Upsert(Document),
    /// Gone at this time (ns): the guard's bound.
    Delete(i64),
}

/// Writes the follower's changes.
#[derive(Clone)]
pub struct Applier {
    pub sink: MongoSink,
    pub transformer: Transformer,
    pub mappings: MappingSet,
    pub ledger: Ledger,
    pub guard: String,
    pub dead_letter_collection: String,
    pub run_id: String,
}

impl Applier {
    fn ledger_collection(&self) -> Collection<Entry> {
        self.sink.database().collection(LEDGER_COLLECTION)
    }

    fn raw_ledger(&self) -> Collection<BsonDocument> {
        self.sink.database().collection(LEDGER_COLLECTION)
    }

    fn mongo_err(&self, operation: &'static str, e: mongodb::error::Error) -> Error {
        crate::mongo::error(
            operation,
            format!("{}.{LEDGER_COLLECTION}", self.sink.database().name()),
            self.sink.uri(),
            e,
        )
    }

    async fn entries(&self, rels: &[String]) -> Result<HashMap<String, Entry>> {
        let retry = self.sink.config().retry;
        retry
            .run(
                || "read the ledger".to_string(),
                || async {
                    let cursor = self
                        .ledger_collection()
                        .find(self.ledger.paths_filter(rels))
                        .await
                        .map_err(|e| self.mongo_err("read the ledger", e))?;
                    let found: Vec<Entry> = cursor
                        .try_collect()
                        .await
                        .map_err(|e| self.mongo_err("read the ledger", e))?;
                    Ok(found.into_iter().map(|e| (e.p.clone(), e)).collect())
                },
            )
            .await
    }

    /// The ledger's indexes. The passes over the ledger select one job's records of a
    /// group (a resend's absences, the live count) or its tombstones, in `_id` order, a
    /// chunk at a time: without these, each chunk would scan every record. Idempotent.
    pub async fn ensure_ledger_indexes(&self) -> Result<()> {
        let models = vec![
            mongodb::IndexModel::builder()
                .keys(doc! { "j": 1, "g": 1, "_id": 1 })
                .build(),
            mongodb::IndexModel::builder()
                .keys(doc! { "j": 1, "d": 1, "_id": 1 })
                .build(),
        ];
        let retry = self.sink.config().retry;
        retry
            .run(
                || "index the ledger".to_string(),
                || async {
                    self.raw_ledger()
                        .create_indexes(models.clone())
                        .await
                        .map(|_| ())
                        .map_err(|e| self.mongo_err("index the ledger", e))
                },
            )
            .await
    }

    /// Writes one batch and its ledger records; refused documents become dead letters.
    async fn write_with_ledger(
        &self,
        batch: Batch,
        epoch_of: &(dyn Fn(&str) -> Option<i64> + Sync),
        counts: &mut FollowCounts,
    ) -> Result<()> {
        let result = self.sink.write(&batch).await?;
        if !result.failures.is_empty() {
            let mut dead = Batch::new(self.dead_letter_collection.clone());
            for f in &result.failures {
                tracing::warn!(path = %f.source_path, "server refused a followed document: {}", f.message);
                dead.push(f.rejection(&f.source_path).dead_letter(None, &self.run_id));
            }
            counts.dead_letters += dead.items.len() as u64;
            self.sink.write(&dead).await?;
        }
        if let Some(records) = self.ledger.records_of(&batch, &self.guard, epoch_of) {
            let r = self.sink.write(&records).await?;
            if let Some(f) = r.failures.first() {
                return Err(Error::Internal(format!(
                    "the ledger refused the record of {}: {}",
                    f.source_path, f.message
                )));
            }
        }
        Ok(())
    }

    /// Applies one chunk of changes (one per document). `epochs`: the groups being
    /// resent, with their resend's epoch. Returns when MongoDB acknowledged all of it.
    pub async fn apply(
        &self,
        chunk: Vec<(String, Pending)>,
        epochs: &HashMap<String, i64>,
        counts: &mut FollowCounts,
    ) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let rels: Vec<String> = chunk.iter().map(|(r, _)| r.clone()).collect();
        let known = self.entries(&rels).await?;
        let epoch_of = |g: &str| epochs.get(g).copied();
        let mut batches: BTreeMap<String, Batch> = BTreeMap::new();
        let mut unchanged: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        let mut removals = Vec::new();
        let mut tombstones = Batch::new(LEDGER_COLLECTION);
        for (rel, change) in chunk {
            match change {
                Pending::Upsert(doc) => {
                    let time = doc.update_time.as_ref().map(timestamp_nanos);
                    // A resend repeats documents MongoDB already holds (the emulator
                    // resends everything on every change): only the epoch is noted.
                    if let (Some(e), Some(entry), Some(t)) =
                        (epoch_of(group_of(&rel)), known.get(&rel), time)
                    {
                        if !entry.d && entry.time == t {
                            unchanged.entry(e).or_default().push(rel);
                            counts.unchanged += 1;
                            continue;
                        }
                    }
                    let applied = self.transformer.apply(&doc).and_then(|t| {
                        stamp_transformed_at(t, doc.update_time.as_ref(), Some(&self.guard))
                    });
                    let (collection, item): (String, WriteItem) = match applied {
                        Ok(t) => {
                            counts.upserts += 1;
                            (t.collection, t.item)
                        }
                        Err(rejection) => {
                            tracing::warn!(path = %rejection.source_path, rule = rejection.rule, "dead letter: {}", rejection.reason);
                            counts.dead_letters += 1;
                            (
                                self.dead_letter_collection.clone(),
                                rejection.dead_letter(Some(&doc), &self.run_id),
                            )
                        }
                    };
                    batches
                        .entry(collection.clone())
                        .or_insert_with(|| Batch::new(collection))
                        .push(item);
                }
                Pending::Delete(time) => {
                    match place(known.get(&rel), &self.mappings, &rel) {
                        Ok(location) => {
                            tombstones.push(self.ledger.tombstone(
                                &rel,
                                &location,
                                time,
                                epoch_of(group_of(&rel)),
                            ));
                            removals.push(Removal {
                                location,
                                time,
                                rel: rel.clone(),
                            });
                            counts.deletes += 1;
                        }
                        // Never written by fireshift (its `_id` comes from a field and
                        // no ledger record names it): nothing to remove.
                        Err(why) => {
                            tracing::debug!(path = %rel, "a delete with nothing to remove: {why}")
                        }
                    }
                }
            }
        }
        for (_, batch) in batches {
            self.write_with_ledger(batch, &epoch_of, counts).await?;
        }
        self.note_epochs(unchanged).await?;
        if !removals.is_empty() {
            self.sink
                .remove(&self.guard, &self.mappings, &removals)
                .await?;
            self.sink.write(&tombstones).await?;
            self.clear_empty_holders(&removals).await?;
        }
        Ok(())
    }

    /// The parents of pulled children whose own document is not live in the ledger
    /// (deleted, or never seen: a holder a child's write made) are removed when they
    /// hold nothing any more. A live parent is never touched.
    async fn clear_empty_holders(&self, removals: &[Removal]) -> Result<()> {
        let mut parents: BTreeMap<String, (String, Bson)> = BTreeMap::new();
        for r in removals {
            if r.location.embed.is_none() {
                continue;
            }
            if let Some(parent) = parent_rel(&r.rel) {
                parents.insert(
                    parent.to_string(),
                    (r.location.collection.clone(), r.location.id.clone()),
                );
            }
        }
        if parents.is_empty() {
            return Ok(());
        }
        let rels: Vec<String> = parents.keys().cloned().collect();
        let known = self.entries(&rels).await?;
        let mut orphaned: BTreeMap<String, Vec<Bson>> = BTreeMap::new();
        for (rel, (collection, id)) in parents {
            if known.get(&rel).is_some_and(|e| !e.d) {
                continue;
            }
            orphaned.entry(collection).or_default().push(id);
        }
        for (collection, ids) in orphaned {
            let holds = self.mappings.embedded_fields_of(&collection);
            self.sink
                .remove_empty_holders(&self.guard, &collection, &holds, &ids)
                .await?;
        }
        Ok(())
    }

    async fn note_epochs(&self, unchanged: BTreeMap<i64, Vec<String>>) -> Result<()> {
        for (epoch, rels) in unchanged {
            let filter = self.ledger.paths_filter(&rels);
            let retry = self.sink.config().retry;
            retry
                .run(
                    || "note a resend in the ledger".to_string(),
                    || async {
                        self.raw_ledger()
                            .update_many(filter.clone(), doc! { "$set": { "e": epoch } })
                            .await
                            .map_err(|e| self.mongo_err("note a resend in the ledger", e))
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Removes what a completed resend of `group` (epoch `epoch`, consistent at `time`)
    /// did not send: deleted at or before `time`. Returns how many.
    pub async fn reconcile(&self, group: &str, epoch: i64, time: i64) -> Result<u64> {
        self.sweep(self.ledger.unseen_filter(group, epoch), Some((epoch, time)))
            .await
    }

    /// Applies every tombstone of the job again (once the copy has ended): removes a
    /// state a copy page wrote after the delete, keeps anything newer.
    pub async fn sweep_tombstones(&self) -> Result<u64> {
        self.sweep(self.ledger.tombstones_filter(), None).await
    }

    /// Streams the ledger records `filter` selects, in chunks: each removed where it
    /// lives; with `absent = Some((epoch, time))` each becomes a tombstone at `time`.
    async fn sweep(&self, filter: BsonDocument, absent: Option<(i64, i64)>) -> Result<u64> {
        let mut done = 0;
        // Re-queried after each chunk (a tombstoned record leaves an absence filter):
        // no cursor is held across writes, so a long sweep survives a server restart.
        let mut after: Option<String> = None;
        loop {
            let mut f = filter.clone();
            if let Some(a) = &after {
                f.insert("_id", doc! { "$gt": a });
            }
            let retry = self.sink.config().retry;
            let entries: Vec<(String, Entry)> = retry
                .run(
                    || "read the ledger".to_string(),
                    || async {
                        let cursor = self
                            .raw_ledger()
                            .find(f.clone())
                            .sort(doc! { "_id": 1 })
                            .limit(CHUNK as i64)
                            .await
                            .map_err(|e| self.mongo_err("read the ledger", e))?;
                        let docs: Vec<BsonDocument> = cursor
                            .try_collect()
                            .await
                            .map_err(|e| self.mongo_err("read the ledger", e))?;
                        docs.into_iter()
                            .map(|d| {
                                let id = d.get_str("_id").unwrap_or_default().to_string();
                                mongodb::bson::from_document::<Entry>(d)
                                    .map(|e| (id, e))
                                    .map_err(|e| Error::Internal(format!("a ledger record: {e}")))
                            })
                            .collect()
                    },
                )
                .await?;
            let Some((last, _)) = entries.last() else {
                return Ok(done);
            };
            after = Some(last.clone());
            let mut removals = Vec::with_capacity(entries.len());
            let mut tombstones = Batch::new(LEDGER_COLLECTION);
            for (_, e) in &entries {
                let time = match absent {
                    Some((epoch, time)) => {
                        tombstones.push(self.ledger.tombstone(
                            &e.p,
                            &e.location,
                            time,
                            Some(epoch),
                        ));
                        time
                    }
                    None => e.time,
                };
                removals.push(Removal {
                    location: e.location.clone(),
                    time,
                    rel: e.p.clone(),
                });
            }
            self.sink
                .remove(&self.guard, &self.mappings, &removals)
                .await?;
            if !tombstones.items.is_empty() {
                self.sink.write(&tombstones).await?;
            }
            self.clear_empty_holders(&removals).await?;
            done += entries.len() as u64;
        }
    }

    /// The collection groups the job's ledger holds (what the copy wrote).
    pub async fn ledger_groups(&self) -> Result<Vec<String>> {
        let values = self
            .raw_ledger()
            .distinct("g", doc! { "j": self.ledger.job() })
            .await
            .map_err(|e| self.mongo_err("list the ledger's groups", e))?;
        Ok(values
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .filter(|g| !g.is_empty())
            .collect())
    }

    /// How many live documents of `group` the ledger holds (for an existence filter).
    pub async fn live_count(&self, group: &str) -> Result<u64> {
        let filter = doc! { "j": self.ledger.job(), "g": group, "d": { "$ne": true } };
        self.raw_ledger()
            .count_documents(filter)
            .await
            .map_err(|e| self.mongo_err("count the ledger", e))
    }
}

/// The relative path of the parent document of the document at `rel` (`None` at the
/// root).
fn parent_rel(rel: &str) -> Option<&str> {
    let mut it = rel.rsplitn(3, '/');
    it.next();
    it.next();
    it.next()
}

/// The relative path of a full document name.
pub fn rel_of(name: &str) -> String {
    relative_path(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_of_a_subcollection_document() {
        assert_eq!(parent_rel("a/b/c/d"), Some("a/b"));
        assert_eq!(parent_rel("a/b/c/d/e/f"), Some("a/b/c/d"));
        assert_eq!(parent_rel("users/u1"), None);
    }
}
