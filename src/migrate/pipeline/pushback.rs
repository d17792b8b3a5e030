//! The writer slows down by itself when MongoDB pushes back — a write that had to ride
//! out retryable errors (throttling, write conflicts, `ExceededTimeLimit`, timeouts) or
//! whose latency per document jumped far above the usual — and says so; it speeds up
//! again while the server stays calm, up to the operator's limit (or none).
//! Multiplicative decrease, gradual increase: the classic way to share a server
//! without overloading it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::throttle::Throttle;

/// A batch this much slower than usual, both per document and as a whole, counts as
/// pushback. Both: a small batch costs more per document (the journal commit is per
/// batch) and a large one more in all, so neither alone says the server slowed down.
const SLOWER: f64 = 4.0;
/// ... when it also took at least this long (small batches jitter).
const SLOW_BATCH: Duration = Duration::from_millis(250);
/// One slowdown per this period: the batches in flight when the server pushed back all
/// report it, and one event must not halve the rate once per batch.
const SETTLE: Duration = Duration::from_secs(2);
/// Calm this long before each step up.
const CALM: Duration = Duration::from_secs(5);
/// The floor a slowdown never goes below, in documents per second.
const FLOOR: f64 = 10.0;
/// How far back the observed write rate looks.
const WINDOW: Duration = Duration::from_secs(10);

/// The write pace of one process, shared by its ranges' writers.
#[derive(Debug)]
pub struct Pushback {
    throttle: Arc<Throttle>,
    /// The operator's limit (infinite: none): the pace never goes above it.
    ceiling: f64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Usual seconds per document and per batch of a calm batch (moving averages).
    usual: Option<(f64, f64)>,
    last_change: Option<Instant>,
    /// Documents acknowledged recently, for the rate a slowdown starts from.
    acked: VecDeque<(Instant, u64)>,
}

impl Pushback {
    /// Paces writes through `throttle`, whose rate now is the operator's limit.
    pub fn new(throttle: Arc<Throttle>) -> Self {
        let ceiling = throttle.per_sec();
        Self {
            throttle,
            ceiling,
            state: Mutex::default(),
        }
    }

    pub fn throttle(&self) -> &Arc<Throttle> {
        &self.throttle
    }

    /// Takes in one written batch; returns what to tell the operator when the pace
    /// changed.
    pub fn observe(
        &self,
        now: Instant,
        docs: usize,
        took: Duration,
        pushed_back: Option<&str>,
    ) -> Option<String> {
        let mut s = self.state.lock().unwrap();
        s.acked.push_back((now, docs as u64));
        while s
            .acked
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            s.acked.pop_front();
        }
        let per_doc = took.as_secs_f64() / docs.max(1) as f64;
        let per_batch = took.as_secs_f64();
        let slow = s.usual.is_some_and(|(doc, batch)| {
            per_doc > SLOWER * doc && per_batch > SLOWER * batch && took >= SLOW_BATCH
        });
        let settled = s
            .last_change
            .is_none_or(|t| now.duration_since(t) >= SETTLE);
        if pushed_back.is_some() || slow {
            if !settled {
                return None;
            }
            let now_rate = self.throttle.per_sec();
            let from = if now_rate.is_finite() {
                now_rate
            } else {
                observed_rate(&s.acked, now)
            };
            let to = (from / 2.0).max(FLOOR).min(self.ceiling);
            self.throttle.set_per_sec(to);
            s.last_change = Some(now);
            let why = match pushed_back {
                Some(message) => format!("retryable errors: {message}"),
                None => format!(
                    "{:.1} ms per document, usually {:.1}",
                    per_doc * 1e3,
                    s.usual.unwrap_or_default().0 * 1e3
                ),
            };
            return Some(format!(
                "MongoDB pushed back ({why}): writes slowed to {to:.0} documents/s"
            ));
        }
        s.usual = Some(match s.usual {
            Some((doc, batch)) => (0.8 * doc + 0.2 * per_doc, 0.8 * batch + 0.2 * per_batch),
            None => (per_doc, per_batch),
        });
        let rate = self.throttle.per_sec();
        let calm = s.last_change.is_none_or(|t| now.duration_since(t) >= CALM);
        if rate < self.ceiling && calm {
            let up = rate * 1.25;
            s.last_change = Some(now);
            if up >= self.ceiling
                || (self.ceiling.is_infinite() && up > 4.0 * observed_rate(&s.acked, now))
            {
                self.throttle.set_per_sec(self.ceiling);
                return Some(if self.ceiling.is_finite() {
                    format!(
                        "MongoDB is calm again: writes back to the limit of {:.0} documents/s",
                        self.ceiling
                    )
                } else {
                    "MongoDB is calm again: writes back to full speed".into()
                });
            }
            self.throttle.set_per_sec(up);
            return Some(format!("MongoDB is calm: writes up to {up:.0} documents/s"));
        }
        None
    }
}

