//! Shared harness for the end-to-end tests: real Firestore emulator and real MongoDB-wire
//! server, addressed by `FIRESTORE_EMULATOR_HOST` / `MONGODB_URI` with loopback
//! defaults (`scripts/services up` starts both). Every test uses its own Firestore project
//! and its own MongoDB database, so tests run in parallel without seeing each other.
#![allow(dead_code)]

pub mod emulator;
pub mod gcs;
pub mod google;
pub mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use fireshift_demo::{self as demo, DemoDoc};
use gcloud_sdk::google::firestore::v1::Value;
use mongodb::bson::{doc, Bson, RawDocumentBuf};
use mongodb::{Client, Database};

pub const DB_ID: &str = "(default)";

// The exit codes the README and `--help` document (tests hold the binary to them).
/// `migrate` finished, but some documents were dead-lettered.
pub const EXIT_DEAD_LETTERS: i32 = 3;
/// `verify` found mismatches.
pub const EXIT_MISMATCHES: i32 = 4;
/// `indexes`: some index was refused or clashes.
pub const EXIT_INDEXES_NOT_ALL_BUILT: i32 = 5;
/// `migrate` stopped by `--max-dead-letters`.
pub const EXIT_DEAD_LETTER_LIMIT: i32 = 6;
/// `verify` paused by `--max-docs`.
pub const EXIT_PAUSED: i32 = 7;

static ENV: Once = Once::new();

/// Sets the service addresses to their defaults when the caller did not.
pub fn init_env() {
    ENV.call_once(|| {
        if std::env::var_os("FIRESTORE_EMULATOR_HOST").is_none() {
            std::env::set_var("FIRESTORE_EMULATOR_HOST", "127.0.0.1:8085");
        }
        if std::env::var_os("MONGODB_URI").is_none() {
            std::env::set_var(
                "MONGODB_URI",
                "mongodb://127.0.0.1:27017/?directConnection=true",
            );
        }
    });
}

pub fn mongodb_uri() -> String {
    init_env();
    std::env::var("MONGODB_URI").unwrap()
}

/// A name unique to this test process and call: `{prefix}-{pid}-{n}-{nanos}`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// One test's world: a fresh Firestore project and a fresh MongoDB database.
pub struct World {
    pub project: String,
    pub database: String,
    pub db: Database,
    pub firestore: fireshift::firestore::FirestoreConnection,
}

impl World {
    pub async fn new(name: &str) -> Self {
        init_env();
        let project = unique(name);
        let database = project.replace('-', "_");
        let client = Client::with_uri_str(mongodb_uri())
            .await
            .expect("mongodb client");
        let db = client.database(&database);
        db.drop().await.expect("drop test database");
        let firestore = fireshift::firestore::FirestoreConnection::connect(
            &project,
            DB_ID,
            &Default::default(),
        )
        .await
        .expect("firestore client");
        Self {
            project,
            database,
            db,
            firestore,
        }
    }

    /// Writes documents to this world's Firestore project.
    pub async fn write(&self, docs: impl Iterator<Item = DemoDoc>) -> usize {
        let project = self.project.clone();
        fireshift::firestore::write_documents(
            &self.firestore,
            &format!("projects/{}/databases/{DB_ID}", self.project),
            docs.map(move |d| d.into_document(&project, DB_ID)),
            4,
            fireshift::retry::RetryPolicy {
                deadline: std::time::Duration::from_secs(60),
                ..Default::default()
            },
        )
        .await
        .expect("write demo documents")
    }

    /// Writes the demo data set of `users` users (at [`demo::FIXED_NOW`]) to this
    /// world's Firestore project.
    pub async fn write_demo(&self, users: usize) -> usize {
        self.write(demo::generate(users, &self.project, DB_ID, demo::FIXED_NOW))
            .await
    }

    /// Deletes one document (`users/u2`) from this world's Firestore project.
    pub async fn delete(&self, relative: &str) {
        use gcloud_sdk::google::firestore::v1::{write::Operation, CommitRequest, Write};
        let req = CommitRequest {
            database: format!("projects/{}/databases/{DB_ID}", self.project),
            writes: vec![Write {
                operation: Some(Operation::Delete(self.full_name(relative))),
                ..Default::default()
            }],
            ..Default::default()
        };
        self.firestore.client().commit(req).await.expect("delete");
    }

    pub fn full_name(&self, relative: &str) -> String {
        format!("{}{relative}", demo::documents_prefix(&self.project, DB_ID))
    }

