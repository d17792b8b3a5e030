//! A resumable migration job: a fixed split of the database into key ranges, each copied
//! by the pipeline with its own checkpoint, several at once, and shardable across
//! processes (`--shard K/N` takes ranges `i` with `i % N == K - 1`).
//!
//! Rerunning the same job skips finished ranges and resumes the others after their
//! cursors; `kill -9` at any moment is safe because cursors only move after the sink
//! acknowledged everything before them and the sink's upserts are idempotent.

use futures::StreamExt;
use mongodb::bson::DateTime;

use crate::error::{Error, Result};
use crate::mapping::transform::Transformer;
use crate::migrate::checkpoint::{
    CheckpointStore, JobRecord, RangeCheckpoint, RangeState, CHECKPOINT_COLLECTION, RECORD_VERSION,
};
use crate::migrate::claim::{self, Claim, Step};
use crate::migrate::lease::Leases;
use crate::migrate::pipeline::{self, Checkpointer, PipelineConfig, Summary};
use crate::migrate::progress::Progress;
use crate::migrate::target::{self, Existing};
use crate::sink::MongoSink;
use crate::source::{Range, Source};

/// Which share of a job this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 1, count: 1 }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `K/N` with `1 ≤ K ≤ N`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected K/N, e.g. 2/8"))?;
        let parse = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}`: `{x}` is not a number"))
        };
        let (index, count) = (parse(k)?, parse(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("`{s}`: need 1 ≤ K ≤ N"));
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    pub fn owns(&self, range_index: usize) -> bool {
        range_index % self.count == self.index - 1
    }
}

/// How to run a job.
#[derive(Debug, Clone)]
pub struct JobOptions {
    pub job: String,
    /// Ranges to split a new job into (ignored when the job exists).
    pub ranges: usize,
    /// Ranges copied at once by this process.
    pub parallel: usize,
    pub shard: Shard,
    /// Continue although the mappings changed since the job started.
    pub force: bool,
    /// Forget the job's checkpoints and start over.
    pub restart: bool,
    /// What a new job does when its target collections hold documents.
    pub existing: Existing,
    /// Accept a source without documents (otherwise the job is forgotten and the run
    /// fails with [`Error::EmptySource`]).
    pub allow_empty: bool,
    /// How long a range's lease lasts without renewal (see [`crate::migrate::lease`]).
    pub lease_ttl: std::time::Duration,
    pub pipeline: PipelineConfig,
}

/// What a run did.
#[derive(Debug)]
pub struct JobOutcome {
    /// This run's counts.
    pub summary: Summary,
    /// Ranges of this shard that were already finished before this run.
    pub ranges_already_done: usize,
    /// Ranges of this shard copied by this run.
    pub ranges_copied: usize,
    /// Whether any range of the job had made progress before this run.
    pub resumed: bool,
    /// Every range of the job is done (by this run, earlier runs or other shards): the
    /// job's result is final (see [`crate::migrate::retry_dead::count`]).
    pub all_done: bool,
}

/// Runs (or resumes) a job to completion for this shard.
pub async fn run<S: Source>(
    source: &S,
    sink: &MongoSink,
    transformer: &Transformer,
    options: &JobOptions,
    progress: &Progress,
) -> Result<JobOutcome> {
    {
        // The ETA comes from the source's estimate; the copy does not wait for it.
        let (source, progress) = (source.clone(), progress.clone());
        tokio::spawn(async move {
            match source.estimate().await {
                Ok(Some(n)) => progress.set_total(n),
                Ok(None) => {}
                Err(e) => tracing::warn!("no document count for the ETA: {e}"),
            }
        });
    }
    let store = CheckpointStore::new(sink.database(), CHECKPOINT_COLLECTION, sink.config().retry);
    let hash = transformer.fingerprint();
    // A restart with the same source and mappings replays the job's own copy: the same
    // documents under the same identities, replaced in place, so the target needs no
    // protection from it. With other mappings it is a new copy like any other.
    let mut replays_own_copy = false;
    if options.restart && !options.pipeline.dry_run {
        replays_own_copy = store
            .load_job(&options.job)
            .await?
            .is_some_and(|old| old.mappings_hash == hash && old.source == source.root());
        // Deleting the checkpoints under a running process would let it write on
        // while this run copies everything again.
        if let Some(r) = store
            .load_ranges(&options.job)
            .await?
            .into_iter()
            .find(|r| r.lease.as_ref().is_some_and(|l| l.is_held()))
        {
            return Err(Error::LeaseHeld {
                holder: r.lease.as_ref().map(|l| l.describe()).unwrap_or_default(),
                range: r.id,
            });
        }
        store.delete_job(&options.job).await?;
    }
    let protect = !replays_own_copy;
    let job = load_or_create(source, sink, transformer, &store, options, &hash, protect).await?;
    let mut checkpoints = store.load_ranges(&options.job).await?;
    let resumed = checkpoints
        .iter()
        .any(|c| c.resume_position().is_some() || c.state != RangeState::Pending);

    let mut todo = Vec::new();
    let mut already_done = 0;
    for (i, range) in job.ranges.iter().enumerate() {
        if !options.shard.owns(i) {
            continue;
        }
        let record = match checkpoints.iter().position(|c| c.index as usize == i) {
            Some(p) => checkpoints.swap_remove(p),
            None => RangeCheckpoint::new(&options.job, i as u32, &hash),
        };
        if record.state.is_done() {
            already_done += 1;
        } else {
            todo.push((range.clone(), record));
        }
    }
    tracing::info!(
        job = %options.job, ranges = job.ranges.len(), mine = todo.len() + already_done,
        already_done, parallel = options.parallel, "job plan"
    );

    let copied = todo.len();
    // Every range this run is to copy is leased before anything is read, so a second
    // process on the same job stops at once instead of reading everything twice.
    let leases = (!options.pipeline.dry_run).then(|| Leases::new(store.clone(), options.lease_ttl));
    let copy = async {
        if let Some(leases) = &leases {
            for (_, record) in &mut todo {
                leases.acquire(record).await?;
            }
        }
        let ranges = futures::stream::iter(todo)
            .map(|(range, record)| {
                copy_range(
                    source,
                    sink,
                    transformer,
                    &store,
                    leases.as_ref(),
                    options,
                    progress,
                    range,
                    record,
                    &hash,
                )
            })
            .buffer_unordered(options.parallel.max(1))
            .collect::<Vec<Result<()>>>();
        let results = match &leases {
            // A lease taken over stops every range: the other process now copies it.
            Some(leases) => tokio::select! {
                results = ranges => results,
                lost = leases.keep() => return Err(lost),
            },
            None => ranges.await,
        };
        // Every range ran to its end (or its error) before we report: a failed range
        // does not stop the others from reaching their checkpoints. A real error says
        // more than the interruptions of the ranges stopped beside it.
        let mut errors: Vec<Error> = results.into_iter().filter_map(|r| r.err()).collect();
        errors.sort_by_key(|e| matches!(e, Error::Interrupted));
        errors.into_iter().next().map_or(Ok(()), Err)
    }
    .await;
    // Leases of ranges that did not finish (not started, or stopped) go back now, so
    // the next run need not wait for them to expire.
    if let Some(leases) = &leases {
        leases.release_all().await;
    }
    copy?;
    let mut summary = Summary::from_progress(progress);
    if !options.pipeline.dry_run && !options.allow_empty && !resumed && summary.read == 0 {
        forget_if_empty(&store, &job, source.root()).await?;
    }
    let mut all_done = false;
    if !options.pipeline.dry_run {
        summary.indexes = build_indexes(sink, transformer, &store, &job, options.lease_ttl).await?;
        let ranges = store.load_ranges(&job.job).await?;
        all_done = ranges.len() == job.ranges.len() && ranges.iter().all(|r| r.state.is_done());
    }
    Ok(JobOutcome {
        summary,
        ranges_already_done: already_done,
        ranges_copied: copied,
        resumed,
        all_done,
    })
}

/// A job whose every range is done without a single document is most likely pointed at
/// the wrong project or database: its records are deleted (a rerun must not find the
/// ranges "already copied" and succeed) and the run fails with [`Error::EmptySource`].
/// While other shards are still copying, nothing is decided.
async fn forget_if_empty(store: &CheckpointStore, job: &JobRecord, source: &str) -> Result<()> {
    let ranges = store.load_ranges(&job.job).await?;
    let all_done = ranges.len() == job.ranges.len() && ranges.iter().all(|r| r.state.is_done());
    if all_done && ranges.iter().all(|r| r.counts.done() == 0) {
        store.delete_job(&job.job).await?;
        return Err(Error::EmptySource {
            root: source.to_string(),
        });
    }
    Ok(())
}

/// Once every range of the job is copied (by this process or by other shards), builds
/// the mappings' indexes and moves the ranges to `indexed`. Indexes come after the bulk
/// load because maintaining them during it would slow every write. One process builds
/// them: the shards that finish last race for the step's claim, and the loser (or a
/// shard that finds the indexes built meanwhile) leaves them to the winner. A rerun of
/// a finished job builds them again (idempotent), so refused indexes are reported on
/// every run. `None` when this process did not build them.
async fn build_indexes(
    sink: &MongoSink,
    transformer: &Transformer,
    store: &CheckpointStore,
    job: &JobRecord,
    ttl: std::time::Duration,
) -> Result<Option<Vec<crate::mapping::indexes::IndexReport>>> {
    let ranges = store.load_ranges(&job.job).await?;
    let copied = ranges.iter().filter(|r| r.state.is_done()).count();
    if copied < job.ranges.len() {
        tracing::info!(job = %job.job, copied, ranges = job.ranges.len(), "other shards are still copying; the last to finish builds the indexes");
        return Ok(None);
    }
    let indexed_before = ranges.iter().all(|r| r.state == RangeState::Indexed);
    let held = match claim::claim(store, &job.job, Step::Indexes, ttl).await? {
        Claim::Mine(held) => held,
        Claim::Theirs(holder) => {
            tracing::info!(job = %job.job, "another shard builds the indexes ({})", holder.describe());
            return Ok(None);
        }
    };
    held.hold_while(async {
        let ranges = store.load_ranges(&job.job).await?;
        if !indexed_before && ranges.iter().all(|r| r.state == RangeState::Indexed) {
            tracing::info!(job = %job.job, "another shard built the indexes meanwhile");
            return Ok(None);
        }
        // Said only once it is sure: a shard whose claim came free because the
        // builder just finished finds the ranges indexed above and says so instead.
        tracing::info!(job = %job.job, "every range copied: this process builds the job's indexes");
        let reports = match transformer.mappings() {
            Some(set) if !set.indexes().is_empty() => {
                tracing::info!(job = %job.job, indexes = set.indexes().len(), "every range copied; building the mappings' indexes");
                crate::mapping::indexes::build(sink.database(), set).await
            }
            _ => Vec::new(),
        };
        // A refused or clashing index is reported, not fatal (the data is all there); the
        // ranges still move on, and `fireshift indexes` retries the index alone. Each moves
        // by its state alone: the records read above may carry the lease another shard is
        // giving back after its last range, and a save fenced by that lease would fail.
        for r in ranges {
            if r.state != RangeState::Indexed {
                store.mark_indexed(&r.id).await?;
            }
        }
        Ok(Some(reports))
    })
    .await
}

async fn load_or_create<S: Source>(
    source: &S,
    sink: &MongoSink,
    transformer: &Transformer,
    store: &CheckpointStore,
    options: &JobOptions,
    hash: &str,
    protect: bool,
) -> Result<JobRecord> {
    let job = match store.load_job(&options.job).await? {
        Some(job) => job,
        None if options.pipeline.dry_run => {
            plan_job(source, sink, transformer, options, hash, false).await?
        }
        None => planned_once(source, sink, transformer, store, options, hash, protect).await?,
    };
    if job.source != source.root() {
        return Err(Error::Config(format!(
            "job `{}` was started for {}, not {}: pick another --job name",
            job.job,
            job.source,
            source.root()
        )));
    }
    if job.mappings_hash != hash {
        if !options.force {
            return Err(Error::Config(format!(
                "the mappings changed since job `{}` started (stored {}, now {}): documents already copied used the old ones. \
                 Rerun with --force to continue with the new mappings, or --restart to copy everything again",
                job.job, job.mappings_hash, hash
            )));
        }
        tracing::warn!(job = %job.job, "mappings changed since the job started; continuing because of --force");
        if !options.pipeline.dry_run {
            store.set_job_hash(&job.job, hash).await?;
        }
    }
    Ok(job)
}

/// A new job, planned by exactly one of the processes that start it at once: the one
/// that claims the planning checks the target and splits the source; the others wait
/// for the stored plan and use it (they must not check the target: the planner's shard
/// may be writing already).
async fn planned_once<S: Source>(
    source: &S,
    sink: &MongoSink,
    transformer: &Transformer,
    store: &CheckpointStore,
    options: &JobOptions,
    hash: &str,
    protect: bool,
) -> Result<JobRecord> {
    let mut waiting_for: Option<String> = None;
    loop {
        if let Some(job) = store.load_job(&options.job).await? {
            return Ok(job);
        }
        match claim::claim(store, &options.job, Step::Plan, options.lease_ttl).await? {
            Claim::Mine(held) => {
                let planning = async {
                    // The claim may have come free because its holder just stored the
                    // plan: planning again would check a target its shard may be
                    // writing already.
                    if let Some(job) = store.load_job(&options.job).await? {
                        return Ok(job);
                    }
                    let record =
                        plan_job(source, sink, transformer, options, hash, protect).await?;
                    store.create_job(record).await
                };
                return held.hold_while(planning).await;
            }
            Claim::Theirs(holder) => {
                if waiting_for.as_deref() != Some(holder.token.as_str()) {
                    tracing::info!(job = %options.job, "another process is planning the job ({}); waiting for its plan", holder.describe());
                    waiting_for = Some(holder.token.clone());
                }
                tokio::time::sleep(PLAN_POLL).await;
            }
        }
    }
}

/// How often a process waiting for another's plan looks for it.
const PLAN_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The plan of a new job: the target checked (unless `protect` is off), the source
/// split into ranges.
async fn plan_job<S: Source>(
    source: &S,
    sink: &MongoSink,
    transformer: &Transformer,
    options: &JobOptions,
    hash: &str,
    protect: bool,
) -> Result<JobRecord> {
    tracing::info!(job = %options.job, ranges = options.ranges, "this process plans the job: checking the target and splitting the source");
    if protect && !options.pipeline.dry_run {
        // A new job: what it would write into must not hold another copy.
        let roots = source.root_collections().await?;
        let occupied = target::occupied(sink.database(), transformer, &roots).await?;
        target::protect(sink.database(), occupied, options.existing).await?;
    }
    let ranges = source.split(options.ranges).await?;
    Ok(JobRecord {
        job: options.job.clone(),
        kind: "job".into(),
        version: RECORD_VERSION,
        source: source.root().to_string(),
        mappings_hash: hash.to_string(),
        ranges,
        created_at: DateTime::now(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn copy_range<S: Source>(
    source: &S,
    sink: &MongoSink,
    transformer: &Transformer,
    store: &CheckpointStore,
    leases: Option<&Leases>,
    options: &JobOptions,
    progress: &Progress,
    range: Range,
    mut record: RangeCheckpoint,
    hash: &str,
) -> Result<()> {
    let dry_run = options.pipeline.dry_run;
    // A range still queued when a stop is asked for is left as it was.
    if options.pipeline.stop.is_cancelled() {
        return Err(Error::Interrupted);
    }
    record.state = RangeState::Copying;
    record.mappings_hash = hash.to_string();
    record.started_at = Some(DateTime::now());
    record.last_error = None;
    if !dry_run {
        store.save(&record).await?;
    }
    let start = record.resume_position();
    let id = record.id.clone();
    let lease = record.lease.clone();
    let checkpointer = Checkpointer {
        store: store.clone(),
        record,
    };
    let mut config = options.pipeline.clone();
    config.label = format!("range {}", id.rsplit('#').next().unwrap_or(&id));
    config.lag_batches = source.lag_batches();
    let copied = pipeline::run(
        source,
        sink,
        transformer,
        &range,
        start,
        &config,
        progress,
        Some(checkpointer),
    )
    .await;
    // Not renewed any more: every way out below saves the range's last state and gives
    // its lease back (renewing it meanwhile would find it gone and stop the run).
    if let Some(leases) = leases {
        leases.forget(&id);
    }
    match copied {
        Ok((_, Some(mut c))) => {
            c.record.state = RangeState::Copied;
            // Every document is done: islands past the cursor mean nothing any more.
            c.record.islands.clear();
            c.record.updated_at = DateTime::now();
            if !dry_run {
                store.save(&c.record).await?;
                store.release(&mut c.record).await?;
            }
            Ok(())
        }
        Ok((_, None)) => Ok(()),
        Err(Error::Interrupted) => {
            // The pipeline saved the checkpoint of everything that landed.
            if !dry_run {
                store.mark_interrupted(&id, lease.as_ref()).await?;
            }
            Err(Error::Interrupted)
        }
        Err(e) => {
            // Best effort: the cursor in the store is already right; this only records
            // why the range stopped, for `status`. If MongoDB is the cause it fails too.
            if !dry_run {
                if let Err(e2) = store.mark_failed(&id, lease.as_ref(), &e.to_string()).await {
                    tracing::warn!("could not record the failure of range {id}: {e2}");
                }
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shard_parses_and_owns_every_nth_range() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(s, Shard { index: 2, count: 3 });
        let owned: Vec<usize> = (0..7).filter(|i| s.owns(*i)).collect();
        assert_eq!(owned, vec![1, 4]);
        assert!("0/3".parse::<Shard>().is_err());
        assert!("4/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().unwrap_err().contains("K/N"));
        // Every range belongs to exactly one shard.
        for i in 0..20 {
            assert_eq!(
                (1..=4)
                    .filter(|k| Shard {
                        index: *k,
                        count: 4
                    }
                    .owns(i))
                    .count(),
                1
            );
        }
    }
}
