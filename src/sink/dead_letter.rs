//! Dead letters: a document that cannot be converted, or that the server refuses, is
//! stored in the dead-letter collection with its source path, the rule, the field, the
//! reason and the raw document (as Firestore's REST API writes it, [`typed_json`]), and
//! counted; never dropped silently.

use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, Value};
use gcloud_sdk::prost::Message;
use mongodb::bson::{spec::BinarySubtype, Binary, Bson, DateTime, RawDocumentBuf};

use crate::mapping::item::{WriteItem, WriteKind};
use crate::mapping::outcome::Rejection;
use crate::mapping::value::{to_bson, ConvertOptions};
use crate::sink::typed_json;

/// Default collection for documents that cannot be converted or written.
pub const DEAD_LETTER_COLLECTION: &str = crate::own::DEAD_LETTERS;
/// Largest typed-JSON rendering of a raw document a dead letter holds. A Firestore
/// document is at most 1 MiB, but its typed form can be many times that (a million
/// booleans in an array take some 30 bytes each): past this bound the record keeps the
/// protobuf bytes instead, so it stays under MongoDB's 16 MiB and is still lossless.
const MAX_RAW_BYTES: usize = 12 * 1024 * 1024;

// The record is built here, where it is stored, although a rejection is the mapping's.
impl Rejection {
    /// The dead-letter record: keyed by source path so a rerun replaces rather than
    /// duplicates it; keeps the raw document losslessly and readably, as Firestore's
    /// typed JSON.
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
            // The offending value itself, converted without any mapping (or in its
            // typed form when even that fails), so the reason can be read next to it.
            if let Some(v) = self.field.as_deref().and_then(|f| value_at(&raw.fields, f)) {
                let shown = to_bson(v, &ConvertOptions::default())
                    .unwrap_or_else(|_| typed(typed_json::value(v)));
                d.insert("value", shown);
            }
            let raw_typed = typed(typed_json::document(raw));
            let size = match &raw_typed {
                Bson::Document(doc) => {
                    RawDocumentBuf::from_document(doc).map(|r| r.as_bytes().len())
                }
                Bson::String(text) => Ok(text.len()),
                _ => unreachable!("typed() makes a document or a string"),
            };
            match size {
                Ok(n) if n <= MAX_RAW_BYTES => {
                    d.insert("raw", raw_typed);
                }
                _ => {
                    d.insert(
                        "rawProtobuf",
                        Binary {
                            subtype: BinarySubtype::Generic,
                            bytes: raw.encode_to_vec(),
                        },
                    );
                    d.insert(
                        "rawNote",
                        format!(
                            "the typed JSON of this document exceeds {} MiB; rawProtobuf holds it as google.firestore.v1.Document bytes",
                            MAX_RAW_BYTES >> 20
                        ),
                    );
                }
            }
        }
        d.insert("runId", run_id);
        d.insert("at", DateTime::now());
        WriteItem {
            source_path: self.source_path.clone(),
            id: Bson::String(self.source_path.clone()),
            // A document built from strings, binaries, dates and a raw document bounded
            // above always encodes.
            doc: RawDocumentBuf::from_document(&d).expect("dead letter encodes"),
            literal: false,
            kind: WriteKind::Replace,
        }
    }
}

/// The dead-letter record of a record a source could not read (an export's damaged or
/// undecodable record, `--skip-corrupt`): keyed by where it is (`file@offset`), so a
/// rerun replaces it; holds the reason and the record's bytes as read (bounded like a
/// raw document), so nothing of it is lost and it can be examined.
pub fn corrupt_record(at: &str, reason: &str, bytes: &[u8], run_id: &str) -> WriteItem {
    let mut d = mongodb::bson::Document::new();
    d.insert("_id", at);
    d.insert("collection", "");
    d.insert("rule", "corrupt");
    d.insert("field", Bson::Null);
    d.insert("reason", reason);
    let kept = bytes.len().min(MAX_RAW_BYTES);
    d.insert(
        "rawRecord",
        Binary {
            subtype: BinarySubtype::Generic,
            bytes: bytes[..kept].to_vec(),
        },
    );
    if kept < bytes.len() {
        d.insert(
            "rawNote",
            format!("rawRecord holds the first {kept} of {} bytes", bytes.len()),
        );
    }
    d.insert("runId", run_id);
    d.insert("at", DateTime::now());
    WriteItem {
        source_path: at.to_string(),
        id: Bson::String(at.to_string()),
        doc: RawDocumentBuf::from_document(&d).expect("dead letter encodes"),
        literal: false,
        kind: WriteKind::Replace,
    }
}

/// The typed form as an embedded document, or as JSON text when its keys cannot be
/// BSON keys (see [`typed_json`]).
fn typed(doc: mongodb::bson::Document) -> Bson {
    if typed_json::is_storable(&doc) {
        Bson::Document(doc)
    } else {
        Bson::String(typed_json::text(&doc))
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
