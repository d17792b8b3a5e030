//! [`DualStore`]: the object an API holds during the migration. Every call looks up the
//! collection's [`Mode`] and routes to Firestore, MongoDB or both.
//!
//! Write path in the dual modes (Firestore is the primary):
//!
//! 1. one Firestore `Commit` holds the document write(s) **and** an outbox entry naming
//!    the paths (`_fireshift_outbox/<id>`), so the intent to update MongoDB is durable
//!    exactly when the write is — a crash at any later point loses nothing;
//! 2. the committed documents are read back (their full current state and update
//!    time, whatever fields the call touched), transformed by the mapping, stamped with
//!    the update time and written to MongoDB with the guarded upsert of
//!    [`crate::sink::guard`] (a delete is a guarded delete at the commit time);
//! 3. the call returns: its result is the primary's. The outbox entry is removed in the
//!    background after a confirming read (see [`super::outbox`]); if step 2 failed or
//!    timed out, the entry stays and the reconciler replays it with backoff.
//!
//! Reads return the document **as the mapping shapes it** in every mode (a Firestore
//! document is transformed on the way out), so flipping reads to MongoDB changes
//! nothing for the caller. The guard field is removed from what callers see.
//!
//! This file holds the public API and routing only: the shared state and the database
//! operations are in the store's core, the Firestore-primary write path in `write.rs`,
//! `MongoOnly` writes in `mongo_only.rs`, and the outbox, settings and shadow reads in
//! their own modules, all working over the core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use gcloud_sdk::google::firestore::v1::Value;
use mongodb::bson::RawDocumentBuf;

use super::core::Core;
use super::error::{DualError, DualResult};
use super::metrics::DualMetrics;
use super::mode::{Mode, ModeTable};
use super::op::for_caller;
use super::outbox::{self, Background, ReconcileReport, SettleQueue};
use super::query::Query;
use super::shadow::{self, ShadowSide};
use super::{mongo_only, settings, write};
use crate::path::DocPath;

// Their home until the store was split; the paths stay valid.
pub use super::config::DualConfig;
pub use super::op::{Fields, Secondary, WriteOp, WriteResult, MAX_BATCH_WRITES};

/// The dual-write store. Cheap to clone (one shared state); every method may run
/// concurrently with every other.
#[derive(Clone)]
pub struct DualStore {
    core: Arc<Core>,
    /// From the write path to the settler [`spawn_background`](Self::spawn_background)
    /// starts.
    settle: Arc<SettleQueue>,
}

impl DualStore {
    /// Connects to Firestore (`FIRESTORE_EMULATOR_HOST` selects the emulator) and
    /// prepares the MongoDB client. MongoDB is not required to answer now: in the dual
    /// modes a MongoDB outage only fills the outbox.
    pub async fn connect(config: DualConfig) -> DualResult<Self> {
        let core = Core::connect(config).await?;
        // After `connect`, which checks the capacity is at least 1.
        let settle = SettleQueue::new(core.config().settle_queue);
        Ok(Self {
            core: Arc::new(core),
            settle: Arc::new(settle),
        })
    }

    /// Shuts the MongoDB client down (see [`crate::mongo::shutdown`]). Call it last,
    /// after [`Background::shutdown`](super::outbox::Background::shutdown), before the
    /// runtime ends; clones of this store must not be used afterwards.
    pub async fn shutdown(self) {
        crate::mongo::shutdown(self.core.mongo_client().clone()).await;
    }

    pub fn metrics(&self) -> &DualMetrics {
        self.core.metrics()
    }

    pub fn modes(&self) -> &ModeTable {
        self.core.modes()
    }

    /// Sets a collection pattern's mode in this process (`users`, `content/{}/comments`).
    pub fn set_mode(&self, pattern: &str, mode: Mode) {
        self.core.modes().set(pattern, mode);
        tracing::info!(collection = pattern, %mode, "dual-write mode set by code");
    }

    /// The mode that applies to a document or collection path.
    pub fn mode_of(&self, path: &str) -> DualResult<Mode> {
        Ok(self.core.target(path)?.mode)
    }

    pub fn shadow_read_fraction(&self) -> f64 {
        self.core.shadow_read_fraction()
    }

    pub fn set_shadow_read_fraction(&self, fraction: f64) {
        self.core.set_shadow_read_fraction(fraction);
    }

