//! Writes to collections in `mongo_only`: MongoDB is the only database written, so each
//! write is one MongoDB command, atomic on its own, with no outbox entry. The guard
//! time is the wall clock, moved past whatever the document held, so that an outbox
//! entry left from the dual phase can never overwrite a write made here.

use std::time::Instant;

use gcloud_sdk::google::firestore::v1::Document;
use mongodb::bson::{doc, Bson, RawDocumentBuf};

use super::core::Core;
use super::error::{DualError, DualResult};
use super::op::{Secondary, Target, WriteOp, WriteResult};
use super::query::translate_field;
use crate::error::Error;
use crate::mapping::item::WriteItem;
use crate::mongo::is_duplicate_key;
use crate::path::DocPath;
use crate::sink::guard::{self, GUARD_FIELD};

/// One write to a collection in `MongoOnly`.
pub(crate) async fn write(core: &Core, op: WriteOp, t: Target) -> DualResult<WriteResult> {
    let started = Instant::now();
    let now = guard::now_nanos();
    let coll = core.collection::<RawDocumentBuf>(&t.collection);
    let result: DualResult<()> = async {
        match &op {
            WriteOp::Create { fields, .. } | WriteOp::Set { fields, .. } => {
                let ts = guard::nanos_timestamp(now);
                let doc = Document {
                    name: t.name.clone(),
                    fields: fields.clone(),
                    create_time: Some(ts),
                    update_time: Some(ts),
                };
                let tr = core.transform(&doc)?;
                if let WriteOp::Create { .. } = op {
                    match coll.insert_one(tr.item.doc.clone()).await {
                        Ok(_) => Ok(()),
                        Err(e) if is_duplicate_key(&e) => Err(DualError::AlreadyExists {
                            path: t.rel.clone(),
                        }),
                        Err(e) => Err(core.mongo_error("insert", &t.collection, e).into()),
                    }
                } else {
                    replace(core, &tr.collection, &tr.item, now).await
                }
            }
            WriteOp::Update { fields, .. } => {
                let p = DocPath::parse(&t.rel).expect("resolved path");
                let m = core.mapping_of(&p);
                let mut set = mongodb::bson::Document::new();
                let mut unset = Vec::new();
                for (f, v) in fields {
                    let (path, value) = translate_field(&m, f, v.as_ref())?;
                    match value {
                        Some(v) => {
                            set.insert(path, doc! { "$literal": v });
                        }
                        None => unset.push(path),
                    }
                }
                if let Some(f) = &m.update_time {
                    let at = mongodb::bson::DateTime::from_millis(now / 1_000_000);
                    set.insert(f.clone(), doc! { "$literal": at });
                }
                set.insert(GUARD_FIELD, guard_after(now));
                let mut pipeline = vec![doc! { "$set": set }];
                if !unset.is_empty() {
                    pipeline.push(doc! { "$unset": unset });
                }
                let r = coll
                    .update_one(doc! {"_id": t.id.clone()}, pipeline)
                    .await
                    .map_err(|e| core.mongo_error("update", &t.collection, e))?;
                if r.matched_count == 0 {
                    return Err(DualError::NotFound {
                        path: t.rel.clone(),
                    });
                }
                Ok(())
            }
            WriteOp::Delete { .. } => {
                coll.delete_one(doc! {"_id": t.id.clone()})
                    .await
                    .map_err(|e| core.mongo_error("delete", &t.collection, e))?;
                Ok(())
            }
        }
    }
    .await;
    let outcome = if result.is_ok() {
        "ok"
    } else {
        "primary_error"
    };
    core.metrics()
        .writes
        .with_label_values(&[&t.pattern, t.mode.as_str(), outcome])
        .inc();
    core.metrics()
        .primary_latency
        .with_label_values(&[&t.pattern, op.name()])
        .observe(started.elapsed().as_secs_f64());
    result?;
    Ok(WriteResult {
        path: t.rel,
        mode: t.mode,
        update_time: now,
        secondary: Secondary::None,
    })
}

/// A `set` in `MongoOnly`: replaces the document unconditionally (MongoDB is the
/// primary now) and moves its guard time past whatever it held, so that an outbox
/// entry from the dual phase replayed later can never overwrite it, even if this
/// host's clock is behind Firestore's.
async fn replace(core: &Core, collection: &str, item: &WriteItem, now: i64) -> DualResult<()> {
    let mut d = mongodb::bson::Document::try_from(item.doc.as_ref()).map_err(|e| {
        DualError::Io(Error::Internal(format!(
            "a converted document does not decode: {e}"
        )))
    })?;
    d.remove(GUARD_FIELD);
    let mut parts = vec![Bson::Document(doc! { "$literal": d })];
    if let crate::mapping::item::WriteKind::ReplaceKeeping { fields } = &item.kind {
        let mut kept = mongodb::bson::Document::new();
        for f in fields {
            kept.insert(f.clone(), doc! { "$ifNull": [format!("${f}"), []] });
        }
        parts.push(Bson::Document(kept));
    }
    parts.push(Bson::Document(doc! { GUARD_FIELD: guard_after(now) }));
    let pipeline = vec![doc! { "$replaceWith": { "$mergeObjects": parts } }];
    core.collection::<RawDocumentBuf>(collection)
        .update_one(doc! {"_id": item.id.clone()}, pipeline)
        .upsert(true)
        .await
        .map_err(|e| core.mongo_error("replace", collection, e))?;
    Ok(())
}

/// The guard time of a `MongoOnly` write: the wall clock, or just past the stored time
/// when that is ahead.
fn guard_after(now: i64) -> mongodb::bson::Document {
    doc! { "$max": [now, { "$add": [{ "$ifNull": [format!("${GUARD_FIELD}"), 0i64] }, 1i64] }] }
}
