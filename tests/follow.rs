//! `migrate --follow` and `cutover` end to end: the real binary copies the demo data
//! from the Firestore emulator while Google's own Python client (tests/follow/writer.py)
//! writes to it — sets, merges, increments, server timestamps, array unions, creates,
//! deletes of documents the copy already read, writes into existing subcollections, a
//! new root collection — first during the copy, then during the follow. Then the
//! writes stop, `cutover` runs its gates, and MongoDB must equal, document by document
//! and field by field, what a fresh copy of Firestore's final state writes.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{snapshot, World};
use mongodb::bson::{Bson, RawDocumentBuf};

/// What the demo data's writers touch: a root collection, an own subcollection and an
/// embedded one (with the mixillo mappings).
const GROUPS: &str = "users,comments,replies";

fn mixillo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/mixillo")
        .to_string_lossy()
        .into_owned()
}

/// Runs the Python writer (Google's client library) against the world's project.
fn writer(world: &World, args: &[&str]) -> Child {
    common::init_env();
    let pythonpath = std::env::var("FIRESHIFT_PYTHONPATH").expect(
        "FIRESHIFT_PYTHONPATH: run the tests through scripts/test (scripts/services installs Google's Python Firestore client)",
    );
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/follow/writer.py");
    Command::new("python3")
        .arg(script)
        .arg(&world.project)
        .args(args)
        .env("PYTHONPATH", pythonpath)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the writer")
}

/// The writer's `churn` over [`GROUPS`] for `seconds`, seeded, with `more` options.
fn churn(world: &World, seconds: &str, seed: &str, more: &[&str]) -> Child {
    let mut args = vec![
        "churn",
        "--groups",
        GROUPS,
        "--seconds",
        seconds,
        "--seed",
        seed,
    ];
    args.extend_from_slice(more);
    writer(world, &args)
}

fn finish_writer(child: Child) -> String {
    let out = child.wait_with_output().expect("the writer ends");
    assert!(out.status.success(), "the writer failed: {:?}", out.status);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("writer: {said}");
    said
}

/// A running `migrate --follow`, its stdout lines passed on as they come.
struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn follow(world: &World, extra: &[&str]) -> Follow {
    follow_with_env(world, extra, &[])
}

/// `migrate --follow` with these environment variables set (a proxy's address).
fn follow_with_env(world: &World, extra: &[&str], env: &[(&str, &str)]) -> Follow {
    common::init_env();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "migrate",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--follow",
            "--quiet",
            "--follow-report-every",
            "1",
        ])
        .args(extra)
        .envs(env.iter().copied())
        .env("FIRESHIFT_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn fireshift");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("migrate --follow: {line}");
            let _ = tx.send(line);
        }
    });
    Follow { child, lines }
}

/// A failing test must not leave its follower running (it would follow forever).
impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Follow {
    /// Waits for a stdout line containing `what`.
    fn wait_for(&self, what: &str, secs: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return,
                Ok(_) => {}
                Err(_) => panic!("`{what}` not printed within {secs}s"),
            }
        }
    }

    fn exit_code(mut self, secs: u64) -> i32 {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("migrate --follow did not exit within {secs}s of the cutover");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn cutover(world: &World, report: &Path, extra: &[&str]) -> Output {
    let report = report.to_string_lossy().into_owned();
    let out = world.fireshift(
        &[
            "cutover",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--timeout",
            "120",
            "--report",
            &report,
        ],
        extra,
    );
    if out.status.code() != Some(0) {
        // The screen caps the list; the verify report holds every mismatch.
        if let Ok(text) = std::fs::read_to_string(format!("{report}-verify.json")) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let m = v["mismatches"].to_string();
            eprintln!("verify mismatches: {}", &m[..m.len().min(6000)]);
        }
    }
    out
}

