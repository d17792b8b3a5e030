//! `migrate --follow`: the follower beside the copy, from the flags to its end.

use std::sync::{Arc, Mutex};

use clap::Args;
use fireshift::follow::apply::Applier;
use fireshift::follow::record::{FollowRecord, FollowStore};
use fireshift::follow::run::{Ended, FollowConfig, FollowView, Follower};
use fireshift::ledger::{Ledger, LEDGER_COLLECTION};
use fireshift::mapping::transform::Transformer;
use fireshift::migrate::job::{JobOptions, JobOutcome};
use fireshift::sink::MongoSink;
use fireshift::source::FirestoreSource;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::migrate::MigrateArgs;
use crate::source::AnySource;

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Copy, then keep MongoDB in step with Firestore's changes until `fireshift
    /// cutover` (docs/follow.md): every write guarded by update time, deletes applied,
    /// the position saved in the job.
    #[arg(long, conflicts_with_all = ["dry_run", "only_from_report"])]
    pub follow: bool,
    /// A collection group to follow that neither the copy, the mappings nor the root
    /// collections name (a subcollection id that appears while following). Repeatable.
    #[arg(long = "collection-group", value_name = "ID", requires = "follow")]
    pub collection_groups: Vec<String>,
    /// Seconds between the follower's lag lines.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), requires = "follow")]
    pub follow_report_every: u64,
}

/// What `--follow` cannot do yet, refused before any I/O that matters.
pub fn refuse_unsupported(args: &MigrateArgs, source: &AnySource) -> anyhow::Result<()> {
    if args.shard.shard.count > 1 {
        anyhow::bail!(
            "--follow runs in one process: its copy uses --parallel ranges, not --shard shares"
        );
    }
    if let AnySource::Export(export) = source {
        // The follow starts from the snapshot: Firestore must still hold the versions
        // since then (its version retention), or every group is read again in full.
        let age = fireshift::sink::guard::now_nanos()
            - fireshift::sink::guard::timestamp_nanos(&export.snapshot());
        let hours = age as f64 / 3.6e12;
        if hours > 1.0 {
            tracing::warn!(
                "the export's snapshot is {hours:.1} h old: past Firestore's version retention (1 h; 7 days with point-in-time recovery) the follow cannot start from it and reads every collection group in full instead"
            );
        }
    }
    Ok(())
}

/// The follower running beside the copy.
pub struct Running {
    handle: tokio::task::JoinHandle<fireshift::error::Result<Ended>>,
    copy_done: watch::Sender<bool>,
    stop: CancellationToken,
}

