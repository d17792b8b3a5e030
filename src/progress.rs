//! Progress of a migration: per-collection and overall counters, shown as indicatif bars
//! on a terminal and as periodic log lines otherwise (CI, Kubernetes, `nohup`).
//!
//! Counters are the source of truth for the final summary; the bars only display them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Counts for one collection pattern.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CollectionStats {
    pub pattern: String,
    pub target: String,
    pub read: u64,
    pub written: u64,
    pub dead_lettered: u64,
}

struct Inner {
    stats: BTreeMap<String, CollectionStats>,
    bars: BTreeMap<String, ProgressBar>,
}

/// Shared progress; cheap to clone.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Mutex<Inner>>,
    multi: MultiProgress,
    overall: ProgressBar,
    started: Instant,
    tty: bool,
}

impl Progress {
    /// Bars when stderr is a terminal and `quiet` is off; otherwise hidden bars.
    pub fn new(quiet: bool) -> Self {
        let tty = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if tty {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        });
        let overall = multi.add(ProgressBar::no_length());
        overall.set_style(style("overall"));
        overall.set_prefix("all collections");
        Self {
            inner: Arc::new(Mutex::new(Inner {
                stats: BTreeMap::new(),
                bars: BTreeMap::new(),
            })),
            multi,
            overall,
            started: Instant::now(),
            tty,
        }
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// Total documents expected (from an aggregation count), for the overall ETA.
    pub fn set_total(&self, total: u64) {
        self.overall.set_length(total);
    }

    /// Expected documents of one pattern (collection-group count; display only).
    pub fn set_pattern_total(&self, pattern: &str, total: u64) {
        if let Some(bar) = self.inner.lock().unwrap().bars.get(pattern) {
            bar.set_length(total);
        }
    }

    /// Registers a pattern on first sight; returns true the first time.
    pub fn see(&self, pattern: &str, target: &str) -> bool {
        let mut inner = self.inner.lock().unwrap();
        if let Some(s) = inner.stats.get_mut(pattern) {
            // A collection whose first document was dead-lettered was seen without a
            // target; the first converted document names it.
            if s.target.is_empty() && !target.is_empty() {
                s.target = target.to_string();
            }
            return false;
        }
        inner.stats.insert(
            pattern.to_string(),
            CollectionStats {
                pattern: pattern.to_string(),
                target: target.to_string(),
                ..Default::default()
            },
        );
        let bar = self.multi.add(ProgressBar::no_length());
        bar.set_style(style("collection"));
        bar.set_prefix(pattern.to_string());
        inner.bars.insert(pattern.to_string(), bar);
        true
    }

    pub fn read(&self, pattern: &str, n: u64) {
        if let Some(s) = self.inner.lock().unwrap().stats.get_mut(pattern) {
            s.read += n;
        }
    }

    pub fn written(&self, pattern: &str, n: u64) {
        let inner = &mut *self.inner.lock().unwrap();
        if let Some(s) = inner.stats.get_mut(pattern) {
            s.written += n;
        }
        if let Some(bar) = inner.bars.get(pattern) {
            bar.inc(n);
        }
        self.overall.inc(n);
    }

    pub fn dead_lettered(&self, pattern: &str, n: u64) {
        let inner = &mut *self.inner.lock().unwrap();
        if let Some(s) = inner.stats.get_mut(pattern) {
            s.dead_lettered += n;
        }
        if let Some(bar) = inner.bars.get(pattern) {
            bar.inc(n);
        }
        self.overall.inc(n);
    }

    pub fn snapshot(&self) -> Vec<CollectionStats> {
        self.inner.lock().unwrap().stats.values().cloned().collect()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// One plain line for logs: done/total, rate, ETA.
    pub fn line(&self) -> String {
        let done = self.overall.position();
        let secs = self.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let dead: u64 = self.snapshot().iter().map(|s| s.dead_lettered).sum();
        match self.overall.length() {
            Some(total) if total > 0 => {
                let eta = if rate > 0.0 {
                    format!("{:.0}s", total.saturating_sub(done) as f64 / rate)
                } else {
                    "?".into()
                };
                format!(
                    "{done}/{total} documents ({:.1}%), {rate:.0} docs/s, ETA {eta}, {dead} dead-lettered",
                    100.0 * done as f64 / total as f64
                )
            }
            _ => format!("{done} documents, {rate:.0} docs/s, {dead} dead-lettered"),
        }
    }

    /// Logs [`Self::line`] every `every` until the returned handle is dropped (only when
    /// no bars are drawn).
    pub fn spawn_log_lines(&self, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if self.tty {
            return None;
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                tracing::info!("progress: {}", this.line());
            }
        }))
    }

    /// Stops drawing (bars stay on screen as their last state). `abandon`, not
    /// `finish`: indicatif's `finish` moves every bar to its length, so a run stopped
    /// by an error would then report itself 100% done in [`Self::line`].
    pub fn finish(&self) {
        for bar in self.inner.lock().unwrap().bars.values() {
            bar.abandon();
        }
        self.overall.abandon();
    }
}

fn style(kind: &str) -> ProgressStyle {
    let template = if kind == "overall" {
        "{prefix:>28.bold} [{bar:30.green}] {pos}/{len} {per_sec} ETA {eta} ({elapsed})"
    } else {
        "{prefix:>28} [{bar:30.cyan}] {pos}/{len} {per_sec}"
    };
    ProgressStyle::with_template(template)
        .expect("static template")
        .progress_chars("=> ")
}
