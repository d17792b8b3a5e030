//! A Firestore value type as `plan` reports it ([`Kind`]; `vector` apart from `map`).

use gcloud_sdk::google::firestore::v1::{value::ValueType, MapValue, Value};
use serde::Serialize;

/// A Firestore value type as `plan` reports it (`vector` apart from `map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Null,
    Boolean,
    Integer,
    Double,
    Timestamp,
    String,
    Bytes,
    Reference,
    Geopoint,
    Array,
    Map,
    Vector,
}

impl Kind {
    pub fn of(v: &Value) -> Kind {
        match &v.value_type {
            None | Some(ValueType::NullValue(_)) => Kind::Null,
            Some(ValueType::BooleanValue(_)) => Kind::Boolean,
            Some(ValueType::IntegerValue(_)) => Kind::Integer,
            Some(ValueType::DoubleValue(_)) => Kind::Double,
            Some(ValueType::TimestampValue(_)) => Kind::Timestamp,
            Some(ValueType::StringValue(_)) => Kind::String,
            Some(ValueType::BytesValue(_)) => Kind::Bytes,
            Some(ValueType::ReferenceValue(_)) => Kind::Reference,
            Some(ValueType::GeoPointValue(_)) => Kind::Geopoint,
            Some(ValueType::ArrayValue(_)) => Kind::Array,
            Some(ValueType::MapValue(m)) if is_vector(m) => Kind::Vector,
            Some(ValueType::MapValue(_)) => Kind::Map,
            // Pipeline-only values never occur in stored documents.
            Some(_) => Kind::Null,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::Double => "double",
            Kind::Timestamp => "timestamp",
            Kind::String => "string",
            Kind::Bytes => "bytes",
            Kind::Reference => "reference",
            Kind::Geopoint => "geopoint",
            Kind::Array => "array",
            Kind::Map => "map",
            Kind::Vector => "vector",
        }
    }
}

fn is_vector(m: &MapValue) -> bool {
    matches!(
        m.fields.get("__type__").and_then(|v| v.value_type.as_ref()),
        Some(ValueType::StringValue(s)) if s == "__vector__"
    )
}