    /// Runs the real binary: `fireshift migrate --project P --database D <extra>`.
    pub fn migrate(&self, extra: &[&str]) -> Output {
        self.fireshift(
            &[
                "migrate",
                "--project",
                &self.project,
                "--database",
                &self.database,
            ],
            extra,
        )
    }

    /// Runs the real binary: `fireshift indexes --mappings DIR --database D`.
    pub fn indexes(&self, mappings: &str) -> Output {
        self.fireshift(
            &[
                "indexes",
                "--mappings",
                mappings,
                "--database",
                &self.database,
            ],
            &[],
        )
    }

    pub fn fireshift(&self, base: &[&str], extra: &[&str]) -> Output {
        init_env();
        let out = Command::new(env!("CARGO_BIN_EXE_fireshift"))
            .args(base)
            .args(extra)
            .env("FIRESHIFT_LOG", "warn")
            .output()
            .expect("run fireshift");
        eprintln!(
            "--- fireshift {:?} {:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            base,
            extra,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Every document of a collection as raw BSON, keyed by `_id` rendered as a string.
    pub async fn raw_docs(&self, collection: &str) -> BTreeMap<String, RawDocumentBuf> {
        raw_docs(&self.db, collection).await
    }

    /// All data collections with their raw documents (a snapshot for before/after checks).
    pub async fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, RawDocumentBuf>> {
        snapshot(&self.db).await
    }
}

/// Every document of `collection` of `db` as raw BSON, keyed by `_id` rendered as a
/// string.
pub async fn raw_docs(db: &Database, collection: &str) -> BTreeMap<String, RawDocumentBuf> {
    use futures::TryStreamExt;
    let docs: Vec<RawDocumentBuf> = db
        .collection::<RawDocumentBuf>(collection)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.into_iter()
        .map(|d| {
            let id = d.get("_id").unwrap().map(|v| v.to_raw_bson());
            let key = match id {
                Some(mongodb::bson::RawBson::String(s)) => s,
                other => format!("{other:?}"),
            };
            (key, d)
        })
        .collect()
}

/// All data collections of `db` with their raw documents: fireshift's own bookkeeping
/// (checkpoints, dead letters) is not data.
pub async fn snapshot(db: &Database) -> BTreeMap<String, BTreeMap<String, RawDocumentBuf>> {
    let mut out = BTreeMap::new();
    for name in db.list_collection_names().await.unwrap() {
        if name.starts_with("_fireshift") {
            continue;
        }
        out.insert(name.clone(), raw_docs(db, &name).await);
    }
    out
}

pub fn fields(pairs: Vec<(&str, Value)>) -> HashMap<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

pub fn doc_at(path: &str, pairs: Vec<(&str, Value)>) -> DemoDoc {
    DemoDoc {
        path: path.to_string(),
        fields: fields(pairs),
    }
}

/// Describes the first difference between two BSON documents, field by field, so a
/// failing assertion says where the data went wrong (NaN-aware: compares bytes).
pub fn diff(
    expected: &mongodb::bson::Document,
    actual: &mongodb::bson::Document,
) -> Option<String> {
    let enc = |b: &Bson| mongodb::bson::to_vec(&doc! { "v": b.clone() }).unwrap();
    for (k, v) in expected {
        match actual.get(k) {
            None => return Some(format!("field `{k}` missing (expected {v:?})")),
            Some(a) if enc(a) != enc(v) => {
                return Some(format!("field `{k}`: expected {v:?}, got {a:?}"))
            }
            _ => {}
        }
    }
    let extra: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    if !extra.is_empty() {
        return Some(format!("unexpected fields {extra:?}"));
    }
    let (ek, ak): (Vec<_>, Vec<_>) = (expected.keys().collect(), actual.keys().collect());
    (ek != ak).then(|| format!("field order differs: expected {ek:?}, got {ak:?}"))
}

/// Documents by `_id` rendered as a string, by collection: a target as [`snapshot`]
/// reads it.
pub type Target = BTreeMap<String, BTreeMap<String, RawDocumentBuf>>;

/// Removes from `target` (a snapshot of `db`) the documents `db`'s TTL indexes have
/// expired: MongoDB's monitor removes them at a moment of its own (about once a minute),
/// so whether a snapshot still holds one is timing, not content. Verify counts them as
/// expired by the same rule (`fireshift::verify::ttl`).
pub async fn drop_expired(db: &Database, target: &mut Target) {
    use fireshift::verify::ttl::{expired_by, TtlIndexes};
    let now = mongodb::bson::DateTime::now().timestamp_millis();
    let indexes = TtlIndexes::default();
    let retry = fireshift::retry::RetryPolicy::default();
    for (collection, docs) in target.iter_mut() {
        let ttl = indexes.of(db, "", &retry, collection).await.unwrap();
        docs.retain(|_, d| expired_by(&ttl, d, now).is_none());
    }
}

/// Asserts that `actual` holds exactly the collections and `_id`s of `expected` and
/// that each document equals its expected one field by field ([`diff`]: values by
/// their BSON bytes, so NaN equals itself and −0.0 is not 0.0; order included).
/// `expected_is` names the expected side in messages. Returns the documents compared.
pub fn assert_same_target(expected: &Target, actual: &Target, expected_is: &str) -> usize {
    let names = |t: &Target| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(actual),
        names(expected),
        "the collections of {expected_is}"
    );
    let mut compared = 0;
    for (collection, docs) in expected {
        let landed = &actual[collection];
        let missing: Vec<&String> = docs.keys().filter(|id| !landed.contains_key(*id)).collect();
        let extra: Vec<&String> = landed.keys().filter(|id| !docs.contains_key(*id)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{collection}: missing {missing:?}, extra {extra:?} (against {expected_is})"
        );
        for (id, want) in docs {
            let got = landed[id].to_document().unwrap();
            if let Some(d) = diff(&want.to_document().unwrap(), &got) {
                panic!("{collection}/{id}: {d} (against {expected_is})");
            }
            compared += 1;
        }
    }
    compared
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// What the migration should have written for each document (default mapping): per
/// target collection, per `_id` (as a string), the converted document.
pub fn expected_target(
    world: &World,
    docs: impl Iterator<Item = DemoDoc>,
) -> BTreeMap<String, BTreeMap<String, RawDocumentBuf>> {
    let t = fireshift::mapping::transform::Transformer::default();
    let mut out: BTreeMap<String, BTreeMap<String, RawDocumentBuf>> = BTreeMap::new();
    for d in docs {
        let raw = gcloud_sdk::google::firestore::v1::Document {
            name: world.full_name(&d.path),
            fields: d.fields,
            create_time: None,
            update_time: None,
        };
        let x = t.apply(&raw).expect("demo documents convert");
        let id = x.item.id.as_str().unwrap().to_string();
        out.entry(x.collection).or_default().insert(id, x.item.doc);
    }
    out
}

/// Asserts the target holds exactly the expected conversion of the demo data set of
/// `users` users, byte for byte: nothing missing, nothing extra, nothing different.
pub async fn assert_target_is_exact(world: &World, users: usize) {
    let expected = expected_target(
        world,
        demo::generate(users, &world.project, DB_ID, demo::FIXED_NOW),
    );
    let actual = world.snapshot().await;
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (c, docs) in &expected {
        let got = &actual[c];
        let missing = docs.keys().filter(|k| !got.contains_key(*k)).count();
        let extra = got.keys().filter(|k| !docs.contains_key(*k)).count();
        let differing = docs
            .iter()
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g.as_bytes() != v.as_bytes()))
            .count();
        assert_eq!(
            (missing, extra, differing),
            (0, 0, 0),
            "{c}: missing, extra, differing"
        );
    }
}

