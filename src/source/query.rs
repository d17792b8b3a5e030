//! The Firestore source: streams raw `google.firestore.v1.Document`s (lossless protobuf
//! values) over gRPC.
//!
//! One *kindless* all-descendants query (`from: [{allDescendants: true}]` with no
//! collection id, under the database root) returns every document at every depth —
//! subcollections under parents that do not exist included — in `__name__` order. That
//! makes the whole database one ordered, resumable stream: a failed or finished page is
//! continued with a `__name__` cursor, so a dropped connection costs nothing but a retry,
//! and the same cursor is what a checkpoint stores. Discovery by `ListCollectionIds`
//! per document costs a call per parent and cannot scale to millions of parents; it is
//! used only to list the root collections.

use std::collections::HashMap;

use gcloud_sdk::google::firestore::v1::{
    run_query_request, structured_query, value::ValueType, Cursor, Document,
    ListCollectionIdsRequest, RunQueryRequest, StructuredQuery, Value,
};
use gcloud_sdk::tonic::Code;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::firestore::{FirestoreConnection, FirestoreEndpoint};
use crate::path::documents_root;
use crate::retry::RetryPolicy;

/// The `__name__` field, by which documents are ordered and cursors are expressed.
const NAME_FIELD: &str = "__name__";

/// Prefix of the collections fireshift keeps for itself, in either database (the
/// dual-write outbox in Firestore; checkpoints, dead letters and verify state in
/// MongoDB): bookkeeping, not application data, so never migrated or verified.
pub use crate::own::PREFIX as OWN_COLLECTION_PREFIX;

/// Whether `name` (a full document name under `root`) lives in one of fireshift's own
/// root collections, at any depth.
pub fn is_own_document(root: &str, name: &str) -> bool {
    name.strip_prefix(root)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|relative| relative.starts_with(OWN_COLLECTION_PREFIX))
}

/// The id of a project's default Firestore database.
pub const DEFAULT_DATABASE_ID: &str = "(default)";

/// Where the source reads from.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub project: String,
    /// Firestore database id, `(default)` unless the project has several.
    pub database_id: String,
    /// Documents per `RunQuery` call. A bounded page keeps every call short (long
    /// server streams are cut by deadlines in production) and is the unit of resume.
    pub page_size: i32,
    pub retry: RetryPolicy,
    /// How long a call waits for the server's next answer (see
    /// [`FirestoreConnection::answer`]).
    pub answer_timeout: std::time::Duration,
    /// Which Firestore: endpoint URL and extra CA (default: Google's, or the emulator).
    pub endpoint: FirestoreEndpoint,
}

impl SourceConfig {
    pub fn new(project: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            database_id: DEFAULT_DATABASE_ID.to_string(),
            page_size: 10_000,
            retry: RetryPolicy::default(),
            answer_timeout: crate::firestore::DEFAULT_ANSWER_TIMEOUT,
            endpoint: FirestoreEndpoint::default(),
        }
    }
}

/// A range of document names in `__name__` order. It starts at `start_at` (inclusive;
/// `None` = the beginning) or, when set, after `start_after` (exclusive: a resume
/// cursor), and ends before `end_before` (exclusive; `None` = the end). Names are full
/// document names (`projects/…/documents/users/u1`); they need not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRange {
    pub start_at: Option<String>,
    pub start_after: Option<String>,
    pub end_before: Option<String>,
}

/// Reads one Firestore database.
#[derive(Clone)]
pub struct FirestoreSource {
    conn: FirestoreConnection,
    config: SourceConfig,
    /// `projects/P/databases/D/documents`.
    root: String,
}

impl FirestoreSource {
    /// Connects (see [`FirestoreConnection::connect`]): `FIRESTORE_EMULATOR_HOST`
    /// selects the emulator, otherwise the configured endpoint with Application Default
    /// Credentials.
    pub async fn connect(config: SourceConfig) -> Result<Self> {
        let conn =
            FirestoreConnection::connect(&config.project, &config.database_id, &config.endpoint)
                .await?
                .with_answer_timeout(config.answer_timeout);
        let root = documents_root(&config.project, &config.database_id);
        Ok(Self { conn, config, root })
    }

    pub fn config(&self) -> &SourceConfig {
        &self.config
    }

    /// The underlying connection, for writers such as the demo data generator.
    pub fn connection(&self) -> &FirestoreConnection {
        &self.conn
    }

