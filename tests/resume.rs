//! Crash safety and faults, driving the real binary: `kill -9` at random moments followed
//! by a resume, and a MongoDB server restart in the middle of a run.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{stderr, World};
use fireshift::demo;
use fireshift::transform::Transformer;
use gcloud_sdk::google::firestore::v1::Document;
use mongodb::bson::doc;
use rand::{Rng, SeedableRng};

/// Slow settings (one batch in flight, small pages, two ranges at once) so that a kill
/// or a server stop lands mid-run; each test adds its own tiny `--batch-size`.
const SLOW: &[&str] = &[
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

fn spawn_migrate(world: &World, uri: &str, extra: &[&str]) -> Child {
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

/// Documents acknowledged so far according to the checkpoints.
async fn checkpointed(world: &World) -> u64 {
    use futures::TryStreamExt;
    let ranges: Vec<mongodb::bson::Document> = world
        .db
        .collection("_fireshift_checkpoints")
        .find(doc! { "kind": "range" })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    ranges
        .iter()
        .map(|r| {
            r.get_document("counts")
                .map(|c| c.get_i64("written").unwrap_or(0))
                .unwrap_or(0)
        })
        .sum::<i64>() as u64
}

/// Asserts the target holds exactly the expected conversion of every generated document:
/// nothing missing, nothing extra, nothing different.
async fn assert_target_is_exact(world: &World, users: usize) {
    let t = Transformer::default();
    let mut expected: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for d in demo::generate(users, &world.project, common::DB_ID) {
        let raw = Document {
            name: world.full_name(&d.path),
            fields: d.fields,
            create_time: None,
            update_time: None,
        };
        let x = t.apply(&raw).expect("demo documents convert");
        expected.entry(x.collection).or_default().insert(
            x.item.id.as_str().unwrap().to_string(),
            x.item.doc.as_bytes().to_vec(),
        );
    }
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
            .filter(|(k, v)| got.get(*k).is_some_and(|g| g.as_bytes() != v.as_slice()))
            .count();
        assert_eq!(
            (missing, extra, differing),
            (0, 0, 0),
            "{c}: missing, extra, differing"
        );
    }
}

#[tokio::test]
async fn resumes_after_kill_9_at_random_moments_without_loss_or_duplicates() {
    let world = World::new("crash").await;
    let users = 60;
    world
        .write(demo::generate(users, &world.project, common::DB_ID))
        .await;
    let total = demo::expected_count(users) as u64;
    let seed: u64 = rand::thread_rng().gen();
    eprintln!("kill schedule seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let uri = common::mongodb_uri();
    let mut kills = 0;
    let mut last_progress = 0;
    for _ in 0..4 {
        let mut child = spawn_migrate(&world, &uri, &[SLOW, &["--batch-size", "25"]].concat());
        // Kill once the run has made progress past the last kill, plus a random delay,
        // so each kill lands somewhere new in the copy.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break;
            }
            if checkpointed(&world).await > last_progress {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        }
        last_progress = checkpointed(&world).await;
        assert!(last_progress <= total);
    }
    assert!(
        kills >= 2,
        "the copy was too fast to interrupt (only {kills} kills)"
    );
    assert!(
        last_progress < total,
        "the job finished before the last kill"
    );
    // Resume to completion.
    let out = world.migrate(&["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        checkpointed(&world).await,
        total,
        "checkpoints account for every document exactly once"
    );
    assert_target_is_exact(&world, users).await;
}

/// A private MongoDB-wire server on its own port and data directory, so stopping it
/// does not disturb the tests running beside this one.
struct PrivateMongo {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl PrivateMongo {
    fn binary() -> PathBuf {
        let tools = std::env::var("FIRESHIFT_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/fireshift/tools")
            });
        let bin = tools.join("bin/secantusd-rs");
        assert!(
            bin.exists(),
            "{} missing: run scripts/services up (it installs it)",
            bin.display()
        );
        bin
    }

    fn start(port: u16, data: PathBuf) -> Self {
        let child = Command::new(Self::binary())
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--cache-size",
                "128M",
                "--storage-path",
            ])
            .arg(&data)
            .current_dir(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start secantusd-rs");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "private server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, data }
    }

    fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// A clean stop (SIGTERM). Not SIGKILL: the test server (unlike MongoDB with
    /// `j: true`) was seen to lose journaled, acknowledged writes when killed, which
    /// would test the surrogate rather than fireshift.
    fn stop(mut self) -> PathBuf {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
        self.data.clone()
    }
}

impl Drop for PrivateMongo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn survives_a_mongodb_restart_mid_run() {
    let mut world = World::new("mongo-restart").await;
    let users = 80;
    world
        .write(demo::generate(users, &world.project, common::DB_ID))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = PrivateMongo::start(port, dir.path().to_path_buf());
    let uri = server.uri();
    world.db = mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&world.database);

    let mut child = spawn_migrate(
        &world,
        &uri,
        &[SLOW, &["--batch-size", "10", "--retry-timeout", "120"]].concat(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpointed(&world).await == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "migrate exited ({status}) before the restart: {}",
                stderr(&child.wait_with_output().unwrap())
            );
        }
        assert!(Instant::now() < deadline, "no progress before the restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The server goes away mid-run and comes back 2 s later on the same data.
    let data = server.stop();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the copy finished before the server stopped: nothing was tested"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _server = PrivateMongo::start(port, data);
    world.db = mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&world.database);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the job did not survive the restart: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("transient failure, retrying"),
        "the outage was noticed and retried: {}",
        stderr(&out)
    );
    assert_eq!(
        checkpointed(&world).await,
        demo::expected_count(users) as u64
    );
    assert_target_is_exact(&world, users).await;
}
