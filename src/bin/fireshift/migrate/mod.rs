//! `fireshift migrate`: the flags, the run, and the exit code of its outcome.
//!
//! * [`report`] the summary table and `--summary-json`, on every way out;
//! * [`watchdog`] the stall watchdog.

mod report;
mod watchdog;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use fireshift::follow::run::FollowView;
use fireshift::migrate::job::{self, JobOptions};
use fireshift::migrate::pipeline::pushback::Pushback;
use fireshift::migrate::pipeline::{PipelineConfig, Summary};
use fireshift::migrate::progress::Progress;
use fireshift::migrate::retry_dead;
use fireshift::migrate::target::Existing;
use fireshift::sink::{MongoSink, SinkConfig};
use fireshift::source::{FirestoreSource, Source};
use fireshift::throttle::Throttle;

use crate::cli::Endpoints;
use crate::exit::ExitCode;
use crate::parse;
use crate::progress::events::Events;
use crate::progress::Display;
use crate::source::AnySource;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Mapping directory (`mappings/<dataset>`); collections without a mapping file, or
    /// every collection without this flag, keep the defaults.
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// Documents per MongoDB write batch.
    #[arg(long, default_value_t = 1000, value_parser = parse::batch_size)]
    pub batch_size: usize,
    /// Bytes per MongoDB write batch (at most 16 MiB less the command envelope).
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_parser = parse::batch_bytes)]
    pub batch_bytes: usize,
    /// Write batches in flight at once.
    #[arg(long, default_value_t = 4, value_parser = parse::at_least_one)]
    pub in_flight: usize,
    /// Documents per Firestore query page (the unit of resume on a fault).
    #[arg(long, default_value_t = 10_000, value_parser = parse::page_size)]
    pub page_size: i32,
    /// Documents read ahead of the writer.
    #[arg(long, default_value_t = 4096, value_parser = parse::at_least_one)]
    pub read_ahead: usize,
    /// Collection for documents that cannot be converted or written.
    #[arg(long, default_value = fireshift::sink::dead_letter::DEAD_LETTER_COLLECTION)]
    pub dead_letter_collection: String,
    /// Stop (exit 6, checkpoints kept) once this run dead-letters more documents than
    /// this; without it the run always goes to the end and reports them (exit 3).
    #[arg(long)]
    pub max_dead_letters: Option<u64>,
    /// Once every range is copied, read the job's dead-lettered documents again from
    /// the source and write them with the current mappings; the ones that land (or
    /// that were deleted from the source since) leave the dead-letter collection.
    #[arg(long, conflicts_with = "from_export")]
    pub retry_dead_letters: bool,
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
    /// Also write the run's report as JSON to this file, however the run ends: job, run
    /// id, project, outcome, exit code, error, counts per collection.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Append the run as NDJSON events to this file (a path or a FIFO): `start`, then
    /// `progress` every --progress-every seconds, then `end` with the --summary-json
    /// report.
    #[arg(long, value_name = "FILE")]
    pub progress_json: Option<PathBuf>,
    /// Seconds between progress log lines (when no bars are drawn) and `progress` events.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub progress_every: u64,
    /// Job name: checkpoints are kept under it in `_fireshift_checkpoints` of the target
    /// database. Default: `migrate:<project>/<firestore database>`.
    #[arg(long)]
    pub job: Option<String>,
    /// Key ranges to split a new job into (fixed once the job exists). Default:
    /// --parallel × the shard count, so no split is paid for without parallelism
    /// (each split slice costs a count query, a full scan on the emulator).
    #[arg(long, value_parser = parse::at_least_one)]
    pub ranges: Option<usize>,
    /// Ranges copied at once by this process.
    #[arg(long, default_value_t = 1, value_parser = parse::at_least_one)]
    pub parallel: usize,
    /// Run only share K of N of the ranges (N processes or machines run one job). `auto`:
    /// K and N from a Cloud Run job (CLOUD_RUN_TASK_INDEX, CLOUD_RUN_TASK_COUNT) or a
    /// Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with N in FIRESHIFT_SHARD_COUNT).
    #[arg(long, default_value = "1/1", value_parser = parse::shard)]
    pub shard: parse::ShardChoice,
    /// Resume although the mappings changed since the job started.
    #[arg(long)]
    pub force: bool,
    /// Log what each range waits on when no document was acknowledged for this long
    /// (seconds; 0: never).
    #[arg(long, default_value_t = 60)]
    pub stall_warning: u64,
    /// Stop the run (checkpoints kept, exit 1) when no document was acknowledged for
    /// this long (seconds; 0: never). Nothing may wait forever.
    #[arg(long, default_value_t = 600)]
    pub stall_timeout: u64,
    /// Forget the job's checkpoints and copy everything again.
    #[arg(long)]
    pub restart: bool,
    /// A new job whose target collections already hold documents: drop exactly those
    /// collections (each logged) before the copy. Without it, or --allow-existing, such
    /// a job stops before reading, naming them.
    #[arg(long, conflicts_with = "allow_existing")]
    pub drop_target: bool,
    /// A new job may write into target collections that already hold documents
    /// (documents with the same _id are replaced). Implied by --guard-update-time.
    #[arg(long)]
    pub allow_existing: bool,
    /// Firestore documents read per second, for the whole job: each of N shards takes
    /// 1/N (see --limits-per-process). Smooth, not in bursts.
    #[arg(long, value_name = "N", value_parser = parse::rate)]
    pub max_reads_per_second: Option<f64>,
    /// MongoDB documents written per second, for the whole job: each of N shards takes
    /// 1/N (see --limits-per-process). Write batches shrink to a fifth of a second's worth
    /// so writes stay smooth.
    #[arg(long, value_name = "N", value_parser = parse::rate)]
    pub max_writes_per_second: Option<f64>,
    /// The --max-*-per-second limits are this process's own, not the job's share.
    #[arg(long)]
    pub limits_per_process: bool,
    /// How long a range's lease lasts without renewal (seconds): a second process on
    /// the job is refused while it lasts; after a crash, the next run takes the ranges
    /// over once it has expired. Renewed every quarter of it.
    #[arg(long, default_value_t = 60, value_parser = parse::lease_seconds)]
    pub lease_seconds: u64,
    /// Instead of the job, re-copy just the documents this verify report (PREFIX.json)
    /// lists as missing or differing; extras are left (docs/verify-report.md).
    #[arg(long, value_name = "PREFIX.json", conflicts_with_all = ["restart", "drop_target", "retry_dead_letters", "dry_run", "from_export"])]
    pub only_from_report: Option<PathBuf>,
    #[command(flatten)]
    pub follow: crate::follow::FollowArgs,
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,
}

