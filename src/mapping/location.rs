//! Where a Firestore document lives in MongoDB, from its path alone: what a delete
//! needs (it has no document to transform). The same rules as the transform's
//! ([`crate::mapping::apply`]): the mapping's target collection and identity, or, for an
//! embedded subcollection, the parent's document and the array field.

use mongodb::bson::Bson;
use serde::{Deserialize, Serialize};

use crate::mapping::{Landing, MappingSet};
use crate::path::DocPath;

/// The MongoDB place of one Firestore document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The target collection (for an embedded document, its parent's).
    #[serde(rename = "c")]
    pub collection: String,
    /// The target document's `_id` (for an embedded document, the parent's).
    #[serde(rename = "i")]
    pub id: Bson,
    /// For an embedded document: the parent's array field and the element's `_id`.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub embed: Option<Embedded>,
}

/// An element of a parent's array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedded {
    pub field: String,
    pub id: Bson,
}

impl MappingSet {
    /// The place of the document at `path`. An error when the place depends on the
    /// document's content (an `_id` taken from a field): then only the ledger, which
    /// recorded the place when the document was written, knows it.
    pub fn location_of(&self, path: &DocPath<'_>) -> Result<Location, String> {
        let pattern = path.pattern();
        let landing = self.get(&pattern).map(|m| &m.landing);
        if let Some(Landing::Embed { field, .. }) = landing {
            let parent = path
                .parent()
                .ok_or_else(|| format!("`{}` is embedded but has no parent", path.relative()))?;
            return Ok(Location {
                collection: self.target_of(&parent.pattern()),
                id: self.target_id(&parent)?,
                embed: Some(Embedded {
                    field: field.clone(),
                    id: self.target_id(path)?,
                }),
            });
        }
        Ok(Location {
            collection: self.target_of(&pattern),
            id: self.target_id(path)?,
            embed: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_documents_keep_the_default_place() {
        let set = MappingSet::empty();
        let root = set
            .location_of(&DocPath::parse("users/u1").unwrap())
            .unwrap();
        assert_eq!(root.collection, "users");
        assert_eq!(root.id, Bson::String("u1".into()));
        assert!(root.embed.is_none());
        let sub = set
            .location_of(&DocPath::parse("users/u1/posts/p1").unwrap())
            .unwrap();
        assert_eq!(sub.collection, "users.posts");
        assert_eq!(sub.id, Bson::String("users/u1/posts/p1".into()));
    }

    #[test]
    fn embedded_documents_are_elements_of_their_parent() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/mixillo");
        let set = MappingSet::load(&dir).expect("the shipped mappings load");
        // Find any embedded mapping in the shipped set and check its place.
        let m = set
            .mappings()
            .find(|m| matches!(m.landing, Landing::Embed { .. }))
            .expect("mixillo embeds at least one subcollection");
        let Landing::Embed { field, .. } = &m.landing else {
            unreachable!()
        };
        let rel = m
            .pattern
            .to_string()
            .split('/')
            .map(|s| if s == "{}" { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/")
            + "/e1";
        let path = DocPath::parse(&rel).unwrap();
        let loc = set.location_of(&path).unwrap();
        let parent = path.parent().unwrap();
        assert_eq!(loc.collection, set.target_of(&parent.pattern()));
        assert_eq!(loc.id, set.target_id(&parent).unwrap());
        let e = loc.embed.expect("an element");
        assert_eq!(&e.field, field);
        assert_eq!(e.id, set.target_id(&path).unwrap());
    }

    #[test]
    fn a_collection_knows_the_arrays_its_children_fill() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/mixillo");
        let set = MappingSet::load(&dir).expect("the shipped mappings load");
        assert_eq!(set.embedded_fields_of("comments"), ["replies"]);
        assert!(set.embedded_fields_of("no_such_collection").is_empty());
        assert!(MappingSet::empty()
            .embedded_fields_of("comments")
            .is_empty());
    }
}
