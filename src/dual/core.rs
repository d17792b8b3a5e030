//! The store's shared state and the operations on the two databases that the write
//! path, the outbox, the settings poller and shadow reads all build on:
//!
//! * resolving a path to its [`Target`] (mode, MongoDB collection and `_id`) and its
//!   mapping, and transforming a Firestore document the way the migration would;
//! * Firestore: one atomic commit, a query, a count, a batched read of current states,
//!   and the error each failure becomes;
//! * MongoDB: a read by `_id`, guarded upserts and deletes (see [`crate::sink::guard`])
//!   and the error each failure becomes;
//! * bringing MongoDB to a Firestore state (`apply_secondary`, `prepare_secondary`).
//!
//! The state is private: the rest of the store reaches it only through these methods,
//! so the routing rules (which collections the store can write, which write concern a
//! secondary write uses) live in one place.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gcloud_sdk::google::firestore::v1::{
    CommitRequest, CommitResponse, Document, StructuredQuery, Write,
};
use gcloud_sdk::tonic::Status;
use mongodb::bson::{doc, Bson, RawDocumentBuf};
use mongodb::{Client, Collection, Database};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::DualConfig;
use super::error::{DualError, DualResult};
use super::metrics::DualMetrics;
use super::mode::{Mode, ModeTable};
use super::op::Target;
use crate::error::Error;
use crate::firestore::FirestoreConnection;
use crate::mapping::item::WriteItem;
use crate::mapping::transform::{Transformed, Transformer};
use crate::mapping::{CompiledMapping, Identity, Landing, MappingSet};
use crate::path::{documents_root, DocPath};
use crate::sink::guard::{self, GUARD_FIELD};

/// Documents per `BatchGetDocuments` call.
const FS_GET_CHUNK: usize = 300;

/// What every part of a store shares: both connections, the mapping, the modes, the
/// metrics and the settings that change at run time.
pub(crate) struct Core {
    fs: FirestoreConnection,
    /// `projects/P/databases/D`.
    database: String,
    /// `projects/P/databases/D/documents`.
    root: String,
    mongo: Database,
    mongo_uri: String,
    transformer: Transformer,
    /// The mappings of a transformer that has none (every collection by the defaults).
    empty_set: MappingSet,
    modes: ModeTable,
    metrics: DualMetrics,
    config: DualConfig,
    /// `f64` bits: changed by the settings document at run time.
    shadow_fraction: AtomicU64,
    shadow_permits: Arc<Semaphore>,
}

impl Core {
    /// Connects to Firestore (`FIRESTORE_EMULATOR_HOST` selects the emulator) and
    /// prepares the MongoDB client (which connects on first use).
    pub(crate) async fn connect(config: DualConfig) -> DualResult<Self> {
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
        Ok(Self {
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
            config,
        })
    }

    pub(crate) fn config(&self) -> &DualConfig {
        &self.config
    }

    pub(crate) fn metrics(&self) -> &DualMetrics {
        &self.metrics
    }

    pub(crate) fn modes(&self) -> &ModeTable {
        &self.modes
    }

