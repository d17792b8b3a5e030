//! `--from-export`: real exports written by the emulator's export endpoint, read back by
//! the real binary into the real MongoDB-wire server, compared document by document
//! with what `migrate` from the live emulator lands.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use mongodb::bson::{doc, RawDocumentBuf};
use mongodb::Database;

type Snapshot = BTreeMap<String, BTreeMap<String, RawDocumentBuf>>;

/// A second target database of the same server for `world`, dropped first.
async fn other_database(world: &World, suffix: &str) -> Database {
    let db = world
        .db
        .client()
        .database(&format!("{}_{suffix}", world.database));
    db.drop().await.unwrap();
    db
}

/// `fireshift migrate --from-export PATH --database DB <extra>`: no --project.
fn migrate_export(world: &World, db: &Database, path: &Path, extra: &[&str]) -> Output {
    world.fireshift(
        &[
            "migrate",
            "--from-export",
            path.to_str().unwrap(),
            "--database",
            db.name(),
            "--quiet",
        ],
        extra,
    )
}

/// `fireshift verify --from-export PATH --database DB --report PREFIX <extra>`.
fn verify_export(
    world: &World,
    path: &str,
    db: &Database,
    report: &Path,
    extra: &[&str],
) -> Output {
    world.fireshift(
        &[
            "verify",
            "--from-export",
            path,
            "--database",
            db.name(),
            "--report",
            report.to_str().unwrap(),
            "--recheck-delay",
            "0",
        ],
        extra,
    )
}

/// The snapshot without the fields named in `drop` (at the top of each document).
fn without_fields(snapshot: &Snapshot, drop: &[String]) -> Snapshot {
    snapshot
        .iter()
        .map(|(c, docs)| {
            let docs = docs
                .iter()
                .map(|(id, d)| {
                    let mut doc = d.to_document().unwrap();
                    for f in drop {
                        doc.remove(f);
                    }
                    (id.clone(), RawDocumentBuf::from_document(&doc).unwrap())
                })
                .collect();
            (c.clone(), docs)
        })
        .collect()
}