/// The saved checkpoint of every range of every job in `db`.
pub async fn range_checkpoints(db: &Database) -> Vec<mongodb::bson::Document> {
    use futures::TryStreamExt;
    db.collection("_fireshift_checkpoints")
        .find(doc! { "kind": "range" })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Documents acknowledged so far according to the checkpoints of `db`.
pub async fn checkpointed(db: &Database) -> u64 {
    range_checkpoints(db)
        .await
        .iter()
        .map(|r| {
            r.get_document("counts")
                .map(|c| c.get_i64("written").unwrap_or(0))
                .unwrap_or(0)
        })
        .sum::<i64>() as u64
}

/// Slow settings (one batch in flight, small pages, two ranges at once) so that a kill
/// or a server stop lands mid-run; each test adds its own tiny `--batch-size`.
pub const SLOW: &[&str] = &[
    "--in-flight",
    "1",
    "--page-size",
    "100",
    "--ranges",
    "4",
    "--parallel",
    "2",
    "--quiet",
];

/// Starts a `SLOW` migrate of `world` into `uri` (batches of 10, faults retried for
/// `retry_timeout` seconds) and returns once its first checkpoint is saved, so what the
/// caller does next lands mid-run.
pub async fn migrate_until_first_checkpoint(
    world: &World,
    uri: &str,
    retry_timeout: &str,
) -> Child {
    let extra = [
        SLOW,
        &["--batch-size", "10", "--retry-timeout", retry_timeout],
    ]
    .concat();
    let mut child = spawn_migrate(world, uri, &extra);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while checkpointed(&world.db).await == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "migrate exited ({status}) before its first checkpoint: {}",
                stderr(&child.wait_with_output().unwrap())
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child
}

/// Starts `fireshift migrate` for `world` against `uri` in the background.
pub fn spawn_migrate(world: &World, uri: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "migrate",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--mongodb-uri",
            uri,
        ])
        .args(extra)
        .env("FIRESHIFT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fireshift")
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Values at a target field path, through arrays (`items.productId`).
pub fn values_at<'a>(b: &'a Bson, path: &[String], out: &mut Vec<&'a Bson>) {
    match (b, path.split_first()) {
        (Bson::Array(a), _) => a.iter().for_each(|x| values_at(x, path, out)),
        (Bson::Document(d), Some((head, rest))) => {
            if let Some(x) = d.get(head) {
                values_at(x, rest, out)
            }
        }
        (_, None) => out.push(b),
        _ => {}
    }
}

