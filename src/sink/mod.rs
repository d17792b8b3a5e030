//! The MongoDB sink: idempotent, unordered bulk upserts keyed by `_id`.
//!
//! Contract: **at-least-once, idempotent.** Every document is written as a whole-document
//! replacement with `upsert: true` filtered on its `_id`, so replaying a batch (after a
//! retry, a crash or a rerun) leaves the target exactly as one write would have. Batches
//! are bounded by document count and by bytes (one `update` command must stay under the
//! 16 MiB BSON limit); how many are in flight is bounded by the caller (the pipeline).
//! A transient failure retries the whole batch with backoff and jitter; a document the
//! server refuses for good is returned as a [`DocFailure`] with its source path, never
//! dropped silently.
//!
//! The raw `update` command is used rather than the 8.0-only `bulkWrite` command so that
//! the same code runs against every MongoDB version an operator may have.

pub mod dead_letter;
pub mod delete;
pub mod guard;
pub mod holder;
pub mod typed_json;

use mongodb::bson::{doc, rawdoc, Bson, Document, RawArrayBuf, RawBson, RawDocumentBuf};
use mongodb::Database;

use crate::error::{Error, Result};
use crate::mapping::item::{WriteItem, WriteKind};
use crate::mongo::MongoEndpoint;
use crate::retry::RetryPolicy;

/// MongoDB's limit on one BSON document (and on one command, plus 16 KiB).
pub const MAX_BSON_BYTES: usize = 16 * 1024 * 1024;
/// Room kept for the command envelope and per-statement `{q, u, upsert}` wrappers.
const COMMAND_OVERHEAD: usize = 64 * 1024;
/// How long the first connection may be retried before the command stops.
const FIRST_CONNECT: std::time::Duration = std::time::Duration::from_secs(10);
use crate::mongo::ANSWER_TIMEOUT;

/// A command the server took and never answered (retryable).
fn no_answer(operation: &'static str, target: &str, uri: &str) -> Error {
    Error::Mongo {
        operation,
        target: target.to_string(),
        uri: uri.to_string(),
        message: format!("no answer within {}s", ANSWER_TIMEOUT.as_secs()),
        retryable: true,
    }
}

/// The most bytes one write batch may hold: one command stays under the BSON limit.
pub const MAX_BATCH_BYTES: usize = MAX_BSON_BYTES - COMMAND_OVERHEAD;
/// Per-statement wrapper bytes beyond the document and its `_id` (keys, types, lengths).
const STATEMENT_OVERHEAD: usize = 48;

/// Sink tuning; the defaults suit documents of a few KiB.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub max_batch_docs: usize,
    pub max_batch_bytes: usize,
    pub retry: RetryPolicy,
    /// When set, documents carrying an update time in this field (stamped by the
    /// pipeline) are written with the update-time guard of [`crate::sink::guard`]: a
    /// stored document with a newer time is kept. For backfills during dual writes.
    pub guard_field: Option<String>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            max_batch_docs: 1000,
            max_batch_bytes: 8 * 1024 * 1024,
            retry: RetryPolicy::default(),
            guard_field: None,
        }
    }
}

impl SinkConfig {
    /// Checked before any I/O.
    pub fn validate(&self) -> Result<()> {
        if self.max_batch_docs == 0 || self.max_batch_docs > 100_000 {
            return Err(Error::Config(format!(
                "batch size {} must be between 1 and 100000 (the server's maxWriteBatchSize)",
                self.max_batch_docs
            )));
        }
        if self.max_batch_bytes < 1024 || self.max_batch_bytes > MAX_BSON_BYTES - COMMAND_OVERHEAD {
            return Err(Error::Config(format!(
                "batch bytes {} must be between 1 KiB and {} (16 MiB less the command envelope)",
                self.max_batch_bytes,
                MAX_BSON_BYTES - COMMAND_OVERHEAD
            )));
        }
        Ok(())
    }
}

/// Marker in the server error a full embedded array provokes (see [`WriteKind::Embed`]).
const EMBED_LIMIT_MARKER: &str = "fireshift-embed-limit";

