//! End-to-end tests of `fireshift::dual` against the Firestore emulator and the
//! MongoDB-wire server. Each test has its own emulator project and MongoDB database.
//! MongoDB outages are made with a TCP proxy the test owns (the shared server is never
//! stopped): the store talks to MongoDB through it, and the test cuts, stalls or
//! restores it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::proxy::TcpProxy;
use common::{example_binary, http, mongodb_uri, World};
use fireshift::dual::{
    Direction, DualConfig, DualError, DualStore, Mode, Query, Secondary, WriteOp,
};
use fireshift::mapping::item::{WriteItem, WriteKind};
use fireshift::mapping::transform::Transformer;
use fireshift::mongo::MongoEndpoint;
use fireshift::sink::guard::{self, GUARD_FIELD};
use fireshift::sink::{Batch, MongoSink, SinkConfig};
use fireshift::verify::compare::{diff_documents, documents_equal};
use futures::StreamExt;
use gcloud_sdk::google::firestore::v1::{
    batch_get_documents_response, run_query_request, structured_query, value::ValueType,
    BatchGetDocumentsRequest, Document, RunQueryRequest, StructuredQuery, Value,
};
use mongodb::bson::{doc, Bson, RawDocumentBuf};
use tokio::io::AsyncReadExt;

// ----- helpers ----------------------------------------------------------------------

fn s(v: &str) -> Value {
    Value {
        value_type: Some(ValueType::StringValue(v.into())),
    }
}

fn i(v: i64) -> Value {
    Value {
        value_type: Some(ValueType::IntegerValue(v)),
    }
}

fn fields(pairs: &[(&str, Value)]) -> fireshift::dual::Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn config(world: &World, uri: &str) -> DualConfig {
    let mut c = DualConfig::new(&world.project, uri, &world.database);
    c.settings_poll = None;
    c.secondary_timeout = Duration::from_secs(1);
    c.outbox_grace = Duration::from_millis(500);
    c.reconcile_interval = Duration::from_millis(300);
    c.reconcile_backoff.initial_backoff = Duration::from_millis(50);
    c.reconcile_backoff.max_backoff = Duration::from_millis(500);
    c
}

async fn store(world: &World, uri: &str, default_mode: Mode) -> DualStore {
    let mut c = config(world, uri);
    c.default_mode = default_mode;
    DualStore::connect(c).await.expect("dual store")
}

