//! One mapping file on its own: landing (root, own collection or embedded), target,
//! field rules, identity, metadata fields and indexes, and the fields the mapping writes
//! itself against its rules. Compiled even when it has errors, so that the checks across
//! files still run.

use std::collections::BTreeSet;

use crate::mapping::indexes;
use crate::mapping::load::{LoadedMapping, MappingError};
use crate::mapping::rules::{self, check_output_name, RuleContext};
use crate::mapping::spec::IdStrategy;
use crate::mapping::{CompiledMapping, Dataset, Identity, Landing, Origin};
use crate::path::{CollectionPattern, PARENT_FIELD};

/// Largest `max` of an embedded array (a MongoDB document holds at most 16 MiB anyway).
const MAX_EMBED: i64 = 100_000;

/// Checks one mapping on its own and compiles it.
pub(super) fn compile_one(
    m: &LoadedMapping,
    pattern: &CollectionPattern,
    dataset: &Dataset,
    known: &BTreeSet<CollectionPattern>,
    any_known: bool,
    errors: &mut Vec<MappingError>,
) -> CompiledMapping {
    let f = &m.file;
    let s = &m.spec;
    let (_, placeholder_names) = rules::parse_pattern(s.collection.get_ref()).expect("checked");
    let placeholders: Vec<String> = placeholder_names
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();

    // Landing.
    let landing = match (&s.parent, &s.embed) {
        (Some(p), Some(_)) => {
            errors.push(f.error(
                p.span(),
                "a subcollection lands either in its own collection ([parent]) or embedded ([embed]), not both",
                "remove [parent] or [embed]",
            ));
            Landing::Root
        }
        (Some(p), None) if pattern.depth() == 1 => {
            errors.push(f.error(
                p.span(),
                format!("`{pattern}` is a root collection: it has no parent"),
                "remove [parent]",
            ));
            Landing::Root
        }
        (None, Some(e)) if pattern.depth() == 1 => {
            errors.push(f.error(
                e.span(),
                format!("`{pattern}` is a root collection: it has no parent to embed into"),
                "remove [embed]",
            ));
            Landing::Root
        }
        (_, Some(e)) => {
            let e = e.get_ref();
            if let Err(msg) = check_output_name(e.field.get_ref()) {
                errors.push(f.error(
                    e.field.span(),
                    format!("[embed] field: {msg}"),
                    "give a plain field name",
                ));
            } else if e.field.get_ref() == "_id" {
                errors.push(f.error(
                    e.field.span(),
                    "[embed] field cannot be `_id`",
                    "give another field name",
                ));
            }
            if !(1..=MAX_EMBED).contains(e.max.get_ref()) {
                errors.push(f.error(
                    e.max.span(),
                    format!(
                        "[embed] max = {} is outside 1..={MAX_EMBED}",
                        e.max.get_ref()
                    ),
                    "bound the array: a MongoDB document holds at most 16 MiB",
                ));
            }
            if let Some(t) = &s.target {
                errors.push(f.error(
                    t.span(),
                    "an embedded subcollection lands in its parent's collection, so `target` does not apply",
                    "remove `target` (or `into` in [embed] checks the parent's target)",
                ));
            }
            if let Some(ix) = s.indexes.first() {
                errors.push(f.error(
                    ix.span(),
                    "an embedded subcollection has no collection of its own to index",
                    format!(
                        "declare the index in the parent's mapping with keys prefixed by the array field (\"{}.<field>\")",
                        e.field.get_ref()
                    ),
                ));
            }
            Landing::Embed {
                field: e.field.get_ref().clone(),
                max: (*e.max.get_ref()).clamp(1, MAX_EMBED) as u32,
            }
        }
        (p, None) if pattern.depth() > 1 => {
            let p = p.as_ref().map(|p| p.get_ref());
            let field = p.and_then(|p| p.field.as_ref());
            if let Some(fl) = field {
                if let Err(msg) = check_output_name(fl.get_ref()) {
                    errors.push(f.error(
                        fl.span(),
                        format!("[parent] field: {msg}"),
                        "give a plain field name",
                    ));
                }
            }
            Landing::Own {
                parent_field: field
                    .map(|x| x.get_ref().clone())
                    .unwrap_or_else(|| PARENT_FIELD.to_string()),
                parent_as: p
                    .and_then(|p| p.repr.as_ref())
                    .map(|r| *r.get_ref())
                    .unwrap_or(dataset.references),
            }
        }
        _ => Landing::Root,
    };

    // Target.
    let target = s
        .target
        .as_ref()
        .map(|t| t.get_ref().clone())
        .unwrap_or_else(|| pattern.default_target());
    if let Some(t) = &s.target {
        if let Err(msg) = check_collection_name(t.get_ref()) {
            errors.push(f.error(
                t.span(),
                format!("target `{}`: {msg}", t.get_ref()),
                "give a plain collection name",
            ));
        }
    }

    // Rules.
    let rules = rules::compile_fields(
        &RuleContext {
            file: f,
            known,
            any_known,
        },
        &s.fields,
        errors,
    );

    // Identity.
    let id = s.id.as_ref().map(|i| i.get_ref());
    let strategy = id
        .and_then(|i| i.strategy.as_ref())
        .map(|x| *x.get_ref())
        .unwrap_or(IdStrategy::Keep);
    let id_span =
        s.id.as_ref()
            .map(|i| i.span())
            .unwrap_or_else(|| s.collection.span());
    let fid = id.and_then(|i| i.firestore_id_field.as_ref());
    if let Some(fl) = fid {
        if strategy == IdStrategy::Keep {
            errors.push(f.error(
                fl.span(),
                "with `strategy = \"keep\"` the Firestore id is `_id` itself, so `firestore_id_field` does not apply",
                "remove it, or use `strategy = \"objectid\"`",
            ));
        } else if let Err(msg) = check_output_name(fl.get_ref()) {
            errors.push(f.error(
                fl.span(),
                format!("`firestore_id_field`: {msg}"),
                "give a plain field name",
            ));
        }
    }
    let firestore_id_field = fid
        .map(|x| x.get_ref().clone())
        .unwrap_or_else(|| dataset.firestore_id_field.clone());
    let id_field = id.and_then(|i| i.field.as_ref());
    let identity = match (strategy, id_field) {
        (IdStrategy::Keep, None) => Identity::Keep,
        (IdStrategy::ObjectId, None) => Identity::ObjectId { firestore_id_field },
        (IdStrategy::Field, Some(fl)) => {
            let name = fl.get_ref();
            let rule = rules.children.get(name).and_then(|n| n.rule.as_ref());
            if name.is_empty() || name.contains('.') {
                errors.push(f.error(
                    fl.span(),
                    format!("[id] field `{name}` must be a top-level source field"),
                    "name a top-level field; rename nested values into place first is not supported",
                ));
            } else if rule.is_some_and(|r| r.drop) {
                errors.push(f.error(
                    fl.span(),
                    format!("[id] field `{name}` is dropped in [fields]"),
                    "remove `drop` from its rule",
                ));
            } else if let Some(c) = rules.children.get(name).filter(|n| !n.children.is_empty()) {
                let _ = c;
                errors.push(f.error(
                    fl.span(),
                    format!("[id] field `{name}` has nested rules: an `_id` must be a scalar"),
                    "remove the nested rules",
                ));
            }
            Identity::Field {
                field: name.clone(),
                output: rule
                    .and_then(|r| r.rename.clone())
                    .unwrap_or_else(|| name.clone()),
                firestore_id_field,
            }
        }
        (IdStrategy::Field, None) => {
            errors.push(f.error(
                id_span.clone(),
                "`strategy = \"field\"` needs `field`, the source field whose value becomes `_id`",
                "add `field = \"<name>\"` to [id]",
            ));
            Identity::Keep
        }
        (_, Some(fl)) => {
            errors.push(f.error(
                fl.span(),
                "`field` in [id] only applies to `strategy = \"field\"`",
                "remove `field`, or set `strategy = \"field\"`",
            ));
            Identity::Keep
        }
    };

    // The `_id` source field is never an "unmapped" field that `unmapped_fields = "drop"`
    // would remove before the identity takes it.
    let mut rules = rules;
    if let Identity::Field { field, .. } = &identity {
        let node = rules.children.entry(field.clone()).or_default();
        if node.rule.is_none() {
            node.rule = Some(rules::FieldRule {
                path: field.clone(),
                rename: None,
                drop: false,
                default: None,
                required: false,
                cast: None,
                reference: None,
                repr: None,
                span: id_span.clone(),
            });
        }
    }

    // Metadata.
    let meta = s.metadata.as_ref().map(|m| m.get_ref());
    for fl in [
        meta.and_then(|m| m.create_time.as_ref()),
        meta.and_then(|m| m.update_time.as_ref()),
    ]
    .into_iter()
    .flatten()
    {
        if let Err(msg) = check_output_name(fl.get_ref()) {
            errors.push(f.error(
                fl.span(),
                format!("[metadata]: {msg}"),
                "give a plain field name",
            ));
        }
    }

    let mut compiled = CompiledMapping {
        collection: s.collection.get_ref().clone(),
        pattern: pattern.clone(),
        placeholders,
        target: target.clone(),
        identity,
        landing,
        field_names: s
            .field_names
            .as_ref()
            .map(|x| *x.get_ref())
            .unwrap_or(dataset.field_names),
        unmapped_fields: s
            .unmapped_fields
            .as_ref()
            .map(|x| *x.get_ref())
            .unwrap_or_default(),
        create_time: meta
            .and_then(|m| m.create_time.as_ref())
            .map(|x| x.get_ref().clone()),
        update_time: meta
            .and_then(|m| m.update_time.as_ref())
            .map(|x| x.get_ref().clone()),
        rules,
        indexes: Vec::new(),
        embedded_fields: Vec::new(),
        origin: Some(Origin {
            file: f.clone(),
            collection: s.collection.span(),
            target: s.target.as_ref().map(|t| t.span()),
            id: s.id.as_ref().map(|i| i.span()),
            embed: s.embed.as_ref().map(|e| e.span()),
            embed_into: s
                .embed
                .as_ref()
                .and_then(|e| e.get_ref().into.as_ref())
                .map(|i| (i.get_ref().clone(), i.span())),
            parent: s.parent.as_ref().map(|p| p.span()),
        }),
    };
    if !matches!(compiled.landing, Landing::Embed { .. }) {
        compiled.indexes = indexes::compile(f, &target, &s.indexes, errors);
    }

    // The fields the mapping writes itself must be distinct, and no top-level rule may
    // write over them.
    let reserved = compiled.reserved_fields();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (name, _) in &reserved {
        if !seen.insert(name) {
            errors.push(f.error(
                s.collection.span(),
                format!("the mapping writes the field `{name}` twice (identity, parent key and metadata fields must differ)"),
                "rename one of [id] firestore_id_field, [parent] field, [metadata] fields",
            ));
        }
    }
    check_rules_against_reserved(&compiled, &reserved, errors);
    // Kept even when it has errors (the broken parts fall back to defaults), so that the
    // checks across files still run and report everything at once.
    compiled
}

