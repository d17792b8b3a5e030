//! Firestore protobuf values → BSON: the type table of DESIGN.md (and docs/type-mapping.md).
//!
//! The input is the lossless `google.firestore.v1.Value` as it came off the wire (never
//! a JSON rendering), so integers keep 64 bits, doubles keep NaN/±Inf/-0.0 and bytes stay
//! bytes. Conversion is pure: it needs no server and is unit-tested row by row.

use std::collections::HashMap;

use gcloud_sdk::google::firestore::v1::{value::ValueType, MapValue, Value};
use mongodb::bson::{spec::BinarySubtype, Binary, Bson, DateTime, Document};

use crate::path::{default_target_id, DocPath};

/// Marks a Firestore vector: a map `{__type__: "__vector__", value: [doubles]}`.
const VECTOR_TYPE_KEY: &str = "__type__";
const VECTOR_TYPE: &str = "__vector__";
const VECTOR_VALUE_KEY: &str = "value";

/// What to do with a field name that MongoDB treats specially (`.` inside, `$` leading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldNamePolicy {
    /// Write the name unchanged (MongoDB 5.0+ stores such names; querying them needs
    /// `$getField`). Lossless, hence the default.
    #[default]
    Keep,
    /// Replace `.` with U+FF0E and a leading `$` with U+FF04 (the usual MongoDB escape).
    Escape,
    /// Refuse the document (it goes to the dead letters with the field path).
    Reject,
}

/// Options that decide how values convert; the defaults are the DESIGN type table.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    pub field_names: FieldNamePolicy,
}

/// A value that cannot be converted, with the field path where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct ConvertError {
    /// Dotted path with `[i]` for array elements, e.g. `places[2].geo`.
    pub field: String,
    pub reason: String,
    /// What kind of value failed, so a mapping can name the rule that refused it.
    pub kind: ConvertErrorKind,
}

/// Which part of the conversion failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertErrorKind {
    /// A value BSON cannot hold (bad timestamp, broken vector, NUL in a field name…).
    Value,
    /// A field name refused by the `reject` field-name policy.
    FieldName,
    /// A reference value that cannot be resolved to the referenced document's `_id`.
    Reference,
}

/// Resolves a Firestore reference value (a document path) to what the target stores for
/// it. The default, [`DefaultReferences`], is the referenced document's `_id` under the
/// default `keep` identity; a mapping set resolves through the referenced collection's
/// mapping. Must be pure: the same path always gives the same value.
pub trait ResolveReference {
    fn resolve(&self, path: &DocPath<'_>) -> Result<Bson, String>;
}

/// The default identity: `users/u1` → `"u1"`, `content/c1/comments/k9` → its path.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultReferences;

impl ResolveReference for DefaultReferences {
    fn resolve(&self, path: &DocPath<'_>) -> Result<Bson, String> {
        Ok(Bson::String(default_target_id(path)))
    }
}

impl ConvertError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            field: String::new(),
            reason: reason.into(),
            kind: ConvertErrorKind::Value,
        }
    }

    fn of_kind(kind: ConvertErrorKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            ..Self::new(reason)
        }
    }

    /// Prepends the enclosing field name while the error travels up the recursion
    /// (cheaper than carrying a path on the success path).
    pub fn within_field(mut self, name: &str) -> Self {
        self.field = if self.field.is_empty() {
            name.to_string()
        } else if self.field.starts_with('[') {
            format!("{name}{}", self.field)
        } else {
            format!("{name}.{}", self.field)
        };
        self
    }

    pub fn within_index(mut self, i: usize) -> Self {
        self.field = if self.field.is_empty() || self.field.starts_with('[') {
            format!("[{i}]{}", self.field)
        } else {
            format!("[{i}].{}", self.field)
        };
        self
    }
}

/// Converts a document's top-level fields; keys are sorted so the output is deterministic
/// (protobuf maps have no order).
pub fn fields_to_document(
    fields: &HashMap<String, Value>,
    opts: &ConvertOptions,
) -> Result<Document, ConvertError> {
    fields_to_document_with(fields, opts, &DefaultReferences)
}

