//! The target collection and the mapping file name plan proposes for each pattern,
//! shared by the report and the skeleton files.

use std::collections::{BTreeMap, BTreeSet};

use crate::path::CollectionPattern;

/// Target collection and file name of each pattern: the default target
/// (`content.comments`) made safe for MongoDB and unique, and a file name made of it,
/// unique even on case-insensitive file systems.
pub fn names<'a>(
    patterns: impl Iterator<Item = &'a CollectionPattern>,
) -> BTreeMap<CollectionPattern, (String, String)> {
    let mut targets = BTreeSet::new();
    let mut files = BTreeSet::new();
    let mut out = BTreeMap::new();
    for p in patterns {
        let base = safe_target(&p.default_target());
        let target = unique(&base, |t| targets.contains(t), "_");
        targets.insert(target.clone());
        let stem = safe_file_stem(&target);
        let stem = unique(&stem, |f| files.contains(&f.to_lowercase()), "-");
        files.insert(stem.to_lowercase());
        out.insert(p.clone(), (target, format!("{stem}.toml")));
    }
    out
}

pub(super) fn unique(base: &str, taken: impl Fn(&str) -> bool, sep: &str) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|i| format!("{base}{sep}{i}"))
        .find(|c| !taken(c))
        .expect("some suffix is free")
}

/// A MongoDB collection name the mapping validator accepts: no `$` or NUL, not
/// `system.*`, not fireshift's own `_fireshift*`.
fn safe_target(t: &str) -> String {
    let mut s: String = t
        .chars()
        .map(|c| if c == '$' || c == '\0' { '_' } else { c })
        .collect();
    if s.starts_with("system.") || s.starts_with(crate::source::OWN_COLLECTION_PREFIX) {
        s = format!("fs_{s}");
    }
    if s.is_empty() {
        s = "collection".into();
    }
    s
}

fn safe_file_stem(target: &str) -> String {
    let mut s: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        s.insert(0, '_');
    }
    if s.eq_ignore_ascii_case("dataset") {
        s.push('_');
    }
    s
}
