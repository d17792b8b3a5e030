//! A Firestore document as the typed JSON of Firestore's REST API, held as BSON: what a
//! dead letter keeps of the raw document, so an operator reads it with any MongoDB tool
//! in the form Google documents (and can send it back through the REST API as it is).
//!
//! The REST form (`{"name", "fields": {"a": {"stringValue": "abc"}}, "createTime",
//! "updateTime"}`) maps onto BSON one to one: objects are documents, arrays arrays,
//! strings strings, `true`/`false`/`null` themselves, and JSON numbers (a double or a
//! geopoint's degrees) BSON doubles. It is lossless: 64-bit integers are decimal strings
//! (`integerValue`), NaN and ±Infinity the strings `"NaN"`, `"Infinity"`,
//! `"-Infinity"`, -0.0 stays a negative zero, timestamps are RFC 3339 in UTC with
//! nanoseconds when they have them, bytes are standard base64. Map keys are written in
//! sorted order (protobuf maps have none), so a record is deterministic.
//!
//! One thing does not map: a Firestore field name BSON cannot hold as a key (a NUL) or
//! that servers treat as an operator or a path (a leading `$`, a `.`). Such a document —
//! often the very reason it was dead-lettered — is kept as the same JSON, as text
//! ([`is_storable`], [`text`]).

use std::collections::HashMap;

use base64::Engine as _;
use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, Value};
use mongodb::bson::{Bson, Document as BsonDocument};

/// The whole document: `name`, `fields`, and `createTime` / `updateTime` when known.
pub fn document(doc: &Document) -> BsonDocument {
    let mut out = BsonDocument::new();
    out.insert("name", doc.name.clone());
    out.insert("fields", fields(&doc.fields));
    if let Some(t) = &doc.create_time {
        out.insert("createTime", timestamp(t));
    }
    if let Some(t) = &doc.update_time {
        out.insert("updateTime", timestamp(t));
    }
    out
}

