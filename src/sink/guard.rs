//! The update-time guard: every MongoDB document written by dual writes (and by
//! `migrate --guard-update-time`) carries the Firestore update time of the state it
//! holds, in [`GUARD_FIELD`] (Int64 nanoseconds since the epoch: Firestore times have
//! microsecond precision, which a BSON DateTime (ms) would lose, and two updates in one
//! millisecond must still order). A write replaces the stored document only when its
//! own time is not older, in one atomic update statement:
//!
//! ```text
//! update {_id}  upsert:true
//!   [{$replaceWith: {$cond: [{$gt: [{$ifNull: ["$_fs_updated", -1]}, T]}, "$$ROOT", NEW]}}]
//! ```
//!
//! so an older snapshot (a slow writer, a replayed outbox entry, a backfill that read
//! the document before the API changed it) never overwrites a newer one, whatever the
//! order in which they reach the server, and concurrent writers converge on the newest
//! Firestore state. Equal times replace (the same state written twice is a no-op).

use gcloud_sdk::google::firestore::v1::Document;
use gcloud_sdk::prost_types::Timestamp;
use mongodb::bson::{rawdoc, RawArrayBuf, RawBson, RawDocument, RawDocumentBuf};

use crate::mapping::item::WriteItem;
use crate::mapping::outcome::{Rejection, Transformed};

/// The reserved field that holds the guard time in every guarded MongoDB document.
pub const GUARD_FIELD: &str = "_fs_updated";

/// A Firestore timestamp as nanoseconds since the epoch (exact for every time up to
/// the year 2262).
pub fn timestamp_nanos(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(ts.nanos))
}