/// `fireshift verify` for this world, report under `dir/report`, no recheck delay.
pub fn verify(
    world: &World,
    dir: &std::path::Path,
    extra: &[&str],
) -> (Output, Option<serde_json::Value>) {
    let prefix = dir.join("report");
    let out = world.fireshift(
        &[
            "verify",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--report",
            prefix.to_str().unwrap(),
            "--recheck-delay",
            "0",
        ],
        extra,
    );
    let json = std::fs::read_to_string(dir.join("report.json"))
        .ok()
        .map(|s| serde_json::from_str(&s).expect("the JSON report parses"));
    (out, json)
}

/// Every document of `collection` in `world`'s target database.
pub async fn all(world: &World, collection: &str) -> Vec<mongodb::bson::Document> {
    all_in(&world.db, collection).await
}

/// Every document of `collection` in `db`.
pub async fn all_in(db: &Database, collection: &str) -> Vec<mongodb::bson::Document> {
    use futures::TryStreamExt;
    db.collection(collection)
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The dead letters in `world`'s target database, by `_id` (the source document's name).
pub async fn dead_letters(world: &World) -> BTreeMap<String, mongodb::bson::Document> {
    all(world, "_fireshift_dead_letters")
        .await
        .into_iter()
        .map(|d| (d.get_str("_id").unwrap().to_string(), d))
        .collect()
}

/// The rules under `node` that `keep` selects, each with its *target* field path (after
/// renames).
pub fn reference_rules(
    node: &fireshift::mapping::rules::RuleNode,
    prefix: Vec<String>,
    keep: &dyn Fn(&fireshift::mapping::rules::FieldRule) -> bool,
    out: &mut Vec<(Vec<String>, fireshift::mapping::rules::FieldRule)>,
) {
    for (name, child) in &node.children {
        let mut path = prefix.clone();
        let rename = child.rule.as_ref().and_then(|r| r.rename.clone());
        path.push(rename.unwrap_or_else(|| name.clone()));
        if let Some(r) = child.rule.as_ref().filter(|r| keep(r)) {
            out.push((path.clone(), r.clone()));
        }
        reference_rules(child, path, keep, out);
    }
}

/// Where a mapping's documents landed: their own collection's documents, or the array
/// elements of their parents.
pub async fn holders(
    world: &World,
    set: &fireshift::mapping::MappingSet,
    m: &fireshift::mapping::CompiledMapping,
) -> Vec<Bson> {
    match &m.landing {
        fireshift::mapping::Landing::Embed { field, .. } => {
            let parent = fireshift::mapping::parent_pattern(&m.pattern).unwrap();
            all(world, &set.target_of(&parent))
                .await
                .into_iter()
                .filter_map(|p| p.get(field).cloned())
                .collect()
        }
        _ => all(world, &m.target)
            .await
            .into_iter()
            .map(Bson::Document)
            .collect(),
    }
}

