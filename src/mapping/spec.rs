//! The TOML schema of mapping files, exactly as an operator writes them. Every struct
//! refuses unknown keys (`deny_unknown_fields`); the doc comments here are the user
//! documentation (docs/mappings.md repeats them with examples). Nothing is checked here
//! beyond types: the meaning is checked by `validate.rs`, before any I/O.
//!
//! Values are wrapped in [`Spanned`] so that a later error can name the file, line and
//! column of the value it is about.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::mapping::value::FieldNamePolicy;

/// `mappings/<dataset>/dataset.toml`: settings shared by every mapping of the dataset
/// and by the collections that have no mapping file. Optional, as is every key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetFile {
    /// Key of the keyed hash (HMAC-SHA256) that derives `objectid` identities from
    /// document paths. Not a secret: it namespaces the ids, so two datasets (or two
    /// migrations that must not collide) can use different keys. Changing it changes every
    /// derived `_id`. Default: `"fireshift-objectid-v1"`.
    pub id_key: Option<Spanned<String>>,
    /// Default field-name policy: `"keep"` (default), `"escape"` or `"reject"`.
    pub field_names: Option<Spanned<FieldNamePolicy>>,
    /// Default representation of references (Firestore reference values, declared
    /// foreign keys and parent keys): `"id"` (default), `"path"` or `"dbref"`.
    pub references: Option<Spanned<RefRepr>>,
    /// Default name of the field that keeps the Firestore document id under the
    /// `objectid` and `field` identities. Default: `"firestoreId"`.
    pub firestore_id_field: Option<Spanned<String>>,
}

impl DatasetFile {
    pub const KEYS: &'static [&'static str] =
        &["id_key", "field_names", "references", "firestore_id_field"];
}

/// One mapping file: how one source collection (or collection-group pattern) lands.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// Required. The source collection: a root collection id (`"users"`) or a
    /// subcollection pattern with named placeholders for the parent ids
    /// (`"users/{userId}/posts"`). Placeholder names can be used by `ref` patterns.
    pub collection: Spanned<String>,
    /// The MongoDB collection. Default: the collection ids joined by `.`
    /// (`users/{userId}/posts` → `users.posts`). Not allowed with `[embed]`.
    pub target: Option<Spanned<String>>,
    /// Field-name policy for names with a `.` or a leading `$`: `"keep"`, `"escape"` or
    /// `"reject"`. Default: the dataset's.
    pub field_names: Option<Spanned<FieldNamePolicy>>,
    /// What happens to top-level source fields that have no entry in `[fields]`:
    /// `"keep"` (default) or `"drop"`.
    pub unmapped_fields: Option<Spanned<UnmappedFields>>,
    /// The identity (`_id`) of the target documents.
    pub id: Option<Spanned<IdSpec>>,
    /// Subcollections only: the parent key of a subcollection landing in its own
    /// collection (the default landing).
    pub parent: Option<Spanned<ParentSpec>>,
    /// Subcollections only: land as an array inside the parent document instead.
    pub embed: Option<Spanned<EmbedSpec>>,
    /// Document metadata copied into fields.
    pub metadata: Option<Spanned<MetadataSpec>>,
    /// Per-field rules, keyed by the source field path (see [`FieldSpec`]).
    #[serde(default)]
    pub fields: BTreeMap<Spanned<String>, Spanned<FieldSpec>>,
    /// Indexes of the target collection, built after the copy.
    #[serde(default)]
    pub indexes: Vec<Spanned<IndexSpec>>,
}

impl MappingFile {
    pub const KEYS: &'static [&'static str] = &[
        "collection",
        "target",
        "field_names",
        "unmapped_fields",
        "id",
        "parent",
        "embed",
        "metadata",
        "fields",
        "indexes",
    ];
}

