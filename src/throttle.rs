//! Rate limits that protect production: a shared budget of units (documents read,
//! documents written) per second, taken by every range of a process before it reads or
//! writes. Smooth, not bursty: each request is scheduled after the ones before it
//! (generic cell rate algorithm), so over any window of `w` seconds at most
//! `rate × (w + BURST)` units pass, and an idle period saves up no more than `BURST`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How far ahead of its schedule a request may go: the largest burst, in time.
const BURST: Duration = Duration::from_millis(100);

/// A rate limit shared by the tasks of one process; it may change while in use (the
/// writer slows down when MongoDB pushes back).
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Units a second; infinite: no limit.
    per_sec: f64,
    /// When the units granted so far would all have passed at `per_sec` (the
    /// "theoretical arrival time").
    tat: Option<Instant>,
}

impl Throttle {
    /// At most `per_sec` units a second (`per_sec` > 0; infinite for no limit).
    pub fn new(per_sec: f64) -> Self {
        assert!(per_sec > 0.0, "a rate limit must be positive");
        Self {
            state: Mutex::new(State { per_sec, tat: None }),
        }
    }

    /// No limit until [`Throttle::set_per_sec`] sets one.
    pub fn unlimited() -> Self {
        Self::new(f64::INFINITY)
    }

    pub fn per_sec(&self) -> f64 {
        self.state.lock().unwrap().per_sec
    }

    /// Changes the rate from now on (infinite: no limit).
    pub fn set_per_sec(&self, per_sec: f64) {
        assert!(per_sec > 0.0, "a rate limit must be positive");
        self.state.lock().unwrap().per_sec = per_sec;
    }

    /// Reserves `n` units; returns how long to wait before using them. Reservations
    /// are taken in call order, so concurrent callers share the budget fairly.
    pub fn reserve(&self, n: u64, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap();
        if state.per_sec.is_infinite() {
            state.tat = None;
            return Duration::ZERO;
        }
        let cost = Duration::from_secs_f64(n as f64 / state.per_sec);
        // An idle limit restarts from now: time not used is not saved up (beyond BURST).
        let start = state.tat.map_or(now, |t| t.max(now));
        let end = start + cost;
        state.tat = Some(end);
        // A request may use its units once the end of its slot is within BURST of now.
        end.checked_sub(BURST)
            .map_or(Duration::ZERO, |go| go.saturating_duration_since(now))
    }

    /// Waits until `n` units may be used.
    pub async fn take(&self, n: u64) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unlimited_throttle_never_waits_until_a_limit_is_set() {
        let t = Throttle::unlimited();
        let now = Instant::now();
        assert_eq!(t.reserve(1_000_000, now), Duration::ZERO);
        t.set_per_sec(10.0);
        assert_eq!(t.reserve(1, now), Duration::ZERO);
        assert!(t.reserve(10, now) > Duration::from_millis(900));
    }

    use super::*;

    /// Grants `n` units at a time as fast as the limit allows; returns the grant times.
    fn grants(t: &Throttle, n: u64, count: usize, t0: Instant) -> Vec<Instant> {
        let mut now = t0;
        (0..count)
            .map(|_| {
                now += t.reserve(n, now);
                now
            })
            .collect()
    }

    #[test]
    fn no_window_passes_more_than_the_rate_plus_one_burst() {
        let t = Throttle::new(2000.0);
        let t0 = Instant::now();
        // 40,000 units in batches of 100: 20 s at 2000/s.
        let times = grants(&t, 100, 400, t0);
        let span = times.last().unwrap().duration_since(t0).as_secs_f64();
        assert!((19.8..=20.0).contains(&span), "{span}");
        // Every 5 s window: at most 2000 × 5.1 units.
        for (i, start) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .take_while(|g| g.duration_since(*start) < Duration::from_secs(5))
                .count() as u64
                * 100;
            assert!(within <= 10_200, "{within} units in 5 s from grant {i}");
        }
    }

    #[test]
    fn idle_time_is_not_saved_up() {
        let t = Throttle::new(100.0);
        let t0 = Instant::now();
        assert_eq!(t.reserve(10, t0), Duration::ZERO);
        // Ten seconds idle, then a flood: only BURST's worth goes at once.
        let later = t0 + Duration::from_secs(10);
        let waits: Vec<Duration> = (0..5).map(|_| t.reserve(10, later)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        assert!(waits[1] > Duration::ZERO, "{waits:?}");
        assert!(
            (waits[4].as_secs_f64() - 0.4).abs() < 1e-6,
            "the fifth 10-unit request waits 0.5 s less the 0.1 s burst: {waits:?}"
        );
    }
}
