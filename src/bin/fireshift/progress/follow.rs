//! The follow on a terminal: one line under the copy's bars, redrawn each second, with
//! the consistent time applied, the lag to now and the counts (the follower's own lag
//! line, [`fireshift::follow::run::lag_line`]). Off a terminal the follower logs the
//! same line every `--follow-report-every` seconds instead.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fireshift::follow::run::{lag_line, FollowView};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// Shows the follow until [`FollowDisplay::finish`].
pub struct FollowDisplay {
    task: Option<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    bars: Option<MultiProgress>,
}

impl FollowDisplay {
    /// A spinner line when stderr is a terminal and `quiet` is off; nothing otherwise.
    pub fn start(view: Arc<Mutex<FollowView>>, quiet: bool) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        if quiet || !std::io::stderr().is_terminal() {
            return Self {
                task: None,
                stop,
                bars: None,
            };
        }
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let line = bars.add(ProgressBar::new_spinner());
        line.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
        line.set_message("following: waiting for the first consistent point");
        super::logs::attach(&bars);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let record = view.lock().unwrap().record.clone();
                if let Some(r) = record {
                    line.set_message(lag_line(&r));
                }
                line.tick();
            }
            line.finish();
        });
        Self {
            task: Some(task),
            stop,
            bars: Some(bars),
        }
    }

    /// Stops the line (it stays on screen as last drawn).
    pub async fn finish(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if self.bars.take().is_some() {
            super::logs::detach();
            // The line stays as last drawn; what is printed next starts below it.
            eprintln!();
        }
    }
}