/// Documents of one Firestore collection (a root collection id), by relative path.
async fn fs_collection(world: &World, collection: &str) -> BTreeMap<String, Document> {
    let root = format!("projects/{}/databases/(default)/documents", world.project);
    let req = RunQueryRequest {
        parent: root.clone(),
        query_type: Some(run_query_request::QueryType::StructuredQuery(
            StructuredQuery {
                from: vec![structured_query::CollectionSelector {
                    collection_id: collection.into(),
                    all_descendants: false,
                }],
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let mut stream = world
        .firestore
        .client()
        .run_query(req)
        .await
        .unwrap()
        .into_inner();
    let mut out = BTreeMap::new();
    while let Some(r) = stream.next().await {
        if let Some(d) = r.unwrap().document {
            out.insert(d.name[root.len() + 1..].to_string(), d);
        }
    }
    out
}

async fn fs_get(world: &World, rel: &str) -> Option<Document> {
    let name = world.full_name(rel);
    let req = BatchGetDocumentsRequest {
        database: format!("projects/{}/databases/(default)", world.project),
        documents: vec![name],
        ..Default::default()
    };
    let mut stream = world
        .firestore
        .client()
        .batch_get_documents(req)
        .await
        .unwrap()
        .into_inner();
    while let Some(r) = stream.next().await {
        if let Some(batch_get_documents_response::Result::Found(d)) = r.unwrap().result {
            return Some(d);
        }
    }
    None
}

async fn mongo_get(world: &World, collection: &str, id: &str) -> Option<RawDocumentBuf> {
    world
        .db
        .collection::<RawDocumentBuf>(collection)
        .find_one(doc! {"_id": id})
        .await
        .unwrap()
}

/// Compares a root collection on both sides through the default mapping (the guard
/// field included): every Firestore document must be in MongoDB, transformed and
/// stamped with its update time, and MongoDB must hold no other document. Returns the
/// problems found.
async fn parity(world: &World, collection: &str) -> Vec<String> {
    let transformer = Transformer::default();
    let fs = fs_collection(world, collection).await;
    let mongo = world.raw_docs(collection).await;
    let mut problems = Vec::new();
    for (rel, d) in &fs {
        let t = transformer.apply(d).expect("the default mapping converts");
        let t = guard::stamp_transformed(t, d, Some(GUARD_FIELD)).unwrap();
        let id = rel.rsplit('/').next().unwrap();
        match mongo.get(id) {
            None => problems.push(format!("{rel}: missing in MongoDB")),
            Some(m) => {
                if !documents_equal(&t.item.doc, m).unwrap() {
                    let (diffs, _) = diff_documents(&t.item.doc, m, 5).unwrap();
                    problems.push(format!(
                        "{rel}: differs at {:?}",
                        diffs.iter().map(|d| &d.path).collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    for id in mongo.keys() {
        if !fs.contains_key(&format!("{collection}/{id}")) {
            problems.push(format!("{collection}/{id}: in MongoDB only"));
        }
    }
    problems
}

async fn outbox_depth(store: &DualStore) -> u64 {
    store.outbox_stats().await.expect("outbox stats").0
}

// ----- a TCP proxy in front of the shared MongoDB server ------------------------------

/// A proxy to the shared MongoDB server (tests/common/proxy.rs).
async fn mongo_proxy() -> TcpProxy {
    TcpProxy::to_mongodb().await
}

// ----- the guard on the server --------------------------------------------------------

#[tokio::test]
async fn guarded_upserts_keep_the_newer_document_whatever_the_order() {
    let world = World::new("dual-guard").await;
    let config = SinkConfig {
        guard_field: Some(GUARD_FIELD.into()),
        ..SinkConfig::default()
    };
    let sink = MongoSink::connect(&MongoEndpoint::new(mongodb_uri()), &world.database, config)
        .await
        .unwrap();
    let item = |v: &str, t: i64| {
        let mut d = RawDocumentBuf::from_document(&doc! {"_id": "u1", "v": v}).unwrap();
        guard::stamp(&mut d, GUARD_FIELD, t).unwrap();
        WriteItem {
            source_path: "users/u1".into(),
            id: Bson::String("u1".into()),
            doc: d,
            literal: false,
            kind: WriteKind::Replace,
        }
    };
    let write = |it: WriteItem| {
        let sink = sink.clone();
        async move {
            let mut b = Batch::new("users");
            b.push(it);
            let r = sink.write(&b).await.unwrap();
            assert!(r.failures.is_empty(), "{:?}", r.failures);
        }
    };
    // Newer first, then an older snapshot: the newer stays.
    write(item("new", 2_000)).await;
    write(item("old", 1_000)).await;
    let d = mongo_get(&world, "users", "u1").await.unwrap();
    assert_eq!(d.get_str("v").unwrap(), "new");
    assert_eq!(guard::guard_time(&d, GUARD_FIELD), Some(2_000));
    // A newer one replaces; the same time again is a no-op replacement.
    write(item("newer", 3_000)).await;
    write(item("newer", 3_000)).await;
    let d = mongo_get(&world, "users", "u1").await.unwrap();
    assert_eq!(d.get_str("v").unwrap(), "newer");
    // Without the guard the older snapshot would win: the guard is what kept it.
    let plain = MongoSink::connect(
        &MongoEndpoint::new(mongodb_uri()),
        &world.database,
        SinkConfig::default(),
    )
    .await
    .unwrap();
    let mut b = Batch::new("users");
    b.push(item("old", 1_000));
    plain.write(&b).await.unwrap();
    let d = mongo_get(&world, "users", "u1").await.unwrap();
    assert_eq!(d.get_str("v").unwrap(), "old");
}

// ----- (a) each mode routes writes and reads where it says -----------------------------

#[tokio::test]
async fn each_mode_writes_and_reads_where_it_says() {
    let world = World::new("dual-modes").await;
    let store = store(&world, &mongodb_uri(), Mode::FirestoreOnly).await;
    let bg = store.spawn_background();

    // FirestoreOnly: Firestore only.
    let r = store
        .create("users/fo", fields(&[("name", s("Fo")), ("age", i(1))]))
        .await
        .unwrap();
    assert_eq!(
        (r.mode, r.secondary),
        (Mode::FirestoreOnly, Secondary::None)
    );
    assert!(fs_get(&world, "users/fo").await.is_some());
    assert!(mongo_get(&world, "users", "fo").await.is_none());
    assert_eq!(
        store
            .get("users/fo")
            .await
            .unwrap()
            .unwrap()
            .get_str("name")
            .unwrap(),
        "Fo"
    );

    // DualReadFirestore: both, reads from Firestore.
    store.set_mode("users", Mode::DualReadFirestore);
    let r = store
        .create(
            "users/a",
            fields(&[("name", s("Ann")), ("age", i(30)), ("city", s("Oslo"))]),
        )
        .await
        .unwrap();
    assert_eq!(r.secondary, Secondary::Written);
    let fs = fs_get(&world, "users/a").await.unwrap();
    let m = mongo_get(&world, "users", "a").await.unwrap();
    assert_eq!(m.get_str("name").unwrap(), "Ann");
    assert_eq!(
        guard::guard_time(&m, GUARD_FIELD),
        Some(guard::timestamp_nanos(fs.update_time.as_ref().unwrap())),
        "MongoDB carries the Firestore update time"
    );
    // Merge update: MongoDB receives the full state, not just the changed field.
    store
        .update(
            "users/a",
            vec![("age".into(), Some(i(31))), ("city".into(), None)],
        )
        .await
        .unwrap();
    let m = mongo_get(&world, "users", "a").await.unwrap();
    assert_eq!(m.get_str("name").unwrap(), "Ann");
    assert_eq!(m.get_i64("age").unwrap(), 31);
    assert!(m.get("city").unwrap().is_none(), "deleted field is gone");
    // Reads come from Firestore: a tampered MongoDB copy is not what the caller sees.
    world
        .db
        .collection::<mongodb::bson::Document>("users")
        // A newer guard time keeps the reconciler from restoring it during the test.
        .update_one(
            doc! {"_id": "a"},
            doc! {"$set": {"name": "TAMPERED", GUARD_FIELD: i64::MAX}},
        )
        .await
        .unwrap();
    let got = store.get("users/a").await.unwrap().unwrap();
    assert_eq!(got.get_str("name").unwrap(), "Ann");
    assert!(
        !got.contains_key(GUARD_FIELD),
        "the guard is not shown to callers"
    );
    assert!(matches!(
        store.create("users/a", fields(&[])).await,
        Err(DualError::AlreadyExists { .. })
    ));
    assert!(matches!(
        store
            .update("users/none", vec![("x".into(), Some(i(1)))])
            .await,
        Err(DualError::NotFound { .. })
    ));

    // DualReadMongo: both, reads from MongoDB (the tampered copy shows).
    store.set_mode("users", Mode::DualReadMongo);
    let got = store.get("users/a").await.unwrap().unwrap();
    assert_eq!(got.get_str("name").unwrap(), "TAMPERED");
    store
        .set_doc("users/b", fields(&[("name", s("Bo")), ("age", i(40))]))
        .await
        .unwrap();
    assert!(fs_get(&world, "users/b").await.is_some());
    assert_eq!(
        mongo_get(&world, "users", "b")
            .await
            .unwrap()
            .get_i64("age")
            .unwrap(),
        40
    );
    // Queries: equality, order, limit — from MongoDB in this mode, Firestore before.
    store
        .set_doc("users/c", fields(&[("name", s("Cy")), ("age", i(40))]))
        .await
        .unwrap();
    let q = Query::new()
        .eq("age", i(40))
        .order_by("name", Direction::Descending)
        .limit(5);
    let from_mongo = store.query("users", &q).await.unwrap();
    let names: Vec<&str> = from_mongo
        .iter()
        .map(|d| d.get_str("name").unwrap())
        .collect();
    assert_eq!(names, ["Cy", "Bo"]);
    store.set_mode("users", Mode::DualReadFirestore);
    let from_fs = store.query("users", &q).await.unwrap();
    assert_eq!(
        from_fs, from_mongo,
        "both sides answer the same query alike"
    );
    store.set_mode("users", Mode::DualReadMongo);

    // Delete reaches both.
    store.delete("users/b").await.unwrap();
    assert!(fs_get(&world, "users/b").await.is_none());
    assert!(mongo_get(&world, "users", "b").await.is_none());
    assert!(store.get("users/b").await.unwrap().is_none());

    // Subcollections land in their own collection with the parent key, both sides.
    store.set_mode("content/{}/comments", Mode::DualReadMongo);
    store
        .set_doc("content/c1/comments/k1", fields(&[("text", s("hi"))]))
        .await
        .unwrap();
    let k = world
        .db
        .collection::<mongodb::bson::Document>("content.comments")
        .find_one(doc! {"_id": "content/c1/comments/k1"})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k.get_str("_parent").unwrap(), "c1");
    let listed = store
        .query("content/c1/comments", &Query::new())
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    // MongoOnly: MongoDB only (Firestore keeps its last state), reads from MongoDB.
    store.set_mode("users", Mode::MongoOnly);
    store
        .create("users/m", fields(&[("name", s("Mo")), ("age", i(5))]))
        .await
        .unwrap();
    store
        .update(
            "users/m",
            vec![
                ("age".into(), Some(i(6))),
                ("stats.views".into(), Some(i(7))),
            ],
        )
        .await
        .unwrap();
    assert!(fs_get(&world, "users/m").await.is_none());
    let m = mongo_get(&world, "users", "m").await.unwrap();
    assert_eq!(
        (m.get_str("name").unwrap(), m.get_i64("age").unwrap()),
        ("Mo", 6)
    );
    assert_eq!(
        m.get_document("stats").unwrap().get_i64("views").unwrap(),
        7
    );
    // MongoDB is the primary now: a set wins even over a stored guard time that is
    // ahead of this host's clock, and moves the guard past it.
    world
        .db
        .collection::<mongodb::bson::Document>("users")
        .update_one(
            doc! {"_id": "m"},
            doc! {"$set": {GUARD_FIELD: i64::MAX - 10}},
        )
        .await
        .unwrap();
    store
        .set_doc("users/m", fields(&[("name", s("Mo2"))]))
        .await
        .unwrap();
    let m = mongo_get(&world, "users", "m").await.unwrap();
    assert_eq!(m.get_str("name").unwrap(), "Mo2");
    assert_eq!(guard::guard_time(&m, GUARD_FIELD), Some(i64::MAX - 9));
    assert_eq!(
        store
            .get("users/m")
            .await
            .unwrap()
            .unwrap()
            .get_str("name")
            .unwrap(),
        "Mo2"
    );
    store.delete("users/c").await.unwrap();
    assert!(mongo_get(&world, "users", "c").await.is_none());
    assert!(
        fs_get(&world, "users/c").await.is_some(),
        "Firestore is no longer written"
    );

    // Metrics count what happened.
    let text = store.metrics().render();
    assert!(text.contains(
        r#"fireshift_dual_writes_total{collection="users",mode="dual_read_firestore",outcome="ok"}"#
    ));
    assert!(text.contains(r#"fireshift_dual_reads_total{collection="users",source="mongodb"}"#));
    bg.shutdown().await;
}

#[tokio::test]
async fn a_mapping_refusal_fails_the_call_before_anything_is_written() {
    let world = World::new("dual-refuse").await;
    let store = store(&world, &mongodb_uri(), Mode::DualReadFirestore).await;
    let err = store
        .set_doc("users/x", fields(&[(GUARD_FIELD, i(1))]))
        .await
        .unwrap_err();
    assert!(matches!(err, DualError::Mapping { .. }), "{err}");
    assert!(fs_get(&world, "users/x").await.is_none());
    assert!(mongo_get(&world, "users", "x").await.is_none());
}

// ----- shadow reads ----------------------------------------------------------------------

#[tokio::test]
async fn shadow_reads_count_matches_and_mismatches_without_changing_results() {
    let world = World::new("dual-shadow").await;
    let store = store(&world, &mongodb_uri(), Mode::DualReadFirestore).await;
    store.set_shadow_read_fraction(1.0);
    store
        .set_doc("users/s", fields(&[("name", s("Sam")), ("n", i(1))]))
        .await
        .unwrap();
    let metric = |outcome: &str| {
        format!(r#"fireshift_dual_shadow_reads_total{{collection="users",outcome="{outcome}"}} 1"#)
    };
    // Shadow comparisons run in the background: wait for each one's count.
    let wait_for = |outcome: &'static str| {
        let store = store.clone();
        let want = metric(outcome);
        async move {
            let mut text = String::new();
            for _ in 0..100 {
                text = store.metrics().render();
                if text.contains(&want) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no {want}:\n{text}");
        }
    };
    store.get("users/s").await.unwrap();
    wait_for("match").await;
    // Same guard time, different content: a real mismatch (e.g. a mapping bug).
    world
        .db
        .collection::<mongodb::bson::Document>("users")
        .update_one(doc! {"_id": "s"}, doc! {"$set": {"n": 99i64}})
        .await
        .unwrap();
    let got = store.get("users/s").await.unwrap().unwrap();
    assert_eq!(
        got.get_i64("n").unwrap(),
        1,
        "the caller sees the primary's document"
    );
    wait_for("mismatch").await;
    // In dual_read_mongo the caller sees MongoDB and the shadow reads Firestore.
    store.set_mode("users", Mode::DualReadMongo);
    let got = store.get("users/s").await.unwrap().unwrap();
    assert_eq!(got.get_i64("n").unwrap(), 99);
    let want = r#"fireshift_dual_shadow_reads_total{collection="users",outcome="mismatch"} 2"#;
    for _ in 0..100 {
        if store.metrics().render().contains(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {want}");
}

// ----- (b) MongoDB down during a burst ----------------------------------------------------

#[tokio::test]
async fn mongodb_down_during_a_burst_fills_the_outbox_and_the_reconciler_empties_it() {
    let world = World::new("dual-outage").await;
    let proxy = mongo_proxy().await;
    let store = store(&world, &proxy.mongodb_uri(), Mode::DualReadFirestore).await;
    // Some documents before the outage.
    for n in 0..5 {
        store
            .set_doc(&format!("users/u{n}"), fields(&[("n", i(n))]))
            .await
            .unwrap();
    }
    assert!(parity(&world, "users").await.is_empty());
    // Their entries (no settler runs yet) are replayed and removed.
    store.drain(Duration::from_secs(10)).await.unwrap();
    assert_eq!(outbox_depth(&store).await, 0);

    proxy.cut();
    let results: Vec<_> = futures::stream::iter(0..40i64)
        .map(|n| {
            let store = store.clone();
            async move {
                let path = format!("users/u{}", n % 20);
                match n % 4 {
                    0 => match store
                        .update(&path, vec![("n".into(), Some(i(1000 + n)))])
                        .await
                    {
                        Err(DualError::NotFound { .. }) => {
                            store.set_doc(&path, fields(&[("n", i(n))])).await
                        }
                        r => r,
                    },
                    3 if n % 8 == 3 => store.delete(&path).await,
                    _ => {
                        store
                            .set_doc(&path, fields(&[("n", i(n)), ("w", s("burst"))]))
                            .await
                    }
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in &results {
        let r = r
            .as_ref()
            .expect("every call succeeds while MongoDB is down");
        assert_eq!(r.secondary, Secondary::Deferred);
    }
    let depth = outbox_depth(&store).await;
    assert_eq!(depth, 40, "one durable entry per deferred write");
    // The oldest entry was written during this burst: its age is known and short.
    let (_, oldest) = store.outbox_stats().await.expect("outbox stats");
    let oldest = oldest.expect("an age for the oldest entry");
    assert!(oldest < Duration::from_secs(120), "oldest entry {oldest:?}");
    assert!(
        !parity(&world, "users").await.is_empty(),
        "MongoDB is behind"
    );
    let text = store.metrics().render();
    assert!(text.contains("fireshift_dual_outbox_depth 40"), "{text}");
    assert!(text.contains(r#"fireshift_dual_secondary_failures_total{collection="users"} 40"#));

    // While MongoDB is still down the reconciler records failures and keeps entries.
    let r = store.reconcile_once(true).await.unwrap();
    assert_eq!(r.synced, 0);
    assert_eq!(outbox_depth(&store).await, 40);

    proxy.restore();
    let bg = store.spawn_background();
    let mut depth = u64::MAX;
    for _ in 0..100 {
        depth = outbox_depth(&store).await;
        if depth == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(depth, 0, "the background reconciler empties the outbox");
    let problems = parity(&world, "users").await;
    assert!(problems.is_empty(), "{problems:#?}");
    bg.shutdown().await;

    // The verifier agrees (it ignores the guard field and fireshift's own collections).
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = common::verify(&world, dir.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify: {}",
        common::stdout(&out)
    );
}

// ----- (c) concurrent writers converge ----------------------------------------------------

#[tokio::test]
async fn eight_concurrent_writers_on_the_same_documents_converge() {
    let world = World::new("dual-race").await;
    let store = store(&world, &mongodb_uri(), Mode::DualReadFirestore).await;
    let bg = store.spawn_background();
    let writers: Vec<_> = (0..8i64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..30i64 {
                    let path = format!("docs/d{}", (w + n) % 6);
                    let r = match (w + n) % 7 {
                        0 => store.delete(&path).await,
                        1 | 2 => {
                            store
                                .update(
                                    &path,
                                    vec![
                                        (format!("by.w{w}"), Some(i(n))),
                                        ("last".into(), Some(i(w))),
                                    ],
                                )
                                .await
                        }
                        _ => {
                            store
                                .set_doc(&path, fields(&[("writer", i(w)), ("n", i(n))]))
                                .await
                        }
                    };
                    match r {
                        Ok(_) | Err(DualError::NotFound { .. }) => {}
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    store.drain(Duration::from_secs(30)).await.unwrap();
    let problems = parity(&world, "docs").await;
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(!fs_collection(&world, "docs").await.is_empty());
    bg.shutdown().await;
}

// ----- (d) a backfill during dual writes ---------------------------------------------------

#[tokio::test]
async fn a_guarded_backfill_during_dual_writes_leaves_no_document_older_than_firestore() {
    let world = World::new("dual-backfill").await;
    let mut c = config(&world, &mongodb_uri());
    // No write may be deferred here (no reconciler runs): a loaded machine gets time.
    c.secondary_timeout = Duration::from_secs(20);
    let store = DualStore::connect(c).await.unwrap();
    // History written before dual writes: only in Firestore.
    let ops: Vec<WriteOp> = (0..300)
        .map(|n| WriteOp::Set {
            path: format!("items/i{n:03}"),
            fields: fields(&[("n", i(n)), ("v", i(0)), ("pad", s(&"x".repeat(200)))]),
        })
        .collect();
    for chunk in ops.chunks(100) {
        store.batch(chunk.to_vec()).await.unwrap();
    }
    store.set_mode("items", Mode::DualReadFirestore);
    // Settle confirmations only; no reconciler, so a stale overwrite would stay.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4i64)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut k = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    let path = format!("items/i{:03}", (k * 7 + w * 13) % 300);
                    store
                        .update(
                            &path,
                            vec![("v".into(), Some(i(k))), ("w".into(), Some(i(w)))],
                        )
                        .await
                        .unwrap();
                    k += 1;
                }
                k
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let w2 = World {
        project: world.project.clone(),
        database: world.database.clone(),
        db: world.db.clone(),
        firestore: world.firestore.clone(),
    };
    let out = tokio::task::spawn_blocking(move || {
        w2.migrate(&["--guard-update-time", "--batch-size", "50", "--quiet"])
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut updates = 0;
    for w in writers {
        updates += w.await.unwrap();
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "migrate: {}",
        common::stderr(&out)
    );
    assert!(
        updates > 20,
        "the writers ran during the backfill ({updates} updates)"
    );
    // No entry replay here: what MongoDB holds is what the write path and the backfill
    // left. Every document must be exactly the current Firestore state.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fs = fs_collection(&world, "items").await;
    assert_eq!(fs.len(), 300);
    let mut older = Vec::new();
    for (rel, d) in &fs {
        let id = rel.rsplit('/').next().unwrap();
        let m = mongo_get(&world, "items", id).await.expect("backfilled");
        let fs_time = guard::timestamp_nanos(d.update_time.as_ref().unwrap());
        let m_time = guard::guard_time(&m, GUARD_FIELD).expect("guarded");
        if m_time < fs_time {
            older.push(rel.clone());
        }
    }
    assert!(older.is_empty(), "older than Firestore: {older:?}");
    let problems = parity(&world, "items").await;
    assert!(problems.is_empty(), "{problems:#?}");
}

// ----- (e) a mode switch under load ---------------------------------------------------------

#[tokio::test]
async fn mode_switches_under_load_lose_no_write() {
    let world = World::new("dual-switch").await;
    let mut c = config(&world, &mongodb_uri());
    c.default_mode = Mode::DualReadFirestore;
    c.settings_poll = Some(Duration::from_millis(100));
    let store = DualStore::connect(c.clone()).await.unwrap();
    // A second process of the fleet: follows the settings document by polling.
    let other = DualStore::connect(c).await.unwrap();
    let bg = store.spawn_background();
    let bg_other = other.spawn_background();

    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let writers: Vec<_> = (0..6i64)
        .map(|w| {
            let s = if w % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let (stop, acked) = (stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut n = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    let path = format!("orders/w{w}-{n:04}");
                    s.set_doc(&path, fields(&[("w", i(w)), ("n", i(n))]))
                        .await
                        .unwrap();
                    // An update of an earlier document, so merges cross switches too.
                    if n > 0 {
                        let prev = format!("orders/w{w}-{:04}", n - 1);
                        s.update(&prev, vec![("updated".into(), Some(i(n)))])
                            .await
                            .unwrap();
                    }
                    acked.lock().unwrap().insert(path, n);
                    n += 1;
                }
            })
        })
        .collect();
    for mode in [
        Mode::DualReadMongo,
        Mode::DualReadFirestore,
        Mode::DualReadMongo,
        Mode::MongoOnly,
    ] {
        tokio::time::sleep(Duration::from_millis(400)).await;
        store
            .publish_mode("orders", mode, Duration::from_secs(20))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        other.mode_of("orders/x").unwrap(),
        Mode::MongoOnly,
        "the other process followed"
    );
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.unwrap();
    }
    store.drain(Duration::from_secs(30)).await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 30,
        "load ran across the switches ({} writes)",
        acked.len()
    );
    // Every acknowledged write is readable where reads now go (MongoDB), with its data.
    let mut lost = BTreeSet::new();
    for (path, n) in &acked {
        match store.get(path).await.unwrap() {
            Some(d) if d.get_i64("n").ok() == Some(*n) => {}
            other => {
                lost.insert(format!("{path}: {other:?}"));
            }
        }
    }
    assert!(lost.is_empty(), "lost writes: {lost:#?}");
    // The last update of each writer's previous document also landed.
    let by_writer: BTreeMap<i64, i64> = acked.iter().fold(BTreeMap::new(), |mut m, (p, n)| {
        let w: i64 = p[8..p.find('-').unwrap()].parse().unwrap();
        let e = m.entry(w).or_insert(0);
        *e = (*e).max(*n);
        m
    });
    for (w, last) in by_writer {
        if last > 0 {
            let d = store
                .get(&format!("orders/w{w}-{:04}", last - 1))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(d.get_i64("updated").unwrap(), last);
        }
    }
    bg.shutdown().await;
    bg_other.shutdown().await;
}

// ----- (f) kill -9 during a burst -------------------------------------------------------------

#[tokio::test]
async fn kill_9_during_a_burst_loses_no_write() {
    let world = World::new("dual-kill").await;
    let proxy = mongo_proxy().await;
    let bin = example_binary("dual_burst");
    let mut child = tokio::process::Command::new(bin)
        .args([
            &world.project,
            &proxy.mongodb_uri(),
            &world.database,
            "100000",
            "8",
        ])
        .env(
            "FIRESTORE_EMULATOR_HOST",
            std::env::var("FIRESTORE_EMULATOR_HOST").unwrap(),
        )
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout);
    let mut acked = BTreeSet::new();
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    while acked.len() < 40 {
        line.clear();
        let n = tokio::time::timeout(Duration::from_secs(60), lines.read_line(&mut line))
            .await
            .expect("the burst makes progress")
            .unwrap();
        assert!(n > 0, "the burst ended early");
        if let Some(p) = line.trim().strip_prefix("ACK ") {
            acked.insert(p.to_string());
        }
    }
    // MongoDB stops answering: the writers commit to Firestore and then wait on
    // MongoDB, which is where the kill lands.
    proxy.swallow_requests(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGKILL: no destructor, no flush, no goodbye.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    // Acknowledgements printed before the kill but not yet read.
    let mut rest = String::new();
    let _ = lines.read_to_string(&mut rest).await;
    for l in rest.lines() {
        if let Some(p) = l.trim().strip_prefix("ACK ") {
            acked.insert(p.to_string());
        }
    }
    proxy.cut();

    // A new process starts: the outbox holds what the dead one had not finished.
    let store = store(&world, &mongodb_uri(), Mode::DualReadFirestore).await;
    let left = outbox_depth(&store).await;
    assert!(
        left > 0,
        "the kill landed between a commit and its MongoDB write"
    );
    let fs = fs_collection(&world, "burst").await;
    assert!(
        !parity(&world, "burst").await.is_empty(),
        "MongoDB was behind at the kill (outbox {left}, Firestore {}, MongoDB {}, acked {})",
        fs.len(),
        world.raw_docs("burst").await.len(),
        acked.len()
    );
    store.drain(Duration::from_secs(60)).await.unwrap();
    let problems = parity(&world, "burst").await;
    assert!(problems.is_empty(), "{problems:#?}");
    for p in &acked {
        assert!(fs.contains_key(p), "acknowledged {p} is in Firestore");
        let id = p.rsplit('/').next().unwrap();
        assert!(
            mongo_get(&world, "burst", id).await.is_some(),
            "acknowledged {p} reached MongoDB"
        );
    }
}

// ----- the example API: endpoints, and kill -9 of the API process -----------------------

/// One HTTP/1.1 request on its own connection; returns the status and the body.
/// Starts `examples/dual_api` for this world; returns the child and its address.
async fn start_api(
    world: &World,
    mongodb_uri: &str,
) -> (
    tokio::process::Child,
    String,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    let mut cmd = tokio::process::Command::new(example_binary("dual_api"));
    cmd.args([
        "--project",
        &world.project,
        "--database",
        &world.database,
        "--mongodb-uri",
        mongodb_uri,
        "--default-mode",
        "dual_read_firestore",
        "--listen",
        "127.0.0.1:0",
    ])
    .env(
        "FIRESTORE_EMULATOR_HOST",
        std::env::var("FIRESTORE_EMULATOR_HOST").unwrap(),
    )
    .env("FIRESHIFT_LOG", "warn");
    common::start_example_api_lines(cmd).await
}

#[tokio::test]
async fn the_example_api_serves_switches_modes_and_exports_metrics() {
    let world = World::new("dual-api").await;
    let (mut child, addr, _lines) = start_api(&world, &mongodb_uri()).await;
    let (st, _) = http(
        &addr,
        "POST",
        "/api/users",
        r#"{"id": "ann", "name": "Ann", "age": 30}"#,
    )
    .await
    .unwrap();
    assert_eq!(st, 201);
    let (st, _) = http(&addr, "POST", "/api/users", r#"{"id": "ann"}"#)
        .await
        .unwrap();
    assert_eq!(st, 409, "create of an existing user");
    http(
        &addr,
        "PUT",
        "/api/users/bo",
        r#"{"name": "Bo", "age": 30}"#,
    )
    .await
    .unwrap();
    let (st, _) = http(&addr, "POST", "/api/users/ann/follow/bo", "")
        .await
        .unwrap();
    assert_eq!(st, 200);
    let (st, _) = http(
        &addr,
        "PATCH",
        "/api/users/ann",
        r#"{"stats.views": 3, "$delete": ["age"]}"#,
    )
    .await
    .unwrap();
    assert_eq!(st, 200);
    http(
        &addr,
        "POST",
        "/api/content/c1/comments",
        r#"{"id": "k1", "text": "hi"}"#,
    )
    .await
    .unwrap();
    http(
        &addr,
        "POST",
        "/api/wallets/ann/transactions",
        r#"{"id": "t1", "amount": 5}"#,
    )
    .await
    .unwrap();
    // Landed in both databases, shaped by the mapping.
    let m = mongo_get(&world, "users", "ann").await.unwrap();
    assert_eq!(
        m.get_document("stats").unwrap().get_i64("views").unwrap(),
        3
    );
    assert!(m.get("age").unwrap().is_none());
    assert!(mongo_get(&world, "follows", "ann_bo").await.is_some());
    assert!(fs_get(&world, "wallets/ann/transactions/t1")
        .await
        .is_some());
    assert!(world
        .db
        .collection::<mongodb::bson::Document>("wallets.transactions")
        .find_one(doc! {"_id": "wallets/ann/transactions/t1"})
        .await
        .unwrap()
        .is_some());
    // Flip reads for users: a MongoDB-only change becomes visible through the API.
    let (st, _) = http(
        &addr,
        "POST",
        "/admin/modes",
        r#"{"collection": "users", "mode": "dual_read_mongo"}"#,
    )
    .await
    .unwrap();
    assert_eq!(st, 200);
    world
        .db
        .collection::<mongodb::bson::Document>("users")
        .update_one(
            doc! {"_id": "bo"},
            doc! {"$set": {"name": "from-mongo", GUARD_FIELD: i64::MAX}},
        )
        .await
        .unwrap();
    let (st, body) = http(&addr, "GET", "/api/users/bo", "").await.unwrap();
    assert_eq!(st, 200);
    assert!(body.contains("from-mongo"), "{body}");
    let (_, body) = http(&addr, "GET", "/api/users?eq.age=30", "")
        .await
        .unwrap();
    assert!(
        body.contains("from-mongo") && !body.contains("Ann"),
        "{body}"
    );
    let (st, _) = http(&addr, "GET", "/api/nope/x", "").await.unwrap();
    assert_eq!(st, 404);
    let (st, body) = http(&addr, "GET", "/metrics", "").await.unwrap();
    assert_eq!(st, 200);
    assert!(body.contains(r#"fireshift_dual_writes_total{collection="users",mode="dual_read_firestore",outcome="ok"}"#), "{body}");
    assert!(body.contains("fireshift_dual_primary_latency_seconds_bucket"));
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn kill_9_of_the_api_process_during_a_burst_loses_no_write() {
    let world = World::new("dual-api-kill").await;
    let proxy = mongo_proxy().await;
    let (mut child, addr, _lines) = start_api(&world, &proxy.mongodb_uri()).await;
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let clients: Vec<_> = (0..8)
        .map(|w| {
            let (addr, acked) = (addr.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let id = format!("w{w}-{n:05}");
                    match http(
                        &addr,
                        "PUT",
                        &format!("/api/users/{id}"),
                        &format!(r#"{{"w": {w}, "n": {n}}}"#),
                    )
                    .await
                    {
                        Ok((200, _)) => {
                            acked.lock().unwrap().insert(format!("users/{id}"));
                        }
                        _ => return, // the API is gone
                    }
                }
            })
        })
        .collect();
    while acked.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // MongoDB hangs; the writes in flight commit to Firestore and wait on it.
    proxy.swallow_requests(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // The restarted process finds the dead one's outbox and drains it.
    let store = store(&world, &mongodb_uri(), Mode::DualReadFirestore).await;
    let left = outbox_depth(&store).await;
    let (fs_n, mongo_n) = (
        fs_collection(&world, "users").await.len(),
        world.raw_docs("users").await.len(),
    );
    let behind = !parity(&world, "users").await.is_empty();
    assert!(
        left > 0 && behind,
        "the kill landed mid-burst: outbox {left}, Firestore {fs_n}, MongoDB {mongo_n}, acked {}",
        acked.len()
    );
    store.drain(Duration::from_secs(60)).await.unwrap();
    let problems = parity(&world, "users").await;
    assert!(problems.is_empty(), "{problems:#?}");
    let fs = fs_collection(&world, "users").await;
    for p in &acked {
        assert!(fs.contains_key(p), "acknowledged {p} is in Firestore");
        let id = p.rsplit('/').next().unwrap();
        assert!(
            mongo_get(&world, "users", id).await.is_some(),
            "acknowledged {p} reached MongoDB"
        );
    }
}

#[tokio::test]
async fn a_batch_is_atomic_in_firestore_and_lands_whole_in_mongodb() {
    let world = World::new("dual-batch").await;
    let store = store(&world, &mongodb_uri(), Mode::DualReadFirestore).await;
    store
        .set_doc("users/z", fields(&[("n", i(0))]))
        .await
        .unwrap();
    let results = store
        .batch(vec![
            WriteOp::Set {
                path: "users/x".into(),
                fields: fields(&[("n", i(1)), ("keep", s("k"))]),
            },
            // The same path again in the batch: MongoDB gets the final state.
            WriteOp::Update {
                path: "users/x".into(),
                fields: vec![("n".into(), Some(i(2)))],
            },
            WriteOp::Create {
                path: "users/y".into(),
                fields: fields(&[("n", i(3))]),
            },
            WriteOp::Delete {
                path: "users/z".into(),
            },
        ])
        .await
        .unwrap();
    assert!(results.iter().all(|r| r.secondary == Secondary::Written));
    let x = mongo_get(&world, "users", "x").await.unwrap();
    assert_eq!(
        (x.get_i64("n").unwrap(), x.get_str("keep").unwrap()),
        (2, "k")
    );
    assert!(mongo_get(&world, "users", "z").await.is_none());
    assert!(parity(&world, "users").await.is_empty());
    // One failing write fails the whole batch: nothing lands on either side, and no
    // outbox entry is left (it was in the same commit).
    let depth = outbox_depth(&store).await;
    let err = store
        .batch(vec![
            WriteOp::Set {
                path: "users/new".into(),
                fields: fields(&[("n", i(9))]),
            },
            WriteOp::Create {
                path: "users/y".into(),
                fields: fields(&[]),
            },
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, DualError::AlreadyExists { .. }), "{err}");
    assert!(fs_get(&world, "users/new").await.is_none());
    assert!(mongo_get(&world, "users", "new").await.is_none());
    assert_eq!(outbox_depth(&store).await, depth);
}

// ----- through a real mapping ------------------------------------------------------------

#[tokio::test]
async fn writes_reads_and_queries_follow_the_mapping_on_both_sides() {
    let world = World::new("dual-mapping").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dataset.toml"), "id_key = \"dual-test\"\n").unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        r#"collection = "users"
target = "people"

[id]
strategy = "objectid"

[metadata]
update_time = "updatedAt"

[fields]
name = { rename = "fullName" }
age = { cast = "int32" }
"#,
    )
    .unwrap();
    let set = fireshift::mapping::MappingSet::load(dir.path()).expect("valid mapping");
    let id = fireshift::mapping::identity::derive_object_id("dual-test", "users/u1");
    let mut c = config(&world, &mongodb_uri());
    c.transformer = Transformer::with_mappings(set);
    c.default_mode = Mode::DualReadFirestore;
    let store = DualStore::connect(c).await.unwrap();

    store
        .set_doc("users/u1", fields(&[("name", s("Ann")), ("age", i(30))]))
        .await
        .unwrap();
    let people = world.db.collection::<RawDocumentBuf>("people");
    let m = people
        .find_one(doc! {"_id": id})
        .await
        .unwrap()
        .expect("mapped");
    assert_eq!(m.get_str("fullName").unwrap(), "Ann");
    assert_eq!(m.get_i32("age").unwrap(), 30, "cast to int32");
    assert_eq!(m.get_str("firestoreId").unwrap(), "u1");
    let fs = fs_get(&world, "users/u1").await.unwrap();
    assert_eq!(
        m.get_datetime("updatedAt").unwrap().timestamp_millis(),
        guard::timestamp_nanos(fs.update_time.as_ref().unwrap()) / 1_000_000
    );
    // Both read paths give the mapped shape.
    let from_fs = store.get("users/u1").await.unwrap().unwrap();
    store.set_mode("users", Mode::DualReadMongo);
    let from_mongo = store.get("users/u1").await.unwrap().unwrap();
    assert_eq!(from_fs, from_mongo);
    // A query names Firestore fields; on MongoDB it is translated through the mapping.
    let q = Query::new().eq("name", s("Ann")).eq("age", i(30));
    assert_eq!(
        store.query("users", &q).await.unwrap(),
        vec![from_mongo.clone()]
    );
    store.set_mode("users", Mode::DualReadFirestore);
    assert_eq!(store.query("users", &q).await.unwrap(), vec![from_mongo]);

    // mongo_only update: renamed and cast on the way in, metadata time refreshed.
    store.set_mode("users", Mode::MongoOnly);
    store
        .update(
            "users/u1",
            vec![
                ("name".into(), Some(s("Anna"))),
                ("age".into(), Some(i(31))),
            ],
        )
        .await
        .unwrap();
    let m = people.find_one(doc! {"_id": id}).await.unwrap().unwrap();
    assert_eq!(m.get_str("fullName").unwrap(), "Anna");
    assert_eq!(m.get_i32("age").unwrap(), 31);
    assert!(m.get("name").unwrap().is_none());
    store.delete("users/u1").await.unwrap();
    assert!(people.find_one(doc! {"_id": id}).await.unwrap().is_none());
}

#[tokio::test]
async fn two_processes_reconciling_at_once_sync_each_entry_once() {
    let world = World::new("dual-lease").await;
    let a = store(&world, &mongodb_uri(), Mode::DualReadFirestore).await;
    let b = store(&world, &mongodb_uri(), Mode::DualReadFirestore).await;
    // No background tasks: every write leaves its entry for the reconcilers.
    for n in 0..20 {
        a.set_doc(&format!("users/l{n}"), fields(&[("n", i(n))]))
            .await
            .unwrap();
    }
    assert_eq!(outbox_depth(&a).await, 20);
    tokio::time::sleep(Duration::from_millis(700)).await; // past the outbox grace
    let (ra, rb) = tokio::join!(a.reconcile_once(false), b.reconcile_once(false));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.failed + rb.failed, 0);
    assert_eq!(ra.synced + rb.synced, 20, "each entry once: {ra:?} {rb:?}");
    assert_eq!(outbox_depth(&a).await, 0);
    assert!(parity(&world, "users").await.is_empty());
}
