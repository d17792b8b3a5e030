//! Writes the deterministic demo data set (the `fireshift-demo` crate, examples/demo) into a
//! Firestore emulator, through the library's bulk writer.
//!
//! ```text
//! FIRESTORE_EMULATOR_HOST=127.0.0.1:8085 \
//!   cargo run --release --example demo_data -- --users 2500 [--project demo-mixillo] \
//!   [--database-id '(default)'] [--concurrency 4] [--drop-mongodb-database mixillo]
//!   [--now 2026-01-01T00:00:00Z]
//! ```
//!
//! About 60 documents per user (2,500 users ≈ 150k documents) in the 66 collections of the
//! seed app's models (`mappings/mixillo` maps them). Every write is a full
//! document update, so running it again with the same `--users` changes nothing; a run
//! with fewer users leaves the extra documents of an earlier, larger run in place (reset
//! the emulator first: `DELETE /emulator/v1/projects/P/databases/(default)/documents`).
//! It refuses to run unless `FIRESTORE_EMULATOR_HOST` is set, so it can never write into
//! a real project.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use fireshift_demo as demo;

#[derive(Debug, Parser)]
#[command(about = "Write the deterministic fireshift demo data set into the Firestore emulator")]
struct Args {
    /// Number of users; the data set has about 60 documents per user.
    #[arg(long)]
    users: usize,
    /// Project id.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT", default_value = "demo-mixillo")]
    project: String,
    /// Database id.
    #[arg(long, default_value = "(default)")]
    database_id: String,
    /// BatchWrite requests (of up to 500 documents) in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Drop this MongoDB database (at --mongodb-uri) before writing, so that the
    /// migration that follows starts from an empty target: a rerun with fewer users then
    /// leaves no documents of an earlier, larger run behind.
    #[arg(long, value_name = "DATABASE", requires = "mongodb_uri")]
    drop_mongodb_database: Option<String>,
    /// The data set's present (RFC 3339, whole seconds): every timestamp is at most this,
    /// stories and upload sessions expire within days after it. Default: now, so a demo's
    /// TTL indexes do not delete them at once; give a fixed time to reproduce a data set.
    #[arg(long, value_parser = parse_now)]
    now: Option<i64>,
    /// MongoDB connection string for --drop-mongodb-database (never printed unredacted).
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    mongodb_uri: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    // One TLS crypto provider, chosen before any client is built (fireshift::tls).
    fireshift::tls::install_crypto_provider();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the cause chain on one line, without a backtrace.
            eprintln!("demo_data: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let host = std::env::var("FIRESTORE_EMULATOR_HOST").unwrap_or_default();
    if host.trim().is_empty() {
        bail!(
            "FIRESTORE_EMULATOR_HOST is not set: demo_data writes only into the Firestore \
             emulator (e.g. FIRESTORE_EMULATOR_HOST=127.0.0.1:8085), never into a real project"
        );
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }

    if let (Some(name), Some(uri)) = (&args.drop_mongodb_database, &args.mongodb_uri) {
        drop_mongodb_database(uri, name).await?;
    }

    let db = fireshift::firestore::FirestoreConnection::connect(
        &args.project,
        &args.database_id,
        &Default::default(),
    )
    .await
    .with_context(|| format!("connecting to the Firestore emulator at {host}"))?;

    let expected = demo::expected_counts(args.users);
    let expected_total: usize = expected.values().sum();
    println!(
        "writing {expected_total} documents ({} users) into projects/{}/databases/{} at {host}",
        args.users, args.project, args.database_id
    );

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let now = args.now.unwrap_or_else(demo::wall_clock_now);
    let (project, database_id) = (args.project.clone(), args.database_id.clone());
    let docs = demo::generate(args.users, &args.project, &args.database_id, now)
        .inspect(|d| *counts.entry(d.collection_pattern()).or_default() += 1)
        .map(move |d| d.into_document(&project, &database_id));
    let started = Instant::now();
    let written = fireshift::firestore::write_documents(
        &db,
        &format!("projects/{}/databases/{}", args.project, args.database_id),
        docs,
        args.concurrency,
        // Transient faults (an emulator that is still starting) are ridden out for a while.
        fireshift::retry::RetryPolicy {
            deadline: std::time::Duration::from_secs(60),
            ..Default::default()
        },
    )
    .await
    .context("writing the demo data set")?;
    let elapsed = started.elapsed();

    let width = counts.keys().map(String::len).max().unwrap_or(0);
    for (pattern, n) in &counts {
        println!("  {pattern:<width$}  {n:>9}");
    }
    println!(
        "wrote {written} documents in {:.2} s: {:.0} docs/s",
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if written != expected_total {
        bail!("wrote {written} documents, expected {expected_total}");
    }
    Ok(())
}

/// Drops a MongoDB database; refuses MongoDB's own (`admin`, `local`, `config`).
async fn drop_mongodb_database(uri: &str, name: &str) -> anyhow::Result<()> {
    if matches!(name, "admin" | "local" | "config") || name.is_empty() {
        bail!("refusing to drop the MongoDB database `{name}`");
    }
    let shown = fireshift::redact::redact_uri(uri);
    let (options, _) = fireshift::mongo::client_options(uri, None, "fireshift-demo", name)
        .await
        .with_context(|| format!("connecting to MongoDB at {shown}"))?;
    let client = fireshift::mongo::client(options, &shown, name)?;
    let dropped = client.database(name).drop().await;
    fireshift::mongo::shutdown(client).await;
    dropped.with_context(|| format!("dropping the MongoDB database {name} at {shown}"))?;
    println!("dropped MongoDB database {name} at {shown}");
    Ok(())
}

/// `--now`: an RFC 3339 time, as microseconds since the epoch.
fn parse_now(s: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp() * 1_000_000)
        .map_err(|e| format!("`{s}`: not an RFC 3339 time ({e})"))
}
