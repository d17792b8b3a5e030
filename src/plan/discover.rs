//! Finding the collection patterns of a database and counting their documents.
//!
//! **Sampled** ([`sampled`], the default) reads a bounded amount whatever the size of the
//! database:
//!
//! 1. `ListCollectionIds` at the root lists the root collections (also those holding only
//!    subcollections of parent documents that do not exist).
//! 2. Each root collection's `__name__` range is *probed* with the kindless
//!    all-descendants query in 4 windows spread over the auto-id key space, at most
//!    `sample` documents in all: the names of what comes back reveal subcollections at
//!    any depth, including those under parents that do not exist.
//! 3. Patterns are processed by depth. A pattern is sampled by querying its collection
//!    under the parent documents known to have it (at most `sample` documents, spread
//!    over the parents); `ListCollectionIds` under each sampled document finds its
//!    subcollections, which become patterns of the next depth.
//! 4. Counts are aggregation counts (no document read): one per collection group id; when
//!    several discovered patterns share an id, the root collection is counted on its own
//!    and the others per root collection's `__name__` range; patterns still sharing a
//!    range split its count in proportion to a sample of the group (an estimate).
//!
//! What it can miss: a subcollection that exists only under parents that were neither
//! sampled nor probed. Its documents are still in its group's count when its id is used
//! by a discovered pattern (attributed to that pattern), and absent otherwise.
//! `--full-scan` ([`full_scan`]) streams every document once instead and is exact.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use gcloud_sdk::google::firestore::v1::Document;
use gcloud_sdk::tonic::Code;

use super::infer::PatternStats;
use super::query::{query_reads, Reader};
use super::{CountMethod, Discovery, PatternPlan, Plan};
use crate::error::{Error, Result};
use crate::path::{CollectionPattern, DocPath};
use crate::source::export::ExportSource;
use crate::source::{collection_query, kindless_query};
use crate::source::{Change, FirestoreSource, KeyRange, Source};

/// Firestore calls in flight at once during discovery.
const CONCURRENCY: usize = 16;
/// Probe windows per root collection.
const PROBE_WINDOWS: usize = 4;
/// Distinct patterns a full scan tracks (collection ids made of data could otherwise
/// grow without bound); documents of further patterns are counted apart.
pub const MAX_PATTERNS: usize = 10_000;

/// The smallest document id in `__name__` order, for range bounds.
const MIN_ID: &str = "\u{0}";

fn empty_plan(source: &FirestoreSource, sample: usize, full_scan: bool) -> Plan {
    Plan {
        project: source.config().project.clone(),
        database_id: source.config().database_id.clone(),
        endpoint: source.endpoint().to_string(),
        sample,
        full_scan,
        patterns: BTreeMap::new(),
        usage: Default::default(),
        warnings: Vec::new(),
        elapsed: Duration::ZERO,
    }
}

/// The `__name__` range of root collection `r`: from its first possible document to the
/// first possible document of the next root collection.
fn root_range(root: &str, sorted_roots: &[String], r: &str) -> KeyRange {
    KeyRange {
        start_at: Some(format!("{root}/{r}/{MIN_ID}")),
        start_after: None,
        end_before: sorted_roots
            .iter()
            .find(|x| x.as_str() > r)
            .map(|x| format!("{root}/{x}/{MIN_ID}")),
    }
}

/// `range` cut into `windows` pieces at evenly spaced auto-id characters.
fn probe_windows(root: &str, r: &str, range: &KeyRange, windows: usize) -> Vec<KeyRange> {
    let cuts = crate::source::ranges::candidate_boundaries(root, r, windows);
    let mut starts = vec![range.start_at.clone()];
    starts.extend(cuts.into_iter().map(Some));
    let mut out = Vec::new();
    for (i, s) in starts.iter().enumerate() {
        out.push(KeyRange {
            start_at: s.clone(),
            start_after: None,
            end_before: starts
                .get(i + 1)
                .cloned()
                .unwrap_or(range.end_before.clone()),
        });
    }
    out
}

fn invalid_argument(e: &Error) -> bool {
    match e {
        Error::Firestore { code, .. } => *code == Code::InvalidArgument,
        Error::RetriesExhausted { last, .. } => invalid_argument(last),
        _ => false,
    }
}

/// Every ancestor collection of a document: (pattern, parent document full name) for
/// each subcollection level.
fn ancestry(root: &str, name: &str) -> Vec<(CollectionPattern, String)> {
    let Ok(path) = DocPath::parse(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        let parent = p.parent();
        if let Some(parent) = &parent {
            out.push((p.pattern(), format!("{root}/{}", parent.relative())));
        }
        cur = parent;
    }
    out
}

