//! One raw Firestore document → the write that lands it, under a mapping set. Pure.
//!
//! Order of the target document: `_id`, the parent key (subcollections in their own
//! collection), the Firestore id field (`objectid`/`field` identities), the metadata
//! fields, then the converted fields in source-name order (defaults last).

use gcloud_sdk::google::firestore::v1::Document;
use mongodb::bson::{self, Bson, RawDocumentBuf};

use super::rules::{RuleError, Walk};
use super::{CompiledMapping, Identity, Landing, MappingSet};
use crate::mapping::item::{has_dollar_field, WriteItem, WriteKind};
use crate::mapping::outcome::{Rejection, Transformed};
use crate::mapping::value::{timestamp_to_datetime, ConvertOptions};
use crate::path::DocPath;

/// Applies the set to one document.
pub fn apply(set: &MappingSet, doc: &Document) -> Result<Transformed, Rejection> {
    let reject = |pattern, rule, field: Option<String>, reason: String| Rejection {
        source_path: doc.name.clone(),
        pattern,
        rule,
        field,
        reason,
    };
    let path = DocPath::parse(&doc.name).map_err(|e| reject(None, "path", None, e.to_string()))?;
    let pattern = path.pattern();
    let implicit;
    let m: &CompiledMapping = match set.get(&pattern) {
        Some(m) => m,
        None => {
            implicit = set.default_mapping(&pattern);
            &implicit
        }
    };
    let rejected = |rule: &'static str, field: Option<&str>, reason: String| {
        reject(
            Some(pattern.clone()),
            rule,
            field.map(str::to_string),
            reason,
        )
    };
    let walk = Walk {
        set,
        path: &path,
        placeholders: &m.placeholders,
        source: &doc.fields,
        opts: ConvertOptions {
            field_names: m.field_names,
        },
        unmapped: m.unmapped_fields,
        repr: set.dataset.references,
    };
    let mut body = walk.convert_document(&m.rules).map_err(
        |RuleError {
             rule,
             field,
             reason,
         }| rejected(rule, Some(&field), reason),
    )?;

    let id = match &m.identity {
        Identity::Keep | Identity::ObjectId { .. } => set
            .target_id(&path)
            .map_err(|e| rejected("identity", None, e))?,
        Identity::Field { field, output, .. } => match body.remove(output) {
            None | Some(Bson::Null) => {
                return Err(rejected(
                    "identity",
                    Some(field),
                    format!("the `_id` comes from the field `{field}`, which is missing or null"),
                ))
            }
            Some(Bson::Array(_)) => {
                return Err(rejected(
                    "identity",
                    Some(field),
                    format!("the `_id` comes from the field `{field}`, which is an array (an `_id` cannot be)"),
                ))
            }
            Some(v) => v,
        },
    };
    // A converted field named like one the mapping writes would be lost (or would lose
    // the mapping's value): refuse the document and say which rename fixes it.
    for (name, rule) in m.reserved_fields() {
        if body.contains_key(name) {
            return Err(rejected(
                rule,
                Some(name),
                format!(
                    "source field `{name}` clashes with the target's `{name}` ({}); rename it in the mapping's [fields]",
                    match rule {
                        "metadata" => "a [metadata] field",
                        "embed" => "the array an embedded subcollection fills",
                        _ => "written by the mapping's identity or parent key",
                    }
                ),
            ));
        }
    }

    let mut out = bson::Document::new();
    out.insert("_id", id.clone());
    if let (
        Landing::Own {
            parent_field,
            parent_as,
        },
        Some(parent),
    ) = (&m.landing, path.parent())
    {
        let key = set
            .render_reference(&parent, *parent_as)
            .map_err(|e| rejected("identity", Some(parent_field), e))?;
        out.insert(parent_field.clone(), key);
    }
    match &m.identity {
        Identity::ObjectId { firestore_id_field }
        | Identity::Field {
            firestore_id_field, ..
        } => {
            out.insert(firestore_id_field.clone(), path.id());
        }
        Identity::Keep => {}
    }
    for (field, ts) in [
        (&m.create_time, &doc.create_time),
        (&m.update_time, &doc.update_time),
    ] {
        if let (Some(field), Some(ts)) = (field, ts) {
            let t = timestamp_to_datetime(ts.seconds, ts.nanos)
                .map_err(|e| rejected("metadata", Some(field), e.reason))?;
            out.insert(field.clone(), t);
        }
    }
    out.extend(body);

    let (collection, item_id, kind) = match &m.landing {
        Landing::Embed { field, max } => {
            let parent = path
                .parent()
                .expect("validated: embedded collections have a parent");
            let parent_id = set
                .target_id(&parent)
                .map_err(|e| rejected("embed", None, e))?;
            (
                set.target_of(&parent.pattern()),
                parent_id,
                WriteKind::Embed {
                    field: field.clone(),
                    max: *max,
                },
            )
        }
        _ if !m.embedded_fields.is_empty() => (
            m.target.clone(),
            id,
            WriteKind::ReplaceKeeping {
                fields: m.embedded_fields.clone(),
            },
        ),
        _ => (m.target.clone(), id, WriteKind::Replace),
    };
    let raw =
        RawDocumentBuf::from_document(&out).map_err(|e| rejected("encode", None, e.to_string()))?;
    Ok(Transformed {
        pattern,
        collection,
        item: WriteItem {
            source_path: doc.name.clone(),
            id: item_id,
            literal: has_dollar_field(&out),
            doc: raw,
            kind,
        },
    })
}

#[cfg(test)]
mod tests;
