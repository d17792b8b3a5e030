//! What a run prints when it ends (the summary table) and writes for machines
//! (`--summary-json`, the `end` event of `--progress-json`): one report, written on
//! every way out, so a wrapper never has to guess from the exit code alone.

use anyhow::Context;
use fireshift::migrate::pipeline::Summary;
use fireshift::migrate::progress::Progress;
use fireshift::migrate::retry_dead::Retried;
use serde::Serialize;

use super::MigrateArgs;
use crate::exit::ExitCode;
use crate::progress::events::Events;

/// How a run ended, in one word for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every document landed and every index of the mappings exists.
    Clean,
    /// Finished; some documents (of this run or earlier ones) are dead letters.
    DeadLetters,
    /// Finished; every document landed, some index was refused or clashes.
    IndexesRefused,
    /// Stopped by `--max-dead-letters`, checkpoints kept.
    DeadLetterLimit,
    /// Stopped by SIGINT/SIGTERM, checkpoints kept.
    Interrupted,
    /// The source holds no document (no job was kept).
    EmptySource,
    /// Refused before reading: the target holds documents, or another process holds the job.
    Refused,
    /// Stopped by an error (`error` says which); checkpoints as last saved.
    Error,
}

impl Outcome {
    fn of(code: ExitCode) -> Self {
        match code {
            ExitCode::Ok => Self::Clean,
            ExitCode::DeadLetters => Self::DeadLetters,
            ExitCode::IndexesNotBuilt => Self::IndexesRefused,
            ExitCode::DeadLetterLimit => Self::DeadLetterLimit,
            ExitCode::Interrupted | ExitCode::Terminated => Self::Interrupted,
            _ => Self::Error,
        }
    }
}

/// What the run learnt on its way, filled in as it goes: an early error leaves the
/// later fields empty (`null` in the JSON), never guessed.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub job: String,
    pub run_id: String,
    pub project: String,
    pub firestore_database: String,
    pub database: String,
    pub dry_run: bool,
    /// Set where the exit code alone cannot tell (an empty source, a refusal).
    #[serde(skip)]
    pub outcome: Option<Outcome>,
    pub ranges_already_done: Option<usize>,
    pub ranges_copied: Option<usize>,
    /// Dead letters the job holds once every range is done (this run's and earlier ones).
    pub job_dead_lettered: Option<u64>,
    pub dead_letters_retried: Option<Retried>,
    /// This run's counts and index reports, once the job finished.
    #[serde(skip)]
    pub summary: Option<Summary>,
}

impl Facts {
    pub fn new(args: &MigrateArgs) -> Self {
        let fs = &args.endpoints.firestore;
        Self {
            job: args
                .job
                .clone()
                .unwrap_or_else(|| match &args.endpoints.export.from_export {
                    // An export job is its own: its ranges are files, not key ranges.
                    Some(path) => format!("export:{}", path.trim_end_matches('/')),
                    None => format!("migrate:{}/{}", fs.project(), fs.firestore_database),
                }),
            run_id: format!(
                "migrate-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
            ),
            // An export's are known once it is open.
            project: fs.project().to_string(),
            firestore_database: fs.firestore_database.clone(),
            database: args.endpoints.mongo.database.clone(),
            dry_run: args.dry_run,
            outcome: None,
            ranges_already_done: None,
            ranges_copied: None,
            job_dead_lettered: None,
            dead_letters_retried: None,
            summary: None,
        }
    }
}

/// The report `--summary-json` holds and the `end` event carries.
#[derive(Debug, Serialize)]
pub struct RunReport<'a> {
    /// `job`, `run_id`, `project`, `firestore_database`, `database`, `dry_run`,
    /// `ranges_already_done`, `ranges_copied`, `job_dead_lettered`,
    /// `dead_letters_retried`.
    #[serde(flatten)]
    pub facts: &'a Facts,
    pub outcome: Outcome,
    pub exit_code: i32,
    /// The error that stopped the run, as printed (secrets redacted like every message).
    pub error: Option<String>,
    /// This run's counts: `read`, `written`, `dead_lettered`, `elapsed_secs`,
    /// `collections`, `indexes`.
    #[serde(flatten)]
    pub summary: Summary,
}

/// Ends a run: writes the report wherever it was asked for and hands back the result,
/// so the exit code and the report never disagree.
pub fn conclude(
    args: &MigrateArgs,
    progress: &Progress,
    facts: Facts,
    result: anyhow::Result<ExitCode>,
    events: Option<&Events>,
) -> anyhow::Result<ExitCode> {
    let code = *result.as_ref().unwrap_or(&ExitCode::Error);
    let report = RunReport {
        facts: &facts,
        outcome: facts.outcome.unwrap_or(Outcome::of(code)),
        exit_code: code.code(),
        error: result.as_ref().err().map(|e| format!("{e:#}")),
        summary: facts
            .summary
            .clone()
            .unwrap_or_else(|| Summary::from_progress(progress)),
    };
    if let Some(events) = events {
        events.end(&report);
    }
    if let Some(path) = args.summary_json.as_deref() {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(anyhow::Error::from)
            .and_then(|json| {
                std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))
            });
        match (written, &result) {
            // A run that succeeded but could not say so to its caller did not succeed.
            (Err(e), Ok(_)) => return Err(e),
            // The run's own error is the one to report; this one is logged beside it.
            (Err(e), Err(_)) => tracing::warn!("{e:#}"),
            (Ok(()), _) => {}
        }
    }
    result
}

pub fn print_summary(s: &Summary, database: &str, args: &MigrateArgs) {
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
        println!("{}", fireshift::mapping::indexes::render_report(reports));
    }
}
