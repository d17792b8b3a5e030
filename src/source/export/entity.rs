//! Datastore v3 `EntityProto` (the records of an export's `output-N` files) ⇄ the
//! `google.firestore.v1.Document` the query source yields.
//!
//! `EntityProto` is proto2 with groups (path elements, points, references), which
//! prost's derive cannot express conveniently, so the wire format is read and written
//! by hand here ([`wire`]). Field numbers, as the emulator's exports show them:
//!
//! * `EntityProto`: key 13 (`Reference`), property 14 (indexed), raw_property 15
//!   (unindexed), entity_group 16 (`Path` of the root element); others are skipped.
//! * `Reference`: app 13 (`dev~p1`: a `X~` partition prefix, then the project),
//!   path 14 (`Path`: repeated group Element 1 {type 2, id 3, name 4}), name_space 20,
//!   database_id 23 (absent or empty: `(default)`).
//! * `Property`: meaning 1, name 3, multiple 4, value 5 (`PropertyValue`).
//! * `PropertyValue`: int64 1, boolean 2, string 3, double 4 (fixed64), group
//!   PointValue 5 {x 6 = latitude, y 7 = longitude}, group UserValue 8 (not a Firestore
//!   type: refused), group ReferenceValue 12 {app 13, name_space 20, group PathElement
//!   14 {type 15, id 16, name 17}, database_id 23}. No field set = null.
//!
//! Meanings: 7 timestamp (int64 microseconds), 9 geopoint, 14 blob / 16 byte string
//! (bytes), 15 text (a string), 19 embedded entity (a map: the string holds an
//! `EntityProto` with an empty key), 24 empty list (no value), 31 vector (one property
//! per element, multiple = true, doubles; a Firestore vector is the map
//! `{"__type__": "__vector__", "value": [doubles]}`). An array is one property per
//! element with the same name and multiple = true, in order. A numeric key id N is the
//! document id `__idN__`.
//!
//! The encoder writes what the emulator writes (so that `--import-data` loads it):
//! key with app `dev~<project>` and no database_id for `(default)`; empty arrays as
//! indexed properties (meaning 24), everything else as raw properties, fields in name
//! order; multiple always written; entity_group = the first path element; a nested
//! entity's key is an empty app and path. Timestamps keep microseconds: finer digits
//! are dropped (the emulator does the same).

use std::collections::HashMap;

use gcloud_sdk::google::firestore::v1::{value::ValueType, ArrayValue, Document, MapValue, Value};
use gcloud_sdk::google::r#type::LatLng;
use gcloud_sdk::prost_types::Timestamp;

use wire::{Reader, Writer, FIXED64, GROUP_END, GROUP_START, LEN, VARINT};

/// The database id of a key without one.
pub const DEFAULT_DATABASE: &str = "(default)";

/// The partition prefix of the app the encoder writes (the emulator's own).
pub const APP_PREFIX: &str = "dev~";

const MEANING_TIMESTAMP: u64 = 7;
const MEANING_GEOPOINT: u64 = 9;
const MEANING_BLOB: u64 = 14;
const MEANING_TEXT: u64 = 15;
const MEANING_BYTESTRING: u64 = 16;
const MEANING_ENTITY: u64 = 19;
const MEANING_EMPTY_LIST: u64 = 24;
const MEANING_VECTOR: u64 = 31;

/// An entity that is not a valid Firestore document, or bytes that are not an
/// `EntityProto`. `reason` names the field (a path of property names) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid entity: {reason}")]
pub struct EntityError {
    pub reason: String,
}

impl EntityError {
    fn new(reason: impl Into<String>) -> Self {
        EntityError {
            reason: reason.into(),
        }
    }

    /// The same error, inside `context` (e.g. a property name).
    fn within(self, context: &str) -> Self {
        EntityError {
            reason: format!("{context}: {}", self.reason),
        }
    }
}

impl From<wire::WireError> for EntityError {
    fn from(e: wire::WireError) -> Self {
        EntityError::new(e.0)
    }
}

/// A minimal protobuf wire reader and writer (varints, tags, lengths, fixed64,
/// groups), shared with the metadata parser.
pub(super) mod wire {
    pub const VARINT: u8 = 0;
    pub const FIXED64: u8 = 1;
    pub const LEN: u8 = 2;
    pub const GROUP_START: u8 = 3;
    pub const GROUP_END: u8 = 4;
    pub const FIXED32: u8 = 5;

    /// Malformed wire data: what and at which byte.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct WireError(pub String);

    pub type Result<T> = std::result::Result<T, WireError>;

    pub struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        pub fn new(buf: &'a [u8]) -> Self {
            Reader { buf, pos: 0 }
        }

        pub fn is_empty(&self) -> bool {
            self.pos >= self.buf.len()
        }

        fn err<T>(&self, what: &str) -> Result<T> {
            Err(WireError(format!("{what} at byte {}", self.pos)))
        }

        pub fn varint(&mut self) -> Result<u64> {
            let mut v: u64 = 0;
            for i in 0..10 {
                let Some(&b) = self.buf.get(self.pos) else {
                    return self.err("truncated varint");
                };
                self.pos += 1;
                v |= u64::from(b & 0x7f) << (7 * i);
                if b & 0x80 == 0 {
                    return Ok(v);
                }
            }
            self.err("varint longer than 10 bytes")
        }

        /// The next tag `(field, wire type)`, or None at the end.
        pub fn tag(&mut self) -> Result<Option<(u32, u8)>> {
            if self.is_empty() {
                return Ok(None);
            }
            let t = self.varint()?;
            let field = t >> 3;
            if field == 0 || field > u64::from(u32::MAX >> 3) {
                return self.err("invalid field number");
            }
            Ok(Some((field as u32, (t & 7) as u8)))
        }

