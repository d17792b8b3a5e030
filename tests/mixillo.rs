//! End to end with the seed app's mappings (`mappings/mixillo`): the real binary migrates
//! the demo data set from the Firestore emulator into the MongoDB-wire server, and the
//! tests read back what landed: every model's collection holds exactly the documents the
//! generator made (embedded ones inside their parents' arrays), every reference field the
//! mappings declare resolves by lookup, every declared index exists as declared (the text
//! ones are reported as refused by the test server), and broken documents land in the
//! dead letters with their path, rule and reason.
//!
//! The lists of collections, references and indexes come from the mappings themselves,
//! loaded with the library's own loader, so a mapping added later is checked too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{
    all, dead_letters, doc_at, holders, reference_rules, stderr, stdout, values_at, World,
};
use fireshift::mapping::indexes::IndexDef;
use fireshift::mapping::spec::{IndexKind, RefRepr};
use fireshift::mapping::{CompiledMapping, Identity, Landing, MappingSet};
use fireshift::path::DocPath;
use fireshift_demo::{self as demo, DemoDoc};
use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};
use mongodb::bson::{doc, Bson, Document};

const USERS: usize = 30;

fn mixillo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/mixillo")
}

fn mixillo_arg() -> String {
    mixillo().to_string_lossy().into_owned()
}

fn set() -> MappingSet {
    MappingSet::load(&mixillo()).unwrap_or_else(|e| panic!("{e}"))
}

