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
    Ok(ExitCode::Ok)
}
