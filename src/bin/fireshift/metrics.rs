//! `--metrics-addr HOST:PORT`: Prometheus metrics of a `migrate` (and its follow) over
//! HTTP, `GET /metrics` in the text exposition format.
//!
//! The figures are the ones the run already keeps (the copy's progress, the follow
//! record's counts and applied time, the retry loop's count); each scrape brings the
//! registry up to date from them, so serving metrics costs the run nothing between
//! scrapes. The server binds where it is told; anywhere but loopback it requires a
//! bearer token (`FIRESHIFT_METRICS_TOKEN`), which it never logs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use fireshift::follow::run::FollowView;
use fireshift::migrate::progress::Progress;
use prometheus::{Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The environment variable holding the bearer token scrapes must present.
pub const TOKEN_ENV: &str = "FIRESHIFT_METRICS_TOKEN";

#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while the command runs:
    /// documents read, written and dead-lettered, changes applied by kind, the
    /// follow's lag, stream restarts, resyncs, retries. A non-loopback address needs
    /// a bearer token in FIRESHIFT_METRICS_TOKEN.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<SocketAddr>,
}

/// Where the figures come from.
#[derive(Clone)]
pub struct Sources {
    pub progress: Progress,
    /// What the follower publishes (its record stays `None` without one).
    pub follow: Arc<Mutex<FollowView>>,
}

struct Exported {
    registry: Registry,
    docs: IntCounterVec,
    changes: IntCounterVec,
    dead_letters: IntCounterVec,
    restarts: IntCounter,
    resyncs: IntCounter,
    resets: IntCounter,
    retries: IntCounter,
    lag: Gauge,
    applied: Gauge,
    following: IntGauge,
}

impl Exported {
    fn new() -> Self {
        let registry = Registry::new();
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let following = IntGauge::new(
            "fireshift_follow_running",
            "1 while the follower runs, 0 before it starts and after it left",
        )
        .expect("valid metric");
        registry
            .register(Box::new(following.clone()))
            .expect("unique metric");
        Self {
            docs: vec(
                "fireshift_copy_documents_total",
                "Documents of the copy, by stage (read from Firestore, written to MongoDB)",
                &["stage"],
            ),
            changes: vec(
                "fireshift_follow_changes_total",
                "Changes the follower applied, by kind (upsert, delete, unchanged: resent as MongoDB holds it)",
                &["kind"],
            ),
            dead_letters: vec(
                "fireshift_dead_letters_total",
                "Documents dead-lettered, by phase (copy, follow)",
                &["phase"],
            ),
            restarts: counter(
                "fireshift_follow_stream_restarts_total",
                "Listen streams opened again after a fault",
            ),
            resyncs: counter(
                "fireshift_follow_resyncs_total",
                "Collection groups read again in full (after the copy, a refused resume point, an existence-filter mismatch, a new root collection)",
            ),
            resets: counter(
                "fireshift_follow_resets_total",
                "RESETs and full resends of a Listen target applied",
            ),
            retries: counter(
                "fireshift_retries_total",
                "Transient failures retried (Firestore and MongoDB)",
            ),
            lag: gauge(
                "fireshift_follow_lag_seconds",
                "Now minus the consistent time up to which MongoDB holds every change",
            ),
            applied: gauge(
                "fireshift_follow_applied_timestamp_seconds",
                "The consistent time up to which MongoDB holds every change (Unix seconds)",
            ),
            following,
            registry,
        }
    }

    /// Counters only move forward: each takes the difference to the current figure.
    fn advance(c: &IntCounter, to: u64) {
        let now = c.get();
        if to > now {
            c.inc_by(to - now);
        }
    }