// How an item becomes a statement of the `update` command: the sink's business, so the
// impl lives here although the type is the mapping's output.
impl WriteItem {
    /// Bytes this item adds to an `update` command.
    pub fn command_bytes(&self) -> usize {
        // `_id` appears in the filter and in the document.
        let wrapper = match &self.kind {
            WriteKind::Replace => 0,
            WriteKind::ReplaceKeeping { fields } => {
                96 + fields.iter().map(|f| 2 * f.len() + 48).sum::<usize>()
            }
            WriteKind::Embed { field, .. } => 512 + 3 * field.len() + id_len(&self.id),
        };
        self.doc.as_bytes().len() + 2 * id_len(&self.id) + STATEMENT_OVERHEAD + wrapper
    }

    /// The document a replacing write leaves, as an aggregation expression: the new
    /// state as a `$literal`, merged with the stored arrays a `ReplaceKeeping` keeps
    /// (`[]` when absent). `None` for an embed, which changes one array of another
    /// document.
    pub fn replacement(&self) -> Option<RawDocumentBuf> {
        let literal = rawdoc! { "$literal": self.doc.clone() };
        match &self.kind {
            WriteKind::Replace => Some(literal),
            WriteKind::ReplaceKeeping { fields } => {
                let mut kept = RawDocumentBuf::new();
                for f in fields {
                    let mut if_null = RawArrayBuf::new();
                    if_null.push(format!("${f}"));
                    if_null.push(RawArrayBuf::new());
                    kept.append(f.as_str(), rawdoc! { "$ifNull": if_null });
                }
                let mut merge = RawArrayBuf::new();
                merge.push(literal);
                merge.push(kept);
                Some(rawdoc! { "$mergeObjects": merge })
            }
            WriteKind::Embed { .. } => None,
        }
    }

    /// For [`WriteKind::Embed`]: the new value of the parent's array `field` (this
    /// element in place of any with its `_id`, sorted, refused past `max`).
    pub(crate) fn embed_value(&self, field: &str, max: u32) -> RawDocumentBuf {
        let literal = || rawdoc! { "$literal": self.doc.clone() };
        let child_id = self.element_id();
        let mut if_null = RawArrayBuf::new();
        if_null.push(format!("${field}"));
        if_null.push(RawArrayBuf::new());
        let mut ne = RawArrayBuf::new();
        ne.push("$$this._id");
        ne.push(rawdoc! { "$literal": child_id });
        let mut lt = RawArrayBuf::new();
        lt.push(rawdoc! { "$size": "$$kept" });
        lt.push(i64::from(max));
        let mut appended = RawArrayBuf::new();
        appended.push(literal());
        let mut concat = RawArrayBuf::new();
        concat.push("$$kept");
        concat.push(appended);
        // Fails the statement on purpose (a conversion error whose message holds
        // the marker); the input depends on the document, so no server can fold
        // it away as a constant.
        let mut overflow_text = RawArrayBuf::new();
        overflow_text.push(format!("{EMBED_LIMIT_MARKER} "));
        overflow_text.push(rawdoc! { "$toString": { "$size": "$$kept" } });
        let mut cond = RawArrayBuf::new();
        cond.push(rawdoc! { "$lt": lt });
        // Sorted by `_id`, so the array is the same whatever order the children
        // were written in (concurrent batches, reruns): `$sortArray`, MongoDB 5.2+.
        cond.push(rawdoc! { "$sortArray": { "input": { "$concatArrays": concat }, "sortBy": { "_id": 1 } } });
        cond.push(rawdoc! { "$toInt": { "$concat": overflow_text } });
        rawdoc! {
            "$let": {
                "vars": { "kept": { "$filter": {
                    "input": { "$ifNull": if_null },
                    "cond": { "$ne": ne },
                } } },
                "in": { "$cond": cond },
            }
        }
    }

    /// The `_id` of an embedded element (its document's own).
    pub(crate) fn element_id(&self) -> RawBson {
        self.doc
            .get("_id")
            .ok()
            .flatten()
            .map(|v| v.to_raw_bson())
            .unwrap_or(RawBson::Null)
    }

    /// The update statement's `u`: a replacement document or an update pipeline.
    pub fn update(&self) -> RawBson {
        let mut stages = RawArrayBuf::new();
        match &self.kind {
            WriteKind::Replace if !self.literal => return RawBson::Document(self.doc.clone()),
            WriteKind::Replace | WriteKind::ReplaceKeeping { .. } => {
                let new_doc = self.replacement().expect("a replacing write");
                stages.push(rawdoc! { "$replaceWith": new_doc });
            }
            WriteKind::Embed { field, max } => {
                let mut set = RawDocumentBuf::new();
                set.append(field.as_str(), self.embed_value(field, *max));
                stages.push(rawdoc! { "$set": set });
            }
        }
        RawBson::Array(stages)
    }
}

