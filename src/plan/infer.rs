//! Pure type inference over sampled documents: per field path (nested maps flattened to
//! dotted paths, maps inside arrays traversed like mapping paths do), how many sampled
//! documents have it, with which Firestore value types, which element types its arrays
//! hold, and the shape of its strings and numbers (what a cast suggestion needs). No
//! value is kept: only counts, so a report never carries personal data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, MapValue, Value};
use serde::Serialize;

use crate::path::DocPath;

/// Distinct field paths tracked per collection pattern; past it, new paths are counted
/// in [`PatternStats::paths_not_tracked`] (bounded memory on documents with open-ended
/// keys).
pub const MAX_PATHS: usize = 2000;
/// Distinct string values kept per field for foreign-key matching (never reported).
pub const MAX_FK_VALUES: usize = 2000;
/// Deeper than Firestore allows (20 nested maps); a guard, not a limit in practice.
const MAX_DEPTH: usize = 64;

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

/// One segment of a field path: a field name, or any key of a map used as a dictionary
/// (keys that look like document ids, e.g. `readBy.{userId}`), collapsed into one path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    Name(String),
    AnyKey,
}

/// A field path.
pub type FieldPath = Vec<Segment>;

/// The path in mapping syntax (`a.b`, `` `a.b`.c ``), or `None` when the mapping
/// syntax cannot name it (a dictionary segment, a name starting with a backtick or
/// holding one next to a dot): such fields get no rule suggestion.
pub fn mapping_path(path: &[Segment]) -> Option<String> {
    let mut out = Vec::with_capacity(path.len());
    for s in path {
        let Segment::Name(n) = s else { return None };
        if n.is_empty() || n.contains('\0') {
            return None;
        }
        if n.contains('.') {
            if n.contains('`') {
                return None;
            }
            out.push(format!("`{n}`"));
        } else if n.starts_with('`') {
            return None;
        } else {
            out.push(n.clone());
        }
    }
    let s = out.join(".");
    // The renderer and the mapping parser must agree; anything else is not suggested.
    let parsed = crate::mapping::rules::parse_field_path(&s).ok()?;
    let want: Vec<&str> = path
        .iter()
        .map(|s| match s {
            Segment::Name(n) => n.as_str(),
            Segment::AnyKey => "",
        })
        .collect();
    (parsed.iter().map(String::as_str).eq(want.iter().copied())).then_some(s)
}

/// The path for people: mapping syntax when it has one, else the segments with `*` for
/// dictionary keys and backticks around odd names.
pub fn display_path(path: &[Segment]) -> String {
    mapping_path(path).unwrap_or_else(|| {
        path.iter()
            .map(|s| match s {
                Segment::AnyKey => "*".to_string(),
                Segment::Name(n) if n.contains('.') || n.contains('`') || n.is_empty() => {
                    format!("`{n}`")
                }
                Segment::Name(n) => n.clone(),
            })
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// Whether a map key looks like a document id rather than a field name: Firestore
/// auto-ids and Auth uids (mixed-case alphanumerics with digits, 16+ characters) or
/// UUIDs. Maps keyed by such ids are dictionaries: one path per key would be noise.
pub fn looks_like_id(k: &str) -> bool {
    let len = k.chars().count();
    let uuid = len == 36
        && k.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let auto = (16..=64).contains(&len)
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && k.chars().any(|c| c.is_ascii_digit())
        && k.chars().any(|c| c.is_ascii_uppercase())
        && k.chars().any(|c| c.is_ascii_lowercase());
    uuid || auto
}

/// What the string values of one field look like (counts of values, not documents).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StringShape {
    pub values: u64,
    pub empty: u64,
    /// RFC 3339 date-times (`2026-01-31T12:00:00Z`).
    pub rfc3339: u64,
    /// `YYYY-MM-DD`.
    pub date_only: u64,
    /// `YYYY-MM-DD HH:MM:SS`.
    pub date_time_space: u64,
    /// Whole numbers written canonically (`-12`, `0`; no leading zero, no `+`).
    pub integer: u64,
    /// Digits with a leading zero (`00123`): codes, not numbers.
    pub leading_zero: u64,
    /// Decimal numbers with a fraction (`12.30`, `-0.5`).
    pub decimal: u64,
    /// `true`/`false` in any case.
    pub boolean: u64,
    /// 24 hexadecimal digits (an ObjectId's text form).
    pub hex24: u64,
    /// Values with a `/` (paths, URLs): never foreign keys by id.
    pub with_slash: u64,
}

impl StringShape {
    fn add(&mut self, s: &str) {
        self.values += 1;
        if s.is_empty() {
            self.empty += 1;
            return;
        }
        if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
            self.rfc3339 += 1;
        } else if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10 {
            self.date_only += 1;
        } else if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok() {
            self.date_time_space += 1;
        }
        let digits = s.strip_prefix('-').unwrap_or(s);
        let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        if all_digits {
            if digits.len() > 1 && digits.starts_with('0') {
                self.leading_zero += 1;
            } else if digits.len() <= 18 {
                self.integer += 1;
            } else {
                // Longer than i64 can always hold: a decimal, if anything.
                self.decimal += 1;
            }
        } else if let Some((int, frac)) = digits.split_once('.') {
            let ok = !int.is_empty()
                && !frac.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.len() > 1 && int.starts_with('0'));
            if ok {
                self.decimal += 1;
            }
        }
        if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") {
            self.boolean += 1;
        }
        if s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.hex24 += 1;
        }
        if s.contains('/') {
            self.with_slash += 1;
        }
    }

    /// Non-empty values.
    pub fn non_empty(&self) -> u64 {
        self.values - self.empty
    }
}