    /// `projects/P/databases/D/documents`: the parent of top-level collections.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// The full Firestore name of a relative document path.
    pub(crate) fn document_name(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root)
    }

    pub(crate) fn mongo_client(&self) -> &Client {
        self.mongo.client()
    }

    pub(crate) fn collection<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.mongo.collection(name)
    }

    pub(crate) fn shadow_read_fraction(&self) -> f64 {
        f64::from_bits(self.shadow_fraction.load(Ordering::Relaxed))
    }

    pub(crate) fn set_shadow_read_fraction(&self, fraction: f64) {
        self.shadow_fraction
            .store(fraction.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    /// A slot for one shadow comparison, if one is free (comparisons are skipped, never
    /// queued, so a slow secondary cannot pile them up).
    pub(crate) fn try_shadow_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.shadow_permits.clone().try_acquire_owned().ok()
    }

    // ----- paths and the mapping ----------------------------------------------------

    pub(crate) fn mapping_set(&self) -> &MappingSet {
        self.transformer.mappings().unwrap_or(&self.empty_set)
    }

    pub(crate) fn mapping_of(&self, path: &DocPath<'_>) -> CompiledMapping {
        let set = self.mapping_set();
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
        let mode = self.modes.get(&pattern.to_string());
        let set = self.mapping_set();
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
            name: self.document_name(p.relative()),
            pattern: pattern.to_string(),
            collection: set.target_of(&pattern),
            id,
            mode,
        })
    }

    /// Transforms and stamps a primary document for MongoDB.
    pub(crate) fn transform(&self, doc: &Document) -> DualResult<Transformed> {
        let t = self
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

    // ----- Firestore ----------------------------------------------------------------

    /// One atomic Firestore commit of `writes`; the caller maps the status, since what
    /// a failure means depends on the writes.
    pub(crate) async fn fs_commit(&self, writes: Vec<Write>) -> Result<CommitResponse, Status> {
        let req = CommitRequest {
            database: self.database.clone(),
            writes,
            ..Default::default()
        };
        // A commit that gets no answer at all counts as unavailable (the caller's
        // mapping treats it as a transient failure: the write may or may not have
        // happened, which the outbox entry in the same commit makes safe to retry).
        match tokio::time::timeout(self.fs.answer_timeout(), self.fs.client().commit(req)).await {
            Ok(r) => Ok(r?.into_inner()),
            Err(_) => Err(Status::unavailable(format!(
                "no answer from the server within {}s",
                self.fs.answer_timeout().as_secs()
            ))),
        }
    }

    /// The documents a Firestore query under `parent` returns, in order.
    pub(crate) async fn fs_query(
        &self,
        parent: String,
        query: StructuredQuery,
    ) -> Result<Vec<Document>, Error> {
        self.fs.query_documents(&parent, query).await
    }

    /// How many documents a Firestore query under `parent` matches (an aggregation: no
    /// document is read).
    pub(crate) async fn fs_count(
        &self,
        parent: &str,
        query: StructuredQuery,
    ) -> Result<u64, Error> {
        self.fs.count(parent, query).await
    }

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
            let (found, chunk_time) = self.fs.get_documents(&self.database, chunk).await?;
            out.extend(found);
            read_time = read_time.min(chunk_time.as_ref().map_or(0, guard::timestamp_nanos));
        }
        if read_time == i64::MAX {
            read_time = 0;
        }
        Ok((out, read_time))
    }

    pub(crate) fn fs_error(&self, operation: &'static str, s: Status) -> Error {
        self.fs.status_error(operation, s)
    }

    // ----- MongoDB ------------------------------------------------------------------

    pub(crate) async fn mongo_get(&self, t: &Target) -> DualResult<Option<RawDocumentBuf>> {
        self.mongo
            .collection::<RawDocumentBuf>(&t.collection)
            .find_one(doc! {"_id": t.id.clone()})
            .await
            .map_err(|e| self.mongo_error("find", &t.collection, e).into())
    }

    pub(crate) fn mongo_error(
        &self,
        operation: &'static str,
        collection: &str,
        e: mongodb::error::Error,
    ) -> Error {
        Error::Mongo {
            operation,
            target: format!("{}.{collection}", self.mongo.name()),
            uri: self.mongo_uri.clone(),
            retryable: crate::mongo::is_retryable(&e),
            message: e.to_string(),
        }
    }

    /// MongoDB gave no answer to `operation` within `within` (retryable).
    pub(crate) fn mongo_unanswered(&self, operation: &'static str, within: Duration) -> Error {
        Error::Mongo {
            operation,
            target: self.mongo.name().to_string(),
            uri: self.mongo_uri.clone(),
            message: format!("no answer within {within:?}"),
            retryable: true,
        }
    }

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
    pub(crate) fn prepare_secondary(
        &self,
        t: &Target,
        doc: Option<Document>,
    ) -> Option<(String, WriteItem)> {
        let doc = doc?;
        Some(
            match self
                .transformer
                .apply(&doc)
                .and_then(|tr| guard::stamp_transformed(tr, &doc, Some(GUARD_FIELD)))
            {
                Ok(tr) => (tr.collection, tr.item),
                Err(rejection) => {
                    tracing::warn!(path = %rejection.source_path, rule = rejection.rule, "dual write: the mapping refuses the document: {}", rejection.reason);
                    self.metrics
                        .dead_letters
                        .with_label_values(&[&t.pattern, rejection.rule])
                        .inc();
                    (
                        self.config.dead_letter_collection.clone(),
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
            .mongo
            .run_raw_command(cmd)
            .await
            .map_err(|e| self.mongo_error("guarded upsert", collection, e))?;
        self.check_write_reply(collection, &reply, "guarded upsert")
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
            .mongo
            .run_command(cmd)
            .await
            .map_err(|e| self.mongo_error("guarded delete", &t.collection, e))?;
        self.check_write_reply(&t.collection, &reply, "guarded delete")
    }

    /// A write command's reply carries its write errors instead of failing: turn the
    /// first into an error.
    fn check_write_reply(
        &self,
        collection: &str,
        reply: &mongodb::bson::Document,
        operation: &'static str,
    ) -> DualResult<()> {
        let err = |message: String, retryable: bool| {
            DualError::Io(Error::Mongo {
                operation,
                target: format!("{}.{collection}", self.mongo.name()),
                uri: self.mongo_uri.clone(),
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
                // 11000 on `_id`: two upserts of one new `_id` raced; the replay
                // decides. On another unique index the document clashes for good.
                let race = code == i64::from(crate::mongo::DUPLICATE_KEY)
                    && crate::mongo::duplicate_key_on_id(e);
                return Err(err(
                    format!("code {code}: {}", e.get_str("errmsg").unwrap_or("")),
                    race,
                ));
            }
        }
        Ok(())
    }
}
