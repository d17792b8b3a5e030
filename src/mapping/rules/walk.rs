//! The conversion walk of one document: every field converts under its rule (rename,
//! drop, default, required, cast), declared references resolve from the Firestore value
//! through the mapping set, and the first field a rule refuses stops the document with
//! a [`RuleError`].

use std::collections::HashMap;

use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};
use mongodb::bson::{Bson, Document};

use super::cast::cast_value;
use super::tree::{FieldRule, RefRule, RuleError, RuleNode};
use crate::mapping::spec::{RefFrom, RefRepr, UnmappedFields};
use crate::mapping::value::{
    field_name, to_bson_with, type_name, ConvertError, ConvertErrorKind, ConvertOptions,
    ResolveReference,
};
use crate::mapping::MappingSet;
use crate::path::DocPath;

/// What the conversion walk of one document needs.
pub struct Walk<'a> {
    pub set: &'a MappingSet,
    /// The document being converted.
    pub path: &'a DocPath<'a>,
    /// Placeholder names of the document's own pattern, by parent level.
    pub placeholders: &'a [String],
    pub source: &'a HashMap<String, Value>,
    pub opts: ConvertOptions,
    pub unmapped: UnmappedFields,
    /// Representation of undeclared reference values.
    pub repr: RefRepr,
}

/// Resolves reference values through the mapping set, in one representation.
pub struct SetReferences<'a> {
    pub set: &'a MappingSet,
    pub repr: RefRepr,
}