/// Takes (or resumes) the follow record and starts the follower. A new job's follow
/// starts from `start_at` (an export's snapshot time), else from Firestore's clock now,
/// before the copy reads anything. The follower publishes its record in `view` (for
/// the metrics and the terminal).
#[allow(clippy::too_many_arguments)]
pub async fn start(
    args: &MigrateArgs,
    options: &JobOptions,
    source: &FirestoreSource,
    start_at: Option<i64>,
    sink: &MongoSink,
    transformer: &Transformer,
    stop: &CancellationToken,
    run_id: &str,
    view: Arc<Mutex<FollowView>>,
) -> anyhow::Result<Running> {
    let job = &options.job;
    let store = FollowStore::new(sink.database());
    let ledger = Ledger::new(job.clone());
    // One follower per job: two would race each other's positions.
    if let Some(r) = store.load(job).await? {
        // A holder of this machine whose process is gone (kill -9) is not waited for.
        let dead_here = r.holder.as_ref().is_some_and(|h| {
            h.host == fireshift::follow::run::host()
                && !std::path::Path::new(&format!("/proc/{}", h.pid)).exists()
        });
        if r.follower_alive(mongodb::bson::DateTime::now()) && !dead_here {
            let h = r.holder.as_ref().expect("alive means held");
            anyhow::bail!(
                "job `{job}` is followed by another process ({} pid {}, seen {}); stop it first, or wait {}s after it died",
                h.host,
                h.pid,
                h.heartbeat.try_to_rfc3339_string().unwrap_or_default(),
                fireshift::follow::record::HEARTBEAT_TTL_SECS
            );
        }
    }
    if args.restart {
        store.delete(job).await?;
        sink.database()
            .collection::<mongodb::bson::Document>(LEDGER_COLLECTION)
            .delete_many(ledger.job_filter())
            .await
            .map_err(|e| {
                fireshift::mongo::error("clear the ledger", LEDGER_COLLECTION, sink.uri(), e)
            })?;
    }
    // The follower applies nothing before the copy's plan is stored: planning checks
    // that the target holds no other copy, and would find the follower's writes.
    // Changes made meanwhile are not lost: the follow starts from its recorded time.
    let began = mongodb::bson::DateTime::now();
    let checkpoints = fireshift::migrate::checkpoint::CheckpointStore::new(
        sink.database(),
        fireshift::migrate::checkpoint::CHECKPOINT_COLLECTION,
        sink.config().retry,
    );
    let mut fresh = false;
    let record = match store.load(job).await? {
        Some(r) => {
            if r.finished.is_some() {
                anyhow::bail!(
                    "job `{job}` was cut over already; a new follow needs --restart (a new copy)"
                );
            }
            tracing::info!("resuming the follow of job `{job}`");
            r
        }
        None => {
            if !args.restart && checkpoints.load_job(job).await?.is_some() {
                anyhow::bail!(
                    "job `{job}` was copied without --follow: changes made since its copy began are unknown. \
                     Follow it as a new job (--restart, or another --job) so the follow starts before the copy"
                );
            }
            fresh = true;
            let start = match start_at {
                Some(t) => t,
                None => fireshift::sink::guard::timestamp_nanos(&source.server_time().await?),
            };
            store
                .create(FollowRecord::new(job, source.root(), start))
                .await?
        }
    };
    let mappings = transformer
        .mappings()
        .cloned()
        .unwrap_or_else(fireshift::mapping::MappingSet::empty);
    let follower = Follower {
        source: source.clone(),
        applier: Applier {
            sink: sink.clone(),
            transformer: transformer.clone(),
            mappings,
            ledger,
            guard: fireshift::sink::guard::GUARD_FIELD.to_string(),
            dead_letter_collection: args.dead_letter_collection.clone(),
            run_id: run_id.to_string(),
        },
        store,
        config: FollowConfig {
            extra_groups: args.follow.collection_groups.clone(),
            report_every: std::time::Duration::from_secs(args.follow.follow_report_every),
            ..FollowConfig::default()
        },
        view,
    };
    let (copy_done, done_rx) = watch::channel(record.copy_done);
    let stop = stop.child_token();
    let token = stop.clone();
    let job_name = job.clone();
    let handle = tokio::spawn(async move {
        // A new follow waits for a plan made after it began (a --restart's old plan
        // is being replaced); a resumed one for any.
        loop {
            if let Some(plan) = checkpoints.load_job(&job_name).await? {
                if !fresh || plan.created_at >= began {
                    break;
                }
            }
            tokio::select! {
                _ = token.cancelled() => return Ok(Ended::Stopped),
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            }
        }
        follower.run(record, done_rx, token).await
    });
    Ok(Running {
        handle,
        copy_done,
        stop,
    })
}

impl Running {
    /// Tells the follower how the copy ended: once every range is acknowledged, its
    /// absences can be trusted.
    pub fn copy_ended(self, result: &fireshift::error::Result<JobOutcome>) -> Self {
        if let Ok(o) = result {
            if o.all_done {
                let _ = self.copy_done.send(true);
            }
        }
        self
    }

    /// Stops the follower (its position is saved) and waits for it.
    pub async fn stopped(self) {
        self.stop.cancel();
        if let Ok(Err(e)) = self.handle.await {
            tracing::warn!("the follower stopped with an error: {e}");
        }
    }

    /// Waits for the follower's end (the cutover, or a signal).
    pub async fn finish(self) -> anyhow::Result<Ended> {
        let _keep = self.copy_done;
        Ok(self
            .handle
            .await
            .map_err(|e| anyhow::anyhow!("the follower task failed: {e}"))??)
    }
}
