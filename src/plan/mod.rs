//! `fireshift plan`: looks at a Firestore database before a migration. It finds the
//! collection patterns (root collections and subcollections at any depth), counts their
//! documents, samples each one to infer field types with frequencies and conflicts,
//! estimates the Firestore reads that `migrate` and `verify` will be billed, and writes a
//! skeleton mapping per pattern (valid for `fireshift check`) plus a report in Markdown
//! and JSON. docs/plan.md is the reference.
//!
//! * [`query`] bounded Firestore calls (list collection ids, limited queries, counts),
//!   with what each is billed.
//! * [`discover`] finds patterns and counts them: from samples (bounded by `--sample`) or
//!   from one full scan (`--full-scan`).
//! * [`infer`] pure type inference over sampled documents.
//! * [`suggest`] pure cast/ref suggestions from the inferred statistics.
//! * `names` the target and file name proposed for each pattern.
//! * [`skeleton`] pure skeleton mapping files.
//! * [`report`] the JSON report (a stable schema) and its Markdown rendering.
//! * [`forecast`] pure: the wall time and read cost of `migrate` (N shards, rate limits)
//!   and `verify` from the document count and an assumed throughput per shard.

pub mod discover;
pub mod forecast;
pub mod infer;
mod names;
pub mod query;
pub mod report;
pub mod skeleton;
pub mod suggest;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::path::CollectionPattern;
use infer::PatternStats;
use query::UsageSnapshot;

/// How a pattern's document count was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CountMethod {
    /// Counted while streaming every document (`--full-scan`): exact.
    FullScan,
    /// An aggregation count of the root collection itself: exact.
    Collection,
    /// An aggregation count of the collection group (every collection with this id),
    /// which only this discovered pattern uses: exact unless an undiscovered pattern
    /// shares the id.
    Group,
    /// An aggregation count of the collection group within the `__name__` range of one
    /// root collection, which only this discovered pattern uses there.
    GroupRange,
    /// Several discovered patterns share the id within one root collection: the count
    /// is split in proportion to a sample of the group in `__name__` order. An estimate.
    Estimated,
}

impl CountMethod {
    pub fn is_exact(self) -> bool {
        !matches!(self, CountMethod::Estimated)
    }
}

/// How a pattern was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// Listed by `ListCollectionIds` at the database root.
    Root,
    /// Listed by `ListCollectionIds` under a sampled parent document.
    ListCollectionIds,
    /// Seen in a probe of a root collection's `__name__` range (the kindless query),
    /// e.g. a subcollection under parent documents that do not exist.
    Probe,
    /// Seen while streaming every document.
    FullScan,
}

/// Everything `plan` learnt about one collection pattern.
#[derive(Debug, Clone)]
pub struct PatternPlan {
    pub pattern: CollectionPattern,
    pub discovered_by: Discovery,
    pub documents: u64,
    pub count_method: CountMethod,
    pub stats: PatternStats,
}

/// The outcome of discovery, before rendering.
#[derive(Debug, Clone)]
pub struct Plan {
    pub project: String,
    pub database_id: String,
    pub endpoint: String,
    pub sample: usize,
    pub full_scan: bool,
    pub patterns: BTreeMap<CollectionPattern, PatternPlan>,
    pub usage: UsageSnapshot,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// Upper bound of `--sample`: a sample is held per pattern while it is analysed.
pub const MAX_SAMPLE: usize = 100_000;
