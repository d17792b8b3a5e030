//! End to end with mappings: the real binary migrates from the Firestore emulator into
//! the MongoDB-wire server following `mappings/examples`, and the tests read back what
//! landed: every declared reference resolves by lookup, dead letters carry the rule and
//! the reason, embedded subcollections are idempotent, indexes exist as declared (the
//! text index is reported as refused by the test server), a dry run writes nothing.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    all, dead_letters, doc_at, holders, reference_rules, stderr, stdout, values_at, World,
};
use fireshift::mapping::spec::RefRepr;
use fireshift::mapping::{Landing, MappingSet};
use fireshift::path::DocPath;
use fireshift_demo::DemoDoc;
use futures::TryStreamExt;
use gcloud_sdk::google::firestore::v1::{value::ValueType, ArrayValue, MapValue, Value};
use gcloud_sdk::google::r#type::LatLng;
use gcloud_sdk::prost_types::Timestamp;
use mongodb::bson::{doc, Bson, DateTime, Decimal128, Document};

use common::EXIT_INDEXES_NOT_ALL_BUILT;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/examples")
}

fn examples_arg() -> String {
    examples().to_string_lossy().into_owned()
}

fn set() -> MappingSet {
    MappingSet::load(&examples()).unwrap_or_else(|e| panic!("{e}"))
}

fn v(t: ValueType) -> Value {
    Value {
        value_type: Some(t),
    }
}
fn s(x: &str) -> Value {
    v(ValueType::StringValue(x.into()))
}
fn i(x: i64) -> Value {
    v(ValueType::IntegerValue(x))
}
fn d(x: f64) -> Value {
    v(ValueType::DoubleValue(x))
}
fn arr(values: Vec<Value>) -> Value {
    v(ValueType::ArrayValue(ArrayValue { values }))
}
fn map(pairs: Vec<(&str, Value)>) -> Value {
    v(ValueType::MapValue(MapValue {
        fields: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }))
}

/// A small shop-and-social data set that touches every rule of `mappings/examples`,
/// with four documents the mappings cannot convert.
fn data(world: &World) -> Vec<DemoDoc> {
    let reference = |path: &str| v(ValueType::ReferenceValue(world.full_name(path)));
    let ts = |seconds| v(ValueType::TimestampValue(Timestamp { seconds, nanos: 0 }));
    vec![
        doc_at(
            "users/u1",
            vec![
                ("displayName", s("Ann")),
                ("email", s("ann@example.com")),
                ("password", s("secret")),
                ("coins", i(12)),
                ("rating", d(4.25)),
                ("birthday", s("1990-05-17")),
                ("signupEpoch", i(1_767_225_600)),
                ("isVerified", s("yes")),
                ("legacyId", s("65a1b2c3d4e5f60718293a4b")),
                (
                    "settings",
                    map(vec![("language", s("pt")), ("fontScale", i(1))]),
                ),
                ("bio", s("hello")),
                (
                    "location",
                    v(ValueType::GeoPointValue(LatLng {
                        latitude: 48.85,
                        longitude: 2.35,
                    })),
                ),
                ("a.b", i(1)),
            ],
        ),
        doc_at(
            "users/u2",
            vec![("displayName", s("Bo")), ("email", s("bo@example.com"))],
        ),
        doc_at("users/u3", vec![("displayName", s("Cy"))]),
        // Broken: `displayName` is required.
        doc_at("users/nameless", vec![("email", s("x@example.com"))]),
        doc_at(
            "content/c1",
            vec![
                ("authorId", s("u1")),
                ("author", reference("users/u1")),
                ("stats", map(vec![("likes", i(5))])),
                ("price", d(9.99)),
                ("caption", s("first")),
                ("createdAt", ts(1_767_225_600)),
            ],
        ),
        doc_at(
            "content/c1/comments/k1",
            vec![("authorId", s("u2")), ("text", s("one"))],
        ),
        doc_at(
            "content/c1/comments/k2",
            vec![("authorId", s("u3")), ("text", s("two"))],
        ),
        doc_at(
            "content/c1/comments/k3",
            vec![("authorId", s("u1")), ("text", s("three"))],
        ),
        // Broken: the fourth comment of c1 does not fit `max = 3`.
        doc_at(
            "content/c1/comments/k4",
            vec![("authorId", s("u2")), ("text", s("four"))],
        ),
        doc_at("content/c1/likes/l1", vec![("userId", s("u2"))]),
        doc_at(
            "content/c1/likes/l2",
            vec![("userId", reference("users/u3"))],
        ),
        doc_at(
            "content/c2",
            vec![
                ("authorId", s("u2")),
                ("author", reference("users/u2")),
                ("caption", s("second")),
            ],
        ),
        doc_at(
            "content/c2/comments/k1",
            vec![("authorId", s("u1")), ("text", s("hi"))],
        ),
        doc_at(
            "orders/o1",
            vec![
                ("userId", s("u1")),
                ("total", d(30.5)),
                ("storeId", s("s1")),
                (
                    "items",
                    arr(vec![
                        map(vec![
                            ("productId", s("p1")),
                            ("price", d(10.25)),
                            ("qty", i(1)),
                        ]),
                        map(vec![("productId", s("p2")), ("price", d(20.25))]),
                    ]),
                ),
                ("placedAt", s("2026-01-02T03:04:05Z")),
                ("internalNotes", s("call back")),
            ],
        ),
        // Broken: `total` cannot be cast to decimal128.
        doc_at(
            "orders/badtotal",
            vec![("userId", s("u2")), ("total", s("abc"))],
        ),
        // Broken: orders reject field names with a `.`.
        doc_at(
            "orders/dotted",
            vec![("userId", s("u2")), ("total", i(1)), ("x.y", i(1))],
        ),
        doc_at("stores/s1", vec![("name", s("Shop"))]),
        doc_at("stores/s1/products/p1", vec![("price", d(10.25))]),
        doc_at("stores/s1/products/p2", vec![("price", s("20.25"))]),
        doc_at("wallets/u1", vec![("balance", i(5))]),
        doc_at(
            "wallets/u1/transactions/t1",
            vec![
                ("amount", i(5)),
                ("counterparty", s("u2")),
                ("witnesses", arr(vec![s("u2"), s("u3")])),
            ],
        ),
        doc_at(
            "stories/st1",
            vec![
                ("slug", s("ann-day-1")),
                ("userId", s("u1")),
                ("expiresAt", s("2100-01-01T00:00:00Z")),
                ("junk", s("dropped")),
            ],
        ),
    ]
}

