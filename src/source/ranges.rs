//! Splitting a database into key ranges for parallel readers and shards.
//!
//! The emulator has no `PartitionQuery`, and production `PartitionQuery` only partitions
//! collection-group queries, not the kindless all-descendants stream a job reads, so the
//! split is made from the key space itself: candidate boundaries inside each root
//! collection at evenly spaced base62 characters (Firestore auto-ids are 20 uniform
//! base62 characters, so each slice holds about the same share), then aggregation counts
//! of the slices (one read per 1000 documents) let a greedy pass group slices into
//! ranges of about equal size. A boundary `users/M` keeps each document and all of its
//! subcollections in one range, because `__name__` order puts a document's descendants
//! right after it.

use futures::{StreamExt, TryStreamExt};

use crate::error::Result;
use crate::source::{FirestoreSource, KeyRange};

/// Slice counts in flight at once while splitting.
const COUNTS_IN_FLIGHT: usize = 8;

/// Firestore auto-id characters in byte (and so `__name__`) order.
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Candidate boundaries inside one root collection: `{root}/{c}` for `slices - 1`
/// evenly spaced base62 characters `c`, as full document names.
pub fn candidate_boundaries(
    documents_root: &str,
    root_collection: &str,
    slices: usize,
) -> Vec<String> {
    let slices = slices.clamp(1, BASE62.len());
    (1..slices)
        .map(|k| {
            let c = BASE62[k * BASE62.len() / slices] as char;
            format!("{documents_root}/{root_collection}/{c}")
        })
        .collect()
}

/// Groups consecutive slices (given by their document counts) into at most `n` ranges of
/// about equal size; returns the slice indices where a new range starts (after 0).
pub fn group_slices(counts: &[u64], n: usize) -> Vec<usize> {
    let total: u64 = counts.iter().sum();
    if n <= 1 || total == 0 {
        return Vec::new();
    }
    let mut cuts = Vec::new();
    let mut acc = 0u64;
    for (i, c) in counts.iter().enumerate() {
        // Cut before slice i once the running total reaches the next share.
        let target = total * (cuts.len() as u64 + 1) / n as u64;
        if i > 0 && acc >= target && cuts.len() + 1 < n {
            cuts.push(i);
        }
        acc += c;
    }
    cuts
}

/// Slices per root collection for a split into `n` ranges: enough for the greedy
/// grouping to balance, bounded so the count queries stay few.
pub fn slices_per_root(n: usize, roots: usize) -> usize {
    (4 * n).div_ceil(roots.max(1)).clamp(2, BASE62.len())
}

/// The aggregation counts a split into `n` ranges of a database with `roots` root
/// collections runs (one per slice; none for `n ≤ 1`). `plan` prices a sharded job
/// with it.
pub fn split_count_queries(n: usize, roots: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    // Each root adds `per_root - 1` boundaries; the slices lie between them.
    roots * (slices_per_root(n, roots) - 1) + 1
}

/// Splits the whole database into at most `n` ranges of about equal document counts.
/// Deterministic for a given data set; stored in the job record, so it is computed once.
pub async fn split(source: &FirestoreSource, n: usize) -> Result<Vec<KeyRange>> {
    if n <= 1 {
        return Ok(vec![KeyRange::default()]);
    }
    let mut roots = source.root_collections().await?;
    roots.sort();
    let per_root = slices_per_root(n, roots.len());
    let mut boundaries = Vec::new();
    for root in &roots {
        boundaries.extend(candidate_boundaries(source.root(), root, per_root));
    }
    let slices = slices_between(&boundaries);
    let started = std::time::Instant::now();
    // Each count is one round trip (and on the emulator a scan of the whole database):
    // a few at once, in order, instead of one after the other.
    // Owned slices: a borrowing closure here makes the future not `Send` (higher-ranked
    // lifetime inference), which `Source::split` requires.
    let counts: Vec<u64> = futures::stream::iter(slices.clone())
        .map(|s| async move { source.count_range(&s).await })
        .buffered(COUNTS_IN_FLIGHT)
        .try_collect()
        .await?;
    tracing::info!(
        slices = slices.len(),
        ranges = n,
        secs = started.elapsed().as_secs_f64(),
        "counted the key-space slices to split the job"
    );
    let cuts = group_slices(&counts, n);
    let mut starts: Vec<Option<String>> = vec![None];
    starts.extend(cuts.iter().map(|&i| slices[i].start_at.clone()));
    let mut ranges = Vec::with_capacity(starts.len());
    for (i, start) in starts.iter().enumerate() {
        ranges.push(KeyRange {
            start_at: start.clone(),
            start_after: None,
            end_before: starts.get(i + 1).cloned().flatten(),
        });
    }
    Ok(ranges)
}

/// Consecutive half-open slices between sorted boundaries, covering everything.
fn slices_between(boundaries: &[String]) -> Vec<KeyRange> {
    let mut out = Vec::with_capacity(boundaries.len() + 1);
    let mut start: Option<String> = None;
    for b in boundaries {
        out.push(KeyRange {
            start_at: start.clone(),
            start_after: None,
            end_before: Some(b.clone()),
        });
        start = Some(b.clone());
    }
    out.push(KeyRange {
        start_at: start,
        start_after: None,
        end_before: None,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_evenly_spaced_base62_in_byte_order() {
        let b = candidate_boundaries("R", "users", 4);
        assert_eq!(b, vec!["R/users/F", "R/users/V", "R/users/k"]);
        let mut sorted = b.clone();
        sorted.sort();
        assert_eq!(sorted, b);
        assert!(candidate_boundaries("R", "users", 1).is_empty());
    }

    #[test]
    fn grouping_balances_counts_into_at_most_n_ranges() {
        assert_eq!(group_slices(&[10, 10, 10, 10], 2), vec![2]);
        assert_eq!(group_slices(&[10, 10, 10, 10], 4), vec![1, 2, 3]);
        // A heavy first slice cannot be split further; the rest still forms ranges.
        assert_eq!(group_slices(&[100, 1, 1, 1], 3), vec![1, 2]);
        assert!(group_slices(&[0, 0], 3).is_empty());
        assert!(group_slices(&[5, 5], 1).is_empty());
        assert!(group_slices(&[1; 100], 7).len() <= 6);
    }

    #[test]
    fn split_count_queries_is_one_per_slice_between_the_boundaries() {
        assert_eq!(split_count_queries(1, 5), 0);
        // 1 root, 4 ranges: 16 slices per root, 15 boundaries, 16 slices.
        assert_eq!(split_count_queries(4, 1), 16);
        assert_eq!(
            split_count_queries(4, 1),
            slices_between(&candidate_boundaries("R", "users", slices_per_root(4, 1))).len()
        );
        // 10 roots, 4 ranges: at least 2 slices per root, 1 boundary each.
        assert_eq!(split_count_queries(4, 10), 11);
        // Capped at 62 slices per root.
        assert_eq!(split_count_queries(100, 1), 62);
    }

    #[test]
    fn slices_cover_the_whole_key_space_without_gaps() {
        let s = slices_between(&["a".into(), "b".into()]);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].start_at, None);
        assert_eq!(s[0].end_before.as_deref(), Some("a"));
        assert_eq!(s[1].start_at.as_deref(), Some("a"));
        assert_eq!(s[2].end_before, None);
    }
}