/// What the integer values of one field look like.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntegerShape {
    pub values: u64,
    /// In 2001..2100 as seconds since the epoch.
    pub epoch_seconds: u64,
    /// In 2001..2100 as milliseconds since the epoch.
    pub epoch_millis: u64,
    /// Beyond ±2^53: a double cannot hold them exactly (a `double` cast fails).
    pub beyond_double: u64,
}

/// What the double values of one field look like.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DoubleShape {
    pub values: u64,
    /// NaN or ±Infinity: a `decimal128` cast fails on them.
    pub non_finite: u64,
}

impl DoubleShape {
    fn add(&mut self, d: f64) {
        self.values += 1;
        if !d.is_finite() {
            self.non_finite += 1;
        }
    }
}

const EPOCH_2001_S: i64 = 978_307_200;
const EPOCH_2100_S: i64 = 4_102_444_800;

impl IntegerShape {
    fn add(&mut self, n: i64) {
        self.values += 1;
        if n.unsigned_abs() > 1 << 53 {
            self.beyond_double += 1;
        }
        if (EPOCH_2001_S..EPOCH_2100_S).contains(&n) {
            self.epoch_seconds += 1;
        } else if (EPOCH_2001_S * 1000..EPOCH_2100_S * 1000).contains(&n) {
            self.epoch_millis += 1;
        }
    }
}

/// Statistics of one field path over the sampled documents of a pattern.
#[derive(Debug, Clone, Default)]
pub struct FieldStats {
    /// Sampled documents in which the path occurs (with any value, null included).
    pub present: u64,
    /// Per value type: sampled documents in which the path had that type.
    pub types: BTreeMap<Kind, u64>,
    /// Per element type of arrays at this path: documents in which an element had it.
    pub element_types: BTreeMap<Kind, u64>,
    /// The path passes through an array (its values are in array elements).
    pub in_array: bool,
    pub strings: StringShape,
    pub integers: IntegerShape,
    pub doubles: DoubleShape,
    /// Reference values at this path: the collection pattern they point into → values.
    pub references: BTreeMap<String, u64>,
    /// Distinct non-empty string values without `/` (bounded; for foreign-key matching
    /// only, never reported).
    pub fk_values: BTreeSet<String>,
    /// More distinct values existed than [`MAX_FK_VALUES`].
    pub fk_values_truncated: bool,
}

impl FieldStats {
    /// The non-null types seen: more than one is a conflict.
    pub fn non_null_types(&self) -> Vec<Kind> {
        self.types
            .keys()
            .copied()
            .filter(|k| *k != Kind::Null)
            .collect()
    }

    pub fn is_conflict(&self) -> bool {
        self.non_null_types().len() > 1
    }

    /// Array elements of more than one non-null type.
    pub fn mixed_elements(&self) -> bool {
        self.element_types
            .keys()
            .filter(|k| **k != Kind::Null)
            .count()
            > 1
    }
}