/// `[id]`: how `_id` is made.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdSpec {
    /// `"keep"` (default): the Firestore id (a subcollection's `_id` is its whole path,
    /// ids being unique only under their parent). `"objectid"`: an ObjectId derived from
    /// the document path with the dataset's `id_key`, the Firestore id kept in
    /// `firestore_id_field`. `"field"`: the value of the source field `field`.
    pub strategy: Option<Spanned<IdStrategy>>,
    /// `strategy = "field"` only: the top-level source field whose value (after its
    /// `[fields]` rule, e.g. a cast) becomes `_id`; it is moved, not copied.
    pub field: Option<Spanned<String>>,
    /// `objectid` and `field` only: where the Firestore document id is kept. Default:
    /// the dataset's (`firestoreId`).
    pub firestore_id_field: Option<Spanned<String>>,
}

impl IdSpec {
    pub const KEYS: &'static [&'static str] = &["strategy", "field", "firestore_id_field"];
}

/// The identity strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdStrategy {
    Keep,
    #[serde(rename = "objectid")]
    ObjectId,
    Field,
}

/// `[parent]`: the parent key of a subcollection in its own collection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentSpec {
    /// Name of the parent-key field. Default: `"_parent"`.
    pub field: Option<Spanned<String>>,
    /// Representation of the parent key: `"id"`, `"path"` or `"dbref"`. Default: the
    /// dataset's `references`.
    #[serde(rename = "as")]
    pub repr: Option<Spanned<RefRepr>>,
}

impl ParentSpec {
    pub const KEYS: &'static [&'static str] = &["field", "as"];
}

/// `[embed]`: the subcollection lands as an array of its documents inside the parent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedSpec {
    /// Optional check: the parent's target collection. Validation fails if the parent
    /// lands elsewhere.
    pub into: Option<Spanned<String>>,
    /// Required: the array field of the parent document.
    pub field: Spanned<String>,
    /// Required: the most elements the array may hold (1 to 100000). A child past it is
    /// dead-lettered with rule `embed-limit`.
    pub max: Spanned<i64>,
}

impl EmbedSpec {
    pub const KEYS: &'static [&'static str] = &["into", "field", "max"];
}

/// `[metadata]`: Firestore document metadata copied into fields (BSON dates, ms).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataSpec {
    /// Field that receives the document's create time.
    pub create_time: Option<Spanned<String>>,
    /// Field that receives the document's last update time.
    pub update_time: Option<Spanned<String>>,
}

impl MetadataSpec {
    pub const KEYS: &'static [&'static str] = &["create_time", "update_time"];
}

/// A `[fields]` entry: the rule for one source field. The key is the field path in the
/// source: `"price"`, or `"items.price"` for the field `price` of the map `items` — or
/// of every map in the array `items`. A segment with a `.` in its name is written in
/// backticks: ``"`a.b`.c"``.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// New name (the last path segment only; the field stays where it is).
    pub rename: Option<Spanned<String>>,
    /// Leave the field out. No other key is allowed with it.
    pub drop: Option<Spanned<bool>>,
    /// Value used when the field is absent (not when it is null). Any TOML value; cast
    /// by `cast` when there is one.
    pub default: Option<Spanned<toml::Value>>,
    /// The document is dead-lettered (rule `required`) when the field is absent or null.
    pub required: Option<Spanned<bool>>,
    /// Convert the value to this BSON type (null stays null; arrays element by element):
    /// `"string"`, `"int32"`, `"int64"`, `"double"`, `"decimal128"`, `"date"`, `"bool"`,
    /// `"objectid"`. A value that cannot convert dead-letters the document (rule `cast`).
    pub cast: Option<Spanned<CastType>>,
    /// `cast = "date"` from a string: `"rfc3339"` (default) or a chrono/strftime pattern
    /// such as `"%Y-%m-%d %H:%M:%S"` (read as UTC unless it has `%z`), or `"%Y-%m-%d"`.
    pub format: Option<Spanned<String>>,
    /// `cast = "date"` from a number: `"ms"` (default) or `"s"` since the Unix epoch.
    pub unit: Option<Spanned<EpochUnit>>,
    /// The field references documents of this collection pattern (`"users"`,
    /// `"users/{userId}/posts"`), which must have a mapping file. Strings are read per
    /// `ref_from`; Firestore reference values must point into that pattern. The value is
    /// rewritten to what `as` says (default: the referenced document's target `_id`).
    #[serde(rename = "ref")]
    pub reference: Option<Spanned<String>>,
    /// How a string is read for `ref`: `"id"` (default: the document id; placeholders of
    /// a subcollection pattern are filled from this document's own path placeholders of
    /// the same name, else from its top-level source fields of that name) or `"path"`
    /// (a document path, relative like `users/u1` or a full resource name).
    pub ref_from: Option<Spanned<RefFrom>>,
    /// Representation of the reference: `"id"`, `"path"` or `"dbref"`. Default: the
    /// dataset's `references`. Allowed without `ref` for fields holding reference values.
    #[serde(rename = "as")]
    pub repr: Option<Spanned<RefRepr>>,
}

