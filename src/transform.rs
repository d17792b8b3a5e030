//! Transform: one raw Firestore document → one BSON document for its target collection,
//! or a dead-letter record saying why it cannot be converted. Pure and CPU-only.
//!
//! With no mapping, the defaults of DESIGN.md apply: the `keep` identity, a
//! subcollection lands in its own collection named after its path pattern
//! (`content.comments`) with its parent's `_id` in [`PARENT_FIELD`]. With a mapping set
//! ([`Transformer::with_mappings`]) each collection follows its mapping file
//! ([`crate::mapping`]), and collections without one keep those defaults.

use std::sync::Arc;

use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, Value};
use gcloud_sdk::prost::Message;
use mongodb::bson::{spec::BinarySubtype, Binary, Bson, DateTime, RawDocumentBuf};

use crate::mapping::MappingSet;
use crate::path::{default_target_id, CollectionPattern, DocPath, PARENT_FIELD};
use crate::sink::{WriteItem, WriteKind};
use crate::value::{fields_to_document, to_bson, ConvertOptions};

/// Default collection for documents that cannot be converted or written.
pub const DEAD_LETTER_COLLECTION: &str = "_fireshift_dead_letters";
/// Longest readable rendering of a raw document kept in a dead letter (the lossless
/// protobuf bytes are kept whole).
const MAX_RAW_TEXT: usize = 16 * 1024;

/// A converted document, ready for the sink.
#[derive(Debug)]
pub struct Transformed {
    pub pattern: CollectionPattern,
    pub collection: String,
    pub item: WriteItem,
}

/// Why a document could not be converted.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub source_path: String,
    pub pattern: Option<CollectionPattern>,
    /// Which rule refused it: `path`, `identity`, `convert`, `encode`, `sink`; with
    /// mappings also `cast`, `required`, `reference`, `field-name`, `rename`,
    /// `metadata`, `embed`, `embed-limit` (docs/mappings.md, "Dead letters").
    pub rule: &'static str,
    /// The field path concerned, if any.
    pub field: Option<String>,
    pub reason: String,
}

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
                literal: crate::sink::has_dollar_field(&out),
                kind: WriteKind::Replace,
            },
        })
    }
}

impl Rejection {
    /// The dead-letter record: keyed by source path so a rerun replaces rather than
    /// duplicates it; keeps the raw document losslessly (protobuf bytes) and readably.
    pub fn dead_letter(&self, raw: Option<&Document>, run_id: &str) -> WriteItem {
        let mut d = mongodb::bson::Document::new();
        d.insert("_id", self.source_path.clone());
        d.insert(
            "collection",
            self.pattern
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
        );
        d.insert("rule", self.rule);
        d.insert(
            "field",
            self.field.clone().map(Bson::String).unwrap_or(Bson::Null),
        );
        d.insert("reason", self.reason.clone());
        if let Some(raw) = raw {
            // The offending value itself, converted without any mapping (or as text
            // when even that fails), so the reason can be read next to it.
            if let Some(v) = self.field.as_deref().and_then(|f| value_at(&raw.fields, f)) {
                let shown = to_bson(v, &ConvertOptions::default())
                    .unwrap_or_else(|_| Bson::String(format!("{v:?}")));
                d.insert("value", shown);
            }
            d.insert(
                "raw",
                Binary {
                    subtype: BinarySubtype::Generic,
                    bytes: raw.encode_to_vec(),
                },
            );
            let mut text = format!("{:?}", raw.fields);
            if text.len() > MAX_RAW_TEXT {
                let mut cut = MAX_RAW_TEXT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            d.insert("rawText", text);
        }
        d.insert("runId", run_id);
        d.insert("at", DateTime::now());
        WriteItem {
            source_path: self.source_path.clone(),
            id: Bson::String(self.source_path.clone()),
            // A document built from strings, binaries and dates always encodes.
            doc: RawDocumentBuf::from_document(&d).expect("dead letter encodes"),
            literal: false,
            kind: WriteKind::Replace,
        }
    }
}

/// The value at a field path as rejections name it (`a.b[2].c`); `None` when the path
/// does not lead to a value (or a name holds a `.`, which the path cannot tell apart).
fn value_at<'a>(
    fields: &'a std::collections::HashMap<String, Value>,
    path: &str,
) -> Option<&'a Value> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        steps.push(Err(name));
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            steps.push(Ok(r[..end].parse::<usize>().ok()?));
            rest = &r[end + 1..];
        }
    }
    let mut current: Option<&Value> = None;
    for step in steps {
        current = match (step, current.and_then(|v| v.value_type.as_ref())) {
            (Err(name), None) if current.is_none() => fields.get(name),
            (Err(name), Some(ValueType::MapValue(m))) => m.fields.get(name),
            (Ok(i), Some(ValueType::ArrayValue(a))) => a.values.get(i),
            _ => return None,
        };
        current?;
    }
    current
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
    fn dead_letter_keeps_path_rule_reason_and_lossless_raw() {
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
        let bytes = &dl.get_binary_generic("raw").unwrap()[..];
        assert_eq!(Document::decode(bytes).unwrap(), raw);
    }
}
