//! The command line: clap definitions (no I/O), then the commands that build the real
//! objects from them. The binary (`main.rs`) only parses, runs and maps to an exit code.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::firestore::FirestoreEndpoint;
use crate::job::{self, JobOptions};
use crate::mongo::MongoEndpoint;
use crate::pipeline::{PipelineConfig, Summary};
use crate::progress::Progress;
use crate::retry::RetryPolicy;
use crate::sink::{MongoSink, SinkConfig};
use crate::source::{FirestoreSource, SourceConfig};

/// Exit code when the run finished but some documents were dead-lettered.
pub const EXIT_DEAD_LETTERS: i32 = 3;
/// Exit code when `--max-dead-letters` stopped the run (checkpoints kept; rerun resumes).
pub const EXIT_DEAD_LETTER_LIMIT: i32 = 6;

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
    /// Resumable: rerun the same command after any stop and it continues.
    Migrate(MigrateArgs),
    /// Show every range of a job: state, documents done, rate, last error.
    Status(StatusArgs),
    /// Compare the target with the source document by document (canonical hashes, field
    /// diffs); write a parity report. Exit 0 on full parity, 4 on mismatches.
    Verify(crate::verify::cmd::VerifyArgs),
    /// Validate a mapping directory (no I/O beyond reading it). Exit 0 when valid, 1 with
    /// every error as file:line:column, what is wrong and how to fix it.
    Check(crate::mapping::cmd::CheckArgs),
    /// Build the indexes the mappings declare (idempotent) and report each one. Exit 0
    /// when all exist, 5 when some were refused or clash.
    Indexes(crate::mapping::cmd::IndexesArgs),
    /// Sample every collection: patterns, counts, field types with frequencies and
    /// conflicts, a Firestore read estimate; write skeleton mappings and a report.
    Plan(crate::plan::PlanArgs),
}

/// The MongoDB side of a command: every command that touches MongoDB takes these.
#[derive(Debug, Args)]
pub struct MongoTarget {
    /// MongoDB connection string (mongodb:// or mongodb+srv://, TLS options such as
    /// tls=true&tlsCAFile=… included). Never printed unredacted.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: String,
    /// PEM file of CA certificates to trust for MongoDB TLS (turns TLS on), as
    /// tlsCAFile=… in the URI would.
    #[arg(long, env = "MONGODB_CA_FILE", value_name = "PEM")]
    pub mongodb_ca_file: Option<PathBuf>,
    /// Target MongoDB database.
    #[arg(long)]
    pub database: String,
}

impl MongoTarget {
    pub fn endpoint(&self) -> MongoEndpoint {
        MongoEndpoint {
            uri: self.mongodb_uri.clone(),
            ca_file: self.mongodb_ca_file.clone(),
        }
    }

    /// Connects to the target database (ping with retries, errors with the URI
    /// redacted) with `config`'s batch and retry settings.
    pub async fn connect(&self, config: SinkConfig) -> anyhow::Result<MongoSink> {
        MongoSink::connect(&self.endpoint(), &self.database, config)
            .await
            .context("connecting to MongoDB")
    }
}

/// The Firestore side of a command: which database, and where and how to reach it.
#[derive(Debug, Args)]
pub struct FirestoreArgs {
    /// Google Cloud project that owns the Firestore database.
    #[arg(long, env = "GOOGLE_CLOUD_PROJECT")]
    pub project: String,
    /// Firestore database id.
    #[arg(long, visible_alias = "database-id", default_value = "(default)")]
    pub firestore_database: String,
    /// Firestore API endpoint, https:// (default: Google's, https://firestore.googleapis.com;
    /// a regional or private endpoint here). Credentials are Application Default
    /// Credentials. Without this flag, FIRESTORE_EMULATOR_HOST selects the emulator.
    #[arg(long, env = "FIRESTORE_ENDPOINT", value_name = "URL")]
    pub firestore_endpoint: Option<String>,
    /// PEM file of CA certificates to trust for the Firestore endpoint, besides the
    /// system's roots (SSL_CERT_FILE replaces those).
    #[arg(long, value_name = "PEM")]
    pub firestore_ca_file: Option<PathBuf>,
}

impl FirestoreArgs {
    /// The source configuration these flags describe, with `retry`.
    pub fn source_config(&self, retry: RetryPolicy) -> SourceConfig {
        let mut config = SourceConfig::new(&self.project);
        config.database_id = self.firestore_database.clone();
        config.retry = retry;
        config.endpoint = FirestoreEndpoint {
            url: self.firestore_endpoint.clone(),
            ca_file: self.firestore_ca_file.clone(),
        };
        config
    }
}