struct Found {
    discovery: Discovery,
    parents: BTreeSet<String>,
}

/// Discovers, samples and counts with bounded reads (see the module docs).
pub async fn sampled(source: &FirestoreSource, sample: usize, budget: Option<u64>) -> Result<Plan> {
    let mut plan = empty_plan(source, sample, false);
    let reader = Reader::new(source, budget);
    let root = reader.root().to_string();
    let mut roots = reader.collection_ids(&root).await?;
    roots.sort();
    let mut found: BTreeMap<CollectionPattern, Found> = BTreeMap::new();
    for r in &roots {
        if let Ok(p) = DocPath::parse(&format!("{r}/_")) {
            found.insert(
                p.pattern(),
                Found {
                    discovery: Discovery::Root,
                    parents: BTreeSet::from([root.clone()]),
                },
            );
        }
    }

    tracing::info!(
        roots = roots.len(),
        "probing the key range of each root collection"
    );
    // Probes: the kindless query over each root collection's key range.
    let per_window = sample.div_ceil(PROBE_WINDOWS).max(1) as i32;
    'probing: for r in &roots {
        let range = root_range(&root, &roots, r);
        for window in probe_windows(&root, r, &range, PROBE_WINDOWS) {
            let docs = match reader
                .documents(&root, kindless_query(&window, Some(per_window)))
                .await
            {
                Ok(d) => d,
                Err(e) if invalid_argument(&e) => {
                    plan.warnings.push(format!(
                        "the key-range probes were refused ({e}); subcollections are discovered from sampled parents only"
                    ));
                    break 'probing;
                }
                Err(e) => return Err(e),
            };
            for d in &docs {
                for (pattern, parent) in ancestry(&root, &d.name) {
                    found
                        .entry(pattern)
                        .or_insert_with(|| Found {
                            discovery: Discovery::Probe,
                            parents: BTreeSet::new(),
                        })
                        .parents
                        .insert(parent);
                }
            }
        }
    }

    // Patterns by depth: sample, then list the subcollections of the sampled documents.
    let mut done: BTreeMap<CollectionPattern, PatternPlan> = BTreeMap::new();
    while let Some(pattern) = found
        .keys()
        .filter(|p| !done.contains_key(*p))
        .min_by_key(|p| (p.depth(), (*p).clone()))
        .cloned()
    {
        let f = &found[&pattern];
        let parents: Vec<String> = f.parents.iter().cloned().collect();
        let discovery = f.discovery;
        let id = pattern.collection_id().to_string();
        let mut stats = PatternStats::default();
        let docs = sample_under_parents(&reader, &id, &parents, sample, &mut stats).await?;
        let children: Vec<(String, Vec<String>)> = futures::stream::iter(docs.iter())
            .map(|name| async {
                let ids = reader.collection_ids(name).await?;
                Ok::<_, Error>((name.clone(), ids))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        for (name, ids) in children {
            for c in ids {
                if let Ok(p) = DocPath::parse(&format!("{name}/{c}/_")) {
                    found
                        .entry(p.pattern())
                        .or_insert_with(|| Found {
                            discovery: Discovery::ListCollectionIds,
                            parents: BTreeSet::new(),
                        })
                        .parents
                        .insert(name.clone());
                }
            }
        }
        if docs.is_empty() && pattern.depth() == 1 {
            plan.warnings.push(format!(
                "`{pattern}` has no documents of its own: only subcollections of parent documents that do not exist"
            ));
        }
        tracing::info!(pattern = %pattern, sampled = docs.len(), "sampled");
        done.insert(
            pattern.clone(),
            PatternPlan {
                pattern,
                discovered_by: discovery,
                documents: 0,
                count_method: CountMethod::Group,
                stats,
            },
        );
    }

    tracing::info!(patterns = done.len(), "counting");
    count_patterns(
        &reader,
        &root,
        &roots,
        sample,
        &mut done,
        &mut plan.warnings,
    )
    .await?;
    plan.patterns = done;
    plan.usage = reader.usage.snapshot();
    Ok(plan)
}

/// At most `sample` documents of collection `id` under `parents`, spread over them: each
/// round gives every parent that may have more an equal share of what is left, resuming
/// after its last document. Queries: at most one per parent per round, and a round only
/// re-queries parents whose last answer was full. Each document feeds `stats` as it
/// arrives; only the names are kept (memory: the names, not the documents).
async fn sample_under_parents(
    reader: &Reader<'_>,
    id: &str,
    parents: &[String],
    sample: usize,
    stats: &mut PatternStats,
) -> Result<Vec<String>> {
    let mut docs = Vec::new();
    // (parent, resume after this document name)
    let mut open: Vec<(String, Option<String>)> =
        parents.iter().map(|p| (p.clone(), None)).collect();
    while !open.is_empty() && docs.len() < sample {
        let left = sample - docs.len();
        let share = left.div_ceil(open.len()).max(1);
        let current = std::mem::take(&mut open);
        let mut results = futures::stream::iter(current.iter())
            .map(|(parent, after)| async move {
                let range = KeyRange {
                    start_after: after.clone(),
                    ..KeyRange::default()
                };
                let batch = reader
                    .documents(
                        parent,
                        collection_query(id, false, &range, Some(share as i32)),
                    )
                    .await?;
                Ok::<_, Error>((parent.clone(), batch))
            })
            .buffered(CONCURRENCY);
        let mut next = Vec::new();
        while let Some(r) = results.next().await {
            let (parent, batch) = r?;
            if batch.len() == share {
                next.push((parent, batch.last().map(|d| d.name.clone())));
            }
            for d in batch {
                if docs.len() < sample {
                    stats.add(&d);
                    docs.push(d.name);
                }
            }
            if docs.len() >= sample {
                break;
            }
        }
        drop(results);
        open = next;
    }
    Ok(docs)
}

/// Fills `documents` and `count_method` of every pattern (see the module docs).
async fn count_patterns(
    reader: &Reader<'_>,
    root: &str,
    roots: &[String],
    sample: usize,
    patterns: &mut BTreeMap<CollectionPattern, PatternPlan>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let mut groups: BTreeMap<String, Vec<CollectionPattern>> = BTreeMap::new();
    for p in patterns.keys() {
        groups
            .entry(p.collection_id().to_string())
            .or_default()
            .push(p.clone());
    }
    let mut range_refused = false;
    for (g, members) in groups {
        let total = reader
            .count(root, collection_query(&g, true, &KeyRange::default(), None))
            .await?;
        if let [only] = members.as_slice() {
            set_count(patterns, only, total, CountMethod::Group);
            continue;
        }
        let mut remaining = total;
        let mut nested = Vec::new();
        for p in &members {
            if p.depth() == 1 {
                let n = reader
                    .count(
                        root,
                        collection_query(&g, false, &KeyRange::default(), None),
                    )
                    .await?;
                set_count(patterns, p, n, CountMethod::Collection);
                remaining = remaining.saturating_sub(n);
            } else {
                nested.push(p.clone());
            }
        }
        if let [only] = nested.as_slice() {
            set_count(patterns, only, remaining, CountMethod::Group);
            continue;
        }
        let mut by_root: BTreeMap<String, Vec<CollectionPattern>> = BTreeMap::new();
        for p in nested.iter() {
            let first = p.to_string();
            let first = first.split('/').next().unwrap_or_default().to_string();
            by_root.entry(first).or_default().push(p.clone());
        }
        if !range_refused {
            for (r, list) in &by_root {
                let range = root_range(root, roots, r);
                let n = match reader
                    .count(root, collection_query(&g, true, &range, None))
                    .await
                {
                    Ok(n) => n,
                    Err(e) if invalid_argument(&e) => {
                        warnings.push(format!(
                            "counts by key range were refused ({e}); patterns sharing a collection id are estimated from a sample"
                        ));
                        range_refused = true;
                        break;
                    }
                    Err(e) => return Err(e),
                };
                if let [only] = list.as_slice() {
                    set_count(patterns, only, n, CountMethod::GroupRange);
                } else {
                    split_by_sample(reader, root, &g, &range, n, list, sample, patterns).await?;
                }
            }
        }
        if range_refused {
            split_by_sample(
                reader,
                root,
                &g,
                &KeyRange::default(),
                remaining,
                &nested,
                sample,
                patterns,
            )
            .await?;
        }
    }
    Ok(())
}

fn set_count(
    patterns: &mut BTreeMap<CollectionPattern, PatternPlan>,
    p: &CollectionPattern,
    n: u64,
    method: CountMethod,
) {
    if let Some(pp) = patterns.get_mut(p) {
        pp.documents = n;
        pp.count_method = method;
    }
}

/// Splits `total` documents of group `g` within `range` among `list` in proportion to
/// the first `sample` group documents of the range in `__name__` order.
#[allow(clippy::too_many_arguments)]
async fn split_by_sample(
    reader: &Reader<'_>,
    root: &str,
    g: &str,
    range: &KeyRange,
    total: u64,
    list: &[CollectionPattern],
    sample: usize,
    patterns: &mut BTreeMap<CollectionPattern, PatternPlan>,
) -> Result<()> {
    let docs = reader
        .documents(root, collection_query(g, true, range, Some(sample as i32)))
        .await?;
    let mut seen: BTreeMap<&CollectionPattern, u64> = list.iter().map(|p| (p, 0)).collect();
    let mut n = 0u64;
    for d in &docs {
        if let Ok(p) = DocPath::parse(&d.name) {
            if let Some(c) = seen.get_mut(&p.pattern()) {
                *c += 1;
                n += 1;
            }
        }
    }
    let shares = split_counts(total, &seen.values().copied().collect::<Vec<_>>(), n);
    for (p, share) in list.iter().zip(shares) {
        set_count(patterns, p, share, CountMethod::Estimated);
    }
    Ok(())
}

/// `total` split in proportion to `weights` (summing to `n`), rounded so that the parts
/// add up to `total`; equal parts when nothing was sampled.
pub fn split_counts(total: u64, weights: &[u64], n: u64) -> Vec<u64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let (weights, n): (Vec<u64>, u64) = if n == 0 {
        (vec![1; weights.len()], weights.len() as u64)
    } else {
        (weights.to_vec(), n)
    };
    let mut parts: Vec<u64> = weights
        .iter()
        .map(|w| (total as u128 * *w as u128 / n as u128) as u64)
        .collect();
    let mut rest = total - parts.iter().sum::<u64>();
    // Largest weights take the rounding remainder.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(weights[i]));
    for i in order.into_iter().cycle() {
        if rest == 0 {
            break;
        }
        parts[i] += 1;
        rest -= 1;
    }
    parts
}