const BROKEN: usize = 4;

async fn one(world: &World, collection: &str, filter: Document) -> Option<Document> {
    world
        .db
        .collection::<Document>(collection)
        .find_one(filter)
        .await
        .unwrap()
}

fn oid(set: &MappingSet, path: &str) -> Bson {
    set.target_id(&DocPath::parse(path).unwrap()).unwrap()
}

fn dec(x: &str) -> Bson {
    Bson::Decimal128(x.parse::<Decimal128>().unwrap())
}

/// For every reference field declared in the set, every value in the target must name
/// an existing document (looked up by `_id`, or by `<array>._id` for an embedded one).
/// Returns how many references were checked per rule.
async fn check_references_resolve(world: &World, set: &MappingSet) -> BTreeMap<String, usize> {
    let mut checked = BTreeMap::new();
    for m in set.mappings() {
        let mut rules = Vec::new();
        reference_rules(&m.rules, Vec::new(), &|r| r.reference.is_some(), &mut rules);
        if rules.is_empty() {
            continue;
        }
        let holders = holders(world, set, m).await;
        for (path, rule) in rules {
            let r = rule.reference.as_ref().unwrap();
            let mut values = Vec::new();
            for h in &holders {
                values_at(h, &path, &mut values);
            }
            let referenced = set.get(&r.pattern).unwrap();
            for value in values {
                let (collection, id) = match (rule.repr.unwrap_or(set.dataset.references), value) {
                    (_, Bson::Null) => continue,
                    (RefRepr::DbRef, Bson::Document(d)) => (
                        d.get_str("$ref").unwrap().to_string(),
                        d.get("$id").unwrap().clone(),
                    ),
                    (RefRepr::Path, Bson::String(p)) => (set.target_of(&r.pattern), oid(set, p)),
                    (_, id) => (set.target_of(&r.pattern), id.clone()),
                };
                let filter = match &referenced.landing {
                    Landing::Embed { field, .. } => doc! { format!("{field}._id"): id.clone() },
                    _ => doc! { "_id": id.clone() },
                };
                assert!(
                    one(world, &collection, filter.clone()).await.is_some(),
                    "{} `{}` = {value}: no document in {collection} matches {filter}",
                    m.collection,
                    rule.path
                );
                *checked
                    .entry(format!("{}:{}", m.collection, rule.path))
                    .or_default() += 1;
            }
        }
    }
    checked
}