/// Runs `migrate`; returns the process exit code. Whatever way the run ends (done,
/// dead letters, a signal, an error before or after the copy), `--summary-json` and the
/// last `--progress-json` event say how, with the exit code.
pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    if let Err(e) = args.metrics.validate() {
        eprintln!("error: {e}");
        return Ok(ExitCode::Usage);
    }
    let progress = Progress::new();
    let mut facts = report::Facts::new(&args);
    let events = match Events::open(args.progress_json.as_deref(), &facts.run_id) {
        Ok(events) => events,
        Err(e) => return report::conclude(&args, &progress, facts, Err(e), None),
    };
    events.start(serde_json::json!({
        "job": facts.job,
        "project": facts.project,
        "firestore_database": facts.firestore_database,
        "database": facts.database,
        "dry_run": facts.dry_run,
    }));
    let result = connect_and_copy(&args, &progress, &events, &mut facts).await;
    report::conclude(&args, &progress, facts, result, Some(&events))
}

/// Connects to both ends and copies; the shutdown of the MongoDB client is awaited on
/// every path, so the driver's clean-up never races the runtime's end.
async fn connect_and_copy(
    args: &MigrateArgs,
    progress: &Progress,
    events: &Events,
    facts: &mut report::Facts,
) -> anyhow::Result<ExitCode> {
    let ep = &args.endpoints;
    // Mappings are validated before any I/O: a broken file stops the run here.
    let transformer = crate::mappings::transformer(args.mappings.as_deref())?;
    let limits = Limits::of(args);
    let sink_config = SinkConfig {
        max_batch_docs: limits.batch_docs(args.batch_size),
        max_batch_bytes: args.batch_bytes,
        retry: ep.retry(),
        // A follow writes beside the copy: both guarded (docs/follow.md).
        guard_field: (args.guard_update_time || args.follow.follow)
            .then(|| fireshift::sink::guard::GUARD_FIELD.to_string()),
    };
    sink_config.validate()?;
    let mut source_config = ep.source_config();
    source_config.page_size = args.page_size;
    let source = AnySource::open(ep, source_config, &transformer).await?;
    (facts.project, facts.firestore_database) = source.ids();
    let sink = ep.mongo.connect(sink_config).await?;
    let outcome = migrate_on(args, &transformer, &source, &sink, progress, events, facts).await;
    sink.shutdown().await;
    outcome
}