/// Streams every document once (the kindless query), counting per pattern and sampling
/// the first `sample` documents of each pattern in `__name__` order. Memory: one
/// [`PatternStats`] per pattern, at most [`MAX_PATTERNS`].
pub async fn full_scan(
    source: &FirestoreSource,
    sample: usize,
    budget: Option<u64>,
) -> Result<Plan> {
    let mut plan = empty_plan(source, sample, true);
    let reader = Reader::new(source, budget);
    let root = reader.root().to_string();
    // The whole scan is billed one read per document: counted first (one read per 1000
    // documents), so a scan past the budget is refused before it reads.
    let total = reader
        .count(&root, kindless_query(&KeyRange::default(), None))
        .await?;
    reader.within_budget(query_reads(total))?;
    let mut patterns: BTreeMap<CollectionPattern, PatternPlan> = BTreeMap::new();
    // Root collections without documents of their own are listed too.
    for r in reader.collection_ids(&root).await? {
        if let Ok(p) = DocPath::parse(&format!("{r}/_")) {
            patterns.insert(
                p.pattern(),
                PatternPlan {
                    pattern: p.pattern(),
                    discovered_by: Discovery::Root,
                    documents: 0,
                    count_method: CountMethod::FullScan,
                    stats: PatternStats::default(),
                },
            );
        }
    }
    let mut rx = source.stream(KeyRange::default(), 1024);
    let mut tally = Tally::new(patterns, sample);
    while let Some(doc) = rx.recv().await {
        tally.add(&doc?);
    }
    let read = tally.read;
    tally.finish(&mut plan);
    reader.usage.queries.fetch_add(1, Ordering::Relaxed);
    reader
        .usage
        .documents_read
        .fetch_add(read, Ordering::Relaxed);
    reader
        .usage
        .billed_reads
        .fetch_add(query_reads(read), Ordering::Relaxed);
    plan.usage = reader.usage.snapshot();
    Ok(plan)
}

