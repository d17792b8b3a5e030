//! End-to-end: `fireshift verify` (the real binary) against the Firestore emulator and
//! the MongoDB-wire server, after a real `fireshift migrate`; and the recheck step
//! driven from the library, where a test can change the target between pass 1 and the
//! recheck deterministically.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{doc_at, stderr, stdout, verify, World};
use fireshift::mapping::transform::Transformer;
use fireshift::source::{FirestoreSource, SourceConfig};
use fireshift::verify::{Kind, Mismatch, Recheck, Verifier, VerifyConfig};
use fireshift_demo as demo;
use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};
use mongodb::bson::{doc, Bson, DateTime, Document};
use serde_json::Value as Json;

fn v(t: ValueType) -> Value {
    Value {
        value_type: Some(t),
    }
}

/// Loads `users` demo users and migrates them; returns the expected document count.
async fn migrated_demo(world: &World, users: usize) -> usize {
    let n = world.write_demo(users).await;
    assert_eq!(n, demo::expected_count(users));
    let out = world.migrate(&["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "migrate: {}", stderr(&out));
    n
}

fn u(j: &Json) -> u64 {
    j.as_u64().unwrap_or_else(|| panic!("not a count: {j}"))
}

/// The demo's pattern (`content/*/comments`) → the default target (`content.comments`).
fn target_of(pattern: &str) -> String {
    pattern.replace("/*/", ".")
}

#[tokio::test]
async fn after_a_migrate_verify_reports_parity_with_the_demo_counts() {
    let world = World::new("v-parity").await;
    let users = 12;
    let total = migrated_demo(&world, users).await as u64;
    let before: BTreeSet<String> = world
        .db
        .list_collection_names()
        .await
        .unwrap()
        .into_iter()
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = report.expect("a report");
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["result"]["parity"], true);
    assert_eq!(r["result"]["exit_code"], 0);
    let t = &r["totals"];
    for (field, want) in [
        ("source", total),
        ("compared", total),
        ("expected_in_target", total),
        ("target", total),
        ("missing", 0),
        ("extra", 0),
        ("differing", 0),
        ("dead_lettered", 0),
        ("dead_letters_missing", 0),
        ("sampled_out", 0),
    ] {
        assert_eq!(u(&t[field]), want, "totals.{field}");
    }
    // Per collection, the counts the demo promises.
    let want: BTreeMap<String, u64> = demo::expected_counts(users)
        .into_iter()
        .map(|(p, n)| (target_of(p), n as u64))
        .collect();
    let got: BTreeMap<String, (u64, u64, u64)> = r["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["collection"].as_str().unwrap().to_string(),
                (u(&c["source"]), u(&c["target"]), u(&c["compared"])),
            )
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (c, n) in &want {
        assert_eq!(got[c], (*n, *n, *n), "{c}");
    }
    assert!(r["mismatches"].as_array().unwrap().is_empty());
    assert_eq!(r["mismatches_omitted"], 0);
    let s = stdout(&out);
    assert!(s.contains("PARITY"), "{s}");
    // Verify wrote nothing to the target: its collections are the migrated ones and
    // migrate's own, exactly as before the run.
    let after: BTreeSet<String> = world
        .db
        .list_collection_names()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(after, before);
    assert!(!after.iter().any(|n| n.starts_with("_fireshift_verify")));
    // Its state is in the state database: the run is recorded as done there, and the
    // scratch collection is gone.
    let state = state_db(&world).await;
    let names = state.list_collection_names().await.unwrap();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("_fireshift_verify_seen")),
        "{names:?}"
    );
    let run = state
        .collection::<Document>("_fireshift_verify_runs")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.get_str("state").unwrap(), "done");
    assert_eq!(r["target"]["state_database"], state.name());
}

/// The default state database of `world`'s verify runs.
async fn state_db(world: &World) -> mongodb::Database {
    world
        .db
        .client()
        .database(&format!("{}_fireshift", world.database))
}

