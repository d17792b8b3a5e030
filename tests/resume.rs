//! Crash safety and faults, driving the real binary: `kill -9` at random moments followed
//! by a resume, and a MongoDB server restart in the middle of a run.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_target_is_exact, checkpointed, free_port, spawn_migrate, stderr, World, SLOW};
use fireshift_demo as demo;
use rand::{Rng, SeedableRng};

/// `SLOW` (small pages, four ranges, two at once) but with four batches in flight per
/// range: the bound on what a resume reads and writes again must not depend on it.
fn kill_run() -> Vec<&'static str> {
    assert_eq!(
        &SLOW[..2],
        ["--in-flight", "1"],
        "SLOW starts with its in-flight"
    );
    [&["--in-flight", "4"], &SLOW[2..], &["--batch-size", "25"]].concat()
}

#[tokio::test]
async fn resumes_after_kill_9_at_random_moments_without_loss_or_duplicates() {
    let world = World::new("crash").await;
    let users = 100;
    world.write_demo(users).await;
    let total = demo::expected_count(users) as u64;
    let seed: u64 = rand::thread_rng().gen();
    eprintln!("kill schedule seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let uri = common::mongodb_uri();
    let mut kills = 0;
    let mut last_progress = 0;
    let mut islands_before = 0;
    for _ in 0..4 {
        let mut child = spawn_migrate(&world, &uri, &kill_run());
        // Kill once the run has made progress past the last kill, plus a random delay,
        // so each kill lands somewhere new in the copy.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break;
            }
            if checkpointed(&world.db).await > last_progress {
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
        settle(&world).await;
        last_progress = checkpointed(&world.db).await;
        assert!(last_progress <= total);
        // What the checkpoints do not cover (cursor + islands of batches acknowledged
        // past it) but landed is written again by the resume: per range copying at the
        // kill, at most one batch, however many batches are in flight (4 here).
        let landed = landed(&world).await;
        let rewritten = landed.saturating_sub(last_progress);
        // Batches acknowledged past a cursor (islands) are not written again, but the
        // resume reads them again: they count against the same bound. Islands an earlier
        // kill left that this run had not reached yet are still there (they only shrink):
        // they were that kill's cost, so they are allowed on top.
        let islands = island_docs(&world.db).await;
        eprintln!(
            "kill {kills}: {landed} landed, {last_progress} checkpointed, {rewritten} to rewrite, \
             {islands} in islands"
        );
        // Ranges copying at once (--parallel 2), documents per batch (--batch-size 25).
        let (ranges_copying, batch) = (2u64, 25u64);
        let bound = ranges_copying * batch + islands_before;
        assert!(
            rewritten + islands <= bound,
            "{rewritten} + {islands} documents past the cursors (bound {bound}, of which \
             {islands_before} in earlier islands)"
        );
        islands_before = islands;
    }
    assert!(
        kills >= 2,
        "the copy was too fast to interrupt (only {kills} kills)"
    );
    assert!(
        last_progress < total,
        "the job finished before the last kill"
    );
    // Resume to completion: it writes exactly what the checkpoints do not cover (the
    // islands are skipped, not written again).
    let summary = tempfile::NamedTempFile::new().unwrap();
    let out = world.migrate(&[
        "--quiet",
        "--summary-json",
        summary.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.path()).unwrap()).unwrap();
    assert_eq!(
        summary["written"].as_u64().unwrap(),
        total - last_progress,
        "{summary}"
    );
    assert_eq!(
        checkpointed(&world.db).await,
        total,
        "checkpoints account for every document exactly once"
    );
    assert_target_is_exact(&world, users).await;
    // The operator's own check agrees: full parity.
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = common::verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report.expect("verify wrote its JSON report");
    let totals = &report["totals"];
    for field in ["missing", "extra", "differing"] {
        assert_eq!(totals[field], 0, "{field}: {report:#}");
    }
    assert_eq!(totals["source"], total, "{report:#}");
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

#[tokio::test]
async fn survives_a_mongodb_restart_mid_run() {
    let mut world = World::new("mongo-restart").await;
    let users = 80;
    world.write_demo(users).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = PrivateMongo::start(port, dir.path().to_path_buf());
    let uri = server.uri();
    world.db = mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&world.database);

    let mut child = common::migrate_until_first_checkpoint(&world, &uri, "120").await;
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
    // Whether fireshift's own retry loop logs the outage depends on where it lands: an
    // operation cut mid-flight fails and is retried by us, a new one waits in the
    // driver's server selection until the server is back. Either way the job survives,
    // which is what is asserted.
    assert_eq!(
        checkpointed(&world.db).await,
        demo::expected_count(users) as u64
    );
    assert_target_is_exact(&world, users).await;
}

/// Documents the saved checkpoints hold in islands (acknowledged past their cursors).
/// Documents in the target.
async fn landed(world: &World) -> u64 {
    world
        .snapshot()
        .await
        .values()
        .map(|d| d.len() as u64)
        .sum()
}

/// Waits until the checkpoints and the target stop changing. A killed process's last
/// commands can still be in the server's socket buffers; under load the server applies
/// them tens of milliseconds after the process is gone. Reading before that compared
/// the resume against a checkpoint older than the one it would find (a rare failure:
/// the resume then wrote exactly the last saved island fewer than expected).
async fn settle(world: &World) {
    let read = || async {
        let mut ranges = common::range_checkpoints(&world.db).await;
        ranges.sort_by_key(|r| r.get_str("_id").unwrap_or_default().to_string());
        (ranges, landed(world).await)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = read().await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read().await;
        if now == last {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the checkpoints were still changing 30 s after the kill"
        );
        last = now;
    }
}

async fn island_docs(db: &mongodb::Database) -> u64 {
    common::range_checkpoints(db)
        .await
        .iter()
        .filter_map(|r| r.get_array("islands").ok())
        .flatten()
        .map(|island| {
            let docs = island
                .as_document()
                .expect("an island is a document")
                .get("docs");
            match docs {
                Some(mongodb::bson::Bson::Int64(n)) => *n as u64,
                Some(mongodb::bson::Bson::Int32(n)) => *n as u64,
                other => panic!("island without a document count: {other:?}"),
            }
        })
        .sum()
}