#[tokio::test]
async fn every_rule_lands_and_every_declared_reference_resolves_by_lookup() {
    let world = World::new("map-e2e").await;
    let docs = data(&world);
    let total = docs.len();
    world.write(docs.into_iter()).await;
    let out = world.migrate(&["--mappings", &examples_arg()]);
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_DEAD_LETTERS),
        "{}",
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains(&format!("{total} documents read")), "{text}");
    assert!(
        text.contains(&format!("{BROKEN} documents dead-lettered")),
        "{text}"
    );
    // Once every range is copied, migrate builds the mappings' indexes, reports each one
    // (the test server refuses the text index and the run goes on) and marks the ranges.
    assert!(
        text.contains("7 indexes: 6 created, 0 already existed, 1 refused"),
        "{text}"
    );
    let people_indexes: Vec<String> = world
        .db
        .collection::<Document>("people")
        .list_index_names()
        .await
        .unwrap();
    assert!(
        people_indexes.contains(&"email_1".to_string()),
        "{people_indexes:?}"
    );
    let ranges: Vec<Document> = world
        .db
        .collection::<Document>("_fireshift_checkpoints")
        .find(doc! { "kind": "range" })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(!ranges.is_empty());
    for r in &ranges {
        assert_eq!(r.get_str("state").unwrap(), "indexed", "{r:?}");
    }
    let set = set();

    // users → people, ObjectId identity, every kind of field rule.
    let u1 = one(&world, "people", doc! { "_id": oid(&set, "users/u1") })
        .await
        .expect("u1 landed");
    assert_eq!(u1.get_str("firestoreId").unwrap(), "u1");
    assert_eq!(u1.get_str("name").unwrap(), "Ann");
    assert!(!u1.contains_key("displayName") && !u1.contains_key("password"));
    assert_eq!(u1.get("coins"), Some(&Bson::Int32(12)));
    assert_eq!(u1.get("rating"), Some(&dec("4.25")));
    assert_eq!(
        u1.get("birthday"),
        Some(&Bson::DateTime(DateTime::from_millis(642_902_400_000)))
    );
    assert_eq!(
        u1.get("signupEpoch"),
        Some(&Bson::DateTime(DateTime::from_millis(1_767_225_600_000)))
    );
    assert_eq!(u1.get("isVerified"), Some(&Bson::Boolean(true)));
    assert_eq!(
        u1.get_object_id("legacyId").unwrap().to_hex(),
        "65a1b2c3d4e5f60718293a4b"
    );
    assert_eq!(
        u1.get_document("settings").unwrap(),
        &doc! { "fontScale": 1.0, "language": "pt" }
    );
    assert_eq!(u1.get_i64("a\u{FF0E}b").unwrap(), 1, "escaped field name");
    for metadata in ["firestoreCreatedAt", "firestoreUpdatedAt"] {
        assert!(u1.get_datetime(metadata).is_ok(), "{metadata} in {u1}");
    }
    let u2 = one(&world, "people", doc! { "firestoreId": "u2" })
        .await
        .unwrap();
    assert_eq!(u2.get("coins"), Some(&Bson::Int32(0)), "default, cast");
    assert_eq!(u2.get("isVerified"), Some(&Bson::Boolean(false)));
    assert_eq!(
        u2.get_document("settings").ok(),
        None,
        "nested defaults only apply inside an existing map"
    );

    // content: references rewritten to the author's ObjectId; embedded comments.
    let c1 = one(&world, "content", doc! { "_id": oid(&set, "content/c1") })
        .await
        .unwrap();
    assert_eq!(c1.get("authorId"), Some(&oid(&set, "users/u1")));
    assert_eq!(c1.get("author"), Some(&oid(&set, "users/u1")));
    assert_eq!(c1.get_document("stats").unwrap(), &doc! { "likes": 5i32 });
    assert_eq!(c1.get("price"), Some(&dec("9.99")));
    let comments = c1.get_array("comments").unwrap();
    assert_eq!(comments.len(), 3, "max = 3: {comments:?}");
    let c2 = one(&world, "content", doc! { "firestoreId": "c2" })
        .await
        .unwrap();
    assert_eq!(
        c2.get("price"),
        Some(&dec("0")),
        "default cast to decimal128"
    );
    assert_eq!(
        c2.get_array("comments").unwrap(),
        &vec![Bson::Document(
            doc! { "_id": "content/c2/comments/k1", "authorId": oid(&set, "users/u1"), "text": "hi" }
        )]
    );

    // likes: own collection with the content's ObjectId as parent key.
    let likes = all(&world, "likes").await;
    assert_eq!(likes.len(), 2);
    assert!(likes
        .iter()
        .all(|l| l.get("contentId") == Some(&oid(&set, "content/c1"))));

    // orders: keep identity, money, nested casts and references, dates, defaults, drops.
    let o1 = one(&world, "orders", doc! { "_id": "o1" }).await.unwrap();
    assert_eq!(o1.get("total"), Some(&dec("30.5")));
    assert_eq!(o1.get("status"), Some(&Bson::String("pending".into())));
    assert_eq!(
        o1.get("placedAt"),
        Some(&Bson::DateTime(DateTime::from_millis(1_767_323_045_000)))
    );
    assert!(!o1.contains_key("internalNotes"));
    let items = o1.get_array("items").unwrap();
    let first = items[0].as_document().unwrap();
    assert_eq!(first.get("price"), Some(&dec("10.25")));
    assert_eq!(
        first.get("productId"),
        Some(&oid(&set, "stores/s1/products/p1"))
    );

    // products under an unmapped parent; transactions with a DBRef and an id array.
    let p2 = one(&world, "products", doc! { "firestoreId": "p2" })
        .await
        .unwrap();
    assert_eq!(p2.get_str("storeId").unwrap(), "stores/s1");
    assert_eq!(p2.get("price"), Some(&dec("20.25")));
    assert!(
        one(&world, "stores", doc! { "_id": "s1" }).await.is_some(),
        "unmapped: defaults"
    );
    let t1 = one(&world, "transactions", doc! { "txId": "t1" })
        .await
        .unwrap();
    assert_eq!(
        t1.get_str("walletId").unwrap(),
        "u1",
        "unmapped parent keeps its id"
    );
    assert_eq!(
        t1.get_document("counterparty").unwrap(),
        &doc! { "$ref": "people", "$id": oid(&set, "users/u2") }
    );
    assert_eq!(
        t1.get_array("witnesses").unwrap(),
        &vec![oid(&set, "users/u2"), oid(&set, "users/u3")]
    );

    // stories: `_id` from a field, unmapped fields dropped.
    let st = one(&world, "stories", doc! { "_id": "ann-day-1" })
        .await
        .unwrap();
    assert_eq!(st.get_str("storyId").unwrap(), "st1");
    assert!(!st.contains_key("junk") && !st.contains_key("slug"));

    // Every declared reference resolves, and none of the checks was vacuous.
    let checked = check_references_resolve(&world, &set).await;
    let rules = [
        "content:authorId",
        "content:author",
        "content/{contentId}/comments:authorId",
        "content/{contentId}/likes:userId",
        "orders:userId",
        "orders:items.productId",
        "wallets/{walletId}/transactions:counterparty",
        "wallets/{walletId}/transactions:witnesses",
        "stories:userId",
    ];
    for r in rules {
        assert!(
            checked.get(r).copied().unwrap_or(0) > 0,
            "no reference checked for {r}: {checked:?}"
        );
    }
    assert_eq!(checked["content/{contentId}/comments:authorId"], 4);
    assert_eq!(checked["orders:items.productId"], 2);
}

