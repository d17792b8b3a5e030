//! Where an expected document lives in the target, per the way migrate wrote it.
//!
//! Most documents are whole target documents. With mappings, two more shapes exist: a
//! parent whose array fields hold its embedded subcollection (those fields are written by
//! the children, so the parent is compared without them), and an embedded child, which
//! is one element of its parent's array. Verify reports embedded children under their
//! own row, `parent_collection[field]`, keyed by the element's `_id`, so a missing or
//! differing child is reported as itself and not as a difference of its parent.

use std::borrow::Cow;

use mongodb::bson::{Bson, RawBsonRef, RawDocument, RawDocumentBuf};

use super::compare::RawError;
use crate::mapping::item::WriteKind;
use crate::mapping::transform::Transformed;

/// How to find an expected document in what a target query returns.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// A whole document of the row's collection, without `strip` (the array fields its
    /// embedded children fill, compared on their own rows).
    Doc { strip: Vec<String> },
    /// The element with the expected `_id` in array `field` of document `parent_id` of
    /// `parent_collection`.
    Element {
        parent_collection: String,
        parent_id: Bson,
        field: String,
    },
}

/// The expected side of one source document: its row, its key there, the document and
/// where it is in the target.
#[derive(Debug, Clone)]
pub struct Expected {
    pub collection: String,
    pub id: Bson,
    pub doc: RawDocumentBuf,
    pub place: Place,
}

/// The report row of the children embedded in `field` of `parent_collection`.
pub fn embed_row(parent_collection: &str, field: &str) -> String {
    format!("{parent_collection}[{field}]")
}

/// The parent collection and field of an embedded-children row, `None` for a collection.
pub fn parse_embed_row(row: &str) -> Option<(&str, &str)> {
    let inner = row.strip_suffix(']')?;
    let (collection, field) = inner.rsplit_once('[')?;
    (!collection.is_empty() && !field.is_empty()).then_some((collection, field))
}

impl Expected {
    pub fn from_transformed(t: Transformed) -> Result<Self, RawError> {
        let item = t.item;
        Ok(match item.kind {
            WriteKind::Replace => Self {
                collection: t.collection,
                id: item.id,
                doc: item.doc,
                place: Place::Doc { strip: Vec::new() },
            },
            WriteKind::ReplaceKeeping { fields } => Self {
                collection: t.collection,
                id: item.id,
                doc: item.doc,
                place: Place::Doc { strip: fields },
            },
            WriteKind::Embed { field, .. } => {
                let id = match item.doc.get("_id")? {
                    Some(v) => Bson::try_from(v.to_raw_bson())?,
                    None => Bson::String(item.source_path.clone()),
                };
                Self {
                    collection: embed_row(&t.collection, &field),
                    id,
                    doc: item.doc,
                    place: Place::Element {
                        parent_collection: t.collection,
                        parent_id: item.id,
                        field,
                    },
                }
            }
        })
    }
}

impl Place {
    /// The collection and `_id` to fetch for `id` of row `collection`.
    pub fn fetch_key<'a>(&'a self, collection: &'a str, id: &'a Bson) -> (&'a str, &'a Bson) {
        match self {
            Place::Doc { .. } => (collection, id),
            Place::Element {
                parent_collection,
                parent_id,
                ..
            } => (parent_collection, parent_id),
        }
    }

    /// What of the fetched target document compares with the expected one (`None`: the
    /// embedded element is not there).
    pub fn view<'a>(
        &self,
        id: &Bson,
        fetched: &'a RawDocumentBuf,
    ) -> Result<Option<Cow<'a, RawDocumentBuf>>, RawError> {
        match self {
            Place::Doc { strip } if strip.is_empty() => Ok(Some(Cow::Borrowed(fetched))),
            Place::Doc { strip } => Ok(Some(Cow::Owned(without(fetched, |key| {
                strip.iter().any(|s| s == key)
            })?))),
            Place::Element { field, .. } => {
                let Some(array) = fetched.get_array(field).ok() else {
                    return Ok(None);
                };
                let want = mongodb::bson::RawBson::try_from(id.clone())?;
                for element in array.into_iter() {
                    if let RawBsonRef::Document(d) = element? {
                        if d.get("_id")?.map(|v| v.to_raw_bson()).as_ref() == Some(&want) {
                            // A guarded embed stamps each element with its update time
                            // (bookkeeping, as on a whole document): compare without it.
                            let out = without(d, |key| key == crate::sink::guard::GUARD_FIELD)?;
                            return Ok(Some(Cow::Owned(out)));
                        }
                    }
                }
                Ok(None)
            }
        }
    }
}

/// `d` without the fields `drop` names.
fn without(d: &RawDocument, drop: impl Fn(&str) -> bool) -> Result<RawDocumentBuf, RawError> {
    let mut out = RawDocumentBuf::new();
    for entry in d.iter() {
        let (key, value) = entry?;
        if !drop(key) {
            out.append(key, value.to_raw_bson());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, rawdoc};

    #[test]
    fn embed_rows_round_trip_and_collections_are_not_rows() {
        assert_eq!(embed_row("content", "comments"), "content[comments]");
        assert_eq!(
            parse_embed_row("content[comments]"),
            Some(("content", "comments"))
        );
        assert_eq!(parse_embed_row("content.comments"), None);
        assert_eq!(parse_embed_row("[x]"), None);
        assert_eq!(parse_embed_row("c[]"), None);
    }

    #[test]
    fn a_parent_is_compared_without_its_embedded_arrays() {
        let fetched = rawdoc! { "_id": 1, "a": "x", "comments": [ { "_id": "k1" } ], "b": 2 };
        let place = Place::Doc {
            strip: vec!["comments".into()],
        };
        let view = place.view(&Bson::Int32(1), &fetched).unwrap().unwrap();
        assert_eq!(
            view.to_document().unwrap(),
            doc! { "_id": 1, "a": "x", "b": 2 }
        );
        let whole = Place::Doc { strip: vec![] };
        assert_eq!(
            whole
                .view(&Bson::Int32(1), &fetched)
                .unwrap()
                .unwrap()
                .as_ref(),
            &fetched
        );
    }

    #[test]
    fn an_embedded_child_is_found_by_its_id_or_reported_absent() {
        let fetched = rawdoc! { "_id": 1, "comments": [
            { "_id": "k1", "t": 1 },
            { "_id": "k2", "t": 2, "_fs_updated": 5_i64 },
        ] };
        let place = Place::Element {
            parent_collection: "content".into(),
            parent_id: Bson::Int32(1),
            field: "comments".into(),
        };
        let k2 = place
            .view(&Bson::String("k2".into()), &fetched)
            .unwrap()
            .unwrap();
        // The guard's stamp on the element is not data.
        assert_eq!(k2.to_document().unwrap(), doc! { "_id": "k2", "t": 2 });
        assert!(place
            .view(&Bson::String("k3".into()), &fetched)
            .unwrap()
            .is_none());
        // A parent without the array at all holds no child.
        assert!(place
            .view(&Bson::String("k1".into()), &rawdoc! { "_id": 1 })
            .unwrap()
            .is_none());
        assert_eq!(
            place.fetch_key("content[comments]", &Bson::String("k1".into())),
            ("content", &Bson::Int32(1))
        );
    }
}
