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
//!    [`super::guard`] (a delete is a guarded delete at the commit time);
//! 3. the call returns: its result is the primary's. The outbox entry is removed in the
//!    background after a confirming read (see [`super::outbox`]); if step 2 failed or
//!    timed out, the entry stays and the reconciler replays it with backoff.
//!
//! Reads return the document **as the mapping shapes it** in every mode (a Firestore
//! document is transformed on the way out), so flipping reads to MongoDB changes
//! nothing for the caller. The guard field is removed from what callers see.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, TryStreamExt};
use gcloud_sdk::google::firestore::v1::{
    batch_get_documents_response, precondition, run_query_request, value::ValueType, write,
    ArrayValue, BatchGetDocumentsRequest, CommitRequest, Document, DocumentMask, MapValue,
    Precondition, RunQueryRequest, Value, Write,
};
use gcloud_sdk::prost_types::Timestamp;
use gcloud_sdk::tonic::{Code, Status};
use mongodb::bson::{doc, Bson, RawDocumentBuf};
use mongodb::Database;
use tokio::sync::{mpsc, Semaphore};

use super::error::{DualError, DualResult};
use super::metrics::DualMetrics;
use super::mode::{Mode, ModeTable};
use super::outbox::{self, SettleJob};
use super::query::Query;
use crate::error::Error;
use crate::firestore::{FirestoreConnection, FirestoreEndpoint};
use crate::mapping::item::WriteItem;
use crate::mapping::transform::{Transformed, Transformer};
use crate::mapping::{CompiledMapping, Identity, Landing, MappingSet};
use crate::path::{documents_root, DocPath};
use crate::retry::RetryPolicy;
use crate::sink::dead_letter::DEAD_LETTER_COLLECTION;
use crate::sink::guard::{self, GUARD_FIELD};

/// A document's fields, as Firestore values.
pub type Fields = HashMap<String, Value>;

/// Documents per `BatchGetDocuments` call.
const FS_GET_CHUNK: usize = 300;

/// Most writes one Firestore commit accepts; one is kept for the outbox entry.
pub const MAX_BATCH_WRITES: usize = 499;

/// How to reach both databases and how the store behaves.
#[derive(Debug, Clone)]
pub struct DualConfig {
    pub project: String,
    /// Firestore database id, `(default)` unless the project has several.
    pub firestore_database: String,
    /// Firestore endpoint and extra CA (default: Google's, or the emulator when
    /// `FIRESTORE_EMULATOR_HOST` is set); Application Default Credentials.
    pub firestore_endpoint: FirestoreEndpoint,
    pub mongodb_uri: String,
    /// PEM file of CA certificates for MongoDB TLS, as `tlsCAFile=` in the URI.
    pub mongodb_ca_file: Option<std::path::PathBuf>,
    pub mongodb_database: String,
    /// The mapping the migration uses (`Transformer::default()` for the defaults).
    pub transformer: Transformer,
    /// Mode of collections that neither code nor the settings document names.
    pub default_mode: Mode,
    /// Fraction (0–1) of reads that also read the other database and compare.
    pub shadow_read_fraction: f64,
    /// Longest a secondary write may take before it is left to the outbox.
    pub secondary_timeout: Duration,
    /// The reconciler leaves entries younger than this to the write path that made them.
    pub outbox_grace: Duration,
    /// Pause between reconciler passes.
    pub reconcile_interval: Duration,
    /// Entries per reconciler pass.
    pub reconcile_batch: usize,
    /// Backoff between attempts at one failing entry (`deadline` is not used: entries
    /// are retried until they succeed).
    pub reconcile_backoff: RetryPolicy,
    /// Poll the settings document this often (`None`: modes change only by code).
    pub settings_poll: Option<Duration>,
    /// MongoDB collection of the settings document (`_id: "dual"`).
    pub settings_collection: String,
    /// Firestore collection of the outbox.
    pub outbox_collection: String,
    /// Where documents the mapping refuses on their way to MongoDB go.
    pub dead_letter_collection: String,
    /// Confirmations queued for the background settler; past it, entries wait for the
    /// reconciler instead (they are durable, so nothing is lost, only delayed).
    pub settle_queue: usize,
    /// Shadow comparisons running at once; more are skipped, never queued.
    pub max_shadow_in_flight: usize,
}

impl DualConfig {
    pub fn new(
        project: impl Into<String>,
        mongodb_uri: impl Into<String>,
        mongodb_database: impl Into<String>,
    ) -> Self {
        Self {
            project: project.into(),
            firestore_database: crate::source::DEFAULT_DATABASE_ID.to_string(),
            firestore_endpoint: FirestoreEndpoint::default(),
            mongodb_uri: mongodb_uri.into(),
            mongodb_ca_file: None,
            mongodb_database: mongodb_database.into(),
            transformer: Transformer::default(),
            default_mode: Mode::FirestoreOnly,
            shadow_read_fraction: 0.0,
            secondary_timeout: Duration::from_secs(2),
            outbox_grace: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(1),
            reconcile_batch: 100,
            reconcile_backoff: RetryPolicy {
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(30),
                deadline: Duration::MAX,
            },
            settings_poll: Some(Duration::from_secs(5)),
            settings_collection: crate::own::DUAL_SETTINGS.into(),
            outbox_collection: outbox::OUTBOX_COLLECTION.into(),
            dead_letter_collection: DEAD_LETTER_COLLECTION.into(),
            settle_queue: 10_000,
            max_shadow_in_flight: 16,
        }
    }

