//! Progress of a migration: per-collection counters and the expected total. The
//! counters are the source of truth for the final summary; how they are shown (bars on
//! a terminal, periodic log lines elsewhere) is the caller's business.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

#[derive(Default)]
struct Inner {
    stats: Mutex<BTreeMap<String, CollectionStats>>,
    /// What each range is doing right now (for a watchdog to say what a stalled run
    /// waits on).
    activity: Mutex<BTreeMap<String, &'static str>>,
    /// Documents written or dead-lettered, all collections.
    done: AtomicU64,
    /// Expected documents (`u64::MAX`: unknown).
    total: AtomicU64,
}

/// Shared progress counters; cheap to clone, safe to update from every task.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        let inner = Inner::default();
        inner.total.store(u64::MAX, Ordering::Relaxed);
        Self {
            inner: Arc::new(inner),
            started: Instant::now(),
        }
    }

    /// Total documents expected (the source's estimate), for an ETA.
    pub fn set_total(&self, total: u64) {
        self.inner.total.store(total, Ordering::Relaxed);
    }

    /// The expected total, when known.
    pub fn total(&self) -> Option<u64> {
        Some(self.inner.total.load(Ordering::Relaxed)).filter(|t| *t != u64::MAX)
    }

    /// Documents written or dead-lettered so far.
    pub fn done(&self) -> u64 {
        self.inner.done.load(Ordering::Relaxed)
    }

    /// Registers a pattern on first sight; returns true the first time.
    pub fn see(&self, pattern: &str, target: &str) -> bool {
        let mut stats = self.inner.stats.lock().unwrap();
        if let Some(s) = stats.get_mut(pattern) {
            // A collection whose first document was dead-lettered was seen without a
            // target; the first converted document names it.
            if s.target.is_empty() && !target.is_empty() {
                s.target = target.to_string();
            }
            return false;
        }
        stats.insert(
            pattern.to_string(),
            CollectionStats {
                pattern: pattern.to_string(),
                target: target.to_string(),
                ..Default::default()
            },
        );
        true
    }

    pub fn read(&self, pattern: &str, n: u64) {
        if let Some(s) = self.inner.stats.lock().unwrap().get_mut(pattern) {
            s.read += n;
        }
    }

    pub fn written(&self, pattern: &str, n: u64) {
        if let Some(s) = self.inner.stats.lock().unwrap().get_mut(pattern) {
            s.written += n;
        }
        self.inner.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dead_lettered(&self, pattern: &str, n: u64) {
        if let Some(s) = self.inner.stats.lock().unwrap().get_mut(pattern) {
            s.dead_lettered += n;
        }
        self.inner.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Records what range `label` is doing (`reading the source`, `writing a batch`, …).
    pub fn note(&self, label: &str, what: &'static str) {
        if label.is_empty() {
            return;
        }
        let mut a = self.inner.activity.lock().unwrap();
        match a.get_mut(label) {
            Some(w) => *w = what,
            None => {
                a.insert(label.to_string(), what);
            }
        }
    }

    /// Forgets a range that finished.
    pub fn done_with(&self, label: &str) {
        self.inner.activity.lock().unwrap().remove(label);
    }

    /// What every unfinished range is doing, e.g. `range 0: waiting for the sink`.
    pub fn activities(&self) -> Vec<String> {
        self.inner
            .activity
            .lock()
            .unwrap()
            .iter()
            .map(|(l, w)| format!("{l}: {w}"))
            .collect()
    }

    pub fn snapshot(&self) -> Vec<CollectionStats> {
        self.inner.stats.lock().unwrap().values().cloned().collect()
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// One plain line for logs: done/total, rate, ETA.
    pub fn line(&self) -> String {
        let done = self.done();
        let secs = self.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let dead: u64 = self.snapshot().iter().map(|s| s.dead_lettered).sum();
        match self.total() {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_per_collection_and_overall() {
        let p = Progress::new();
        assert!(p.see("users", ""));
        assert!(!p.see("users", "users"));
        p.read("users", 3);
        p.written("users", 2);
        p.dead_lettered("users", 1);
        assert_eq!(p.done(), 3);
        let s = &p.snapshot()[0];
        assert_eq!(
            (s.target.as_str(), s.read, s.written, s.dead_lettered),
            ("users", 3, 2, 1)
        );
        assert_eq!(p.total(), None);
        p.set_total(6);
        assert!(
            p.line().starts_with("3/6 documents (50.0%)"),
            "{}",
            p.line()
        );
    }
}
