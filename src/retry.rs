//! Retry with exponential backoff and full jitter, bounded by a deadline: the one retry
//! loop every I/O path shares, so that all of them give up the same way.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::Error;

/// Transient failures retried by this process so far (every I/O path shares the loop
/// below): what `--metrics-addr` exports as `fireshift_retries_total`.
static RETRIES: AtomicU64 = AtomicU64::new(0);

/// Transient failures this process has retried.
pub fn retries() -> u64 {
    RETRIES.load(Ordering::Relaxed)
}

/// How long and how often to retry a transient failure.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First backoff; doubles each attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Give up once this much time has passed since the first failure.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            deadline: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails with a non-retryable error, or the deadline
    /// passes (then `Error::RetriesExhausted` carrying the last error).
    pub async fn run<T, F, Fut>(&self, what: impl Fn() -> String, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut backoff = self.backoff();
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => backoff.wait(e, &what()).await?,
            }
        }
    }

    /// Retry state for loops that cannot be a closure (e.g. a stream that resumes from
    /// its own cursor).
    pub fn backoff(&self) -> Backoff {
        Backoff {
            policy: *self,
            first_failure: None,
            next: self.initial_backoff,
        }
    }
}

/// The state of one retried operation: when it first failed and the next backoff.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    first_failure: Option<Instant>,
    next: Duration,
}

impl Backoff {
    /// After a failure: returns the error at once if it is fatal or the deadline has
    /// passed; otherwise sleeps a jittered backoff and returns `Ok` to try again.
    pub async fn wait(&mut self, e: Error, what: &str) -> Result<(), Error> {
        if !e.is_retryable() {
            return Err(e);
        }
        let started = *self.first_failure.get_or_insert_with(Instant::now);
        let elapsed = started.elapsed();
        if elapsed >= self.policy.deadline {
            return Err(Error::RetriesExhausted {
                what: what.to_string(),
                elapsed,
                last: Box::new(e),
            });
        }
        // Full jitter keeps many workers from retrying in lockstep.
        let sleep = rand::thread_rng().gen_range(Duration::ZERO..=self.next);
        let sleep = sleep.min(self.policy.deadline.saturating_sub(elapsed));
        RETRIES.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %e, retry_in = ?sleep, "{what}: transient failure, retrying");
        tokio::time::sleep(sleep).await;
        self.next = (self.next * 2).min(self.policy.max_backoff);
        Ok(())
    }

    /// Progress was made: the next failure starts a fresh deadline.
    pub fn reset(&mut self) {
        self.first_failure = None;
        self.next = self.policy.initial_backoff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn transient() -> Error {
        Error::FirestoreConnect {
            endpoint: "x".into(),
            message: "down".into(),
            retryable: true,
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = AtomicUsize::new(0);
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            deadline: Duration::from_secs(5),
        };
        let before = retries();
        let out = policy
            .run(
                || "op".into(),
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                        Err(transient())
                    } else {
                        Ok(7)
                    }
                },
            )
            .await
            .unwrap();
        assert_eq!(out, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Other tests retry at the same time: at least these three are counted.
        assert!(retries() - before >= 3);
    }

    #[tokio::test]
    async fn stops_at_once_on_fatal_and_after_deadline_on_transient() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            deadline: Duration::from_millis(30),
        };
        let fatal = policy
            .run(
                || "op".into(),
                || async { Err::<(), _>(Error::Config("bad".into())) },
            )
            .await;
        assert!(matches!(fatal, Err(Error::Config(_))));
        let exhausted = policy
            .run(
                || "read users".into(),
                || async { Err::<(), _>(transient()) },
            )
            .await
            .unwrap_err();
        let msg = exhausted.to_string();
        assert!(
            msg.starts_with("read users still failing after retrying"),
            "{msg}"
        );
        assert!(msg.contains("cannot connect to Firestore at x"), "{msg}");
    }
}
