//! A graceful stop, through the real binary: SIGTERM or SIGINT mid-run stops reading,
//! lands what was in flight, saves checkpoints, marks the ranges `interrupted`, prints
//! the summary, writes `--summary-json` and exits 143 or 130; the rerun resumes without
//! loss or duplicates. A second signal exits at once even when the drain cannot finish.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::proxy::TcpProxy;
use common::{assert_target_is_exact, checkpointed, stderr, World, SLOW};
use fireshift_demo as demo;

/// A slow migrate (see [`SLOW`]) with its stdout and stderr kept, its report in
/// `summary` and its events (one a second) in `summary` + `.ndjson`.
fn spawn(world: &World, uri: &str, summary: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "migrate",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--mongodb-uri",
            uri,
            "--batch-size",
            "25",
            "--progress-every",
            "1",
            "--progress-json",
        ])
        .arg(events_path(summary))
        .arg("--summary-json")
        .arg(summary)
        .args(SLOW)
        .env("FIRESHIFT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fireshift")
}

fn events_path(summary: &std::path::Path) -> std::path::PathBuf {
    summary.with_extension("ndjson")
}

/// The `--progress-json` events of a run, parsed line by line.
fn events(summary: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(events_path(summary)).expect("the events file");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// Waits until the run has saved a checkpoint with documents in it.
async fn wait_for_progress(world: &World, child: &mut Child, past: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpointed(&world.db).await <= past {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be stopped"
        );
        assert!(Instant::now() < deadline, "no progress within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for the process to end, at most `limit`.
fn wait_at_most(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "still running {limit:?} after the signal: {}",
                stderr(&child.wait_with_output().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn states(world: &World) -> Vec<String> {
    let out = world.fireshift(&["status", "--database", &world.database], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.next()?.parse::<u32>().ok()?;
            words.next().map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn sigterm_and_sigint_stop_gracefully_and_the_rerun_resumes() {
    let world = World::new("graceful-stop").await;
    let users = 100;
    world.write_demo(users).await;
    let total = demo::expected_count(users) as u64;
    let uri = common::mongodb_uri();
    let mut before = 0;
    for (name, code) in [("TERM", 143), ("INT", 130)] {
        let summary = tempfile::NamedTempFile::new().unwrap();
        let mut child = spawn(&world, &uri, summary.path());
        wait_for_progress(&world, &mut child, before).await;
        // Events flow while the run goes on, not only at its end.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(events_path(summary.path()))
            .unwrap_or_default()
            .contains(r#""event":"progress""#)
        {
            assert!(child.try_wait().unwrap().is_none(), "the run ended first");
            assert!(Instant::now() < deadline, "no progress event within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        signal(&child, name);
        let out = wait_at_most(child, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(code), "SIG{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("stopped on request"), "{err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("documents read"),
            "the summary is printed: {stdout}"
        );
        let saved = checkpointed(&world.db).await;
        assert!(saved < total, "SIG{name} stopped the run before its end");
        // Nothing was left half-done: every document this run read landed and the
        // checkpoints account for each (no island, nothing for the resume to redo).
        let landed: u64 = world
            .snapshot()
            .await
            .values()
            .map(|d| d.len() as u64)
            .sum();
        assert_eq!(
            landed, saved,
            "the drain landed and checkpointed every document read"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(summary.path()).unwrap()).unwrap();
        assert_eq!(json["written"].as_u64(), Some(saved - before), "{json}");
        assert_eq!(json["read"], json["written"], "{json}");
        // The report says how the run ended, for a wrapper that must not guess.
        assert_eq!(json["outcome"], "interrupted", "{json}");
        assert_eq!(json["exit_code"].as_i64(), Some(i64::from(code)), "{json}");
        assert_eq!(json["project"].as_str(), Some(world.project.as_str()));
        assert_eq!(json["database"].as_str(), Some(world.database.as_str()));
        assert!(
            json["job"].as_str().unwrap().contains(&world.project),
            "{json}"
        );
        assert!(json["error"].is_null(), "{json}");
        // The events: a start, progress that only grows, an end carrying the report.
        let events = events(summary.path());
        // The temporary file's sibling is not removed with it.
        std::fs::remove_file(events_path(summary.path())).unwrap();
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"start"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"end"), "{kinds:?}");
        assert!(
            kinds.contains(&"progress"),
            "a progress event a second: {kinds:?}"
        );
        assert!(
            events.iter().all(|e| e["run_id"] == json["run_id"]),
            "{events:?}"
        );
        let reads: Vec<u64> = events
            .iter()
            .filter(|e| e["event"] == "progress")
            .map(|e| e["read"].as_u64().unwrap())
            .collect();
        assert!(reads.windows(2).all(|w| w[0] <= w[1]), "{reads:?}");
        let end = events.last().unwrap();
        assert_eq!(end["outcome"], json["outcome"], "{end}");
        assert_eq!(end["written"], json["written"], "{end}");
        assert_eq!(end["exit_code"], json["exit_code"], "{end}");
        let states = states(&world);
        assert!(
            states.iter().any(|s| s == "interrupted"),
            "status shows the stopped ranges: {states:?}"
        );
        assert!(
            !states.iter().any(|s| s == "copying"),
            "no range is left `copying`: {states:?}"
        );
        before = saved;
    }
    // The rerun resumes: it writes exactly what the checkpoints do not cover.
    let summary = tempfile::NamedTempFile::new().unwrap();
    let out = world.migrate(&[
        "--quiet",
        "--summary-json",
        summary.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.path()).unwrap()).unwrap();
    assert_eq!(json["written"].as_u64(), Some(total - before), "{json}");
    assert_eq!(json["outcome"], "clean", "{json}");
    assert_eq!(json["exit_code"].as_i64(), Some(0), "{json}");
    assert_eq!(checkpointed(&world.db).await, total);
    assert_target_is_exact(&world, users).await;
}

#[tokio::test]
async fn a_second_signal_exits_at_once_when_the_drain_cannot_finish() {
    let world = World::new("second-signal").await;
    world.write_demo(30).await;
    let proxy = TcpProxy::to_mongodb().await;
    let summary = tempfile::NamedTempFile::new().unwrap();
    let mut child = spawn(&world, &proxy.mongodb_uri(), summary.path());
    wait_for_progress(&world, &mut child, 0).await;
    // MongoDB stops answering: the drain after the first signal waits on writes that
    // would take the 60 s command timeout and then --retry-timeout.
    proxy.swallow_requests(true);
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal waits for the drain"
    );
    signal(&child, "TERM");
    let out = wait_at_most(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(stderr(&out).contains("second signal"), "{}", stderr(&out));
    let _ = std::fs::remove_file(events_path(summary.path()));
}