#[tokio::test]
async fn verify_of_a_missing_database_is_an_error_that_creates_no_database() {
    let world = World::new("v-missing").await;
    migrated_demo(&world, 2).await;
    let typo = format!("{}x", world.database);
    let client = world.db.client().clone();
    let before = client.list_database_names().await.unwrap();
    assert!(before.contains(&world.database), "{before:?}");
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("report");
    let out = world.fireshift(
        &[
            "verify",
            "--project",
            &world.project,
            "--database",
            &typo,
            "--report",
            prefix.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the database `{typo}` does not exist")),
        "{err}"
    );
    assert!(err.contains("is --database right?"), "{err}");
    // The databases that do exist are named, the right one among them.
    assert!(err.contains("Databases on this server: "), "{err}");
    assert!(err.contains(&world.database), "{err}");
    // Neither the mistyped database nor a state database for it was created, and no
    // report was written.
    let after = client.list_database_names().await.unwrap();
    for name in [typo.clone(), format!("{typo}_fireshift")] {
        assert!(!after.contains(&name), "{name} created: {after:?}");
    }
    assert!(!dir.path().join("report.json").exists());

    // The state database can be named, but never be the verified one (a bad command
    // line, before any I/O).
    let out = world.fireshift(
        &[
            "verify",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--state-database",
            &world.database,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is the verified database"),
        "{}",
        stderr(&out)
    );
}

/// (kind, collection, id) of a finding, or (path, expected type, actual type) of a diff.
type Triple = (String, String, String);

/// The five tamperings of the issue, and what verify must say about each.
#[tokio::test]
async fn a_tampered_target_is_reported_exactly_with_field_paths_and_exit_4() {
    let world = World::new("v-tamper").await;
    migrated_demo(&world, 8).await;
    let users = world.db.collection::<Document>("users");
    let content = world.db.collection::<Document>("content");
    let user_ids: Vec<String> = world.raw_docs("users").await.into_keys().collect();
    let content_ids: Vec<String> = world.raw_docs("content").await.into_keys().collect();
    let (deleted, retyped, moved) = (&user_ids[0], &user_ids[1], &user_ids[2]);
    let nested = &content_ids[0];

    // 1. a document deleted
    users.delete_one(doc! {"_id": deleted}).await.unwrap();
    // 2. a nested field changed
    let views = content
        .find_one(doc! {"_id": nested})
        .await
        .unwrap()
        .unwrap()
        .get_document("stats")
        .unwrap()
        .get_i64("views")
        .unwrap();
    content
        .update_one(
            doc! {"_id": nested},
            doc! {"$set": {"stats.views": views + 1}},
        )
        .await
        .unwrap();
    // 3. an extra document
    world
        .db
        .collection::<Document>("follows")
        .insert_one(doc! {"_id": "intruder", "from": "nobody"})
        .await
        .unwrap();
    // 4. a type changed from Int64 to String
    let coins = users
        .find_one(doc! {"_id": retyped})
        .await
        .unwrap()
        .unwrap()
        .get_i64("coins")
        .unwrap();
    users
        .update_one(
            doc! {"_id": retyped},
            doc! {"$set": {"coins": coins.to_string()}},
        )
        .await
        .unwrap();
    // 5. a timestamp moved by 1 s
    let created = *users
        .find_one(doc! {"_id": moved})
        .await
        .unwrap()
        .unwrap()
        .get_datetime("createdAt")
        .unwrap();
    let later = DateTime::from_millis(created.timestamp_millis() + 1000);
    users
        .update_one(doc! {"_id": moved}, doc! {"$set": {"createdAt": later}})
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (out, report) = verify(&world, dir.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_MISMATCHES),
        "{}",
        stderr(&out)
    );
    let r = report.expect("a report");
    assert_eq!(r["result"]["parity"], false);
    assert_eq!(r["result"]["exit_code"], 4);
    assert_eq!(r["result"]["mismatches"], 5);
    let t = &r["totals"];
    assert_eq!(
        (u(&t["missing"]), u(&t["extra"]), u(&t["differing"])),
        (1, 1, 3)
    );
    assert_eq!(u(&t["resolved_on_recheck"]), 0);
    assert_eq!(r["mismatches_listed"], 5);
    assert_eq!(r["mismatches_omitted"], 0);

    // Exactly these findings: (kind, collection, id) → [(path, expected_type, actual_type)].
    let mut got: BTreeMap<Triple, Vec<Triple>> = BTreeMap::new();
    for m in r["mismatches"].as_array().unwrap() {
        let key = (
            m["kind"].as_str().unwrap().to_string(),
            m["collection"].as_str().unwrap().to_string(),
            m["id"].as_str().unwrap().to_string(),
        );
        let diffs = m["diffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["path"].as_str().unwrap().to_string(),
                    d["expected_type"].as_str().unwrap_or("-").to_string(),
                    d["actual_type"].as_str().unwrap_or("-").to_string(),
                )
            })
            .collect();
        got.insert(key, diffs);
    }
    let k = |kind: &str, c: &str, id: &str| (kind.to_string(), c.to_string(), id.to_string());
    let d = |p: &str, e: &str, a: &str| vec![(p.to_string(), e.to_string(), a.to_string())];
    let want = BTreeMap::from([
        (k("missing", "users", deleted), vec![]),
        (
            k("differing", "content", nested),
            d("stats.views", "long", "long"),
        ),
        (k("extra", "follows", "intruder"), vec![]),
        (
            k("differing", "users", retyped),
            d("coins", "long", "string"),
        ),
        (
            k("differing", "users", moved),
            d("createdAt", "date", "date"),
        ),
    ]);
    assert_eq!(got, want);

    // Both values, as canonical extended JSON, and the hashes.
    let find = |id: &str| {
        r["mismatches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone()
    };
    let m = find(retyped);
    assert_eq!(
        m["diffs"][0]["expected"],
        serde_json::json!({"$numberLong": coins.to_string()})
    );
    assert_eq!(m["diffs"][0]["actual"], Json::String(coins.to_string()));
    assert_eq!(m["diffs"][0]["change"], "type");
    assert_ne!(m["expected_hash"], m["actual_hash"]);
    assert_eq!(m["expected_hash"].as_str().unwrap().len(), 64);
    let m = find(moved);
    assert_eq!(m["diffs"][0]["change"], "value");
    assert_eq!(
        m["diffs"][0]["actual"]["$date"]["$numberLong"],
        later.timestamp_millis().to_string()
    );
    let m = find(nested);
    assert_eq!(
        m["diffs"][0]["actual"],
        serde_json::json!({"$numberLong": (views + 1).to_string()})
    );
    let m = find(deleted);
    assert!(m["source_path"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/users/{deleted}")));
    assert!(m["actual_hash"].is_null() && m["expected_hash"].is_string());
    let m = find("intruder");
    assert!(m["expected_hash"].is_null() && m["actual_hash"].is_string());

    // Per collection.
    let coll = |name: &str| {
        r["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["collection"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(coll("users")["parity"], false);
    assert_eq!(u(&coll("users")["differing"]), 2);
    assert_eq!(coll("follows")["count_parity"], false);
    assert_eq!(coll("gifts")["parity"], true);

    // The HTML page: self-contained, lists every finding with its field path.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<style>") && !html.contains("<script") && !html.contains("http://"));
    for needle in [
        "stats.views",
        "coins",
        "createdAt",
        "intruder",
        deleted.as_str(),
    ] {
        assert!(html.contains(needle), "HTML lacks {needle}");
    }
    assert!(
        html.contains(&format!("long {coins}"))
            && html.contains(&format!("string &quot;{coins}&quot;"))
    );
    // The terminal summary names them too.
    let s = stdout(&out);
    assert!(
        s.contains("MISMATCHES: 1 missing, 1 extra, 3 differing"),
        "{s}"
    );
    assert!(s.contains("coins: type changed: expected long"), "{s}");
}

/// A verifier built from the library, as the command builds it.
async fn verifier(world: &World) -> Verifier {
    let source = FirestoreSource::connect(SourceConfig::new(&world.project))
        .await
        .unwrap();
    Verifier::new(
        source,
        world.db.clone(),
        "test".into(),
        Transformer::default(),
        VerifyConfig::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_mismatch_repaired_before_the_recheck_is_resolved_not_reported() {
    let world = World::new("v-recheck").await;
    let n = |i| v(ValueType::IntegerValue(i));
    world
        .write(
            vec![
                doc_at("users/u1", vec![("n", n(1)), ("stats", n(7))]),
                doc_at("users/u2", vec![("n", n(2))]),
            ]
            .into_iter(),
        )
        .await;
    assert_eq!(world.migrate(&["--quiet"]).status.code(), Some(0));
    let users = world.db.collection::<Document>("users");
    let v = verifier(&world).await;
    let m = Mismatch {
        kind: Kind::Differing,
        collection: "users".into(),
        id: Bson::String("u1".into()),
        source_path: Some(world.full_name("users/u1")),
    };

    // Pass 1 would have seen this tampered document …
    users
        .update_one(doc! {"_id": "u1"}, doc! {"$set": {"n": 100i64}})
        .await
        .unwrap();
    match v.recheck_one(&m).await.unwrap() {
        Recheck::Confirmed(f) => {
            assert_eq!(f.mismatch.kind, Kind::Differing);
            assert_eq!(f.diffs.len(), 1);
            assert_eq!(f.diffs[0].path, "n");
            assert_eq!(f.diffs[0].expected, Some(Bson::Int64(1)));
            assert_eq!(f.diffs[0].actual, Some(Bson::Int64(100)));
        }
        other => panic!("still differs: {other:?}"),
    }
    // … and the target is repaired before the recheck: resolved.
    users
        .update_one(doc! {"_id": "u1"}, doc! {"$set": {"n": 1i64}})
        .await
        .unwrap();
    assert_eq!(v.recheck_one(&m).await.unwrap(), Recheck::Resolved);

    // A document created in both databases after pass 1 passed its place (pass 1 saw
    // an extra): the recheck finds its source and resolves it.
    world
        .write(std::iter::once(doc_at("users/late", vec![("n", n(3))])))
        .await;
    users
        .insert_one(doc! {"_id": "late", "n": 3i64})
        .await
        .unwrap();
    let extra = Mismatch {
        kind: Kind::Extra,
        collection: "users".into(),
        id: Bson::String("late".into()),
        source_path: None,
    };
    assert_eq!(v.recheck_one(&extra).await.unwrap(), Recheck::Resolved);
    // A real extra stays one, with the reason.
    users
        .insert_one(doc! {"_id": "ghost", "n": 4i64})
        .await
        .unwrap();
    let ghost = Mismatch {
        id: Bson::String("ghost".into()),
        ..extra.clone()
    };
    match v.recheck_one(&ghost).await.unwrap() {
        Recheck::Confirmed(f) => {
            assert_eq!(f.mismatch.kind, Kind::Extra);
            assert!(f.note.unwrap().contains("does not exist"));
        }
        other => panic!("{other:?}"),
    }
    // A document deleted from both during the verify (pass 1 saw it missing): resolved.
    users.delete_one(doc! {"_id": "u2"}).await.unwrap();
    world.delete("users/u2").await;
    let missing = Mismatch {
        kind: Kind::Missing,
        collection: "users".into(),
        id: Bson::String("u2".into()),
        source_path: Some(world.full_name("users/u2")),
    };
    assert_eq!(v.recheck_one(&missing).await.unwrap(), Recheck::Resolved);
    // Several at once keep their order.
    let verdicts = v
        .recheck(&[m.clone(), ghost.clone(), missing])
        .await
        .unwrap();
    assert_eq!(verdicts.len(), 3);
    assert_eq!(verdicts[0], Recheck::Resolved);
    assert!(matches!(verdicts[1], Recheck::Confirmed(_)));
    assert_eq!(verdicts[2], Recheck::Resolved);
}

#[tokio::test]
async fn an_interrupted_verify_resumes_from_its_cursor_without_counting_twice() {
    let world = World::new("v-resume").await;
    let total = migrated_demo(&world, 4).await as u64;
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = verify(
        &world,
        dir.path(),
        &[
            "--max-docs",
            "50",
            "--checkpoint-docs",
            "20",
            "--chunk-size",
            "7",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_PAUSED),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("paused after 50 source documents"),
        "{}",
        stdout(&out)
    );
    // The rerun picks the unfinished run up by itself.
    let (out, report) = verify(&world, dir.path(), &["--checkpoint-docs", "20"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = report.unwrap();
    assert_eq!(r["run"]["invocations"], 2);
    assert_eq!(u(&r["run"]["docs_this_invocation"]), total - 50);
    assert_eq!(u(&r["totals"]["compared"]), total);
    assert_eq!(u(&r["totals"]["source"]), total);
    assert_eq!(r["result"]["parity"], true);
    // A third run starts afresh (the last one finished).
    let (out, report) = verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0));
    let r2 = report.unwrap();
    assert_ne!(r2["run"]["id"], r["run"]["id"]);
    assert_eq!(r2["run"]["invocations"], 1);
}

#[tokio::test]
async fn a_sampled_verify_compares_part_and_still_catches_count_differences() {
    let world = World::new("v-sample").await;
    let total = migrated_demo(&world, 6).await as u64;
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = verify(&world, dir.path(), &["--sample", "0.3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = report.unwrap();
    assert_eq!(r["options"]["extras_checked"], false);
    let t = &r["totals"];
    let (compared, out_of_sample) = (u(&t["compared"]), u(&t["sampled_out"]));
    assert_eq!(compared + out_of_sample, total);
    assert!(
        compared > total / 10 && compared < total * 6 / 10,
        "{compared} of {total}"
    );
    // An extra document is not searched for, but the count shows it.
    world
        .db
        .collection::<Document>("gifts")
        .insert_one(doc! {"_id": "extra-gift"})
        .await
        .unwrap();
    let (out, report) = verify(&world, dir.path(), &["--sample", "0.3"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let r = report.unwrap();
    let gifts = r["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["collection"] == "gifts")
        .unwrap()
        .clone();
    assert_eq!(gifts["count_parity"], false);
    assert_eq!(gifts["parity"], false);
    assert_eq!(u(&gifts["target"]), u(&gifts["expected_in_target"]) + 1);
}

#[tokio::test]
async fn dead_lettered_documents_count_as_expected_and_a_lost_dead_letter_is_reported() {
    let world = World::new("v-dead").await;
    world
        .write(
            vec![
                doc_at(
                    "users/good",
                    vec![("name", v(ValueType::StringValue("ok".into())))],
                ),
                doc_at(
                    "users/bad",
                    vec![("_id", v(ValueType::StringValue("x".into())))],
                ),
            ]
            .into_iter(),
        )
        .await;
    assert_eq!(world.migrate(&["--quiet"]).status.code(), Some(3));
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = report.unwrap();
    assert_eq!(u(&r["totals"]["dead_lettered"]), 1);
    assert_eq!(u(&r["totals"]["expected_in_target"]), 1);
    // The dead letter disappears: verify says which document is unaccounted for.
    world
        .db
        .collection::<Document>("_fireshift_dead_letters")
        .delete_many(doc! {})
        .await
        .unwrap();
    let (out, report) = verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let r = report.unwrap();
    let ms = r["mismatches"].as_array().unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0]["kind"], "dead_letter_missing");
    assert_eq!(
        ms[0]["source_path"],
        Json::String(world.full_name("users/bad"))
    );
    let users = r["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["collection"] == "users")
        .unwrap()
        .clone();
    assert_eq!(u(&users["dead_letters_missing"]), 1);
}

#[tokio::test]
async fn the_page_lists_failing_collections_first_and_caps_each_while_the_json_keeps_all() {
    let world = World::new("v-cap").await;
    migrated_demo(&world, 3).await;
    world
        .db
        .collection::<Document>("gifts")
        .update_many(doc! {}, doc! {"$set": {"tampered": true}})
        .await
        .unwrap();
    let n = world.raw_docs("gifts").await.len() as u64;
    assert!(n > 3);
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = verify(&world, dir.path(), &["--max-listed", "2"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let r = report.unwrap();
    assert_eq!(u(&r["totals"]["differing"]), n);
    // The JSON lists every mismatch (what --only-from-report re-copies) …
    assert_eq!(u(&r["mismatches_listed"]), n);
    assert_eq!(r["mismatches_omitted"], 0);
    let ids: BTreeSet<&str> = r["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len() as u64, n);
    // … the page lists 2 of the collection and says how many more the JSON holds.
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(html.matches("<section class=\"mm\">").count(), 2);
    assert!(
        html.contains(&format!("<h3 class=\"mono\">gifts: {n} differing</h3>")),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "{} more mismatches of this collection are not listed here",
            n - 2
        )),
        "{html}"
    );
    // The failing collection comes first in the page's table and on the terminal,
    // before collections that sort before it by name.
    let row = |c: &str| html.find(&format!("<td class=\"mono\">{c}</td>")).unwrap();
    assert!(row("gifts") < row("banners") && row("gifts") < row("categories"));
    let s = stdout(&out);
    let line = |c: &str| {
        s.lines()
            .position(|l| l.starts_with(&format!("{c} ")))
            .unwrap_or_else(|| panic!("no {c} line: {s}"))
    };
    assert!(line("gifts") < line("banners"), "{s}");
}

#[tokio::test]
async fn verify_counts_what_a_ttl_index_expired_and_warns_when_the_job_used_other_mappings() {
    let world = World::new("v-hints").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = |secs: i64| {
        v(ValueType::TimestampValue(
            gcloud_sdk::prost_types::Timestamp {
                seconds: secs,
                nanos: 0,
            },
        ))
    };
    world
        .write(
            vec![
                // Two days old: past the TTL index's hour.
                doc_at("events/e1", vec![("at", at(now - 2 * 86_400))]),
                // A day ahead: MongoDB keeps it.
                doc_at("events/e2", vec![("at", at(now + 86_400))]),
                doc_at("events/e3", vec![("at", at(now + 86_400))]),
                doc_at(
                    "notes/n1",
                    vec![("text", v(ValueType::StringValue("hi".into())))],
                ),
            ]
            .into_iter(),
        )
        .await;
    let maps = tempfile::tempdir().unwrap();
    std::fs::write(
        maps.path().join("events.toml"),
        "collection = \"events\"\n\n[[indexes]]\nkeys = { at = 1 }\nexpire_after_seconds = 3600\nname = \"at_ttl\"\n",
    )
    .unwrap();
    std::fs::write(
        maps.path().join("notes.toml"),
        "collection = \"notes\"\n\n[[indexes]]\nkeys = { at = 1 }\nexpire_after_seconds = 60\npartial = { temp = true }\n",
    )
    .unwrap();
    let mappings = maps.path().to_str().unwrap();
    let out = world.migrate(&["--quiet", "--mappings", mappings]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // e1 goes as the server's TTL monitor removes it (it may have already); e2 and n1
    // are lost.
    for (c, id) in [("events", "e1"), ("events", "e2"), ("notes", "n1")] {
        world
            .db
            .collection::<Document>(c)
            .delete_one(doc! {"_id": id})
            .await
            .unwrap();
    }

    // With the job's mappings: no warning; the expired document is counted as such, the
    // lost one is missing; a partial TTL index (verify cannot tell whether its filter
    // held) is named beside its collection's missing document.
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = verify(&world, dir.path(), &["--mappings", mappings]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let r = report.unwrap();
    let row = |r: &Json, c: &str| {
        r["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["collection"] == c)
            .unwrap()
            .clone()
    };
    let events = row(&r, "events");
    assert_eq!(events["expired"], 1, "{events}");
    assert_eq!(events["missing"], 1, "{events}");
    assert_eq!(events["expected_in_target"], 2, "{events}");
    assert_eq!(events["target"], 1, "{events}");
    assert_eq!(events["hints"], serde_json::json!([]));
    let missing: Vec<&str> = r["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["e2", "n1"]);
    let hint = "a partial TTL index of the mappings (field at, 60 s) removes the documents its filter selects: missing ones may be expired";
    assert_eq!(row(&r, "notes")["hints"], serde_json::json!([hint]));
    assert_eq!(r["totals"]["expired"], 1);
    assert_eq!(r["result"]["warnings"], serde_json::json!([]));
    let s = stdout(&out);
    assert!(s.contains(&format!("hint: notes: {hint}")), "{s}");
    assert!(!s.contains("warning:"), "{s}");
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains(&format!("hint: {hint}")), "{html}");
    assert!(html.contains("<th>expired (TTL)</th>"), "{html}");

    // Without them: warned up front, with the job's name and both hashes.
    let job_hash = mongodb::bson::from_document::<Json>(
        world
            .db
            .collection::<Document>("_fireshift_checkpoints")
            .find_one(doc! {"kind": "job"})
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap()["mappings_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let default_hash = Transformer::default().fingerprint();
    let (out, report) = verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let warning = format!(
        "the job `migrate:{}/(default)` copied with mappings hash {job_hash}, this verify uses {default_hash} (no --mappings): run with the same --mappings",
        world.project
    );
    assert!(
        stderr(&out).contains(&format!("warning: {warning}")),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("warning: {warning}")),
        "{}",
        stdout(&out)
    );
    let r = report.unwrap();
    let warnings = r["result"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].as_str().unwrap().starts_with(&warning),
        "{warnings:?}"
    );
    // Without the mappings there is no partial TTL index to hint at; what the target's
    // own TTL index expired is still counted (the target's indexes decide).
    assert!(!stdout(&out).contains("hint:"));
    assert_eq!(row(&r, "events")["expired"], 1);
}

#[tokio::test]
async fn only_from_report_recopies_exactly_the_listed_documents_and_leaves_extras() {
    let world = World::new("v-repair").await;
    let users = 6;
    migrated_demo(&world, users).await;
    let user_ids: Vec<String> = world.raw_docs("users").await.into_keys().collect();
    let gift_ids: Vec<String> = world.raw_docs("gifts").await.into_keys().collect();
    let (gone1, gone2, changed) = (&user_ids[0], &user_ids[3], &user_ids[4]);
    let users_coll = world.db.collection::<Document>("users");
    users_coll
        .delete_many(doc! {"_id": {"$in": [gone1, gone2]}})
        .await
        .unwrap();
    users_coll
        .update_one(
            doc! {"_id": changed},
            doc! {"$set": {"coins": "not a number", "stray": 1}},
        )
        .await
        .unwrap();
    world
        .db
        .collection::<Document>("gifts")
        .update_one(
            doc! {"_id": &gift_ids[0]},
            doc! {"$set": {"tampered": true}},
        )
        .await
        .unwrap();
    let follows = world.db.collection::<Document>("follows");
    follows
        .insert_one(doc! {"_id": "intruder", "from": "nobody"})
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (out, report) = verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(common::EXIT_MISMATCHES));
    let r = report.unwrap();
    let listed: BTreeSet<(String, String)> = r["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pair = |k: &str, id: &str| (k.to_string(), id.to_string());
    assert_eq!(
        listed,
        BTreeSet::from([
            pair("missing", gone1),
            pair("missing", gone2),
            pair("differing", changed),
            pair("differing", &gift_ids[0]),
            pair("extra", "intruder"),
        ])
    );

    let report_json = dir.path().join("report.json");
    let out = world.migrate(&[
        "--quiet",
        "--only-from-report",
        report_json.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = stdout(&out);
    assert!(
        s.contains("4 listed, 4 landed, 0 dead-lettered, 0 no longer in the source; 1 extras left in place"),
        "{s}"
    );
    // The extra was not deleted: that is the operator's call.
    assert_eq!(
        follows
            .count_documents(doc! {"_id": "intruder"})
            .await
            .unwrap(),
        1
    );
    follows.delete_one(doc! {"_id": "intruder"}).await.unwrap();
    // Every repaired document is byte for byte the conversion of its source, and
    // nothing else moved.
    common::assert_target_is_exact(&world, users).await;
    let (out, report) = verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report.unwrap()["result"]["parity"], true);

    // A report of another transform is refused before anything is written.
    let mut other: Json =
        serde_json::from_str(&std::fs::read_to_string(&report_json).unwrap()).unwrap();
    other["options"]["transform"] = Json::String("0123456789abcdef".into());
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let out = world.migrate(&[
        "--quiet",
        "--only-from-report",
        other_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("compared with the transform 0123456789abcdef"),
        "{}",
        stderr(&out)
    );
}