#[tokio::test]
async fn broken_documents_land_in_dead_letters_with_rule_reason_and_raw_value() {
    let world = World::new("map-dead").await;
    world.write(data(&world).into_iter()).await;
    let out = world.migrate(&["--mappings", &examples_arg()]);
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_DEAD_LETTERS),
        "{}",
        stderr(&out)
    );
    let by_id = dead_letters(&world).await;
    assert_eq!(by_id.len(), BROKEN, "{by_id:#?}");
    let get = |path: &str| {
        by_id
            .get(&world.full_name(path))
            .unwrap_or_else(|| panic!("{path} not dead-lettered: {by_id:#?}"))
    };

    let nameless = get("users/nameless");
    assert_eq!(nameless.get_str("collection").unwrap(), "users");
    assert_eq!(nameless.get_str("rule").unwrap(), "required");
    assert_eq!(nameless.get_str("field").unwrap(), "displayName");
    assert_eq!(
        nameless.get_str("reason").unwrap(),
        "required field `displayName` is missing"
    );
    let raw = nameless.get_document("raw").unwrap();
    assert_eq!(
        raw.get_str("name").unwrap(),
        world.full_name("users/nameless")
    );
    assert!(!raw
        .get_document("fields")
        .unwrap()
        .contains_key("displayName"));

    let badtotal = get("orders/badtotal");
    assert_eq!(badtotal.get_str("rule").unwrap(), "cast");
    assert_eq!(badtotal.get_str("field").unwrap(), "total");
    assert_eq!(badtotal.get_str("value").unwrap(), "abc", "the raw value");
    assert!(badtotal
        .get_str("reason")
        .unwrap()
        .contains("cannot cast string \"abc\" to decimal128"));

    let dotted = get("orders/dotted");
    assert_eq!(dotted.get_str("rule").unwrap(), "field-name");
    assert_eq!(dotted.get_str("field").unwrap(), "x.y");

    // One of c1's four comments did not fit `max = 3`; which one depends on the order
    // the writes arrived in, but every comment is either in the array or here.
    let overflow: Vec<&Document> = by_id
        .iter()
        .filter(|(k, _)| k.contains("content/c1/comments/"))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(overflow.len(), 1);
    let reason = overflow[0].get_str("reason").unwrap();
    assert!(
        reason.contains("embed-limit: array `comments`") && reason.contains("max = 3"),
        "{reason}"
    );
    assert_eq!(overflow[0].get_str("rule").unwrap(), "embed-limit");
    let c1 = one(&world, "content", doc! { "firestoreId": "c1" })
        .await
        .unwrap();
    let mut landed: Vec<String> = c1
        .get_array("comments")
        .unwrap()
        .iter()
        .map(|c| c.as_document().unwrap().get_str("_id").unwrap().to_string())
        .collect();
    landed.push(
        overflow[0]
            .get_str("_id")
            .unwrap()
            .rsplit("documents/")
            .next()
            .unwrap()
            .to_string(),
    );
    landed.sort();
    assert_eq!(
        landed,
        (1..=4)
            .map(|k| format!("content/c1/comments/k{k}"))
            .collect::<Vec<_>>()
    );
}