fn check_rules_against_reserved(
    m: &CompiledMapping,
    reserved: &[(&str, &'static str)],
    errors: &mut Vec<MappingError>,
) {
    let Some(origin) = &m.origin else { return };
    for (key, node) in &m.rules.children {
        let Some(rule) = &node.rule else { continue };
        if rule.drop {
            continue;
        }
        let name = rule.rename.as_deref().unwrap_or(key);
        let is_id_source = matches!(&m.identity, Identity::Field { field, .. } if field == key);
        if let Some((_, what)) = reserved.iter().find(|(r, _)| *r == name) {
            if is_id_source && name != "_id" {
                continue;
            }
            errors.push(origin.file.error(
                rule.span.clone(),
                format!(
                    "the rule for `{}` writes `{name}`, which the mapping's {what} already writes",
                    rule.path
                ),
                format!("rename `{}` to another name", rule.path),
            ));
        }
    }
}

fn check_collection_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a collection name cannot be empty".into())
    } else if name.contains('$') || name.contains('\0') {
        Err("a collection name cannot hold `$` or NUL".into())
    } else if name.starts_with("system.") {
        Err("`system.` collections are MongoDB's".into())
    } else if name.starts_with(crate::source::OWN_COLLECTION_PREFIX) {
        Err("`_fireshift…` collections hold fireshift's own bookkeeping".into())
    } else {
        Ok(())
    }
}