fn id_len(id: &Bson) -> usize {
    match id {
        Bson::String(s) => s.len() + 5,
        Bson::ObjectId(_) => 12,
        _ => 32,
    }
}

/// Documents bound for one collection, within the configured bounds.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub collection: String,
    pub items: Vec<WriteItem>,
    pub bytes: usize,
}

impl Batch {
    pub fn new(collection: impl Into<String>) -> Self {
        Self {
            collection: collection.into(),
            items: Vec::new(),
            bytes: 0,
        }
    }

    pub fn push(&mut self, item: WriteItem) {
        self.bytes += item.command_bytes();
        self.items.push(item);
    }

    /// Whether `item` would push the batch past its bounds.
    pub fn would_overflow(&self, item: &WriteItem, config: &SinkConfig) -> bool {
        !self.items.is_empty()
            && (self.items.len() >= config.max_batch_docs
                || self.bytes + item.command_bytes() > config.max_batch_bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A document the server refused for good.
#[derive(Debug, Clone, PartialEq)]
pub struct DocFailure {
    pub source_path: String,
    pub collection: String,
    pub code: i32,
    pub message: String,
    /// The dead-letter rule: `sink` (the server refused the document) or `embed-limit`
    /// (an embedded array was full, see [`WriteKind::Embed`]).
    pub rule: &'static str,
}

impl DocFailure {
    /// The refusal as a dead-letter reason for the document at `source_path` (a
    /// failure names the batch item's path; embedded writes name the parent's).
    pub fn rejection(&self, source_path: &str) -> crate::mapping::outcome::Rejection {
        crate::mapping::outcome::Rejection {
            source_path: source_path.to_string(),
            pattern: crate::path::DocPath::parse(source_path)
                .ok()
                .map(|p| p.pattern()),
            rule: self.rule,
            field: None,
            reason: match self.rule {
                // The embed-limit message already says what happened and how to fix it.
                "sink" => format!("server error {}: {}", self.code, self.message),
                _ => self.message.clone(),
            },
        }
    }
}

/// What happened to a batch.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub written: usize,
    pub failures: Vec<DocFailure>,
    /// Retryable errors the write rode out (throttling, write conflicts, time limits,
    /// timeouts), and the first one's message: the server pushing back.
    pub retries: u32,
    pub pushed_back: Option<String>,
}

/// Where the pipeline writes batches. Contract: `write` is idempotent (a batch may be
/// written again after a crash or a retry), returns per-document failures for
/// documents refused for good, and `Err` only when the whole batch could not be written
/// (then nothing of it may be assumed written). [`MongoSink`] is the real one; tests
/// use in-memory ones.
pub trait Sink: Clone + Send + Sync + 'static {
    /// Batch bounds and the update-time guard.
    fn config(&self) -> &SinkConfig;
    /// Writes one batch.
    fn write(&self, batch: &Batch)
        -> impl std::future::Future<Output = Result<BatchResult>> + Send;
}

impl Sink for MongoSink {
    fn config(&self) -> &SinkConfig {
        MongoSink::config(self)
    }