/// Documents per second over the window (at least the floor).
fn observed_rate(acked: &VecDeque<(Instant, u64)>, now: Instant) -> f64 {
    let docs: u64 = acked.iter().map(|(_, n)| n).sum();
    let span = acked
        .front()
        .map_or(Duration::ZERO, |(t, _)| now.duration_since(*t))
        .as_secs_f64()
        .max(1.0);
    (docs as f64 / span).max(FLOOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn batch_size_alone_is_not_pushback() {
        let p = Pushback::new(Arc::new(Throttle::unlimited()));
        let t0 = Instant::now();
        // Large batches: 1000 documents in 300 ms.
        for i in 0..5 {
            p.observe(t0 + ms(1000 * i), 1000, ms(300), None);
        }
        // The tail of a small collection: 10 documents in 100 ms (10 ms each, 33 times
        // the usual per document) — the commit, not the server, costs that.
        assert_eq!(p.observe(t0 + ms(5000), 10, ms(100), None), None);
        // And back to large after small ones.
        for i in 0..5 {
            p.observe(t0 + ms(6000 + 100 * i), 10, ms(60), None);
        }
        assert_eq!(p.observe(t0 + ms(7000), 1000, ms(400), None), None);
        assert!(p.throttle().per_sec().is_infinite());
    }

    #[test]
    fn retryable_errors_halve_the_pace_once_per_event_and_calm_restores_it() {
        let p = Pushback::new(Arc::new(Throttle::new(2000.0)));
        let t0 = Instant::now();
        assert_eq!(p.observe(t0, 400, ms(100), None), None);
        let said = p
            .observe(t0 + ms(200), 400, ms(900), Some("WriteConflict"))
            .expect("a slowdown is said");
        assert!(
            said.contains("WriteConflict") && said.contains("1000"),
            "{said}"
        );
        assert_eq!(p.throttle().per_sec(), 1000.0);
        // The other batches of the same event do not halve it again.
        assert_eq!(
            p.observe(t0 + ms(300), 400, ms(900), Some("WriteConflict")),
            None
        );
        assert_eq!(p.throttle().per_sec(), 1000.0);
        // Calm: step by step back to the operator's limit, never above it.
        let mut t = t0 + ms(300);
        let mut said = Vec::new();
        for _ in 0..40 {
            t += Duration::from_secs(1);
            said.extend(p.observe(t, 400, ms(100), None));
        }
        assert_eq!(p.throttle().per_sec(), 2000.0);
        assert!(
            said.last().unwrap().contains("back to the limit of 2000"),
            "{said:?}"
        );
    }

    #[test]
    fn a_latency_jump_slows_an_unlimited_writer_from_its_observed_rate() {
        let p = Pushback::new(Arc::new(Throttle::unlimited()));
        let t0 = Instant::now();
        // 1000 documents a second, 1 ms each.
        for i in 0..10 {
            assert_eq!(p.observe(t0 + ms(1000 * i), 1000, ms(1000), None), None);
        }
        // Ten times slower per document: pushback without an error.
        let said = p
            .observe(t0 + ms(10_000), 1000, ms(10_000), None)
            .expect("a slowdown is said");
        assert!(said.contains("ms per document"), "{said}");
        let rate = p.throttle().per_sec();
        assert!(rate.is_finite() && rate < 1000.0, "{rate}");
        // Calm again: back to no limit at all.
        let mut t = t0 + ms(10_000);
        for _ in 0..60 {
            t += Duration::from_secs(1);
            p.observe(t, 1000, ms(1000), None);
        }
        assert!(p.throttle().per_sec().is_infinite());
    }
}
