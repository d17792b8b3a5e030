//! Validation of a whole mapping set, before any I/O: each file on its own (identity,
//! landing, field rules, casts, indexes), then across files (references to unmapped
//! collections, embedding into a collection that cannot hold it, two mappings writing
//! one target with ids that may clash, index clashes). Every error names
//! `file:line:column`, what is wrong and how to fix it; all of them are collected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::indexes;
use super::load::{Loaded, LoadedMapping, MappingError, MappingErrors};
use super::rules::{self, check_output_name, RuleContext, RuleNode};
use super::spec::{IdStrategy, RefRepr};
use super::{
    parent_pattern, CompiledMapping, Dataset, Identity, Landing, MappingSet, Origin,
    DEFAULT_FIRESTORE_ID_FIELD, DEFAULT_ID_KEY,
};
use crate::path::{CollectionPattern, PARENT_FIELD};

/// Largest `max` of an embedded array (a MongoDB document holds at most 16 MiB anyway).
const MAX_EMBED: i64 = 100_000;

/// Validates what [`super::load::load_dir`] read and compiles it.
pub fn compile(mut loaded: Loaded) -> Result<MappingSet, MappingErrors> {
    let mut errors = std::mem::take(&mut loaded.errors);
    let dataset = compile_dataset(&loaded, &mut errors);

    // Which patterns have a mapping (files that failed to parse included, so that their
    // error is not repeated as "unmapped" wherever they are referenced).
    let mut known: BTreeSet<CollectionPattern> = loaded
        .broken_collections
        .iter()
        .filter_map(|c| CollectionPattern::parse(c))
        .collect();
    let mut first_file: BTreeMap<CollectionPattern, &LoadedMapping> = BTreeMap::new();
    for m in &loaded.mappings {
        let c = &m.spec.collection;
        match rules::parse_pattern(c.get_ref()) {
            None => errors.push(m.file.error(
                c.span(),
                format!("`collection = \"{}\"` is not a collection pattern", c.get_ref()),
                "write a collection id (`users`) or a subcollection pattern with a placeholder per parent id (`users/{userId}/posts`)",
            )),
            Some((p, _)) => {
                if let Some(first) = first_file.get(&p) {
                    let (l, col) = first.file.position(first.spec.collection.span().start);
                    errors.push(m.file.error(
                        c.span(),
                        format!("collection `{p}` is already mapped in {}:{l}:{col}", first.file.path.display()),
                        "keep one mapping file per collection pattern",
                    ));
                } else {
                    first_file.insert(p.clone(), m);
                }
                known.insert(p);
            }
        }
    }

    let mut compiled: BTreeMap<CollectionPattern, CompiledMapping> = BTreeMap::new();
    for (pattern, m) in &first_file {
        let c = compile_one(m, pattern, &dataset, &known, &mut errors);
        compiled.insert(pattern.clone(), c);
    }
    check_across(&compiled, &mut errors);
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        errors.dedup();
        return Err(MappingErrors(errors));
    }
    Ok(assemble(loaded.dir, dataset, compiled))
}

fn compile_dataset(loaded: &Loaded, errors: &mut Vec<MappingError>) -> Dataset {
    let mut d = Dataset {
        name: loaded
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Dataset::default()
    };
    let Some((file, spec)) = &loaded.dataset else {
        return d;
    };
    if let Some(k) = &spec.id_key {
        if k.get_ref().is_empty() {
            errors.push(file.error(
                k.span(),
                "`id_key` is empty",
                format!("give any non-empty string, or remove the key to use the default \"{DEFAULT_ID_KEY}\""),
            ));
        }
        d.id_key = k.get_ref().clone();
    }
    if let Some(f) = &spec.field_names {
        d.field_names = *f.get_ref();
    }
    if let Some(r) = &spec.references {
        d.references = *r.get_ref();
    }
    if let Some(f) = &spec.firestore_id_field {
        if let Err(e) = check_output_name(f.get_ref()) {
            errors.push(file.error(
                f.span(),
                format!("`firestore_id_field`: {e}"),
                format!("give a plain field name such as \"{DEFAULT_FIRESTORE_ID_FIELD}\""),
            ));
        }
        if f.get_ref() == "_id" {
            errors.push(file.error(
                f.span(),
                "`firestore_id_field` cannot be `_id`",
                "pick another name",
            ));
        }
        d.firestore_id_field = f.get_ref().clone();
    }
    d
}

