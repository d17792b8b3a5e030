//! The Firestore server restarted under a running job (issue 4, faults): the job rides
//! out the outage with its own retries and finishes with exactly the data an
//! uninterrupted run writes.
//!
//! This file is its own test process on purpose: it points `FIRESTORE_EMULATOR_HOST`
//! at a private emulator on a free port, which must not leak into the tests that share
//! the emulator `scripts/services` started.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    assert_target_is_exact, checkpointed, free_port, migrate_until_first_checkpoint, mongodb_uri,
    stderr, World,
};
use fireshift_demo as demo;

/// A private Firestore emulator in its own process group (the launcher is a shell
/// script that starts java as a child, so the group is what has to be killed).
struct PrivateEmulator {
    child: Child,
    port: u16,
}

impl PrivateEmulator {
    fn binary() -> PathBuf {
        let bin = std::env::var("FIRESHIFT_EMULATOR_BIN").map_or_else(
            |_| {
                PathBuf::from(
                    "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator",
                )
            },
            PathBuf::from,
        );
        assert!(
            bin.exists(),
            "{} missing: run scripts/services up (it checks for the emulator)",
            bin.display()
        );
        bin
    }

    /// Starts the emulator, loading `import` (an export's `.overall_export_metadata`)
    /// before it answers, and waits until its HTTP endpoint answers.
    fn start(port: u16, import: Option<&Path>, log: &Path) -> Self {
        let mut cmd = Command::new(Self::binary());
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
        if let Some(file) = import {
            cmd.arg(format!("--import-data={}", file.display()));
        }
        let log = std::fs::File::create(log).unwrap();
        let child = cmd
            .env("JAVA_TOOL_OPTIONS", "-Xmx1g")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start the Firestore emulator");
        let emulator = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while emulator.http("GET", "/", "").is_none() {
            assert!(Instant::now() < deadline, "private emulator did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        emulator
    }

    /// One HTTP/1.1 request to the emulator's REST endpoint; `None` while it does not
    /// answer. A client crate for three requests would be more code than this.
    fn http(&self, method: &str, path: &str, body: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        // The emulator keeps the connection open despite `Connection: close`: read the
        // head, then exactly Content-Length bytes.
        let mut response = Vec::new();
        let mut chunk = [0u8; 4096];
        let body_len = loop {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            response.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&response);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break end + 4 + length;
            }
        };
        while response.len() < body_len {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        let response = String::from_utf8_lossy(&response).into_owned();
        response.starts_with("HTTP/1.1 200").then_some(response)
    }

    /// Exports `project` into `dir`; returns the file `--import-data` takes.
    fn export(&self, project: &str, dir: &Path) -> PathBuf {
        let body = format!(
            r#"{{"database":"projects/{project}/databases/(default)","export_directory":"{}","export_name":"snap"}}"#,
            dir.display()
        );
        let path = format!("/emulator/v1/projects/{project}:export");
        self.http("POST", &path, &body)
            .unwrap_or_else(|| panic!("export of {project} failed"));
        let file = dir.join("snap/snap.overall_export_metadata");
        assert!(file.exists(), "export wrote no {}", file.display());
        file
    }

    /// The emulator's own clean shutdown; waits until the port is closed.
    fn shutdown(mut self) {
        self.http("POST", "/shutdown", "")
            .expect("the emulator accepted /shutdown");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "emulator still answers");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.wait();
    }
}

impl Drop for PrivateEmulator {
    fn drop(&mut self) {
        // Negative pid: the whole group, java included.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

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