/// A full scan's count per pattern, with the first `sample` documents of each.
struct Tally {
    patterns: BTreeMap<CollectionPattern, PatternPlan>,
    sample: usize,
    read: u64,
    untracked: u64,
}

impl Tally {
    fn new(patterns: BTreeMap<CollectionPattern, PatternPlan>, sample: usize) -> Self {
        Self {
            patterns,
            sample,
            read: 0,
            untracked: 0,
        }
    }

    fn add(&mut self, doc: &Document) {
        self.read += 1;
        let Ok(path) = DocPath::parse(&doc.name) else {
            return;
        };
        let pattern = path.pattern();
        if !self.patterns.contains_key(&pattern) {
            if self.patterns.len() >= MAX_PATTERNS {
                self.untracked += 1;
                return;
            }
            self.patterns.insert(
                pattern.clone(),
                PatternPlan {
                    pattern: pattern.clone(),
                    discovered_by: Discovery::FullScan,
                    documents: 0,
                    count_method: CountMethod::FullScan,
                    stats: PatternStats::default(),
                },
            );
        }
        let pp = self.patterns.get_mut(&pattern).expect("inserted");
        pp.documents += 1;
        if (pp.stats.sampled as usize) < self.sample {
            pp.stats.add(doc);
        }
        if self.read.is_multiple_of(100_000) {
            tracing::info!(
                read = self.read,
                patterns = self.patterns.len(),
                "full scan"
            );
        }
    }