impl FieldSpec {
    pub const KEYS: &'static [&'static str] = &[
        "rename", "drop", "default", "required", "cast", "format", "unit", "ref", "ref_from", "as",
    ];
}

/// Cast targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CastType {
    String,
    Int32,
    Int64,
    Double,
    Decimal128,
    Date,
    Bool,
    #[serde(rename = "objectid")]
    ObjectId,
}

impl CastType {
    pub fn name(self) -> &'static str {
        match self {
            CastType::String => "string",
            CastType::Int32 => "int32",
            CastType::Int64 => "int64",
            CastType::Double => "double",
            CastType::Decimal128 => "decimal128",
            CastType::Date => "date",
            CastType::Bool => "bool",
            CastType::ObjectId => "objectid",
        }
    }
}

/// Unit of a number cast to a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochUnit {
    #[default]
    Ms,
    S,
}

/// How a string foreign key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefFrom {
    #[default]
    Id,
    Path,
}

/// How a reference is stored in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefRepr {
    /// The referenced document's target `_id` (String or ObjectId per its identity).
    #[default]
    Id,
    /// The referenced document's relative Firestore path (`users/u1`).
    Path,
    /// `{$ref: <target collection>, $id: <_id>}`.
    #[serde(rename = "dbref")]
    DbRef,
}

/// Top-level source fields without a `[fields]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnmappedFields {
    #[default]
    Keep,
    Drop,
}

/// An `[[indexes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Required, ordered: field → `1` (ascending), `-1` (descending), `"text"`,
    /// `"2dsphere"`, `"2d"` or `"hashed"`. Dotted fields are quoted (`"comments.author"`)
    /// or written as nested tables; both mean the same.
    pub keys: Spanned<IndexKeys>,
    /// Index name. Default: MongoDB's (`userId_1_createdAt_-1`).
    pub name: Option<Spanned<String>>,
    pub unique: Option<Spanned<bool>>,
    pub sparse: Option<Spanned<bool>>,
    /// TTL: documents expire this many seconds after the date in the (single) key field.
    pub expire_after_seconds: Option<Spanned<i64>>,
    /// Partial index: a MongoDB filter as a TOML table, e.g.
    /// `partial = { deletedAt = { "$exists" = false } }`.
    pub partial: Option<Spanned<toml::Table>>,
}

impl IndexSpec {
    pub const KEYS: &'static [&'static str] = &[
        "keys",
        "name",
        "unique",
        "sparse",
        "expire_after_seconds",
        "partial",
    ];
}

/// One index key kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum IndexKind {
    Asc,
    Desc,
    Text,
    Sphere2d,
    Flat2d,
    Hashed,
}

impl IndexKind {
    /// The value in a MongoDB key pattern, and in default index names.
    pub fn bson(self) -> mongodb::bson::Bson {
        use mongodb::bson::Bson;
        match self {
            IndexKind::Asc => Bson::Int32(1),
            IndexKind::Desc => Bson::Int32(-1),
            IndexKind::Text => Bson::String("text".into()),
            IndexKind::Sphere2d => Bson::String("2dsphere".into()),
            IndexKind::Flat2d => Bson::String("2d".into()),
            IndexKind::Hashed => Bson::String("hashed".into()),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            IndexKind::Asc => "1",
            IndexKind::Desc => "-1",
            IndexKind::Text => "text",
            IndexKind::Sphere2d => "2dsphere",
            IndexKind::Flat2d => "2d",
            IndexKind::Hashed => "hashed",
        }
    }
}

