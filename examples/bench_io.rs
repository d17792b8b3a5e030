//! Raw I/O baselines for `scripts/bench`: what the Firestore source and the MongoDB sink
//! can do on their own, so a migration's throughput can be reported as a ratio to them.
//!
//! ```text
//! FIRESTORE_EMULATOR_HOST=127.0.0.1:8085 \
//!   cargo run --release --example bench_io -- read --project bench-fireshift
//! cargo run --release --example bench_io -- write --project bench-fireshift \
//!   --mongodb-uri mongodb://127.0.0.1:27017 --database bench_write --users 2500
//! cargo run --release --example bench_io -- drop --mongodb-uri … --database bench_write
//! ```
//!
//! * `read` streams the whole database (kindless all-descendants query, the stream
//!   `migrate` reads) and only counts documents: no transform, no write.
//! * `write` first builds every `WriteItem` in memory from the deterministic demo data set
//!   (same documents `demo_data` loads, converted with the default `Transformer`, grouped
//!   into per-collection batches bounded as the pipeline bounds them), then times only the
//!   sink's writes, at most `--in-flight` batches at once.
//! * `drop` drops a target database (so every run writes into an empty one).
//!
//! `read` and `write` print one JSON line on stdout:
//! `{"docs":N,"secs":S,"docs_per_sec":R,…}` (extra keys are informational).
//! Speed is only printed here, never asserted.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use fireshift::mapping::transform::Transformer;
use fireshift::sink::dead_letter::DEAD_LETTER_COLLECTION;
use fireshift::sink::{Batch, MongoSink, SinkConfig};
use fireshift::source::{FirestoreSource, KeyRange, SourceConfig};
use fireshift_demo as demo;
use futures::StreamExt;
use gcloud_sdk::google::firestore::v1::Document;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Raw source-read and sink-write baselines for scripts/bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Stream every document of the Firestore database and count them (no transform).
    Read(ReadArgs),
    /// Write the pre-built demo data set (BSON built before the clock starts) to MongoDB.
    Write(WriteArgs),
    /// Drop a MongoDB database.
    Drop(MongoArgs),
}

#[derive(Debug, Args)]
struct ReadArgs {
    /// Firestore project (FIRESTORE_EMULATOR_HOST selects the emulator).
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    project: String,
    /// Firestore database id.
    #[arg(long, default_value = "(default)")]
    firestore_database: String,
    /// Documents per RunQuery page (migrate's default).
    #[arg(long, default_value_t = 10_000)]
    page_size: i32,
    /// Capacity of the source channel (migrate's default --read-ahead).
    #[arg(long, default_value_t = 4096)]
    read_ahead: usize,
}

#[derive(Debug, Args)]
struct MongoArgs {
    /// MongoDB connection string.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    mongodb_uri: String,
    /// Target database.
    #[arg(long)]
    database: String,
}

#[derive(Debug, Args)]
struct WriteArgs {
    #[command(flatten)]
    mongo: MongoArgs,
    /// Project whose names the demo documents (and their references) carry: the one
    /// `demo_data` loaded, so the BSON is byte for byte what `migrate` writes.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    project: String,
    /// Users of the demo data set (about 40 documents each).
    #[arg(long, default_value_t = 2500)]
    users: usize,
    /// Documents per write batch (migrate's --batch-size).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Bytes per write batch (migrate's --batch-bytes).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    batch_bytes: usize,
    /// Batches in flight at once (migrate's --in-flight).
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS crypto provider, chosen before any client is built (fireshift::tls).
    fireshift::tls::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Read(a) => read(a).await,
        Cmd::Write(a) => write(a).await,
        Cmd::Drop(a) => drop_database(a).await,
    }
}

