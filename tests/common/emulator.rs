//! A private Firestore emulator on a port of its own (restarted, or started from an
//! export with `--import-data`), for the tests that must not touch the shared one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Firestore emulator in its own process group (the launcher is a shell
/// script that starts java as a child, so the group is what has to be killed).
pub struct PrivateEmulator {
    child: Child,
    pub port: u16,
}

impl PrivateEmulator {
    pub fn binary() -> PathBuf {
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
    pub fn start(port: u16, import: Option<&Path>, log: &Path) -> Self {
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
    pub fn http(&self, method: &str, path: &str, body: &str) -> Option<String> {
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
    pub fn export(&self, project: &str, dir: &Path) -> PathBuf {
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
    pub fn shutdown(mut self) {
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
