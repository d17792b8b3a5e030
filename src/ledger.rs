//! The follow ledger: one small record per Firestore document a following job has
//! written, in MongoDB (`_fireshift_ledger`), never in memory.
//!
//! It exists because Firestore does not always say that a document was deleted. After a
//! `RESET` of a Listen target (the emulator sends one for every change; production on
//! a stream fault) the server sends the target's whole result set again, and a deleted
//! document shows only as absence. Knowing what is absent needs what was there: the
//! ledger, keyed by the document's path, with the update time of the state written, the
//! place it was written to (so a delete needs no mapping lookup, even for an `_id` taken
//! from a field) and the epoch of the last resend that saw it.
//!
//! It also holds **tombstones**: a deleted document's record keeps the delete time
//! (`d: true`, `_fs_updated` = the delete time). A copy page that read the document
//! before it was deleted may land after the delete; once the copy has ended, every
//! tombstone is applied again ([`Ledger::tombstones`]), which removes such a state (its
//! time is older than the delete) and nothing newer.
//!
//! Every record is written with the update-time guard, like the documents themselves:
//! an older state never replaces a newer one, in whatever order the writes land.

use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};
use serde::Deserialize;

use crate::mapping::item::{WriteItem, WriteKind};
use crate::mapping::location::{Embedded, Location};
use crate::path::DocPath;
use crate::sink::guard::guard_time;
use crate::sink::Batch;

/// The ledger collection, in the target database.
pub const LEDGER_COLLECTION: &str = crate::own::LEDGER;

/// The ledger of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    job: String,
}

/// One record, as stored.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// The document's relative path.
    pub p: String,
    #[serde(flatten)]
    pub location: Location,
    /// The update time of the state written, or the delete time of a tombstone.
    #[serde(rename = "_fs_updated")]
    pub time: i64,
    #[serde(default)]
    pub d: bool,
}

/// The collection group of a relative document path: its collection's id.
pub fn group_of(rel: &str) -> &str {
    let mut it = rel.rsplitn(3, '/');
    it.next();
    it.next().unwrap_or("")
}

impl Ledger {
    pub fn new(job: impl Into<String>) -> Self {
        Self { job: job.into() }
    }

    pub fn job(&self) -> &str {
        &self.job
    }

    fn key(&self, rel: &str) -> String {
        format!("{}\n{rel}", self.job)
    }

    fn record(&self, rel: &str, location: &Location, time: i64) -> RawDocumentBuf {
        let mut d = doc! {
            "_id": self.key(rel),
            "j": &self.job,
            "p": rel,
            "g": group_of(rel),
            "c": &location.collection,
            "i": location.id.clone(),
        };
        if let Some(e) = &location.embed {
            d.insert("f", doc! { "field": &e.field, "id": e.id.clone() });
        }
        let mut raw = RawDocumentBuf::from_document(&d).expect("a ledger record is valid BSON");
        raw.append(crate::sink::guard::GUARD_FIELD, time);
        raw
    }

    fn item(&self, rel: &str, doc: RawDocumentBuf) -> WriteItem {
        WriteItem {
            source_path: rel.to_string(),
            id: Bson::String(self.key(rel)),
            doc,
            literal: false,
            kind: WriteKind::Replace,
        }
    }

    /// The records of a written batch of documents: one per item stamped with a guard
    /// time in `guard_field`, marked with the epoch of its group's resend when a resend
    /// wrote it (`epoch_of`). `None` when no item has one (a dead-letter batch).
    pub fn records_of(
        &self,
        batch: &Batch,
        guard_field: &str,
        epoch_of: &(dyn Fn(&str) -> Option<i64> + Sync),
    ) -> Option<Batch> {
        let mut out = Batch::new(LEDGER_COLLECTION);
        for item in &batch.items {
            let Some(time) = guard_time(&item.doc, guard_field) else {
                continue;
            };
            let rel = crate::path::relative_path(&item.source_path);
            let location = match &item.kind {
                WriteKind::Embed { field, .. } => Location {
                    collection: batch.collection.clone(),
                    id: item.id.clone(),
                    embed: Some(Embedded {
                        field: field.clone(),
                        id: Bson::try_from(item.element_id()).unwrap_or(Bson::Null),
                    }),
                },
                _ => Location {
                    collection: batch.collection.clone(),
                    id: item.id.clone(),
                    embed: None,
                },
            };
            let mut rec = self.record(rel, &location, time);
            if let Some(e) = epoch_of(group_of(rel)) {
                rec.append("e", e);
            }
            out.push(self.item(rel, rec));
        }
        (!out.items.is_empty()).then_some(out)
    }