    fn finish(self, plan: &mut Plan) {
        if self.untracked > 0 {
            plan.warnings.push(format!(
                "more than {MAX_PATTERNS} collection patterns: {} documents of further patterns were counted but not attributed",
                self.untracked
            ));
        }
        plan.patterns = self.patterns;
    }
}

/// The plan of an export: every record read once (no Firestore read, nothing billed),
/// counted per pattern, the first `sample` documents of each pattern analysed. Exact
/// like a full scan; in the export's file order, so the sample is the first documents
/// met, not the first by name.
pub async fn export_scan(source: &ExportSource, sample: usize) -> Result<Plan> {
    let root = source.root().to_string();
    let mut parts = root.split('/');
    let mut plan = Plan {
        project: parts.nth(1).unwrap_or_default().to_string(),
        database_id: parts.nth(1).unwrap_or_default().to_string(),
        endpoint: source.endpoint().to_string(),
        sample,
        full_scan: true,
        patterns: BTreeMap::new(),
        usage: Default::default(),
        warnings: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut tally = Tally::new(BTreeMap::new(), sample);
    let mut unreadable = 0u64;
    for range in source.split(1).await? {
        let mut rx = source.stream(&range, None, 1024);
        while let Some(item) = rx.recv().await {
            match item?.0 {
                Change::Upsert { doc, .. } => tally.add(&doc),
                Change::Corrupt { at, reason, .. } => {
                    unreadable += 1;
                    tracing::warn!(record = %at, "unreadable record: {reason}");
                }
                Change::Delete { .. } => {}
            }
        }
    }
    tally.finish(&mut plan);
    if unreadable > 0 {
        plan.warnings.push(format!(
            "{unreadable} records of the export could not be read (--skip-corrupt): not counted"
        ));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_counts_adds_up() {
        assert_eq!(split_counts(10, &[1, 1, 1], 3), vec![4, 3, 3]);
        assert_eq!(split_counts(100, &[3, 1], 4), vec![75, 25]);
        assert_eq!(split_counts(7, &[0, 0], 0), vec![4, 3]);
        assert_eq!(split_counts(0, &[2, 5], 7), vec![0, 0]);
        assert_eq!(split_counts(5, &[], 0), Vec::<u64>::new());
    }

    #[test]
    fn ancestry_lists_every_subcollection_level() {
        let root = "projects/p/databases/d/documents";
        let got = ancestry(root, &format!("{root}/a/1/b/2/c/3"));
        let got: Vec<(String, String)> = got.into_iter().map(|(p, n)| (p.to_string(), n)).collect();
        assert_eq!(
            got,
            vec![
                ("a/{}/b/{}/c".to_string(), format!("{root}/a/1/b/2")),
                ("a/{}/b".to_string(), format!("{root}/a/1")),
            ]
        );
        assert!(ancestry(root, &format!("{root}/a/1")).is_empty());
    }

    #[test]
    fn root_ranges_end_at_the_next_root() {
        let roots = vec!["a".to_string(), "ab".to_string(), "b".to_string()];
        let r = root_range("R", &roots, "a");
        assert_eq!(r.start_at.as_deref(), Some("R/a/\u{0}"));
        assert_eq!(r.end_before.as_deref(), Some("R/ab/\u{0}"));
        assert_eq!(root_range("R", &roots, "b").end_before, None);
        let w = probe_windows("R", "a", &r, 4);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0].start_at, r.start_at);
        assert_eq!(w[3].end_before, r.end_before);
        for pair in w.windows(2) {
            assert_eq!(pair[0].end_before, pair[1].start_at);
        }
    }
}