    fn update(&self, sources: &Sources) {
        let stats = sources.progress.snapshot();
        Self::advance(
            &self.docs.with_label_values(&["read"]),
            stats.iter().map(|c| c.read).sum(),
        );
        Self::advance(
            &self.docs.with_label_values(&["written"]),
            stats.iter().map(|c| c.written).sum(),
        );
        Self::advance(
            &self.dead_letters.with_label_values(&["copy"]),
            stats.iter().map(|c| c.dead_lettered).sum(),
        );
        Self::advance(&self.retries, fireshift::retry::retries());
        let record = sources.follow.lock().unwrap().record.clone();
        let Some(record) = record else {
            self.following.set(0);
            return;
        };
        let c = &record.counts;
        Self::advance(&self.changes.with_label_values(&["upsert"]), c.upserts);
        Self::advance(&self.changes.with_label_values(&["delete"]), c.deletes);
        Self::advance(&self.changes.with_label_values(&["unchanged"]), c.unchanged);
        Self::advance(
            &self.dead_letters.with_label_values(&["follow"]),
            c.dead_letters,
        );
        Self::advance(&self.restarts, c.restarts);
        Self::advance(&self.resyncs, c.resyncs);
        Self::advance(&self.resets, c.resets);
        let applied = record.applied_or_start();
        self.applied.set(applied as f64 / 1e9);
        self.lag.set(record.lag_secs());
        self.following.set(i64::from(
            record.holder.is_some() && record.finished.is_none(),
        ));
    }
}

struct Served {
    exported: Exported,
    sources: Sources,
    token: Option<String>,
}

/// The server: stops when dropped.
pub struct MetricsServer {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The token scrapes must present, if one is set.
fn token() -> Option<String> {
    std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty())
}

impl MetricsArgs {
    /// Checked before any I/O: a non-loopback address without a token is refused (the
    /// figures name collections and hosts).
    pub fn validate(&self) -> Result<(), String> {
        match self.metrics_addr {
            Some(addr) if !addr.ip().is_loopback() && token().is_none() => Err(format!(
                "--metrics-addr {addr} is not a loopback address: set {TOKEN_ENV} to a bearer token scrapes must present (or bind 127.0.0.1)"
            )),
            _ => Ok(()),
        }
    }
}

/// Binds `addr` and serves until the returned server is dropped.
pub async fn serve(addr: SocketAddr, sources: Sources) -> anyhow::Result<MetricsServer> {
    let token = token();
    if !addr.ip().is_loopback() && token.is_none() {
        anyhow::bail!("--metrics-addr {addr}: {TOKEN_ENV} is not set");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--metrics-addr {addr}: cannot listen: {e}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(
        "metrics on http://{bound}/metrics{}",
        if token.is_some() {
            " (bearer token required)"
        } else {
            ""
        }
    );
    let state = Arc::new(Served {
        exported: Exported::new(),
        sources,
        token,
    });
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the metrics server stopped: {e}");
        }
    });
    Ok(MetricsServer { task })
}

async fn scrape(State(s): State<Arc<Served>>, headers: HeaderMap) -> Response {
    if let Some(want) = &s.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), want.as_bytes())) {
            return (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
        }
    }
    s.exported.update(&s.sources);
    let mut body = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode(&s.exported.registry.gather(), &mut body) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_string())],
        body,
    )
        .into_response()
}

/// Compares a presented token with the expected one in time that does not depend on
/// where they first differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3creT"));
        assert!(!same_secret(b"s3cret", b"s3cre"));
        assert!(!same_secret(b"", b"x"));
    }

    #[test]
    fn counters_take_the_difference_and_never_go_back() {
        let e = Exported::new();
        let sources = Sources {
            progress: Progress::new(),
            follow: Arc::new(Mutex::new(FollowView::default())),
        };
        sources.progress.see("users", "users");
        sources.progress.read("users", 5);
        e.update(&sources);
        sources.progress.read("users", 2);
        e.update(&sources);
        assert_eq!(e.docs.with_label_values(&["read"]).get(), 7);
        assert_eq!(e.following.get(), 0, "no follower yet");
        let mut record = fireshift::follow::record::FollowRecord::new("j", "s", 1_000_000_000);
        record.counts.upserts = 4;
        record.counts.restarts = 1;
        record.holder = Some(fireshift::follow::record::Holder {
            host: "h".into(),
            pid: 1,
            heartbeat: mongodb::bson::DateTime::now(),
        });
        sources.follow.lock().unwrap().record = Some(record);
        e.update(&sources);
        assert_eq!(e.changes.with_label_values(&["upsert"]).get(), 4);
        assert_eq!(e.restarts.get(), 1);
        assert_eq!(e.following.get(), 1);
        assert_eq!(e.applied.get(), 1.0);
        assert!(e.lag.get() > 1e9, "the lag to a 1970 time");
    }
}