/// `--max-dead-letters` stops the run once the limit is passed, with the position kept:
/// a rerun without the limit finishes, and every document is then either in the target
/// or in the dead letters, exactly as after one uninterrupted run.
#[tokio::test]
async fn max_dead_letters_stops_the_run_and_a_rerun_finishes_it() {
    let world = World::new("map-dlmax").await;
    let docs = data(&world);
    let total = docs.len();
    world.write(docs.into_iter()).await;
    let summary_path = std::env::temp_dir().join(format!("{}-summary.json", world.database));
    let summary_arg = summary_path.to_string_lossy().into_owned();
    // One range read in `__name__` order, small batches: the stop comes mid-stream.
    let stopped = world.migrate(&[
        "--mappings",
        &examples_arg(),
        "--max-dead-letters",
        "1",
        "--batch-size",
        "2",
        "--summary-json",
        &summary_arg,
    ]);
    assert_eq!(
        stopped.status.code(),
        Some(common::EXIT_DEAD_LETTER_LIMIT),
        "{}\n{}",
        stdout(&stopped),
        stderr(&stopped)
    );
    assert!(
        stderr(&stopped).contains("more than 1 documents were dead-lettered"),
        "{}",
        stderr(&stopped)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let stored = all(&world, "_fireshift_dead_letters").await.len();
    assert!(stored <= 1, "the limit lets at most 1 dead letter through");
    assert!(summary["dead_lettered"].as_u64().unwrap() <= 1, "{summary}");
    assert!(
        (summary["read"].as_u64().unwrap() as usize) < total,
        "stopped before the end: {summary}"
    );
    // Nothing from the stopped run is lost: the rerun resumes and ends like a full run.
    let finished = world.migrate(&["--mappings", &examples_arg()]);
    assert_eq!(
        finished.status.code(),
        Some(common::EXIT_DEAD_LETTERS),
        "{}",
        stderr(&finished)
    );
    assert_eq!(all(&world, "_fireshift_dead_letters").await.len(), BROKEN);
    let reference = World::new("map-dlmax-ref").await;
    reference.write(data(&reference).into_iter()).await;
    let out = reference.migrate(&["--mappings", &examples_arg()]);
    assert_eq!(out.status.code(), Some(common::EXIT_DEAD_LETTERS));
    // c1 holds one comment more than its `max = 3`: which one overflowed depends on the
    // order the writes arrived in, so its array is compared by size only. The two
    // worlds' documents were written at different times: metadata fields differ.
    let without_c1_comments =
        |mut c: BTreeMap<String, BTreeMap<String, BTreeMap<String, Bson>>>| {
            for d in c.values_mut().flat_map(|docs| docs.values_mut()) {
                d.remove("firestoreCreatedAt");
                d.remove("firestoreUpdatedAt");
            }
            let c1 = oid(&set(), "content/c1").as_object_id().unwrap().to_hex();
            let comments = c
                .get_mut("content")
                .and_then(|docs| docs.iter_mut().find(|(id, _)| id.contains(&c1)))
                .and_then(|(_, d)| d.remove("comments"))
                .and_then(|a| a.as_array().map(Vec::len));
            assert_eq!(comments, Some(3));
            c
        };
    assert_eq!(
        without_c1_comments(canonical(&world).await),
        without_c1_comments(canonical(&reference).await)
    );
    let _ = std::fs::remove_file(&summary_path);
}

#[tokio::test]
async fn embedded_subcollections_are_idempotent_across_reruns() {
    let world = World::new("map-embed").await;
    let mut docs = vec![doc_at("content/c9", vec![("caption", s("v1"))])];
    // Written child-first in key order across several batches: order must not matter.
    for k in ["k3", "k1", "k2"] {
        docs.push(doc_at(
            &format!("content/c9/comments/{k}"),
            vec![("text", s(k))],
        ));
    }
    // A child under a parent that does not exist creates a parent holding only the array.
    docs.push(doc_at(
        "content/ghost/comments/k1",
        vec![("text", s("orphan"))],
    ));
    world.write(docs.into_iter()).await;
    let args = [
        "--mappings",
        &examples_arg(),
        "--batch-size",
        "1",
        "--in-flight",
        "4",
    ];
    let first = world.migrate(&args);
    // Every document lands; the text index is on `people`, which got no document, so it
    // is skipped rather than refused: exit 0.
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        world
            .db
            .list_collection_names()
            .await
            .unwrap()
            .iter()
            .all(|c| c == "content" || c.starts_with("_fireshift")),
        "no empty collection for the indexes of mappings without documents"
    );
    // Compared field by field: the test server orders the fields of a document that a
    // pipeline upsert inserts by name, and of one it updates as written (real MongoDB
    // keeps the written order in both cases).
    let before = canonical(&world).await;
    let again = world.migrate(&[&args[..], &["--restart"]].concat());
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(canonical(&world).await, before, "a rerun changes nothing");

    let set = set();
    let c9 = one(&world, "content", doc! { "_id": oid(&set, "content/c9") })
        .await
        .unwrap();
    assert_eq!(c9.get_str("caption").unwrap(), "v1");
    let ids: Vec<&str> = c9
        .get_array("comments")
        .unwrap()
        .iter()
        .map(|c| c.as_document().unwrap().get_str("_id").unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            "content/c9/comments/k1",
            "content/c9/comments/k2",
            "content/c9/comments/k3"
        ]
    );
    let ghost = one(
        &world,
        "content",
        doc! { "_id": oid(&set, "content/ghost") },
    )
    .await
    .unwrap();
    assert_eq!(ghost.keys().collect::<Vec<_>>(), vec!["_id", "comments"]);

    // The parent changes in the source: its rewrite keeps the embedded array.
    world
        .write(vec![doc_at("content/c9", vec![("caption", s("v2"))])].into_iter())
        .await;
    let third = world.migrate(&[&args[..], &["--restart"]].concat());
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    let c9 = one(&world, "content", doc! { "_id": oid(&set, "content/c9") })
        .await
        .unwrap();
    assert_eq!(c9.get_str("caption").unwrap(), "v2");
    assert_eq!(c9.get_array("comments").unwrap().len(), 3);
}