        pub fn bytes(&mut self) -> Result<&'a [u8]> {
            let n = self.varint()?;
            if n > (self.buf.len() - self.pos) as u64 {
                return self.err("length past the end of the message");
            }
            let s = &self.buf[self.pos..self.pos + n as usize];
            self.pos += n as usize;
            Ok(s)
        }

        pub fn fixed64(&mut self) -> Result<u64> {
            let Some(b) = self.buf.get(self.pos..self.pos + 8) else {
                return self.err("truncated fixed64");
            };
            self.pos += 8;
            Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
        }

        /// Skips the value of a field of wire type `wire` (a whole group for a start).
        pub fn skip(&mut self, field: u32, wire: u8) -> Result<()> {
            match wire {
                VARINT => self.varint().map(drop),
                FIXED64 => self.fixed64().map(drop),
                LEN => self.bytes().map(drop),
                FIXED32 => {
                    if self.buf.len() - self.pos < 4 {
                        return self.err("truncated fixed32");
                    }
                    self.pos += 4;
                    Ok(())
                }
                GROUP_START => loop {
                    match self.tag()? {
                        None => return self.err(&format!("group {field} not closed")),
                        Some((f, GROUP_END)) if f == field => return Ok(()),
                        Some((_, GROUP_END)) => return self.err("mismatched group end"),
                        Some((f, w)) => self.skip(f, w)?,
                    }
                },
                _ => self.err(&format!("unexpected wire type {wire} of field {field}")),
            }
        }
    }

    /// Appends protobuf fields to a buffer.
    #[derive(Default)]
    pub struct Writer {
        pub buf: Vec<u8>,
    }

    impl Writer {
        pub fn varint_raw(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.buf.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.buf.push(v as u8);
        }

        pub fn tag(&mut self, field: u32, wire: u8) {
            self.varint_raw((u64::from(field) << 3) | u64::from(wire));
        }

        pub fn varint(&mut self, field: u32, v: u64) {
            self.tag(field, VARINT);
            self.varint_raw(v);
        }

        pub fn bytes(&mut self, field: u32, b: &[u8]) {
            self.tag(field, LEN);
            self.varint_raw(b.len() as u64);
            self.buf.extend_from_slice(b);
        }

        pub fn fixed64(&mut self, field: u32, v: u64) {
            self.tag(field, FIXED64);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// A path element of a key or reference.
#[derive(Debug, Default, Clone)]
struct Element {
    kind: String,
    id: Option<i64>,
    name: Option<String>,
}

/// A key or a reference value.
#[derive(Debug, Default)]
struct Key {
    app: String,
    name_space: String,
    database_id: String,
    path: Vec<Element>,
}

/// One `Property`, undecoded value kept as parsed.
#[derive(Debug)]
struct Property {
    meaning: u64,
    name: String,
    multiple: bool,
    value: PropertyValue,
}

#[derive(Debug, Default)]
struct PropertyValue {
    int64: Option<i64>,
    boolean: Option<bool>,
    string: Option<Vec<u8>>,
    double: Option<f64>,
    point: Option<(f64, f64)>,
    user: bool,
    reference: Option<Key>,
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, EntityError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|e| EntityError::new(format!("{what} is not UTF-8 ({e})")))
}

/// Parses the fields of an `EntityProto` that a document needs.
fn parse_entity(bytes: &[u8]) -> Result<(Option<Key>, Vec<Property>), EntityError> {
    let mut r = Reader::new(bytes);
    let mut key = None;
    let mut props = Vec::new();
    while let Some((field, wt)) = r.tag()? {
        match (field, wt) {
            (13, LEN) => key = Some(parse_reference(r.bytes()?).map_err(|e| e.within("key"))?),
            (14 | 15, LEN) => {
                let n = props.len();
                props.push(
                    parse_property(r.bytes()?).map_err(|e| e.within(&format!("property #{n}")))?,
                )
            }
            (f, w) => r.skip(f, w)?,
        }
    }
    Ok((key, props))
}

/// A `Reference` message (an entity's key).
fn parse_reference(bytes: &[u8]) -> Result<Key, EntityError> {
    let mut r = Reader::new(bytes);
    let mut key = Key::default();
    while let Some((field, wt)) = r.tag()? {
        match (field, wt) {
            (13, LEN) => key.app = utf8(r.bytes()?, "app")?,
            (20, LEN) => key.name_space = utf8(r.bytes()?, "name_space")?,
            (23, LEN) => key.database_id = utf8(r.bytes()?, "database_id")?,
            (14, LEN) => {
                let mut p = Reader::new(r.bytes()?);
                while let Some((f, w)) = p.tag()? {
                    if (f, w) == (1, GROUP_START) {
                        key.path.push(parse_element(&mut p, 1, (2, 3, 4))?);
                    } else {
                        p.skip(f, w)?;
                    }
                }
            }
            (f, w) => r.skip(f, w)?,
        }
    }
    Ok(key)
}

/// A path element group (its start tag already read), with the field numbers
/// `(type, id, name)` of its kind of group.
fn parse_element(
    r: &mut Reader,
    group: u32,
    (kind, id, name): (u32, u32, u32),
) -> Result<Element, EntityError> {
    let mut e = Element::default();
    loop {
        match r.tag()? {
            None => return Err(EntityError::new("path element group not closed")),
            Some((f, GROUP_END)) if f == group => return Ok(e),
            Some((f, LEN)) if f == kind => e.kind = utf8(r.bytes()?, "path element type")?,
            Some((f, VARINT)) if f == id => e.id = Some(r.varint()? as i64),
            Some((f, LEN)) if f == name => e.name = Some(utf8(r.bytes()?, "path element name")?),
            Some((f, w)) => r.skip(f, w)?,
        }
    }
}

fn parse_property(bytes: &[u8]) -> Result<Property, EntityError> {
    let mut r = Reader::new(bytes);
    let mut meaning = 0;
    let mut name = None;
    let mut multiple = false;
    let mut value = None;
    while let Some((field, wt)) = r.tag()? {
        match (field, wt) {
            (1, VARINT) => meaning = r.varint()?,
            (3, LEN) => name = Some(utf8(r.bytes()?, "property name")?),
            (4, VARINT) => multiple = r.varint()? != 0,
            (5, LEN) => value = Some(r.bytes()?),
            (f, w) => r.skip(f, w)?,
        }
    }
    let name = name.ok_or_else(|| EntityError::new("property without a name"))?;
    let value = match value {
        Some(v) => parse_value(v).map_err(|e| e.within(&format!("property {name:?}")))?,
        None => PropertyValue::default(),
    };
    Ok(Property {
        meaning,
        name,
        multiple,
        value,
    })
}

fn parse_value(bytes: &[u8]) -> Result<PropertyValue, EntityError> {
    let mut r = Reader::new(bytes);
    let mut v = PropertyValue::default();
    while let Some((field, wt)) = r.tag()? {
        match (field, wt) {
            (1, VARINT) => v.int64 = Some(r.varint()? as i64),
            (2, VARINT) => v.boolean = Some(r.varint()? != 0),
            (3, LEN) => v.string = Some(r.bytes()?.to_vec()),
            (4, FIXED64) => v.double = Some(f64::from_bits(r.fixed64()?)),
            (5, GROUP_START) => {
                let (mut x, mut y) = (None, None);
                loop {
                    match r.tag()? {
                        None => return Err(EntityError::new("PointValue group not closed")),
                        Some((5, GROUP_END)) => break,
                        Some((6, FIXED64)) => x = Some(f64::from_bits(r.fixed64()?)),
                        Some((7, FIXED64)) => y = Some(f64::from_bits(r.fixed64()?)),
                        Some((f, w)) => r.skip(f, w)?,
                    }
                }
                match (x, y) {
                    (Some(x), Some(y)) => v.point = Some((x, y)),
                    _ => return Err(EntityError::new("PointValue without x or y")),
                }
            }
            (8, GROUP_START) => {
                r.skip(8, GROUP_START)?;
                v.user = true;
            }
            (12, GROUP_START) => {
                let mut key = Key::default();
                loop {
                    match r.tag()? {
                        None => return Err(EntityError::new("ReferenceValue group not closed")),
                        Some((12, GROUP_END)) => break,
                        Some((13, LEN)) => key.app = utf8(r.bytes()?, "reference app")?,
                        Some((20, LEN)) => {
                            key.name_space = utf8(r.bytes()?, "reference name_space")?
                        }
                        Some((23, LEN)) => {
                            key.database_id = utf8(r.bytes()?, "reference database_id")?
                        }
                        Some((14, GROUP_START)) => {
                            key.path.push(parse_element(&mut r, 14, (15, 16, 17))?)
                        }
                        Some((f, w)) => r.skip(f, w)?,
                    }
                }
                v.reference = Some(key);
            }
            (f, w) => r.skip(f, w)?,
        }
    }
    Ok(v)
}

/// The project of an app id: the part after a `X~` partition prefix.
fn project_of(app: &str) -> &str {
    app.split_once('~').map_or(app, |(_, p)| p)
}

/// `projects/P/databases/D/documents/k1/id1/…` of a key or reference.
fn key_name(key: &Key) -> Result<String, EntityError> {
    if !key.name_space.is_empty() {
        return Err(EntityError::new(format!(
            "namespace {:?}: Firestore documents have no namespace",
            key.name_space
        )));
    }
    let project = project_of(&key.app);
    if project.is_empty() {
        return Err(EntityError::new("no project (app is empty)"));
    }
    if key.path.is_empty() {
        return Err(EntityError::new("empty key path"));
    }
    let database = if key.database_id.is_empty() {
        DEFAULT_DATABASE
    } else {
        &key.database_id
    };
    let mut name = format!("projects/{project}/databases/{database}/documents");
    for (i, e) in key.path.iter().enumerate() {
        if e.kind.is_empty() {
            return Err(EntityError::new(format!(
                "path element {i} has no type (collection id)"
            )));
        }
        let id = match (&e.name, e.id) {
            (Some(n), None) if !n.is_empty() => n.clone(),
            (None, Some(id)) => format!("__id{id}__"),
            _ => {
                return Err(EntityError::new(format!(
                    "path element {i} ({}) needs exactly one of id and name",
                    e.kind
                )))
            }
        };
        name.push('/');
        name.push_str(&e.kind);
        name.push('/');
        name.push_str(&id);
    }
    Ok(name)
}

fn value(t: ValueType) -> Value {
    Value {
        value_type: Some(t),
    }
}

/// Microseconds since the epoch as a timestamp.
fn timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// The Firestore value of one property value (not the vector or empty-list cases).
fn to_value(p: &Property) -> Result<Value, EntityError> {
    let v = &p.value;
    let set = [
        v.int64.is_some(),
        v.boolean.is_some(),
        v.string.is_some(),
        v.double.is_some(),
        v.point.is_some(),
        v.user,
        v.reference.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set > 1 {
        return Err(EntityError::new("a value with more than one type set"));
    }
    let bad_meaning =
        |kind: &str| EntityError::new(format!("meaning {} on a {kind} value", p.meaning));
    if v.user {
        return Err(EntityError::new(
            "a UserValue (users are not a Firestore type)",
        ));
    }
    if let Some(i) = v.int64 {
        return match p.meaning {
            0 => Ok(value(ValueType::IntegerValue(i))),
            MEANING_TIMESTAMP => Ok(value(ValueType::TimestampValue(timestamp(i)))),
            _ => Err(bad_meaning("int64")),
        };
    }
    if let Some(b) = v.boolean {
        return match p.meaning {
            0 => Ok(value(ValueType::BooleanValue(b))),
            _ => Err(bad_meaning("boolean")),
        };
    }
    if let Some(d) = v.double {
        return match p.meaning {
            0 => Ok(value(ValueType::DoubleValue(d))),
            _ => Err(bad_meaning("double")),
        };
    }
    if let Some((lat, lng)) = v.point {
        return match p.meaning {
            0 | MEANING_GEOPOINT => Ok(value(ValueType::GeoPointValue(LatLng {
                latitude: lat,
                longitude: lng,
            }))),
            _ => Err(bad_meaning("point")),
        };
    }
    if let Some(key) = &v.reference {
        let name = key_name(key).map_err(|e| e.within("reference"))?;
        return Ok(value(ValueType::ReferenceValue(name)));
    }
    if let Some(s) = &v.string {
        return match p.meaning {
            0 | MEANING_TEXT => Ok(value(ValueType::StringValue(utf8(s, "string value")?))),
            MEANING_BLOB | MEANING_BYTESTRING => Ok(value(ValueType::BytesValue(s.clone()))),
            MEANING_ENTITY => {
                let (_, props) = parse_entity(s).map_err(|e| e.within("embedded entity"))?;
                Ok(value(ValueType::MapValue(MapValue {
                    fields: to_fields(props)?,
                })))
            }
            _ => Err(bad_meaning("string")),
        };
    }
    match p.meaning {
        0 => Ok(value(ValueType::NullValue(0))),
        _ => Err(EntityError::new(format!(
            "meaning {} without a value",
            p.meaning
        ))),
    }
}

/// Properties (in file order) to Firestore fields: repeated names with multiple = true
/// are arrays in the order met; an empty-list marker is an empty array. Built straight
/// into the document's map (one hash map per document: hashing was a fifth of the
/// decode); vectors, rare, are gathered apart and added at the end.
fn to_fields(props: Vec<Property>) -> Result<HashMap<String, Value>, EntityError> {
    let mut fields: HashMap<String, Value> = HashMap::with_capacity(props.len());
    let mut vectors: Vec<(String, Vec<Value>)> = Vec::new();
    // Formatted only on an error: for every property it cost more than the decode.
    let ctx = |name: &str| format!("property {name:?}");
    let is_array = |v: &Value| matches!(v.value_type, Some(ValueType::ArrayValue(_)));
    for mut p in props {
        let name = std::mem::take(&mut p.name);
        if p.meaning == MEANING_VECTOR {
            let Some(d) = p.value.double else {
                return Err(
                    EntityError::new("a vector element that is not a double").within(&ctx(&name))
                );
            };
            let element = value(ValueType::DoubleValue(d));
            match vectors.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(element),
                None => vectors.push((name, vec![element])),
            }
            continue;
        }
        if p.meaning == MEANING_EMPTY_LIST {
            match fields.get(&name) {
                None => {
                    fields.insert(name, value(ValueType::ArrayValue(ArrayValue::default())));
                }
                Some(v) if is_array(v) => {}
                Some(_) => {
                    return Err(EntityError::new(
                        "an empty-list marker for a name that has a value",
                    )
                    .within(&ctx(&name)))
                }
            }
            continue;
        }
        let v = to_value(&p).map_err(|e| e.within(&ctx(&name)))?;
        // A single property is never an array (arrays are repeated properties), so an
        // array in the map is one this loop is building.
        match (fields.get_mut(&name), p.multiple) {
            (
                Some(Value {
                    value_type: Some(ValueType::ArrayValue(a)),
                }),
                true,
            ) => a.values.push(v),
            (None, true) => {
                fields.insert(
                    name,
                    value(ValueType::ArrayValue(ArrayValue { values: vec![v] })),
                );
            }
            (None, false) => {
                fields.insert(name, v);
            }
            (Some(_), true) => {
                return Err(
                    EntityError::new("array elements mixed with other values").within(&ctx(&name))
                )
            }
            (Some(_), false) => {
                return Err(EntityError::new("appears twice without multiple").within(&ctx(&name)))
            }
        }
    }
    for (name, values) in vectors {
        if fields.contains_key(&name) {
            return Err(
                EntityError::new("vector elements mixed with other values").within(&ctx(&name))
            );
        }
        fields.insert(name, vector(values));
    }
    Ok(fields)
}

/// Firestore's vector value: `{"__type__": "__vector__", "value": [doubles]}`.
fn vector(values: Vec<Value>) -> Value {
    let mut fields = HashMap::new();
    fields.insert(
        "__type__".to_string(),
        value(ValueType::StringValue("__vector__".into())),
    );
    fields.insert(
        "value".to_string(),
        value(ValueType::ArrayValue(ArrayValue { values })),
    );
    value(ValueType::MapValue(MapValue { fields }))
}

/// Decodes one export record into the document the query source would yield (no
/// create or update time: an export has none).
pub fn decode_entity(bytes: &[u8]) -> Result<Document, EntityError> {
    let (key, props) = parse_entity(bytes)?;
    let key = key.ok_or_else(|| EntityError::new("no key"))?;
    let name = key_name(&key).map_err(|e| e.within("key"))?;
    let fields = to_fields(props).map_err(|e| e.within(&name))?;
    Ok(Document {
        name,
        fields,
        create_time: None,
        update_time: None,
    })
}

/// Only the document name of one export record: its key, the properties skipped
/// unparsed. For passes that need nothing else (the root collections of an export),
/// several times cheaper than [`decode_entity`].
pub fn decode_name(bytes: &[u8]) -> Result<String, EntityError> {
    let mut r = Reader::new(bytes);
    while let Some((field, wt)) = r.tag()? {
        match (field, wt) {
            (13, LEN) => {
                let key = parse_reference(r.bytes()?).map_err(|e| e.within("key"))?;
                return key_name(&key).map_err(|e| e.within("key"));
            }
            (f, w) => r.skip(f, w)?,
        }
    }
    Err(EntityError::new("no key"))
}

/// A document name split: project, database, path elements.
fn parse_name(name: &str) -> Result<(String, String, Vec<Element>), EntityError> {
    let bad = |why: &str| EntityError::new(format!("document name {name:?}: {why}"));
    let rest = name
        .strip_prefix("projects/")
        .ok_or_else(|| bad("does not start with projects/"))?;
    let (project, rest) = rest
        .split_once("/databases/")
        .ok_or_else(|| bad("no /databases/"))?;
    let (database, path) = rest
        .split_once("/documents/")
        .ok_or_else(|| bad("no /documents/"))?;
    if project.is_empty() || database.is_empty() {
        return Err(bad("empty project or database"));
    }
    let segments: Vec<&str> = path.split('/').collect();
    if !segments.len().is_multiple_of(2) || segments.iter().any(|s| s.is_empty()) {
        return Err(bad("the path is not collection/id pairs"));
    }
    let path = segments
        .chunks(2)
        .map(|pair| {
            let (id, name) = match numeric_id(pair[1]) {
                Some(n) => (Some(n), None),
                None => (None, Some(pair[1].to_string())),
            };
            Element {
                kind: pair[0].to_string(),
                id,
                name,
            }
        })
        .collect();
    Ok((project.to_string(), database.to_string(), path))
}

/// N of a document id `__idN__` written the way the decoder writes it.
fn numeric_id(id: &str) -> Option<i64> {
    let digits = id.strip_prefix("__id")?.strip_suffix("__")?;
    let n: i64 = digits.parse().ok()?;
    (n != 0 && n.to_string() == digits).then_some(n)
}

fn write_path_message(path: &[Element]) -> Vec<u8> {
    let mut w = Writer::default();
    for e in path {
        w.tag(1, GROUP_START);
        w.bytes(2, e.kind.as_bytes());
        if let Some(id) = e.id {
            w.varint(3, id as u64);
        }
        if let Some(name) = &e.name {
            w.bytes(4, name.as_bytes());
        }
        w.tag(1, GROUP_END);
    }
    w.buf
}

/// Encodes a document as the emulator writes it in an export (see the module doc).
pub fn encode_entity(doc: &Document) -> Result<Vec<u8>, EntityError> {
    let (project, database, path) = parse_name(&doc.name)?;
    let mut key = Writer::default();
    key.bytes(13, format!("{APP_PREFIX}{project}").as_bytes());
    key.bytes(14, &write_path_message(&path));
    if database != DEFAULT_DATABASE {
        key.bytes(23, database.as_bytes());
    }
    let mut w = Writer::default();
    w.bytes(13, &key.buf);
    write_properties(&mut w, &doc.fields).map_err(|e| e.within(&doc.name))?;
    w.bytes(16, &write_path_message(&path[..1]));
    Ok(w.buf)
}

/// Writes fields as properties: empty arrays (indexed) first, then the rest, by name.
fn write_properties(w: &mut Writer, fields: &HashMap<String, Value>) -> Result<(), EntityError> {
    let mut names: Vec<&String> = fields.keys().collect();
    names.sort();
    let mut raw = Writer::default();
    for name in names {
        let v = &fields[name];
        let ctx = format!("field {name:?}");
        match &v.value_type {
            Some(ValueType::ArrayValue(a)) if a.values.is_empty() => {
                w.bytes(14, &property(MEANING_EMPTY_LIST, name, false, &[]));
            }
            Some(ValueType::ArrayValue(a)) => {
                for (i, e) in a.values.iter().enumerate() {
                    if matches!(e.value_type, Some(ValueType::ArrayValue(_))) {
                        return Err(EntityError::new(format!(
                            "element {i} is an array: arrays cannot nest"
                        ))
                        .within(&ctx));
                    }
                    let (meaning, pv) =
                        property_value(e).map_err(|e| e.within(&format!("{ctx} element {i}")))?;
                    raw.bytes(15, &property(meaning, name, true, &pv));
                }
            }
            _ => {
                if let Some(elements) = vector_elements(v) {
                    for d in elements {
                        let mut pv = Writer::default();
                        pv.fixed64(4, d.to_bits());
                        raw.bytes(15, &property(MEANING_VECTOR, name, true, &pv.buf));
                    }
                } else {
                    let (meaning, pv) = property_value(v).map_err(|e| e.within(&ctx))?;
                    raw.bytes(15, &property(meaning, name, false, &pv));
                }
            }
        }
    }
    w.buf.extend_from_slice(&raw.buf);
    Ok(())
}

/// The doubles of a Firestore vector value, if `v` is one (and not empty).
fn vector_elements(v: &Value) -> Option<Vec<f64>> {
    let Some(ValueType::MapValue(m)) = &v.value_type else {
        return None;
    };
    if m.fields.len() != 2 {
        return None;
    }
    match m.fields.get("__type__")?.value_type.as_ref()? {
        ValueType::StringValue(s) if s == "__vector__" => {}
        _ => return None,
    }
    let Some(ValueType::ArrayValue(a)) = &m.fields.get("value")?.value_type else {
        return None;
    };
    let doubles: Option<Vec<f64>> = a
        .values
        .iter()
        .map(|e| match e.value_type {
            Some(ValueType::DoubleValue(d)) => Some(d),
            _ => None,
        })
        .collect();
    doubles.filter(|d| !d.is_empty())
}

fn property(meaning: u64, name: &str, multiple: bool, value: &[u8]) -> Vec<u8> {
    let mut p = Writer::default();
    if meaning != 0 {
        p.varint(1, meaning);
    }
    p.bytes(3, name.as_bytes());
    p.varint(4, u64::from(multiple));
    p.bytes(5, value);
    p.buf
}

/// The meaning and encoded `PropertyValue` of one (non-array) value.
fn property_value(v: &Value) -> Result<(u64, Vec<u8>), EntityError> {
    let mut w = Writer::default();
    let meaning = match &v.value_type {
        Some(ValueType::NullValue(_)) => 0,
        Some(ValueType::BooleanValue(b)) => {
            w.varint(2, u64::from(*b));
            0
        }
        Some(ValueType::IntegerValue(i)) => {
            w.varint(1, *i as u64);
            0
        }
        Some(ValueType::DoubleValue(d)) => {
            w.fixed64(4, d.to_bits());
            0
        }
        Some(ValueType::TimestampValue(t)) => {
            let micros = i128::from(t.seconds) * 1_000_000 + i128::from(t.nanos).div_euclid(1000);
            let micros =
                i64::try_from(micros).map_err(|_| EntityError::new("timestamp out of range"))?;
            w.varint(1, micros as u64);
            MEANING_TIMESTAMP
        }
        Some(ValueType::StringValue(s)) => {
            w.bytes(3, s.as_bytes());
            0
        }
        Some(ValueType::BytesValue(b)) => {
            w.bytes(3, b);
            MEANING_BLOB
        }
        Some(ValueType::GeoPointValue(g)) => {
            w.tag(5, GROUP_START);
            w.fixed64(6, g.latitude.to_bits());
            w.fixed64(7, g.longitude.to_bits());
            w.tag(5, GROUP_END);
            MEANING_GEOPOINT
        }
        Some(ValueType::ReferenceValue(r)) => {
            let (project, database, path) = parse_name(r).map_err(|e| e.within("reference"))?;
            w.tag(12, GROUP_START);
            w.bytes(13, format!("{APP_PREFIX}{project}").as_bytes());
            for e in &path {
                w.tag(14, GROUP_START);
                w.bytes(15, e.kind.as_bytes());
                if let Some(id) = e.id {
                    w.varint(16, id as u64);
                }
                if let Some(name) = &e.name {
                    w.bytes(17, name.as_bytes());
                }
                w.tag(14, GROUP_END);
            }
            if database != DEFAULT_DATABASE {
                w.bytes(23, database.as_bytes());
            }
            w.tag(12, GROUP_END);
            0
        }
        Some(ValueType::MapValue(m)) => {
            // A nested entity: empty key (app and path), the fields, empty entity group.
            let mut e = Writer::default();
            let mut key = Writer::default();
            key.bytes(13, b"");
            key.bytes(14, b"");
            e.bytes(13, &key.buf);
            write_properties(&mut e, &m.fields)?;
            e.bytes(16, b"");
            w.bytes(3, &e.buf);
            MEANING_ENTITY
        }
        Some(ValueType::ArrayValue(_)) => return Err(EntityError::new("an array inside an array")),
        Some(other) => {
            return Err(EntityError::new(format!(
                "{other:?} is not a stored document value"
            )))
        }
        None => return Err(EntityError::new("a value without a type")),
    };
    Ok((meaning, w.buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::export::log::read_log;

    const EXP1: &[u8] =
        include_bytes!("../../../tests/fixtures/export/exp1/e1/all_namespaces/all_kinds/output-0");
    const EXP3: &[u8] =
        include_bytes!("../../../tests/fixtures/export/exp3/e3/all_namespaces/all_kinds/output-0");
    const EDGE: &[u8] =
        include_bytes!("../../../tests/fixtures/export/edge/e/all_namespaces/all_kinds/output-0");

    #[test]
    fn the_name_alone_is_the_full_decode_s_name() {
        for file in [EXP1, EXP3, EDGE] {
            for record in read_log(file).unwrap() {
                let doc = decode_entity(&record.data).unwrap();
                assert_eq!(decode_name(&record.data).unwrap(), doc.name);
            }
        }
        assert!(decode_name(&[]).is_err(), "a record without a key");
    }

    fn records(file: &[u8]) -> Vec<Vec<u8>> {
        read_log(file)
            .unwrap()
            .into_iter()
            .map(|r| r.data)
            .collect()
    }

    /// A canonical text of a value: map keys sorted, doubles as their bits (so NaN,
    /// -0.0 and infinities compare exactly), every type tagged.
    fn canon(v: &Value) -> String {
        match v.value_type.as_ref().expect("typed value") {
            ValueType::NullValue(_) => "null".into(),
            ValueType::BooleanValue(b) => format!("bool:{b}"),
            ValueType::IntegerValue(i) => format!("int:{i}"),
            ValueType::DoubleValue(d) => format!("double:{:#x}", d.to_bits()),
            ValueType::TimestampValue(t) => format!("ts:{}.{:09}", t.seconds, t.nanos),
            ValueType::StringValue(s) => format!("str:{s:?}"),
            ValueType::BytesValue(b) => format!("bytes:{b:?}"),
            ValueType::ReferenceValue(r) => format!("ref:{r}"),
            ValueType::GeoPointValue(g) => {
                format!(
                    "geo:{:#x},{:#x}",
                    g.latitude.to_bits(),
                    g.longitude.to_bits()
                )
            }
            ValueType::ArrayValue(a) => format!(
                "[{}]",
                a.values.iter().map(canon).collect::<Vec<_>>().join(", ")
            ),
            ValueType::MapValue(m) => canon_fields(&m.fields),
            other => format!("{other:?}"),
        }
    }

    fn canon_fields(fields: &HashMap<String, Value>) -> String {
        let mut names: Vec<&String> = fields.keys().collect();
        names.sort();
        let parts: Vec<String> = names
            .iter()
            .map(|n| format!("{n:?}: {}", canon(&fields[*n])))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn canon_doc(d: &Document) -> String {
        assert!(d.create_time.is_none() && d.update_time.is_none());
        format!("{} {}", d.name, canon_fields(&d.fields))
    }

    fn int(i: i64) -> Value {
        value(ValueType::IntegerValue(i))
    }
    fn dbl(d: f64) -> Value {
        value(ValueType::DoubleValue(d))
    }
    fn s(x: &str) -> Value {
        value(ValueType::StringValue(x.into()))
    }
    fn arr(values: Vec<Value>) -> Value {
        value(ValueType::ArrayValue(ArrayValue { values }))
    }
    fn map(fields: Vec<(&str, Value)>) -> Value {
        value(ValueType::MapValue(MapValue {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }))
    }
    fn doc(name: &str, fields: Vec<(&str, Value)>) -> Document {
        Document {
            name: name.into(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            create_time: None,
            update_time: None,
        }
    }
    fn ts(seconds: i64, nanos: i32) -> Value {
        value(ValueType::TimestampValue(Timestamp { seconds, nanos }))
    }
    fn geo(latitude: f64, longitude: f64) -> Value {
        value(ValueType::GeoPointValue(LatLng {
            latitude,
            longitude,
        }))
    }
    fn reference(r: &str) -> Value {
        value(ValueType::ReferenceValue(r.into()))
    }
    fn null() -> Value {
        value(ValueType::NullValue(0))
    }
    fn bytes(b: &[u8]) -> Value {
        value(ValueType::BytesValue(b.to_vec()))
    }

    const D: &str = "projects/p1/databases/(default)/documents";

    #[test]
    fn decodes_every_value_kind_of_the_default_database_fixture() {
        let docs: Vec<String> = records(EXP1)
            .iter()
            .map(|r| canon_doc(&decode_entity(r).unwrap()))
            .collect();
        let expected = [
            doc(&format!("{D}/ghost/g1/sub/s1"), vec![("v", int(7))]),
            doc(&format!("{D}/users/u1/posts/p9"), vec![("title", s("hi"))]),
            doc(
                &format!("{D}/users/u1"),
                vec![
                    ("ea", arr(vec![])),
                    ("name", s("Ann")),
                    ("n", int(42)),
                    ("d", dbl(0.0)),
                    ("nan", dbl(f64::from_bits(0x7ff8_0000_0000_0000))),
                    ("b", value(ValueType::BooleanValue(true))),
                    ("z", null()),
                    ("t", ts(1_704_164_645, 123_456_000)),
                    ("g", geo(1.5, -2.5)),
                    ("by", bytes(&[0, 1, 2])),
                    ("r", reference(&format!("{D}/users/u2"))),
                    ("m", map(vec![("e", arr(vec![])), ("x", int(1))])),
                    (
                        "a",
                        arr(vec![
                            int(1),
                            s("s"),
                            map(vec![("k", value(ValueType::BooleanValue(false)))]),
                        ]),
                    ),
                    ("em", map(vec![])),
                ],
            ),
        ];
        let expected: Vec<String> = expected.iter().map(canon_doc).collect();
        assert_eq!(docs, expected);
    }

    #[test]
    fn decodes_a_named_database_numeric_id_reference_and_vector() {
        let recs = records(EXP3);
        assert_eq!(recs.len(), 1);
        let got = decode_entity(&recs[0]).unwrap();
        let expected = doc(
            "projects/p1/databases/db2/documents/c/__id77__",
            vec![
                ("r", reference("projects/p1/databases/db2/documents/c/x")),
                (
                    "v",
                    map(vec![
                        ("__type__", s("__vector__")),
                        ("value", arr(vec![dbl(1.5)])),
                    ]),
                ),
            ],
        );
        assert_eq!(canon_doc(&got), canon_doc(&expected));
        // Fields already in name order: our encoder writes the emulator's very bytes.
        assert_eq!(encode_entity(&got).unwrap(), recs[0]);
    }

    #[test]
    fn decodes_the_edge_value_fixture() {
        let recs = records(EDGE);
        let docs: Vec<Document> = recs.iter().map(|r| decode_entity(r).unwrap()).collect();
        assert_eq!(
            canon_doc(&docs[0]),
            canon_doc(&doc(
                &format!("{D}/users/__id5__/a/b/c/d/e/f"),
                vec![("x", int(3))]
            ))
        );
        assert_eq!(docs[1].name, format!("{D}/users/__id5__"));
        assert_eq!(docs[1].fields["big"], s(&"x".repeat(70_000)));
        assert_eq!(
            canon_doc(&docs[3]),
            canon_doc(&doc(&format!("{D}/other/o1"), vec![]))
        );
        let u1 = doc(
            &format!("{D}/users/u1"),
            vec![
                ("emptyMap", map(vec![])),
                ("emptyArr", arr(vec![])),
                (
                    "arrMaps",
                    arr(vec![map(vec![("k", int(1))]), map(vec![]), null(), s("s")]),
                ),
                (
                    "deep",
                    map(vec![(
                        "arr",
                        arr(vec![map(vec![(
                            "inner",
                            map(vec![("z", value(ValueType::BooleanValue(false)))]),
                        )])]),
                    )]),
                ),
                ("ünïcødé 名前", s("héllo 世界 🎉")),
                ("a.b", int(i64::MIN)),
                ("max", int(i64::MAX)),
                // The emulator's REST front end stored -0.0 as +0.0.
                ("negz", dbl(0.0)),
                ("inf", dbl(f64::INFINITY)),
                ("ninf", dbl(f64::NEG_INFINITY)),
                // 1969-12-31T23:59:59.123456789Z: microseconds, floored.
                ("tsn", ts(-1, 123_456_000)),
                ("tsz", ts(-62_135_596_800, 0)),
                (
                    "vec",
                    map(vec![
                        ("__type__", s("__vector__")),
                        ("value", arr(vec![dbl(1.0), dbl(-2.5), dbl(0.0)])),
                    ]),
                ),
                (
                    "refs",
                    arr(vec![
                        reference(&format!("{D}/users/__id5__")),
                        reference(&format!("{D}/a/b/c/d")),
                    ]),
                ),
                ("eb", bytes(b"")),
                ("es", s("")),
                ("gp", geo(-90.0, 180.0)),
            ],
        );
        assert_eq!(canon_doc(&docs[2]), canon_doc(&u1));
        // Records whose fields the emulator wrote in name order come out byte-identical.
        for i in [0, 1, 3] {
            assert_eq!(encode_entity(&docs[i]).unwrap(), recs[i], "record {i}");
        }
    }

    #[test]
    fn encoding_a_fixture_document_decodes_equal() {
        for file in [EXP1, EXP3, EDGE] {
            for rec in records(file) {
                let d = decode_entity(&rec).unwrap();
                let again = decode_entity(&encode_entity(&d).unwrap()).unwrap();
                assert_eq!(canon_doc(&again), canon_doc(&d));
            }
        }
    }

    #[test]
    fn the_timestamp_encoding_matches_the_emulator() {
        // The emulator wrote tsn (…59.123456789Z) as -876544 µs: floor to microseconds.
        let d = doc(&format!("{D}/c/x"), vec![("t", ts(-1, 123_456_789))]);
        let bytes = encode_entity(&d).unwrap();
        let back = decode_entity(&bytes).unwrap();
        assert_eq!(back.fields["t"], ts(-1, 123_456_000));
    }

    #[test]
    fn round_trips_a_broad_hand_built_set() {
        let docs = vec![
            doc(
                "projects/my-proj/databases/(default)/documents/users/alice",
                vec![
                    ("neg0", dbl(-0.0)),
                    ("nan", dbl(f64::from_bits(0x7ff8_0000_0000_0001))),
                    ("nnan", dbl(f64::from_bits(0xfff8_0000_0000_0000))),
                    ("inf", dbl(f64::INFINITY)),
                    ("tiny", dbl(f64::MIN_POSITIVE / 2.0)),
                    ("i", int(-1)),
                    ("ts", ts(253_402_300_799, 999_999_000)),
                    ("old", ts(-62_135_596_800, 1_000)),
                    ("bytes", bytes(&[0xff, 0, 0x80])),
                    ("blob", bytes(&vec![7u8; 100_000])),
                    ("geo", geo(-0.0, f64::MAX)),
                    (
                        "nested",
                        map(vec![(
                            "l1",
                            map(vec![(
                                "l2",
                                arr(vec![map(vec![("l3", arr(vec![]))]), null()]),
                            )]),
                        )]),
                    ),
                    (
                        "mixed",
                        arr(vec![
                            null(),
                            int(1),
                            dbl(2.0),
                            s("3"),
                            bytes(b"4"),
                            ts(5, 0),
                            geo(6.0, 7.0),
                        ]),
                    ),
                    (
                        "refs",
                        arr(vec![reference(
                            "projects/my-proj/databases/(default)/documents/a/__id9__/b/c",
                        )]),
                    ),
                    (
                        "vecInMap",
                        map(vec![(
                            "v",
                            map(vec![
                                ("__type__", s("__vector__")),
                                ("value", arr(vec![dbl(-0.0), dbl(1e300)])),
                            ]),
                        )]),
                    ),
                    (
                        "vecInArr",
                        arr(vec![map(vec![
                            ("__type__", s("__vector__")),
                            ("value", arr(vec![dbl(1.0)])),
                        ])]),
                    ),
                    (
                        "notVec",
                        map(vec![
                            ("__type__", s("__vector__")),
                            ("value", arr(vec![int(1)])),
                        ]),
                    ),
                    ("", s("empty name")),
                    ("a.b`c", s("dots and backticks")),
                    ("名前", s("名前")),
                    ("single", arr(vec![s("only")])),
                ],
            ),
            doc(
                "projects/p/databases/db-2/documents/c/__id9223372036854775807__/s/__id0__",
                vec![],
            ),
            doc(
                "projects/p/databases/(default)/documents/c/__id-3__",
                vec![(
                    "r",
                    reference("projects/p/databases/db-2/documents/x/__id1__"),
                )],
            ),
            doc(
                "projects/p/databases/(default)/documents/c/__id007__",
                vec![],
            ),
        ];
        for d in docs {
            let bytes = encode_entity(&d).unwrap();
            let back = decode_entity(&bytes).unwrap();
            assert_eq!(canon_doc(&back), canon_doc(&d));
            assert_eq!(encode_entity(&back).unwrap(), bytes, "{}", d.name);
        }
    }

    #[test]
    fn numeric_ids_are_the_canonical_form_only() {
        assert_eq!(numeric_id("__id77__"), Some(77));
        assert_eq!(numeric_id("__id-3__"), Some(-3));
        for id in [
            "__id007__",
            "__id0__",
            "__id__",
            "__idx__",
            "id77",
            "__id+5__",
            "__id99999999999999999999__",
        ] {
            assert_eq!(numeric_id(id), None, "{id}");
        }
    }

    /// An entity with one raw property built from its parts.
    fn entity_with(prop: &[u8]) -> Vec<u8> {
        let mut key = Writer::default();
        key.bytes(13, b"dev~p1");
        key.bytes(
            14,
            &write_path_message(&[Element {
                kind: "c".into(),
                id: None,
                name: Some("x".into()),
            }]),
        );
        let mut w = Writer::default();
        w.bytes(13, &key.buf);
        w.bytes(15, prop);
        w.buf
    }

    fn value_bytes(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::default();
        f(&mut w);
        w.buf
    }

    #[test]
    fn refuses_what_is_not_a_firestore_document_with_a_clear_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                entity_with(&property(
                    0,
                    "s",
                    false,
                    &value_bytes(|w| w.bytes(3, &[0xff, 0xfe])),
                )),
                "property \"s\": string value is not UTF-8",
            ),
            (
                entity_with(&property(
                    0,
                    "u",
                    false,
                    &value_bytes(|w| {
                        w.tag(8, GROUP_START);
                        w.bytes(9, b"a@b.c");
                        w.tag(8, GROUP_END);
                    }),
                )),
                "property \"u\": a UserValue",
            ),
            (
                entity_with(&property(3, "i", false, &value_bytes(|w| w.varint(1, 5)))),
                "property \"i\": meaning 3 on a int64 value",
            ),
            (
                entity_with(&property(
                    0,
                    "two",
                    false,
                    &value_bytes(|w| {
                        w.varint(1, 5);
                        w.varint(2, 1);
                    }),
                )),
                "more than one type",
            ),
            (
                entity_with(&property(
                    0,
                    "g",
                    false,
                    &value_bytes(|w| {
                        w.tag(5, GROUP_START);
                        w.fixed64(6, 0);
                    }),
                )),
                "PointValue group not closed",
            ),
            (
                entity_with(&property(31, "v", true, &value_bytes(|w| w.varint(1, 1)))),
                "a vector element that is not a double",
            ),
            (entity_with(&[0x1a, 0x05, b'a']), "length past the end"),
        ];
        for (bytes, want) in cases {
            let err = decode_entity(&bytes).unwrap_err();
            assert!(err.to_string().contains(want), "{err} should say {want:?}");
        }
        // A name twice without multiple.
        let mut twice = entity_with(&property(0, "a", false, &value_bytes(|w| w.varint(1, 1))));
        let mut w = Writer::default();
        w.bytes(
            15,
            &property(0, "a", false, &value_bytes(|w| w.varint(1, 2))),
        );
        twice.extend(w.buf);
        assert!(decode_entity(&twice)
            .unwrap_err()
            .reason
            .contains("appears twice"));
        // No key; a namespace; an incomplete path element.
        assert!(decode_entity(&[]).unwrap_err().reason.contains("no key"));
        let mut key = Writer::default();
        key.bytes(13, b"dev~p1");
        key.bytes(
            14,
            &write_path_message(&[Element {
                kind: "c".into(),
                id: None,
                name: Some("x".into()),
            }]),
        );
        key.bytes(20, b"ns");
        let mut w = Writer::default();
        w.bytes(13, &key.buf);
        assert!(decode_entity(&w.buf)
            .unwrap_err()
            .reason
            .contains("namespace \"ns\""));
        let mut key = Writer::default();
        key.bytes(13, b"dev~p1");
        key.bytes(
            14,
            &write_path_message(&[Element {
                kind: "c".into(),
                id: None,
                name: None,
            }]),
        );
        let mut w = Writer::default();
        w.bytes(13, &key.buf);
        assert!(decode_entity(&w.buf)
            .unwrap_err()
            .reason
            .contains("exactly one of id and name"));
    }

    #[test]
    fn the_encoder_refuses_what_an_export_cannot_hold() {
        let nested = doc(
            &format!("{D}/c/x"),
            vec![("a", arr(vec![arr(vec![int(1)])]))],
        );
        assert!(encode_entity(&nested)
            .unwrap_err()
            .reason
            .contains("arrays cannot nest"));
        let bad_name = doc("projects/p/databases/(default)/documents/c", vec![]);
        assert!(encode_entity(&bad_name)
            .unwrap_err()
            .reason
            .contains("collection/id pairs"));
        let untyped = doc(&format!("{D}/c/x"), vec![("u", Value { value_type: None })]);
        assert!(encode_entity(&untyped)
            .unwrap_err()
            .reason
            .contains("field \"u\": a value without a type"));
    }

    #[test]
    fn unknown_fields_and_groups_are_skipped() {
        // An entity_group, an owner group-like unknown field and a fixed32 around a property.
        let mut w = Writer::default();
        w.tag(99, GROUP_START);
        w.varint(1, 5);
        w.tag(99, GROUP_END);
        w.tag(98, wire::FIXED32);
        w.buf.extend_from_slice(&[1, 2, 3, 4]);
        let mut bytes = entity_with(&property(0, "n", false, &value_bytes(|w| w.varint(1, 3))));
        bytes.extend(w.buf);
        let d = decode_entity(&bytes).unwrap();
        assert_eq!(
            canon_doc(&d),
            canon_doc(&doc(
                "projects/p1/databases/(default)/documents/c/x",
                vec![("n", int(3))]
            ))
        );
    }
}