    fn validate(&self) -> DualResult<()> {
        if self.project.is_empty() {
            return Err(DualError::Config("no Firestore project".into()));
        }
        if !(0.0..=1.0).contains(&self.shadow_read_fraction) {
            return Err(DualError::Config(format!(
                "shadow read fraction {} must be between 0 and 1",
                self.shadow_read_fraction
            )));
        }
        if self.reconcile_batch == 0 || self.settle_queue == 0 {
            return Err(DualError::Config(
                "reconcile batch and settle queue must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One write of a batch.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Fails with [`DualError::AlreadyExists`] when the document exists.
    Create {
        path: String,
        fields: Fields,
    },
    /// Replaces the whole document (creates it when absent).
    Set {
        path: String,
        fields: Fields,
    },
    /// Merges: sets each dotted field path to its value, or deletes it (`None`); the
    /// other fields are kept. Fails with [`DualError::NotFound`] when absent.
    Update {
        path: String,
        fields: Vec<(String, Option<Value>)>,
    },
    Delete {
        path: String,
    },
}

impl WriteOp {
    pub fn path(&self) -> &str {
        match self {
            WriteOp::Create { path, .. }
            | WriteOp::Set { path, .. }
            | WriteOp::Update { path, .. }
            | WriteOp::Delete { path } => path,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            WriteOp::Create { .. } => "create",
            WriteOp::Set { .. } => "set",
            WriteOp::Update { .. } => "update",
            WriteOp::Delete { .. } => "delete",
        }
    }
}

/// What the secondary did with a write, as far as the call knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secondary {
    /// The mode has no secondary.
    None,
    /// MongoDB holds the state the primary had after the write (or a newer one).
    Written,
    /// MongoDB failed or timed out: the outbox entry will bring it up to date.
    Deferred,
}

/// The result of one write.
#[derive(Debug, Clone)]
pub struct WriteResult {
    /// Relative path (`users/u1`).
    pub path: String,
    pub mode: Mode,
    /// The primary's update time (Firestore commit time, or the wall clock in
    /// `MongoOnly`), as guard nanoseconds.
    pub update_time: i64,
    pub secondary: Secondary,
}

/// What the secondary holds after an apply: the primary state with this update time,
/// or no document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Present(i64),
    Absent,
}

impl Applied {
    pub(crate) fn of(doc: Option<&Document>) -> Self {
        match doc.and_then(|d| d.update_time.as_ref()) {
            Some(t) => Applied::Present(guard::timestamp_nanos(t)),
            None => Applied::Absent,
        }
    }
}

/// Where a document lives on both sides.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub rel: String,
    pub name: String,
    pub pattern: String,
    pub collection: String,
    pub id: Bson,
    pub mode: Mode,
}

pub(crate) struct Inner {
    pub fs: FirestoreConnection,
    /// `projects/P/databases/D`.
    pub database: String,
    /// `projects/P/databases/D/documents`.
    pub root: String,
    pub mongo: Database,
    pub mongo_uri: String,
    pub transformer: Transformer,
    pub empty_set: MappingSet,
    pub modes: ModeTable,
    pub metrics: DualMetrics,
    pub config: DualConfig,
    /// `f64` bits: changed by the settings document at run time.
    pub shadow_fraction: AtomicU64,
    pub shadow_permits: Arc<Semaphore>,
    pub settle_tx: mpsc::Sender<SettleJob>,
    pub settle_rx: Mutex<Option<mpsc::Receiver<SettleJob>>>,
}

/// The dual-write store. Cheap to clone (one shared state); every method may run
/// concurrently with every other.
#[derive(Clone)]
pub struct DualStore {
    pub(crate) inner: Arc<Inner>,
}

impl DualStore {
    /// Connects to Firestore (`FIRESTORE_EMULATOR_HOST` selects the emulator) and
    /// prepares the MongoDB client. MongoDB is not required to answer now: in the dual
    /// modes a MongoDB outage only fills the outbox.
    pub async fn connect(config: DualConfig) -> DualResult<Self> {
        config.validate()?;
        let fs = FirestoreConnection::connect(
            &config.project,
            &config.firestore_database,
            &config.firestore_endpoint,
        )
        .await?;
        let (mut options, mongo_uri) = crate::mongo::client_options(
            &config.mongodb_uri,
            config.mongodb_ca_file.as_deref(),
            "fireshift-dual",
            &config.mongodb_database,
        )
        .await?;
        // A secondary that does not answer must fail fast (the outbox takes over), not
        // hold the caller for the driver's 30 s default.
        options.server_selection_timeout = Some(config.secondary_timeout);
        options.connect_timeout = Some(config.secondary_timeout);
        let client = crate::mongo::client(options, &mongo_uri, &config.mongodb_database)?;
        let mongo = client.database(&config.mongodb_database);
        let database = format!(
            "projects/{}/databases/{}",
            config.project, config.firestore_database
        );
        let root = documents_root(&config.project, &config.firestore_database);
        let (settle_tx, settle_rx) = mpsc::channel(config.settle_queue);
        Ok(Self {
            inner: Arc::new(Inner {
                fs,
                database,
                root,
                mongo,
                mongo_uri,
                transformer: config.transformer.clone(),
                empty_set: MappingSet::empty(),
                modes: ModeTable::new(config.default_mode),
                metrics: DualMetrics::new(),
                shadow_fraction: AtomicU64::new(config.shadow_read_fraction.to_bits()),
                shadow_permits: Arc::new(Semaphore::new(config.max_shadow_in_flight.max(1))),
                settle_tx,
                settle_rx: Mutex::new(Some(settle_rx)),
                config,
            }),
        })
    }

    /// Shuts the MongoDB client down (see [`crate::mongo::shutdown`]). Call it last,
    /// after [`Background::shutdown`](super::outbox::Background::shutdown), before the
    /// runtime ends; clones of this store must not be used afterwards.
    pub async fn shutdown(self) {
        crate::mongo::shutdown(self.inner.mongo.client().clone()).await;
    }

    pub fn metrics(&self) -> &DualMetrics {
        &self.inner.metrics
    }

    pub fn modes(&self) -> &ModeTable {
        &self.inner.modes
    }