/// Every data collection, each document with its top-level fields in name order.
async fn canonical(world: &World) -> BTreeMap<String, BTreeMap<String, BTreeMap<String, Bson>>> {
    world
        .snapshot()
        .await
        .into_iter()
        .map(|(c, docs)| {
            let docs = docs
                .into_iter()
                .map(|(id, raw)| (id, raw.to_document().unwrap().into_iter().collect()))
                .collect();
            (c, docs)
        })
        .collect()
}

#[tokio::test]
async fn dry_run_with_mappings_writes_nothing_and_reports_what_would_be_written() {
    let world = World::new("map-dry").await;
    let docs = data(&world);
    let total = docs.len();
    world.write(docs.into_iter()).await;
    let out = world.migrate(&["--mappings", &examples_arg(), "--dry-run"]);
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_DEAD_LETTERS),
        "{}",
        stderr(&out)
    );
    let text = stdout(&out);
    // The embed-limit overflow is only known to the server, so a dry run counts the
    // three conversion failures.
    let converted = total - (BROKEN - 1);
    assert!(
        text.contains(&format!(
            "{total} documents read, {converted} would be written (dry run)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} documents dead-lettered", BROKEN - 1)),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .eq(["content/{}/likes", "likes"])),
        "targets are listed: {text}"
    );
    assert!(
        world.db.list_collection_names().await.unwrap().is_empty(),
        "a dry run writes nothing, not even checkpoints or dead letters"
    );
}