/// The inverse of [`timestamp_nanos`].
pub fn nanos_timestamp(nanos: i64) -> Timestamp {
    Timestamp {
        seconds: nanos.div_euclid(1_000_000_000),
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

/// The wall clock as guard nanoseconds (for writes made in `MongoOnly` mode).
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Guard nanoseconds as RFC 3339 text (to the millisecond), for reports and logs.
pub fn nanos_rfc3339(nanos: i64) -> String {
    mongodb::bson::DateTime::from_millis(nanos.div_euclid(1_000_000))
        .try_to_rfc3339_string()
        .unwrap_or_default()
}

/// The guard time a stored document carries, if any.
pub fn guard_time(doc: &RawDocument, field: &str) -> Option<i64> {
    match doc.get(field).ok().flatten()? {
        mongodb::bson::RawBsonRef::Int64(t) => Some(t),
        mongodb::bson::RawBsonRef::Int32(t) => Some(i64::from(t)),
        _ => None,
    }
}

/// Appends the guard field to a converted document. Refused when the document already
/// has a field of that name (a source field would be silently lost otherwise).
pub fn stamp(doc: &mut RawDocumentBuf, field: &str, nanos: i64) -> Result<(), String> {
    if doc.get(field).ok().flatten().is_some() {
        return Err(format!(
            "the document has a field `{field}`, which fireshift reserves for the update-time guard; rename it in the mapping"
        ));
    }
    doc.append(field, nanos);
    Ok(())
}

/// Stamps a transformed document with its source's update time, for guarded writes.
/// With `field = None` (guard off) the document is returned unchanged.
pub fn stamp_transformed(
    t: Transformed,
    source: &Document,
    field: Option<&str>,
) -> Result<Transformed, Rejection> {
    stamp_transformed_at(t, source.update_time.as_ref(), field)
}

/// [`stamp_transformed`] with the update time a source reported for the document.
pub fn stamp_transformed_at(
    mut t: Transformed,
    update_time: Option<&Timestamp>,
    field: Option<&str>,
) -> Result<Transformed, Rejection> {
    let (Some(field), Some(ts)) = (field, update_time) else {
        return Ok(t);
    };
    match stamp(&mut t.item.doc, field, timestamp_nanos(ts)) {
        Ok(()) => Ok(t),
        Err(reason) => Err(Rejection {
            source_path: t.item.source_path.clone(),
            pattern: Some(t.pattern),
            rule: "guard",
            field: Some(field.to_string()),
            reason,
        }),
    }
}

/// The guarded form of an item's update statement (`u`), when the item carries a guard
/// time in `field`; `None` for items without one. An embedded element
/// ([`crate::mapping::item::WriteKind::Embed`]) carries its own guard time: the parent's
/// array is left as it is when it holds that element with a newer time.
pub fn guarded_update(item: &WriteItem, field: &str) -> Option<RawBson> {
    let time = guard_time(&item.doc, field)?;
    if let crate::mapping::item::WriteKind::Embed { field: array, max } = &item.kind {
        return Some(RawBson::Array(guarded_embed(
            item, array, *max, field, time,
        )));
    }
    let new_doc = item.replacement()?;
    Some(RawBson::Array(guarded_pipeline(field, time, new_doc)))
}

/// `[{$set: {A: {$cond: [<A holds this element with a newer F>, "$A", <A with it>]}}}]`.
fn guarded_embed(item: &WriteItem, array: &str, max: u32, field: &str, time: i64) -> RawArrayBuf {
    let mut same = RawArrayBuf::new();
    same.push("$$this._id");
    same.push(rawdoc! { "$literal": item.element_id() });
    let mut stored_time = RawArrayBuf::new();
    stored_time.push(format!("$$this.{field}"));
    stored_time.push(-1i64);
    let mut newer = RawArrayBuf::new();
    newer.push(rawdoc! { "$ifNull": stored_time });
    newer.push(time);
    let mut both = RawArrayBuf::new();
    both.push(rawdoc! { "$eq": same });
    both.push(rawdoc! { "$gt": newer });
    let mut current = RawArrayBuf::new();
    current.push(format!("${array}"));
    current.push(RawArrayBuf::new());
    let mut any = RawArrayBuf::new();
    any.push(rawdoc! { "$map": { "input": { "$ifNull": current }, "in": { "$and": both } } });
    let mut cond = RawArrayBuf::new();
    cond.push(rawdoc! { "$anyElementTrue": any });
    cond.push(format!("${array}"));
    cond.push(item.embed_value(array, max));
    let mut set = RawDocumentBuf::new();
    set.append(array, rawdoc! { "$cond": cond });
    let mut stages = RawArrayBuf::new();
    stages.push(rawdoc! { "$set": set });
    stages
}

/// `[{$replaceWith: {$cond: [{$gt: [{$ifNull: ["$F", -1]}, T]}, "$$ROOT", NEW]}}]`.
pub fn guarded_pipeline(field: &str, time: i64, new_doc: RawDocumentBuf) -> RawArrayBuf {
    let mut if_null = RawArrayBuf::new();
    if_null.push(format!("${field}"));
    if_null.push(-1i64);
    let mut gt = RawArrayBuf::new();
    gt.push(rawdoc! { "$ifNull": if_null });
    gt.push(time);
    let mut cond = RawArrayBuf::new();
    cond.push(rawdoc! { "$gt": gt });
    cond.push("$$ROOT");
    cond.push(new_doc);
    let mut stages = RawArrayBuf::new();
    stages.push(rawdoc! { "$replaceWith": { "$cond": cond } });
    stages
}

/// The filter of a guarded delete: the document is removed only when the state it
/// holds is not newer than `time` (the time Firestore was seen without the document).
pub fn delete_filter(id: mongodb::bson::Bson, field: &str, time: i64) -> mongodb::bson::Document {
    mongodb::bson::doc! {
        "_id": id,
        "$or": [ { field: { "$lte": time } }, { field: { "$exists": false } } ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::item::WriteKind;
    use mongodb::bson::{doc, Bson};

    fn item(kind: WriteKind) -> WriteItem {
        let mut d = RawDocumentBuf::from_document(&doc! {"_id": "u1", "n": 1}).unwrap();
        stamp(&mut d, GUARD_FIELD, 42).unwrap();
        WriteItem {
            source_path: "users/u1".into(),
            id: Bson::String("u1".into()),
            doc: d,
            literal: false,
            kind,
        }
    }

    #[test]
    fn timestamps_round_trip_through_nanos() {
        for (s, n) in [(0, 0), (1_700_000_000, 123_456_000), (-5, 999_999_999)] {
            let ts = Timestamp {
                seconds: s,
                nanos: n,
            };
            assert_eq!(nanos_timestamp(timestamp_nanos(&ts)), ts);
        }
        let a = timestamp_nanos(&Timestamp {
            seconds: 10,
            nanos: 1_000,
        });
        let b = timestamp_nanos(&Timestamp {
            seconds: 10,
            nanos: 2_000,
        });
        assert!(a < b, "microseconds apart must still order");
    }

    #[test]
    fn stamp_refuses_a_source_field_with_the_reserved_name() {
        let mut d = RawDocumentBuf::from_document(&doc! {"_id": "x", GUARD_FIELD: 1}).unwrap();
        assert!(stamp(&mut d, GUARD_FIELD, 5)
            .unwrap_err()
            .contains("reserves"));
    }

    #[test]
    fn replace_items_get_the_conditional_pipeline() {
        let u = guarded_update(&item(WriteKind::Replace), GUARD_FIELD).unwrap();
        let RawBson::Array(stages) = u else {
            panic!("pipeline expected")
        };
        let stage = stages.into_iter().next().unwrap().unwrap();
        let stage = Bson::try_from(stage.to_raw_bson()).unwrap();
        let expected = doc! { "$replaceWith": { "$cond": [
            { "$gt": [ { "$ifNull": ["$_fs_updated", -1i64] }, 42i64 ] },
            "$$ROOT",
            { "$literal": { "_id": "u1", "n": 1, "_fs_updated": 42i64 } },
        ] } };
        assert_eq!(stage, Bson::Document(expected));
    }

    #[test]
    fn embeds_keep_a_newer_element_and_unstamped_items_stay_unguarded() {
        let embed = item(WriteKind::Embed {
            field: "comments".into(),
            max: 10,
        });
        let RawBson::Array(stages) = guarded_update(&embed, GUARD_FIELD).unwrap() else {
            panic!("pipeline expected")
        };
        let stage = stages.into_iter().next().unwrap().unwrap();
        let stage = Bson::try_from(stage.to_raw_bson()).unwrap();
        let cond = stage
            .as_document()
            .and_then(|d| d.get_document("$set").ok())
            .and_then(|d| d.get_document("comments").ok())
            .and_then(|d| d.get_array("$cond").ok())
            .expect("a conditional array value");
        assert_eq!(cond[1], Bson::String("$comments".into()), "keeps the array");
        let test = format!("{:?}", cond[0]);
        assert!(
            test.contains("$anyElementTrue")
                && test.contains("$$this._fs_updated")
                && test.contains("42"),
            "{test}"
        );
        let mut plain = item(WriteKind::Replace);
        plain.doc = RawDocumentBuf::from_document(&doc! {"_id": "u1"}).unwrap();
        assert!(guarded_update(&plain, GUARD_FIELD).is_none());
        let keeping = item(WriteKind::ReplaceKeeping {
            fields: vec!["comments".into()],
        });
        assert!(guarded_update(&keeping, GUARD_FIELD).is_some());
    }
}
