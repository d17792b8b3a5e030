//! The checks that need several mappings: references to collections whose `_id` comes
//! from a field, embedding and parent keys, two mappings writing one target with ids
//! that may clash, and the indexes of all mappings together.

use std::collections::BTreeMap;

use crate::mapping::indexes;
use crate::mapping::load::MappingError;
use crate::mapping::rules::{self, RuleNode};
use crate::mapping::spec::RefRepr;
use crate::mapping::{parent_pattern, CompiledMapping, Identity, Landing};
use crate::path::CollectionPattern;

/// Checks that need several mappings.
pub(super) fn check_across(
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