#[tokio::test]
async fn indexes_are_built_as_declared_and_a_refused_text_index_is_reported() {
    let world = World::new("map-indexes").await;
    // Only collections that exist get their indexes: these four received a document.
    for collection in ["people", "content", "likes", "stories"] {
        world
            .db
            .collection::<Document>(collection)
            .insert_one(doc! { "_id": "seed" })
            .await
            .unwrap();
    }
    let run = || world.indexes(&examples_arg());
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(EXIT_INDEXES_NOT_ALL_BUILT),
        "{}",
        stderr(&out)
    );
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no report line for {name}: {text}"))
            .to_string()
    };
    assert!(
        line("bio_text").contains("REFUSED by the server (code 67)"),
        "{text}"
    );
    for name in [
        "email_1",
        "location_2dsphere",
        "authorId_1_createdAt_-1",
        "comments.authorId_1",
        "contentId_1_userId_1",
        "expires_ttl",
    ] {
        assert!(line(name).contains("created"), "{text}");
    }
    assert!(
        text.ends_with("7 indexes: 6 created, 0 already existed, 1 refused, 0 clash, 0 failed\n"),
        "{text}"
    );

    let indexes = |collection: &'static str| {
        let db = world.db.clone();
        async move {
            let specs: Vec<mongodb::IndexModel> = db
                .collection::<Document>(collection)
                .list_indexes()
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            specs
                .into_iter()
                .map(|m| {
                    let name = m.options.as_ref().and_then(|o| o.name.clone()).unwrap();
                    (name, m)
                })
                .collect::<BTreeMap<_, _>>()
        }
    };
    let people = indexes("people").await;
    let email = &people["email_1"];
    assert_eq!(email.keys, doc! { "email": 1 });
    let opts = email.options.as_ref().unwrap();
    assert_eq!(opts.unique, Some(true));
    assert_eq!(
        opts.partial_filter_expression,
        Some(doc! { "email": { "$exists": true } })
    );
    assert_eq!(
        people["location_2dsphere"].keys,
        doc! { "location": "2dsphere" }
    );
    assert!(!people.contains_key("bio_text"));
    let content = indexes("content").await;
    assert_eq!(
        content["authorId_1_createdAt_-1"].keys,
        doc! { "authorId": 1, "createdAt": -1 }
    );
    assert_eq!(
        content["comments.authorId_1"].keys,
        doc! { "comments.authorId": 1 }
    );
    let likes = indexes("likes").await;
    assert_eq!(
        likes["contentId_1_userId_1"]
            .options
            .as_ref()
            .unwrap()
            .unique,
        Some(true)
    );
    let stories = indexes("stories").await;
    assert_eq!(
        stories["expires_ttl"]
            .options
            .as_ref()
            .unwrap()
            .expire_after,
        Some(std::time::Duration::from_secs(0))
    );

    // Idempotent: a second build changes nothing and says so.
    let again = run();
    assert_eq!(again.status.code(), Some(EXIT_INDEXES_NOT_ALL_BUILT));
    assert!(
        stdout(&again)
            .ends_with("7 indexes: 0 created, 6 already existed, 1 refused, 0 clash, 0 failed\n"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test]
async fn indexes_clashing_with_existing_ones_are_reported_by_name_and_left_alone() {
    let world = World::new("map-clash").await;
    // Made by hand before the build: the declared email_1 name on other keys, and the
    // declared keys of authorId_1_createdAt_-1 under another name.
    world
        .db
        .run_command(doc! { "createIndexes": "people", "indexes": [{ "key": { "name": 1 }, "name": "email_1" }] })
        .await
        .unwrap();
    world
        .db
        .run_command(doc! { "createIndexes": "content", "indexes": [{ "key": { "authorId": 1, "createdAt": -1 }, "name": "by_author" }] })
        .await
        .unwrap();
    let out = world.indexes(&examples_arg());
    assert_eq!(out.status.code(), Some(EXIT_INDEXES_NOT_ALL_BUILT));
    let text = stdout(&out);
    let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap().to_string();
    assert!(
        line("email_1").contains("CLASHES with an existing index (code 86)"),
        "{text}"
    );
    assert!(
        line("authorId_1_createdAt_-1").contains("CLASHES with an existing index (code 85)"),
        "{text}"
    );
    assert!(text.contains("1 refused, 2 clash"), "{text}");
    // Nothing was dropped or changed.
    let names: Vec<String> = world
        .db
        .collection::<Document>("people")
        .list_index_names()
        .await
        .unwrap();
    assert_eq!(
        names.len(),
        3,
        "_id, email_1 by hand, location_2dsphere: {names:?}"
    );
}

#[test]
fn a_broken_file_is_reported_alone_and_a_folder_without_mappings_is_an_error() {
    let run = |dir: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_fireshift"))
            .arg("check")
            .arg("--mappings")
            .arg(dir)
            .output()
            .unwrap()
    };
    // The seed app's mappings with one syntax error in users.toml, which dozens of
    // other files reference.
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/mixillo");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let users = dir.path().join("users.toml");
    let text = std::fs::read_to_string(&users).unwrap();
    std::fs::write(
        &users,
        text.replacen("target = \"users\"", "target = = \"users\"", 1),
    )
    .unwrap();
    let out = run(dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("users.toml:") && err.contains("TOML syntax error"),
        "{err}"
    );
    assert!(
        err.contains("1 error in 1 file"),
        "no follow-on errors: {err}"
    );
    // The folder above the datasets, by mistake: an error, naming them.
    let parent = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let out = run(&parent);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no mapping files"), "{err}");
    assert!(err.contains("mappings/mixillo"), "{err}");
}

