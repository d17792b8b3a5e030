//! The vocabulary of the store, shared by every part of it: the operations a caller
//! asks for ([`WriteOp`], [`Fields`]), what a write reports ([`WriteResult`],
//! [`Secondary`]), where a document lives on both sides (`Target`), what an apply left
//! in MongoDB (`Applied`), and the pure helpers that build Firestore values and writes
//! from them. Nothing here does I/O, so every other file of the store may use it.

use std::collections::HashMap;
use std::time::SystemTime;

use gcloud_sdk::google::firestore::v1::{
    precondition, value::ValueType, write, ArrayValue, Document, DocumentMask, MapValue,
    Precondition, Value, Write,
};
use gcloud_sdk::prost_types::Timestamp;
use mongodb::bson::{Bson, RawDocumentBuf};

use super::error::{DualError, DualResult};
use super::mode::Mode;
use crate::error::Error;
use crate::sink::guard::{self, GUARD_FIELD};

/// A document's fields, as Firestore values.
pub type Fields = HashMap<String, Value>;

/// Most writes one Firestore commit accepts; one is kept for the outbox entry.
pub const MAX_BATCH_WRITES: usize = 499;

/// One write of a batch.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Fails with [`DualError::AlreadyExists`] when the document exists.
    Create {
        path: String,
        fields: Fields,
    },
    /// Replaces the whole document (creates it when absent).
    Set {
        path: String,
        fields: Fields,
    },
    /// Merges: sets each dotted field path to its value, or deletes it (`None`); the
    /// other fields are kept. Fails with [`DualError::NotFound`] when absent.
    Update {
        path: String,
        fields: Vec<(String, Option<Value>)>,
    },
    Delete {
        path: String,
    },
}

impl WriteOp {
    pub fn path(&self) -> &str {
        match self {
            WriteOp::Create { path, .. }
            | WriteOp::Set { path, .. }
            | WriteOp::Update { path, .. }
            | WriteOp::Delete { path } => path,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            WriteOp::Create { .. } => "create",
            WriteOp::Set { .. } => "set",
            WriteOp::Update { .. } => "update",
            WriteOp::Delete { .. } => "delete",
        }
    }
}

/// What the secondary did with a write, as far as the call knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secondary {
    /// The mode has no secondary.
    None,
    /// MongoDB holds the state the primary had after the write (or a newer one).
    Written,
    /// MongoDB failed or timed out: the outbox entry will bring it up to date.
    Deferred,
}

/// The result of one write.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// Relative path (`users/u1`).
    pub path: String,
    pub mode: Mode,
    /// The primary's update time (Firestore commit time, or the wall clock in
    /// `MongoOnly`), as guard nanoseconds.
    pub update_time: i64,
    pub secondary: Secondary,
}

/// What the secondary holds after an apply: the primary state with this update time,
/// or no document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Present(i64),
    Absent,
}

impl Applied {
    pub(crate) fn of(doc: Option<&Document>) -> Self {
        match doc.and_then(|d| d.update_time.as_ref()) {
            Some(t) => Applied::Present(guard::timestamp_nanos(t)),
            None => Applied::Absent,
        }
    }
}

/// Where a document lives on both sides.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Relative path (`users/u1`).
    pub rel: String,
    /// Full Firestore name (`projects/P/databases/D/documents/users/u1`).
    pub name: String,
    /// Collection pattern (`users`, `content/{}/comments`): modes and metrics key on it.
    pub pattern: String,
    /// MongoDB collection the mapping sends it to.
    pub collection: String,
    /// MongoDB `_id` (`Null` in `FirestoreOnly` when the mapping cannot derive one).
    pub id: Bson,
    pub mode: Mode,
}

/// A stored document as callers see it: without the guard field.
pub(crate) fn for_caller(d: &RawDocumentBuf) -> DualResult<mongodb::bson::Document> {
    let mut d = mongodb::bson::Document::try_from(d.as_ref()).map_err(|e| {
        DualError::Io(Error::CorruptState {
            location: "a MongoDB document".into(),
            message: format!("malformed BSON: {e}"),
        })
    })?;
    d.remove(GUARD_FIELD);
    Ok(d)
}