async fn read(args: ReadArgs) -> anyhow::Result<()> {
    if args.page_size <= 0 || args.read_ahead == 0 {
        bail!("--page-size and --read-ahead must be at least 1");
    }
    let mut config = SourceConfig::new(&args.project);
    config.database_id = args.firestore_database.clone();
    config.page_size = args.page_size;
    let source = FirestoreSource::connect(config)
        .await
        .context("connecting to Firestore")?;
    let started = Instant::now();
    let mut docs = source.stream(KeyRange::default(), args.read_ahead);
    let mut n = 0u64;
    let mut bytes = 0usize;
    while let Some(doc) = docs.recv().await {
        let doc = doc.context("reading the source")?;
        // Touch the document so the read is not optimised into nothing.
        bytes += doc.name.len();
        n += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    if n == 0 {
        bail!("no documents in {} ({})", source.root(), source.endpoint());
    }
    println!(
        "{}",
        json!({
            "docs": n,
            "secs": secs,
            "docs_per_sec": n as f64 / secs.max(1e-9),
            "name_bytes": bytes,
        })
    );
    Ok(())
}

async fn write(args: WriteArgs) -> anyhow::Result<()> {
    if args.in_flight == 0 {
        bail!("--in-flight must be at least 1");
    }
    let config = SinkConfig {
        max_batch_docs: args.batch_size,
        max_batch_bytes: args.batch_bytes,
        ..SinkConfig::default()
    };
    config.validate()?;
    let sink = MongoSink::connect(
        &fireshift::mongo::MongoEndpoint::new(&args.mongo.mongodb_uri),
        &args.mongo.database,
        config,
    )
    .await
    .context("connecting to MongoDB")?;
    let outcome = write_with(&args, &sink).await;
    sink.shutdown().await;
    outcome
}

/// `write` once connected: builds the batches, then times writing them.
async fn write_with(args: &WriteArgs, sink: &MongoSink) -> anyhow::Result<()> {
    // Build everything first: the clock measures the sink alone.
    let build_started = Instant::now();
    let batches = build_batches(args, sink.config());
    let build_secs = build_started.elapsed().as_secs_f64();
    let docs: usize = batches.iter().map(|b| b.items.len()).sum();
    let bytes: usize = batches.iter().map(|b| b.bytes).sum();
    let dead_letters: usize = batches
        .iter()
        .filter(|b| b.collection == DEAD_LETTER_COLLECTION)
        .map(|b| b.items.len())
        .sum();

    let started = Instant::now();
    let mut results = futures::stream::iter(&batches)
        .map(|b| sink.write(b))
        .buffer_unordered(args.in_flight);
    let mut written = 0usize;
    let mut refused = 0usize;
    while let Some(r) = results.next().await {
        let r = r.context("writing a batch")?;
        written += r.written;
        refused += r.failures.len();
        if let Some(f) = r.failures.first() {
            eprintln!(
                "refused: {} in {}: {} {}",
                f.source_path, f.collection, f.code, f.message
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if refused > 0 {
        bail!("the server refused {refused} of {docs} documents");
    }
    println!(
        "{}",
        json!({
            "docs": written,
            "secs": secs,
            "docs_per_sec": written as f64 / secs.max(1e-9),
            "batches": batches.len(),
            "command_bytes": bytes,
            "dead_letters": dead_letters,
            "build_secs": build_secs,
        })
    );
    Ok(())
}

/// Every demo document as the pipeline would write it: transformed (or dead-lettered),
/// grouped per target collection into batches bounded by `would_overflow`.
fn build_batches(args: &WriteArgs, limits: &SinkConfig) -> Vec<Batch> {
    let database_id = "(default)";
    let transformer = Transformer::default();
    let mut open: HashMap<String, Batch> = HashMap::new();
    let mut full = Vec::new();
    for d in demo::generate(args.users, &args.project, database_id, demo::FIXED_NOW) {
        let doc = Document {
            name: d.full_name(&args.project, database_id),
            fields: d.fields,
            ..Default::default()
        };
        let (collection, item) = match transformer.apply(&doc) {
            Ok(t) => (t.collection, t.item),
            Err(r) => (
                DEAD_LETTER_COLLECTION.to_string(),
                r.dead_letter(Some(&doc), "bench"),
            ),
        };
        let batch = open
            .entry(collection.clone())
            .or_insert_with(|| Batch::new(collection.clone()));
        if batch.would_overflow(&item, limits) {
            full.push(std::mem::replace(batch, Batch::new(collection)));
        }
        batch.push(item);
    }
    full.extend(open.into_values().filter(|b| !b.is_empty()));
    full
}

async fn drop_database(args: MongoArgs) -> anyhow::Result<()> {
    let sink = MongoSink::connect(
        &fireshift::mongo::MongoEndpoint::new(&args.mongodb_uri),
        &args.database,
        SinkConfig::default(),
    )
    .await
    .context("connecting to MongoDB")?;
    let dropped = sink.database().drop().await;
    sink.shutdown().await;
    dropped.with_context(|| format!("dropping database {}", args.database))?;
    Ok(())
}
