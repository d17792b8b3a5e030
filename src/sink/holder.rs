//! Holders: the MongoDB document that keeps embedded children whose Firestore parent
//! does not exist.
//!
//! In Firestore a subcollection outlives its parent document: deleting a comment leaves
//! its replies readable. When the replies are embedded in the comment's document, they
//! still need a place, so that document stays as a *holder*: its `_id` and the arrays
//! its embedded children fill, nothing else (a copy of a reply whose comment is absent
//! makes the same holder: its upsert creates the document). A holder whose arrays are
//! all empty holds nothing and is removed; verify counts a holder that holds children
//! neither as a document of its collection nor as an extra (its children are compared
//! on their own rows).
//!
//! The filters below are MongoDB query documents over `$$ROOT`'s field names, so the
//! server decides atomically, in the statement that removes, whether a document is a
//! holder.

use mongodb::bson::{doc, Bson, Document};

/// `$expr` body: the document has no field but `_id`, `fields` and the guard field.
fn only_holder_fields(fields: &[String], guard_field: &str) -> Document {
    let mut allowed: Vec<Bson> = vec![Bson::String("_id".into())];
    allowed.extend(fields.iter().map(|f| Bson::String(f.clone())));
    allowed.push(Bson::String(guard_field.into()));
    doc! { "$eq": [
        { "$size": { "$setDifference": [
            { "$map": { "input": { "$objectToArray": "$$ROOT" }, "in": "$$this.k" } },
            allowed,
        ] } },
        0,
    ] }
}

/// `$expr` body: the array `field` has at least one element.
fn has_elements(field: &str) -> Document {
    let path = format!("${field}");
    doc! { "$gt": [ { "$size": { "$cond": [ { "$isArray": &path }, &path, [] ] } }, 0 ] }
}

/// A holder that still holds at least one embedded child.
pub fn holding(fields: &[String], guard_field: &str) -> Document {
    let any: Vec<Document> = fields.iter().map(|f| has_elements(f)).collect();
    doc! { "$expr": { "$and": [
        only_holder_fields(fields, guard_field),
        { "$or": any },
    ] } }
}

/// Every document but holders that hold children: what verify counts and scans.
/// Matches everything when the collection has no embedded children.
pub fn not_holding(fields: &[String], guard_field: &str) -> Document {
    if fields.is_empty() {
        return doc! {};
    }
    doc! { "$nor": [ holding(fields, guard_field) ] }
}

/// A holder that holds nothing: safe to remove.
pub fn empty(fields: &[String], guard_field: &str) -> Document {
    let none: Vec<Document> = fields
        .iter()
        .map(|f| doc! { "$not": has_elements(f) })
        .collect();
    doc! { "$expr": { "$and": [
        only_holder_fields(fields, guard_field),
        { "$and": none },
    ] } }
}

/// The update pipeline that turns a document into a holder: `_id`, the arrays as they
/// are (a missing one stays missing), and the guard set to `time` so that a copy page
/// read before the parent's delete cannot bring its fields back.
pub fn reduce_to_holder(fields: &[String], guard_field: &str, time: i64) -> Vec<Document> {
    let mut keep = doc! { "_id": "$_id" };
    for f in fields {
        keep.insert(f.as_str(), format!("${f}"));
    }
    keep.insert(guard_field, doc! { "$literal": time });
    vec![doc! { "$replaceWith": keep }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_embedded_fields_means_no_holders() {
        assert_eq!(not_holding(&[], "_g"), doc! {});
    }

    #[test]
    fn the_holder_filters_name_every_field() {
        let fields = vec!["replies".to_string(), "likes".to_string()];
        let h = holding(&fields, "_g");
        let text = h.to_string();
        for f in [
            "\"_id\"",
            "\"replies\"",
            "\"likes\"",
            "\"_g\"",
            "$replies",
            "$likes",
        ] {
            assert!(text.contains(f), "{f} in {text}");
        }
        assert_eq!(
            not_holding(&fields, "_g"),
            doc! { "$nor": [ h ] },
            "everything but the holders that hold"
        );
        let pipeline = reduce_to_holder(&fields, "_g", 7);
        assert_eq!(
            pipeline,
            vec![doc! { "$replaceWith": {
                "_id": "$_id", "replies": "$replies", "likes": "$likes", "_g": { "$literal": 7_i64 },
            } }]
        );
    }
}
