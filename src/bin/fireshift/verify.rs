//! `fireshift verify`: flags (no I/O), then the run: pass 1, extras, recheck, report.
//!
//! Exit codes: 0 full parity; [`ExitCode::Mismatches`] (4) mismatches confirmed (the report
//! lists them); [`ExitCode::Paused`] (7) stopped by `--max-docs` before the end, resumable;
//! 1 an error stopped the run (rerun to resume it).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures::TryStreamExt;
use mongodb::bson::DateTime;

use crate::cli::Endpoints;
use crate::exit::ExitCode;
use crate::parse;
use fireshift::mapping::transform::Transformer;
use fireshift::retry::RetryPolicy;
use fireshift::sink::SinkConfig;
use fireshift::source::Source;
use fireshift::verify::report::{self, ReportHead, ReportWriter};
use fireshift::verify::store::{RunRecord, RunState, Store, RUN_RECORD_VERSION};
use fireshift::verify::{CollectionCounts, PassEnd, Progress, Recheck, Verifier, VerifyConfig};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// The mapping directory migrate used (without it, the default mapping): each source
    /// document is transformed exactly as migrate did before it is compared.
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// Write the report to PREFIX.json and PREFIX.html.
    #[arg(long, value_name = "PREFIX", default_value = "fireshift-verify")]
    pub report: PathBuf,
    /// Compare this fraction of the source documents (0 < P ≤ 1), chosen by a hash of
    /// the document name (the same documents on every run). A sampled run does not
    /// search for extra target documents; it compares target counts instead.
    #[arg(long, value_name = "P", default_value_t = 1.0, value_parser = parse::fraction)]
    pub sample: f64,
    /// Resume this run (default: the last unfinished run comparing the same source and
    /// target, if its options match). A finished run's report is written again.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<String>,
    /// Start a new run even if an unfinished one exists.
    #[arg(long, conflicts_with = "resume")]
    pub new_run: bool,
    /// Wait this long (seconds) before rechecking mismatches, so that writes in flight
    /// (a dual writer's lag) land first.
    #[arg(long, default_value_t = 5.0, value_parser = parse::seconds)]
    pub recheck_delay: f64,
    /// Mismatches listed per collection in the HTML page (all are counted, and the JSON
    /// lists every one).
    #[arg(long, default_value_t = 1000, value_parser = parse::at_least_one)]
    pub max_listed: usize,
    /// Stop after this many source documents (resumable: rerun to continue); exit 7.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_docs: Option<u64>,
    /// Ids per target query.
    #[arg(long, default_value_t = 500, value_parser = parse::at_least_one)]
    pub chunk_size: usize,
    /// Target queries in flight at once.
    #[arg(long, default_value_t = 4, value_parser = parse::at_least_one)]
    pub in_flight: usize,
    /// Source documents read ahead of the comparison.
    #[arg(long, default_value_t = 4096, value_parser = parse::at_least_one)]
    pub read_ahead: usize,
    /// Documents per Firestore query page.
    #[arg(long, default_value_t = 10_000, value_parser = parse::page_size)]
    pub page_size: i32,
    /// Source documents between two saved cursors (the work redone after a crash).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_docs: u64,
    /// Collection where migrate put documents it could not convert or write.
    #[arg(long, default_value = fireshift::sink::dead_letter::DEAD_LETTER_COLLECTION)]
    pub dead_letter_collection: String,
    /// Database where verify keeps its runs and mismatches (default: `<database>_fireshift`).
    /// Never the verified database: verify only reads that one.
    #[arg(long, value_name = "DB")]
    pub state_database: Option<String>,
}

/// The transform verify compares against: the one `migrate` applies, from the same
/// `--mappings` directory. Read and validated before any I/O.
fn transformer(args: &VerifyArgs) -> anyhow::Result<Transformer> {
    crate::mappings::transformer(args.mappings.as_deref())
}