/// [`fields_to_document`] with references resolved by `refs`.
pub fn fields_to_document_with(
    fields: &HashMap<String, Value>,
    opts: &ConvertOptions,
    refs: &dyn ResolveReference,
) -> Result<Document, ConvertError> {
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort_unstable();
    let mut out = Document::new();
    for key in keys {
        let name = field_name(key, opts.field_names).map_err(|e| e.within_field(key))?;
        let v = to_bson_with(&fields[key], opts, refs).map_err(|e| e.within_field(key))?;
        out.insert(name, v);
    }
    Ok(out)
}

/// Converts one Firestore value.
pub fn to_bson(value: &Value, opts: &ConvertOptions) -> Result<Bson, ConvertError> {
    to_bson_with(value, opts, &DefaultReferences)
}

/// [`to_bson`] with references resolved by `refs`.
pub fn to_bson_with(
    value: &Value,
    opts: &ConvertOptions,
    refs: &dyn ResolveReference,
) -> Result<Bson, ConvertError> {
    let Some(vt) = &value.value_type else {
        // A value with no type set is how proto3 encodes an unset oneof; Firestore
        // never sends it for a stored field, so treat it like null rather than fail.
        return Ok(Bson::Null);
    };
    Ok(match vt {
        ValueType::NullValue(_) => Bson::Null,
        ValueType::BooleanValue(b) => Bson::Boolean(*b),
        ValueType::IntegerValue(i) => Bson::Int64(*i),
        ValueType::DoubleValue(d) => Bson::Double(*d),
        ValueType::TimestampValue(ts) => {
            Bson::DateTime(timestamp_to_datetime(ts.seconds, ts.nanos)?)
        }
        ValueType::StringValue(s) => Bson::String(s.clone()),
        ValueType::BytesValue(b) => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: b.clone(),
        }),
        ValueType::ReferenceValue(name) => reference_to_bson(name, refs)?,
        ValueType::GeoPointValue(ll) => geopoint(ll.latitude, ll.longitude),
        ValueType::ArrayValue(arr) => {
            let mut out = Vec::with_capacity(arr.values.len());
            for (i, v) in arr.values.iter().enumerate() {
                out.push(to_bson_with(v, opts, refs).map_err(|e| e.within_index(i))?);
            }
            Bson::Array(out)
        }
        ValueType::MapValue(map) => match vector(map)? {
            Some(v) => v,
            None => Bson::Document(fields_to_document_with(&map.fields, opts, refs)?),
        },
        ValueType::FieldReferenceValue(_)
        | ValueType::VariableReferenceValue(_)
        | ValueType::FunctionValue(_)
        | ValueType::PipelineValue(_) => {
            // Pipeline expressions only occur in queries, never in stored documents.
            return Err(ConvertError::new(
                "pipeline expression values cannot be stored in a document",
            ));
        }
    })
}

/// Firestore timestamps carry microseconds (nanos are multiples of 1000); BSON dates
/// carry milliseconds. Rounds toward negative infinity so that 1969-12-31T23:59:59.9995
/// stays in 1969: `nanos` is always non-negative, even before the epoch.
pub fn timestamp_to_datetime(seconds: i64, nanos: i32) -> Result<DateTime, ConvertError> {
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(ConvertError::new(format!(
            "timestamp nanos {nanos} outside 0..1e9"
        )));
    }
    seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(nanos / 1_000_000)))
        .map(DateTime::from_millis)
        .ok_or_else(|| ConvertError::new(format!("timestamp {seconds}s out of range")))
}

/// GeoJSON point, longitude first, so a `2dsphere` index accepts it.
pub fn geopoint(latitude: f64, longitude: f64) -> Bson {
    let mut d = Document::new();
    d.insert("type", "Point");
    d.insert(
        "coordinates",
        Bson::Array(vec![Bson::Double(longitude), Bson::Double(latitude)]),
    );
    Bson::Document(d)
}

/// A reference becomes the referenced document's target `_id` (default identity, or the
/// referenced collection's mapping), so it resolves with a plain lookup; dangling
/// references convert the same way.
fn reference_to_bson(name: &str, refs: &dyn ResolveReference) -> Result<Bson, ConvertError> {
    let path = DocPath::parse(name)
        .map_err(|e| ConvertError::of_kind(ConvertErrorKind::Reference, e.to_string()))?;
    refs.resolve(&path)
        .map_err(|reason| ConvertError::of_kind(ConvertErrorKind::Reference, reason))
}

