//! Nothing waits forever: a server that accepts connections and never answers is
//! reported within seconds at the start, and mid-run it is retried until
//! `--retry-timeout` or stopped by `--stall-timeout`, with the checkpoints kept.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::proxy::TcpProxy;
use common::{checkpointed, mongodb_uri, stderr, World, SLOW};

/// A TCP server that accepts every connection and never sends a byte.
struct BlackHole {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        Self { addr, task }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits for `child` at most `limit`; panics (killing it) if it is still running.
async fn wait_at_most(mut child: Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn migrate(world: &World, emulator: &str, mongodb: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "migrate",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--mongodb-uri",
            mongodb,
        ])
        .args(extra)
        .env("FIRESTORE_EMULATOR_HOST", emulator)
        .env("FIRESHIFT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_firestore_that_never_answers_at_the_start_is_reported_within_seconds() {
    let world = World::new("live-fs-hole").await;
    let hole = BlackHole::start().await;
    // A long retry deadline: the first connection must not wait for it.
    let child = migrate(
        &world,
        &hole.addr.to_string(),
        &mongodb_uri(),
        &["--retry-timeout", "300"],
    );
    let out = wait_at_most(child, Duration::from_secs(60)).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&hole.addr.to_string()) && err.contains("no answer"),
        "{err}"
    );
}

#[tokio::test]
async fn a_mongodb_that_never_answers_at_the_start_is_reported_within_seconds() {
    let world = World::new("live-mongo-hole").await;
    world.write_demo(1).await;
    let hole = BlackHole::start().await;
    let emulator = std::env::var("FIRESTORE_EMULATOR_HOST").unwrap();
    let child = migrate(
        &world,
        &emulator,
        &format!("mongodb://{}/?directConnection=true", hole.addr),
        &["--retry-timeout", "300"],
    );
    let out = wait_at_most(child, Duration::from_secs(90)).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("MongoDB") && err.contains(&hole.addr.to_string()),
        "{err}"
    );
}

/// A slow migrate through a proxy to the emulator, started and past its first
/// checkpoint; then the proxy swallows every request (the server hangs).
async fn hang_mid_run(world: &World, extra: &[&str]) -> (TcpProxy, Child) {
    world.write_demo(4).await;
    let emulator = std::env::var("FIRESTORE_EMULATOR_HOST").unwrap();
    let proxy = TcpProxy::start(emulator).await;
    let args = [SLOW, &["--batch-size", "10"], extra].concat();
    let mut child = migrate(world, &proxy.addr.to_string(), &mongodb_uri(), &args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpointed(&world.db).await == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "migrate ended ({status}) before its first checkpoint: {}",
                stderr(&child.wait_with_output().unwrap())
            );
        }
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.swallow_requests(true);
    (proxy, child)
}

#[tokio::test]
async fn a_firestore_that_stops_answering_mid_run_is_retried_until_the_deadline_then_resumable() {
    let world = World::new("live-fs-hang").await;
    let (_proxy, child) =
        hang_mid_run(&world, &["--request-timeout", "2", "--retry-timeout", "6"]).await;
    let out = wait_at_most(child, Duration::from_secs(120)).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("still failing after retrying") && err.contains("no answer"),
        "{err}"
    );
    let kept = checkpointed(&world.db).await;
    let total = fireshift_demo::expected_count(4) as u64;
    assert!(kept > 0 && kept < total, "kept {kept} of {total}");
    // The server is back (directly): the same job finishes, exactly.
    let out = world.migrate(&["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    common::assert_target_is_exact(&world, 4).await;
}

#[tokio::test]
async fn a_run_without_progress_is_stopped_by_the_stall_timeout_saying_what_it_waits_on() {
    let world = World::new("live-stall").await;
    // Retries would go on for 300 s: the stall timeout stops the run first.
    let (_proxy, child) = hang_mid_run(
        &world,
        &[
            "--request-timeout",
            "120",
            "--retry-timeout",
            "300",
            "--stall-warning",
            "2",
            "--stall-timeout",
            "6",
        ],
    )
    .await;
    let out = wait_at_most(child, Duration::from_secs(90)).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no document acknowledged for")
            && err.contains("--stall-timeout")
            && err.contains(": reading the source"),
        "{err}"
    );
    assert!(checkpointed(&world.db).await > 0);
}