    // ----- writes -------------------------------------------------------------------

    pub async fn create(&self, path: &str, fields: Fields) -> DualResult<WriteResult> {
        self.one(WriteOp::Create {
            path: path.into(),
            fields,
        })
        .await
    }

    pub async fn set_doc(&self, path: &str, fields: Fields) -> DualResult<WriteResult> {
        self.one(WriteOp::Set {
            path: path.into(),
            fields,
        })
        .await
    }

    pub async fn update(
        &self,
        path: &str,
        fields: Vec<(String, Option<Value>)>,
    ) -> DualResult<WriteResult> {
        self.one(WriteOp::Update {
            path: path.into(),
            fields,
        })
        .await
    }

    pub async fn delete(&self, path: &str) -> DualResult<WriteResult> {
        self.one(WriteOp::Delete { path: path.into() }).await
    }

    async fn one(&self, op: WriteOp) -> DualResult<WriteResult> {
        let mut r = self.batch(vec![op]).await?;
        Ok(r.remove(0))
    }

    /// Writes several documents. In the Firestore-primary modes the batch is one atomic
    /// commit (at most [`MAX_BATCH_WRITES`] writes); in `MongoOnly` the writes are
    /// applied in order, each atomic on its own. A batch may not mix collections in
    /// `MongoOnly` with collections in the other modes.
    pub async fn batch(&self, ops: Vec<WriteOp>) -> DualResult<Vec<WriteResult>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if ops.len() > MAX_BATCH_WRITES {
            return Err(DualError::Unsupported(format!(
                "a batch holds at most {MAX_BATCH_WRITES} writes, not {}",
                ops.len()
            )));
        }
        let targets = ops
            .iter()
            .map(|op| self.core.target(op.path()))
            .collect::<DualResult<Vec<_>>>()?;
        let mongo_only = targets.iter().filter(|t| t.mode == Mode::MongoOnly).count();
        if mongo_only == targets.len() {
            let mut out = Vec::with_capacity(ops.len());
            for (op, t) in ops.into_iter().zip(targets) {
                out.push(mongo_only::write(&self.core, op, t).await?);
            }
            return Ok(out);
        }
        if mongo_only > 0 {
            return Err(DualError::Unsupported(
                "a batch mixes collections in mongo_only mode with collections whose primary is Firestore".into(),
            ));
        }
        write::write_firestore(&self.core, &self.settle, ops, targets).await
    }

    // ----- reads ------------------------------------------------------------------------

    /// The document at `path`, shaped by the mapping, from the database the mode reads.
    pub async fn get(&self, path: &str) -> DualResult<Option<mongodb::bson::Document>> {
        let t = self.core.target(path)?;
        let started = Instant::now();
        let shadow = t.mode.mongo_secondary() && shadow::sampled(&self.core);
        let (doc, source) = if t.mode.reads_mongo() {
            let raw = self.core.mongo_get(&t).await?;
            if shadow {
                shadow::spawn(&self.core, t.clone(), ShadowSide::Mongo(raw.clone()));
            }
            (raw, "mongodb")
        } else {
            let (mut states, _) = self.core.fs_get(std::slice::from_ref(&t.name)).await?;
            let doc = states.remove(&t.name).flatten();
            let shaped = match &doc {
                Some(d) => Some(self.core.transform(d)?.item.doc),
                None => None,
            };
            if shadow {
                shadow::spawn(&self.core, t.clone(), ShadowSide::Firestore(shaped.clone()));
            }
            (shaped, "firestore")
        };
        self.core
            .metrics()
            .reads
            .with_label_values(&[&t.pattern, source])
            .inc();
        self.core
            .metrics()
            .primary_latency
            .with_label_values(&[&t.pattern, "get"])
            .observe(started.elapsed().as_secs_f64());
        doc.map(|d| for_caller(&d)).transpose()
    }

    /// Documents of one collection (`users`, `content/c1/comments`) matching `query`,
    /// from the database the collection's mode reads.
    pub async fn query(
        &self,
        collection_path: &str,
        query: &Query,
    ) -> DualResult<Vec<mongodb::bson::Document>> {
        // A collection path plus a placeholder id is a document path: reuse its parsing.
        let probe = format!("{}/_", collection_path.trim_matches('/'));
        let t = self.core.target(&probe)?;
        let p = DocPath::parse(&probe).expect("resolved above");
        let started = Instant::now();
        let docs: Vec<RawDocumentBuf> = if t.mode.reads_mongo() {
            let m = self.core.mapping_of(&p);
            let parent = p.parent();
            let (filter, sort) = query.to_mongo(self.core.mapping_set(), &m, parent.as_ref())?;
            let coll = self.core.collection::<RawDocumentBuf>(&t.collection);
            let mut find = coll.find(filter).sort(sort);
            if let Some(n) = query.limit {
                find = find.limit(i64::from(n));
            }
            find.await
                .map_err(|e| self.core.mongo_error("find", &t.collection, e))?
                .try_collect()
                .await
                .map_err(|e| self.core.mongo_error("find", &t.collection, e))?
        } else {
            let parent = match p.parent() {
                Some(pp) => self.core.document_name(pp.relative()),
                None => self.core.root().to_string(),
            };
            let docs = self
                .core
                .fs_query(parent, query.to_firestore(p.collection_id())?)
                .await?;
            let mut out = Vec::with_capacity(docs.len());
            for d in &docs {
                out.push(self.core.transform(d)?.item.doc);
            }
            out
        };
        self.core
            .metrics()
            .reads
            .with_label_values(&[
                t.pattern.as_str(),
                if t.mode.reads_mongo() {
                    "mongodb"
                } else {
                    "firestore"
                },
            ])
            .inc();
        self.core
            .metrics()
            .primary_latency
            .with_label_values(&[&t.pattern, "query"])
            .observe(started.elapsed().as_secs_f64());
        docs.iter().map(for_caller).collect()
    }

    // ----- the outbox -----------------------------------------------------------------

    /// One reconciler pass over the entries that are due (`force`: over all entries,
    /// due or not). Updates the outbox depth and age metrics.
    pub async fn reconcile_once(&self, force: bool) -> DualResult<ReconcileReport> {
        outbox::reconcile_once(&self.core, force).await
    }

    /// Outbox depth and the age of the oldest entry; also sets the metrics.
    pub async fn outbox_stats(&self) -> DualResult<(u64, Option<Duration>)> {
        outbox::outbox_stats(&self.core).await
    }

    /// Replays every entry created before the call, due or not, until none is left;
    /// fails when some still fail after `timeout`. Entries written meanwhile by
    /// concurrent writes are left to the reconciler, so a drain ends under load.
    pub async fn drain(&self, timeout: Duration) -> DualResult<()> {
        outbox::drain(&self.core, timeout).await
    }

    /// Starts the background tasks: the settler, the reconciler and (when configured)
    /// the settings poller. Call once per store; they stop with [`Background::shutdown`].
    pub fn spawn_background(&self) -> Background {
        let mut background = outbox::spawn(&self.core, &self.settle);
        if let Some(every) = self.core.config().settings_poll {
            let core = self.core.clone();
            background.every(every, move || {
                let core = core.clone();
                async move {
                    if let Err(e) = settings::refresh(&core).await {
                        tracing::warn!(error = %e, "reading the dual-write settings document failed; keeping the current modes");
                    }
                }
            });
        }
        background
    }

    // ----- the settings document ------------------------------------------------------

    /// Reads the settings document now and applies it.
    pub async fn refresh_settings(&self) -> DualResult<()> {
        settings::refresh(&self.core).await
    }

    /// Writes a collection's mode into the settings document (every polling process
    /// follows within one poll interval) and applies it here at once.
    ///
    /// Switching to `MongoOnly` first drains the outbox (within `drain_timeout`) and
    /// refuses when it cannot: the outbox must be empty when writes flip, or MongoDB
    /// would miss the writes still waiting in it.
    pub async fn publish_mode(
        &self,
        pattern: &str,
        mode: Mode,
        drain_timeout: Duration,
    ) -> DualResult<()> {
        if mode == Mode::MongoOnly {
            self.drain(drain_timeout).await.map_err(|e| {
                DualError::Unsupported(format!(
                    "not switching `{pattern}` to mongo_only: the outbox could not be drained ({e})"
                ))
            })?;
        }
        settings::publish_mode(&self.core, pattern, mode).await
    }

    /// Writes the shadow-read fraction into the settings document and applies it here.
    pub async fn publish_shadow_read_fraction(&self, fraction: f64) -> DualResult<()> {
        settings::publish_shadow_read_fraction(&self.core, fraction).await
    }
}