/// The Firestore type of a value, as its documentation names it (for messages).
pub fn type_name(value: &Value) -> &'static str {
    match &value.value_type {
        None | Some(ValueType::NullValue(_)) => "null",
        Some(ValueType::BooleanValue(_)) => "boolean",
        Some(ValueType::IntegerValue(_)) => "integer",
        Some(ValueType::DoubleValue(_)) => "double",
        Some(ValueType::TimestampValue(_)) => "timestamp",
        Some(ValueType::StringValue(_)) => "string",
        Some(ValueType::BytesValue(_)) => "bytes",
        Some(ValueType::ReferenceValue(_)) => "reference",
        Some(ValueType::GeoPointValue(_)) => "geopoint",
        Some(ValueType::ArrayValue(_)) => "array",
        Some(ValueType::MapValue(_)) => "map",
        Some(_) => "pipeline expression",
    }
}

/// Recognises the vector encoding and returns its doubles; `None` for an ordinary map.
fn vector(map: &MapValue) -> Result<Option<Bson>, ConvertError> {
    let is_vector = matches!(
        map.fields.get(VECTOR_TYPE_KEY).and_then(|v| v.value_type.as_ref()),
        Some(ValueType::StringValue(s)) if s == VECTOR_TYPE
    );
    if !is_vector {
        return Ok(None);
    }
    let values = match map
        .fields
        .get(VECTOR_VALUE_KEY)
        .and_then(|v| v.value_type.as_ref())
    {
        Some(ValueType::ArrayValue(a)) => &a.values,
        _ => return Err(ConvertError::new("vector without a `value` array")),
    };
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        match v.value_type {
            Some(ValueType::DoubleValue(d)) => out.push(Bson::Double(d)),
            // Firestore accepts integers in a vector literal; they are numbers all the same.
            Some(ValueType::IntegerValue(n)) => out.push(Bson::Double(n as f64)),
            _ => {
                return Err(ConvertError::new("vector element is not a number")
                    .within_index(i)
                    .within_field(VECTOR_VALUE_KEY))
            }
        }
    }
    Ok(Some(Bson::Array(out)))
}

