//! One process per job, through the real binary: a second migrate on a running job is
//! refused naming the holder; a process killed on this machine is taken over at once;
//! a paused process whose lease expired is taken over elsewhere and then fenced (it
//! stops instead of moving the checkpoints the new holder owns).

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_target_is_exact, checkpointed, stderr, World, SLOW};
use fireshift_demo as demo;

/// A slow migrate (see [`SLOW`]) with its output kept.
fn spawn(world: &World, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "migrate",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--mongodb-uri",
            &common::mongodb_uri(),
            "--batch-size",
            "25",
        ])
        .args(SLOW)
        .args(extra)
        .env("FIRESHIFT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fireshift")
}

async fn wait_for_progress(world: &World, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpointed(&world.db).await == 0 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no progress within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn finish(child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "still running after {limit:?}: {}",
                stderr(&child.wait_with_output().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

/// `(state, held by)` per range, from `fireshift status`.
fn status(world: &World) -> Vec<(String, String)> {
    let out = world.fireshift(&["status", "--database", &world.database], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.first()?.parse::<u32>().ok()?;
            let state = words.get(1)?.to_string();
            let held = l
                .find(" pid ")
                .map(|_| {
                    let at = words.iter().position(|w| *w == "pid").unwrap();
                    format!("{} pid {}", words[at - 1], words[at + 1])
                })
                .unwrap_or_default();
            Some((state, held))
        })
        .collect()
}

fn status_json(world: &World) -> serde_json::Value {
    let out = world.fireshift(&["status", "--json", "--database", &world.database], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("status --json prints one JSON object")
}

#[tokio::test]
async fn a_second_process_on_a_running_job_is_refused_naming_the_holder() {
    let world = World::new("lease-second").await;
    let users = 60;
    world.write_demo(users).await;
    let total = demo::expected_count(users) as u64;
    let summary = tempfile::NamedTempFile::new().unwrap();
    let mut first = spawn(
        &world,
        &["--summary-json", summary.path().to_str().unwrap()],
    );
    wait_for_progress(&world, &mut first).await;
    let pid = first.id();
    // The same command again, while the first runs.
    let second = finish(spawn(&world, &[]), Duration::from_secs(60));
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let err = stderr(&second);
    assert!(err.contains("being copied by another process"), "{err}");
    assert!(
        err.contains(&format!("pid {pid}")),
        "names the holder: {err}"
    );
    let ranges = status(&world);
    assert!(
        ranges
            .iter()
            .any(|(s, h)| s == "running" && h.ends_with(&format!("pid {pid}"))),
        "status shows the running range and its holder: {ranges:?}"
    );
    // The same for machines: `status --json`.
    let json = status_json(&world);
    let job = &json["jobs"][0];
    assert_eq!(job["done"], false, "{json}");
    assert!(
        job["ranges"].as_array().unwrap().iter().any(|r| r["state"] == "running"
            && r["holder"]["pid"].as_u64() == Some(u64::from(pid))),
        "{json}"
    );
    let out = finish(first, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The refused process read nothing: the first read every document once.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.path()).unwrap()).unwrap();
    assert_eq!(json["read"].as_u64(), Some(total), "{json}");
    assert_eq!(checkpointed(&world.db).await, total);
    assert_target_is_exact(&world, users).await;
    let after = status(&world);
    assert!(
        after.iter().all(|(_, h)| h.is_empty()),
        "a finished run holds no lease: {after:?}"
    );
    let json = status_json(&world);
    let job = &json["jobs"][0];
    assert_eq!(job["done"], true, "{json}");
    assert_eq!(job["written"].as_u64(), Some(total), "{json}");
    assert!(
        job["ranges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["holder"].is_null()),
        "{json}"
    );
}

#[tokio::test]
async fn a_killed_process_is_taken_over_at_once_and_a_paused_one_is_fenced() {
    let world = World::new("lease-takeover").await;
    let users = 60;
    world.write_demo(users).await;
    let total = demo::expected_count(users) as u64;

    // kill -9: the lease is still within its 60 s, but its holder is gone from this
    // machine: status says so and the rerun takes it over at once.
    let mut killed = spawn(&world, &[]);
    wait_for_progress(&world, &mut killed).await;
    killed.kill().unwrap();
    killed.wait().unwrap();
    let ranges = status(&world);
    assert!(
        ranges.iter().any(|(s, _)| s == "crashed"),
        "status tells a crashed range from a running one: {ranges:?}"
    );
    assert!(!ranges.iter().any(|(s, _)| s == "running"), "{ranges:?}");

    // A paused process (SIGSTOP) stops renewing; once its 2 s lease expired, another
    // process takes its ranges over.
    let mut paused = spawn(&world, &["--lease-seconds", "2"]);
    let before = checkpointed(&world.db).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpointed(&world.db).await == before {
        assert!(paused.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "no progress within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(&paused, "STOP");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let taker = finish(spawn(&world, &[]), Duration::from_secs(120));
    assert_eq!(taker.status.code(), Some(0), "{}", stderr(&taker));
    // The paused process wakes up to ranges that are no longer its own: its next
    // checkpoint save or lease renewal is refused and it stops.
    signal(&paused, "CONT");
    let woke = finish(paused, Duration::from_secs(60));
    assert_eq!(woke.status.code(), Some(1), "{}", stderr(&woke));
    assert!(stderr(&woke).contains("taken over"), "{}", stderr(&woke));
    // Its late writes are the same documents (idempotent upserts) and its checkpoints
    // moved nothing: every document exactly once.
    assert_eq!(checkpointed(&world.db).await, total);
    assert_target_is_exact(&world, users).await;
}