/// A document's bytes with the fields of every embedded document in name order.
fn sorted_bytes(d: &RawDocumentBuf) -> Vec<u8> {
    fn sort(b: mongodb::bson::Bson) -> mongodb::bson::Bson {
        use mongodb::bson::Bson;
        match b {
            Bson::Document(d) => {
                let mut fields: Vec<(String, Bson)> = d.into_iter().collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Bson::Document(fields.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            Bson::Array(a) => Bson::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    match sort(mongodb::bson::Bson::Document(d.to_document().unwrap())) {
        mongodb::bson::Bson::Document(d) => RawDocumentBuf::from_document(&d).unwrap().into_bytes(),
        _ => unreachable!(),
    }
}

/// Asserts two targets hold the same collections and the same documents, byte for byte.
fn assert_same(live: &Snapshot, from_export: &Snapshot) {
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        from_export.keys().collect::<Vec<_>>(),
        "the same collections"
    );
    for (c, docs) in live {
        let other = &from_export[c];
        assert_eq!(
            docs.keys().collect::<Vec<_>>(),
            other.keys().collect::<Vec<_>>(),
            "{c}: the same ids"
        );
        for (id, d) in docs {
            // Bytes, not documents: NaN equals itself only bit for bit. Field order
            // aside: an embedded subcollection read before its parent (the export's
            // order is not the name order) creates the parent's array field first.
            assert!(
                sorted_bytes(d) == sorted_bytes(&other[id]),
                "{c}/{id}: the same document\n{:?}\n{:?}",
                d.to_document(),
                other[id].to_document()
            );
        }
    }
}

/// The metadata fields (`[metadata]`) the mixillo mappings write: an export cannot
/// know them.
fn mixillo_metadata_fields() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("mappings/mixillo").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let table: toml::Table = toml::from_str(&text).unwrap();
            if let Some(meta) = table.get("metadata").and_then(|m| m.as_table()) {
                out.extend(meta.values().filter_map(|v| v.as_str()).map(String::from));
            }
        }
    }
    assert!(!out.is_empty(), "mixillo maps some document times");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_lands_what_the_live_copy_lands_and_verifies() {
    let world = World::new("export-same").await;
    let written = world.write_demo(4).await;
    assert!(written > 100, "demo documents written: {written}");
    let live = world.migrate(&["--quiet"]);
    assert_eq!(live.status.code(), Some(0), "live migrate");
    let live_plain = world.snapshot().await;
    // With the mixillo mappings: the live copy exits 5 (the test server refuses text
    // indexes), and so must the export's.
    let live_mixillo_db = other_database(&world, "live_mixillo").await;
    let out = world.fireshift(
        &[
            "migrate",
            "--project",
            &world.project,
            "--database",
            live_mixillo_db.name(),
            "--mappings",
            "mappings/mixillo",
            "--quiet",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(EXIT_INDEXES_NOT_ALL_BUILT));
    let mut live_mixillo = snapshot(&live_mixillo_db).await;
    common::drop_expired(&live_mixillo_db, &mut live_mixillo).await;

    let dir = tempfile::tempdir().unwrap();
    let folder = export(&world, dir.path(), "full").await;
    empty_firestore(&world).await;

    // Without mappings: every document exactly as the live copy landed it.
    let plain_db = other_database(&world, "plain").await;
    let out = migrate_export(&world, &plain_db, &folder, &[]);
    assert_eq!(out.status.code(), Some(0), "migrate --from-export");
    assert!(
        stdout(&out).contains(&format!(
            "project {}, database (default), snapshot at 20",
            world.project
        )),
        "the export's project, database and snapshot time are printed"
    );
    assert_same(&live_plain, &snapshot(&plain_db).await);

    // The same export on Cloud Storage (the emulator), read through gs://.
    let bucket = gcs::Bucket::new("export").await;
    bucket.upload_dir(&folder, "exports/full").await;
    let gs_db = other_database(&world, "gs").await;
    let gs_path = format!("gs://{}/exports/full", bucket.name);
    let out = world.fireshift(
        &[
            "migrate",
            "--from-export",
            &gs_path,
            "--database",
            gs_db.name(),
            "--quiet",
            "--parallel",
            "2",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "migrate --from-export gs://");
    assert_same(&live_plain, &snapshot(&gs_db).await);
    let out = verify_export(&world, &gs_path, &gs_db, &dir.path().join("gs"), &[]);
    assert_eq!(out.status.code(), Some(0), "verify --from-export gs://");

    // --guard-update-time: every document stamped with the snapshot time printed.
    let guarded_db = other_database(&world, "guarded").await;
    let out = migrate_export(&world, &guarded_db, &folder, &["--guard-update-time"]);
    assert_eq!(out.status.code(), Some(0));
    let printed = stdout(&out);
    let snapshot_at = printed
        .split("snapshot at ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("the snapshot time is printed");
    let nanos = chrono::DateTime::parse_from_rfc3339(snapshot_at)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap();
    let users = all_in(&guarded_db, "users").await;
    assert_eq!(users.len(), live_plain["users"].len());
    for u in &users {
        assert_eq!(u.get_i64("_fs_updated").unwrap(), nanos, "{u:?}");
    }

    // The mixillo mappings map document times: refused before any I/O without a choice.
    let mixillo_db = other_database(&world, "mixillo").await;
    let out = migrate_export(
        &world,
        &mixillo_db,
        &folder,
        &["--mappings", "mappings/mixillo"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--export-times"),
        "says how to choose: {}",
        stderr(&out)
    );
    assert!(mixillo_db.list_collection_names().await.unwrap().is_empty());
    // With `omit`: what the live copy landed, less the fields an export cannot know.
    let out = migrate_export(
        &world,
        &mixillo_db,
        &folder,
        &["--mappings", "mappings/mixillo", "--export-times", "omit"],
    );
    assert_eq!(out.status.code(), Some(EXIT_INDEXES_NOT_ALL_BUILT));
    let metadata = mixillo_metadata_fields();
    let mut landed = snapshot(&mixillo_db).await;
    common::drop_expired(&mixillo_db, &mut landed).await;
    assert_same(&without_fields(&live_mixillo, &metadata), &landed);
    // Those fields were really there in the live copy, and really absent here.
    let orders_live = &live_mixillo["orders"];
    assert!(orders_live
        .values()
        .any(|d| metadata.iter().any(|f| d.get(f).unwrap().is_some())));

    // verify against the export: full parity, on both targets.
    let report = dir.path().join("plain");
    let out = verify_export(&world, folder.to_str().unwrap(), &plain_db, &report, &[]);
    assert_eq!(out.status.code(), Some(0), "verify --from-export");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plain.json")).unwrap())
            .unwrap();
    assert_eq!(json["source"]["project"], world.project.as_str());
    // A document changed in the target is found by verify against the export.
    plain_db
        .collection::<mongodb::bson::Document>("users")
        .update_one(doc! {}, doc! {"$set": {"displayName": "changed"}})
        .await
        .unwrap();
    let out = verify_export(
        &world,
        folder.to_str().unwrap(),
        &plain_db,
        &report,
        &["--new-run"],
    );
    assert_eq!(
        out.status.code(),
        Some(EXIT_MISMATCHES),
        "verify finds the change"
    );

    // plan reads the export alone.
    let plan_dir = dir.path().join("planned");
    let out = world.fireshift(
        &[
            "plan",
            "--from-export",
            folder.to_str().unwrap(),
            "--out",
            plan_dir.to_str().unwrap(),
            "--report",
            dir.path().join("plan").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "plan --from-export");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).unwrap())
            .unwrap();
    let users = live_plain["users"].len() as u64;
    let counted = plan["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .find(|c| c["pattern"] == "users")
        .map(|c| c["documents"].as_u64().unwrap());
    assert_eq!(
        counted,
        Some(users),
        "plan counts the export's users exactly"
    );
}

/// Copies the export at `from` to `to` (a damaged copy is made from it).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn output_file(folder: &Path) -> PathBuf {
    folder.join("all_namespaces/all_kinds/output-0")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_export_stops_naming_file_and_offset_or_dead_letters_with_skip_corrupt() {
    let world = World::new("export-corrupt").await;
    world.write_demo(2).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = export(&world, dir.path(), "good").await;
    let whole_db = other_database(&world, "whole").await;
    let out = migrate_export(&world, &whole_db, &folder, &[]);
    assert_eq!(out.status.code(), Some(0));
    let whole = snapshot(&whole_db).await;
    let total: usize = whole.values().map(|d| d.len()).sum();

    // A flipped byte in the middle of the file.
    let flipped = dir.path().join("flipped");
    copy_dir(&folder, &flipped);
    let file = output_file(&flipped);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let db = other_database(&world, "flipped").await;
    let out = migrate_export(&world, &db, &flipped, &[]);
    assert_eq!(out.status.code(), Some(1), "a damaged record stops the run");
    let err = stderr(&out);
    assert!(
        err.contains("all_kinds/output-0@"),
        "names the file and offset: {err}"
    );
    let offset: u64 = err
        .split("output-0@")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("an offset");
    assert!(
        offset <= at as u64 && at as u64 - offset < 40_000,
        "the offset {offset} is where the damage ({at}) is"
    );
    assert!(
        err.to_lowercase().contains("crc") || err.contains("checksum"),
        "says why: {err}"
    );
    let written_before: u64 = checkpointed(&db).await;
    assert!(
        written_before > 0,
        "the documents before the damage landed and were checkpointed"
    );
    // Checkpoints intact: the rerun stops at the same record, nothing counted twice.
    let out = migrate_export(&world, &db, &flipped, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(checkpointed(&db).await, written_before);

    // --skip-corrupt: the record is dead-lettered with its place, every other lands.
    let out = migrate_export(&world, &db, &flipped, &["--skip-corrupt"]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_DEAD_LETTERS),
        "dead letters: exit 3"
    );
    let dead = all_in(&db, "_fireshift_dead_letters").await;
    assert_eq!(dead.len(), 1, "one dead letter: {dead:?}");
    let id = dead[0].get_str("_id").unwrap();
    assert!(
        id.contains(&format!("output-0@{offset}")),
        "keyed by place: {id}"
    );
    assert_eq!(dead[0].get_str("rule").unwrap(), "corrupt");
    assert!(!dead[0].get_binary_generic("rawRecord").unwrap().is_empty());
    let landed = snapshot(&db).await;
    let landed_total: usize = landed.values().map(|d| d.len()).sum();
    assert_eq!(landed_total, total - 1, "every other document lands");
    for (c, docs) in &landed {
        for (id, d) in docs {
            assert!(
                d.as_bytes() == whole[c][id].as_bytes(),
                "{c}/{id} as in the whole export: {:?}",
                d.to_document()
            );
        }
    }

    // A truncated file: the unfinished last record is named.
    let truncated = dir.path().join("truncated");
    copy_dir(&folder, &truncated);
    let file = output_file(&truncated);
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len - 5).unwrap();
    let db = other_database(&world, "truncated").await;
    let out = migrate_export(&world, &db, &truncated, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("all_kinds/output-0@"),
        "{}",
        stderr(&out)
    );
    let out = migrate_export(&world, &db, &truncated, &["--skip-corrupt"]);
    assert_eq!(out.status.code(), Some(EXIT_DEAD_LETTERS));
    let landed: usize = snapshot(&db).await.values().map(|d| d.len()).sum();
    assert_eq!(landed, total - 1, "all but the cut record land");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_and_rerun_copies_an_export_exactly_once() {
    let world = World::new("export-kill").await;
    world.write_demo(20).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = export(&world, dir.path(), "e").await;
    let whole_db = other_database(&world, "whole").await;
    assert_eq!(
        migrate_export(&world, &whole_db, &folder, &[])
            .status
            .code(),
        Some(0)
    );
    let whole = snapshot(&whole_db).await;
    let total: u64 = whole.values().map(|d| d.len() as u64).sum();

    let db = other_database(&world, "killed").await;
    let uri = mongodb_uri();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "migrate",
            "--from-export",
            folder.to_str().unwrap(),
            "--database",
            db.name(),
            "--mongodb-uri",
            &uri,
            "--quiet",
            "--batch-size",
            "10",
            "--in-flight",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    use rand::Rng;
    let mut mid_run = 0;
    for round in 0..4 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fireshift"))
            .args(args(&[]))
            .env("FIRESHIFT_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait = rand::thread_rng().gen_range(50..600);
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        eprintln!("round {round}: killed after {wait} ms ({status})");
        // A save the dead process sent may still land: wait until nothing moves.
        let mut last = checkpointed(&db).await;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let now = checkpointed(&db).await;
            if now == last {
                break;
            }
            last = now;
        }
        if last > 0 && last < total {
            mid_run += 1;
        }
    }
    assert!(mid_run > 0, "at least one kill landed mid-copy");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args(args(&[]))
        .env("FIRESHIFT_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&whole, &snapshot(&db).await);
    assert_eq!(
        checkpointed(&db).await,
        total,
        "the checkpoints count every document once"
    );
}

/// Regression: with as many batches in flight as the MongoDB client has pooled
/// connections, a checkpoint save waited for a connection that a written-but-unread
/// batch held: the batches were driven only while the writer was not itself awaiting
/// the save, so their answers were never read and every range stalled on "saving a
/// checkpoint" (seen rarely in CI on the live source, which keeps about one batch in
/// flight; every time from an export, which keeps many). A pool of two connections
/// against four batches in flight makes it certain.
#[tokio::test(flavor = "multi_thread")]
async fn batches_in_flight_never_starve_a_checkpoint_save_of_a_pooled_connection() {
    let world = World::new("export-pool").await;
    world.write_demo(6).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = export(&world, dir.path(), "e").await;
    let live = world.migrate(&["--quiet"]);
    assert_eq!(live.status.code(), Some(0));
    let expected = world.snapshot().await;
    let db = other_database(&world, "pool").await;
    let sep = if mongodb_uri().contains('?') {
        '&'
    } else {
        '?'
    };
    let small_pool = format!("{}{sep}maxPoolSize=2", mongodb_uri());
    let out = world.fireshift(
        &[
            "migrate",
            "--from-export",
            folder.to_str().unwrap(),
            "--database",
            db.name(),
            "--mongodb-uri",
            &small_pool,
            "--in-flight",
            "4",
            "--batch-size",
            "20",
            "--stall-warning",
            "5",
            "--stall-timeout",
            "20",
            "--quiet",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "no stall");
    assert_same(&expected, &snapshot(&db).await);
}
