//! Builders for Firestore values and documents in unit tests (no server).

use gcloud_sdk::google::firestore::v1::{value::ValueType, ArrayValue, Document, MapValue, Value};

/// The documents root of the tests' project `p`, with its trailing slash.
pub const ROOT: &str = "projects/p/databases/(default)/documents/";

pub fn v(t: ValueType) -> Value {
    Value {
        value_type: Some(t),
    }
}

pub fn s(x: &str) -> Value {
    v(ValueType::StringValue(x.into()))
}

pub fn i(x: i64) -> Value {
    v(ValueType::IntegerValue(x))
}

pub fn arr(values: Vec<Value>) -> Value {
    v(ValueType::ArrayValue(ArrayValue { values }))
}

pub fn map(entries: Vec<(&str, Value)>) -> Value {
    v(ValueType::MapValue(MapValue {
        fields: entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }))
}

/// The document at `path` under [`ROOT`], without create or update times.
pub fn doc(path: &str, fields: Vec<(&str, Value)>) -> Document {
    Document {
        name: format!("{ROOT}{path}"),
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    }
}

/// [`doc`] from bare value types.
pub fn typed_doc(path: &str, fields: Vec<(&str, ValueType)>) -> Document {
    doc(path, fields.into_iter().map(|(k, t)| (k, v(t))).collect())
}
