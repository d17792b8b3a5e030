//! The terminal display: one overall bar, the busiest collections (the ones that moved
//! most over the last seconds, then the largest), and the rest summed on one line — so
//! a 70-collection database fits on a screen. Counts are documents read (they move with
//! each document, not with each acknowledged batch) beside documents written.

use std::collections::BTreeMap;
use std::time::Instant;

use fireshift::migrate::progress::{CollectionStats, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::rate::{self, Rate};

/// Collections shown on a line of their own.
const BUSIEST: usize = 8;

pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    /// One line per shown collection, created as collections appear (at most BUSIEST).
    lines: Vec<ProgressBar>,
    /// "N other collections …", once there are more than BUSIEST.
    rest: Option<ProgressBar>,
    /// Documents read per collection over the last seconds; one per collection pattern,
    /// so bounded by the mappings, not by the data.
    rates: BTreeMap<String, Rate>,
}

impl Bars {
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let overall = multi.add(ProgressBar::no_length());
        overall.set_style(
            ProgressStyle::with_template("{prefix:.bold} [{bar:30.green}] {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        overall.set_prefix("all collections");
        super::logs::attach(&multi);
        Self {
            multi,
            overall,
            lines: Vec::new(),
            rest: None,
            rates: BTreeMap::new(),
        }
    }

    /// Brings the display up to date; `overall` is the whole run's status line.
    pub fn sync(&mut self, progress: &Progress, now: Instant, overall: String) {
        if let Some(total) = progress.total() {
            self.overall.set_length(total);
        }
        let stats = progress.snapshot();
        self.overall
            .set_position(stats.iter().map(|s| s.read).sum());
        self.overall.set_message(overall);

        let mut ranked: Vec<(f64, &CollectionStats)> = stats
            .iter()
            .map(|s| {
                let r = self.rates.entry(s.pattern.clone()).or_default();
                r.sample(now, s.read);
                (r.per_sec(), s)
            })
            .collect();
        ranked.sort_by(|(ra, a), (rb, b)| rb.total_cmp(ra).then(b.read.cmp(&a.read)));
        let width = ranked
            .iter()
            .map(|(_, s)| s.pattern.len())
            .max()
            .unwrap_or(0)
            .clamp(15, 40);
        let (shown, rest) = ranked.split_at(ranked.len().min(BUSIEST));
        for (i, (per_sec, s)) in shown.iter().enumerate() {
            if i == self.lines.len() {
                let line = self.multi.add(ProgressBar::no_length());
                line.set_style(ProgressStyle::with_template("  {msg}").expect("static template"));
                self.lines.push(line);
            }
            self.lines[i].set_message(format!(
                "{:<width$}  read {:>9}  written {:>9}{}  {}/s",
                shorten(&s.pattern, width),
                rate::count(s.read),
                rate::count(s.written),
                dead(s.dead_lettered),
                rate::per_sec(*per_sec),
            ));
        }
        if !rest.is_empty() {
            let line = self.rest.get_or_insert_with(|| {
                let line = self.multi.add(ProgressBar::no_length());
                line.set_style(ProgressStyle::with_template("  {msg}").expect("static template"));
                line
            });
            let sum = |f: fn(&CollectionStats) -> u64| rest.iter().map(|(_, s)| f(s)).sum::<u64>();
            line.set_message(format!(
                "{:<width$}  read {:>9}  written {:>9}{}  {}/s",
                format!("{} other collections", rest.len()),
                rate::count(sum(|s| s.read)),
                rate::count(sum(|s| s.written)),
                dead(sum(|s| s.dead_lettered)),
                rate::per_sec(rest.iter().map(|(r, _)| r).sum()),
            ));
        }
    }

    /// Leaves the final counts on screen. `abandon`, not `finish`: indicatif's `finish`
    /// moves a bar to its length, so a run stopped by an error would look 100% done.
    pub fn finish(self) {
        super::logs::detach();
        self.overall.abandon();
        for line in self.lines.iter().chain(&self.rest) {
            line.abandon();
        }
    }
}

fn dead(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!("  dead-lettered {}", rate::count(n))
    }
}

/// A pattern longer than the column keeps its end (the collection's own name).
fn shorten(pattern: &str, width: usize) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    if chars.len() <= width {
        return pattern.to_string();
    }
    let tail: String = chars[chars.len() - (width - 1)..].iter().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_patterns_keep_their_end() {
        assert_eq!(shorten("users", 15), "users");
        let s = shorten("users/{}/videos/{}/comments/{}/replies", 15);
        assert_eq!(s.chars().count(), 15);
        assert!(s.starts_with('…') && s.ends_with("replies"), "{s}");
    }
}
