//! Simple queries — equality filters, order, limit — answered by Firestore or by MongoDB
//! depending on the collection's mode. On the MongoDB side each filter's field path and
//! value go through the same field rules the mapping applies to documents (renames,
//! casts, field-name policy), so the same query finds the same documents on both sides.

use gcloud_sdk::google::firestore::v1::{structured_query, StructuredQuery, Value};
use mongodb::bson::{Bson, Document};

use super::error::{DualError, DualResult};
use crate::mapping::rules::{cast_value, RuleNode};
use crate::mapping::spec::UnmappedFields;
use crate::mapping::value::{field_name, to_bson, ConvertOptions};
use crate::mapping::{CompiledMapping, Landing, MappingSet};
use crate::path::DocPath;

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ascending,
    Descending,
}

/// A query over one collection (`users`, or a subcollection `content/c1/comments`).
/// Field paths are dotted Firestore field names (`stats.views`); names holding a `.`
/// or needing backquotes are not supported.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub equals: Vec<(String, Value)>,
    pub order_by: Vec<(String, Direction)>,
    pub limit: Option<u32>,
}

impl Query {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn eq(mut self, field: impl Into<String>, value: Value) -> Self {
        self.equals.push((field.into(), value));
        self
    }

    pub fn order_by(mut self, field: impl Into<String>, direction: Direction) -> Self {
        self.order_by.push((field.into(), direction));
        self
    }

    pub fn limit(mut self, n: u32) -> Self {
        self.limit = Some(n);
        self
    }

    fn check(&self) -> DualResult<()> {
        for f in self
            .equals
            .iter()
            .map(|(f, _)| f)
            .chain(self.order_by.iter().map(|(f, _)| f))
        {
            if f.is_empty() || f.split('.').any(|s| s.is_empty() || s.contains('`')) {
                return Err(DualError::Unsupported(format!(
                    "query field path `{f}`: only plain dotted field names are supported"
                )));
            }
        }
        Ok(())
    }

    /// The Firestore structured query (the collection id only; the parent goes in the
    /// request).
    pub(crate) fn to_firestore(&self, collection_id: &str) -> DualResult<StructuredQuery> {
        self.check()?;
        let field = |f: &str| structured_query::FieldReference {
            field_path: f.to_string(),
        };
        let filters: Vec<structured_query::Filter> = self
            .equals
            .iter()
            .map(|(f, v)| structured_query::Filter {
                filter_type: Some(structured_query::filter::FilterType::FieldFilter(
                    structured_query::FieldFilter {
                        field: Some(field(f)),
                        op: structured_query::field_filter::Operator::Equal as i32,
                        value: Some(v.clone()),
                    },
                )),
            })
            .collect();
        let r#where = match filters.len() {
            0 => None,
            1 => filters.into_iter().next(),
            _ => Some(structured_query::Filter {
                filter_type: Some(structured_query::filter::FilterType::CompositeFilter(
                    structured_query::CompositeFilter {
                        op: structured_query::composite_filter::Operator::And as i32,
                        filters,
                    },
                )),
            }),
        };
        Ok(StructuredQuery {
            from: vec![structured_query::CollectionSelector {
                collection_id: collection_id.to_string(),
                all_descendants: false,
            }],
            r#where,
            order_by: self
                .order_by
                .iter()
                .map(|(f, d)| structured_query::Order {
                    field: Some(field(f)),
                    direction: match d {
                        Direction::Ascending => structured_query::Direction::Ascending,
                        Direction::Descending => structured_query::Direction::Descending,
                    } as i32,
                })
                .collect(),
            limit: self.limit.map(|n| n.min(i32::MAX as u32) as i32),
            ..Default::default()
        })
    }

    /// The MongoDB filter and sort for a collection under `mapping`; `parent` is the
    /// parent document of a subcollection.
    pub(crate) fn to_mongo(
        &self,
        set: &MappingSet,
        mapping: &CompiledMapping,
        parent: Option<&DocPath<'_>>,
    ) -> DualResult<(Document, Document)> {
        self.check()?;
        let mut filter = Document::new();
        if let (
            Landing::Own {
                parent_field,
                parent_as,
            },
            Some(parent),
        ) = (&mapping.landing, parent)
        {
            let key = set
                .render_reference(parent, *parent_as)
                .map_err(DualError::Unsupported)?;
            filter.insert(parent_field.clone(), key);
        }
        for (f, v) in &self.equals {
            let (path, value) = translate_field(mapping, f, Some(v))?;
            filter.insert(path, value.unwrap_or(Bson::Null));
        }
        let mut sort = Document::new();
        for (f, d) in &self.order_by {
            let (path, _) = translate_field(mapping, f, None)?;
            sort.insert(
                path,
                match d {
                    Direction::Ascending => 1,
                    Direction::Descending => -1,
                },
            );
        }
        // Firestore breaks ties by document name; the `_id` is the closest stable order.
        if !sort.contains_key("_id") {
            sort.insert("_id", 1);
        }
        Ok((filter, sort))
    }
}

/// A Firestore field path (and value) as the mapping writes them.
pub(crate) fn translate_field(
    mapping: &CompiledMapping,
    field: &str,
    value: Option<&Value>,
) -> DualResult<(String, Option<Bson>)> {
    let unsupported = |why: &str| {
        DualError::Unsupported(format!(
            "query on `{field}` of `{}`: {why}",
            mapping.collection
        ))
    };
    let opts = ConvertOptions {
        field_names: mapping.field_names,
    };
    let mut node: Option<&RuleNode> = Some(&mapping.rules);
    let mut out = Vec::new();
    let mut cast = None;
    for (depth, seg) in field.split('.').enumerate() {
        let child = node.and_then(|n| n.children.get(seg));
        let rule = child.and_then(|c| c.rule.as_ref());
        if depth == 0 && child.is_none() && mapping.unmapped_fields == UnmappedFields::Drop {
            return Err(unsupported("the mapping drops this field"));
        }
        if let Some(r) = rule {
            if r.drop {
                return Err(unsupported("the mapping drops this field"));
            }
            if r.reference.is_some() || r.repr.is_some() {
                return Err(unsupported(
                    "reference fields cannot be queried through the store",
                ));
            }
            cast = r.cast.clone();
        } else {
            cast = None;
        }
        let name = match rule.and_then(|r| r.rename.clone()) {
            Some(n) => n,
            None => field_name(seg, opts.field_names).map_err(|e| unsupported(&e.reason))?,
        };
        out.push(name);
        node = child;
    }
    let value = match value {
        None => None,
        Some(v) => {
            let b = to_bson(v, &opts).map_err(|e| unsupported(&e.reason))?;
            Some(match &cast {
                Some(c) => cast_value(b, c).map_err(|e| unsupported(&e))?,
                None => b,
            })
        }
    };
    Ok((out.join("."), value))
}
