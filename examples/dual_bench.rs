//! Measures what dual writes cost, in one run against the same services:
//!
//! 1. latency: `--writes` sequential single-document sets, alternating between a
//!    collection in `firestore_only` (one Firestore commit) and one in
//!    `dual_read_firestore` (commit with the outbox entry, read-back, guarded MongoDB
//!    upsert), so both see the same service conditions; prints p50/p99 of each and the
//!    added latency;
//! 2. throughput: `--throughput-writes` sets with `--concurrency` callers, for a
//!    Firestore-only collection and then a dual one; prints writes/s of each.
//!
//! Usage: dual_bench --project P --database D [--writes N] [--throughput-writes N]
//!                   [--concurrency C] [--json FILE]
//! `scripts/bench-dual` builds it in release and runs it.

use std::time::{Duration, Instant};

use clap::Parser;
use fireshift::dual::{DualConfig, DualStore, Fields, Mode, Secondary};
use futures::StreamExt;
use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    project: String,
    #[arg(long)]
    database: String,
    #[arg(
        long,
        env = "MONGODB_URI",
        default_value = "mongodb://127.0.0.1:27017/?directConnection=true"
    )]
    mongodb_uri: String,
    /// Sequential writes per side for the latency figures.
    #[arg(long, default_value_t = 500)]
    writes: usize,
    /// Writes per side for the throughput figures.
    #[arg(long, default_value_t = 2000)]
    throughput_writes: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn doc(n: usize) -> Fields {
    let v = |t| Value {
        value_type: Some(t),
    };
    Fields::from([
        ("n".to_string(), v(ValueType::IntegerValue(n as i64))),
        (
            "name".to_string(),
            v(ValueType::StringValue(format!("user {n}"))),
        ),
        (
            "bio".to_string(),
            v(ValueType::StringValue("x".repeat(300))),
        ),
        (
            "score".to_string(),
            v(ValueType::DoubleValue(n as f64 / 3.0)),
        ),
    ])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn throughput(store: &DualStore, collection: &str, n: usize, c: usize) -> f64 {
    let started = Instant::now();
    let done: usize = futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            let path = format!("{collection}/t{i:06}");
            async move {
                store.set_doc(&path, doc(i)).await.expect("write");
                1usize
            }
        })
        .buffer_unordered(c.max(1))
        .fold(0, |a, b| async move { a + b })
        .await;
    done as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS crypto provider, chosen before any client is built (fireshift::tls).
    fireshift::tls::install_crypto_provider();
    let args = Args::parse();
    anyhow::ensure!(args.writes >= 10, "--writes must be at least 10");
    let mut config = DualConfig::new(&args.project, &args.mongodb_uri, &args.database);
    config.settings_poll = None;
    let store = DualStore::connect(config).await?;
    store.set_mode("single", Mode::FirestoreOnly);
    store.set_mode("dual", Mode::DualReadFirestore);
    store.set_mode("tsingle", Mode::FirestoreOnly);
    store.set_mode("tdual", Mode::DualReadFirestore);
    // The settler and reconciler are part of what dual writes cost: keep them running.
    let background = store.spawn_background();

    // Warm-up: connections, JIT of the emulator, server caches.
    for i in 0..30 {
        store.set_doc(&format!("single/w{i}"), doc(i)).await?;
        store.set_doc(&format!("dual/w{i}"), doc(i)).await?;
    }
    let mut single = Vec::with_capacity(args.writes);
    let mut dual = Vec::with_capacity(args.writes);
    for i in 0..args.writes {
        let t = Instant::now();
        store.set_doc(&format!("single/d{i:06}"), doc(i)).await?;
        single.push(t.elapsed());
        let t = Instant::now();
        let r = store.set_doc(&format!("dual/d{i:06}"), doc(i)).await?;
        dual.push(t.elapsed());
        anyhow::ensure!(
            r.secondary == Secondary::Written,
            "a dual write was deferred: MongoDB is not keeping up, figures would be wrong"
        );
    }
    single.sort();
    dual.sort();
    let (s50, s99) = (percentile(&single, 0.5), percentile(&single, 0.99));
    let (d50, d99) = (percentile(&dual, 0.5), percentile(&dual, 0.99));

    let single_tp = throughput(&store, "tsingle", args.throughput_writes, args.concurrency).await;
    let dual_tp = throughput(&store, "tdual", args.throughput_writes, args.concurrency).await;
    store.drain(Duration::from_secs(120)).await?;
    background.shutdown().await;
    store.shutdown().await;

    println!("dual-write benchmark ({} sequential writes per side, {} concurrent writes for throughput, concurrency {})",
        args.writes, args.throughput_writes, args.concurrency);
    println!("  latency        p50 ms    p99 ms");
    println!("  firestore only {:>8.2}  {:>8.2}", ms(s50), ms(s99));
    println!("  dual write     {:>8.2}  {:>8.2}", ms(d50), ms(d99));
    println!(
        "  added          {:>8.2}  {:>8.2}",
        ms(d50) - ms(s50),
        ms(d99) - ms(s99)
    );
    println!("  throughput     firestore only {single_tp:.0} writes/s, dual {dual_tp:.0} writes/s (ratio {:.2})", dual_tp / single_tp);
    // The database was made for this run.
    let client = mongodb::Client::with_uri_str(&args.mongodb_uri).await?;
    let dropped = client.database(&args.database).drop().await;
    fireshift::mongo::shutdown(client).await;
    dropped?;
    if let Some(path) = args.json {
        let j = serde_json::json!({
            "writes": args.writes,
            "throughput_writes": args.throughput_writes,
            "concurrency": args.concurrency,
            "single_p50_ms": ms(s50), "single_p99_ms": ms(s99),
            "dual_p50_ms": ms(d50), "dual_p99_ms": ms(d99),
            "added_p50_ms": ms(d50) - ms(s50), "added_p99_ms": ms(d99) - ms(s99),
            "single_writes_per_s": single_tp, "dual_writes_per_s": dual_tp,
        });
        std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
    }
    Ok(())
}
