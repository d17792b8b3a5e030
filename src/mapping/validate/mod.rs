//! Validation of a whole mapping set, before any I/O: each file on its own (identity,
//! landing, field rules, casts, indexes), then across files (references to unmapped
//! collections, embedding into a collection that cannot hold it, two mappings writing
//! one target with ids that may clash, index clashes). Every error names
//! `file:line:column`, what is wrong and how to fix it; all of them are collected.
//!
//! * `dataset.rs` `dataset.toml`: the dataset-wide settings.
//! * `one.rs` one mapping file on its own: landing, target, field rules, identity,
//!   metadata, indexes, and the fields the mapping writes itself.
//! * `across.rs` the checks that need several mappings.
//! * This file: the whole set, from what was loaded to the compiled [`MappingSet`] and
//!   its fingerprint.

mod across;
mod dataset;
mod one;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::load::{Loaded, LoadedMapping, MappingErrors};
use super::rules;
use super::{parent_pattern, CompiledMapping, Dataset, Landing, MappingSet};
use crate::path::CollectionPattern;
use across::check_across;
use dataset::compile_dataset;
use one::compile_one;

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
        let c = compile_one(
            m,
            pattern,
            &dataset,
            &known,
            loaded.broken_unknown,
            &mut errors,
        );
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