    /// `projects/P/databases/D/documents`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Firestore's own clock: the read time of a one-document query on a collection
    /// that holds nothing (billed as one read). A follow starts from it, so a skew of
    /// this machine's clock cannot open a gap.
    pub async fn server_time(&self) -> Result<gcloud_sdk::prost_types::Timestamp> {
        let query = collection_query("_fireshift_clock", false, &KeyRange::default(), Some(1));
        self.config
            .retry
            .run(
                || "read Firestore's clock".to_string(),
                || async {
                    let req = gcloud_sdk::google::firestore::v1::RunQueryRequest {
                        parent: self.root.clone(),
                        query_type: Some(
                            gcloud_sdk::google::firestore::v1::run_query_request::QueryType::StructuredQuery(
                                query.clone(),
                            ),
                        ),
                        ..Default::default()
                    };
                    let mut client = self.conn.client();
                    let mut stream = self
                        .conn
                        .answer("RunQuery", client.run_query(req))
                        .await?
                        .into_inner();
                    let mut time = None;
                    while let Some(resp) = self.conn.answer("RunQuery", stream.message()).await? {
                        time = time.or(resp.read_time);
                    }
                    time.ok_or_else(|| Error::Internal("Firestore answered without a read time".into()))
                },
            )
            .await
    }

    /// The root collection ids (one `ListCollectionIds` call per page).
    pub async fn root_collections(&self) -> Result<Vec<String>> {
        self.collection_ids(&self.root).await.map(|(ids, _)| ids)
    }

    /// The ids of the collections directly under `parent` (the database root or a full
    /// document name; the document need not exist), and how many `ListCollectionIds`
    /// calls (pages) that took.
    pub async fn collection_ids(&self, parent: &str) -> Result<(Vec<String>, u64)> {
        let mut ids = Vec::new();
        let mut page_token = String::new();
        let mut pages = 0;
        loop {
            let req = ListCollectionIdsRequest {
                parent: parent.to_string(),
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            };
            let resp = self
                .config
                .retry
                .run(
                    || format!("list collections of {parent}"),
                    || async {
                        let mut client = self.conn.client();
                        self.conn
                            .answer("ListCollectionIds", client.list_collection_ids(req.clone()))
                            .await
                    },
                )
                .await?
                .into_inner();
            pages += 1;
            ids.extend(resp.collection_ids);
            if resp.next_page_token.is_empty() {
                return Ok((ids, pages));
            }
            page_token = resp.next_page_token;
        }
    }

    /// Counts the documents of the whole database (kindless all-descendants count), for
    /// progress ETA. Costs one read per 1000 documents in production.
    pub async fn count_all(&self) -> Result<u64> {
        self.count_range(&KeyRange::default()).await
    }

    /// Counts the documents of a key range (all depths).
    pub async fn count_range(&self, range: &KeyRange) -> Result<u64> {
        self.count(kindless_query(range, None)).await
    }

    /// Counts the documents of every collection with this id at any depth.
    pub async fn count_collection_group(&self, collection_id: &str) -> Result<u64> {
        let query = StructuredQuery {
            from: vec![structured_query::CollectionSelector {
                collection_id: collection_id.to_string(),
                all_descendants: true,
            }],
            ..Default::default()
        };
        self.count(query).await
    }

    async fn count(&self, query: StructuredQuery) -> Result<u64> {
        self.count_under(&self.root, query).await
    }

    /// Counts the documents `query` matches under `parent` (the database root or a full
    /// document name) with an aggregation: no document is read.
    pub async fn count_under(&self, parent: &str, query: StructuredQuery) -> Result<u64> {
        self.config
            .retry
            .run(
                || format!("count documents under {parent}"),
                || self.conn.count(parent, query.clone()),
            )
            .await
    }

    /// Streams every document of `range` in `__name__` order into a bounded channel of
    /// `capacity` documents. A full channel stops the reader (and gRPC flow control then
    /// stops the server), so a slow consumer slows the source instead of growing a queue.
    ///
    /// Transient failures resume after the last document delivered: nothing is skipped
    /// and nothing is delivered twice. A persistent failure (past the retry deadline) or
    /// a fatal one ends the stream with that error as its last item.
    pub fn stream(&self, range: KeyRange, capacity: usize) -> mpsc::Receiver<Result<Document>> {
        self.stream_as(range, capacity, |doc| doc)
    }

