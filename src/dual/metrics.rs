//! The store's metrics, in the Prometheus text exposition format.
//!
//! One registry per store (not the process-global default registry), so two stores in
//! one process (tests, an app talking to two projects) do not mix their counts and an
//! application can still merge [`DualMetrics::registry`] into its own exporter.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Latency buckets (seconds): 0.5 ms … 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric the store exports.
#[derive(Clone)]
pub struct DualMetrics {
    registry: Registry,
    /// `collection`, `mode`, `outcome` (`ok`, `secondary_deferred`, `primary_error`).
    pub writes: IntCounterVec,
    /// `collection`: secondary writes that failed and were left to the outbox.
    pub secondary_failures: IntCounterVec,
    /// `collection`, `source` (`firestore`, `mongodb`).
    pub reads: IntCounterVec,
    pub outbox_depth: IntGauge,
    pub outbox_oldest_age_seconds: prometheus::Gauge,
    /// `outcome` (`synced`, `failed`, `dead_lettered`).
    pub reconciled: IntCounterVec,
    /// `collection`, `outcome` (`match`, `mismatch`, `stale`, `error`).
    pub shadow_reads: IntCounterVec,
    /// `collection`, `op`.
    pub primary_latency: HistogramVec,
    /// `collection`.
    pub secondary_latency: HistogramVec,
    /// `collection`, `rule`: documents the mapping refused on the way to the secondary.
    pub dead_letters: IntCounterVec,
}

impl DualMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let writes = counter(
            "fireshift_dual_writes_total",
            "Writes by collection pattern, mode and outcome.",
            &["collection", "mode", "outcome"],
        );
        let secondary_failures = counter(
            "fireshift_dual_secondary_failures_total",
            "Secondary writes that failed and were left to the outbox.",
            &["collection"],
        );
        let reads = counter(
            "fireshift_dual_reads_total",
            "Reads by collection pattern and the database that answered.",
            &["collection", "source"],
        );
        let reconciled = counter(
            "fireshift_dual_reconciled_total",
            "Outbox entries handled by the reconciler, by outcome.",
            &["outcome"],
        );
        let shadow_reads = counter(
            "fireshift_dual_shadow_reads_total",
            "Shadow reads by outcome (match, mismatch, stale, error).",
            &["collection", "outcome"],
        );
        let dead_letters = counter(
            "fireshift_dual_dead_letters_total",
            "Documents the mapping refused on their way to the secondary.",
            &["collection", "rule"],
        );
        let primary_latency = histogram(
            "fireshift_dual_primary_latency_seconds",
            "Latency of primary operations.",
            &["collection", "op"],
        );
        let secondary_latency = histogram(
            "fireshift_dual_secondary_latency_seconds",
            "Latency of secondary writes (read-back, transform and guarded write).",
            &["collection"],
        );
        let outbox_depth = IntGauge::new(
            "fireshift_dual_outbox_depth",
            "Outbox entries waiting (as of the reconciler's last pass).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(outbox_depth.clone()))
            .expect("unique metric");
        let outbox_oldest_age_seconds = prometheus::Gauge::new(
            "fireshift_dual_outbox_oldest_age_seconds",
            "Age of the oldest outbox entry (as of the reconciler's last pass).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(outbox_oldest_age_seconds.clone()))
            .expect("unique metric");
        Self {
            registry,
            writes,
            secondary_failures,
            reads,
            outbox_depth,
            outbox_oldest_age_seconds,
            reconciled,
            shadow_reads,
            primary_latency,
            secondary_latency,
            dead_letters,
        }
    }

    /// The registry, to merge into an application's own exporter.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail on a valid registry");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for DualMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_as_text() {
        let m = DualMetrics::new();
        m.writes
            .with_label_values(&["users", "dual_read_firestore", "ok"])
            .inc();
        m.outbox_depth.set(3);
        m.primary_latency
            .with_label_values(&["users", "set"])
            .observe(0.002);
        let text = m.render();
        assert!(text.contains(
            r#"fireshift_dual_writes_total{collection="users",mode="dual_read_firestore",outcome="ok"} 1"#
        ));
        assert!(text.contains("fireshift_dual_outbox_depth 3"));
        assert!(text.contains("# TYPE fireshift_dual_primary_latency_seconds histogram"));
        assert!(text.contains(
            r#"fireshift_dual_primary_latency_seconds_bucket{collection="users",op="set",le="0.0025"} 1"#
        ));
    }
}
