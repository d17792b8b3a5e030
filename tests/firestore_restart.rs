//! The Firestore server restarted under a running job (issue 4, faults): the job rides
//! out the outage with its own retries and finishes with exactly the data an
//! uninterrupted run writes.
//!
//! This file is its own test process on purpose: it points `FIRESTORE_EMULATOR_HOST`
//! at a private emulator on a free port, which must not leak into the tests that share
//! the emulator `scripts/services` started.
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::emulator::PrivateEmulator;
use common::{
    assert_target_is_exact, checkpointed, free_port, migrate_until_first_checkpoint, mongodb_uri,
    stderr, World,
};
use fireshift_demo as demo;

/// Both tests point `FIRESTORE_EMULATOR_HOST` (process-wide) at their own emulator:
/// one at a time.
static ENV_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A private emulator holding `users` demo users in a fresh world, and an export of
/// them for the restart.
async fn world_on_private_emulator(
    name: &str,
    users: usize,
    dir: &Path,
) -> (PrivateEmulator, World, PathBuf) {
    let port = free_port();
    let emulator = PrivateEmulator::start(port, None, &dir.join("emulator-1.log"));
    // Before World::new: the world's client and the spawned binary both read it.
    std::env::set_var("FIRESTORE_EMULATOR_HOST", format!("127.0.0.1:{port}"));
    let world = World::new(name).await;
    world.write_demo(users).await;
    // The restarted emulator comes back with the same documents (same update times),
    // as a real Firestore does after an outage.
    let export_dir = dir.join("export");
    std::fs::create_dir(&export_dir).unwrap();
    let snapshot = emulator.export(&world.project, &export_dir);
    (emulator, world, snapshot)
}

#[tokio::test]
async fn survives_a_firestore_restart_mid_run() {
    let _one_at_a_time = ENV_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let users = 80;
    let (emulator, world, snapshot) =
        world_on_private_emulator("firestore-restart", users, dir.path()).await;
    let mut child = migrate_until_first_checkpoint(&world, &mongodb_uri(), "120").await;
    let port = emulator.port;
    emulator.shutdown();
    let before = checkpointed(&world.db).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the copy finished before the emulator stopped: nothing was tested"
    );
    // Down for 3 s: longer than one page read, so readers hit the outage.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _emulator =
        PrivateEmulator::start(port, Some(&snapshot), &dir.path().join("emulator-2.log"));
    let out = child.wait_with_output().unwrap();
    let log = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the job did not survive the restart: {log}"
    );
    let total = demo::expected_count(users) as u64;
    assert!(
        before < total,
        "all {total} documents were checkpointed before the outage"
    );
    // The outage was seen and retried by fireshift (reads are ours, not the driver's).
    assert!(
        log.contains("transient failure, retrying"),
        "no retry was logged across the outage: {log}"
    );
    assert_eq!(checkpointed(&world.db).await, total);
    assert_target_is_exact(&world, users).await;
}

#[tokio::test]
async fn an_outage_past_the_deadline_stops_cleanly_and_a_rerun_finishes() {
    let _one_at_a_time = ENV_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let users = 80;
    let (emulator, world, snapshot) =
        world_on_private_emulator("firestore-down", users, dir.path()).await;
    let mut child = migrate_until_first_checkpoint(&world, &mongodb_uri(), "3").await;
    let port = emulator.port;
    emulator.shutdown();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the copy finished before the emulator stopped: nothing was tested"
    );
    // Firestore stays down: past the 3 s deadline the job stops by itself.
    let out = child.wait_with_output().unwrap();
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("Firestore") && log.contains(&format!("127.0.0.1:{port}")),
        "the error names the unavailable server: {log}"
    );
    let total = demo::expected_count(users) as u64;
    let kept = checkpointed(&world.db).await;
    // The message says how far the run got, not where the progress bars ended.
    assert!(
        log.contains("stopped after") && !log.contains("(100.0%)"),
        "{log}"
    );
    assert!(
        kept > 0 && kept < total,
        "checkpoints kept across the stop: {kept} of {total}"
    );
    // Back up: the rerun resumes from the checkpoints (it writes only what they do not
    // cover) and the data is what an uninterrupted run writes.
    let _emulator =
        PrivateEmulator::start(port, Some(&snapshot), &dir.path().join("emulator-2.log"));
    let summary = dir.path().join("summary.json");
    let out = world.migrate(&["--quiet", "--summary-json", summary.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(
        summary["written"].as_u64().unwrap(),
        total - kept,
        "{summary}"
    );
    assert_eq!(checkpointed(&world.db).await, total);
    assert_target_is_exact(&world, users).await;
}
