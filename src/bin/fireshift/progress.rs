//! How a migration's progress is shown: indicatif bars on a terminal (an overall bar and
//! one per collection), periodic log lines elsewhere (CI, Kubernetes, `nohup`). Both read
//! the library's counters ([`fireshift::migrate::progress::Progress`]); nothing here counts.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use fireshift::migrate::progress::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// How often the bars are brought up to date with the counters.
const REDRAW: Duration = Duration::from_millis(250);
/// How often a log line is written when no bars are drawn.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Shows `progress` until [`Display::finish`].
pub struct Display {
    task: Option<JoinHandle<()>>,
    bars: Option<Bars>,
}

#[derive(Clone)]
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    per_collection: std::sync::Arc<std::sync::Mutex<BTreeMap<String, ProgressBar>>>,
}

impl Bars {
    fn sync(&self, progress: &Progress) {
        if let Some(total) = progress.total() {
            self.overall.set_length(total);
        }
        self.overall.set_position(progress.done());
        let mut bars = self.per_collection.lock().unwrap();
        for s in progress.snapshot() {
            let bar = bars.entry(s.pattern.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::no_length());
                bar.set_style(style("collection"));
                bar.set_prefix(s.pattern.clone());
                bar
            });
            bar.set_position(s.written + s.dead_lettered);
        }
    }
}

impl Display {
    /// Bars when stderr is a terminal and `quiet` is off; log lines otherwise.
    pub fn start(progress: &Progress, quiet: bool) -> Self {
        let tty = !quiet && std::io::stderr().is_terminal();
        if !tty {
            let progress = progress.clone();
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(LOG_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    tracing::info!("progress: {}", progress.line());
                }
            });
            return Self {
                task: Some(task),
                bars: None,
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let overall = multi.add(ProgressBar::no_length());
        overall.set_style(style("overall"));
        overall.set_prefix("all collections");
        let bars = Bars {
            multi,
            overall,
            per_collection: Default::default(),
        };
        let (drawn, progress) = (bars.clone(), progress.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REDRAW);
            loop {
                tick.tick().await;
                drawn.sync(&progress);
            }
        });
        Self {
            task: Some(task),
            bars: Some(bars),
        }
    }

    /// Stops drawing; the bars stay on screen with the final counts. `abandon`, not
    /// `finish`: indicatif's `finish` moves every bar to its length, so a run stopped by
    /// an error would look 100% done.
    pub fn finish(mut self, progress: &Progress) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(bars) = self.bars.take() {
            bars.sync(progress);
            for bar in bars.per_collection.lock().unwrap().values() {
                bar.abandon();
            }
            bars.overall.abandon();
        }
    }
}

fn style(kind: &str) -> ProgressStyle {
    let template = if kind == "overall" {
        "{prefix:>28.bold} [{bar:30.green}] {pos}/{len} {per_sec} ETA {eta} ({elapsed})"
    } else {
        "{prefix:>28} [{bar:30.cyan}] {pos} {per_sec}"
    };
    ProgressStyle::with_template(template)
        .expect("static template")
        .progress_chars("=> ")
}