/// The Firestore write of one operation.
pub(crate) fn firestore_write(op: &WriteOp, t: &Target) -> DualResult<Write> {
    let exists = |b| {
        Some(Precondition {
            condition_type: Some(precondition::ConditionType::Exists(b)),
        })
    };
    Ok(match op {
        WriteOp::Create { fields, .. } => Write {
            operation: Some(write::Operation::Update(Document {
                name: t.name.clone(),
                fields: fields.clone(),
                ..Default::default()
            })),
            current_document: exists(false),
            ..Default::default()
        },
        WriteOp::Set { fields, .. } => Write {
            operation: Some(write::Operation::Update(Document {
                name: t.name.clone(),
                fields: fields.clone(),
                ..Default::default()
            })),
            ..Default::default()
        },
        WriteOp::Update { fields, .. } => {
            let mut nested = HashMap::new();
            let mut paths = Vec::with_capacity(fields.len());
            for (path, value) in fields {
                if path.is_empty()
                    || path.split('.').any(|s| {
                        s.is_empty()
                            || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            || s.starts_with(|c: char| c.is_ascii_digit())
                    })
                {
                    return Err(DualError::Unsupported(format!(
                        "update field path `{path}`: only dotted names of letters, digits and `_` (not starting with a digit) are supported"
                    )));
                }
                if let Some(v) = value {
                    insert_path(&mut nested, path, v.clone());
                }
                paths.push(path.clone());
            }
            Write {
                operation: Some(write::Operation::Update(Document {
                    name: t.name.clone(),
                    fields: nested,
                    ..Default::default()
                })),
                update_mask: Some(DocumentMask { field_paths: paths }),
                current_document: exists(true),
                ..Default::default()
            }
        }
        WriteOp::Delete { .. } => Write {
            operation: Some(write::Operation::Delete(t.name.clone())),
            ..Default::default()
        },
    })
}

/// Puts `value` at a dotted path, creating the intermediate maps.
fn insert_path(fields: &mut HashMap<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            fields.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = fields.entry(head.to_string()).or_insert_with(|| Value {
                value_type: Some(ValueType::MapValue(MapValue::default())),
            });
            if !matches!(entry.value_type, Some(ValueType::MapValue(_))) {
                entry.value_type = Some(ValueType::MapValue(MapValue::default()));
            }
            if let Some(ValueType::MapValue(m)) = &mut entry.value_type {
                insert_path(&mut m.fields, rest, value);
            }
        }
    }
}

/// A Firestore timestamp for the wall clock.
pub(crate) fn now_timestamp() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A Firestore string array.
pub(crate) fn string_array(items: &[String]) -> Value {
    Value {
        value_type: Some(ValueType::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|s| Value {
                    value_type: Some(ValueType::StringValue(s.clone())),
                })
                .collect(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value {
            value_type: Some(ValueType::StringValue(v.into())),
        }
    }

    #[test]
    fn update_paths_nest_into_maps_and_fill_the_mask() {
        let t = Target {
            rel: "users/u1".into(),
            name: "projects/p/databases/(default)/documents/users/u1".into(),
            pattern: "users".into(),
            collection: "users".into(),
            id: Bson::String("u1".into()),
            mode: Mode::DualReadFirestore,
        };
        let op = WriteOp::Update {
            path: "users/u1".into(),
            fields: vec![
                ("profile.name".into(), Some(s("Ann"))),
                ("profile.city".into(), Some(s("Oslo"))),
                ("old".into(), None),
            ],
        };
        let w = firestore_write(&op, &t).unwrap();
        assert_eq!(
            w.update_mask.unwrap().field_paths,
            vec!["profile.name", "profile.city", "old"]
        );
        let Some(write::Operation::Update(d)) = w.operation else {
            panic!("update expected")
        };
        let Some(ValueType::MapValue(m)) = &d.fields["profile"].value_type else {
            panic!("map expected")
        };
        assert_eq!(m.fields.len(), 2);
        assert!(
            !d.fields.contains_key("old"),
            "a deleted field is in the mask only"
        );
        let bad = WriteOp::Update {
            path: "users/u1".into(),
            fields: vec![("a..b".into(), None)],
        };
        assert!(matches!(
            firestore_write(&bad, &t),
            Err(DualError::Unsupported(_))
        ));
    }
}
