//! How a migration's progress is shown: on a terminal, an overall bar and the busiest
//! collections ([`bars`]); elsewhere (CI, Kubernetes, `nohup`) a log line every few
//! seconds; for programs, NDJSON events ([`events`]). All read the library's counters
//! ([`fireshift::migrate::progress::Progress`]); nothing here counts.
//!
//! * [`rate`] rates over the last seconds and readable numbers;
//! * [`logs`] the log writer that keeps log lines above the bars;
//! * [`follow`] the follow's line once the copy is done.

mod bars;
pub mod events;
pub mod follow;
pub mod logs;
pub mod rate;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use fireshift::migrate::progress::Progress;
use tokio::task::JoinHandle;

use bars::Bars;
use events::Events;
use rate::Rate;

/// How often the display is brought up to date (the clock ticks with it).
const REDRAW: Duration = Duration::from_millis(250);

/// Shows `progress` until [`Display::finish`].
pub struct Display {
    task: Option<JoinHandle<Option<Bars>>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Display {
    /// Bars when stderr is a terminal and `quiet` is off, log lines every `every_secs`
    /// otherwise; `progress` events every `every_secs` either way.
    /// `note` (e.g. the rate limits) ends every status line.
    pub fn start(
        progress: &Progress,
        quiet: bool,
        events: &Events,
        every_secs: u64,
        note: Option<String>,
    ) -> Self {
        let tty = !quiet && std::io::stderr().is_terminal();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (progress, events) = (progress.clone(), events.clone());
        let every = Duration::from_secs(every_secs.max(1));
        let task = tokio::spawn(async move {
            let mut bars = tty.then(Bars::new);
            let mut rate = Rate::default();
            let mut tick = tokio::time::interval(REDRAW);
            let mut last_report = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let now = Instant::now();
                rate.sample(now, read(&progress));
                let per_sec = rate.per_sec();
                if let Some(bars) = bars.as_mut() {
                    bars.sync(&progress, now, status(&progress, per_sec, note.as_deref()));
                }
                if now.duration_since(last_report) >= every {
                    last_report = now;
                    if bars.is_none() {
                        tracing::info!("progress: {}", status(&progress, per_sec, note.as_deref()));
                    }
                    events.progress(&progress, per_sec);
                }
            }
            if let Some(bars) = bars.as_mut() {
                bars.sync(
                    &progress,
                    Instant::now(),
                    status(&progress, rate.per_sec(), note.as_deref()),
                );
            }
            bars
        });
        Self {
            task: Some(task),
            stop,
        }
    }

    /// Stops the display; the bars stay on screen with the final counts.
    pub async fn finish(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            if let Ok(Some(bars)) = task.await {
                bars.finish();
            }
        }
    }
}

/// Documents read so far: they move with every document, where acknowledgements move
/// a batch at a time.
fn read(progress: &Progress) -> u64 {
    progress.snapshot().iter().map(|s| s.read).sum()
}

/// The run in one line: written of expected, read, the rate over the last seconds, the
/// ETA at that rate, the elapsed time, dead letters.
fn status(progress: &Progress, per_sec: f64, note: Option<&str>) -> String {
    let stats = progress.snapshot();
    let read: u64 = stats.iter().map(|s| s.read).sum();
    let dead: u64 = stats.iter().map(|s| s.dead_lettered).sum();
    let done = progress.done();
    let elapsed = rate::duration(progress.elapsed().as_secs());
    let mut line = match progress.total() {
        Some(total) if total > 0 => {
            let eta = if per_sec > 0.0 {
                rate::duration((total.saturating_sub(read) as f64 / per_sec).round() as u64)
            } else {
                "?".into()
            };
            format!(
                "{}/{} documents landed ({:.1}%), {} read, {} docs/s, ETA {eta}, elapsed {elapsed}",
                rate::count(done),
                rate::count(total),
                100.0 * done as f64 / total as f64,
                rate::count(read),
                rate::per_sec(per_sec),
            )
        }
        _ => format!(
            "{} documents landed, {} read, {} docs/s, elapsed {elapsed}",
            rate::count(done),
            rate::count(read),
            rate::per_sec(per_sec),
        ),
    };
    if dead > 0 {
        line.push_str(&format!(", {} dead-lettered", rate::count(dead)));
    }
    if let Some(note) = note {
        line.push_str(", ");
        line.push_str(note);
    }
    line
}