/// Runs `verify`; returns the process exit code.
pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let ep = &args.endpoints;
    let retry = RetryPolicy {
        deadline: Duration::from_secs(ep.retry_timeout),
        ..RetryPolicy::default()
    };
    let config = VerifyConfig {
        chunk_size: args.chunk_size,
        in_flight: args.in_flight,
        read_ahead: args.read_ahead,
        checkpoint_docs: args.checkpoint_docs,
        sample: args.sample,
        dead_letter_collection: args.dead_letter_collection.clone(),
        max_docs: args.max_docs,
        retry,
        ..VerifyConfig::default()
    };
    config.validate()?;
    let state_database = fireshift::verify::databases::state_database_name(
        &ep.mongo.database,
        args.state_database.as_deref(),
    );
    let state_database = match state_database {
        Ok(name) => name,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::Usage);
        }
    };
    let transformer = transformer(&args)?;

    let mut source_config = ep.source_config();
    source_config.page_size = args.page_size;
    let source = crate::source::AnySource::open(ep, source_config, &transformer).await?;
    // The sink's connect: same options, same ping with retries, same redaction.
    let target = ep.mongo.connect(SinkConfig::default()).await?;
    let outcome = run_on(
        &args,
        config,
        transformer,
        source,
        &target,
        &state_database,
        started,
    )
    .await;
    // Every path ends here, so the driver's clean-up never races the runtime's end.
    target.shutdown().await;
    outcome
}