    /// [`Self::stream`], each document passed through `map` on the reader's task (one
    /// channel hop, whatever the item type).
    fn stream_as<T: Send + 'static>(
        &self,
        range: KeyRange,
        capacity: usize,
        map: fn(Document) -> T,
    ) -> mpsc::Receiver<Result<T>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.pump(range, &tx, map).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn pump<T>(
        &self,
        range: KeyRange,
        tx: &mpsc::Sender<Result<T>>,
        map: fn(Document) -> T,
    ) -> Result<()> {
        let mut after = range.start_after.clone();
        let mut backoff = self.config.retry.backoff();
        loop {
            let page = KeyRange {
                start_at: range.start_at.clone(),
                start_after: after.clone(),
                end_before: range.end_before.clone(),
            };
            let mut delivered = 0usize;
            // On failure the page is re-read from `after`, which already covers every
            // document sent before the failure: nothing skipped, nothing sent twice.
            match self
                .read_page(page, tx, map, &mut after, &mut delivered)
                .await
            {
                Ok(PageEnd::Full) => backoff.reset(),
                Ok(PageEnd::Exhausted | PageEnd::ConsumerGone) => return Ok(()),
                Err(e) => {
                    if delivered > 0 {
                        backoff.reset();
                    }
                    let what = format!(
                        "read {} after {}",
                        self.root,
                        after.as_deref().unwrap_or("the start")
                    );
                    backoff.wait(e, &what).await?;
                }
            }
        }
    }

    /// Reads one page of at most `page_size` documents, sending each and advancing
    /// `after`. Errors are mapped to the library's retryable/fatal classes.
    async fn read_page<T>(
        &self,
        range: KeyRange,
        tx: &mpsc::Sender<Result<T>>,
        map: fn(Document) -> T,
        after: &mut Option<String>,
        delivered: &mut usize,
    ) -> Result<PageEnd> {
        let req = RunQueryRequest {
            parent: self.root.clone(),
            query_type: Some(run_query_request::QueryType::StructuredQuery(
                kindless_query(&range, Some(self.config.page_size)),
            )),
            ..Default::default()
        };
        let mut stream = self
            .conn
            .answer("RunQuery", self.conn.client().run_query(req))
            .await?
            .into_inner();
        let mut in_page = 0i32;
        // Each message is awaited for at most the answer timeout; time spent waiting
        // for the consumer (`tx.send`, backpressure) does not count.
        while let Some(resp) = self.conn.answer("RunQuery", stream.message()).await? {
            if let Some(doc) = resp.document {
                *after = Some(doc.name.clone());
                in_page += 1;
                if is_own_document(&self.root, &doc.name) {
                    continue;
                }
                *delivered += 1;
                if tx.send(Ok(map(doc))).await.is_err() {
                    return Ok(PageEnd::ConsumerGone);
                }
            }
        }
        Ok(if in_page < self.config.page_size {
            PageEnd::Exhausted
        } else {
            PageEnd::Full
        })
    }

    /// Describes the endpoint for messages (never contains credentials).
    pub fn endpoint(&self) -> &str {
        self.conn.endpoint()
    }

    /// Reads documents by full name with `BatchGetDocuments`: `Some` when found, `None`
    /// when absent.
    pub async fn get_documents(
        &self,
        names: &[String],
    ) -> Result<HashMap<String, Option<Document>>> {
        let database = self.root.trim_end_matches("/documents");
        let (found, _) = self
            .config
            .retry
            .run(
                || format!("read back {} source documents", names.len()),
                || self.conn.get_documents(database, names),
            )
            .await?;
        Ok(found)
    }
}

impl super::Source for FirestoreSource {
    fn root(&self) -> &str {
        &self.root
    }

    fn endpoint(&self) -> &str {
        self.conn.endpoint()
    }

    async fn split(&self, n: usize) -> Result<Vec<super::Range>> {
        Ok(super::ranges::split(self, n)
            .await?
            .into_iter()
            .map(|r| super::Range::Keys {
                start_at: r.start_at,
                end_before: r.end_before,
            })
            .collect())
    }

    async fn estimate(&self) -> Result<Option<u64>> {
        // An aggregation count: one read per 1000 documents in production.
        self.count_all().await.map(Some)
    }

