//! The benchmark's export generator (`examples/export_data`) writes what Google's own
//! code reads: the Firestore emulator loads the generated folder with `--import-data`,
//! and every document read back from it equals, field by field, the demo document it
//! was generated from. So the export benchmark measures fireshift on a real export's
//! bytes, not on a format only fireshift understands.
//!
//! This file is its own test process on purpose: it points `FIRESTORE_EMULATOR_HOST`
//! (process-wide) at a private emulator on a free port, which must not leak into the
//! tests that share the emulator `scripts/services` started.
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::emulator::PrivateEmulator;
use common::{example_binary, free_port, stderr};
use fireshift::source::{FirestoreSource, KeyRange, SourceConfig};
use fireshift_demo as demo;
use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};

const DB_ID: &str = "(default)";

/// A Firestore value comparable with `Eq`, exactly: doubles by their bits (so NaN
/// equals NaN, and -0.0 differs from +0.0), timestamps to the nanosecond.
///
/// Nothing is rounded or normalised, and the test passes that way: the emulator keeps
/// -0.0, NaN and ±Infinity through an import (it loads the entities as they are), and
/// every timestamp of the demo data set is whole microseconds, the precision an export
/// holds. A generator change that produced finer timestamps would fail here, and that
/// is intended: the export would then not hold the generated values.
#[derive(Debug, PartialEq, Eq)]
enum Canon {
    Null,
    Bool(bool),
    Int(i64),
    Double(u64),
    Timestamp(i64, i32),
    String(String),
    Bytes(Vec<u8>),
    Reference(String),
    GeoPoint(u64, u64),
    Array(Vec<Canon>),
    Map(BTreeMap<String, Canon>),
    Missing,
    Other(String),
}

fn canon(v: &Value) -> Canon {
    match &v.value_type {
        None => Canon::Missing,
        Some(ValueType::NullValue(_)) => Canon::Null,
        Some(ValueType::BooleanValue(b)) => Canon::Bool(*b),
        Some(ValueType::IntegerValue(i)) => Canon::Int(*i),
        Some(ValueType::DoubleValue(d)) => Canon::Double(d.to_bits()),
        Some(ValueType::TimestampValue(t)) => Canon::Timestamp(t.seconds, t.nanos),
        Some(ValueType::StringValue(s)) => Canon::String(s.clone()),
        Some(ValueType::BytesValue(b)) => Canon::Bytes(b.to_vec()),
        Some(ValueType::ReferenceValue(r)) => Canon::Reference(r.clone()),
        Some(ValueType::GeoPointValue(g)) => {
            Canon::GeoPoint(g.latitude.to_bits(), g.longitude.to_bits())
        }
        Some(ValueType::ArrayValue(a)) => Canon::Array(a.values.iter().map(canon).collect()),
        Some(ValueType::MapValue(m)) => Canon::Map(canon_fields(&m.fields)),
        // Pipeline expressions, never stored in a document.
        Some(other) => Canon::Other(format!("{other:?}")),
    }
}