    /// Sets a collection pattern's mode in this process (`users`, `content/{}/comments`).
    pub fn set_mode(&self, pattern: &str, mode: Mode) {
        self.inner.modes.set(pattern, mode);
        tracing::info!(collection = pattern, %mode, "dual-write mode set by code");
    }

    /// The mode that applies to a document or collection path.
    pub fn mode_of(&self, path: &str) -> DualResult<Mode> {
        Ok(self.target(path)?.mode)
    }

    pub fn shadow_read_fraction(&self) -> f64 {
        f64::from_bits(self.inner.shadow_fraction.load(Ordering::Relaxed))
    }

    pub fn set_shadow_read_fraction(&self, fraction: f64) {
        self.inner
            .shadow_fraction
            .store(fraction.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn set(&self) -> &MappingSet {
        self.inner
            .transformer
            .mappings()
            .unwrap_or(&self.inner.empty_set)
    }

    pub(crate) fn mapping_of(&self, path: &DocPath<'_>) -> CompiledMapping {
        let set = self.set();
        let pattern = path.pattern();
        set.get(&pattern)
            .cloned()
            .unwrap_or_else(|| set.default_mapping(&pattern))
    }

    /// Resolves a relative (or full) document path on both sides.
    pub(crate) fn target(&self, path: &str) -> DualResult<Target> {
        let p = DocPath::parse(path).map_err(|e| DualError::Path {
            path: path.to_string(),
            reason: e.reason.to_string(),
        })?;
        let pattern = p.pattern();
        let mode = self.inner.modes.get(&pattern.to_string());
        let set = self.set();
        let m = self.mapping_of(&p);
        if mode != Mode::FirestoreOnly {
            if let Landing::Embed { .. } = m.landing {
                return Err(DualError::Unsupported(format!(
                    "`{pattern}` is embedded into its parent by the mapping: dual writes need a collection of its own"
                )));
            }
            if let Identity::Field { field, .. } = &m.identity {
                return Err(DualError::Unsupported(format!(
                    "`{pattern}` takes its `_id` from the field `{field}`: the store must derive `_id` from the path (use keep or objectid)"
                )));
            }
        }
        let id = match set.target_id(&p) {
            Ok(id) => id,
            // Never used: in this mode nothing goes to MongoDB.
            Err(_) if mode == Mode::FirestoreOnly => Bson::Null,
            Err(e) => return Err(DualError::Unsupported(e)),
        };
        Ok(Target {
            rel: p.relative().to_string(),
            name: format!("{}/{}", self.inner.root, p.relative()),
            pattern: pattern.to_string(),
            collection: set.target_of(&pattern),
            id,
            mode,
        })
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
            .map(|op| self.target(op.path()))
            .collect::<DualResult<Vec<_>>>()?;
        let mongo_only = targets.iter().filter(|t| t.mode == Mode::MongoOnly).count();
        if mongo_only == targets.len() {
            let mut out = Vec::with_capacity(ops.len());
            for (op, t) in ops.into_iter().zip(targets) {
                out.push(self.write_mongo_only(op, t).await?);
            }
            return Ok(out);
        }
        if mongo_only > 0 {
            return Err(DualError::Unsupported(
                "a batch mixes collections in mongo_only mode with collections whose primary is Firestore".into(),
            ));
        }
        self.write_firestore(ops, targets).await
    }

    async fn write_firestore(
        &self,
        ops: Vec<WriteOp>,
        targets: Vec<Target>,
    ) -> DualResult<Vec<WriteResult>> {
        let started = Instant::now();
        let mut writes = Vec::with_capacity(ops.len() + 1);
        for (op, t) in ops.iter().zip(&targets) {
            if t.mode.mongo_secondary() {
                self.prevalidate(op, t)?;
            }
            writes.push(firestore_write(op, t)?);
        }
        let secondary_paths: Vec<String> = targets
            .iter()
            .filter(|t| t.mode.mongo_secondary())
            .map(|t| t.rel.clone())
            .collect();
        let entry = if secondary_paths.is_empty() {
            None
        } else {
            let id = outbox::new_entry_id();
            writes.push(outbox::entry_write(self, &id, &secondary_paths));
            Some(id)
        };
        let resp = self.fs_commit(writes).await.map_err(|s| {
            for t in &targets {
                self.inner
                    .metrics
                    .writes
                    .with_label_values(&[&t.pattern, t.mode.as_str(), "primary_error"])
                    .inc();
            }
            self.commit_error(s, &ops)
        })?;
        let elapsed = started.elapsed().as_secs_f64();
        for (op, t) in ops.iter().zip(&targets) {
            self.inner
                .metrics
                .primary_latency
                .with_label_values(&[&t.pattern, op.name()])
                .observe(elapsed);
        }
        let commit_time = resp
            .commit_time
            .as_ref()
            .map(guard::timestamp_nanos)
            .unwrap_or_else(guard::now_nanos);
        let times: Vec<i64> = (0..ops.len())
            .map(|i| {
                resp.write_results
                    .get(i)
                    .and_then(|w| w.update_time.as_ref())
                    .map(guard::timestamp_nanos)
                    .unwrap_or(commit_time)
            })
            .collect();

        let secondary = match &entry {
            None => vec![Secondary::None; ops.len()],
            Some(entry) => {
                self.write_secondary(entry, &ops, &targets, &times, commit_time)
                    .await
            }
        };
        Ok(targets
            .into_iter()
            .zip(times)
            .zip(secondary)
            .map(|((t, update_time), secondary)| {
                let outcome = match secondary {
                    Secondary::Deferred => "secondary_deferred",
                    _ => "ok",
                };
                self.inner
                    .metrics
                    .writes
                    .with_label_values(&[&t.pattern, t.mode.as_str(), outcome])
                    .inc();
                WriteResult {
                    path: t.rel,
                    mode: t.mode,
                    update_time,
                    secondary,
                }
            })
            .collect())
    }

    /// Whether the collection's mapping ignores the create time (so a `set` needs no
    /// read-back to know the document's full state).
    fn keeps_no_create_time(&self, t: &Target) -> bool {
        DocPath::parse(&t.rel)
            .map(|p| self.mapping_of(&p).create_time.is_none())
            .unwrap_or(false)
    }

    /// Refuses, before anything is written, a create or set whose document the mapping
    /// would refuse (so the two databases cannot start to differ on it).
    fn prevalidate(&self, op: &WriteOp, t: &Target) -> DualResult<()> {
        let fields = match op {
            WriteOp::Create { fields, .. } | WriteOp::Set { fields, .. } => fields,
            _ => return Ok(()),
        };
        let now = guard::nanos_timestamp(guard::now_nanos());
        let doc = Document {
            name: t.name.clone(),
            fields: fields.clone(),
            create_time: Some(now),
            update_time: Some(now),
        };
        self.transform(&doc).map(|_| ())
    }

    /// Transforms and stamps a primary document for MongoDB.
    pub(crate) fn transform(&self, doc: &Document) -> DualResult<Transformed> {
        let t = self
            .inner
            .transformer
            .apply(doc)
            .and_then(|t| guard::stamp_transformed(t, doc, Some(GUARD_FIELD)))
            .map_err(|r| DualError::Mapping {
                path: r.source_path.clone(),
                rule: r.rule,
                reason: match r.field {
                    Some(f) => format!("field `{f}`: {}", r.reason),
                    None => r.reason,
                },
            })?;
        Ok(t)
    }

    /// Step 2 of the write path, bounded by the secondary timeout. Never fails the call.
    async fn write_secondary(
        &self,
        entry: &str,
        ops: &[WriteOp],
        targets: &[Target],
        times: &[i64],
        commit_time: i64,
    ) -> Vec<Secondary> {
        let started = Instant::now();
        let work = async {
            // The state a create or set leaves is known without reading it back: the
            // fields sent, at the write's update time. A set keeps the old create time,
            // which only matters when the mapping stores it.
            let known: Vec<Option<Document>> = ops
                .iter()
                .zip(targets)
                .zip(times)
                .map(|((op, t), time)| {
                    let (fields, create_time) = match op {
                        WriteOp::Create { fields, .. } => (fields, Some(*time)),
                        WriteOp::Set { fields, .. } if self.keeps_no_create_time(t) => {
                            (fields, None)
                        }
                        _ => return None,
                    };
                    Some(Document {
                        name: t.name.clone(),
                        fields: fields.clone(),
                        create_time: create_time.map(guard::nanos_timestamp),
                        update_time: Some(guard::nanos_timestamp(*time)),
                    })
                })
                .collect();
            let reads: Vec<&Target> = ops
                .iter()
                .zip(targets)
                .zip(&known)
                .filter(|((op, t), k)| {
                    t.mode.mongo_secondary() && k.is_none() && !matches!(op, WriteOp::Delete { .. })
                })
                .map(|((_, t), _)| t)
                .collect();
            let states = if reads.is_empty() {
                HashMap::new()
            } else {
                let names: Vec<String> = reads.iter().map(|t| t.name.clone()).collect();
                self.fs_get(&names).await?.0
            };
            let mut applied = Vec::new();
            // Consecutive upserts to one collection go in one command; a delete ends
            // the run, so the order of the batch's writes is kept.
            let mut run: Option<(String, Vec<WriteItem>)> = None;
            for ((op, t), known) in ops.iter().zip(targets).zip(known) {
                if !t.mode.mongo_secondary() {
                    continue;
                }
                let a = match op {
                    WriteOp::Delete { .. } => {
                        if let Some((c, items)) = run.take() {
                            self.mongo_upsert_many(&c, &items).await?;
                        }
                        self.mongo_delete(t, commit_time).await?;
                        Applied::Absent
                    }
                    _ => {
                        // `get`, not `remove`: a batch may write one path twice.
                        let doc = known.or_else(|| states.get(&t.name).cloned().flatten());
                        let a = Applied::of(doc.as_ref());
                        match self.prepare_secondary(t, doc) {
                            None => {
                                if let Some((c, items)) = run.take() {
                                    self.mongo_upsert_many(&c, &items).await?;
                                }
                                self.mongo_delete(t, commit_time).await?;
                            }
                            Some((c, item)) => match &mut run {
                                Some((rc, items)) if *rc == c => items.push(item),
                                _ => {
                                    if let Some((rc, items)) = run.replace((c, vec![item])) {
                                        self.mongo_upsert_many(&rc, &items).await?;
                                    }
                                }
                            },
                        }
                        a
                    }
                };
                applied.push((t.rel.clone(), a));
            }
            if let Some((c, items)) = run.take() {
                self.mongo_upsert_many(&c, &items).await?;
            }
            Ok::<_, DualError>(applied)
        };
        let result = match tokio::time::timeout(self.inner.config.secondary_timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(DualError::Io(Error::Mongo {
                operation: "secondary write",
                target: self.inner.mongo.name().to_string(),
                uri: self.inner.mongo_uri.clone(),
                message: format!("no answer within {:?}", self.inner.config.secondary_timeout),
                retryable: true,
            })),
        };
        let elapsed = started.elapsed().as_secs_f64();
        let mut out = Vec::with_capacity(targets.len());
        match result {
            Ok(applied) => {
                for t in targets {
                    self.inner
                        .metrics
                        .secondary_latency
                        .with_label_values(&[&t.pattern])
                        .observe(elapsed);
                    out.push(if t.mode.mongo_secondary() {
                        Secondary::Written
                    } else {
                        Secondary::None
                    });
                }
                let job = SettleJob {
                    entry: entry.to_string(),
                    applied,
                };
                // A full queue only delays the entry's removal to the reconciler.
                let _ = self.inner.settle_tx.try_send(job);
            }
            Err(e) => {
                tracing::warn!(entry, error = %e, "secondary write failed; the outbox entry will replay it");
                for t in targets {
                    if t.mode.mongo_secondary() {
                        self.inner
                            .metrics
                            .secondary_failures
                            .with_label_values(&[&t.pattern])
                            .inc();
                        out.push(Secondary::Deferred);
                    } else {
                        out.push(Secondary::None);
                    }
                }
            }
        }
        out
    }

    fn commit_error(&self, s: Status, ops: &[WriteOp]) -> DualError {
        let first = |want: fn(&WriteOp) -> bool| {
            ops.iter()
                .find(|o| want(o))
                .map(|o| o.path().to_string())
                .unwrap_or_default()
        };
        match s.code() {
            Code::AlreadyExists => DualError::AlreadyExists {
                path: first(|o| matches!(o, WriteOp::Create { .. })),
            },
            Code::NotFound => DualError::NotFound {
                path: first(|o| matches!(o, WriteOp::Update { .. })),
            },
            _ => DualError::Io(self.fs_error("Commit", s)),
        }
    }

    /// One atomic Firestore commit of `writes`; the caller maps the status, since what
    /// a failure means depends on the writes.
    pub(crate) async fn fs_commit(
        &self,
        writes: Vec<Write>,
    ) -> Result<gcloud_sdk::google::firestore::v1::CommitResponse, Status> {
        let req = CommitRequest {
            database: self.inner.database.clone(),
            writes,
            ..Default::default()
        };
        Ok(self.inner.fs.client().commit(req).await?.into_inner())
    }

    /// The documents a Firestore query under `parent` returns, in order.
    pub(crate) async fn fs_query(
        &self,
        parent: String,
        query: gcloud_sdk::google::firestore::v1::StructuredQuery,
    ) -> Result<Vec<Document>, Error> {
        let req = RunQueryRequest {
            parent,
            query_type: Some(run_query_request::QueryType::StructuredQuery(query)),
            ..Default::default()
        };
        let mut stream = self
            .inner
            .fs
            .client()
            .run_query(req)
            .await
            .map_err(|s| self.fs_error("RunQuery", s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(resp) = stream.next().await {
            if let Some(d) = resp.map_err(|s| self.fs_error("RunQuery", s))?.document {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub(crate) fn fs_error(&self, operation: &'static str, s: Status) -> Error {
        self.inner.fs.status_error(operation, s)
    }

    pub(crate) fn mongo_error(
        &self,
        operation: &'static str,
        collection: &str,
        e: mongodb::error::Error,
    ) -> Error {
        Error::Mongo {
            operation,
            target: format!("{}.{collection}", self.inner.mongo.name()),
            uri: self.inner.mongo_uri.clone(),
            retryable: crate::mongo::is_retryable(&e),
            message: e.to_string(),
        }
    }

    // ----- MongoOnly ----------------------------------------------------------------

    async fn write_mongo_only(&self, op: WriteOp, t: Target) -> DualResult<WriteResult> {
        let started = Instant::now();
        let now = guard::now_nanos();
        let coll = self.inner.mongo.collection::<RawDocumentBuf>(&t.collection);
        let result: DualResult<()> = async {
            match &op {
                WriteOp::Create { fields, .. } | WriteOp::Set { fields, .. } => {
                    let ts = guard::nanos_timestamp(now);
                    let doc = Document {
                        name: t.name.clone(),
                        fields: fields.clone(),
                        create_time: Some(ts),
                        update_time: Some(ts),
                    };
                    let tr = self.transform(&doc)?;
                    if let WriteOp::Create { .. } = op {
                        match coll.insert_one(tr.item.doc.clone()).await {
                            Ok(_) => Ok(()),
                            Err(e) if is_duplicate_key(&e) => Err(DualError::AlreadyExists {
                                path: t.rel.clone(),
                            }),
                            Err(e) => Err(self.mongo_error("insert", &t.collection, e).into()),
                        }
                    } else {
                        self.mongo_only_replace(&tr.collection, &tr.item, now).await
                    }
                }
                WriteOp::Update { fields, .. } => {
                    let p = DocPath::parse(&t.rel).expect("resolved path");
                    let m = self.mapping_of(&p);
                    let mut set = mongodb::bson::Document::new();
                    let mut unset = Vec::new();
                    for (f, v) in fields {
                        let (path, value) = super::query::translate_field(&m, f, v.as_ref())?;
                        match value {
                            Some(v) => {
                                set.insert(path, doc! { "$literal": v });
                            }
                            None => unset.push(path),
                        }
                    }
                    if let Some(f) = &m.update_time {
                        let at = mongodb::bson::DateTime::from_millis(now / 1_000_000);
                        set.insert(f.clone(), doc! { "$literal": at });
                    }
                    set.insert(GUARD_FIELD, mongo_only_guard(now));
                    let mut pipeline = vec![doc! { "$set": set }];
                    if !unset.is_empty() {
                        pipeline.push(doc! { "$unset": unset });
                    }
                    let r = coll
                        .update_one(doc! {"_id": t.id.clone()}, pipeline)
                        .await
                        .map_err(|e| self.mongo_error("update", &t.collection, e))?;
                    if r.matched_count == 0 {
                        return Err(DualError::NotFound {
                            path: t.rel.clone(),
                        });
                    }
                    Ok(())
                }
                WriteOp::Delete { .. } => {
                    coll.delete_one(doc! {"_id": t.id.clone()})
                        .await
                        .map_err(|e| self.mongo_error("delete", &t.collection, e))?;
                    Ok(())
                }
            }
        }
        .await;
        let outcome = if result.is_ok() {
            "ok"
        } else {
            "primary_error"
        };
        self.inner
            .metrics
            .writes
            .with_label_values(&[&t.pattern, t.mode.as_str(), outcome])
            .inc();
        self.inner
            .metrics
            .primary_latency
            .with_label_values(&[&t.pattern, op.name()])
            .observe(started.elapsed().as_secs_f64());
        result?;
        Ok(WriteResult {
            path: t.rel,
            mode: t.mode,
            update_time: now,
            secondary: Secondary::None,
        })
    }

    /// A `set` in `MongoOnly`: replaces the document unconditionally (MongoDB is the
    /// primary now) and moves its guard time past whatever it held, so that an outbox
    /// entry from the dual phase replayed later can never overwrite it, even if this
    /// host's clock is behind Firestore's.
    async fn mongo_only_replace(
        &self,
        collection: &str,
        item: &WriteItem,
        now: i64,
    ) -> DualResult<()> {
        let mut d = mongodb::bson::Document::try_from(item.doc.as_ref())
            .map_err(|e| DualError::Io(Error::Config(format!("converted document: {e}"))))?;
        d.remove(GUARD_FIELD);
        let mut parts = vec![Bson::Document(doc! { "$literal": d })];
        if let crate::mapping::item::WriteKind::ReplaceKeeping { fields } = &item.kind {
            let mut kept = mongodb::bson::Document::new();
            for f in fields {
                kept.insert(f.clone(), doc! { "$ifNull": [format!("${f}"), []] });
            }
            parts.push(Bson::Document(kept));
        }
        parts.push(Bson::Document(doc! { GUARD_FIELD: mongo_only_guard(now) }));
        let pipeline = vec![doc! { "$replaceWith": { "$mergeObjects": parts } }];
        self.inner
            .mongo
            .collection::<RawDocumentBuf>(collection)
            .update_one(doc! {"_id": item.id.clone()}, pipeline)
            .upsert(true)
            .await
            .map_err(|e| self.mongo_error("replace", collection, e))?;
        Ok(())
    }

    // ----- the secondary --------------------------------------------------------------

    /// Brings MongoDB to the primary state `doc` (`None`: Firestore had no document
    /// at `read_time`). Guarded, so any number of concurrent or replayed applies of
    /// older states cannot overwrite a newer one. A document the mapping refuses is
    /// dead-lettered with its reason and counted (it cannot be written; retrying would
    /// not help).
    pub(crate) async fn apply_secondary(
        &self,
        t: &Target,
        doc: Option<Document>,
        read_time: i64,
    ) -> DualResult<()> {
        match self.prepare_secondary(t, doc) {
            None => self.mongo_delete(t, read_time).await,
            Some((collection, item)) => self.mongo_upsert_many(&collection, &[item]).await,
        }
    }

    /// The MongoDB write that brings a document to `doc`: `None` for a delete, else
    /// the collection and the stamped item (a dead letter when the mapping refuses it).
    fn prepare_secondary(&self, t: &Target, doc: Option<Document>) -> Option<(String, WriteItem)> {
        let doc = doc?;
        Some(
            match self
                .inner
                .transformer
                .apply(&doc)
                .and_then(|tr| guard::stamp_transformed(tr, &doc, Some(GUARD_FIELD)))
            {
                Ok(tr) => (tr.collection, tr.item),
                Err(rejection) => {
                    tracing::warn!(path = %rejection.source_path, rule = rejection.rule, "dual write: the mapping refuses the document: {}", rejection.reason);
                    self.inner
                        .metrics
                        .dead_letters
                        .with_label_values(&[&t.pattern, rejection.rule])
                        .inc();
                    (
                        self.inner.config.dead_letter_collection.clone(),
                        rejection.dead_letter(Some(&doc), "dual"),
                    )
                }
            },
        )
    }

    /// Guarded upserts (items without a guard — dead letters, keyed by path — are
    /// replaced whole) in one ordered `update` command, so a batch that writes one
    /// path twice lands its final state last.
    pub(crate) async fn mongo_upsert_many(
        &self,
        collection: &str,
        items: &[WriteItem],
    ) -> DualResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut updates = mongodb::bson::RawArrayBuf::new();
        for item in items {
            let u = guard::guarded_update(item, GUARD_FIELD).unwrap_or_else(|| item.update());
            let mut q = RawDocumentBuf::new();
            q.append(
                "_id",
                mongodb::bson::RawBson::try_from(item.id.clone())
                    .unwrap_or(mongodb::bson::RawBson::Null),
            );
            updates.push(mongodb::bson::rawdoc! { "q": q, "u": u, "upsert": true });
        }
        let mut cmd = RawDocumentBuf::new();
        cmd.append("update", collection);
        cmd.append("updates", updates);
        cmd.append("ordered", true);
        // Acknowledged durably before the outbox entry can be removed.
        cmd.append(
            "writeConcern",
            mongodb::bson::rawdoc! { "w": "majority", "j": true },
        );
        let reply = self
            .inner
            .mongo
            .run_raw_command(cmd)
            .await
            .map_err(|e| self.mongo_error("guarded upsert", collection, e))?;
        check_write_reply(self, collection, &reply, "guarded upsert")
    }

    /// Removes the MongoDB document unless it holds a state newer than `time`.
    pub(crate) async fn mongo_delete(&self, t: &Target, time: i64) -> DualResult<()> {
        let filter = guard::delete_filter(t.id.clone(), GUARD_FIELD, time);
        let cmd = doc! {
            "delete": &t.collection,
            "deletes": [ { "q": filter, "limit": 1 } ],
            "writeConcern": { "w": "majority", "j": true },
        };
        let reply = self
            .inner
            .mongo
            .run_command(cmd)
            .await
            .map_err(|e| self.mongo_error("guarded delete", &t.collection, e))?;
        check_write_reply(self, &t.collection, &reply, "guarded delete")
    }

    // ----- Firestore reads ------------------------------------------------------------

    /// Current state of each named document (`None`: missing) and the read time.
    pub(crate) async fn fs_get(
        &self,
        names: &[String],
    ) -> DualResult<(HashMap<String, Option<Document>>, i64)> {
        let mut unique = names.to_vec();
        unique.sort();
        unique.dedup();
        let mut out = HashMap::with_capacity(unique.len());
        // The earliest read time of the chunks: a guarded delete at that time can only
        // remove states older than every read.
        let mut read_time = i64::MAX;
        for chunk in unique.chunks(FS_GET_CHUNK) {
            let req = BatchGetDocumentsRequest {
                database: self.inner.database.clone(),
                documents: chunk.to_vec(),
                ..Default::default()
            };
            let mut stream = self
                .inner
                .fs
                .client()
                .batch_get_documents(req)
                .await
                .map_err(|s| self.fs_error("BatchGetDocuments", s))?
                .into_inner();
            let mut chunk_time = 0i64;
            while let Some(resp) = stream.next().await {
                let resp = resp.map_err(|s| self.fs_error("BatchGetDocuments", s))?;
                if let Some(t) = &resp.read_time {
                    chunk_time = chunk_time.max(guard::timestamp_nanos(t));
                }
                match resp.result {
                    Some(batch_get_documents_response::Result::Found(d)) => {
                        out.insert(d.name.clone(), Some(d));
                    }
                    Some(batch_get_documents_response::Result::Missing(n)) => {
                        out.insert(n, None);
                    }
                    None => {}
                }
            }
            read_time = read_time.min(chunk_time);
        }
        if read_time == i64::MAX {
            read_time = 0;
        }
        Ok((out, read_time))
    }

    // ----- reads ------------------------------------------------------------------------

    /// The document at `path`, shaped by the mapping, from the database the mode reads.
    pub async fn get(&self, path: &str) -> DualResult<Option<mongodb::bson::Document>> {
        let t = self.target(path)?;
        let started = Instant::now();
        let shadow = t.mode.mongo_secondary() && self.sample();
        let (doc, source) = if t.mode.reads_mongo() {
            let raw = self.mongo_get(&t).await?;
            if shadow {
                self.spawn_shadow(t.clone(), ShadowSide::Mongo(raw.clone()));
            }
            (raw, "mongodb")
        } else {
            let (mut states, _) = self.fs_get(std::slice::from_ref(&t.name)).await?;
            let doc = states.remove(&t.name).flatten();
            let shaped = match &doc {
                Some(d) => Some(self.transform(d)?.item.doc),
                None => None,
            };
            if shadow {
                self.spawn_shadow(t.clone(), ShadowSide::Firestore(shaped.clone()));
            }
            (shaped, "firestore")
        };
        self.inner
            .metrics
            .reads
            .with_label_values(&[&t.pattern, source])
            .inc();
        self.inner
            .metrics
            .primary_latency
            .with_label_values(&[&t.pattern, "get"])
            .observe(started.elapsed().as_secs_f64());
        doc.map(|d| for_caller(&d)).transpose()
    }

    pub(crate) async fn mongo_get(&self, t: &Target) -> DualResult<Option<RawDocumentBuf>> {
        self.inner
            .mongo
            .collection::<RawDocumentBuf>(&t.collection)
            .find_one(doc! {"_id": t.id.clone()})
            .await
            .map_err(|e| self.mongo_error("find", &t.collection, e).into())
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
        let t = self.target(&probe)?;
        let p = DocPath::parse(&probe).expect("resolved above");
        let started = Instant::now();
        let docs: Vec<RawDocumentBuf> = if t.mode.reads_mongo() {
            let m = self.mapping_of(&p);
            let parent = p.parent();
            let (filter, sort) = query.to_mongo(self.set(), &m, parent.as_ref())?;
            let coll = self.inner.mongo.collection::<RawDocumentBuf>(&t.collection);
            let mut find = coll.find(filter).sort(sort);
            if let Some(n) = query.limit {
                find = find.limit(i64::from(n));
            }
            find.await
                .map_err(|e| self.mongo_error("find", &t.collection, e))?
                .try_collect()
                .await
                .map_err(|e| self.mongo_error("find", &t.collection, e))?
        } else {
            let parent = match p.parent() {
                Some(pp) => format!("{}/{}", self.inner.root, pp.relative()),
                None => self.inner.root.clone(),
            };
            let docs = self
                .fs_query(parent, query.to_firestore(p.collection_id())?)
                .await?;
            let mut out = Vec::with_capacity(docs.len());
            for d in &docs {
                out.push(self.transform(d)?.item.doc);
            }
            out
        };
        self.inner
            .metrics
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
        self.inner
            .metrics
            .primary_latency
            .with_label_values(&[&t.pattern, "query"])
            .observe(started.elapsed().as_secs_f64());
        docs.iter().map(for_caller).collect()
    }

    fn sample(&self) -> bool {
        let p = self.shadow_read_fraction();
        p > 0.0 && (p >= 1.0 || rand::random::<f64>() < p)
    }

    fn spawn_shadow(&self, t: Target, primary: ShadowSide) {
        let Ok(permit) = self.inner.shadow_permits.clone().try_acquire_owned() else {
            self.inner
                .metrics
                .shadow_reads
                .with_label_values(&[&t.pattern, "skipped"])
                .inc();
            return;
        };
        let store = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            super::shadow::compare(&store, &t, primary).await;
        });
    }
}

/// What the read path already has, for a shadow comparison.
pub(crate) enum ShadowSide {
    /// The read came from Firestore: its shaped document (stamped).
    Firestore(Option<RawDocumentBuf>),
    /// The read came from MongoDB: the stored document.
    Mongo(Option<RawDocumentBuf>),
}

/// The guard time of a `MongoOnly` write: the wall clock, or just past the stored time
/// when that is ahead.
fn mongo_only_guard(now: i64) -> mongodb::bson::Document {
    doc! { "$max": [now, { "$add": [{ "$ifNull": [format!("${GUARD_FIELD}"), 0i64] }, 1i64] }] }
}

/// A stored document as callers see it: without the guard field.
fn for_caller(d: &RawDocumentBuf) -> DualResult<mongodb::bson::Document> {
    let mut d = mongodb::bson::Document::try_from(d.as_ref())
        .map_err(|e| DualError::Io(Error::Config(format!("malformed stored document: {e}"))))?;
    d.remove(GUARD_FIELD);
    Ok(d)
}

fn check_write_reply(
    store: &DualStore,
    collection: &str,
    reply: &mongodb::bson::Document,
    operation: &'static str,
) -> DualResult<()> {
    let err = |message: String, retryable: bool| {
        DualError::Io(Error::Mongo {
            operation,
            target: format!("{}.{collection}", store.inner.mongo.name()),
            uri: store.inner.mongo_uri.clone(),
            message,
            retryable,
        })
    };
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(err(
            wce.get_str("errmsg")
                .unwrap_or("write concern error")
                .into(),
            true,
        ));
    }
    if let Ok(errors) = reply.get_array("writeErrors") {
        if let Some(e) = errors.iter().find_map(|e| e.as_document()) {
            let code = match e.get("code") {
                Some(Bson::Int32(c)) => i64::from(*c),
                Some(Bson::Int64(c)) => *c,
                _ => 0,
            };
            // 11000: two upserts of one new `_id` raced; the replay decides.
            return Err(err(
                format!("code {code}: {}", e.get_str("errmsg").unwrap_or("")),
                code == 11000,
            ));
        }
    }
    Ok(())
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// The Firestore write of one operation.
fn firestore_write(op: &WriteOp, t: &Target) -> DualResult<Write> {
    let exists = |b| {
        Some(Precondition {
            condition_type: Some(precondition::ConditionType::Exists(b)),
        })
    };
    Ok(match op {
        WriteOp::Create { fields, .. } => Write {
            operation: Some(write::Operation::Update(Document {
                name: t.name.clone(),
                fields: fields.clone(),
                ..Default::default()
            })),
            current_document: exists(false),
            ..Default::default()
        },
        WriteOp::Set { fields, .. } => Write {
            operation: Some(write::Operation::Update(Document {
                name: t.name.clone(),
                fields: fields.clone(),
                ..Default::default()
            })),
            ..Default::default()
        },
        WriteOp::Update { fields, .. } => {
            let mut nested = HashMap::new();
            let mut paths = Vec::with_capacity(fields.len());
            for (path, value) in fields {
                if path.is_empty()
                    || path.split('.').any(|s| {
                        s.is_empty()
                            || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            || s.starts_with(|c: char| c.is_ascii_digit())
                    })
                {
                    return Err(DualError::Unsupported(format!(
                        "update field path `{path}`: only dotted names of letters, digits and `_` (not starting with a digit) are supported"
                    )));
                }
                if let Some(v) = value {
                    insert_path(&mut nested, path, v.clone());
                }
                paths.push(path.clone());
            }
            Write {
                operation: Some(write::Operation::Update(Document {
                    name: t.name.clone(),
                    fields: nested,
                    ..Default::default()
                })),
                update_mask: Some(DocumentMask { field_paths: paths }),
                current_document: exists(true),
                ..Default::default()
            }
        }
        WriteOp::Delete { .. } => Write {
            operation: Some(write::Operation::Delete(t.name.clone())),
            ..Default::default()
        },
    })
}

/// Puts `value` at a dotted path, creating the intermediate maps.
fn insert_path(fields: &mut HashMap<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            fields.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = fields.entry(head.to_string()).or_insert_with(|| Value {
                value_type: Some(ValueType::MapValue(MapValue::default())),
            });
            if !matches!(entry.value_type, Some(ValueType::MapValue(_))) {
                entry.value_type = Some(ValueType::MapValue(MapValue::default()));
            }
            if let Some(ValueType::MapValue(m)) = &mut entry.value_type {
                insert_path(&mut m.fields, rest, value);
            }
        }
    }
}

/// A Firestore timestamp for the wall clock.
pub(crate) fn now_timestamp() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// A Firestore string array.
pub(crate) fn string_array(items: &[String]) -> Value {
    Value {
        value_type: Some(ValueType::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|s| Value {
                    value_type: Some(ValueType::StringValue(s.clone())),
                })
                .collect(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value {
            value_type: Some(ValueType::StringValue(v.into())),
        }
    }

    #[test]
    fn update_paths_nest_into_maps_and_fill_the_mask() {
        let t = Target {
            rel: "users/u1".into(),
            name: "projects/p/databases/(default)/documents/users/u1".into(),
            pattern: "users".into(),
            collection: "users".into(),
            id: Bson::String("u1".into()),
            mode: Mode::DualReadFirestore,
        };
        let op = WriteOp::Update {
            path: "users/u1".into(),
            fields: vec![
                ("profile.name".into(), Some(s("Ann"))),
                ("profile.city".into(), Some(s("Oslo"))),
                ("old".into(), None),
            ],
        };
        let w = firestore_write(&op, &t).unwrap();
        assert_eq!(
            w.update_mask.unwrap().field_paths,
            vec!["profile.name", "profile.city", "old"]
        );
        let Some(write::Operation::Update(d)) = w.operation else {
            panic!("update expected")
        };
        let Some(ValueType::MapValue(m)) = &d.fields["profile"].value_type else {
            panic!("map expected")
        };
        assert_eq!(m.fields.len(), 2);
        assert!(
            !d.fields.contains_key("old"),
            "a deleted field is in the mask only"
        );
        let bad = WriteOp::Update {
            path: "users/u1".into(),
            fields: vec![("a..b".into(), None)],
        };
        assert!(matches!(
            firestore_write(&bad, &t),
            Err(DualError::Unsupported(_))
        ));
    }
}
