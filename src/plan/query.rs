//! The Firestore calls `plan` needs beyond [`FirestoreSource`]'s migration stream, built
//! on its raw gRPC client and its retry policy: `ListCollectionIds` under any document,
//! bounded queries (one collection, one collection group, a `__name__` range) and
//! aggregation counts of any query. Every call is bounded by a `limit` or is a count, so
//! what `plan` reads stays proportional to the sample size, and each one is counted
//! (with what it is billed) in [`Usage`].

use std::sync::atomic::{AtomicU64, Ordering};

use gcloud_sdk::google::firestore::v1::{Document, StructuredQuery};

use crate::error::Result;
use crate::source::FirestoreSource;

/// Index entries covered by one billed read of an aggregation count.
pub const COUNT_ENTRIES_PER_READ: u64 = 1000;

/// Reads billed for a count over `n` index entries: 1 per started 1000, at least 1.
pub fn count_reads(n: u64) -> u64 {
    n.div_ceil(COUNT_ENTRIES_PER_READ).max(1)
}

/// Reads billed for a query that returned `n` documents: one per document, and one for
/// a query that returned none.
pub fn query_reads(n: u64) -> u64 {
    n.max(1)
}

/// What one `plan` run asked of Firestore, and what that is billed in reads.
#[derive(Debug, Default)]
pub struct Usage {
    pub list_collection_ids: AtomicU64,
    pub queries: AtomicU64,
    pub documents_read: AtomicU64,
    pub counts: AtomicU64,
    pub billed_reads: AtomicU64,
}

impl Usage {
    fn add(&self, counter: &AtomicU64, billed: u64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.billed_reads.fetch_add(billed, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> UsageSnapshot {
        UsageSnapshot {
            list_collection_ids_calls: self.list_collection_ids.load(Ordering::Relaxed),
            queries: self.queries.load(Ordering::Relaxed),
            documents_read: self.documents_read.load(Ordering::Relaxed),
            count_aggregations: self.counts.load(Ordering::Relaxed),
            billed_reads: self.billed_reads.load(Ordering::Relaxed),
        }
    }
}

/// [`Usage`] as plain numbers, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageSnapshot {
    pub list_collection_ids_calls: u64,
    pub queries: u64,
    pub documents_read: u64,
    pub count_aggregations: u64,
    /// What the calls above are billed, in document reads: one per document returned
    /// (one for an empty query), one per started 1000 index entries of a count, one per
    /// `ListCollectionIds` page.
    pub billed_reads: u64,
}

/// Bounded reads of one database for `plan`.
pub struct Reader<'a> {
    source: &'a FirestoreSource,
    pub usage: Usage,
    /// Billed reads this run may spend; a call that could go past it is not made.
    budget: Option<u64>,
}

impl<'a> Reader<'a> {
    pub fn new(source: &'a FirestoreSource, budget: Option<u64>) -> Self {
        Self {
            source,
            usage: Usage::default(),
            budget,
        }
    }

    /// Fails before a call that may bill `next` more reads past the budget. A count's
    /// bill is known only after it ran (one read per 1000 entries): it is checked for its
    /// minimum of 1, so a count may pass the budget by what it covers / 1000.
    pub fn within_budget(&self, next: u64) -> Result<()> {
        let billed = self.usage.billed_reads.load(Ordering::Relaxed);
        match self.budget {
            Some(budget) if billed + next > budget => Err(crate::error::Error::ReadBudget {
                budget,
                billed,
                next,
            }),
            _ => Ok(()),
        }
    }

    pub fn source(&self) -> &FirestoreSource {
        self.source
    }

    /// `projects/P/databases/D/documents`.
    pub fn root(&self) -> &str {
        self.source.root()
    }

    /// The ids of the collections directly under `parent` (the database root or a full
    /// document name; the document need not exist).
    pub async fn collection_ids(&self, parent: &str) -> Result<Vec<String>> {
        self.within_budget(1)?;
        let (ids, pages) = self.source.collection_ids(parent).await?;
        // One call and one billed read per page.
        for _ in 0..pages {
            self.usage.add(&self.usage.list_collection_ids, 1);
        }
        Ok(ids)
    }

    /// Runs `query` under `parent` and collects its documents. The query must carry a
    /// limit: this is for samples, never for whole collections.
    pub async fn documents(&self, parent: &str, query: StructuredQuery) -> Result<Vec<Document>> {
        debug_assert!(query.limit.is_some(), "plan queries are bounded");
        self.within_budget(query.limit.map_or(1, |l| l.max(1) as u64))?;
        let docs = self
            .source
            .config()
            .retry
            .run(
                || format!("sample documents under {parent}"),
                || {
                    self.source
                        .connection()
                        .query_documents(parent, query.clone())
                },
            )
            .await?;
        self.usage
            .add(&self.usage.queries, query_reads(docs.len() as u64));
        self.usage
            .documents_read
            .fetch_add(docs.len() as u64, Ordering::Relaxed);
        Ok(docs)
    }

    /// Counts the documents `query` matches under `parent` (an aggregation: no document
    /// is read).
    pub async fn count(&self, parent: &str, query: StructuredQuery) -> Result<u64> {
        self.within_budget(1)?;
        let n = self.source.count_under(parent, query).await?;
        self.usage.add(&self.usage.counts, count_reads(n));
        Ok(n)
    }
}