    /// The tombstone of a document deleted at `time` (guarded like any record: a newer
    /// state of a re-created document is kept).
    pub fn tombstone(
        &self,
        rel: &str,
        location: &Location,
        time: i64,
        epoch: Option<i64>,
    ) -> WriteItem {
        let mut rec = self.record(rel, location, time);
        rec.append("d", true);
        if let Some(e) = epoch {
            rec.append("e", e);
        }
        self.item(rel, rec)
    }

    /// Filter: the live (not deleted) records of `group` a resend of `epoch` did not see.
    pub fn unseen_filter(&self, group: &str, epoch: i64) -> Document {
        doc! { "j": &self.job, "g": group, "d": { "$ne": true }, "e": { "$ne": epoch } }
    }

    /// Filter: every tombstone of the job.
    pub fn tombstones_filter(&self) -> Document {
        doc! { "j": &self.job, "d": true }
    }

    /// Filter: the records of these relative paths.
    pub fn paths_filter(&self, rels: &[String]) -> Document {
        let ids: Vec<String> = rels.iter().map(|r| self.key(r)).collect();
        doc! { "_id": { "$in": ids } }
    }

    /// Filter: every record of the job (for `--restart`).
    pub fn job_filter(&self) -> Document {
        doc! { "j": &self.job }
    }
}

/// The place of a deleted document: the ledger's record of it when there is one (it
/// knows places the path alone cannot tell), else the mapping's.
pub fn place(
    entry: Option<&Entry>,
    set: &crate::mapping::MappingSet,
    rel: &str,
) -> Result<Location, String> {
    if let Some(e) = entry {
        return Ok(e.location.clone());
    }
    let path = DocPath::parse(rel).map_err(|e| e.to_string())?;
    set.location_of(&path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::guard::{stamp, GUARD_FIELD};

    fn item(path: &str, time: Option<i64>, kind: WriteKind) -> WriteItem {
        let mut d = RawDocumentBuf::from_document(&doc! {"_id": "e1", "n": 1}).unwrap();
        if let Some(t) = time {
            stamp(&mut d, GUARD_FIELD, t).unwrap();
        }
        WriteItem {
            source_path: path.into(),
            id: Bson::String("u1".into()),
            doc: d,
            literal: false,
            kind,
        }
    }

    #[test]
    fn groups_are_the_collection_ids() {
        assert_eq!(group_of("users/u1"), "users");
        assert_eq!(group_of("users/u1/posts/p1"), "posts");
    }

    #[test]
    fn records_carry_place_time_and_epoch() {
        let l = Ledger::new("job");
        let mut b = Batch::new("users");
        b.push(item("users/u1", Some(7), WriteKind::Replace));
        b.push(item("users/u2", None, WriteKind::Replace));
        let out = l
            .records_of(&b, GUARD_FIELD, &|g| (g == "users").then_some(3))
            .unwrap();
        assert_eq!(out.collection, LEDGER_COLLECTION);
        assert_eq!(out.items.len(), 1, "only stamped items are recorded");
        let rec = out.items[0].doc.to_document().unwrap();
        assert_eq!(rec.get_str("_id").unwrap(), "job\nusers/u1");
        assert_eq!(rec.get_str("g").unwrap(), "users");
        assert_eq!(rec.get_str("c").unwrap(), "users");
        assert_eq!(rec.get_str("i").unwrap(), "u1");
        assert_eq!(rec.get_i64(GUARD_FIELD).unwrap(), 7);
        assert_eq!(rec.get_i64("e").unwrap(), 3);
        let entry: Entry = mongodb::bson::from_document(rec).unwrap();
        assert_eq!(entry.location.collection, "users");
        assert!(!entry.d);
    }

    #[test]
    fn embedded_records_name_the_parent_and_the_element() {
        let l = Ledger::new("j");
        let mut b = Batch::new("content");
        b.push(item(
            "content/c1/comments/k1",
            Some(9),
            WriteKind::Embed {
                field: "comments".into(),
                max: 10,
            },
        ));
        let out = l.records_of(&b, GUARD_FIELD, &|_| None).unwrap();
        let entry: Entry =
            mongodb::bson::from_document(out.items[0].doc.to_document().unwrap()).unwrap();
        assert_eq!(entry.location.id, Bson::String("u1".into()));
        let e = entry.location.embed.unwrap();
        assert_eq!(e.field, "comments");
        assert_eq!(e.id, Bson::String("e1".into()));
        let t = l.tombstone(
            "content/c1/comments/k1",
            &Location {
                collection: "content".into(),
                id: Bson::Null,
                embed: None,
            },
            11,
            None,
        );
        let t: Entry = mongodb::bson::from_document(t.doc.to_document().unwrap()).unwrap();
        assert!(t.d);
        assert_eq!(t.time, 11);
    }
}
