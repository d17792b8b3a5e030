//! The recheck: every suspect of pass 1 and of the extras scan is judged again against
//! fresh reads of both sides (the source with `BatchGetDocuments`, the target with one
//! `$in` query per collection), through the same transform. Only what still differs is
//! reported, so documents written while the verify ran are not false positives.

use std::collections::{BTreeMap, HashMap};

use gcloud_sdk::google::firestore::v1::Document;
use mongodb::bson::{Bson, RawDocumentBuf};

use super::compare::{canonical_hash, diff_documents, documents_equal};
use super::place::{parse_embed_row, Expected, Place};
use super::{id_key, malformed, source_relative_path, Finding, Kind, Mismatch, Recheck, Verifier};

/// The place of a document with no expected counterpart: the whole target document.
static WHOLE: Place = Place::Doc { strip: Vec::new() };

/// The target collection and `_id` to read for a mismatch. An embedded child is found
/// through its parent, which only the source document names: with no expected document
/// there is nothing to read (the child cannot be an extra the recheck must confirm:
/// extras are only searched for in collections).
fn fetch_key<'a>(m: &'a Mismatch, e: Option<&'a Expected>) -> Option<(&'a str, &'a Bson)> {
    match e {
        Some(e) => Some(e.place.fetch_key(&m.collection, &m.id)),
        None if parse_embed_row(&m.collection).is_some() => None,
        None => Some((&m.collection, &m.id)),
    }
}
use crate::error::Result;
use crate::source::Source;

impl<S: Source> Verifier<S> {
    /// Rechecks one mismatch against fresh reads of source and target.
    pub async fn recheck_one(&self, m: &Mismatch) -> Result<Recheck> {
        Ok(self
            .recheck(std::slice::from_ref(m))
            .await?
            .pop()
            .expect("one verdict per mismatch"))
    }

    /// Rechecks mismatches against fresh reads: one BatchGetDocuments for their sources,
    /// one `$in` query per collection for their targets. Each verdict judges the
    /// mismatch's own target key: what should it hold now (from the source, through the
    /// same transform), and what does it hold. Verdicts are in input order.
    pub async fn recheck(&self, mismatches: &[Mismatch]) -> Result<Vec<Recheck>> {
        let root = self.source.root();
        let names: Vec<Option<String>> = mismatches
            .iter()
            .map(|m| match (&m.source_path, m.kind) {
                (Some(p), _) => Some(p.clone()),
                (None, Kind::Extra) => {
                    source_relative_path(&m.collection, &m.id).map(|r| format!("{root}/{r}"))
                }
                (None, _) => None,
            })
            .collect();
        let mut unique: Vec<String> = names.iter().flatten().cloned().collect();
        unique.sort();
        unique.dedup();
        let sources = self.source.read_back(&unique).await?;
        // What each target key should hold now, and where in the target that is.
        let mut expected: Vec<Option<Expected>> = Vec::with_capacity(mismatches.len());
        for (m, name) in mismatches.iter().zip(&names) {
            let source = name
                .as_ref()
                .and_then(|n| sources.get(n))
                .and_then(|d| d.as_ref());
            expected.push(self.expected_at(m, source)?);
        }
        let mut by_collection: BTreeMap<String, Vec<Bson>> = BTreeMap::new();
        for (m, e) in mismatches.iter().zip(&expected) {
            if let Some((collection, id)) = fetch_key(m, e.as_ref()) {
                by_collection
                    .entry(collection.to_string())
                    .or_default()
                    .push(id.clone());
            }
        }
        let mut targets: HashMap<(String, Vec<u8>), RawDocumentBuf> = HashMap::new();
        for (collection, ids) in by_collection {
            for (key, d) in self.fetch_docs(&collection, &ids).await? {
                targets.insert((collection.clone(), key), d);
            }
        }
        let mut out = Vec::with_capacity(mismatches.len());
        for ((m, name), e) in mismatches.iter().zip(names).zip(expected) {
            let actual = match fetch_key(m, e.as_ref()) {
                Some((collection, id)) => {
                    match targets.get(&(collection.to_string(), id_key(id)?)) {
                        Some(fetched) => {
                            let place = e.as_ref().map_or(&WHOLE, |e| &e.place);
                            place
                                .view(&m.id, fetched)
                                .map_err(|err| malformed(&m.collection, err))?
                                .map(|v| v.into_owned())
                        }
                        None => None,
                    }
                }
                None => None,
            };
            let source = name
                .as_ref()
                .and_then(|n| sources.get(n))
                .cloned()
                .flatten();
            // Absent now because the TTL index expired it since pass 1: not missing.
            let expired = match (&e, &actual) {
                (Some(e), None) => self.expired(&m.collection, &e.place, &e.doc).await?,
                _ => false,
            };
            if expired {
                out.push(Recheck::Resolved);
                continue;
            }
            out.push(self.judge(m, name, source.as_ref(), e.map(|e| e.doc), actual.as_ref())?);
        }
        Ok(out)
    }