/// `content/{contentId}/comments` → `content/*/comments` (the demo's pattern names).
fn demo_pattern(m: &CompiledMapping) -> String {
    m.collection
        .split('/')
        .map(|s| if s.starts_with('{') { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// `content/*/comments` → `content/{}/comments` (the summary's pattern names).
fn summary_pattern(demo: &str) -> String {
    demo.replace('*', "{}")
}

fn s(x: &str) -> Value {
    Value {
        value_type: Some(ValueType::StringValue(x.into())),
    }
}

/// Runs `migrate` with the mixillo mappings and returns (exit code, summary JSON).
fn migrate(world: &World) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let out = world.migrate(&[
        "--mappings",
        &mixillo_arg(),
        "--summary-json",
        summary.to_str().unwrap(),
        "--quiet",
    ]);
    let json = std::fs::read(&summary)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_else(|e| panic!("no summary ({e}): {}", stderr(&out)));
    (out.status.code(), json)
}

/// Per pattern of the summary: (read, written, dead-lettered).
fn summary_counts(summary: &serde_json::Value) -> BTreeMap<String, (u64, u64, u64)> {
    summary["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap();
            (
                c["pattern"].as_str().unwrap().to_string(),
                (n("read"), n("written"), n("dead_lettered")),
            )
        })
        .collect()
}

/// The TTL index of a collection as it exists now: (field, expireAfterSeconds).
async fn ttl_index(world: &World, collection: &str) -> Option<(String, i64)> {
    let reply = world
        .db
        .run_command(doc! { "listIndexes": collection })
        .await
        .ok()?;
    let batch = reply
        .get_document("cursor")
        .ok()?
        .get_array("firstBatch")
        .ok()?;
    batch.iter().filter_map(Bson::as_document).find_map(|ix| {
        let seconds = match ix.get("expireAfterSeconds")? {
            Bson::Int32(i) => i64::from(*i),
            Bson::Int64(i) => *i,
            Bson::Double(d) => *d as i64,
            _ => return None,
        };
        let field = ix.get_document("key").ok()?.keys().next()?.clone();
        Some((field, seconds))
    })
}

/// Every document of the data set, by demo pattern.
fn demo_by_pattern(world: &World) -> BTreeMap<String, Vec<DemoDoc>> {
    let mut out: BTreeMap<String, Vec<DemoDoc>> = BTreeMap::new();
    for d in demo::generate(USERS, &world.project, common::DB_ID, demo::FIXED_NOW) {
        out.entry(d.collection_pattern()).or_default().push(d);
    }
    out
}

fn render_id(b: &Bson) -> String {
    match b {
        Bson::String(s) => s.clone(),
        Bson::ObjectId(o) => o.to_hex(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn the_demo_data_migrates_with_the_mixillo_mappings_and_every_reference_resolves() {
    let world = World::new("mixillo").await;
    let written = world.write_demo(USERS).await;
    assert_eq!(written, demo::expected_count(USERS));
    let set = set();

    let (code, summary) = migrate(&world);
    // Every document landed; the test server refuses the four text indexes: exit 5.
    assert_eq!(
        code,
        Some(common::EXIT_INDEXES_NOT_ALL_BUILT),
        "migrate failed: {summary}"
    );
    assert_eq!(summary["dead_lettered"], 0, "{summary}");
    assert_eq!(summary["read"], demo::expected_count(USERS) as u64);
    assert_eq!(summary["written"], demo::expected_count(USERS) as u64);
    assert!(all(&world, "_fireshift_dead_letters").await.is_empty());

    // Per pattern, the summary counts exactly what the generator made.
    let expected = demo::expected_counts(USERS);
    let counted = summary_counts(&summary);
    for (pattern, n) in &expected {
        let n = *n as u64;
        assert_eq!(
            counted.get(&summary_pattern(pattern)),
            Some(&(n, n, 0)),
            "{pattern}"
        );
    }

    // Every mapped collection holds exactly the generated documents, by `_id` (embedded
    // ones as elements of their parent's array). A TTL index may already have removed
    // expired documents (the demo's "now" is 2026-01-01): those may be missing, and only
    // those.
    let by_pattern = demo_by_pattern(&world);
    let now_ms = mongodb::bson::DateTime::now().timestamp_millis();
    let mut model_collections = BTreeSet::new();
    for m in set.mappings() {
        let pattern = demo_pattern(m);
        let docs = &by_pattern[&pattern];
        assert!(!docs.is_empty(), "the demo has no {pattern}");
        let want: BTreeMap<String, &DemoDoc> = docs
            .iter()
            .map(|d| {
                let id = match &m.identity {
                    Identity::Field { field, .. } => match &d.fields[field].value_type {
                        Some(ValueType::StringValue(v)) => v.clone(),
                        other => panic!("{}: {other:?}", d.path),
                    },
                    _ => render_id(&set.target_id(&DocPath::parse(&d.path).unwrap()).unwrap()),
                };
                (id, d)
            })
            .collect();
        let landed: Vec<Bson> = match &m.landing {
            Landing::Embed { .. } => holders(&world, &set, m)
                .await
                .into_iter()
                .flat_map(|a| match a {
                    Bson::Array(a) => a,
                    other => panic!("{} is not an array: {other}", m.collection),
                })
                .collect(),
            _ => {
                model_collections.insert(m.target.clone());
                all(&world, &m.target)
                    .await
                    .into_iter()
                    .map(Bson::Document)
                    .collect()
            }
        };
        let got: BTreeSet<String> = landed
            .iter()
            .map(|d| render_id(d.as_document().unwrap().get("_id").unwrap()))
            .collect();
        assert_eq!(got.len(), landed.len(), "{}: duplicate _id", m.collection);
        let unexpected: Vec<&String> = got.iter().filter(|id| !want.contains_key(*id)).collect();
        assert!(
            unexpected.is_empty(),
            "{}: unexpected {unexpected:?}",
            m.collection
        );
        match ttl_index(&world, &m.target).await {
            Some((field, seconds)) if !matches!(m.landing, Landing::Embed { .. }) => {
                for (id, d) in &want {
                    let expires = match &d.fields[&field].value_type {
                        Some(ValueType::TimestampValue(t)) => t.seconds * 1000 + seconds * 1000,
                        other => panic!("{}.{field}: {other:?}", d.path),
                    };
                    assert!(
                        got.contains(id) || expires <= now_ms,
                        "{}: {} is missing but not expired",
                        m.collection,
                        d.path
                    );
                }
            }
            _ => {
                assert_eq!(
                    got.len(),
                    want.len(),
                    "{}: missing {:?}",
                    m.collection,
                    want.keys()
                        .filter(|k| !got.contains(*k))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    // 66 models: 64 in collections of their own, Shipping and VideoQuality embedded in
    // orders and content (as are the comments' replies, part of Comment).
    assert_eq!(model_collections.len(), 64, "{model_collections:?}");

    // A few landed values, to see the rules applied (not only the counts).
    let payment = all(&world, "payments").await.remove(0);
    assert!(matches!(payment.get("amount"), Some(Bson::Decimal128(_))));
    assert!(payment.get_datetime("paidAt").is_ok());
    assert!(!payment.contains_key("processorPayload"));
    assert!(payment.get_datetime("firestoreCreatedAt").is_ok());
    let order = all(&world, "orders").await;
    assert!(order
        .iter()
        .any(|o| o.get_array("shipments").is_ok_and(|a| !a.is_empty())));
    let user = all(&world, "users").await.remove(0);
    assert!(user.get_object_id("_id").is_ok() && user.get_str("firestoreId").is_ok());
    let filter = all(&world, "stream_filters").await.remove(0);
    assert!(filter.get_bool("premium").is_ok(), "0/1 cast to bool");
    let scheduled = all(&world, "scheduled_content").await.remove(0);
    assert!(scheduled.get_datetime("publishAt").is_ok());

    // Every reference field declared in the mappings resolves by lookup.
    let mut checked: BTreeMap<String, usize> = BTreeMap::new();
    let mut declared = BTreeSet::new();
    for m in set.mappings() {
        let mut rules = Vec::new();
        // `ref`, or `as` alone on reference values.
        reference_rules(
            &m.rules,
            Vec::new(),
            &|r| r.reference.is_some() || r.repr.is_some(),
            &mut rules,
        );
        if rules.is_empty() {
            continue;
        }
        let docs = holders(&world, &set, m).await;
        for (path, rule) in rules {
            let name = format!("{}:{}", m.collection, rule.path);
            declared.insert(name.clone());
            let mut values = Vec::new();
            for h in &docs {
                values_at(h, &path, &mut values);
            }
            for value in values {
                let repr = rule.repr.unwrap_or(set.dataset.references);
                let (collection, filter) = match (repr, value, &rule.reference) {
                    (_, Bson::Null, _) => continue,
                    (RefRepr::DbRef, Bson::Document(d), _) => (
                        d.get_str("$ref").unwrap().to_string(),
                        doc! { "_id": d.get("$id").unwrap().clone() },
                    ),
                    (RefRepr::Id, id, Some(r)) => {
                        let filter = match &set.get(&r.pattern).unwrap().landing {
                            Landing::Embed { field, .. } => {
                                doc! { format!("{field}._id"): id.clone() }
                            }
                            _ => doc! { "_id": id.clone() },
                        };
                        (set.target_of(&r.pattern), filter)
                    }
                    other => panic!("{name}: unexpected reference {other:?}"),
                };
                let found = world
                    .db
                    .collection::<Document>(&collection)
                    .find_one(filter.clone())
                    .await
                    .unwrap();
                assert!(
                    found.is_some(),
                    "{name} = {value}: nothing in {collection} matches {filter}"
                );
                *checked.entry(name.clone()).or_default() += 1;
            }
        }
    }
    // Migrate builds the TTL indexes once the copy is done, and the server may remove
    // every (already expired) story and upload session right away: their reference
    // fields can have nothing left to check. Every other declared field must.
    let mut emptied_by_ttl = BTreeSet::new();
    for m in set.mappings() {
        let count = world
            .db
            .collection::<mongodb::bson::Document>(&m.target)
            .count_documents(doc! {})
            .await
            .unwrap();
        if count == 0 && ttl_index(&world, &m.target).await.is_some() {
            emptied_by_ttl.insert(m.target.clone());
        }
    }
    let unchecked: Vec<&String> = declared
        .iter()
        .filter(|d| !checked.contains_key(*d))
        .filter(|d| {
            !d.split_once(':')
                .is_some_and(|(c, _)| emptied_by_ttl.contains(c))
        })
        .collect();
    assert!(unchecked.is_empty(), "no value to check for {unchecked:?}");
    assert!(declared.len() > 80, "{} reference fields", declared.len());

    // The declared indexes hold on the migrated data: unique keys are unique, geo fields
    // are valid GeoJSON, TTL fields are dates. Only the text indexes are refused.
    let out = world.indexes(&mixillo_arg());
    let report = stdout(&out);
    for ix in set.indexes() {
        let line = report
            .lines()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(ix.collection.as_str()) && w.next() == Some(ix.name.as_str())
            })
            .unwrap_or_else(|| panic!("no line for {}.{}:\n{report}", ix.collection, ix.name));
        if ix.keys.iter().any(|(_, k)| *k == IndexKind::Text) {
            assert!(line.contains("REFUSED by the server (code 67)"), "{line}");
        } else {
            assert!(
                line.contains("created") || line.contains("already existed"),
                "{line}"
            );
        }
    }
}

/// The declared spec of an index, as `listIndexes` shows it.
fn matches_declaration(existing: &Document, ix: &IndexDef) -> Result<(), String> {
    let keys = existing.get_document("key").map_err(|e| e.to_string())?;
    let want = ix.key_document();
    let same_keys = keys.len() == want.len()
        && keys.iter().zip(want.iter()).all(|((k, v), (wk, wv))| {
            k == wk
                && match (v, wv) {
                    (Bson::String(a), Bson::String(b)) => a == b,
                    (a, b) => {
                        a.as_f64()
                            .or(a.as_i64().map(|i| i as f64))
                            .or(a.as_i32().map(f64::from))
                            == b.as_f64()
                                .or(b.as_i64().map(|i| i as f64))
                                .or(b.as_i32().map(f64::from))
                    }
                }
        });
    if !same_keys {
        return Err(format!("keys {keys} instead of {want}"));
    }
    let flag = |k: &str| existing.get_bool(k).unwrap_or(false);
    if flag("unique") != ix.unique || flag("sparse") != ix.sparse {
        return Err(format!("unique/sparse differ: {existing}"));
    }
    let ttl = match existing.get("expireAfterSeconds") {
        Some(Bson::Int32(i)) => Some(i64::from(*i)),
        Some(Bson::Int64(i)) => Some(*i),
        Some(Bson::Double(d)) => Some(*d as i64),
        _ => None,
    };
    if ttl != ix.expire_after_seconds {
        return Err(format!("expireAfterSeconds {ttl:?}: {existing}"));
    }
    let partial = existing
        .get_document("partialFilterExpression")
        .ok()
        .cloned();
    let relaxed = |d: Option<Document>| d.map(|d| Bson::Document(d).into_relaxed_extjson());
    if relaxed(partial) != relaxed(ix.partial.clone()) {
        return Err(format!("partial filter differs: {existing}"));
    }
    Ok(())
}

#[tokio::test]
async fn every_declared_index_is_built_and_text_indexes_are_reported_as_refused() {
    let world = World::new("mixillo-ix").await;
    let set = set();
    let declared = set.indexes();
    let text = |ix: &IndexDef| ix.keys.iter().any(|(_, k)| *k == IndexKind::Text);
    let n_text = declared.iter().filter(|ix| text(ix)).count();
    assert!(n_text >= 3, "users, content and products search");
    // Only collections that exist get their indexes (as after a copy).
    let collections: std::collections::BTreeSet<&str> =
        declared.iter().map(|ix| ix.collection.as_str()).collect();
    for c in collections {
        world.db.create_collection(c).await.unwrap();
    }

    let run = || world.indexes(&mixillo_arg());
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_INDEXES_NOT_ALL_BUILT),
        "{}",
        stderr(&out)
    );
    let report = stdout(&out);
    for ix in &declared {
        let line = report
            .lines()
            .find(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(ix.collection.as_str()) && w.next() == Some(ix.name.as_str())
            })
            .unwrap_or_else(|| {
                panic!(
                    "no report line for {}.{}:\n{report}",
                    ix.collection, ix.name
                )
            });
        if text(ix) {
            assert!(line.contains("REFUSED by the server (code 67)"), "{line}");
        } else {
            assert!(line.contains("created"), "{line}");
        }
    }
    assert!(
        report.ends_with(&format!(
            "{} indexes: {} created, 0 already existed, {n_text} refused, 0 clash, 0 failed\n",
            declared.len(),
            declared.len() - n_text
        )),
        "{report}"
    );

    // What exists on the server is what was declared.
    let mut by_collection: BTreeMap<&str, Vec<&IndexDef>> = BTreeMap::new();
    for ix in &declared {
        by_collection.entry(&ix.collection).or_default().push(ix);
    }
    for (collection, wanted) in by_collection {
        let reply = world
            .db
            .run_command(doc! { "listIndexes": collection })
            .await
            .unwrap();
        let existing: BTreeMap<String, Document> = reply
            .get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()
            .iter()
            .map(|b| {
                let d = b.as_document().unwrap().clone();
                (d.get_str("name").unwrap().to_string(), d)
            })
            .collect();
        let mut names: BTreeSet<&str> = BTreeSet::from(["_id_"]);
        for ix in wanted {
            if text(ix) {
                assert!(!existing.contains_key(&ix.name), "{collection}.{}", ix.name);
                continue;
            }
            names.insert(&ix.name);
            let e = existing
                .get(&ix.name)
                .unwrap_or_else(|| panic!("{collection}.{} missing: {existing:?}", ix.name));
            if let Err(why) = matches_declaration(e, ix) {
                panic!("{collection}.{}: {why}", ix.name);
            }
        }
        assert_eq!(
            existing.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            names,
            "{collection}"
        );
    }

    // Idempotent: nothing is created twice.
    let again = run();
    assert!(
        stdout(&again).ends_with(&format!(
            "{} indexes: 0 created, {} already existed, {n_text} refused, 0 clash, 0 failed\n",
            declared.len(),
            declared.len() - n_text
        )),
        "{}",
        stdout(&again)
    );
}

#[tokio::test]
async fn a_unique_index_the_data_violates_is_reported_as_refused_at_once() {
    let world = World::new("mixillo-dup").await;
    // Two users with one username (written directly: the source never had them).
    world
        .db
        .collection::<Document>("users")
        .insert_many([
            doc! { "username": "twin", "email": "a@example.com" },
            doc! { "username": "twin", "email": "b@example.com" },
        ])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let out = world.indexes(&mixillo_arg());
    assert_eq!(out.status.code(), Some(common::EXIT_INDEXES_NOT_ALL_BUILT));
    let report = stdout(&out);
    let line = report
        .lines()
        .find(|l| l.split_whitespace().take(2).eq(["users", "username_1"]))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        line.contains("REFUSED by the server (code 11000)"),
        "{line}"
    );
    assert!(report
        .lines()
        .any(|l| l.split_whitespace().take(2).eq(["users", "email_1"]) && l.contains("created")));
    // Not retried as if it were transient (the retry deadline is 60 s).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let names = world
        .db
        .collection::<Document>("users")
        .list_index_names()
        .await
        .unwrap();
    assert!(!names.contains(&"username_1".to_string()), "{names:?}");
}

#[tokio::test]
async fn broken_documents_are_dead_lettered_with_path_rule_and_reason_and_counted() {
    let world = World::new("mixillo-dead").await;
    let users = 6;
    let mut docs: Vec<DemoDoc> =
        demo::generate(users, &world.project, common::DB_ID, demo::FIXED_NOW).collect();
    // A user without the required email, a payment whose amount is not a decimal, and a
    // scheduled post whose time is not in the mapping's format.
    docs.push(doc_at(
        "users/brokenUserNoEmail00",
        vec![("username", s("nomail")), ("displayName", s("No Mail"))],
    ));
    docs.push(doc_at(
        "payments/brokenPaymentAmount0",
        vec![
            ("orderId", s("whatever")),
            ("userId", s("whoever")),
            ("amount", s("12,50")),
        ],
    ));
    docs.push(doc_at(
        "scheduled_content/brokenScheduleTime0",
        vec![
            ("creatorId", s("someone")),
            ("publishAt", s("tomorrow at 9")),
        ],
    ));
    let total = docs.len();
    world.write(docs.into_iter()).await;

    let (code, summary) = migrate(&world);
    assert_eq!(code, Some(common::EXIT_DEAD_LETTERS), "{summary}");
    assert_eq!(summary["read"], total as u64);
    assert_eq!(summary["dead_lettered"], 3);
    assert_eq!(summary["written"], (total - 3) as u64);
    let counted = summary_counts(&summary);
    for pattern in ["users", "payments", "scheduled_content"] {
        let (read, written, dead) = counted[pattern];
        assert_eq!(dead, 1, "{pattern}");
        assert_eq!(read, written + 1, "{pattern}");
    }

    let dead = dead_letters(&world).await;
    assert_eq!(dead.len(), 3, "{dead:#?}");
    let get = |path: &str| {
        dead.get(&world.full_name(path))
            .unwrap_or_else(|| panic!("{path} not dead-lettered: {dead:#?}"))
    };
    let user = get("users/brokenUserNoEmail00");
    assert_eq!(user.get_str("collection").unwrap(), "users");
    assert_eq!(user.get_str("rule").unwrap(), "required");
    assert_eq!(user.get_str("field").unwrap(), "email");
    assert_eq!(
        user.get_str("reason").unwrap(),
        "required field `email` is missing"
    );
    let raw = user.get_document("raw").unwrap();
    assert_eq!(
        raw.get_str("name").unwrap(),
        world.full_name("users/brokenUserNoEmail00")
    );
    assert!(!raw.get_document("fields").unwrap().contains_key("email"));

    let payment = get("payments/brokenPaymentAmount0");
    assert_eq!(payment.get_str("rule").unwrap(), "cast");
    assert_eq!(payment.get_str("field").unwrap(), "amount");
    assert_eq!(payment.get_str("value").unwrap(), "12,50");
    assert!(
        payment
            .get_str("reason")
            .unwrap()
            .contains("cannot cast string \"12,50\" to decimal128"),
        "{payment}"
    );

    let scheduled = get("scheduled_content/brokenScheduleTime0");
    assert_eq!(scheduled.get_str("rule").unwrap(), "cast");
    assert_eq!(scheduled.get_str("field").unwrap(), "publishAt");
    assert!(
        scheduled
            .get_str("reason")
            .unwrap()
            .contains("does not match `%Y-%m-%d %H:%M:%S`"),
        "{scheduled}"
    );

    // Nothing of them landed; everything else did.
    for (collection, firestore_id) in [
        ("users", "brokenUserNoEmail00"),
        ("payments", "brokenPaymentAmount0"),
        ("scheduled_content", "brokenScheduleTime0"),
    ] {
        let found = world
            .db
            .collection::<Document>(collection)
            .find_one(doc! { "firestoreId": firestore_id })
            .await
            .unwrap();
        assert!(found.is_none(), "{collection} {firestore_id} landed");
    }
    let expected = demo::expected_counts(users);
    for (collection, pattern) in [
        ("users", "users"),
        ("payments", "payments"),
        ("scheduled_content", "scheduled_content"),
    ] {
        let n = world
            .db
            .collection::<Document>(collection)
            .count_documents(doc! {})
            .await
            .unwrap();
        assert_eq!(n, expected[pattern] as u64, "{collection}");
    }
}

#[test]
fn check_accepts_the_mixillo_mappings() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args(["check", "--mappings", &mixillo_arg()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let set = set();
    assert!(
        text.contains(&format!(
            "67 mappings, {} indexes, all valid",
            set.indexes().len()
        )),
        "{text}"
    );
}
