//! The command line: clap definitions (no I/O), then the commands that build the real
//! objects from them. The binary (`main.rs`) only parses, runs and maps to an exit code.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::pipeline::{self, PipelineConfig, Summary};
use crate::progress::Progress;
use crate::retry::RetryPolicy;
use crate::sink::{MongoSink, SinkConfig};
use crate::source::{FirestoreSource, KeyRange, SourceConfig};
use crate::transform::Transformer;

/// Exit code when the run finished but some documents were dead-lettered.
pub const EXIT_DEAD_LETTERS: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "fireshift",
    version,
    about = "Move a live application from Cloud Firestore to MongoDB"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing syntax), e.g. `info` or `fireshift=debug`.
    #[arg(long, global = true, env = "FIRESHIFT_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy every collection and subcollection of a Firestore database into MongoDB.
    Migrate(MigrateArgs),
}

/// Where to read and where to write.
#[derive(Debug, Args)]
pub struct Endpoints {
    /// Google Cloud project that owns the Firestore database. FIRESTORE_EMULATOR_HOST,
    /// when set, selects the emulator.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    pub project: String,
    /// Firestore database id.
    #[arg(long, default_value = "(default)")]
    pub firestore_database: String,
    /// MongoDB connection string (mongodb:// or mongodb+srv://). Never printed unredacted.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: String,
    /// Target MongoDB database.
    #[arg(long)]
    pub database: String,
    /// Give up on an unreachable service after retrying this long (seconds).
    #[arg(long, default_value_t = 300)]
    pub retry_timeout: u64,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Documents per MongoDB write batch.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Bytes per MongoDB write batch (at most 16 MiB less the command envelope).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub batch_bytes: usize,
    /// Write batches in flight at once.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// Documents per Firestore query page (the unit of resume on a fault).
    #[arg(long, default_value_t = 10_000)]
    pub page_size: i32,
    /// Documents read ahead of the writer.
    #[arg(long, default_value_t = 4096)]
    pub read_ahead: usize,
    /// Collection for documents that cannot be converted or written.
    #[arg(long, default_value = crate::transform::DEAD_LETTER_COLLECTION)]
    pub dead_letter_collection: String,
    /// Read and transform, write nothing; report what would be written.
    #[arg(long)]
    pub dry_run: bool,
    /// Succeed even when the source has no documents (normally a sign of a wrong project).
    #[arg(long)]
    pub allow_empty: bool,
    /// No progress bars (log lines are used when stderr is not a terminal anyway).
    #[arg(long)]
    pub quiet: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
}

impl Endpoints {
    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_secs(self.retry_timeout),
            ..RetryPolicy::default()
        }
    }
}

/// Runs `migrate`; returns the process exit code.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<i32> {
    let ep = &args.endpoints;
    let sink_config = SinkConfig {
        max_batch_docs: args.batch_size,
        max_batch_bytes: args.batch_bytes,
        retry: ep.retry(),
    };
    sink_config.validate()?;
    if args.in_flight == 0 || args.read_ahead == 0 || args.page_size <= 0 {
        bail!("--in-flight, --read-ahead and --page-size must be at least 1");
    }
    let mut source_config = SourceConfig::new(&ep.project);
    source_config.database_id = ep.firestore_database.clone();
    source_config.page_size = args.page_size;
    source_config.retry = ep.retry();
    let source = FirestoreSource::connect(source_config)
        .await
        .context("connecting to Firestore")?;
    let sink = MongoSink::connect(&ep.mongodb_uri, &ep.database, sink_config)
        .await
        .context("connecting to MongoDB")?;
    tracing::info!(
        source = %source.root(), endpoint = %source.endpoint(), target = %sink.uri(), database = %ep.database,
        dry_run = args.dry_run, "migrating"
    );

    let progress = Progress::new(args.quiet);
    {
        // The ETA comes from an aggregation count; the copy does not wait for it.
        let (source, progress) = (source.clone(), progress.clone());
        tokio::spawn(async move {
            match source.count_all().await {
                Ok(n) => progress.set_total(n),
                Err(e) => tracing::warn!("no document count for the ETA: {e}"),
            }
        });
    }
    let log_lines = progress.spawn_log_lines(Duration::from_secs(5));
    let config = PipelineConfig {
        read_ahead: args.read_ahead,
        in_flight: args.in_flight,
        dead_letter_collection: args.dead_letter_collection.clone(),
        run_id: format!(
            "migrate-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ),
        dry_run: args.dry_run,
        ..PipelineConfig::default()
    };
    let result = pipeline::run(
        &source,
        &sink,
        &Transformer::default(),
        KeyRange::default(),
        &config,
        &progress,
    )
    .await;
    progress.finish();
    if let Some(h) = log_lines {
        h.abort();
    }
    let summary = result.with_context(|| {
        format!(
            "migration of {} stopped after {} (nothing acknowledged was lost; rerun to continue)",
            source.root(),
            progress.line()
        )
    })?;
    print_summary(&summary, &ep.database, &args);
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if summary.read == 0 && !args.allow_empty {
        bail!(
            "no documents found in {} ({}): is --project right? (--allow-empty accepts an empty source)",
            source.root(),
            source.endpoint()
        );
    }
    if !summary.accounted_for() {
        bail!(
            "{} documents read but {} written and {} dead-lettered: some documents are unaccounted for",
            summary.read,
            summary.written,
            summary.dead_lettered
        );
    }
    Ok(if summary.dead_lettered > 0 {
        EXIT_DEAD_LETTERS
    } else {
        0
    })
}

fn print_summary(s: &Summary, database: &str, args: &MigrateArgs) {
    let w = s
        .collections
        .iter()
        .map(|c| c.pattern.len().max(c.target.len()))
        .max()
        .unwrap_or(10)
        .max(10);
    println!();
    println!(
        "{:<w$}  {:<w$}  {:>10}  {:>10}  {:>13}",
        "collection", "target", "read", "written", "dead-lettered"
    );
    for c in &s.collections {
        println!(
            "{:<w$}  {:<w$}  {:>10}  {:>10}  {:>13}",
            c.pattern, c.target, c.read, c.written, c.dead_lettered
        );
    }
    println!(
        "{:<w$}  {:<w$}  {:>10}  {:>10}  {:>13}",
        "total", "", s.read, s.written, s.dead_lettered
    );
    let rate = s.read as f64 / s.elapsed_secs.max(1e-3);
    let verb = if args.dry_run {
        "would be written (dry run)"
    } else {
        "written"
    };
    println!(
        "{} documents read, {} {verb} in {:.1} s ({rate:.0} docs/s)",
        s.read, s.written, s.elapsed_secs
    );
    if s.dead_lettered > 0 {
        println!(
            "{} documents dead-lettered: see {database}.{} (source path, rule, reason, raw document)",
            s.dead_lettered, args.dead_letter_collection
        );
    }
}
