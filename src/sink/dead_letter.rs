//! Dead letters: a document that cannot be converted, or that the server refuses, is
//! stored in the dead-letter collection with its source path, the rule, the field, the
//! reason and the raw document, and counted; never dropped silently.

use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, Value};
use gcloud_sdk::prost::Message;
use mongodb::bson::{spec::BinarySubtype, Binary, Bson, DateTime, RawDocumentBuf};

use crate::mapping::item::{WriteItem, WriteKind};
use crate::mapping::outcome::Rejection;
use crate::mapping::value::{to_bson, ConvertOptions};

/// Default collection for documents that cannot be converted or written.
pub const DEAD_LETTER_COLLECTION: &str = crate::own::DEAD_LETTERS;
/// Longest readable rendering of a raw document kept in a dead letter (the lossless
/// protobuf bytes are kept whole).
const MAX_RAW_TEXT: usize = 16 * 1024;

// The record is built here, where it is stored, although a rejection is the mapping's.
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
