//! Rates people can read: documents per second over the last seconds (not since the
//! start, which hides a stall and lags a speed-up), and counts with thousands separators.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How far back a rate looks.
const WINDOW: Duration = Duration::from_secs(10);

/// A sliding window of (time, count) samples; bounded by the sampling period.
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    /// Adds a sample of a counter that only grows.
    pub fn sample(&mut self, at: Instant, count: u64) {
        self.samples.push_back((at, count));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Per second over the window (0 until two samples exist).
    pub fn per_sec(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => {
                c1.saturating_sub(*c0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate's number: whole from 10 up (`4,026`), one decimal below (`2.5`); the caller
/// adds the unit.
pub fn per_sec(r: f64) -> String {
    if r >= 10.0 {
        count(r.round() as u64)
    } else {
        format!("{r:.1}")
    }
}

/// `3725` seconds → `1h02m05s`; `65` → `1m05s`; `7` → `7s`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates_read_like_numbers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(per_sec(4026.4), "4,026");
        assert_eq!(per_sec(2.0298), "2.0");
        assert_eq!(duration(7), "7s");
        assert_eq!(duration(65), "1m05s");
        assert_eq!(duration(3725), "1h02m05s");
    }

    #[test]
    fn the_rate_is_over_the_window_not_since_the_start() {
        let t0 = Instant::now();
        let mut r = Rate::default();
        r.sample(t0, 0);
        assert_eq!(r.per_sec(), 0.0);
        // Fast at first, then stalled: after the window, the rate says so.
        r.sample(t0 + Duration::from_secs(1), 1000);
        assert_eq!(r.per_sec(), 1000.0);
        for s in 2..=20 {
            r.sample(t0 + Duration::from_secs(s), 1000);
        }
        assert_eq!(r.per_sec(), 0.0);
        r.sample(t0 + Duration::from_secs(21), 1500);
        assert!((r.per_sec() - 50.0).abs() < 1e-9, "{}", r.per_sec());
    }
}