fn canon_fields(fields: &std::collections::HashMap<String, Value>) -> BTreeMap<String, Canon> {
    fields.iter().map(|(k, v)| (k.clone(), canon(v))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_imports_the_generated_export_exactly() {
    const USERS: usize = 3;
    let project = common::unique("export-gen");
    let dir = tempfile::tempdir().unwrap();

    // Three output files, dealt round-robin: the importer must read every file of the
    // kind's metadata, not only output-0.
    let generated = Command::new(example_binary("export_data"))
        .args(["--users", &USERS.to_string(), "--project", &project])
        .args(["--files", "3", "--layout", "round-robin", "--name", "gen"])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", stderr(&generated));
    let summary: serde_json::Value = serde_json::from_slice(&generated.stdout).unwrap();
    let expected_count = demo::expected_count(USERS);
    assert_eq!(summary["docs"], expected_count as u64);
    let overall = dir.path().join("gen/gen.overall_export_metadata");
    assert!(overall.exists(), "no {}", overall.display());
    for i in 0..3 {
        let out = dir
            .path()
            .join(format!("gen/all_namespaces/all_kinds/output-{i}"));
        assert!(
            std::fs::metadata(&out).unwrap().len() > 0,
            "{} empty",
            out.display()
        );
    }

    let port = free_port();
    let _emulator = PrivateEmulator::start(port, Some(&overall), &dir.path().join("emulator.log"));
    // Process-wide, see the module doc: the library's source reads it when connecting.
    std::env::set_var("FIRESTORE_EMULATOR_HOST", format!("127.0.0.1:{port}"));
    let source = FirestoreSource::connect(SourceConfig::new(&project))
        .await
        .expect("connect to the private emulator");
    let mut docs = source.stream(KeyRange::default(), 1024);
    let mut actual = BTreeMap::new();
    while let Some(doc) = docs.recv().await {
        let doc = doc.expect("read the imported documents");
        assert!(
            actual
                .insert(doc.name.clone(), canon_fields(&doc.fields))
                .is_none(),
            "{} read twice",
            doc.name
        );
    }

    let expected: BTreeMap<String, BTreeMap<String, Canon>> =
        demo::generate(USERS, &project, DB_ID, demo::FIXED_NOW)
            .map(|d| (d.full_name(&project, DB_ID), canon_fields(&d.fields)))
            .collect();
    assert_eq!(expected.len(), expected_count);
    let missing: Vec<&String> = expected
        .keys()
        .filter(|n| !actual.contains_key(*n))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|n| !expected.contains_key(*n))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the emulator's documents differ from the generated ones: missing {missing:?}, extra {extra:?}"
    );
    for (name, fields) in &expected {
        let got = &actual[name];
        for (field, value) in fields {
            assert_eq!(
                got.get(field),
                Some(value),
                "{name}: field {field:?} as the emulator imported it"
            );
        }
        assert_eq!(got, fields, "{name}: fields the generator did not write");
    }
    // The edge cases (NaN, ±Infinity, i64 extremes, deep nesting, odd field names,
    // references, vectors) are among the compared documents.
    assert!(expected
        .keys()
        .any(|n| n.contains("/documents/edge_cases/")));
}

/// The generated folder has the layout of an emulator export (the fixture
/// `tests/fixtures/export/exp1`), whatever the layout of documents over files.
#[test]
fn writes_the_emulator_export_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(example_binary("export_data"))
        .args([
            "--users",
            "1",
            "--files",
            "2",
            "--name",
            "n1",
            "--project",
            "p1",
        ])
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let root = dir.path().join("n1");
    let mut files = Vec::new();
    list(&root, &root, &mut files);
    files.sort();
    assert_eq!(
        files,
        [
            "all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata",
            "all_namespaces/all_kinds/output-0",
            "all_namespaces/all_kinds/output-1",
            "n1.overall_export_metadata",
        ]
    );
    use fireshift::source::export::metadata::{parse_kind, parse_overall, EntitySetSpec};
    let overall =
        parse_overall(&std::fs::read(root.join("n1.overall_export_metadata")).unwrap()).unwrap();
    assert_eq!(overall.kinds.len(), 1);
    assert_eq!(overall.kinds[0].spec, EntitySetSpec::all());
    assert_eq!(
        overall.kinds[0].num_entities,
        demo::expected_count(1) as u64
    );
    let outputs: u64 = (0..2)
        .map(|i| {
            std::fs::metadata(root.join(format!("all_namespaces/all_kinds/output-{i}")))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(overall.kinds[0].num_bytes, outputs);
    let kind = parse_kind(&std::fs::read(root.join(&overall.kinds[0].path)).unwrap()).unwrap();
    assert_eq!(kind.name, "n1");
    assert_eq!(kind.kinds, [""]);
    assert_eq!(kind.outputs, ["output-0", "output-1"]);
    assert!(kind.start_micros <= kind.end_micros);
    // A second run into the same folder is refused rather than mixing two exports.
    let again = Command::new(example_binary("export_data"))
        .args(["--users", "1", "--name", "n1", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
}

fn list(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            list(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
}