/// Keys sorted at every depth (arrays keep their order): a followed document may hold
/// its fields in another order than a fresh copy's (its embedded arrays arrived first,
/// say), which is not a difference of content.
fn sorted_keys(b: &Bson) -> Bson {
    match b {
        Bson::Document(d) => {
            let sorted: BTreeMap<&String, &Bson> = d.iter().collect();
            Bson::Document(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        Bson::Array(a) => Bson::Array(a.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// Every data collection of `db`, documents by `_id`, keys sorted; documents its TTL
/// indexes expired left out ([`common::drop_expired`]).
async fn content(db: &mongodb::Database) -> common::Target {
    let mut target = snapshot(db).await;
    common::drop_expired(db, &mut target).await;
    target
        .into_iter()
        .map(|(c, docs)| {
            let docs = docs
                .into_iter()
                .map(|(id, raw)| {
                    let Bson::Document(d) =
                        sorted_keys(&Bson::Document(raw.to_document().unwrap()))
                    else {
                        unreachable!("a document stays a document")
                    };
                    (id, RawDocumentBuf::from_document(&d).unwrap())
                })
                .collect();
            (c, docs)
        })
        .collect()
}

/// A fresh copy of Firestore's final state (no follow) into a second database, with
/// the same mappings: what the followed target must equal.
async fn assert_equals_a_fresh_copy(world: &World, mappings: &[&str]) {
    let expected_db = format!("{}_expected", world.database);
    let mut args = vec!["--project", &world.project, "--database", &expected_db];
    args.extend_from_slice(mappings);
    let out = world.fireshift(&["migrate"], &args);
    assert!(
        matches!(out.status.code(), Some(0 | 3 | 5)),
        "the reference copy failed"
    );
    let client = world.db.client();
    let expected = content(&client.database(&expected_db)).await;
    let actual = content(&world.db).await;
    assert!(
        expected.values().map(BTreeMap::len).sum::<usize>() > 100,
        "a real data set"
    );
    common::assert_same_target(
        &expected,
        &actual,
        "a fresh copy of Firestore's final state",
    );
    client.database(&expected_db).drop().await.unwrap();
}

/// `GET /metrics` over plain HTTP/1.1; the body.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of the sample `name` (with its labels) in a Prometheus text page.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
}

fn report_json(prefix: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(prefix.with_extension("json")).expect("the gate report");
    serde_json::from_str(&text).unwrap()
}

/// The copy is slowed (reads per second) so that the writer's changes land while it
/// runs; then more while following; then the gate.
async fn copy_follow_cutover(name: &str, mappings: &[&str]) {
    let world = World::new(name).await;
    let docs = world.write_demo(12).await;
    assert!(docs > 300, "{docs}");
    let port = common::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let mut extra = vec![
        "--max-reads-per-second",
        "250",
        "--metrics-addr",
        &metrics_addr,
    ];
    extra.extend_from_slice(mappings);
    let f = follow(&world, &extra);
    // During the copy.
    let w = churn(&world, "3", "1", &[]);
    let during_copy = finish_writer(w);
    assert!(during_copy.contains("delete"), "{during_copy}");
    f.wait_for("the copy is done", 120);
    // During the follow, with a new root collection.
    let w = churn(&world, "3", "2", &["--new-root", "arrivals"]);
    finish_writer(w);
    // While following, `status` shows the follow: running, its lag, every group.
    let out = world.fireshift(&["status", "--database", &world.database, "--json"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let follow = &status["jobs"][0]["follow"];
    assert_eq!(follow["state"], "following", "{follow}");
    assert_eq!(follow["copy_done"], true, "{follow}");
    let lag = follow["lag_secs"].as_f64().expect("a lag in seconds");
    assert!((0.0..600.0).contains(&lag), "{lag}");
    assert!(
        follow["counts"]["upserts"].as_u64().unwrap() > 0,
        "{follow}"
    );
    for g in ["users", "comments", "replies"] {
        assert!(
            follow["groups"][g]["state"].is_string(),
            "{g} followed: {follow}"
        );
    }
    // And the Prometheus endpoint: the copy's documents, the follow's changes and lag.
    // A delete the emulator reports only as an absence after a resend, counted once the
    // resend ends: on a loaded machine that may be a few seconds after the writer.
    let deleted = "fireshift_follow_changes_total{kind=\"delete\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut text = scrape(port);
    while metric(&text, deleted) == 0.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        text = scrape(port);
    }
    let value = |name: &str| metric(&text, name);
    assert!(value("fireshift_copy_documents_total{stage=\"written\"}") >= docs as f64);
    assert!(value("fireshift_follow_changes_total{kind=\"upsert\"}") > 0.0);
    assert!(value(deleted) > 0.0, "the writer's deletes are counted");
    assert!(value("fireshift_follow_lag_seconds") < 600.0);
    assert_eq!(value("fireshift_follow_running"), 1.0);
    value("fireshift_retries_total");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("gate");
    let mut gate_args = vec!["--strip-guard"];
    gate_args.extend_from_slice(mappings);
    let out = cutover(&world, &report, &gate_args);
    assert_eq!(out.status.code(), Some(0), "every gate passes");
    let r = report_json(&report);
    assert_eq!(r["passed"], serde_json::Value::Bool(true));
    let gates: Vec<&str> = r["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        gates,
        [
            "follower",
            "caught up",
            "parity",
            "outbox",
            "follower left",
            "strip guard"
        ]
    );
    let code = f.exit_code(60);
    assert!(
        matches!(code, 0 | 3 | 5),
        "migrate --follow exits with the copy's code after the cutover: {code}"
    );
    let arrivals = common::all(&world, "arrivals").await;
    assert_eq!(
        arrivals.len(),
        2,
        "the root collection created while following"
    );
    assert_equals_a_fresh_copy(&world, mappings).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_during_the_copy_and_the_follow_all_land_and_the_cutover_passes() {
    copy_follow_cutover("follow-plain", &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_mixillo_mappings_embedded_replies_follow_too() {
    let m = mixillo();
    copy_follow_cutover("follow-mixillo", &["--mappings", &m]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_the_copy_and_during_the_follow_loses_nothing() {
    let world = World::new("follow-kill").await;
    world.write_demo(12).await;
    let args = ["--max-reads-per-second", "150"];
    let w = churn(&world, "12", "3", &["--pause", "0.02"]);
    // Killed mid-copy.
    let f = follow(&world, &args);
    std::thread::sleep(Duration::from_millis(1500 + rand::random::<u64>() % 1000));
    f.kill_9();
    // Rerun: the copy resumes, the follow resumes from its saved position.
    let f = follow(&world, &args);
    f.wait_for("the copy is done", 120);
    std::thread::sleep(Duration::from_millis(500 + rand::random::<u64>() % 1500));
    f.kill_9();
    let f = follow(&world, &args);
    f.wait_for("the copy is done", 120);
    finish_writer(w);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("gate");
    let out = cutover(&world, &report, &["--strip-guard"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(matches!(f.exit_code(60), 0 | 3));
    assert_equals_a_fresh_copy(&world, &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subcollection_nothing_names_fails_the_gate_until_it_is_followed() {
    let world = World::new("follow-unnamed").await;
    world.write_demo(3).await;
    let f = follow(&world, &[]);
    f.wait_for("the copy is done", 120);
    let user = common::firestore_names(&world, "users").await[0].clone();
    let path = format!("{}/drafts_new/d1", fireshift::path::relative_path(&user));
    finish_writer(writer(&world, &["orphan", &path]));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("gate");
    let out = cutover(&world, &report, &[]);
    assert_eq!(out.status.code(), Some(11), "the parity gate fails");
    let r = report_json(&report);
    let parity = &r["gates"][2];
    assert_eq!(parity["name"], "parity");
    assert!(
        parity["figure"].as_str().unwrap().contains("drafts_new"),
        "the report names the collection: {parity}"
    );
    // The follower still follows; told about the group, it catches up and the gate passes.
    f.kill_9();
    let f = follow(&world, &["--collection-group", "drafts_new"]);
    f.wait_for("the copy is done", 120);
    let out = cutover(&world, &report, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(f.exit_code(60), 0);
    let drafts = common::all(&world, "users.drafts_new").await;
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].get_str("made").unwrap(), "while following");
}

/// MongoDB goes away for a few seconds while the app writes and the follower follows
/// (a proxy in front of the shared server closes every connection and refuses new
/// ones, as a stopped server does): the follower rides it out and nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_mongodb_outage_during_the_follow_is_ridden_out() {
    let world = World::new("follow-outage").await;
    world.write_demo(8).await;
    let proxy = common::proxy::TcpProxy::to_mongodb().await;
    let uri = proxy.mongodb_uri();
    let port = common::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let f = follow(
        &world,
        &["--mongodb-uri", &uri, "--metrics-addr", &metrics_addr],
    );
    f.wait_for("the copy is done", 120);
    churn_through_an_outage(&world, &proxy, "5", Duration::from_secs(4)).await;
    // Every connection of the follower went through the proxy, so the cut closed them
    // all; the driver waits for the server to come back (server selection) and
    // fireshift retries what fails. The follower is still there, applying changes.
    let text = scrape(port);
    let value = |name: &str| metric(&text, name);
    assert_eq!(value("fireshift_follow_running"), 1.0);
    assert!(value("fireshift_follow_changes_total{kind=\"upsert\"}") > 0.0);
    cut_over_and_match_a_fresh_copy(&world, f).await;
}

/// Google's client churns for 7 s (seed `seed`); 1.5 s in, `proxy` goes down for
/// `down`, then comes back.
async fn churn_through_an_outage(
    world: &World,
    proxy: &common::proxy::TcpProxy,
    seed: &str,
    down: Duration,
) {
    let w = churn(world, "7", seed, &["--pause", "0.02"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    tokio::time::sleep(down).await;
    proxy.restore();
    finish_writer(w);
}

/// With the writes stopped: the gate passes (the guard stripped), the follower leaves
/// with 0, and MongoDB equals a fresh copy of Firestore.
async fn cut_over_and_match_a_fresh_copy(world: &World, f: Follow) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("gate");
    let out = cutover(world, &report, &["--strip-guard"]);
    assert_eq!(out.status.code(), Some(0), "every gate passes");
    assert_eq!(f.exit_code(60), 0);
    assert_equals_a_fresh_copy(world, &[]).await;
}

/// Firestore goes away for a few seconds while the app writes (a proxy in front of the
/// emulator closes the Listen stream and refuses new connections; the app itself still
/// reaches the emulator): the follower reopens from its saved position and loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_firestore_outage_during_the_follow_is_ridden_out() {
    let world = World::new("follow-fs-outage").await;
    world.write_demo(8).await;
    common::init_env();
    let emulator = std::env::var("FIRESTORE_EMULATOR_HOST").unwrap();
    let proxy = common::proxy::TcpProxy::start(emulator).await;
    let via = proxy.addr.to_string();
    let port = common::free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let f = follow_with_env(
        &world,
        &["--metrics-addr", &metrics_addr],
        &[("FIRESTORE_EMULATOR_HOST", &via)],
    );
    f.wait_for("the copy is done", 120);
    churn_through_an_outage(&world, &proxy, "6", Duration::from_secs(3)).await;
    // The cut ended the stream: the follower opened it again (counted), and follows.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(port);
        if metric(&text, "fireshift_follow_stream_restarts_total") >= 1.0 {
            assert_eq!(metric(&text, "fireshift_follow_running"), 1.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no stream restart counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cut_over_and_match_a_fresh_copy(&world, f).await;
}

/// The gap-free handoff from an export: the copy reads only the export's files (the
/// database as of its snapshot), the follow starts from the snapshot time, so the
/// changes made after the export — before the copy and while following — all land.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_then_the_follow_from_its_snapshot_misses_nothing() {
    let world = World::new("follow-export").await;
    world.write_demo(8).await;
    let dir = tempfile::tempdir().unwrap();
    let folder = common::export(&world, dir.path(), "snapshot").await;
    let folder = folder.to_str().unwrap();
    // After the snapshot, before the copy: only the follow can bring these.
    let after = finish_writer(churn(&world, "2", "7", &[]));
    assert!(after.contains("delete"), "{after}");
    let f = follow(&world, &["--from-export", folder]);
    f.wait_for("the copy is done", 120);
    finish_writer(churn(&world, "2", "8", &[]));
    cut_over_and_match_a_fresh_copy(&world, f).await;
}