/// The body of `migrate` once both ends are connected.
async fn migrate_on(
    args: &MigrateArgs,
    transformer: &fireshift::mapping::transform::Transformer,
    source: &AnySource,
    sink: &MongoSink,
    progress: &Progress,
    events: &Events,
    facts: &mut report::Facts,
) -> anyhow::Result<ExitCode> {
    let ep = &args.endpoints;
    tracing::info!(
        source = %source.root(), endpoint = %source.endpoint(), target = %sink.uri(), database = %ep.mongo.database,
        dry_run = args.dry_run, "migrating"
    );

    if let (Some(report), AnySource::Live(live)) = (&args.only_from_report, source) {
        return from_report(args, report, transformer, live, sink, &facts.run_id).await;
    }
    if let Some(from) = &args.shard.from {
        let s = args.shard.shard;
        tracing::info!("--shard auto: shard {}/{} ({from})", s.index, s.count);
    }
    if args.follow.follow {
        crate::follow::refuse_unsupported(args, source)?;
    }
    // What the follower publishes (nothing without one); the metrics are served until
    // this function returns (the copy, and the follow until it leaves).
    let follow_view = Arc::new(std::sync::Mutex::new(FollowView::default()));
    let _metrics = match args.metrics.metrics_addr {
        Some(addr) => Some(
            crate::metrics::serve(
                addr,
                crate::metrics::Sources {
                    progress: progress.clone(),
                    follow: follow_view.clone(),
                },
            )
            .await?,
        ),
        None => None,
    };
    let stop = crate::signals::Stop::install().context("listening for SIGINT/SIGTERM")?;
    let limits = Limits::of(args);
    if let Some(said) = limits.describe() {
        tracing::info!("rate limits of this process: {said}");
    }
    let display = Display::start(
        progress,
        args.quiet,
        events,
        args.progress_every,
        limits.describe(),
    );
    let pipeline = PipelineConfig {
        read_ahead: args.read_ahead,
        in_flight: args.in_flight,
        dead_letter_collection: args.dead_letter_collection.clone(),
        run_id: facts.run_id.clone(),
        dry_run: args.dry_run,
        max_dead_letters: args.max_dead_letters,
        stop: stop.token.clone(),
        reads: limits.reads.map(|r| Arc::new(Throttle::new(r))),
        // Always paced: without a limit the pace is unlimited until MongoDB pushes back.
        writes: Some(Arc::new(Pushback::new(Arc::new(
            limits
                .writes
                .map_or_else(Throttle::unlimited, Throttle::new),
        )))),
        // A following job records what it writes (docs/follow.md, "The ledger").
        ledger: args
            .follow
            .follow
            .then(|| fireshift::ledger::Ledger::new(facts.job.clone())),
        ..PipelineConfig::default()
    };
    let options = JobOptions {
        job: facts.job.clone(),
        ranges: args
            .ranges
            .unwrap_or(args.parallel * args.shard.shard.count)
            .max(1),
        parallel: args.parallel.max(1),
        shard: args.shard.shard,
        force: args.force,
        restart: args.restart,
        allow_empty: args.allow_empty,
        existing: if args.drop_target {
            Existing::Drop
        } else if args.allow_existing || args.guard_update_time {
            // A guarded backfill writes beside the API's dual writes by design.
            Existing::Allow
        } else {
            Existing::Refuse
        },
        lease_ttl: std::time::Duration::from_secs(args.lease_seconds),
        pipeline,
    };
    // With --follow, the follower starts before the copy's first read (its start time
    // is taken first) and runs beside it.
    let follower = match args.follow.follow {
        true => {
            let (live, start_at) = source.followed(&args.endpoints, args.page_size).await?;
            Some(
                crate::follow::start(
                    args,
                    &options,
                    &live,
                    start_at,
                    sink,
                    transformer,
                    &stop.token,
                    &facts.run_id,
                    follow_view.clone(),
                )
                .await?,
            )
        }
        false => None,
    };
    let result = tokio::select! {
        r = job::run(source, sink, transformer, &options, progress) => r,
        stalled = watchdog::watchdog(progress, args.stall_warning, args.stall_timeout) => Err(stalled),
    };
    display.finish().await;
    let follower = follower.map(|f| f.copy_ended(&result));
    // The copy went wrong: the follower stops with it, its position saved.
    let follower = match follower {
        Some(f) if result.is_err() => {
            f.stopped().await;
            None
        }
        f => f,
    };
    if let Err(e @ fireshift::error::Error::DeadLetterLimit { .. }) = &result {
        report::print_summary(&Summary::from_progress(progress), &ep.mongo.database, args);
        eprintln!("error: job `{}`: {e}", options.job);
        return Ok(ExitCode::DeadLetterLimit);
    }
    if let (Err(fireshift::error::Error::Interrupted), Some(code)) = (&result, stop.exit_code()) {
        report::print_summary(&Summary::from_progress(progress), &ep.mongo.database, args);
        eprintln!(
            "job `{}` stopped on request after {}; every acknowledged document is checkpointed: rerun the same command to resume",
            options.job,
            progress.line()
        );
        return Ok(code);
    }
    if let Err(e @ fireshift::error::Error::EmptySource { .. }) = &result {
        facts.outcome = Some(report::Outcome::EmptySource);
        bail!(
            "{e} (endpoint {}); nothing was kept, so the next run starts afresh",
            source.endpoint()
        );
    }
    // Refused before any copy: there is nothing to resume, the message says what to do.
    if let Err(
        e @ (fireshift::error::Error::TargetNotEmpty { .. }
        | fireshift::error::Error::LeaseHeld { .. }),
    ) = &result
    {
        facts.outcome = Some(report::Outcome::Refused);
        bail!("job `{}`: {e}", options.job);
    }
    let outcome = result.with_context(|| {
        format!(
            "job `{}` stopped after {}. Every acknowledged document is checkpointed: rerun the same command to resume",
            options.job,
            progress.line()
        )
    })?;
    let summary = &outcome.summary;
    facts.ranges_already_done = Some(outcome.ranges_already_done);
    facts.ranges_copied = Some(outcome.ranges_copied);
    facts.summary = Some(summary.clone());
    if outcome.ranges_already_done > 0 {
        println!(
            "job `{}`: {} of this shard's ranges were already copied by an earlier run; {} copied now",
            options.job, outcome.ranges_already_done, outcome.ranges_copied
        );
    }
    report::print_summary(summary, &ep.mongo.database, args);
    if !summary.accounted_for() {
        bail!(
            "{} documents read but {} written and {} dead-lettered: some documents are unaccounted for",
            summary.read,
            summary.written,
            summary.dead_lettered
        );
    }
    let refused = summary
        .indexes
        .as_deref()
        .map_or(0, |r| r.iter().filter(|r| !r.is_ok()).count());
    if refused > 0 {
        println!(
            "{refused} of the mappings' indexes were refused or clash (see above): `fireshift indexes` builds them alone once fixed"
        );
    }
    // The job's result, not only this run's: a rerun with nothing left to copy must not
    // turn earlier dead letters into a success. Counted where they are, so the ones a
    // retry cleared no longer count.
    let mut job_dead = 0;
    if outcome.all_done {
        if let (true, AnySource::Live(live)) = (args.retry_dead_letters, source) {
            let r = retry_dead::retry(
                live,
                sink,
                transformer,
                &args.dead_letter_collection,
                &options.pipeline.run_id,
            )
            .await?;
            facts.dead_letters_retried = Some(r);
            println!(
                "dead letters retried: {} landed, {} deleted from the source since, {} still dead",
                r.landed, r.gone, r.still_dead
            );
        }
        job_dead = retry_dead::count(sink, &args.dead_letter_collection, source.root()).await?;
        facts.job_dead_lettered = Some(job_dead);
        let earlier = job_dead.saturating_sub(summary.dead_lettered);
        if earlier > 0 && !args.retry_dead_letters {
            println!(
                "job `{}` holds {earlier} dead-lettered documents from earlier runs: see {}.{}; once the data or the mappings are fixed, --retry-dead-letters copies them",
                options.job, ep.mongo.database, args.dead_letter_collection
            );
        }
    } else if args.retry_dead_letters {
        println!("dead letters are retried once every range of the job is copied (other shards are still copying)");
    }
    if let Some(f) = follower {
        println!(
            "job `{}`: the copy is done; following Firestore's changes until `fireshift cutover`",
            options.job
        );
        let shown = crate::progress::follow::FollowDisplay::start(follow_view.clone(), args.quiet);
        let ended = f.finish().await;
        shown.finish().await;
        match ended? {
            fireshift::follow::run::Ended::CutOver => {
                println!(
                    "job `{}`: cut over; every change up to the cutover is in MongoDB",
                    options.job
                )
            }
            fireshift::follow::run::Ended::Stopped => {
                println!(
                    "job `{}`: following stopped on request; rerun the same command to go on from the saved position",
                    options.job
                );
                return Ok(stop.exit_code().unwrap_or(ExitCode::Interrupted));
            }
        }
    }
    // Dead letters first: a document that did not land weighs more than an index.
    Ok(if summary.dead_lettered > 0 || job_dead > 0 {
        ExitCode::DeadLetters
    } else if refused > 0 {
        ExitCode::IndexesNotBuilt
    } else {
        ExitCode::Ok
    })
}