    async fn write(&self, batch: &Batch) -> Result<BatchResult> {
        MongoSink::write(self, batch).await
    }
}

/// Writes to one MongoDB database.
#[derive(Clone)]
pub struct MongoSink {
    db: Database,
    uri: String,
    config: SinkConfig,
}

impl MongoSink {
    /// Connects and checks the server answers (a `ping`, retried up to the deadline), so
    /// an unreachable server is reported before any document is read.
    pub async fn connect(
        endpoint: &MongoEndpoint,
        database: &str,
        config: SinkConfig,
    ) -> Result<Self> {
        config.validate()?;
        let (mut options, redacted) = crate::mongo::client_options(
            &endpoint.uri,
            endpoint.ca_file.as_deref(),
            "fireshift",
            database,
        )
        .await?;
        let mongo_err = |e: mongodb::error::Error| Error::Mongo {
            operation: "connect",
            target: database.to_string(),
            uri: redacted.clone(),
            message: crate::mongo::describe(&e),
            retryable: crate::mongo::is_retryable(&e),
        };
        // Every write of the copy (documents, checkpoints, leases, claims) is idempotent
        // and retried by fireshift's own loop with a deadline, so the driver's one
        // automatic retry adds nothing. (Turning it off was tried against a rare stall of
        // a checkpoint save on the test server; the stall was seen again without it.)
        options.retry_writes = Some(false);
        // The retry loop below owns the waiting; a short selection timeout per attempt
        // keeps each failure quick to report.
        options
            .server_selection_timeout
            .get_or_insert(std::time::Duration::from_secs(5));
        let client = crate::mongo::client(options, &redacted, database)?;
        let db = client.database(database);
        // A first connection that cannot be made fails within seconds: the deadline of
        // mid-run outages (`--retry-timeout`) is for servers that were there.
        let first = RetryPolicy {
            deadline: config.retry.deadline.min(FIRST_CONNECT),
            ..config.retry
        };
        let pinged = first
            .run(
                || format!("reach MongoDB at {redacted}"),
                || async {
                    match tokio::time::timeout(ANSWER_TIMEOUT, db.run_command(doc! {"ping": 1}))
                        .await
                    {
                        Ok(r) => r.map_err(mongo_err),
                        Err(_) => Err(no_answer("connect", database, &redacted)),
                    }
                },
            )
            .await;
        if let Err(e) = pinged {
            crate::mongo::shutdown(client).await;
            return Err(e);
        }
        Ok(Self {
            db,
            uri: redacted,
            config,
        })
    }

