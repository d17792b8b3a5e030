//! `fireshift plan`: flags, then discovery, the report and the skeleton mappings.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use fireshift::plan::{discover, forecast, report, skeleton};
use fireshift::retry::RetryPolicy;
use fireshift::source::FirestoreSource;

use crate::exit::ExitCode;

/// `fireshift plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub firestore: crate::cli::FirestoreArgs,
    /// Plan from an export instead (every record read once, exact counts, no Firestore
    /// read): a local folder or gs://bucket/prefix, see `migrate --from-export`.
    #[arg(long, value_name = "PATH")]
    pub from_export: Option<String>,
    /// Documents sampled per collection pattern (type inference, suggestions, discovery
    /// of subcollections).
    #[arg(long, default_value_t = 200, value_parser = crate::parse::sample)]
    pub sample: usize,
    /// Directory for the skeleton mappings (one TOML per collection pattern).
    #[arg(long)]
    pub out: PathBuf,
    /// Report files: PREFIX.md and PREFIX.json.
    #[arg(long)]
    pub report: PathBuf,
    /// Stream every document once (billed one read per document) for exact patterns and
    /// counts, instead of discovering from samples.
    #[arg(long)]
    pub full_scan: bool,
    /// Replace skeleton files of the same name already in --out (other files are kept).
    #[arg(long)]
    pub overwrite: bool,
    /// Billed Firestore reads plan may spend (documents returned, one per 1000 entries of
    /// a count, one per ListCollectionIds page): it stops before a call that could go
    /// past it, having written nothing. A --full-scan is counted first and refused
    /// before it reads when the database is larger.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_reads: u64,
    /// No read budget: read what the plan needs (for a --full-scan of a large database).
    #[arg(long)]
    pub yes: bool,
    /// Price of 100,000 document reads in USD, for the cost printed before reading
    /// (check your database location's price).
    #[arg(long, default_value_t = 0.06, value_parser = crate::parse::price)]
    pub price_per_100k_reads: f64,
    /// Forecast: shard processes the job will run as (`migrate --shard K/N`).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub shards: u32,
    /// Forecast: the job's `migrate --max-reads-per-second` (the whole job's; each
    /// shard takes 1/N).
    #[arg(long, value_name = "R", value_parser = crate::parse::rate)]
    pub max_reads_per_second: Option<f64>,
    /// Forecast: the job's `migrate --max-writes-per-second` (the whole job's; each
    /// shard takes 1/N).
    #[arg(long, value_name = "W", value_parser = crate::parse::rate)]
    pub max_writes_per_second: Option<f64>,
    /// Forecast: documents per second one shard process copies (and one verify reads)
    /// when no limit holds it. An assumption: the default is what scripts/bench measured
    /// on a small test machine; use your own scripts/bench figure.
    #[arg(long, value_name = "S", default_value_t = forecast::DEFAULT_DOCS_PER_SECOND_PER_SHARD, value_parser = crate::parse::rate)]
    pub docs_per_second_per_shard: f64,
    /// Give up on an unreachable service after retrying this long (seconds).
    #[arg(long, default_value_t = 300)]
    pub retry_timeout: u64,
}

/// Runs `plan`; returns the exit code (0).
pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // Refuse to clobber an operator's edited mappings before reading anything.
    let planned_dir = skeleton::check_out_dir(&args.out, args.overwrite)?;
    let retry = RetryPolicy {
        deadline: Duration::from_secs(args.retry_timeout),
        ..RetryPolicy::default()
    };
    if let Some(path) = &args.from_export {
        return from_export(&args, path, retry, planned_dir, started).await;
    }
    let config = args.firestore.source_config(retry);
    let source = FirestoreSource::connect(config)
        .await
        .context("connecting to Firestore")?;
    tracing::info!(source = %source.root(), endpoint = %source.endpoint(), sample = args.sample, full_scan = args.full_scan, "planning");
    let budget = (!args.yes).then_some(args.max_reads);
    println!("{}", cost_notice(&args));
    let mut plan = if args.full_scan {
        discover::full_scan(&source, args.sample, budget).await
    } else {
        discover::sampled(&source, args.sample, budget).await
    }
    .context("reading Firestore")?;
    println!(
        "plan read {} billed reads (≈ ${:.4})",
        plan.usage.billed_reads,
        cost(plan.usage.billed_reads, args.price_per_100k_reads)
    );
    if plan.patterns.is_empty() {
        anyhow::bail!(
            "no collections found in {} ({}): is --project right? Nothing was written",
            source.root(),
            source.endpoint()
        );
    }
    plan.project = args.firestore.project().to_string();
    plan.database_id = args.firestore.firestore_database.clone();
    plan.elapsed = started.elapsed();
    write_plan(&args, plan, planned_dir)
}

