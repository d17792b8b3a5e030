//! `--progress-json`: the run as NDJSON events, one JSON object per line, for the
//! programs that drive fireshift (a dashboard, a workflow engine). Each event carries
//! `event`, `time` (RFC 3339) and `run_id`:
//!
//! * `start`: job, project, Firestore database, target database, dry run;
//! * `progress`: elapsed, read, done, written, dead-lettered, expected total, rate over
//!   the last seconds, ETA, and the same per collection;
//! * `end`: the report `--summary-json` holds (outcome, exit code, error, counts).
//!
//! A line is written whole and flushed, so a reader of a FIFO or a tailed file never
//! sees half an event.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use fireshift::migrate::progress::Progress;
use serde::Serialize;
use serde_json::{json, Value};

/// Where events go; without `--progress-json` every call does nothing.
#[derive(Clone, Default)]
pub struct Events {
    out: Option<Arc<Mutex<Out>>>,
}

struct Out {
    file: std::fs::File,
    run_id: String,
    /// A write failed once (disk full, reader gone): said once, not on every tick.
    failed: bool,
}

impl Events {
    /// Opens (truncates) `path`: the file holds this run's events.
    pub fn open(path: Option<&Path>, run_id: &str) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let file = std::fs::File::create(path)
            .with_context(|| format!("opening --progress-json {}", path.display()))?;
        Ok(Self {
            out: Some(Arc::new(Mutex::new(Out {
                file,
                run_id: run_id.to_string(),
                failed: false,
            }))),
        })
    }

    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// The run began: what it copies where.
    pub fn start(&self, fields: Value) {
        self.emit("start", fields);
    }

    /// The counters now, with the rate over the last seconds.
    pub fn progress(&self, progress: &Progress, per_sec: f64) {
        if !self.enabled() {
            return;
        }
        let collections = progress.snapshot();
        let written: u64 = collections.iter().map(|c| c.written).sum();
        let dead: u64 = collections.iter().map(|c| c.dead_lettered).sum();
        let read: u64 = collections.iter().map(|c| c.read).sum();
        let done = progress.done();
        let total = progress.total();
        let eta = total
            .filter(|_| per_sec > 0.0)
            .map(|t| (t.saturating_sub(done) as f64 / per_sec).round() as u64);
        self.emit(
            "progress",
            json!({
                "elapsed_secs": progress.elapsed().as_secs_f64(),
                "read": read,
                "done": done,
                "written": written,
                "dead_lettered": dead,
                "total": total,
                "docs_per_sec": per_sec,
                "eta_secs": eta,
                "collections": collections,
            }),
        );
    }

    /// The run ended: its report.
    pub fn end(&self, report: &impl Serialize) {
        if !self.enabled() {
            return;
        }
        match serde_json::to_value(report) {
            Ok(v) => self.emit("end", v),
            Err(e) => tracing::warn!("--progress-json: the end event could not be encoded: {e}"),
        }
    }

    fn emit(&self, event: &str, fields: Value) {
        let Some(out) = &self.out else { return };
        let mut out = out.lock().unwrap();
        let mut line = serde_json::Map::new();
        line.insert("event".into(), event.into());
        line.insert(
            "time".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        line.insert("run_id".into(), out.run_id.clone().into());
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        let mut bytes = Value::Object(line).to_string().into_bytes();
        bytes.push(b'\n');
        let written = out.file.write_all(&bytes).and_then(|()| out.file.flush());
        if let Err(e) = written {
            if !out.failed {
                out.failed = true;
                tracing::warn!(
                    "--progress-json: writing an event failed: {e}; later events may be missing"
                );
            }
        }
    }
}