    async fn root_collections(&self) -> Result<Vec<String>> {
        FirestoreSource::root_collections(self).await
    }

    fn stream(
        &self,
        range: &super::Range,
        after: Option<super::Position>,
        capacity: usize,
    ) -> mpsc::Receiver<Result<(super::Change, super::Position)>> {
        let (start_at, end_before) = match range {
            super::Range::Keys {
                start_at,
                end_before,
            } => (start_at, end_before),
            super::Range::File { file } => {
                // A job planned over an export, run against a live database: the job
                // binds its source, so this is a bug, not an operator's mistake.
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(Err(crate::error::Error::Internal(format!(
                    "the query source was given an export file range ({file})"
                ))));
                return rx;
            }
        };
        let keys = KeyRange {
            start_at: start_at.clone(),
            start_after: after.map(|p| p.name().to_string()),
            end_before: end_before.clone(),
        };
        self.stream_as(keys, capacity, |doc| {
            let position = super::Position::after(doc.name.clone());
            (super::Change::upsert(doc), position)
        })
    }

    async fn read_back(&self, names: &[String]) -> Result<HashMap<String, Option<Document>>> {
        self.get_documents(names).await
    }
}

enum PageEnd {
    /// Fewer documents than a page: the range is done.
    Exhausted,
    /// A full page: continue after its last document.
    Full,
    /// The receiver was dropped (shutdown).
    ConsumerGone,
}

fn reference(name: &str) -> Value {
    Value {
        value_type: Some(ValueType::ReferenceValue(name.to_string())),
    }
}

/// The kindless all-descendants query (every document at every depth) within `range`,
/// in `__name__` order, at most `limit` documents.
pub fn kindless_query(range: &KeyRange, limit: Option<i32>) -> StructuredQuery {
    collection_query("", true, range, limit)
}

/// A query over the collection `collection_id` (directly under the query's parent, or at
/// every depth with `group`; the empty id is every collection), ordered by `__name__`,
/// within `range`, at most `limit` documents.
pub fn collection_query(
    collection_id: &str,
    group: bool,
    range: &KeyRange,
    limit: Option<i32>,
) -> StructuredQuery {
    StructuredQuery {
        from: vec![structured_query::CollectionSelector {
            collection_id: collection_id.to_string(),
            all_descendants: group,
        }],
        order_by: vec![structured_query::Order {
            field: Some(structured_query::FieldReference {
                field_path: NAME_FIELD.into(),
            }),
            direction: structured_query::Direction::Ascending as i32,
        }],
        // `before: false` on a start cursor means "start after these values"; a resume
        // cursor (start_after) is always past the range's own start.
        start_at: match (&range.start_after, &range.start_at) {
            (Some(n), _) => Some(Cursor {
                values: vec![reference(n)],
                before: false,
            }),
            (None, Some(n)) => Some(Cursor {
                values: vec![reference(n)],
                before: true,
            }),
            (None, None) => None,
        },
        // `before: true` on an end cursor means "stop before these values".
        end_at: range.end_before.as_deref().map(|n| Cursor {
            values: vec![reference(n)],
            before: true,
        }),
        limit,
        ..Default::default()
    }
}

/// Used by the CLI to tell an unreachable endpoint from other failures.
pub fn is_unreachable(err: &Error) -> bool {
    match err {
        Error::RetriesExhausted { last, .. } => is_unreachable(last),
        Error::FirestoreConnect { .. } => true,
        Error::Firestore { code, .. } => matches!(code, Code::Unavailable | Code::Unknown),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_documents_are_those_under_a_fireshift_root_collection() {
        let root = "projects/p/databases/(default)/documents";
        assert!(is_own_document(
            root,
            &format!("{root}/_fireshift_outbox/e1")
        ));
        assert!(is_own_document(
            root,
            &format!("{root}/_fireshift_x/a/sub/b")
        ));
        assert!(!is_own_document(root, &format!("{root}/users/u1")));
        // Only the root collection counts, not a subcollection or a document id.
        assert!(!is_own_document(
            root,
            &format!("{root}/users/u1/_fireshift/x")
        ));
        assert!(!is_own_document(root, &format!("{root}/users/_fireshift1")));
        // Another database's names are not ours to judge.
        assert!(!is_own_document(
            root,
            "projects/p/databases/other/documents/_fireshift_outbox/e1"
        ));
    }
}