/// Where to read and where to write.
#[derive(Debug, Args)]
pub struct Endpoints {
    #[command(flatten)]
    pub firestore: FirestoreArgs,
    #[command(flatten)]
    pub mongo: MongoTarget,
    /// Give up on an unreachable service after retrying this long (seconds).
    #[arg(long, default_value_t = 300)]
    pub retry_timeout: u64,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Mapping directory (`mappings/<dataset>`); collections without a mapping file, or
    /// every collection without this flag, keep the defaults.
    #[arg(long)]
    pub mappings: Option<PathBuf>,
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
    /// Stop (exit 6, checkpoints kept) once this run dead-letters more documents than
    /// this; without it the run always goes to the end and reports them (exit 3).
    #[arg(long)]
    pub max_dead_letters: Option<u64>,
    /// Read and transform, write nothing; report what would be written.
    #[arg(long)]
    pub dry_run: bool,
    /// Stamp every document with its Firestore update time (`_fs_updated`) and never
    /// overwrite a document holding a newer one: use it for a backfill while the API
    /// dual-writes (docs/dual.md).
    #[arg(long)]
    pub guard_update_time: bool,
    /// Succeed even when the source has no documents (normally a sign of a wrong project).
    #[arg(long)]
    pub allow_empty: bool,
    /// No progress bars (log lines are used when stderr is not a terminal anyway).
    #[arg(long)]
    pub quiet: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Job name: checkpoints are kept under it in `_fireshift_checkpoints` of the target
    /// database. Default: `migrate:<project>/<firestore database>`.
    #[arg(long)]
    pub job: Option<String>,
    /// Key ranges to split a new job into (fixed once the job exists). Default:
    /// --parallel × the shard count, so no split is paid for without parallelism
    /// (each split slice costs a count query, a full scan on the emulator).
    #[arg(long)]
    pub ranges: Option<usize>,
    /// Ranges copied at once by this process.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// Run only share K of N of the ranges (N processes or machines run one job).
    #[arg(long, default_value = "1/1")]
    pub shard: crate::job::Shard,
    /// Resume although the mappings changed since the job started.
    #[arg(long)]
    pub force: bool,
    /// Forget the job's checkpoints and copy everything again.
    #[arg(long)]
    pub restart: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Where the job's checkpoints are: its target database.
    #[command(flatten)]
    pub mongo: MongoTarget,
    /// Only this job (default: every job in the database).
    #[arg(long)]
    pub job: Option<String>,
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
    // Mappings are validated before any I/O: a broken file stops the run here.
    let transformer = crate::mapping::cmd::transformer(args.mappings.as_deref())
        .map_err(|e| anyhow::anyhow!("invalid mappings:\n{e}"))?;
    let sink_config = SinkConfig {
        max_batch_docs: args.batch_size,
        max_batch_bytes: args.batch_bytes,
        retry: ep.retry(),
        guard_field: args
            .guard_update_time
            .then(|| crate::dual::guard::GUARD_FIELD.to_string()),
    };
    sink_config.validate()?;
    if args.in_flight == 0 || args.read_ahead == 0 || args.page_size <= 0 {
        bail!("--in-flight, --read-ahead and --page-size must be at least 1");
    }
    let mut source_config = ep.firestore.source_config(ep.retry());
    source_config.page_size = args.page_size;
    let source = FirestoreSource::connect(source_config)
        .await
        .context("connecting to Firestore")?;
    let sink = ep.mongo.connect(sink_config).await?;
    let outcome = migrate_on(&args, &transformer, &source, &sink).await;
    // Every path ends here, so the driver's clean-up never races the runtime's end.
    sink.shutdown().await;
    outcome
}