/// Applies the field-name policy. BSON keys are C strings, so a NUL can never be stored.
pub fn field_name(name: &str, policy: FieldNamePolicy) -> Result<String, ConvertError> {
    if name.contains('\0') {
        return Err(ConvertError::new(
            "field name contains NUL, which BSON cannot store",
        ));
    }
    let special = name.contains('.') || name.starts_with('$');
    if !special {
        return Ok(name.to_string());
    }
    match policy {
        FieldNamePolicy::Keep => Ok(name.to_string()),
        FieldNamePolicy::Escape => {
            let escaped = name.replace('.', "\u{FF0E}");
            Ok(match escaped.strip_prefix('$') {
                Some(rest) => format!("\u{FF04}{rest}"),
                None => escaped,
            })
        }
        FieldNamePolicy::Reject => Err(ConvertError::of_kind(
            ConvertErrorKind::FieldName,
            "field name contains `.` or starts with `$` and the policy is `reject`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcloud_sdk::google::firestore::v1::ArrayValue;
    use gcloud_sdk::google::r#type::LatLng;

    fn v(t: ValueType) -> Value {
        Value {
            value_type: Some(t),
        }
    }
    fn conv(t: ValueType) -> Bson {
        to_bson(&v(t), &ConvertOptions::default()).unwrap()
    }
    fn ts(seconds: i64, nanos: i32) -> ValueType {
        ValueType::TimestampValue(gcloud_sdk::prost_types::Timestamp { seconds, nanos })
    }
    fn map(pairs: Vec<(&str, Value)>) -> ValueType {
        ValueType::MapValue(MapValue {
            fields: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        })
    }
    fn arr(values: Vec<Value>) -> ValueType {
        ValueType::ArrayValue(ArrayValue { values })
    }

    #[test]
    fn strings_booleans_and_null_map_directly() {
        assert_eq!(
            conv(ValueType::StringValue("naïve 🔥".into())),
            Bson::String("naïve 🔥".into())
        );
        assert_eq!(
            conv(ValueType::StringValue(String::new())),
            Bson::String(String::new())
        );
        assert_eq!(conv(ValueType::BooleanValue(true)), Bson::Boolean(true));
        assert_eq!(conv(ValueType::NullValue(0)), Bson::Null);
    }

    #[test]
    fn integers_keep_all_64_bits() {
        assert_eq!(
            conv(ValueType::IntegerValue(i64::MIN)),
            Bson::Int64(i64::MIN)
        );
        assert_eq!(
            conv(ValueType::IntegerValue(i64::MAX)),
            Bson::Int64(i64::MAX)
        );
        assert_eq!(conv(ValueType::IntegerValue(0)), Bson::Int64(0));
    }

    #[test]
    fn doubles_keep_nan_infinities_and_negative_zero() {
        let Bson::Double(nan) = conv(ValueType::DoubleValue(f64::NAN)) else {
            panic!()
        };
        assert!(nan.is_nan());
        assert_eq!(
            conv(ValueType::DoubleValue(f64::INFINITY)),
            Bson::Double(f64::INFINITY)
        );
        assert_eq!(
            conv(ValueType::DoubleValue(f64::NEG_INFINITY)),
            Bson::Double(f64::NEG_INFINITY)
        );
        let Bson::Double(z) = conv(ValueType::DoubleValue(-0.0)) else {
            panic!()
        };
        assert!(z == 0.0 && z.is_sign_negative());
        // BSON round trip keeps the bits too.
        let doc = mongodb::bson::doc! { "z": z, "n": nan };
        let back = Document::from_reader(&mut &mongodb::bson::to_vec(&doc).unwrap()[..]).unwrap();
        assert!(back.get_f64("z").unwrap().is_sign_negative());
        assert!(back.get_f64("n").unwrap().is_nan());
    }

    #[test]
    fn timestamps_truncate_to_milliseconds_at_every_era() {
        // 2026-01-01T00:00:00.123456Z
        assert_eq!(
            conv(ts(1_767_225_600, 123_456_000)),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_123))
        );
        // Before 1970 with microseconds: 1969-07-20T20:17:40.123456Z.
        assert_eq!(
            conv(ts(-14_182_940, 123_456_000)),
            Bson::DateTime(DateTime::from_millis(-14_182_939_877))
        );
        // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, Firestore's limits.
        assert_eq!(
            conv(ts(-62_135_596_800, 0)),
            Bson::DateTime(DateTime::from_millis(-62_135_596_800_000))
        );
        assert_eq!(
            conv(ts(253_402_300_799, 999_999_000)),
            Bson::DateTime(DateTime::from_millis(253_402_300_799_999))
        );
        // Just before the epoch stays before it (floor, not toward zero).
        assert_eq!(
            conv(ts(-1, 999_999_000)),
            Bson::DateTime(DateTime::from_millis(-1))
        );
        assert!(to_bson(&v(ts(0, -1)), &ConvertOptions::default()).is_err());
    }

    #[test]
    fn bytes_become_generic_binary_including_empty() {
        for bytes in [vec![], vec![0u8, 255, 1]] {
            assert_eq!(
                conv(ValueType::BytesValue(bytes.clone())),
                Bson::Binary(Binary {
                    subtype: BinarySubtype::Generic,
                    bytes
                })
            );
        }
    }

    #[test]
    fn geopoints_become_geojson_longitude_first_also_in_arrays() {
        let g = ValueType::GeoPointValue(LatLng {
            latitude: 48.85,
            longitude: 2.35,
        });
        let expected = mongodb::bson::bson!({ "type": "Point", "coordinates": [2.35, 48.85] });
        assert_eq!(conv(g.clone()), expected);
        assert_eq!(conv(arr(vec![v(g)])), Bson::Array(vec![expected]));
    }

    #[test]
    fn references_become_the_target_id_root_sub_and_dangling() {
        let root = "projects/p/databases/(default)/documents/users/u1";
        assert_eq!(
            conv(ValueType::ReferenceValue(root.into())),
            Bson::String("u1".into())
        );
        let sub = "projects/p/databases/(default)/documents/content/c1/comments/k9";
        assert_eq!(
            conv(ValueType::ReferenceValue(sub.into())),
            Bson::String("content/c1/comments/k9".into())
        );
        // Dangling: the target need not exist, the id is derived from the path alone.
        let dangling = "projects/p/databases/(default)/documents/users/nobody";
        assert_eq!(
            conv(ValueType::ReferenceValue(dangling.into())),
            Bson::String("nobody".into())
        );
        let bad = to_bson(
            &v(ValueType::ReferenceValue(
                "projects/p/databases/d/documents/users".into(),
            )),
            &ConvertOptions::default(),
        );
        assert!(bad.unwrap_err().reason.contains("even number of segments"));
    }

    #[test]
    fn empty_and_deeply_nested_containers_are_kept() {
        assert_eq!(conv(arr(vec![])), Bson::Array(vec![]));
        assert_eq!(conv(map(vec![])), Bson::Document(Document::new()));
        let mut value = v(ValueType::IntegerValue(7));
        for i in 0..40 {
            value = if i % 2 == 0 {
                v(map(vec![("k", value)]))
            } else {
                v(arr(vec![value]))
            };
        }
        let mut b = to_bson(&value, &ConvertOptions::default()).unwrap();
        for i in (0..40).rev() {
            b = if i % 2 == 0 {
                b.as_document().unwrap().get("k").unwrap().clone()
            } else {
                b.as_array().unwrap()[0].clone()
            };
        }
        assert_eq!(b, Bson::Int64(7));
    }

    #[test]
    fn vectors_become_arrays_of_doubles() {
        let vec_value = map(vec![
            ("__type__", v(ValueType::StringValue("__vector__".into()))),
            (
                "value",
                v(arr(vec![
                    v(ValueType::DoubleValue(0.5)),
                    v(ValueType::IntegerValue(2)),
                ])),
            ),
        ]);
        assert_eq!(
            conv(vec_value),
            Bson::Array(vec![Bson::Double(0.5), Bson::Double(2.0)])
        );
        let broken = map(vec![
            ("__type__", v(ValueType::StringValue("__vector__".into()))),
            ("value", v(arr(vec![v(ValueType::StringValue("x".into()))]))),
        ]);
        let err = to_bson(&v(broken), &ConvertOptions::default()).unwrap_err();
        assert_eq!(err.field, "value[0]");
    }

    #[test]
    fn field_names_follow_the_policy() {
        let fields: HashMap<String, Value> = [
            ("a.b", v(ValueType::IntegerValue(1))),
            ("$c", v(ValueType::IntegerValue(2))),
            ("with space", v(ValueType::IntegerValue(3))),
            ("ключ 🔥", v(ValueType::IntegerValue(4))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let keep = fields_to_document(&fields, &ConvertOptions::default()).unwrap();
        let keys: Vec<&str> = keep.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, vec!["$c", "a.b", "with space", "ключ 🔥"]);
        let esc = fields_to_document(
            &fields,
            &ConvertOptions {
                field_names: FieldNamePolicy::Escape,
            },
        )
        .unwrap();
        assert_eq!(esc.get_i64("a\u{FF0E}b").unwrap(), 1);
        assert_eq!(esc.get_i64("\u{FF04}c").unwrap(), 2);
        let nested: HashMap<String, Value> = [(
            "outer".to_string(),
            v(map(vec![("x.y", v(ValueType::BooleanValue(true)))])),
        )]
        .into();
        let err = fields_to_document(
            &nested,
            &ConvertOptions {
                field_names: FieldNamePolicy::Reject,
            },
        )
        .unwrap_err();
        assert_eq!(err.field, "outer.x.y");
        assert!(err.reason.contains("reject"));
    }

    #[test]
    fn nul_in_field_name_is_an_error_naming_the_field() {
        let fields: HashMap<String, Value> = [(
            "list".to_string(),
            v(arr(vec![v(map(vec![(
                "a\0b",
                v(ValueType::NullValue(0)),
            )]))])),
        )]
        .into();
        let err = fields_to_document(&fields, &ConvertOptions::default()).unwrap_err();
        assert_eq!(err.field, "list[0].a\0b");
        assert!(err.reason.contains("NUL"));
    }
}
