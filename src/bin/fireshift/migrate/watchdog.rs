//! The stall watchdog of a run: nothing may wait forever.

use fireshift::migrate::progress::Progress;

/// Watches the run's progress: past `warn_after` seconds without a document
/// acknowledged it logs what each range waits on (and again every `warn_after`), past
/// `stop_after` it returns the error that stops the run. The checkpoints are as last
/// saved: a rerun resumes. 0 disables either.
pub async fn watchdog(
    progress: &Progress,
    warn_after: u64,
    stop_after: u64,
) -> fireshift::error::Error {
    let mut last = progress.done();
    let mut since = std::time::Instant::now();
    let mut warned_at = 0u64;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = progress.done();
        if now != last {
            (last, since, warned_at) = (now, std::time::Instant::now(), 0);
            continue;
        }
        let idle = since.elapsed().as_secs();
        if stop_after > 0 && idle >= stop_after {
            return fireshift::error::Error::Stalled {
                secs: idle,
                waiting: progress.activities().join("; "),
            };
        }
        if warn_after > 0 && idle >= warned_at + warn_after {
            warned_at = idle;
            tracing::warn!(
                "no document acknowledged for {idle}s ({}); {}",
                progress.line(),
                match progress.activities() {
                    a if a.is_empty() => "no range is running".to_string(),
                    a => a.join("; "),
                }
            );
        }
    }
}
