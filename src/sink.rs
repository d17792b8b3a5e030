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

use mongodb::bson::{doc, rawdoc, Bson, Document, RawArrayBuf, RawBson, RawDocumentBuf};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};

use crate::error::{Error, Result};
use crate::redact::redact_uri;
use crate::retry::RetryPolicy;

/// MongoDB's limit on one BSON document (and on one command, plus 16 KiB).
pub const MAX_BSON_BYTES: usize = 16 * 1024 * 1024;
/// Room kept for the command envelope and per-statement `{q, u, upsert}` wrappers.
const COMMAND_OVERHEAD: usize = 64 * 1024;
/// Per-statement wrapper bytes beyond the document and its `_id` (keys, types, lengths).
const STATEMENT_OVERHEAD: usize = 48;

/// Server error codes that describe a passing condition (a failover, a shutdown, a
/// concurrent upsert race on the same `_id`).
const RETRYABLE_CODES: &[i32] = &[
    6, 7, 89, 91, 189, 262, 9001, 10107, 11000, 11600, 11602, 13435, 13436, 64,
];

/// Sink tuning; the defaults suit documents of a few KiB.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub max_batch_docs: usize,
    pub max_batch_bytes: usize,
    pub retry: RetryPolicy,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            max_batch_docs: 1000,
            max_batch_bytes: 8 * 1024 * 1024,
            retry: RetryPolicy::default(),
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

/// One document to write, with the Firestore path it came from (for error reports).
#[derive(Debug, Clone)]
pub struct WriteItem {
    pub source_path: String,
    pub id: Bson,
    pub doc: RawDocumentBuf,
    /// The document has `$`-prefixed field names, which a replacement document may not
    /// hold: it is written with `[{$replaceWith: {$literal: doc}}]` instead, which stores
    /// it unchanged (MongoDB 4.2+).
    pub literal: bool,
}

impl WriteItem {
    /// Bytes this item adds to an `update` command.
    pub fn command_bytes(&self) -> usize {
        // `_id` appears in the filter and in the document.
        self.doc.as_bytes().len() + 2 * id_len(&self.id) + STATEMENT_OVERHEAD
    }
}

/// Whether any field name, at any depth, starts with `$`.
pub fn has_dollar_field(doc: &mongodb::bson::Document) -> bool {
    fn in_value(v: &Bson) -> bool {
        match v {
            Bson::Document(d) => has_dollar_field(d),
            Bson::Array(a) => a.iter().any(in_value),
            _ => false,
        }
    }
    doc.iter().any(|(k, v)| k.starts_with('$') || in_value(v))
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
}

/// What happened to a batch.
#[derive(Debug, Default)]
pub struct BatchResult {
    pub written: usize,
    pub failures: Vec<DocFailure>,
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
    pub async fn connect(uri: &str, database: &str, config: SinkConfig) -> Result<Self> {
        config.validate()?;
        let redacted = redact_uri(uri);
        let mongo_err = |e: mongodb::error::Error| Error::Mongo {
            operation: "connect",
            target: database.to_string(),
            uri: redacted.clone(),
            message: e.to_string(),
            retryable: is_retryable(&e),
        };
        let mut options = ClientOptions::parse(uri).await.map_err(|e| Error::Mongo {
            operation: "parse connection string",
            target: database.to_string(),
            uri: redacted.clone(),
            message: e.to_string(),
            retryable: false,
        })?;
        options.app_name.get_or_insert_with(|| "fireshift".into());
        // The retry loop below owns the waiting; a short selection timeout per attempt
        // keeps each failure quick to report.
        options
            .server_selection_timeout
            .get_or_insert(std::time::Duration::from_secs(5));
        let client = Client::with_options(options).map_err(mongo_err)?;
        let db = client.database(database);
        config
            .retry
            .run(
                || format!("reach MongoDB at {redacted}"),
                || async { db.run_command(doc! {"ping": 1}).await.map_err(mongo_err) },
            )
            .await?;
        Ok(Self {
            db,
            uri: redacted,
            config,
        })
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
            if item.literal {
                let mut stage = RawArrayBuf::new();
                stage.push(rawdoc! { "$replaceWith": { "$literal": item.doc.clone() } });
                updates.push(rawdoc! { "q": q, "u": stage, "upsert": true });
            } else {
                updates.push(rawdoc! { "q": q, "u": item.doc.clone(), "upsert": true });
            }
        }
        let mut cmd = RawDocumentBuf::new();
        cmd.append("update", collection);
        cmd.append("updates", updates);
        cmd.append("ordered", false);
        self.db
            .run_raw_command(cmd)
            .await
            .map_err(|e| Error::Mongo {
                operation: "upsert",
                target: self.target(collection),
                uri: self.uri.clone(),
                retryable: is_retryable(&e),
                message: e.to_string(),
            })
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
                if RETRYABLE_CODES.contains(&code) {
                    retry.push((*item, message));
                } else {
                    failed.push(DocFailure {
                        source_path: item.source_path.clone(),
                        collection: collection.to_string(),
                        code,
                        message,
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

/// Whether a driver error describes a passing condition: network faults, pool resets,
/// no reachable server, or a server error labelled or coded as transient.
pub fn is_retryable(e: &mongodb::error::Error) -> bool {
    if e.contains_label("RetryableWriteError") || e.contains_label("TransientTransactionError") {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. } => true,
        ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(_)) => true,
        _ => false,
    }
}
