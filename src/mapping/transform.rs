//! Transform: one raw Firestore document → one BSON document for its target collection,
//! or a dead-letter record saying why it cannot be converted. Pure and CPU-only.
//!
//! With no mapping, the defaults of DESIGN.md apply: the `keep` identity, a
//! subcollection lands in its own collection named after its path pattern
//! (`content.comments`) with its parent's `_id` in [`PARENT_FIELD`]. With a mapping set
//! ([`Transformer::with_mappings`]) each collection follows its mapping file
//! ([`crate::mapping`]), and collections without one keep those defaults.

use std::sync::Arc;

use gcloud_sdk::google::firestore::v1::Document;
use mongodb::bson::{Bson, RawDocumentBuf};

use crate::mapping::item::{WriteItem, WriteKind};
pub use crate::mapping::outcome::{Rejection, Transformed};
use crate::mapping::value::{fields_to_document, ConvertOptions};
use crate::mapping::MappingSet;
use crate::path::{default_target_id, CollectionPattern, DocPath, PARENT_FIELD};

/// Applies the mappings (or, by default, none: the defaults of DESIGN.md).
#[derive(Debug, Clone, Default)]
pub struct Transformer {
    /// Conversion options of the default mapping (ignored with a mapping set, whose
    /// dataset and mappings say how names convert).
    pub options: ConvertOptions,
    mappings: Option<Arc<MappingSet>>,
}

impl Transformer {
    /// A transformer that follows a validated mapping set.
    pub fn with_mappings(set: MappingSet) -> Self {
        Self {
            options: ConvertOptions {
                field_names: set.dataset.field_names,
            },
            mappings: Some(Arc::new(set)),
        }
    }

    /// The transformer for a mapping directory (`--mappings DIR`), or the default
    /// mapping for `None`. Reads and validates the files only, so a caller can refuse a
    /// broken mapping before connecting to anything.
    pub fn from_dir(dir: Option<&std::path::Path>) -> Result<Self, crate::mapping::MappingErrors> {
        match dir {
            None => Ok(Self::default()),
            Some(dir) => MappingSet::load(dir).map(Self::with_mappings),
        }
    }

    /// The mapping set, if any.
    pub fn mappings(&self) -> Option<&MappingSet> {
        self.mappings.as_deref()
    }

    /// A stable fingerprint of everything that decides the output, stored with a job's
    /// checkpoints so a resume with different rules is noticed. With mappings: the
    /// sha256 (hex) of the normalized mapping set ([`MappingSet::fingerprint`]). Without:
    /// FNV-1a over a canonical description (unchanged, so existing jobs still resume);
    /// both are stable across builds and platforms, unlike `Hash`.
    pub fn fingerprint(&self) -> String {
        if let Some(set) = &self.mappings {
            return set.fingerprint().to_string();
        }
        let description = format!(
            "fireshift-default-mapping/v1;field_names={:?}",
            self.options.field_names
        );
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in description.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    }