impl ResolveReference for SetReferences<'_> {
    fn resolve(&self, path: &DocPath<'_>) -> Result<Bson, String> {
        self.set.render_reference(path, self.repr)
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn convert_error(path: &str, e: ConvertError) -> RuleError {
    let field = if e.field.is_empty() {
        path.to_string()
    } else if e.field.starts_with('[') {
        format!("{path}{}", e.field)
    } else {
        format!("{path}.{}", e.field)
    };
    RuleError {
        rule: match e.kind {
            ConvertErrorKind::Value => "convert",
            ConvertErrorKind::FieldName => "field-name",
            ConvertErrorKind::Reference => "reference",
        },
        field,
        reason: e.reason,
    }
}

impl Walk<'_> {
    /// Converts the document's top-level fields under `rules`.
    pub fn convert_document(&self, rules: &RuleNode) -> Result<Document, RuleError> {
        self.convert_map(self.source, Some(rules), "", true)
    }

    fn convert_map(
        &self,
        fields: &HashMap<String, Value>,
        node: Option<&RuleNode>,
        prefix: &str,
        top: bool,
    ) -> Result<Document, RuleError> {
        let mut keys: Vec<&String> = fields.keys().collect();
        keys.sort_unstable();
        let mut out = Document::new();
        for key in keys {
            let child = node.and_then(|n| n.children.get(key.as_str()));
            if top && child.is_none() && self.unmapped == UnmappedFields::Drop {
                continue;
            }
            let rule = child.and_then(|c| c.rule.as_ref());
            if rule.is_some_and(|r| r.drop) {
                continue;
            }
            let path = join(prefix, key);
            let value = &fields[key];
            let mut bson = match (rule, child) {
                (
                    Some(FieldRule {
                        reference: Some(r),
                        repr,
                        ..
                    }),
                    _,
                ) => self.convert_ref(value, r, repr.unwrap_or(self.repr), &path)?,
                (_, Some(c)) if !c.children.is_empty() => self.convert_nested(value, c, &path)?,
                (
                    Some(FieldRule {
                        repr: Some(repr), ..
                    }),
                    _,
                ) => {
                    let refs = SetReferences {
                        set: self.set,
                        repr: *repr,
                    };
                    to_bson_with(value, &self.opts, &refs).map_err(|e| convert_error(&path, e))?
                }
                _ => self.plain(value, &path)?,
            };
            if let Some(c) = rule.and_then(|r| r.cast.as_ref()) {
                bson = cast_value(bson, c).map_err(|reason| RuleError {
                    rule: "cast",
                    field: path.clone(),
                    reason,
                })?;
            }
            let name = match rule.and_then(|r| r.rename.clone()) {
                Some(n) => n,
                None => {
                    field_name(key, self.opts.field_names).map_err(|e| convert_error(&path, e))?
                }
            };
            if out.contains_key(&name) {
                return Err(clash(&path, &name));
            }
            out.insert(name, bson);
        }
        if let Some(node) = node {
            for (key, child) in &node.children {
                let Some(rule) = &child.rule else { continue };
                let value = fields.get(key);
                let absent = value.is_none();
                let null = matches!(
                    value.map(|v| &v.value_type),
                    Some(None | Some(ValueType::NullValue(_)))
                );
                if rule.required && (absent || null) {
                    return Err(RuleError {
                        rule: "required",
                        field: join(prefix, key),
                        reason: format!(
                            "required field `{}` is {}",
                            rule.path,
                            if absent { "missing" } else { "null" }
                        ),
                    });
                }
                if let (true, Some(d)) = (absent, &rule.default) {
                    let name = match &rule.rename {
                        Some(n) => n.clone(),
                        None => field_name(key, self.opts.field_names)
                            .map_err(|e| convert_error(&join(prefix, key), e))?,
                    };
                    if out.contains_key(&name) {
                        return Err(clash(&join(prefix, key), &name));
                    }
                    out.insert(name, d.clone());
                }
            }
        }
        Ok(out)
    }

    fn plain(&self, value: &Value, path: &str) -> Result<Bson, RuleError> {
        let refs = SetReferences {
            set: self.set,
            repr: self.repr,
        };
        to_bson_with(value, &self.opts, &refs).map_err(|e| convert_error(path, e))
    }

    /// A value whose nested fields have rules: maps get them, arrays pass them to their
    /// elements, anything else converts as usual.
    fn convert_nested(
        &self,
        value: &Value,
        node: &RuleNode,
        path: &str,
    ) -> Result<Bson, RuleError> {
        match &value.value_type {
            Some(ValueType::MapValue(m)) if !is_vector(m) => Ok(Bson::Document(self.convert_map(
                &m.fields,
                Some(node),
                path,
                false,
            )?)),
            Some(ValueType::ArrayValue(a)) => a
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| self.convert_nested(v, node, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Bson::Array),
            _ => self.plain(value, path),
        }
    }

    /// A declared reference: a string id (or path) or a reference value, or an array of
    /// them; null stays null.
    fn convert_ref(
        &self,
        value: &Value,
        r: &RefRule,
        repr: RefRepr,
        path: &str,
    ) -> Result<Bson, RuleError> {
        let err = |reason: String| RuleError {
            rule: "reference",
            field: path.to_string(),
            reason,
        };
        let target: String = match &value.value_type {
            None | Some(ValueType::NullValue(_)) => return Ok(Bson::Null),
            Some(ValueType::ArrayValue(a)) => {
                return a
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.convert_ref(v, r, repr, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Bson::Array)
            }
            Some(ValueType::StringValue(s)) => match r.from {
                RefFrom::Id => self.path_from_id(s, r).map_err(err)?,
                RefFrom::Path => crate::path::relative_path(s).to_string(),
            },
            Some(ValueType::ReferenceValue(name)) => crate::path::relative_path(name).to_string(),
            Some(_) => {
                return Err(err(format!(
                    "`ref = \"{}\"` expects a string id or a reference, found {}",
                    r.text,
                    type_name(value)
                )))
            }
        };
        let doc = DocPath::parse(&target).map_err(|e| err(e.to_string()))?;
        if doc.pattern() != r.pattern {
            return Err(err(format!(
                "`{target}` is in `{}`, but the mapping declares `ref = \"{}\"`",
                doc.pattern(),
                r.text
            )));
        }
        self.set.render_reference(&doc, repr).map_err(err)
    }

    /// Builds the referenced path from an id: parent ids come from this document's own
    /// placeholders of the same name, else from its top-level source fields.
    fn path_from_id(&self, id: &str, r: &RefRule) -> Result<String, String> {
        if id.is_empty() || id.contains('/') {
            return Err(format!(
                "`{id}` is not a document id for `ref = \"{}\"` (ids are non-empty and hold no `/`; set `ref_from = \"path\"` for paths)",
                r.text
            ));
        }
        let collections: Vec<String> = r
            .pattern
            .to_string()
            .split("/{}/")
            .map(str::to_string)
            .collect();
        let mut out = String::new();
        for (i, coll) in collections.iter().enumerate() {
            out.push_str(coll);
            out.push('/');
            if i + 1 == collections.len() {
                out.push_str(id);
            } else {
                let name = r.placeholders[i].as_deref().expect("validated: named");
                out.push_str(&self.placeholder(name, &r.text)?);
                out.push('/');
            }
        }
        Ok(out)
    }

    fn placeholder(&self, name: &str, text: &str) -> Result<String, String> {
        if let Some(level) = self.placeholders.iter().position(|p| p == name) {
            // The own path's parent id at that level: segments are coll/id/coll/id/…
            let parts: Vec<&str> = self.path.relative().split('/').collect();
            return Ok(parts[2 * level + 1].to_string());
        }
        match self.source.get(name).and_then(|v| v.value_type.as_ref()) {
            Some(ValueType::StringValue(s)) if !s.is_empty() && !s.contains('/') => Ok(s.clone()),
            Some(ValueType::ReferenceValue(n)) => DocPath::parse(n)
                .map(|p| p.id().to_string())
                .map_err(|e| e.to_string()),
            Some(_) => Err(format!(
                "placeholder {{{name}}} of `ref = \"{text}\"` needs the field `{name}` to hold a document id"
            )),
            None => Err(format!(
                "placeholder {{{name}}} of `ref = \"{text}\"` needs the field `{name}`, which is missing"
            )),
        }
    }
}

fn clash(path: &str, name: &str) -> RuleError {
    RuleError {
        rule: "rename",
        field: path.to_string(),
        reason: format!(
            "`{path}` would be written as `{name}`, which another field of the document already uses"
        ),
    }
}

fn is_vector(m: &gcloud_sdk::google::firestore::v1::MapValue) -> bool {
    matches!(
        m.fields.get("__type__").and_then(|v| v.value_type.as_ref()),
        Some(ValueType::StringValue(s)) if s == "__vector__"
    )
}