    /// Shuts the client down (see [`crate::mongo::shutdown`]): call it when the sink's
    /// work is done, on every path, before the runtime ends.
    pub async fn shutdown(self) {
        crate::mongo::shutdown(self.db.client().clone()).await;
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn config(&self) -> &SinkConfig {
        &self.config
    }

    /// Redacted connection string, safe to print.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Writes a batch; retries transient failures (whole batch, or the documents that
    /// failed transiently) until the retry deadline. Returns per-document failures for
    /// documents the server refused for good; `Err` only when the server stayed
    /// unreachable or refused the whole command for a non-transient reason.
    pub async fn write(&self, batch: &Batch) -> Result<BatchResult> {
        let mut result = BatchResult::default();
        let mut pending: Vec<&WriteItem> = Vec::with_capacity(batch.items.len());
        for item in &batch.items {
            if item.command_bytes() + COMMAND_OVERHEAD > MAX_BSON_BYTES {
                result.failures.push(DocFailure {
                    source_path: item.source_path.clone(),
                    collection: batch.collection.clone(),
                    code: 10334,
                    message: format!(
                        "document is {} bytes after conversion; MongoDB stores at most {MAX_BSON_BYTES}",
                        item.doc.as_bytes().len()
                    ),
                    rule: "sink",
                });
            } else {
                pending.push(item);
            }
        }
        let mut backoff = self.config.retry.backoff();
        while !pending.is_empty() {
            match self.update_command(&batch.collection, &pending).await {
                Ok(reply) => {
                    let (written, retry, failed) =
                        self.split_reply(&batch.collection, &pending, &reply)?;
                    result.written += written;
                    result.failures.extend(failed);
                    if retry.is_empty() {
                        break;
                    }
                    let sample = retry[0].1.clone();
                    result.retries += 1;
                    result.pushed_back.get_or_insert_with(|| sample.clone());
                    pending = retry.into_iter().map(|(item, _)| item).collect();
                    backoff
                        .wait(
                            Error::Mongo {
                                operation: "upsert",
                                target: self.target(&batch.collection),
                                uri: self.uri.clone(),
                                message: sample,
                                retryable: true,
                            },
                            &format!("write {} documents to {}", pending.len(), batch.collection),
                        )
                        .await?;
                }
                Err(e) => {
                    let what = format!("write {} documents to {}", pending.len(), batch.collection);
                    result.retries += 1;
                    result.pushed_back.get_or_insert_with(|| e.to_string());
                    backoff.wait(e, &what).await?;
                }
            }
        }
        Ok(result)
    }

    fn target(&self, collection: &str) -> String {
        format!("{}.{collection}", self.db.name())
    }

    async fn update_command(&self, collection: &str, items: &[&WriteItem]) -> Result<Document> {
        let mut updates = RawArrayBuf::new();
        for item in items {
            let mut q = RawDocumentBuf::new();
            q.append(
                "_id",
                RawBson::try_from(item.id.clone()).unwrap_or(RawBson::Null),
            );
            let u = match &self.config.guard_field {
                Some(f) => {
                    crate::sink::guard::guarded_update(item, f).unwrap_or_else(|| item.update())
                }
                None => item.update(),
            };
            updates.push(rawdoc! { "q": q, "u": u, "upsert": true });
        }
        let mut cmd = RawDocumentBuf::new();
        cmd.append("update", collection);
        cmd.append("updates", updates);
        cmd.append("ordered", false);
        // A checkpoint moves past these documents once this command is acknowledged, so
        // the acknowledgement must mean durable: journaled, and on a majority of a
        // replica set. With w:1 a server crash can lose acknowledged writes (seen on the
        // test server: a batch vanished after kill -9 of the server).
        cmd.append("writeConcern", rawdoc! { "w": "majority", "j": true });
        // A server that took the command and never answers must not hold the run:
        // past the answer timeout the attempt fails (retryable; the write is idempotent).
        match tokio::time::timeout(ANSWER_TIMEOUT, self.db.run_raw_command(cmd)).await {
            Ok(r) => r.map_err(|e| Error::Mongo {
                operation: "upsert",
                target: self.target(collection),
                uri: self.uri.clone(),
                retryable: crate::mongo::is_retryable(&e),
                message: e.to_string(),
            }),
            Err(_) => Err(no_answer("upsert", &self.target(collection), &self.uri)),
        }
    }

    /// Splits an `update` reply into: documents written, documents to retry (with the
    /// server's message) and documents refused for good.
    #[allow(clippy::type_complexity)]
    fn split_reply<'a>(
        &self,
        collection: &str,
        items: &[&'a WriteItem],
        reply: &Document,
    ) -> Result<(usize, Vec<(&'a WriteItem, String)>, Vec<DocFailure>)> {
        if let Ok(wce) = reply.get_document("writeConcernError") {
            // The writes may or may not be durable: retry them all (idempotent).
            let msg = wce
                .get_str("errmsg")
                .unwrap_or("write concern error")
                .to_string();
            return Ok((
                0,
                items.iter().map(|i| (*i, msg.clone())).collect(),
                Vec::new(),
            ));
        }
        let mut retry = Vec::new();
        let mut failed = Vec::new();
        let mut errored = vec![false; items.len()];
        if let Ok(errors) = reply.get_array("writeErrors") {
            for e in errors {
                let Some(e) = e.as_document() else { continue };
                let index = bson_int(e.get("index")).unwrap_or(-1);
                let code = bson_int(e.get("code")).unwrap_or(0) as i32;
                let message = e.get_str("errmsg").unwrap_or("").to_string();
                let Some(item) = usize::try_from(index).ok().and_then(|i| items.get(i)) else {
                    return Err(Error::Mongo {
                        operation: "upsert",
                        target: self.target(collection),
                        uri: self.uri.clone(),
                        message: format!(
                            "server reported a write error at unknown index {index}: {message}"
                        ),
                        retryable: false,
                    });
                };
                errored[index as usize] = true;
                if code == crate::mongo::DUPLICATE_KEY && !crate::mongo::duplicate_key_on_id(e) {
                    failed.push(DocFailure {
                        source_path: item.source_path.clone(),
                        collection: collection.to_string(),
                        code,
                        message: format!(
                            "unique index: another document of {collection} holds the same key ({message})"
                        ),
                        rule: "unique",
                    });
                } else if crate::mongo::RETRYABLE_CODES.contains(&code) {
                    retry.push((*item, message));
                } else if let (WriteKind::Embed { field, max }, true) =
                    (&item.kind, message.contains(EMBED_LIMIT_MARKER))
                {
                    failed.push(DocFailure {
                        source_path: item.source_path.clone(),
                        collection: collection.to_string(),
                        code,
                        message: format!(
                            "embed-limit: array `{field}` of {collection} document {} already holds max = {max} other elements, \
                             so this child was not embedded (raise `max` in [embed] or land the subcollection in its own collection)",
                            item.id
                        ),
                        rule: "embed-limit",
                    });
                } else {
                    failed.push(DocFailure {
                        source_path: item.source_path.clone(),
                        collection: collection.to_string(),
                        code,
                        message,
                        rule: "sink",
                    });
                }
            }
        }
        let written = errored.iter().filter(|e| !**e).count();
        Ok((written, retry, failed))
    }
}

/// Servers reply with Int32 or Int64 (or Double) for counters and codes.
fn bson_int(v: Option<&Bson>) -> Option<i64> {
    match v? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) => Some(*d as i64),
        _ => None,
    }
}