/// Statistics of one collection pattern's sample.
#[derive(Debug, Clone, Default)]
pub struct PatternStats {
    /// Documents fed in.
    pub sampled: u64,
    /// Sampled documents with no field at all.
    pub empty_documents: u64,
    pub fields: BTreeMap<FieldPath, FieldStats>,
    /// Occurrences of paths not tracked because [`MAX_PATHS`] was reached.
    pub paths_not_tracked: u64,
    /// Ids (last path segment) of the sampled documents, for foreign-key matching.
    pub ids: BTreeSet<String>,
}

/// Per-document observations, merged into the pattern's statistics once per document
/// so that frequencies count documents, not values.
#[derive(Default)]
struct DocSeen {
    present: BTreeSet<FieldPath>,
    types: BTreeSet<(FieldPath, Kind)>,
    elements: BTreeSet<(FieldPath, Kind)>,
}

impl PatternStats {
    /// Adds one sampled document.
    pub fn add(&mut self, doc: &Document) {
        self.sampled += 1;
        if let Ok(p) = DocPath::parse(&doc.name) {
            self.ids.insert(p.id().to_string());
        }
        if doc.fields.is_empty() {
            self.empty_documents += 1;
        }
        let mut seen = DocSeen::default();
        let mut path = Vec::new();
        self.walk_fields(&doc.fields, &mut path, false, &mut seen);
        for p in seen.present {
            if let Some(f) = self.fields.get_mut(&p) {
                f.present += 1;
            }
        }
        for (p, k) in seen.types {
            if let Some(f) = self.fields.get_mut(&p) {
                *f.types.entry(k).or_default() += 1;
            }
        }
        for (p, k) in seen.elements {
            if let Some(f) = self.fields.get_mut(&p) {
                *f.element_types.entry(k).or_default() += 1;
            }
        }
    }

    fn walk_fields(
        &mut self,
        fields: &HashMap<String, Value>,
        path: &mut FieldPath,
        in_array: bool,
        seen: &mut DocSeen,
    ) {
        if path.len() >= MAX_DEPTH {
            return;
        }
        // A map whose keys all look like ids is a dictionary: one `*` path for all keys.
        let dictionary = !path.is_empty() && fields.keys().all(|k| looks_like_id(k));
        for (name, value) in fields {
            path.push(if dictionary {
                Segment::AnyKey
            } else {
                Segment::Name(name.clone())
            });
            self.observe(value, path, in_array, seen);
            path.pop();
        }
    }

    fn observe(&mut self, value: &Value, path: &mut FieldPath, in_array: bool, seen: &mut DocSeen) {
        let kind = Kind::of(value);
        let Some(stats) = self.stats_for(path) else {
            return;
        };
        stats.in_array |= in_array;
        seen.present.insert(path.clone());
        seen.types.insert((path.clone(), kind));
        match &value.value_type {
            Some(ValueType::MapValue(m)) if kind == Kind::Map => {
                self.walk_fields(&m.fields, path, in_array, seen);
            }
            Some(ValueType::ArrayValue(a)) => {
                for e in &a.values {
                    let ek = Kind::of(e);
                    seen.elements.insert((path.clone(), ek));
                    // Maps in arrays are traversed, as mapping paths traverse them; other
                    // elements feed this path's shapes (casts apply element-wise).
                    match &e.value_type {
                        Some(ValueType::MapValue(m)) if ek == Kind::Map => {
                            self.walk_fields(&m.fields, path, true, seen);
                        }
                        _ => {
                            if let Some(stats) = self.fields.get_mut(path.as_slice()) {
                                Self::leaf(stats, e);
                            }
                        }
                    }
                }
            }
            _ => Self::leaf(stats, value),
        }
    }

    fn leaf(stats: &mut FieldStats, value: &Value) {
        match &value.value_type {
            Some(ValueType::StringValue(s)) => Self::leaf_string(stats, s),
            Some(ValueType::IntegerValue(n)) => stats.integers.add(*n),
            Some(ValueType::DoubleValue(d)) => stats.doubles.add(*d),
            Some(ValueType::ReferenceValue(r)) => {
                *stats.references.entry(reference_pattern(r)).or_default() += 1;
            }
            _ => {}
        }
    }

