//! `fireshift status`: every range of a job, from the checkpoint collection.

use clap::Args;
use fireshift::sink::{MongoSink, SinkConfig};

use crate::cli::MongoTarget;
use crate::exit::ExitCode;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Where the job's checkpoints are: its target database.
    #[command(flatten)]
    pub mongo: MongoTarget,
    /// Only this job (default: every job in the database).
    #[arg(long)]
    pub job: Option<String>,
}

/// Runs `status`: prints every range of the job(s) from the checkpoint collection.
pub async fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let sink = args.mongo.connect(SinkConfig::default()).await?;
    let outcome = status_on(&args, &sink).await;
    sink.shutdown().await;
    outcome
}

/// The state as an operator needs it: a range being copied is `running` while its
/// process renews the lease and `crashed` once the lease lapsed without the process
/// recording how it stopped (`interrupted` and `failed` are recorded); a range leased
/// but not started yet is `queued`.
fn shown_state(r: &fireshift::migrate::checkpoint::RangeCheckpoint) -> &'static str {
    use fireshift::migrate::checkpoint::RangeState;
    let live = r.lease.as_ref().is_some_and(|l| l.is_held());
    match (&r.state, live) {
        (RangeState::Copying, true) => "running",
        (RangeState::Copying, false) => "crashed",
        (RangeState::Pending, true) => "queued",
        (state, _) => state.name(),
    }
}

async fn status_on(args: &StatusArgs, sink: &MongoSink) -> anyhow::Result<ExitCode> {
    use fireshift::migrate::checkpoint::{CheckpointStore, CHECKPOINT_COLLECTION};
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
        return Ok(if args.job.is_some() {
            ExitCode::Error
        } else {
            ExitCode::Ok
        });
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
            "{:>5}  {:<11}  {:>10}  {:>8}  {:>9}  {:<24}  {:<24}  last error",
            "range", "state", "written", "dead", "docs/s", "updated", "held by"
        );
        for i in 0..job.ranges.len() {
            match ranges.iter().find(|r| r.index as usize == i) {
                Some(r) => println!(
                    "{:>5}  {:<11}  {:>10}  {:>8}  {:>9.0}  {:<24}  {:<24}  {}",
                    i,
                    shown_state(r),
                    r.counts.written,
                    r.counts.dead_lettered,
                    r.rate,
                    r.updated_at.try_to_rfc3339_string().unwrap_or_default(),
                    r.lease
                        .as_ref()
                        .filter(|l| l.is_held())
                        .map(|l| format!("{} pid {}", l.host, l.pid))
                        .unwrap_or_default(),
                    r.last_error.as_deref().unwrap_or("")
                ),
                None => println!("{i:>5}  {:<11}", "pending"),
            }
        }
    }
    Ok(ExitCode::Ok)
}