/// The body of `migrate` once both ends are connected.
async fn migrate_on(
    args: &MigrateArgs,
    transformer: &crate::transform::Transformer,
    source: &FirestoreSource,
    sink: &MongoSink,
) -> anyhow::Result<i32> {
    let ep = &args.endpoints;
    tracing::info!(
        source = %source.root(), endpoint = %source.endpoint(), target = %sink.uri(), database = %ep.mongo.database,
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
    let pipeline = PipelineConfig {
        read_ahead: args.read_ahead,
        in_flight: args.in_flight,
        dead_letter_collection: args.dead_letter_collection.clone(),
        run_id: format!(
            "migrate-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        ),
        dry_run: args.dry_run,
        max_dead_letters: args.max_dead_letters,
        ..PipelineConfig::default()
    };
    let options = JobOptions {
        job: args.job.clone().unwrap_or_else(|| {
            format!(
                "migrate:{}/{}",
                ep.firestore.project, ep.firestore.firestore_database
            )
        }),
        ranges: args
            .ranges
            .unwrap_or(args.parallel * args.shard.count)
            .max(1),
        parallel: args.parallel.max(1),
        shard: args.shard,
        force: args.force,
        restart: args.restart,
        pipeline,
    };
    let result = job::run(source, sink, transformer, &options, &progress).await;
    progress.finish();
    if let Some(h) = log_lines {
        h.abort();
    }
    if let Err(e @ crate::error::Error::DeadLetterLimit { .. }) = &result {
        let summary = Summary::from_progress(&progress);
        print_summary(&summary, &ep.mongo.database, args);
        write_summary_json(args.summary_json.as_deref(), &summary)?;
        eprintln!("error: job `{}`: {e}", options.job);
        return Ok(EXIT_DEAD_LETTER_LIMIT);
    }
    let outcome = result.with_context(|| {
        format!(
            "job `{}` stopped after {}. Every acknowledged document is checkpointed: rerun the same command to resume",
            options.job,
            progress.line()
        )
    })?;
    let summary = &outcome.summary;
    if outcome.ranges_already_done > 0 {
        println!(
            "job `{}`: {} of this shard's ranges were already copied by an earlier run; {} copied now",
            options.job, outcome.ranges_already_done, outcome.ranges_copied
        );
    }
    print_summary(summary, &ep.mongo.database, args);
    write_summary_json(args.summary_json.as_deref(), summary)?;
    if summary.read == 0 && !outcome.resumed && !args.allow_empty {
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

fn write_summary_json(path: Option<&std::path::Path>, summary: &Summary) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_vec_pretty(summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
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
    if let Some(reports) = s.indexes.as_deref().filter(|r| !r.is_empty()) {
        println!();
        println!("{}", crate::mapping::indexes::render_report(reports));
    }
}

/// Runs `status`: prints every range of the job(s) from the checkpoint collection.
pub async fn status(args: StatusArgs) -> anyhow::Result<i32> {
    let sink = args.mongo.connect(SinkConfig::default()).await?;
    let outcome = status_on(&args, &sink).await;
    sink.shutdown().await;
    outcome
}

async fn status_on(args: &StatusArgs, sink: &MongoSink) -> anyhow::Result<i32> {
    use crate::checkpoint::{CheckpointStore, CHECKPOINT_COLLECTION};
    let store = CheckpointStore::new(sink.database(), CHECKPOINT_COLLECTION, sink.config().retry);
    let jobs = match &args.job {
        Some(j) => store.load_job(j).await?.into_iter().collect(),
        None => store.jobs().await?,
    };
    if jobs.is_empty() {
        println!(
            "no migration jobs in {} ({})",
            args.mongo.database,
            sink.uri()
        );
        return Ok(if args.job.is_some() { 1 } else { 0 });
    }
    for job in jobs {
        let ranges = store.load_ranges(&job.job).await?;
        let done = ranges.iter().filter(|r| r.state.is_done()).count();
        println!(
            "job `{}` — source {} — {} of {} ranges copied — mappings {}",
            job.job,
            job.source,
            done,
            job.ranges.len(),
            job.mappings_hash
        );
        println!(
            "{:>5}  {:<8}  {:>10}  {:>8}  {:>9}  {:<24}  last error",
            "range", "state", "written", "dead", "docs/s", "updated"
        );
        for i in 0..job.ranges.len() {
            match ranges.iter().find(|r| r.index as usize == i) {
                Some(r) => println!(
                    "{:>5}  {:<8}  {:>10}  {:>8}  {:>9.0}  {:<24}  {}",
                    i,
                    r.state.name(),
                    r.counts.written,
                    r.counts.dead_lettered,
                    r.rate,
                    r.updated_at.try_to_rfc3339_string().unwrap_or_default(),
                    r.last_error.as_deref().unwrap_or("")
                ),
                None => println!("{i:>5}  {:<8}", "pending"),
            }
        }
    }
    Ok(0)
}