/// The body of `verify` once both ends are connected.
async fn run_on(
    args: &VerifyArgs,
    config: VerifyConfig,
    transformer: Transformer,
    source: crate::source::AnySource,
    target: &fireshift::sink::MongoSink,
    state_database: &str,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let ep = &args.endpoints;
    let db = target.database().clone();
    let uri = target.uri().to_string();
    // Before anything is read or written: a mistyped --database stops here.
    fireshift::verify::databases::require_existing(&db, &uri).await?;
    let state = db.client().database(state_database);
    // Said up front: with other mappings than the job's, every finding may be noise.
    let warnings = mappings_warnings(args, &db, &source, &transformer, config.retry).await?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let ttl = report::hints::ttl_indexes(transformer.mappings());

    let ids = source.ids();
    let export = source.export_path(ep).map(str::to_string);
    let mut run = open_run(args, &state, &uri, &transformer, &ids, export).await?;
    run.invocations += 1;
    let store = Store::new(state, db.clone(), uri.clone(), run.id.clone(), config.retry)?;
    store.save_run(&mut run).await?;
    store.ensure_indexes().await?;
    tracing::info!(
        run = %run.id, source = %source.root(), endpoint = %source.endpoint(), target = %uri,
        database = %ep.mongo.database, sample = args.sample, state = ?run.state,
        state_database, cursor = run.cursor.as_deref().unwrap_or("(start)"), "verifying"
    );
    let verifier = Verifier::new(source, db, uri.clone(), transformer, config)?;

    let progress = Arc::new(Progress::default());
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            let t0 = Instant::now();
            loop {
                tick.tick().await;
                let docs = progress.docs.load(Ordering::Relaxed);
                tracing::info!(
                    "progress: {docs} source documents compared ({:.0} docs/s), {} suspected mismatches before recheck",
                    docs as f64 / t0.elapsed().as_secs_f64().max(1e-3),
                    progress.suspects.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut background: Vec<Background> = Vec::new();
    {
        let store = store.clone();
        background.push(tokio::spawn(async move {
            for name in store.drop_stale_scratch().await? {
                tracing::info!("dropped {name}, the scratch collection of a finished run");
            }
            Ok(())
        }));
    }
    let mut phases = report::PhaseSecs::default();
    let outcome = drive(
        &verifier,
        &store,
        &mut run,
        &progress,
        args,
        &mut phases,
        &mut background,
    )
    .await;
    ticker.abort();
    match outcome.with_context(|| {
        format!(
            "verify run {} stopped (rerun the same command to resume it)",
            run.id
        )
    })? {
        PassEnd::Paused => {
            println!(
                "verify run {} paused after {} source documents (cursor {}); rerun to continue",
                run.id,
                run.docs,
                run.cursor.as_deref().unwrap_or("(start)")
            );
            return Ok(ExitCode::Paused);
        }
        PassEnd::Complete => {}
    }

    // The report.
    let tally = store.tally().await?;
    let sampled = verifier.config().sampled();
    let (mut collections, totals) = report::collection_reports(&run.collections, &tally, sampled);
    report::hints::add_collection_hints(&mut collections, &ttl);
    let parity = totals.parity;
    let exit_code = if parity {
        ExitCode::Ok
    } else {
        ExitCode::Mismatches
    };
    let head = ReportHead {
        schema_version: report::SCHEMA_VERSION,
        tool: report::ToolInfo {
            name: "fireshift",
            version: env!("CARGO_PKG_VERSION"),
        },
        run: report::RunInfo {
            id: run.id.clone(),
            started_at: rfc3339(run.started_at),
            finished_at: rfc3339(run.finished_at.unwrap_or_else(DateTime::now)),
            invocations: run.invocations,
            elapsed_secs: started.elapsed().as_secs_f64(),
            docs_this_invocation: progress.docs.load(Ordering::Relaxed),
            phase_secs: phases,
        },
        source: report::SourceInfo {
            project: ids.0.clone(),
            firestore_database: ids.1.clone(),
            endpoint: verifier.source().endpoint().to_string(),
        },
        target: report::TargetInfo {
            uri: uri.clone(),
            database: ep.mongo.database.clone(),
            dead_letter_collection: args.dead_letter_collection.clone(),
            state_database: state_database.to_string(),
        },
        options: report::OptionsInfo {
            sample: args.sample,
            extras_checked: !sampled,
            recheck_delay_secs: args.recheck_delay,
            max_listed: args.max_listed,
            transform: run.transform.clone(),
            canonical_form: 1,
        },
        result: report::ResultInfo {
            parity,
            exit_code: exit_code.code(),
            mismatches: totals.mismatches(),
            summary: report::verdict(&totals, sampled),
            warnings,
        },
        totals,
        collections,
    };
    let mut writer = ReportWriter::create(&args.report)
        .with_context(|| format!("creating the report {}.json/.html", args.report.display()))?;
    writer.begin(&head).context("writing the report")?;
    write_lists(&store, &mut writer, &head, args.max_listed).await?;
    let (json_path, html_path) = {
        let (j, h) = writer.paths();
        (j.to_path_buf(), h.to_path_buf())
    };
    let first = writer
        .finish(head.result.mismatches)
        .context("writing the report")?;
    print!(
        "{}",
        report::terminal_summary(&head, &first, (&json_path, &html_path))
    );
    for task in background {
        if let Err(e) = task
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|r| Ok(r?))
        {
            // The verdict stands; only the cleanup failed.
            tracing::warn!("cleaning up the verifier's scratch collections: {e:#}");
        }
    }
    Ok(exit_code)
}

/// The mismatch lists: every one into the JSON; per failing collection (failing first)
/// the first `max_listed` into the HTML page.
async fn write_lists(
    store: &Store,
    writer: &mut ReportWriter,
    head: &ReportHead,
    max_listed: usize,
) -> anyhow::Result<()> {
    let mut all = store.confirmed().await?;
    while let Some(f) = all
        .try_next()
        .await
        .context("reading the confirmed mismatches")?
    {
        writer.push_json(&f).context("writing the report")?;
    }
    for row in report::failing_first(&head.collections) {
        if row.mismatches() == 0 {
            continue;
        }
        writer.html_collection(row).context("writing the report")?;
        let mut listed = store.confirmed_in(&row.collection, max_listed).await?;
        let mut n = 0u64;
        while let Some(f) = listed
            .try_next()
            .await
            .context("reading the confirmed mismatches")?
        {
            writer.push_html(&f).context("writing the report")?;
            n += 1;
        }
        writer
            .html_collection_end(row, n)
            .context("writing the report")?;
    }
    Ok(())
}

/// A warning for each migrate job of this source (its record in the target's
/// checkpoints, only read) that copied with other mappings than this verify uses.
async fn mappings_warnings(
    args: &VerifyArgs,
    db: &mongodb::Database,
    source: &crate::source::AnySource,
    transformer: &Transformer,
    retry: RetryPolicy,
) -> anyhow::Result<Vec<String>> {
    use fireshift::migrate::checkpoint::{CheckpointStore, CHECKPOINT_COLLECTION};
    let jobs: Vec<(String, String)> = CheckpointStore::new(db, CHECKPOINT_COLLECTION, retry)
        .jobs()
        .await?
        .into_iter()
        .filter(|j| j.source == source.root())
        .map(|j| (j.job, j.mappings_hash))
        .collect();
    Ok(report::hints::mappings_warnings(
        &jobs,
        &transformer.fingerprint(),
        args.mappings.is_some(),
    ))
}

/// Cleanup running beside the verify, awaited before the process exits.
type Background = tokio::task::JoinHandle<fireshift::error::Result<()>>;

/// Pass 1, extras, recheck, each skipped when the run is past it.
async fn drive(
    verifier: &Verifier<crate::source::AnySource>,
    store: &Store,
    run: &mut RunRecord,
    progress: &Progress,
    args: &VerifyArgs,
    phases: &mut report::PhaseSecs,
    background: &mut Vec<Background>,
) -> anyhow::Result<PassEnd> {
    if run.state == RunState::Comparing {
        let t = Instant::now();
        let end = verifier.compare_source(store, run, progress).await?;
        phases.compare = t.elapsed().as_secs_f64();
        tracing::info!(
            "pass 1: {} source documents in {:.1} s",
            progress.docs.load(Ordering::Relaxed),
            phases.compare
        );
        if end == PassEnd::Paused {
            return Ok(PassEnd::Paused);
        }
        run.state = RunState::Extras;
        store.save_run(run).await?;
    }
    if run.state == RunState::Extras {
        let t = Instant::now();
        let sampled = verifier.config().sampled();
        for c in &mut run.collections {
            c.target = Some(0);
        }
        for name in store
            .target_collections(&verifier.config().dead_letter_collection)
            .await?
        {
            let holds = verifier
                .transformer()
                .mappings()
                .map(|m| m.embedded_fields_of(&name))
                .unwrap_or_default();
            let n = store.count(&name, &holds).await?;
            let counts = match run.collections.iter_mut().find(|c| c.collection == name) {
                Some(c) => c,
                None => {
                    run.collections.push(CollectionCounts::named(&name));
                    run.collections.last_mut().expect("pushed")
                }
            };
            counts.target = Some(n);
            // Pass 1 found `matched + differing` distinct documents of this collection
            // in the target (each expected document has its own _id: the identity is
            // injective). When the target holds exactly that many, none is left over
            // and the anti-join would return nothing: skip it. Only a collection whose
            // count differs is scanned. (With writes during the run, an extra can hide
            // behind a found document deleted from the target in the meantime; both are
            // changes made during the run, which no single pass can pin down.)
            let found = counts.matched + counts.differing;
            if !sampled && n != found {
                let extras = store
                    .scan_extras(&name, &holds, verifier.config().chunk_size)
                    .await?;
                if extras > 0 {
                    tracing::info!(collection = %name, extras, "target documents no source document maps to (before recheck)");
                }
            }
        }
        // Embedded children are rows of their own: their target count is the number of
        // elements in the parents' arrays.
        for c in run.collections.iter_mut() {
            if let Some((parent, field)) = fireshift::verify::place::parse_embed_row(&c.collection)
            {
                c.target = Some(store.count_elements(parent, field).await?);
            }
        }
        run.collections
            .retain(|c| c.source > 0 || c.target.unwrap_or(0) > 0);
        run.collections
            .sort_by(|a, b| a.collection.cmp(&b.collection));
        run.state = RunState::Recheck;
        store.save_run(run).await?;
        phases.extras = t.elapsed().as_secs_f64();
        tracing::info!("target counts and extras scan: {:.1} s", phases.extras);
    }
    if run.state == RunState::Recheck {
        let t = Instant::now();
        // The seen ids served the extras scan only. Dropping them can take a while on
        // some servers: it runs beside the recheck and the report (awaited at the end;
        // if the process stops first, the next run drops it, see drop_stale_scratch).
        let store2 = store.clone();
        background.push(tokio::spawn(async move { store2.drop_seen().await }));
        let mut batch = store.pending(verifier.config().recheck_batch).await?;
        if !batch.is_empty() && args.recheck_delay > 0.0 {
            tracing::info!(
                "waiting {:.1} s before rechecking mismatches (--recheck-delay)",
                args.recheck_delay
            );
            tokio::time::sleep(Duration::from_secs_f64(args.recheck_delay)).await;
        }
        let (mut confirmed, mut resolved) = (0u64, 0u64);
        while !batch.is_empty() {
            let verdicts = verifier.recheck(&batch).await?;
            for v in &verdicts {
                match v {
                    Recheck::Resolved => resolved += 1,
                    Recheck::Confirmed(_) => confirmed += 1,
                }
            }
            store.record_verdicts(&batch, &verdicts).await?;
            batch = store.pending(verifier.config().recheck_batch).await?;
        }
        if confirmed + resolved > 0 {
            tracing::info!(confirmed, resolved, "recheck done");
        }
        run.state = RunState::Done;
        run.finished_at = Some(DateTime::now());
        store.save_run(run).await?;
        phases.recheck = t.elapsed().as_secs_f64();
    }
    Ok(PassEnd::Complete)
}

/// The run to continue, or a new one.
async fn open_run(
    args: &VerifyArgs,
    db: &mongodb::Database,
    uri: &str,
    transformer: &Transformer,
    (project, firestore_database): &(String, String),
    export: Option<String>,
) -> anyhow::Result<RunRecord> {
    let ep = &args.endpoints;
    let sample = args.sample;
    let fingerprint = transformer.fingerprint();
    let matches = |r: &RunRecord| {
        r.project == *project
            && r.firestore_database == *firestore_database
            && r.export == export
            && r.database == ep.mongo.database
    };
    if let Some(id) = &args.resume {
        let Some(r) = Store::load_run(db, uri, id).await? else {
            bail!(
                "no verify run `{id}` in {}.{}",
                db.name(),
                fireshift::verify::store::RUNS_COLLECTION
            );
        };
        if !matches(&r) {
            bail!(
                "verify run `{id}` compared projects/{}/databases/{} with database {}, not this source and target",
                r.project, r.firestore_database, r.database
            );
        }
        check_resumable(&r, &fingerprint, sample, &args.dead_letter_collection)?;
        tracing::info!(run = %r.id, state = ?r.state, "resuming verify run");
        return Ok(r);
    }
    if !args.new_run {
        if let Some(r) = Store::latest_unfinished(
            db,
            uri,
            project,
            firestore_database,
            &ep.mongo.database,
            export.as_deref(),
        )
        .await?
        {
            match check_resumable(&r, &fingerprint, sample, &args.dead_letter_collection) {
                Ok(()) => {
                    tracing::info!(run = %r.id, state = ?r.state, cursor = r.cursor.as_deref().unwrap_or("(start)"), "resuming the unfinished verify run");
                    return Ok(r);
                }
                Err(e) => {
                    tracing::warn!(run = %r.id, "not resuming the unfinished verify run: {e:#}; starting a new one")
                }
            }
        }
    }
    let now = DateTime::now();
    Ok(RunRecord {
        id: format!("verify-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")),
        version: RUN_RECORD_VERSION,
        project: project.clone(),
        firestore_database: firestore_database.clone(),
        export: export.clone(),
        database: ep.mongo.database.clone(),
        sample,
        transform: fingerprint,
        dead_letter_collection: args.dead_letter_collection.clone(),
        state: RunState::Comparing,
        position: None,
        cursor: None,
        docs: 0,
        collections: Vec::new(),
        started_at: now,
        updated_at: now,
        finished_at: None,
        invocations: 0,
    })
}

fn check_resumable(
    r: &RunRecord,
    fingerprint: &str,
    sample: f64,
    dead_letters: &str,
) -> anyhow::Result<()> {
    if r.version != RUN_RECORD_VERSION {
        bail!(
            "run record version {} (this fireshift writes {RUN_RECORD_VERSION})",
            r.version
        );
    }
    if r.transform != fingerprint {
        bail!(
            "the run compared with transform {} and the transform is now {fingerprint}; \
             its counts would mix two rules (start a new run with --new-run)",
            r.transform
        );
    }
    if r.sample != sample {
        bail!(
            "the run samples {} and --sample is {sample} (start a new run with --new-run)",
            r.sample
        );
    }
    if r.dead_letter_collection != dead_letters {
        bail!(
            "the run checks dead letters in {} and --dead-letter-collection is {dead_letters}",
            r.dead_letter_collection
        );
    }
    Ok(())
}

fn rfc3339(t: DateTime) -> String {
    t.try_to_rfc3339_string()
        .unwrap_or_else(|_| format!("{} ms", t.timestamp_millis()))
}