    fn leaf_string(stats: &mut FieldStats, s: &str) {
        stats.strings.add(s);
        if !s.is_empty() && !s.contains('/') {
            if stats.fk_values.len() < MAX_FK_VALUES {
                stats.fk_values.insert(s.to_string());
            } else if !stats.fk_values.contains(s) {
                stats.fk_values_truncated = true;
            }
        }
    }

    fn stats_for(&mut self, path: &FieldPath) -> Option<&mut FieldStats> {
        if !self.fields.contains_key(path) {
            if self.fields.len() >= MAX_PATHS {
                self.paths_not_tracked += 1;
                return None;
            }
            self.fields.insert(path.clone(), FieldStats::default());
        }
        self.fields.get_mut(path)
    }

    /// Paths with more than one non-null type.
    pub fn conflicts(&self) -> impl Iterator<Item = (&FieldPath, &FieldStats)> {
        self.fields.iter().filter(|(_, f)| f.is_conflict())
    }
}

/// The collection pattern a reference value points into (`users/{}/posts`), or the
/// raw value when it is not a document name.
pub fn reference_pattern(r: &str) -> String {
    DocPath::parse(r)
        .map(|p| p.pattern().to_string())
        .unwrap_or_else(|_| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{arr, doc, i, map, s, v};

    fn name(p: &str) -> FieldPath {
        crate::mapping::rules::parse_field_path(p)
            .unwrap()
            .into_iter()
            .map(Segment::Name)
            .collect()
    }

    #[test]
    fn frequencies_count_documents_per_type_and_flatten_maps() {
        let mut st = PatternStats::default();
        st.add(&doc(
            "users/u1",
            vec![
                ("name", s("Ana")),
                ("settings", map(vec![("theme", s("dark"))])),
            ],
        ));
        st.add(&doc(
            "users/u2",
            vec![("name", v(ValueType::NullValue(0))), ("age", i(3))],
        ));
        st.add(&doc("users/u3", vec![]));
        assert_eq!(st.sampled, 3);
        assert_eq!(st.empty_documents, 1);
        let n = &st.fields[&name("name")];
        assert_eq!(n.present, 2);
        assert_eq!(n.types[&Kind::String], 1);
        assert_eq!(n.types[&Kind::Null], 1);
        assert!(!n.is_conflict(), "null next to one type is not a conflict");
        let theme = &st.fields[&name("settings.theme")];
        assert_eq!((theme.present, theme.types[&Kind::String]), (1, 1));
        assert_eq!(st.fields[&name("settings")].types[&Kind::Map], 1);
        assert_eq!(
            st.ids,
            ["u1", "u2", "u3"].iter().map(|s| s.to_string()).collect()
        );
    }

    #[test]
    fn conflicts_are_fields_with_two_non_null_types() {
        let mut st = PatternStats::default();
        st.add(&doc("c/a", vec![("x", s("a")), ("n", i(1))]));
        st.add(&doc("c/b", vec![("x", i(42)), ("n", i(2))]));
        st.add(&doc("c/c", vec![("x", map(vec![("was", s("m"))]))]));
        let conflicts: Vec<_> = st.conflicts().map(|(p, _)| display_path(p)).collect();
        assert_eq!(conflicts, vec!["x"]);
        assert_eq!(
            st.fields[&name("x")].non_null_types(),
            vec![Kind::Integer, Kind::String, Kind::Map]
        );
    }

    #[test]
    fn arrays_note_element_types_and_traverse_maps_once_per_document() {
        let mut st = PatternStats::default();
        st.add(&doc(
            "orders/o1",
            vec![
                (
                    "items",
                    arr(vec![
                        map(vec![("qty", i(1))]),
                        map(vec![("qty", i(2)), ("sku", s("a"))]),
                    ]),
                ),
                ("tags", arr(vec![s("x"), i(1)])),
            ],
        ));
        st.add(&doc("orders/o2", vec![("items", arr(vec![]))]));
        let items = &st.fields[&name("items")];
        assert_eq!(items.present, 2);
        assert_eq!(items.types[&Kind::Array], 2);
        assert_eq!(items.element_types[&Kind::Map], 1);
        let qty = &st.fields[&name("items.qty")];
        assert!(qty.in_array);
        assert_eq!(qty.present, 1, "two elements of one document count once");
        assert_eq!(qty.integers.values, 2);
        let tags = &st.fields[&name("tags")];
        assert!(tags.mixed_elements());
        assert!(!tags.is_conflict());
    }

    #[test]
    fn vectors_are_leaves_and_id_keyed_maps_collapse() {
        let mut st = PatternStats::default();
        let vector = map(vec![
            ("__type__", s("__vector__")),
            ("value", arr(vec![v(ValueType::DoubleValue(0.5))])),
        ]);
        st.add(&doc(
            "m/1",
            vec![
                ("embedding", vector),
                (
                    "readBy",
                    map(vec![
                        ("AbCdEfGhIj0123456789", i(1)),
                        ("ZyXwVuTsRq9876543210", i(2)),
                    ]),
                ),
            ],
        ));
        assert_eq!(st.fields[&name("embedding")].types[&Kind::Vector], 1);
        assert!(!st.fields.contains_key(&name("embedding.value")));
        let dict = vec![Segment::Name("readBy".into()), Segment::AnyKey];
        assert_eq!(st.fields[&dict].present, 1);
        assert_eq!(display_path(&dict), "readBy.*");
        assert_eq!(mapping_path(&dict), None);
        assert!(looks_like_id("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
        assert!(!looks_like_id("createdAt"));
        assert!(!looks_like_id("key001"));
    }

    #[test]
    fn string_and_integer_shapes() {
        let mut sh = StringShape::default();
        for x in [
            "2026-01-31T12:00:00Z",
            "2026-01-31",
            "2026-01-31 12:00:00",
            "42",
            "-7",
            "00123",
            "12.30",
            "TRUE",
            "5f0000000000000000000000",
            "a/b",
            "",
        ] {
            sh.add(x);
        }
        assert_eq!(
            (sh.rfc3339, sh.date_only, sh.date_time_space),
            (1, 1, 1),
            "{sh:?}"
        );
        assert_eq!((sh.integer, sh.leading_zero, sh.decimal), (2, 1, 1));
        assert_eq!(
            (sh.boolean, sh.hex24, sh.with_slash, sh.empty),
            (1, 1, 1, 1)
        );
        let mut n = IntegerShape::default();
        n.add(1_767_225_600);
        n.add(1_767_225_600_000);
        n.add(5);
        n.add(i64::MIN);
        assert_eq!(
            (n.values, n.epoch_seconds, n.epoch_millis, n.beyond_double),
            (4, 1, 1, 1)
        );
        let mut d = DoubleShape::default();
        d.add(f64::NAN);
        d.add(1.5);
        assert_eq!((d.values, d.non_finite), (2, 1));
    }

    #[test]
    fn mapping_paths_round_trip_or_are_refused() {
        let p = |xs: &[&str]| -> FieldPath {
            xs.iter().map(|x| Segment::Name(x.to_string())).collect()
        };
        assert_eq!(mapping_path(&p(&["a", "b"])).as_deref(), Some("a.b"));
        assert_eq!(mapping_path(&p(&["a.b", "c"])).as_deref(), Some("`a.b`.c"));
        assert_eq!(
            mapping_path(&p(&["$x", "naïve ключ"])).as_deref(),
            Some("$x.naïve ключ")
        );
        assert_eq!(mapping_path(&p(&["`backtick`"])), None);
        assert_eq!(mapping_path(&p(&["a.`b"])), None);
    }

    #[test]
    fn path_cap_bounds_memory() {
        let mut st = PatternStats::default();
        let wide: Vec<(String, Value)> = (0..MAX_PATHS + 10)
            .map(|k| (format!("k{k}"), i(1)))
            .collect();
        let d = Document {
            name: "projects/p/databases/(default)/documents/w/1".into(),
            fields: wide.into_iter().collect(),
            ..Default::default()
        };
        st.add(&d);
        assert_eq!(st.fields.len(), MAX_PATHS);
        assert_eq!(st.paths_not_tracked, 10);
    }

    #[test]
    fn references_are_attributed_to_patterns() {
        let mut st = PatternStats::default();
        st.add(&doc(
            "c/1",
            vec![(
                "author",
                v(ValueType::ReferenceValue(
                    "projects/p/databases/(default)/documents/users/u1".into(),
                )),
            )],
        ));
        assert_eq!(st.fields[&name("author")].references["users"], 1);
    }
}