/// One value: a document with one key naming its kind (`{"integerValue": "12"}`).
pub fn value(v: &Value) -> BsonDocument {
    let mut out = BsonDocument::new();
    let (kind, inner): (&str, Bson) = match &v.value_type {
        // A value without a kind is what the API reads as null.
        None | Some(ValueType::NullValue(_)) => ("nullValue", Bson::Null),
        Some(ValueType::BooleanValue(b)) => ("booleanValue", Bson::Boolean(*b)),
        Some(ValueType::IntegerValue(i)) => ("integerValue", Bson::String(i.to_string())),
        Some(ValueType::DoubleValue(d)) => ("doubleValue", double(*d)),
        Some(ValueType::TimestampValue(t)) => ("timestampValue", timestamp(t)),
        Some(ValueType::StringValue(s)) => ("stringValue", Bson::String(s.clone())),
        Some(ValueType::BytesValue(b)) => (
            "bytesValue",
            Bson::String(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
        Some(ValueType::ReferenceValue(r)) => ("referenceValue", Bson::String(r.clone())),
        Some(ValueType::GeoPointValue(ll)) => {
            let mut g = BsonDocument::new();
            g.insert("latitude", double(ll.latitude));
            g.insert("longitude", double(ll.longitude));
            ("geoPointValue", Bson::Document(g))
        }
        Some(ValueType::ArrayValue(a)) => ("arrayValue", Bson::Document(values(&a.values))),
        Some(ValueType::MapValue(m)) => {
            let mut map = BsonDocument::new();
            // The API leaves `fields` out of an empty map, as `values` of an empty array.
            if !m.fields.is_empty() {
                map.insert("fields", fields(&m.fields));
            }
            ("mapValue", Bson::Document(map))
        }
        // The kinds below only occur in pipeline queries, never in a stored document;
        // they are written in the same form for completeness.
        Some(ValueType::FieldReferenceValue(f)) => ("fieldReferenceValue", Bson::String(f.clone())),
        Some(ValueType::VariableReferenceValue(f)) => {
            ("variableReferenceValue", Bson::String(f.clone()))
        }
        Some(ValueType::FunctionValue(f)) => (
            "functionValue",
            Bson::Document(call(&f.name, &f.args, &f.options)),
        ),
        Some(ValueType::PipelineValue(p)) => {
            let stages: Vec<Bson> = p
                .stages
                .iter()
                .map(|s| Bson::Document(call(&s.name, &s.args, &s.options)))
                .collect();
            let mut d = BsonDocument::new();
            d.insert("stages", stages);
            ("pipelineValue", Bson::Document(d))
        }
    };
    out.insert(kind, inner);
    out
}

/// Whether every key of `doc` (at any depth) can be stored as a BSON key by any
/// server: no NUL, no leading `$`, no `.`.
pub fn is_storable(doc: &BsonDocument) -> bool {
    fn bson_ok(b: &Bson) -> bool {
        match b {
            Bson::Document(d) => is_storable(d),
            Bson::Array(a) => a.iter().all(bson_ok),
            _ => true,
        }
    }
    doc.iter()
        .all(|(k, v)| !k.contains('\0') && !k.starts_with('$') && !k.contains('.') && bson_ok(v))
}

/// The typed form as JSON text (what the REST API would send), for a document whose
/// keys BSON cannot hold. Built from the values [`document`] and [`value`] make:
/// documents, arrays, strings, booleans, null and finite doubles.
pub fn text(doc: &BsonDocument) -> String {
    fn json(b: &Bson) -> serde_json::Value {
        match b {
            Bson::Document(d) => {
                serde_json::Value::Object(d.iter().map(|(k, v)| (k.clone(), json(v))).collect())
            }
            Bson::Array(a) => serde_json::Value::Array(a.iter().map(json).collect()),
            Bson::String(s) => serde_json::Value::String(s.clone()),
            Bson::Boolean(b) => serde_json::Value::Bool(*b),
            Bson::Double(d) => serde_json::Number::from_f64(*d)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            // Nothing else is ever made here.
            _ => serde_json::Value::Null,
        }
    }
    json(&Bson::Document(doc.clone())).to_string()
}

/// A map's fields, keys in sorted order.
fn fields(fields: &HashMap<String, Value>) -> BsonDocument {
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|k| (k.clone(), Bson::Document(value(&fields[k]))))
        .collect()
}

/// An array's `{"values": [...]}` (`{}` when it is empty).
fn values(values: &[Value]) -> BsonDocument {
    let mut out = BsonDocument::new();
    if !values.is_empty() {
        let list: Vec<Bson> = values.iter().map(|v| Bson::Document(value(v))).collect();
        out.insert("values", list);
    }
    out
}

/// A function or pipeline stage: `{"name", "args", "options"}`.
fn call(name: &str, args: &[Value], options: &HashMap<String, Value>) -> BsonDocument {
    let mut out = BsonDocument::new();
    out.insert("name", name);
    if !args.is_empty() {
        let list: Vec<Bson> = args.iter().map(|v| Bson::Document(value(v))).collect();
        out.insert("args", list);
    }
    if !options.is_empty() {
        out.insert("options", fields(options));
    }
    out
}

/// A JSON number, or the string the API uses for what JSON cannot hold.
fn double(d: f64) -> Bson {
    if d.is_nan() {
        Bson::String("NaN".into())
    } else if d == f64::INFINITY {
        Bson::String("Infinity".into())
    } else if d == f64::NEG_INFINITY {
        Bson::String("-Infinity".into())
    } else {
        Bson::Double(d)
    }
}

/// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf's JSON mapping
/// writes a `Timestamp`; one outside the representable range (Firestore refuses such
/// values) keeps its raw seconds and nanoseconds rather than being lost.
fn timestamp(t: &gcloud_sdk::prost_types::Timestamp) -> Bson {
    let nanos = u32::try_from(t.nanos).ok();
    match nanos.and_then(|n| chrono::DateTime::from_timestamp(t.seconds, n)) {
        Some(at) => Bson::String(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => Bson::String(format!("{}s {}ns", t.seconds, t.nanos)),
    }
}

#[cfg(test)]
mod tests {
    use gcloud_sdk::google::firestore::v1::{ArrayValue, MapValue};
    use gcloud_sdk::google::r#type::LatLng;
    use gcloud_sdk::prost_types::Timestamp;
    use mongodb::bson::doc;

    use super::*;

    fn v(t: ValueType) -> Value {
        Value {
            value_type: Some(t),
        }
    }

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn every_scalar_kind_has_the_rest_form() {
        let cases: Vec<(Value, BsonDocument)> = vec![
            (v(ValueType::NullValue(0)), doc! { "nullValue": null }),
            (Value { value_type: None }, doc! { "nullValue": null }),
            (
                v(ValueType::BooleanValue(true)),
                doc! { "booleanValue": true },
            ),
            (
                v(ValueType::IntegerValue(i64::MAX)),
                doc! { "integerValue": "9223372036854775807" },
            ),
            (
                v(ValueType::IntegerValue(-12)),
                doc! { "integerValue": "-12" },
            ),
            (v(ValueType::DoubleValue(1.5)), doc! { "doubleValue": 1.5 }),
            (
                v(ValueType::DoubleValue(f64::NAN)),
                doc! { "doubleValue": "NaN" },
            ),
            (
                v(ValueType::DoubleValue(f64::INFINITY)),
                doc! { "doubleValue": "Infinity" },
            ),
            (
                v(ValueType::DoubleValue(f64::NEG_INFINITY)),
                doc! { "doubleValue": "-Infinity" },
            ),
            (
                v(ValueType::TimestampValue(ts(1_700_000_000, 0))),
                doc! { "timestampValue": "2023-11-14T22:13:20Z" },
            ),
            (
                v(ValueType::TimestampValue(ts(1_700_000_000, 123_456_000))),
                doc! { "timestampValue": "2023-11-14T22:13:20.123456Z" },
            ),
            (
                v(ValueType::TimestampValue(ts(-62_135_596_800, 0))),
                doc! { "timestampValue": "0001-01-01T00:00:00Z" },
            ),
            (
                v(ValueType::StringValue("abc".into())),
                doc! { "stringValue": "abc" },
            ),
            (
                v(ValueType::BytesValue(vec![0, 1, 2, 0xfe, 0xff])),
                doc! { "bytesValue": "AAEC/v8=" },
            ),
            (
                v(ValueType::ReferenceValue(
                    "projects/p/databases/(default)/documents/users/u1".into(),
                )),
                doc! { "referenceValue": "projects/p/databases/(default)/documents/users/u1" },
            ),
            (
                v(ValueType::GeoPointValue(LatLng {
                    latitude: 48.85,
                    longitude: -2.35,
                })),
                doc! { "geoPointValue": { "latitude": 48.85, "longitude": -2.35 } },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(value(&input), want, "{input:?}");
        }
    }

    #[test]
    fn negative_zero_stays_a_negative_zero() {
        let got = value(&v(ValueType::DoubleValue(-0.0)));
        let d = got.get_f64("doubleValue").unwrap();
        assert!(d == 0.0 && d.is_sign_negative());
    }

    #[test]
    fn arrays_and_maps_nest_with_sorted_keys_and_empty_ones_stay_empty() {
        let inner = MapValue {
            fields: HashMap::from([
                ("z".to_string(), v(ValueType::IntegerValue(1))),
                ("a".to_string(), v(ValueType::StringValue("x".into()))),
            ]),
        };
        let array = ArrayValue {
            values: vec![
                v(ValueType::MapValue(inner)),
                v(ValueType::ArrayValue(ArrayValue::default())),
                v(ValueType::MapValue(MapValue::default())),
            ],
        };
        let got = value(&v(ValueType::ArrayValue(array)));
        assert_eq!(
            got,
            doc! { "arrayValue": { "values": [
                { "mapValue": { "fields": {
                    "a": { "stringValue": "x" },
                    "z": { "integerValue": "1" },
                } } },
                { "arrayValue": {} },
                { "mapValue": {} },
            ] } }
        );
        let keys: Vec<&String> = got
            .get_document("arrayValue")
            .unwrap()
            .get_array("values")
            .unwrap()[0]
            .as_document()
            .unwrap()
            .get_document("mapValue")
            .unwrap()
            .get_document("fields")
            .unwrap()
            .keys()
            .collect();
        assert_eq!(keys, ["a", "z"]);
    }

    #[test]
    fn a_document_has_its_name_fields_and_times() {
        let doc = Document {
            name: "projects/p/databases/(default)/documents/users/u1".into(),
            fields: HashMap::from([
                ("n".to_string(), v(ValueType::IntegerValue(12))),
                ("a".to_string(), v(ValueType::StringValue("abc".into()))),
            ]),
            create_time: Some(ts(1_700_000_000, 1)),
            update_time: Some(ts(1_700_000_001, 500_000_000)),
        };
        assert_eq!(
            document(&doc),
            doc! {
                "name": "projects/p/databases/(default)/documents/users/u1",
                "fields": { "a": { "stringValue": "abc" }, "n": { "integerValue": "12" } },
                "createTime": "2023-11-14T22:13:20.000000001Z",
                "updateTime": "2023-11-14T22:13:21.500Z",
            }
        );
        let bare = Document {
            name: "n".into(),
            ..Document::default()
        };
        assert_eq!(document(&bare), doc! { "name": "n", "fields": {} });
    }

    #[test]
    fn names_bson_cannot_hold_are_kept_as_json_text() {
        let doc = Document {
            name: "projects/p/databases/(default)/documents/users/u1".into(),
            fields: HashMap::from([
                ("bad\0name".to_string(), v(ValueType::IntegerValue(5))),
                ("d".to_string(), v(ValueType::DoubleValue(-0.0))),
            ]),
            ..Document::default()
        };
        let typed = document(&doc);
        assert!(!is_storable(&typed));
        let json: serde_json::Value = serde_json::from_str(&text(&typed)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "projects/p/databases/(default)/documents/users/u1",
                "fields": { "bad\0name": { "integerValue": "5" }, "d": { "doubleValue": -0.0 } },
            })
        );
        assert!(text(&typed).contains(r#""bad\u0000name""#));
        for bad in ["$set", "a.b"] {
            let mut d = doc.clone();
            d.fields = HashMap::from([(bad.to_string(), v(ValueType::BooleanValue(true)))]);
            assert!(!is_storable(&document(&d)), "{bad}");
        }
        let mut d = doc.clone();
        d.fields = HashMap::from([("plain".to_string(), v(ValueType::BooleanValue(true)))]);
        assert!(is_storable(&document(&d)));
    }

    #[test]
    fn pipeline_only_kinds_are_written_too() {
        let f = gcloud_sdk::google::firestore::v1::Function {
            name: "eq".into(),
            args: vec![v(ValueType::FieldReferenceValue("state".into()))],
            options: HashMap::new(),
        };
        assert_eq!(
            value(&v(ValueType::FunctionValue(f))),
            doc! { "functionValue": { "name": "eq", "args": [ { "fieldReferenceValue": "state" } ] } }
        );
    }
}
