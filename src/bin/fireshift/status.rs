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
    /// One JSON object on stdout instead of the table (for scripts and probes).
    #[arg(long)]
    pub json: bool,
    /// Exit 8 unless every job shown has every range copied: a readiness check or a
    /// workflow gate waits on the job as a whole, whichever shard finished last.
    #[arg(long)]
    pub require_done: bool,
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

/// A job and its ranges as `status --json` prints them (every range of the split, those
/// without a record as `pending`).
fn job_json(
    job: &fireshift::migrate::checkpoint::JobRecord,
    ranges: &[fireshift::migrate::checkpoint::RangeCheckpoint],
) -> serde_json::Value {
    let time = |t: &mongodb::bson::DateTime| t.try_to_rfc3339_string().unwrap_or_default();
    let rows: Vec<serde_json::Value> = (0..job.ranges.len())
        .map(|i| match ranges.iter().find(|r| r.index as usize == i) {
            Some(r) => serde_json::json!({
                "index": i,
                "state": shown_state(r),
                "written": r.counts.written,
                "dead_lettered": r.counts.dead_lettered,
                "docs_per_sec": r.rate,
                "updated_at": time(&r.updated_at),
                "holder": r.lease.as_ref().filter(|l| l.is_held()).map(|l| serde_json::json!({
                    "host": l.host,
                    "pid": l.pid,
                    "since": time(&l.since),
                    "expires_at": time(&l.expires_at),
                })),
                "last_error": r.last_error,
            }),
            None => serde_json::json!({ "index": i, "state": "pending" }),
        })
        .collect();
    let done = ranges.iter().filter(|r| r.state.is_done()).count();
    serde_json::json!({
        "job": job.job,
        "source": job.source,
        "mappings_hash": job.mappings_hash,
        "ranges_total": job.ranges.len(),
        "ranges_done": done,
        "done": done == job.ranges.len(),
        "written": ranges.iter().map(|r| r.counts.written).sum::<u64>(),
        "dead_lettered": ranges.iter().map(|r| r.counts.dead_lettered).sum::<u64>(),
        "ranges": rows,
    })
}

/// A group's stream state, as `status` names it: `following` from a resume token,
/// `starting` (resumed from the follow's time, no token yet), `resending` (read again
/// in full: new, refused resume point, existence-filter mismatch), `to resend` (its
/// absences were seen while the copy wrote; read again once the copy is done).
fn group_state(g: &fireshift::follow::record::GroupState, copy_done: bool) -> &'static str {
    match (&g.token, g.dirty) {
        (_, true) if !copy_done => "to resend",
        (Some(_), _) => "following",
        (None, _) => "starting",
    }
}

/// The follow of a job as `status --json` prints it: the one consistent time every
/// followed group is applied up to (they share a stream), the lag to now, per group
/// its stream state, the holder and the counts.
fn follow_json(r: &fireshift::follow::record::FollowRecord) -> serde_json::Value {
    let now = mongodb::bson::DateTime::now();
    let applied = r.applied_or_start();
    let lag = r.lag_secs();
    let rfc = fireshift::sink::guard::nanos_rfc3339;
    let groups: serde_json::Map<String, serde_json::Value> = r
        .groups
        .iter()
        .map(|(g, st)| {
            let state = group_state(st, r.copy_done);
            let (applied_g, lag_g) = if state == "following" {
                (serde_json::json!(rfc(applied)), serde_json::json!(lag))
            } else {
                (serde_json::Value::Null, serde_json::Value::Null)
            };
            (
                g.clone(),
                serde_json::json!({ "state": state, "applied": applied_g, "lag_secs": lag_g }),
            )
        })
        .collect();
    serde_json::json!({
        "state": if r.finished.is_some() { "cut over" } else if r.follower_alive(now) { "following" } else { "not running" },
        "start": rfc(r.start),
        "applied": rfc(applied),
        "lag_secs": if r.finished.is_some() { serde_json::Value::Null } else { serde_json::json!(lag) },
        "copy_done": r.copy_done,
        "holder": r.holder.as_ref().filter(|_| r.follower_alive(now)).map(|h| serde_json::json!({
            "host": h.host,
            "pid": h.pid,
            "heartbeat": h.heartbeat.try_to_rfc3339_string().unwrap_or_default(),
        })),
        "cutover": r.cutover.as_ref().map(|c| rfc(c.time)),
        "counts": r.counts,
        "groups": groups,
    })
}

/// The follow block of the text status.
fn print_follow(r: &fireshift::follow::record::FollowRecord) {
    let v = follow_json(r);
    let lag = v["lag_secs"]
        .as_f64()
        .map_or_else(|| "-".to_string(), |l| format!("{l:.1}s"));
    println!(
        "follow: {} — applied up to {} (lag {lag}) — copy {} — {} upserts, {} deletes, {} resyncs, {} stream restarts, {} dead letters",
        v["state"].as_str().unwrap_or(""),
        v["applied"].as_str().unwrap_or(""),
        if r.copy_done { "done" } else { "running" },
        r.counts.upserts,
        r.counts.deletes,
        r.counts.resyncs,
        r.counts.restarts,
        r.counts.dead_letters
    );
    let mut by_state: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (g, st) in &r.groups {
        by_state
            .entry(group_state(st, r.copy_done))
            .or_default()
            .push(g);
    }
    for (state, groups) in by_state {
        println!(
            "  {state:<10} {:>3} groups: {}",
            groups.len(),
            groups.join(", ")
        );
    }
}

async fn status_on(args: &StatusArgs, sink: &MongoSink) -> anyhow::Result<ExitCode> {
    let follows = fireshift::follow::record::FollowStore::new(sink.database());
    use fireshift::migrate::checkpoint::{CheckpointStore, CHECKPOINT_COLLECTION};
    let store = CheckpointStore::new(sink.database(), CHECKPOINT_COLLECTION, sink.config().retry);
    let jobs = match &args.job {
        Some(j) => store.load_job(j).await?.into_iter().collect(),
        None => store.jobs().await?,
    };
    if args.json {
        let mut out = Vec::new();
        let mut all_done = true;
        for job in &jobs {
            let ranges = store.load_ranges(&job.job).await?;
            let mut shown = job_json(job, &ranges);
            all_done &= shown["done"] == true;
            if let Some(f) = follows.load(&job.job).await? {
                shown["follow"] = follow_json(&f);
            }
            out.push(shown);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "jobs": out }))?
        );
        return Ok(if jobs.is_empty() && args.job.is_some() {
            ExitCode::Error
        } else if args.require_done && !all_done {
            ExitCode::NotDone
        } else {
            ExitCode::Ok
        });
    }
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
    let mut all_done = true;
    for job in jobs {
        let ranges = store.load_ranges(&job.job).await?;
        let done = ranges.iter().filter(|r| r.state.is_done()).count();
        all_done &= done == job.ranges.len();
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
        if let Some(f) = follows.load(&job.job).await? {
            print_follow(&f);
        }
    }
    Ok(if args.require_done && !all_done {
        ExitCode::NotDone
    } else {
        ExitCode::Ok
    })
}