    /// The document the mismatch's target key should hold now: the source through the
    /// transform, when that lands at this key.
    fn expected_at(&self, m: &Mismatch, source: Option<&Document>) -> Result<Option<Expected>> {
        let Some(Ok(t)) = source.map(|d| self.transformer.apply(d)) else {
            return Ok(None);
        };
        let e = Expected::from_transformed(t).map_err(|e| malformed(&m.collection, e))?;
        Ok((e.collection == m.collection && id_key(&e.id)? == id_key(&m.id)?).then_some(e))
    }

    fn judge(
        &self,
        m: &Mismatch,
        name: Option<String>,
        source: Option<&Document>,
        expected: Option<RawDocumentBuf>,
        actual: Option<&RawDocumentBuf>,
    ) -> Result<Recheck> {
        let finding = |kind: Kind,
                       expected: Option<&RawDocumentBuf>,
                       note: Option<String>|
         -> Result<Recheck> {
            let hash = |d: Option<&RawDocumentBuf>| {
                d.map(|d| canonical_hash(d).map_err(|e| malformed(&m.collection, e)))
                    .transpose()
            };
            let (diffs, diffs_omitted) = match (kind, expected, actual) {
                (Kind::Differing, Some(e), Some(a)) => diff_documents(e, a, self.config.max_diffs)
                    .map_err(|e| malformed(&m.collection, e))?,
                _ => (Vec::new(), 0),
            };
            Ok(Recheck::Confirmed(Box::new(Finding {
                mismatch: Mismatch {
                    kind,
                    collection: m.collection.clone(),
                    id: m.id.clone(),
                    source_path: name.clone(),
                },
                expected_hash: hash(expected)?,
                actual_hash: hash(actual)?,
                diffs,
                diffs_omitted,
                note,
            })))
        };
        if m.collection == self.config.dead_letter_collection {
            // The key is a dead letter: needed only while the transform refuses the source.
            let refused = source.is_some_and(|d| self.transformer.apply(d).is_err());
            return if refused && actual.is_none() {
                finding(Kind::DeadLetterMissing, None, None)
            } else {
                Ok(Recheck::Resolved)
            };
        }
        match (expected, actual) {
            (Some(e), Some(a)) => {
                if documents_equal(&e, a).map_err(|e| malformed(&m.collection, e))? {
                    Ok(Recheck::Resolved)
                } else {
                    finding(Kind::Differing, Some(&e), None)
                }
            }
            (Some(e), None) => finding(Kind::Missing, Some(&e), None),
            (None, Some(_)) => {
                let note = match &name {
                    None => Some(
                        "no source document name can be derived from this _id; \
                         no source document maps to it"
                            .to_string(),
                    ),
                    Some(n) if source.is_none() => {
                        Some(format!("source document {n} does not exist"))
                    }
                    Some(n) => Some(format!(
                        "source document {n} exists but does not map to this collection and _id"
                    )),
                };
                finding(Kind::Extra, None, note)
            }
            // Neither side holds it any more (deleted during the verify).
            (None, None) => Ok(Recheck::Resolved),
        }
    }
}
