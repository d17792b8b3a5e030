//! The demo data set against the seed app's mappings (`mappings/mixillo`), without any
//! service: every collection the generator makes has a mapping, every document converts,
//! and every reference the mappings declare points at a generated document.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use fireshift_demo::{documents_prefix, expected_counts, generate, DemoDoc, FIXED_NOW};
use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, Value};

const P: &str = "demo-mixillo";
const D: &str = "(default)";

fn mixillo() -> fireshift::mapping::MappingSet {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/mixillo");
    fireshift::mapping::MappingSet::load(&dir).unwrap_or_else(|e| panic!("{e}"))
}

/// `content/{contentId}/comments` → `content/*/comments`, the demo's pattern names.
fn demo_pattern(mapping_collection: &str) -> String {
    mapping_collection
        .split('/')
        .map(|s| if s.starts_with('{') { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The source values at a field path, through arrays (`items.productId`).
fn values_at<'a>(v: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    match (&v.value_type, path.split_first()) {
        (Some(ValueType::ArrayValue(a)), _) => {
            a.values.iter().for_each(|x| values_at(x, path, out))
        }
        (Some(ValueType::MapValue(m)), Some((head, rest))) => {
            if let Some(x) = m.fields.get(head) {
                values_at(x, rest, out)
            }
        }
        (_, None) => out.push(v),
        _ => {}
    }
}

/// Every `ref` rule of a mapping with its source field path.
fn ref_rules(
    node: &fireshift::mapping::rules::RuleNode,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, fireshift::mapping::rules::RefRule)>,
) {
    for (name, child) in &node.children {
        let mut path = prefix.clone();
        path.push(name.clone());
        if let Some(r) = child.rule.as_ref().and_then(|r| r.reference.clone()) {
            out.push((path.clone(), r));
        }
        ref_rules(child, path, out);
    }
}

#[test]
fn the_mixillo_mappings_cover_every_collection_and_convert_every_document() {
    let set = mixillo();
    let mapped: BTreeSet<String> = set
        .mappings()
        .map(|m| demo_pattern(&m.collection))
        .collect();
    let generated: BTreeSet<String> = expected_counts(60)
        .into_keys()
        .map(str::to_string)
        .collect();
    // Every app collection has a mapping; only the synthetic ones keep the defaults.
    let unmapped: Vec<&String> = generated.difference(&mapped).collect();
    assert_eq!(
        unmapped,
        vec!["archives/*/items", "edge_cases", "edge_cases/*/children"]
    );
    assert!(
        mapped.is_subset(&generated),
        "{:?}",
        mapped.difference(&generated)
    );
    // 66 models: every mapped pattern but the replies, which belong to Comment.
    assert_eq!(mapped.len(), 67);

    let t = fireshift::mapping::transform::Transformer::with_mappings(set);
    for d in generate(60, P, D, FIXED_NOW) {
        let raw = Document {
            name: d.full_name(P, D),
            fields: d.fields,
            ..Default::default()
        };
        if let Err(r) = t.apply(&raw) {
            panic!("{} does not convert: {r:?}", raw.name);
        }
    }
}

#[test]
fn every_declared_reference_points_at_a_generated_document() {
    let set = mixillo();
    let prefix = documents_prefix(P, D);
    for users in [2, 3, 40] {
        let docs: Vec<DemoDoc> = generate(users, P, D, FIXED_NOW).collect();
        let paths: HashSet<&str> = docs.iter().map(|d| d.path.as_str()).collect();
        let mut checked = BTreeMap::<String, usize>::new();
        for m in set.mappings() {
            let mut rules = Vec::new();
            ref_rules(&m.rules, Vec::new(), &mut rules);
            let pattern = demo_pattern(&m.collection);
            for d in docs.iter().filter(|d| d.collection_pattern() == pattern) {
                for (path, r) in &rules {
                    let mut values = Vec::new();
                    if let Some(v) = d.fields.get(&path[0]) {
                        values_at(v, &path[1..], &mut values);
                    }
                    for v in values {
                        let target = match &v.value_type {
                            Some(ValueType::NullValue(_)) => continue,
                            Some(ValueType::ReferenceValue(full)) => {
                                full.strip_prefix(&prefix).unwrap().to_string()
                            }
                            Some(ValueType::StringValue(s))
                                if r.from == fireshift::mapping::spec::RefFrom::Path =>
                            {
                                s.clone()
                            }
                            Some(ValueType::StringValue(id)) => {
                                // Parent ids of a subcollection come from this
                                // document's fields of the placeholder's name.
                                let mut parents = r.placeholders.iter().map(|p| {
                                    let name = p.as_deref().unwrap();
                                    match d.fields.get(name).and_then(|v| v.value_type.clone()) {
                                        Some(ValueType::StringValue(s)) => s,
                                        other => {
                                            panic!("{}: placeholder {name} = {other:?}", d.path)
                                        }
                                    }
                                });
                                let mut out = String::new();
                                for (n, segment) in r.pattern.to_string().split('/').enumerate() {
                                    if n > 0 {
                                        out.push('/');
                                    }
                                    if segment == "{}" {
                                        out.push_str(&parents.next().unwrap());
                                    } else {
                                        out.push_str(segment);
                                    }
                                }
                                format!("{out}/{id}")
                            }
                            other => panic!("{} {path:?}: {other:?}", d.path),
                        };
                        assert!(
                            paths.contains(target.as_str()),
                            "{} `{}` points at {target}, which is not generated",
                            d.path,
                            path.join(".")
                        );
                        *checked
                            .entry(format!("{}:{}", m.collection, path.join(".")))
                            .or_default() += 1;
                    }
                }
            }
        }
        if users == 40 {
            // Not vacuous: every declared reference occurs in a 40-user set.
            let mut declared = BTreeSet::new();
            for m in set.mappings() {
                let mut rules = Vec::new();
                ref_rules(&m.rules, Vec::new(), &mut rules);
                for (path, _) in rules {
                    declared.insert(format!("{}:{}", m.collection, path.join(".")));
                }
            }
            let seen: BTreeSet<String> = checked.keys().cloned().collect();
            assert_eq!(
                declared.difference(&seen).collect::<Vec<_>>(),
                Vec::<&String>::new()
            );
            assert!(declared.len() > 80, "{}", declared.len());
        }
    }
}