/// Checks one mapping on its own and compiles it.
fn compile_one(
    m: &LoadedMapping,
    pattern: &CollectionPattern,
    dataset: &Dataset,
    known: &BTreeSet<CollectionPattern>,
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
    let rules = rules::compile_fields(&RuleContext { file: f, known }, &s.fields, errors);

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

/// Checks that need several mappings.
fn check_across(
    all: &BTreeMap<CollectionPattern, CompiledMapping>,
    errors: &mut Vec<MappingError>,
) {
    let error_at =
        |m: &CompiledMapping, span: Option<std::ops::Range<usize>>, msg: String, help: String| {
            let o = m.origin.as_ref().expect("mapped");
            o.file
                .error(span.unwrap_or_else(|| o.collection.clone()), msg, help)
        };
    let identity_of = |p: &CollectionPattern| {
        all.get(p)
            .map(|m| m.identity.clone())
            .unwrap_or(Identity::Keep)
    };

    // References to collections whose `_id` comes from a field.
    for m in all.values() {
        visit_rules(&m.rules, &mut |rule| {
            let Some(r) = &rule.reference else { return };
            let repr = rule.repr.unwrap_or(RefRepr::Id);
            if let (Identity::Field { field, .. }, false) =
                (identity_of(&r.pattern), repr == RefRepr::Path)
            {
                errors.push(m.origin.as_ref().expect("mapped").file.error(
                    r.span.clone(),
                    format!("`ref = \"{}\"` of `{}`: `{}` takes `_id` from its field `{field}`, which a reference cannot derive from a path", r.text, rule.path, r.pattern),
                    format!("set `as = \"path\"` on `{}`, or give `{}` the keep or objectid identity", rule.path, r.pattern),
                ));
            }
        });
    }

    // Parents: embedding and parent keys.
    let mut embeds: BTreeMap<CollectionPattern, Vec<(&str, &CompiledMapping)>> = BTreeMap::new();
    for m in all.values() {
        let Some(parent) = parent_pattern(&m.pattern) else {
            continue;
        };
        let parent_map = all.get(&parent);
        let o = m.origin.as_ref().expect("mapped");
        match &m.landing {
            Landing::Own { parent_as, .. } => {
                if let (Some(Identity::Field { field, .. }), false) =
                    (parent_map.map(|p| &p.identity), *parent_as == RefRepr::Path)
                {
                    errors.push(error_at(
                        m,
                        o.parent.clone(),
                        format!("the parent `{parent}` takes `_id` from its field `{field}`, so the parent key cannot be derived from the path"),
                        "set `as = \"path\"` in [parent], or give the parent the keep or objectid identity".into(),
                    ));
                }
            }
            Landing::Embed { field, .. } => {
                let spec_into = o.embed.clone();
                if let Some(p) = parent_map {
                    match &p.landing {
                        Landing::Embed { .. } => errors.push(error_at(
                            m,
                            spec_into.clone(),
                            format!("`{parent}` is itself embedded: arrays inside embedded elements are not supported"),
                            format!("land `{}` in its own collection (remove [embed])", m.pattern),
                        )),
                        _ => {
                            if let Identity::Field { field: f, .. } = &p.identity {
                                errors.push(error_at(
                                    m,
                                    spec_into.clone(),
                                    format!("the parent `{parent}` takes `_id` from its field `{f}`, so children cannot find their parent document from their path"),
                                    "give the parent the keep or objectid identity, or land this subcollection in its own collection".into(),
                                ));
                            }
                        }
                    }
                }
                embeds.entry(parent.clone()).or_default().push((field, m));
            }
            Landing::Root => {}
        }
    }
    for (parent, children) in &embeds {
        let mut seen: BTreeMap<&str, &CompiledMapping> = BTreeMap::new();
        for (field, m) in children {
            if let Some(first) = seen.insert(field, m) {
                errors.push(error_at(
                    m,
                    m.origin.as_ref().and_then(|o| o.embed.clone()),
                    format!(
                        "`{}` and `{}` both embed into the field `{field}` of `{parent}`",
                        first.pattern, m.pattern
                    ),
                    "give each embedded subcollection its own array field".into(),
                ));
            }
        }
        if let Some(p) = all.get(parent) {
            let reserved = p.reserved_fields();
            for (field, m) in children {
                if reserved.iter().any(|(r, _)| r == field) {
                    errors.push(error_at(
                        m,
                        m.origin.as_ref().and_then(|o| o.embed.clone()),
                        format!("the parent mapping `{parent}` already writes the field `{field}`"),
                        "embed into another field".into(),
                    ));
                }
                for (key, node) in &p.rules.children {
                    let Some(rule) = &node.rule else { continue };
                    if !rule.drop && rule.rename.as_deref().unwrap_or(key) == *field {
                        errors.push(error_at(
                            p,
                            Some(rule.span.clone()),
                            format!("the rule for `{}` writes `{field}`, the array that `{}` is embedded into", rule.path, m.pattern),
                            format!("rename `{}` to another name, or drop it", rule.path),
                        ));
                    }
                }
            }
        }
        // `into` checks the parent's target.
        let parent_target = all
            .get(parent)
            .map(|p| p.target.clone())
            .unwrap_or_else(|| parent.default_target());
        for (_, m) in children {
            let o = m.origin.as_ref().expect("mapped");
            if let Some((into, span)) = &o.embed_into {
                if *into != parent_target {
                    errors.push(o.file.error(
                        span.clone(),
                        format!("[embed] into = \"{into}\", but the parent `{parent}` lands in `{parent_target}`"),
                        format!("set into = \"{parent_target}\" or remove `into`"),
                    ));
                }
            }
        }
    }

    // Two mappings writing one target: ids must not clash.
    let mut by_target: BTreeMap<&str, Vec<&CompiledMapping>> = BTreeMap::new();
    for m in all.values() {
        if !matches!(m.landing, Landing::Embed { .. }) {
            by_target.entry(&m.target).or_default().push(m);
        }
    }
    for (target, ms) in &by_target {
        for (i, a) in ms.iter().enumerate() {
            for b in &ms[i + 1..] {
                // Report at the mapping that chose the target explicitly, if only one did.
                let explicit =
                    |m: &CompiledMapping| m.origin.as_ref().is_some_and(|o| o.target.is_some());
                let (a, b) = if explicit(a) && !explicit(b) {
                    (*b, *a)
                } else {
                    (*a, *b)
                };
                let bare =
                    |m: &CompiledMapping| m.identity == Identity::Keep && m.pattern.depth() == 1;
                let field = |m: &CompiledMapping| matches!(m.identity, Identity::Field { .. });
                let why = if bare(a) && bare(b) {
                    Some("both keep bare Firestore ids, and the same id can exist in both collections")
                } else if field(a) || field(b) {
                    Some("one takes `_id` from a field value, which can equal an id of the other")
                } else {
                    None
                };
                if let Some(why) = why {
                    let oa = a.origin.as_ref().expect("mapped");
                    let (l, c) = oa
                        .file
                        .position(oa.target.clone().unwrap_or(oa.collection.clone()).start);
                    errors.push(error_at(
                        b,
                        b.origin.as_ref().and_then(|o| o.target.clone()),
                        format!(
                            "`{}` and `{}` (at {}:{l}:{c}) both write `{target}` with ids that may clash: {why}",
                            b.pattern,
                            a.pattern,
                            oa.file.path.display()
                        ),
                        "give one of them its own `target`, or `[id] strategy = \"objectid\"` (ids derived from the full path never clash)".into(),
                    ));
                }
            }
        }
    }

    indexes::check_all(all.values().flat_map(|m| &m.indexes), errors);
}

fn visit_rules(node: &RuleNode, f: &mut dyn FnMut(&rules::FieldRule)) {
    if let Some(r) = &node.rule {
        f(r);
    }
    for c in node.children.values() {
        visit_rules(c, f);
    }
}

/// Builds the set from compiled mappings: embedded fields per parent, fingerprint.
pub fn assemble(
    dir: PathBuf,
    dataset: Dataset,
    mut mappings: BTreeMap<CollectionPattern, CompiledMapping>,
) -> MappingSet {
    let mut embeds: BTreeMap<CollectionPattern, Vec<String>> = BTreeMap::new();
    for m in mappings.values() {
        if let (Landing::Embed { field, .. }, Some(parent)) =
            (&m.landing, parent_pattern(&m.pattern))
        {
            embeds.entry(parent).or_default().push(field.clone());
        }
    }
    for fields in embeds.values_mut() {
        fields.sort();
    }
    for (p, fields) in &embeds {
        if let Some(m) = mappings.get_mut(p) {
            m.embedded_fields = fields.clone();
        }
    }
    #[derive(serde::Serialize)]
    struct Canonical<'a> {
        version: u32,
        dataset: &'a Dataset,
        mappings: Vec<&'a CompiledMapping>,
    }
    let canonical = serde_json::to_vec(&Canonical {
        version: 1,
        dataset: &dataset,
        mappings: mappings.values().collect(),
    })
    .expect("mappings serialize");
    let fingerprint = Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    MappingSet {
        dir,
        dataset,
        mappings,
        embeds,
        fingerprint,
    }
}

#[cfg(test)]
mod tests;