#[test]
fn check_accepts_the_examples_and_reports_every_error_with_file_line_and_fix() {
    let run = |dir: &str| {
        Command::new(env!("CARGO_BIN_EXE_fireshift"))
            .args(["check", "--mappings", dir])
            .output()
            .unwrap()
    };
    let ok = run(&examples_arg());
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert!(
        stdout(&ok).contains("8 mappings, 7 indexes, all valid"),
        "{}",
        stdout(&ok)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        "collection = \"users\"\ntagret = \"people\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("posts.toml"),
        "collection = \"posts\"\n[fields]\nauthorId = { ref = \"user\" }\nprice = { cast = \"int32\", default = \"abc\" }\n",
    )
    .unwrap();
    let bad = run(dir.path().to_str().unwrap());
    assert_eq!(bad.status.code(), Some(1));
    let err = stderr(&bad);
    let d = dir.path().display();
    for expected in [
        format!("{d}/posts.toml:3:20: `ref = \"user\"` of `authorId` names a collection that has no mapping file\n    help: did you mean `users`?"),
        format!("{d}/posts.toml:4:37: default of `price` is impossible: cannot cast string \"abc\" to int32"),
        format!("{d}/users.toml:2:1: unknown key `tagret` at the top level\n    help: did you mean `target`?"),
        "3 errors in 2 files".to_string(),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn migrate_refuses_broken_mappings_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        "collection = \"users\"\n[id]\nstrategy = \"uuid\"\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    // Nothing listens on these ports: reaching them would fail (slowly) with another error.
    let out = Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "migrate",
            "--project",
            "p",
            "--database",
            "d",
            "--retry-timeout",
            "30",
        ])
        .args([
            "--mongodb-uri",
            "mongodb://127.0.0.1:9/?directConnection=true",
        ])
        .arg("--mappings")
        .arg(dir.path())
        .env("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("invalid mappings"), "{err}");
    assert!(
        err.contains("users.toml:3:12: unknown variant `uuid`"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "no connection was tried"
    );
}

/// `verify --mappings` transforms each source document as migrate did: embedded children
/// are compared as elements of their parent's array (a row of their own), the parent
/// without those arrays, and dead letters count as accounted for. Tampering with an
/// embedded child is then reported on that child, with its field path.
#[tokio::test]
async fn verify_with_mappings_compares_embedded_children_and_finds_tampering() {
    let world = World::new("map-verify").await;
    world.write(data(&world).into_iter()).await;
    let out = world.migrate(&["--mappings", &examples_arg()]);
    assert_eq!(out.status.code(), Some(common::EXIT_DEAD_LETTERS));
    let dir = tempfile::tempdir().unwrap();
    let mappings = examples_arg();
    let verify = || {
        let (out, json) =
            common::verify(&world, dir.path(), &["--mappings", &mappings, "--new-run"]);
        (out, json.expect("verify wrote its JSON report"))
    };
    let row = |r: &serde_json::Value, name: &str| {
        r["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["collection"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {r:#}"))
            .clone()
    };

    let (out, r) = verify();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    // content/c1 has 4 comments (one over `max = 3`, dead-lettered) and c2 has 1.
    let comments = row(&r, "content[comments]");
    assert_eq!(comments["source"], 5, "{comments:#}");
    assert_eq!(comments["expected_in_target"], 4, "{comments:#}");
    assert_eq!(comments["parity"], true, "{comments:#}");
    assert_eq!(comments["dead_lettered"], 1, "{comments:#}");
    assert_eq!(comments["target"], 4, "{comments:#}");
    assert_eq!(row(&r, "content")["target"], 2);
    assert_eq!(row(&r, "content")["parity"], true);

    // Change c2's comment, remove one of c1's, change a parent field next to the arrays.
    let set = set();
    let content = world.db.collection::<Document>("content");
    content
        .update_one(
            doc! { "_id": oid(&set, "content/c2") },
            doc! { "$set": { "comments.0.text": "tampered" } },
        )
        .await
        .unwrap();
    let c1 = one(&world, "content", doc! { "_id": oid(&set, "content/c1") })
        .await
        .unwrap();
    let removed = c1.get_array("comments").unwrap()[0]
        .as_document()
        .unwrap()
        .get_str("_id")
        .unwrap()
        .to_string();
    content
        .update_one(
            doc! { "_id": oid(&set, "content/c1") },
            doc! { "$pull": { "comments": { "_id": &removed } }, "$set": { "caption": "edited" } },
        )
        .await
        .unwrap();

    let (out, r) = verify();
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_MISMATCHES),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let mut found: Vec<(String, String, String, Vec<String>)> = r["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["collection"].as_str().unwrap().to_string(),
                m["id"].to_string(),
                m["diffs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["path"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    found.sort();
    let c1_id = r["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["collection"] == "content")
        .map(|m| m["id"].to_string())
        .unwrap_or_default();
    assert_eq!(
        found,
        vec![
            (
                "differing".to_string(),
                "content".to_string(),
                c1_id,
                vec!["caption".to_string()]
            ),
            (
                "differing".to_string(),
                "content[comments]".to_string(),
                "\"content/c2/comments/k1\"".to_string(),
                vec!["text".to_string()]
            ),
            (
                "missing".to_string(),
                "content[comments]".to_string(),
                format!("\"{removed}\""),
                vec![]
            ),
        ],
        "{r:#}"
    );
    assert_eq!(row(&r, "content[comments]")["target"], 3);
    let _ = std::fs::remove_dir_all(&dir);
}