    /// Converts one document, or says why it cannot be (a dead letter).
    pub fn apply(&self, doc: &Document) -> Result<Transformed, Rejection> {
        if let Some(set) = &self.mappings {
            return crate::mapping::apply::apply(set, doc);
        }
        let reject = |pattern: Option<CollectionPattern>,
                      rule,
                      field: Option<String>,
                      reason: String| Rejection {
            source_path: doc.name.clone(),
            pattern,
            rule,
            field,
            reason,
        };
        let path =
            DocPath::parse(&doc.name).map_err(|e| reject(None, "path", None, e.to_string()))?;
        let pattern = path.pattern();
        let id = Bson::String(default_target_id(&path));
        let parent = path.parent().map(|p| default_target_id(&p));
        // The target's identity fields must not be shadowed by a source field of the
        // same name: silently overwriting either would lose data.
        for reserved in ["_id", PARENT_FIELD] {
            if doc.fields.contains_key(reserved) && (reserved == "_id" || parent.is_some()) {
                return Err(reject(
                    Some(pattern),
                    "identity",
                    Some(reserved.to_string()),
                    format!("source field `{reserved}` clashes with the target's `{reserved}`; rename it in a mapping"),
                ));
            }
        }
        let fields = fields_to_document(&doc.fields, &self.options).map_err(|e| {
            reject(
                Some(pattern.clone()),
                "convert",
                Some(e.field.clone()),
                e.reason,
            )
        })?;
        let mut out = mongodb::bson::Document::new();
        out.insert("_id", id.clone());
        if let Some(parent) = parent {
            out.insert(PARENT_FIELD, parent);
        }
        out.extend(fields);
        let raw = RawDocumentBuf::from_document(&out)
            .map_err(|e| reject(Some(pattern.clone()), "encode", None, e.to_string()))?;
        Ok(Transformed {
            collection: pattern.default_target(),
            pattern,
            item: WriteItem {
                source_path: doc.name.clone(),
                id,
                doc: raw,
                literal: crate::mapping::item::has_dollar_field(&out),
                kind: WriteKind::Replace,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::typed_doc as document;
    use gcloud_sdk::google::firestore::v1::value::ValueType;
    use mongodb::bson::doc;

    #[test]
    fn root_document_keeps_its_id_and_lands_in_its_collection() {
        let t = Transformer::default()
            .apply(&document(
                "users/u1",
                vec![("name", ValueType::StringValue("Ann".into()))],
            ))
            .unwrap();
        assert_eq!(t.collection, "users");
        assert_eq!(t.pattern.to_string(), "users");
        let d: mongodb::bson::Document = t.item.doc.to_document().unwrap();
        assert_eq!(d, doc! { "_id": "u1", "name": "Ann" });
    }

    #[test]
    fn subcollection_document_gets_path_id_and_parent_key() {
        let t = Transformer::default()
            .apply(&document(
                "content/c1/comments/k1/replies/r1",
                vec![("n", ValueType::IntegerValue(1))],
            ))
            .unwrap();
        assert_eq!(t.collection, "content.comments.replies");
        let d = t.item.doc.to_document().unwrap();
        assert_eq!(
            d,
            doc! { "_id": "content/c1/comments/k1/replies/r1", "_parent": "content/c1/comments/k1", "n": 1i64 }
        );
    }

    #[test]
    fn a_source_field_named_like_the_identity_is_rejected_with_reason() {
        let r = Transformer::default()
            .apply(&document(
                "users/u1",
                vec![("_id", ValueType::StringValue("x".into()))],
            ))
            .unwrap_err();
        assert_eq!(r.rule, "identity");
        assert_eq!(r.field.as_deref(), Some("_id"));
        assert!(r.reason.contains("clashes"));
        // `_parent` only clashes where the target has a parent key.
        assert!(Transformer::default()
            .apply(&document(
                "users/u1",
                vec![("_parent", ValueType::BooleanValue(true))]
            ))
            .is_ok());
        let r = Transformer::default()
            .apply(&document(
                "a/1/b/2",
                vec![("_parent", ValueType::BooleanValue(true))],
            ))
            .unwrap_err();
        assert_eq!(r.field.as_deref(), Some("_parent"));
    }

    #[test]
    fn dead_letter_keeps_path_rule_reason_and_the_raw_document_as_typed_json() {
        let raw = document("users/u1", vec![("bad\0name", ValueType::IntegerValue(5))]);
        let r = Transformer::default().apply(&raw).unwrap_err();
        assert_eq!(r.rule, "convert");
        let dl = r
            .dead_letter(Some(&raw), "run-1")
            .doc
            .to_document()
            .unwrap();
        assert_eq!(dl.get_str("_id").unwrap(), raw.name);
        assert_eq!(dl.get_str("collection").unwrap(), "users");
        assert!(dl.get_str("reason").unwrap().contains("NUL"));
        // A NUL cannot be a BSON key: the typed JSON is kept as text.
        let text = dl.get_str("raw").unwrap();
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(json["name"], raw.name.as_str());
        assert_eq!(json["fields"]["bad\0name"]["integerValue"], "5");

        let raw = document("users/u2", vec![("_id", ValueType::DoubleValue(f64::NAN))]);
        let r = Transformer::default().apply(&raw).unwrap_err();
        let dl = r
            .dead_letter(Some(&raw), "run-1")
            .doc
            .to_document()
            .unwrap();
        assert_eq!(
            dl.get_document("raw").unwrap(),
            &doc! { "name": &raw.name, "fields": { "_id": { "doubleValue": "NaN" } } }
        );
        assert!(dl.get("rawText").is_none() && dl.get("rawProtobuf").is_none());
    }
}