/// An example's binary (`target/<profile>/examples/NAME`), built on first use.
pub fn example_binary(name: &str) -> std::path::PathBuf {
    // `cargo test` may have built only the test-harness flavour of the examples, or a
    // plain binary left from an older build: build it now (a no-op when up to date),
    // once per test process and example.
    static BUILT: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let exe = std::env::current_exe().unwrap();
    // tests run from target/<profile>/deps; examples are built beside them.
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    let mut built = BUILT.lock().unwrap();
    if !built.contains(name) {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // `cargo test` runs this process with the package's CARGO_PKG_*,
        // CARGO_MANIFEST_DIR, OUT_DIR, … set. Build scripts that track those variables
        // (ring's does) would see another environment than the outer build's and run
        // again, recompiling everything above them: the dependency graph a third time.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_by_cargo = (key.starts_with("CARGO_")
                && !matches!(
                    key.as_ref(),
                    "CARGO_HOME" | "CARGO_TARGET_DIR" | "CARGO_INCREMENTAL"
                ))
                || matches!(
                    key.as_ref(),
                    "OUT_DIR" | "TARGET" | "HOST" | "OPT_LEVEL" | "PROFILE" | "DEBUG" | "NUM_JOBS"
                );
            if set_by_cargo {
                cargo.env_remove(key.as_ref());
            }
        }
        let status = cargo.status().unwrap();
        assert!(status.success(), "cargo build --example {name}");
        built.insert(name.to_string());
    }
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// One HTTP/1.1 request; returns the status and the body.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

/// Spawns an example API (`cmd`, listening on port 0) and waits for its
/// `listening on ADDR` line; returns the child, the address and its further output.
pub async fn start_example_api_lines(
    mut cmd: tokio::process::Command,
) -> (
    tokio::process::Child,
    String,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .expect("the API starts")
            .unwrap()
            .expect("the API printed its address");
        if let Some(a) = line.strip_prefix("listening on ") {
            break a.trim().to_string();
        }
    };
    (child, addr, lines)
}

/// [`start_example_api_lines`] without the further output.
pub async fn start_example_api(cmd: tokio::process::Command) -> (tokio::process::Child, String) {
    let (child, addr, _) = start_example_api_lines(cmd).await;
    (child, addr)
}

/// The names of the documents of the root collection `collection` in `world`'s
/// Firestore project, read directly (not through fireshift).
pub async fn firestore_names(world: &World, collection: &str) -> Vec<String> {
    use futures::StreamExt;
    use gcloud_sdk::google::firestore::v1::{
        run_query_request, structured_query, RunQueryRequest, StructuredQuery,
    };
    let req = RunQueryRequest {
        parent: format!("projects/{}/databases/{DB_ID}/documents", world.project),
        query_type: Some(run_query_request::QueryType::StructuredQuery(
            StructuredQuery {
                from: vec![structured_query::CollectionSelector {
                    collection_id: collection.to_string(),
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
    let mut names = Vec::new();
    while let Some(r) = stream.next().await {
        if let Some(d) = r.unwrap().document {
            names.push(d.name);
        }
    }
    names
}

// ----- the shared emulator's REST API ------------------------------------------------

/// One call to the emulator's REST API (it keeps connections open, so a client that
/// reads to the end of the connection would wait forever).
pub async fn emulator_call(method: reqwest::Method, url: &str, body: String) -> (u16, String) {
    fireshift::tls::install_crypto_provider();
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(method, url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the emulator answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Exports `world`'s Firestore project with the emulator's export endpoint into
/// `dir/name`; returns that folder.
pub async fn export(world: &World, dir: &Path, name: &str) -> PathBuf {
    init_env();
    let host = std::env::var("FIRESTORE_EMULATOR_HOST").unwrap();
    let body = serde_json::json!({
        "database": format!("projects/{}/databases/(default)", world.project),
        "export_directory": dir.to_str().unwrap(),
        "export_name": name,
    })
    .to_string();
    let (status, answer) = emulator_call(
        reqwest::Method::POST,
        &format!(
            "http://{host}/emulator/v1/projects/{}:export",
            world.project
        ),
        body,
    )
    .await;
    assert_eq!(status, 200, "export: {answer}");
    let folder = dir.join(name);
    assert!(folder.is_dir(), "the export wrote {}", folder.display());
    folder
}

/// Deletes every document of `world`'s project from the emulator: a copy from the
/// export afterwards cannot have read Firestore.
pub async fn empty_firestore(world: &World) {
    let host = std::env::var("FIRESTORE_EMULATOR_HOST").unwrap();
    let (status, answer) = emulator_call(
        reqwest::Method::DELETE,
        &format!(
            "http://{host}/emulator/v1/projects/{}/databases/(default)/documents",
            world.project
        ),
        String::new(),
    )
    .await;
    assert_eq!(status, 200, "reset: {answer}");
    assert!(firestore_names(world, "users").await.is_empty());
}
