//! `fireshift plan`: looks at a Firestore database before a migration. It finds the
//! collection patterns (root collections and subcollections at any depth), counts their
//! documents, samples each one to infer field types with frequencies and conflicts,
//! estimates the Firestore reads that `migrate` and `verify` will be billed, and writes a
//! skeleton mapping per pattern (valid for `fireshift check`) plus a report in Markdown
//! and JSON. docs/plan.md is the reference.
//!
//! * [`query`] bounded Firestore calls (list collection ids, limited queries, counts),
//!   with what each is billed.
//! * [`discover`] finds patterns and counts them: from samples (bounded by `--sample`) or
//!   from one full scan (`--full-scan`).
//! * [`infer`] pure type inference over sampled documents.
//! * [`suggest`] pure cast/ref suggestions from the inferred statistics.
//! * [`skeleton`] pure skeleton mapping files.
//! * [`report`] the JSON report (a stable schema) and its Markdown rendering.

pub mod discover;
pub mod infer;
pub mod query;
pub mod report;
pub mod skeleton;
pub mod suggest;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use crate::path::CollectionPattern;
use crate::retry::RetryPolicy;
use crate::source::FirestoreSource;
use infer::PatternStats;
use query::UsageSnapshot;

/// How a pattern's document count was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountMethod {
    /// Counted while streaming every document (`--full-scan`): exact.
    FullScan,
    /// An aggregation count of the root collection itself: exact.
    Collection,
    /// An aggregation count of the collection group (every collection with this id),
    /// which only this discovered pattern uses: exact unless an undiscovered pattern
    /// shares the id.
    Group,
    /// An aggregation count of the collection group within the `__name__` range of one
    /// root collection, which only this discovered pattern uses there.
    GroupRange,
    /// Several discovered patterns share the id within one root collection: the count
    /// is split in proportion to a sample of the group in `__name__` order. An estimate.
    Estimated,
}

impl CountMethod {
    pub fn is_exact(self) -> bool {
        !matches!(self, CountMethod::Estimated)
    }
}

/// How a pattern was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// Listed by `ListCollectionIds` at the database root.
    Root,
    /// Listed by `ListCollectionIds` under a sampled parent document.
    ListCollectionIds,
    /// Seen in a probe of a root collection's `__name__` range (the kindless query),
    /// e.g. a subcollection under parent documents that do not exist.
    Probe,
    /// Seen while streaming every document.
    FullScan,
}

/// Everything `plan` learnt about one collection pattern.
#[derive(Debug, Clone)]
pub struct PatternPlan {
    pub pattern: CollectionPattern,
    pub discovered_by: Discovery,
    pub documents: u64,
    pub count_method: CountMethod,
    pub stats: PatternStats,
}

/// The outcome of discovery, before rendering.
#[derive(Debug, Clone)]
pub struct Plan {
    pub project: String,
    pub database_id: String,
    pub endpoint: String,
    pub sample: usize,
    pub full_scan: bool,
    pub patterns: BTreeMap<CollectionPattern, PatternPlan>,
    pub usage: UsageSnapshot,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// `fireshift plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub firestore: crate::cli::FirestoreArgs,
    /// Documents sampled per collection pattern (type inference, suggestions, discovery
    /// of subcollections).
    #[arg(long, default_value_t = 200)]
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
    /// Give up on an unreachable service after retrying this long (seconds).
    #[arg(long, default_value_t = 300)]
    pub retry_timeout: u64,
}

/// Upper bound of `--sample`: a sample is held per pattern while it is analysed.
pub const MAX_SAMPLE: usize = 100_000;

/// Runs `plan`; returns the exit code (0).
pub async fn run(args: PlanArgs) -> anyhow::Result<i32> {
    if args.sample == 0 || args.sample > MAX_SAMPLE {
        anyhow::bail!("--sample must be between 1 and {MAX_SAMPLE}");
    }
    let started = Instant::now();
    // Refuse to clobber an operator's edited mappings before reading anything.
    let planned_dir = skeleton::check_out_dir(&args.out, args.overwrite)?;
    let config = args.firestore.source_config(RetryPolicy {
        deadline: Duration::from_secs(args.retry_timeout),
        ..RetryPolicy::default()
    });
    let source = FirestoreSource::connect(config)
        .await
        .context("connecting to Firestore")?;
    tracing::info!(source = %source.root(), endpoint = %source.endpoint(), sample = args.sample, full_scan = args.full_scan, "planning");
    let mut plan = if args.full_scan {
        discover::full_scan(&source, args.sample).await
    } else {
        discover::sampled(&source, args.sample).await
    }
    .context("reading Firestore")?;
    if plan.patterns.is_empty() {
        anyhow::bail!(
            "no collections found in {} ({}): is --project right? Nothing was written",
            source.root(),
            source.endpoint()
        );
    }
    plan.project = args.firestore.project.clone();
    plan.database_id = args.firestore.firestore_database.clone();
    plan.elapsed = started.elapsed();

    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let report = report::build(&plan, &generated_at);
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
    Ok(0)
}

/// `PREFIX` + `.ext` (a prefix's own dots are kept: `out/plan.v2` → `out/plan.v2.json`).
fn with_suffix(prefix: &std::path::Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}
