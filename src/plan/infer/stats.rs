//! The statistics of one collection pattern's sample ([`PatternStats`]) and of each of
//! its field paths ([`FieldStats`]): documents are walked one at a time, and what each
//! one has counts once, so frequencies count documents, not values. Bounded: at most
//! [`MAX_PATHS`] paths and [`MAX_FK_VALUES`] foreign-key candidates per field.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, Value};

use super::kind::Kind;
use super::path::{looks_like_id, FieldPath, Segment};
use super::shape::{DoubleShape, IntegerShape, StringShape};
use crate::path::DocPath;

/// Distinct field paths tracked per collection pattern; past it, new paths are counted
/// in [`PatternStats::paths_not_tracked`] (bounded memory on documents with open-ended
/// keys).
pub const MAX_PATHS: usize = 2000;
/// Distinct string values kept per field for foreign-key matching (never reported).
pub const MAX_FK_VALUES: usize = 2000;
/// Deeper than Firestore allows (20 nested maps); a guard, not a limit in practice.
const MAX_DEPTH: usize = 64;

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
    use crate::plan::infer::{display_path, mapping_path};
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