/// `plan --from-export`: the export read once, whole.
async fn from_export(
    args: &PlanArgs,
    path: &str,
    retry: RetryPolicy,
    planned_dir: Vec<PathBuf>,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let options = fireshift::source::export::ExportOptions {
        retry,
        ..Default::default()
    };
    let source = fireshift::source::export::ExportSource::open(path, options)
        .await
        .with_context(|| format!("opening the export {path}"))?;
    println!(
        "plan: reading the export {path} whole ({} files, {} bytes, snapshot {}); no Firestore read",
        source.files().len(),
        source.bytes(),
        crate::source::rfc3339(&source.snapshot())
    );
    let mut plan = fireshift::plan::discover::export_scan(&source, args.sample)
        .await
        .with_context(|| format!("reading the export {path}"))?;
    if plan.patterns.is_empty() {
        anyhow::bail!("the export {path} holds no document: nothing was written");
    }
    plan.elapsed = started.elapsed();
    write_plan(args, plan, planned_dir)
}

/// The report, the skeleton mappings and the terminal summary of `plan`.
fn write_plan(
    args: &PlanArgs,
    plan: fireshift::plan::Plan,
    planned_dir: Vec<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let report = report::build(&plan, &generated_at).with_forecast(&forecast::Assumptions {
        shards: args.shards,
        docs_per_second_per_shard: args.docs_per_second_per_shard,
        max_reads_per_second: args.max_reads_per_second,
        max_writes_per_second: args.max_writes_per_second,
        price_per_100k_reads: args.price_per_100k_reads,
    });
    let files = skeleton::files(&plan, &report, &generated_at);
    skeleton::write(&args.out, &files, planned_dir).context("writing the skeleton mappings")?;
    let md = report::markdown(&report);
    let json_path = with_suffix(&args.report, "json");
    let md_path = with_suffix(&args.report, "md");
    if let Some(dir) = json_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    print!("{}", report::terminal(&report));
    if let Some(f) = &report.forecast {
        print!("{}", forecast::terminal(f));
    }
    println!(
        "{} skeleton mappings in {}; report {} and {}",
        files.len(),
        args.out.display(),
        md_path.display(),
        json_path.display()
    );
    println!(
        "next: review the suggestions, then `fireshift check --mappings {}`",
        args.out.display()
    );
    Ok(ExitCode::Ok)
}

/// `PREFIX` + `.ext` (a prefix's own dots are kept: `out/plan.v2` → `out/plan.v2.json`).
fn with_suffix(prefix: &std::path::Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// What the run will cost at most, said before the first read.
fn cost_notice(args: &PlanArgs) -> String {
    let price = args.price_per_100k_reads;
    let how = if args.full_scan {
        "a full scan reads every document once (counted first: one read per 1,000 documents)"
    } else {
        "sampled discovery reads up to --sample documents per collection pattern, and counts"
    };
    if args.yes {
        format!("plan: {how}; no read budget (--yes), at ${price} per 100,000 reads")
    } else {
        format!(
            "plan: {how}; at most {} billed reads (--max-reads), ≈ ${:.4} at ${price} per 100,000 reads",
            args.max_reads,
            cost(args.max_reads, price)
        )
    }
}

fn cost(reads: u64, price_per_100k: f64) -> f64 {
    reads as f64 / 100_000.0 * price_per_100k
}