/// This process's rate limits: the job's, divided among the shards unless
/// `--limits-per-process`.
struct Limits {
    reads: Option<f64>,
    writes: Option<f64>,
}

impl Limits {
    fn of(args: &MigrateArgs) -> Self {
        let share = if args.limits_per_process {
            1.0
        } else {
            args.shard.shard.count as f64
        };
        Self {
            reads: args.max_reads_per_second.map(|r| r / share),
            writes: args.max_writes_per_second.map(|w| w / share),
        }
    }

    /// A write batch holds at most a fifth of a second's worth of writes, so a limited
    /// run writes steadily instead of a large batch at a time.
    fn batch_docs(&self, batch_size: usize) -> usize {
        match self.writes {
            Some(w) => batch_size.min(((w / 5.0) as usize).max(1)),
            None => batch_size,
        }
    }

    fn describe(&self) -> Option<String> {
        let fmt = |r: f64, what: &str| format!("{} {what}/s", crate::progress::rate::per_sec(r));
        let parts: Vec<String> = [
            self.reads.map(|r| fmt(r, "reads")),
            self.writes.map(|w| fmt(w, "writes")),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| format!("limited to {}", parts.join(", ")))
    }
}

/// `--only-from-report`: re-copies what a verify report lists, instead of the job.
async fn from_report(
    args: &MigrateArgs,
    report: &std::path::Path,
    transformer: &fireshift::mapping::transform::Transformer,
    source: &FirestoreSource,
    sink: &MongoSink,
    run_id: &str,
) -> anyhow::Result<ExitCode> {
    let r = fireshift::migrate::from_report::recopy(
        source,
        sink,
        transformer,
        report,
        &args.dead_letter_collection,
        run_id,
    )
    .await
    .with_context(|| format!("re-copying the documents {} lists", report.display()))?;
    println!(
        "re-copied from {}: {} listed, {} landed, {} dead-lettered, {} no longer in the source; {} extras left in place (never deleted: review and delete them by hand)",
        report.display(), r.listed, r.landed, r.dead_lettered, r.gone, r.extras_left
    );
    if r.not_listed > 0 {
        println!(
            "{} mismatches were counted but not listed in the report: verify again and re-copy from the new report",
            r.not_listed
        );
    }
    Ok(if r.dead_lettered > 0 {
        ExitCode::DeadLetters
    } else {
        ExitCode::Ok
    })
}
