//! One chunk of pass 1: the target documents of up to `chunk_size` expected ones,
//! fetched with one `$in` query and compared canonically; suspects and seen ids are
//! stored, and each item comes back with what it adds to its collection's counts.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, RawDocumentBuf};

use super::compare::{canonical_bytes, documents_equal};
use super::place::Place;
use super::store::Store;
use super::{id_key, malformed, CollectionCounts, Kind, Mismatch, Verifier};
use crate::error::{Error, Result};
use crate::source::Source;

/// One expected document waiting for comparison.
pub(super) struct Item {
    pub(super) source_path: String,
    pub(super) id: Bson,
    /// `None` for a dead-letter check (only existence matters).
    pub(super) doc: Option<RawDocumentBuf>,
    /// Where `doc` is in the target.
    pub(super) place: Place,
    /// Its sequence number in the pass's acknowledgement window.
    pub(super) seq: u64,
    /// What this document adds to its collection's counts: filled at read time
    /// (source, compared, dead-lettered) and by the comparison.
    pub(super) outcome: CollectionCounts,
}

/// Items bound for one collection (the dead-letter collection for dead-letter checks).
pub(super) struct Chunk {
    pub(super) collection: String,
    pub(super) dead_letters: bool,
    pub(super) items: Vec<Item>,
}

/// What a compared chunk adds: each item's outcome, by sequence number.
pub(super) struct ChunkOutcome {
    pub(super) outcomes: Vec<(u64, CollectionCounts)>,
}

impl ChunkOutcome {
    fn of(chunk: Chunk) -> Self {
        Self {
            outcomes: chunk
                .items
                .into_iter()
                .map(|i| (i.seq, i.outcome))
                .collect(),
        }
    }
}

impl<S: Source> Verifier<S> {
    /// Fetches the target documents of a chunk and compares; stores suspects and seen ids.
    pub(super) async fn compare_chunk(
        &self,
        store: &Store,
        mut chunk: Chunk,
        record_seen: bool,
    ) -> Result<ChunkOutcome> {
        let mut suspects: Vec<Mismatch> = Vec::new();
        let ids: Vec<Bson> = chunk.items.iter().map(|i| i.id.clone()).collect();
        if chunk.dead_letters {
            let present = self.fetch_ids(&chunk.collection, &ids).await?;
            for item in &mut chunk.items {
                if !present.contains_key(&id_key(&item.id)?) {
                    item.outcome.dead_letters_missing += 1;
                    suspects.push(Mismatch {
                        kind: Kind::DeadLetterMissing,
                        collection: chunk.collection.clone(),
                        id: item.id.clone(),
                        source_path: Some(item.source_path.clone()),
                    });
                }
            }
            store.insert_pending(&suspects).await?;
            return Ok(ChunkOutcome::of(chunk));
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
        let mut absent: Vec<usize> = Vec::new();
        for (i, item) in chunk.items.iter_mut().enumerate() {
            let expected = item.doc.as_ref().expect("target chunks carry documents");
            let c = &mut item.outcome;
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
                None => absent.push(i),
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
        // A document the target's TTL index removed is expired, not missing.
        let mut still_absent = Vec::with_capacity(absent.len());
        for i in absent {
            let item = &mut chunk.items[i];
            let expected = item.doc.as_ref().expect("target chunks carry documents");
            if self
                .expired(&chunk.collection, &item.place, expected)
                .await?
            {
                item.outcome.expired += 1;
            } else {
                still_absent.push(i);
            }
        }
        let absent = still_absent;
        if !absent.is_empty() {
            // A document the server refused is dead-lettered by migrate (rule `sink`):
            // accounted for, not missing.
            let paths: Vec<Bson> = absent
                .iter()
                .map(|&i| Bson::String(chunk.items[i].source_path.clone()))
                .collect();
            let dead = self
                .fetch_ids(&self.config.dead_letter_collection, &paths)
                .await?;
            for i in absent {
                let item = &mut chunk.items[i];
                let c = &mut item.outcome;
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
        Ok(ChunkOutcome::of(chunk))
    }

    /// The target documents with these `_id`s, keyed by [`id_key`].
    pub(super) async fn fetch_docs(
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
    pub(super) async fn fetch_ids(
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
                        .map_err(|e| crate::mongo::error("find", target.clone(), &self.uri, e))?;
                    cursor
                        .try_collect()
                        .await
                        .map_err(|e| crate::mongo::error("find", target.clone(), &self.uri, e))
                },
            )
            .await?;
        let mut out = HashMap::with_capacity(docs.len());
        for d in docs {
            let id = d
                .get("_id")
                .map_err(|e| malformed(collection, e))?
                .ok_or_else(|| Error::CorruptState {
                    location: target.clone(),
                    message: "a document has no _id".into(),
                })?;
            let key = canonical_bytes(id).map_err(|e| malformed(collection, e))?;
            out.insert(key, d);
        }
        Ok(out)
    }
}
