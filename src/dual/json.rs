//! JSON → Firestore values, for APIs that take JSON bodies (the example API does).
//!
//! Integers stay integers (Firestore `integerValue`), other numbers become doubles,
//! objects become maps. Strings stay strings: JSON has no timestamp type, so an API
//! that stores times should build `timestampValue`s itself (or cast in the mapping).

use std::collections::HashMap;

use gcloud_sdk::google::firestore::v1::{value::ValueType, ArrayValue, MapValue, Value};

/// One JSON value as a Firestore value.
pub fn value_from_json(v: &serde_json::Value) -> Value {
    let t = match v {
        serde_json::Value::Null => ValueType::NullValue(0),
        serde_json::Value::Bool(b) => ValueType::BooleanValue(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => ValueType::IntegerValue(i),
            None => ValueType::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => ValueType::StringValue(s.clone()),
        serde_json::Value::Array(a) => ValueType::ArrayValue(ArrayValue {
            values: a.iter().map(value_from_json).collect(),
        }),
        serde_json::Value::Object(o) => ValueType::MapValue(MapValue {
            fields: fields_from_json(o),
        }),
    };
    Value {
        value_type: Some(t),
    }
}

/// A JSON object as a document's fields.
pub fn fields_from_json(o: &serde_json::Map<String, serde_json::Value>) -> HashMap<String, Value> {
    o.iter()
        .map(|(k, v)| (k.clone(), value_from_json(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_integers_apart_from_doubles_and_nests_maps() {
        let v: serde_json::Value =
            serde_json::json!({"n": 3, "x": 1.5, "m": {"ok": true, "l": [null, "s"]}});
        let f = fields_from_json(v.as_object().unwrap());
        assert_eq!(f["n"].value_type, Some(ValueType::IntegerValue(3)));
        assert_eq!(f["x"].value_type, Some(ValueType::DoubleValue(1.5)));
        let Some(ValueType::MapValue(m)) = &f["m"].value_type else {
            panic!("map expected")
        };
        assert_eq!(
            m.fields["ok"].value_type,
            Some(ValueType::BooleanValue(true))
        );
        let Some(ValueType::ArrayValue(a)) = &m.fields["l"].value_type else {
            panic!("array expected")
        };
        assert_eq!(a.values.len(), 2);
    }
}