/// Index keys in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexKeys(pub Vec<(String, IndexKind)>);

impl<'de> Deserialize<'de> for IndexKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IndexKeys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a table of field = 1 | -1 | \"text\" | \"2dsphere\" | \"2d\" | \"hashed\"",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IndexKeys, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, toml::Value>()? {
                    flatten_key(&k, &v, &mut out).map_err(de::Error::custom)?;
                }
                Ok(IndexKeys(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn flatten_key(
    prefix: &str,
    v: &toml::Value,
    out: &mut Vec<(String, IndexKind)>,
) -> Result<(), String> {
    let kind = match v {
        toml::Value::Integer(1) => IndexKind::Asc,
        toml::Value::Integer(-1) => IndexKind::Desc,
        toml::Value::String(s) if s == "text" => IndexKind::Text,
        toml::Value::String(s) if s == "2dsphere" => IndexKind::Sphere2d,
        toml::Value::String(s) if s == "2d" => IndexKind::Flat2d,
        toml::Value::String(s) if s == "hashed" => IndexKind::Hashed,
        toml::Value::Table(t) => {
            for (k, v) in t {
                flatten_key(&format!("{prefix}.{k}"), v, out)?;
            }
            return Ok(());
        }
        other => {
            return Err(format!(
                "index key `{prefix}` = {other}: expected 1, -1, \"text\", \"2dsphere\", \"2d\" or \"hashed\""
            ))
        }
    };
    out.push((prefix.to_string(), kind));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `KEYS` lists drive the all-errors unknown-key scan; they must list exactly the
    /// keys serde accepts. serde's own message for an unknown key names them.
    fn serde_keys<T: for<'de> Deserialize<'de> + fmt::Debug>(wrap: &str) -> Vec<String> {
        let text = wrap.replace("KEY", "zzz_unknown = 1");
        let err = toml::from_str::<T>(&text)
            .unwrap_err()
            .message()
            .to_string();
        let tail = err
            .split("expected one of ")
            .nth(1)
            .or_else(|| err.split("expected ").nth(1))
            .unwrap_or_else(|| panic!("{err}"));
        tail.split(", ")
            .flat_map(|s| s.split(" or "))
            .map(|s| s.trim().trim_matches('`').to_string())
            .collect()
    }

    #[test]
    fn key_lists_match_what_serde_accepts() {
        let check = |got: Vec<String>, want: &[&str]| {
            let mut got = got;
            got.sort();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want);
        };
        check(serde_keys::<DatasetFile>("KEY"), DatasetFile::KEYS);
        check(
            serde_keys::<MappingFile>("collection = \"a\"\nKEY"),
            MappingFile::KEYS,
        );
        check(serde_keys::<IdSpec>("KEY"), IdSpec::KEYS);
        check(serde_keys::<ParentSpec>("KEY"), ParentSpec::KEYS);
        check(
            serde_keys::<EmbedSpec>("field = \"x\"\nmax = 1\nKEY"),
            EmbedSpec::KEYS,
        );
        check(serde_keys::<MetadataSpec>("KEY"), MetadataSpec::KEYS);
        check(serde_keys::<FieldSpec>("KEY"), FieldSpec::KEYS);
        check(
            serde_keys::<IndexSpec>("keys = { a = 1 }\nKEY"),
            IndexSpec::KEYS,
        );
    }

    #[test]
    fn index_keys_keep_their_order_and_flatten_nested_tables() {
        let spec: IndexSpec = toml::from_str(
            "keys = { z = 1, a = -1, comments.author = \"text\", \"b.c\" = \"2dsphere\" }",
        )
        .unwrap();
        assert_eq!(
            spec.keys.into_inner().0,
            vec![
                ("z".to_string(), IndexKind::Asc),
                ("a".to_string(), IndexKind::Desc),
                ("comments.author".to_string(), IndexKind::Text),
                ("b.c".to_string(), IndexKind::Sphere2d),
            ]
        );
        let err = toml::from_str::<IndexSpec>("keys = { a = 2 }").unwrap_err();
        assert!(err.message().contains("expected 1, -1"), "{err}");
    }
}
