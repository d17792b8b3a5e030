//! What the report says: the types of the JSON schema (`docs/verify-report.md`,
//! versioned by [`SCHEMA_VERSION`]) but for the mismatch list, the per-collection lines
//! and their totals from the counts and the mismatch store's tally, and the one-line
//! verdict.

use std::fmt::Write as _;

use serde::Serialize;

use crate::verify::store::Tally;
use crate::verify::{CollectionCounts, Kind};

/// Version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One collection's line of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectionReport {
    pub collection: String,
    pub source: u64,
    pub dead_lettered: u64,
    /// Absent from the target because its TTL index expired them (not missing).
    pub expired: u64,
    pub sampled_out: u64,
    pub compared: u64,
    /// `source − dead_lettered − expired`: what the target should hold.
    pub expected_in_target: u64,
    pub target: Option<u64>,
    /// `target == expected_in_target` (`None` when the target was not counted).
    pub count_parity: Option<bool>,
    pub missing: u64,
    pub extra: u64,
    pub differing: u64,
    pub dead_letters_missing: u64,
    pub resolved_on_recheck: u64,
    pub parity: bool,
    /// Known causes that may explain this collection's findings (see `hints.rs`).
    pub hints: Vec<String>,
}

impl CollectionReport {
    pub fn mismatches(&self) -> u64 {
        self.missing + self.extra + self.differing + self.dead_letters_missing
    }
}

/// The rows for people: collections without parity first, most mismatches first, then
/// by name (the JSON keeps them by name).
pub fn failing_first(rows: &[CollectionReport]) -> Vec<&CollectionReport> {
    let mut rows: Vec<&CollectionReport> = rows.iter().collect();
    rows.sort_by(|a, b| {
        (a.parity, std::cmp::Reverse(a.mismatches()), &a.collection).cmp(&(
            b.parity,
            std::cmp::Reverse(b.mismatches()),
            &b.collection,
        ))
    });
    rows
}

/// Per-collection report lines (sorted by name) and their totals, from the pass-1
/// counts and the tally of the mismatch store. In a sampled run a count difference also
/// breaks parity (extras outside the sample can only show there); in a full run every
/// difference is a document finding, and counts are informational (documents written
/// during the run move them).
pub fn collection_reports(
    counts: &[CollectionCounts],
    tally: &[Tally],
    sampled: bool,
) -> (Vec<CollectionReport>, CollectionReport) {
    let mut rows: std::collections::BTreeMap<String, CollectionReport> = counts
        .iter()
        .map(|c| {
            let expected = c.source.saturating_sub(c.dead_lettered + c.expired);
            (
                c.collection.clone(),
                CollectionReport {
                    collection: c.collection.clone(),
                    source: c.source,
                    dead_lettered: c.dead_lettered,
                    expired: c.expired,
                    sampled_out: c.sampled_out,
                    compared: c.compared,
                    expected_in_target: expected,
                    target: c.target,
                    count_parity: c.target.map(|t| t == expected),
                    ..Default::default()
                },
            )
        })
        .collect();
    for t in tally {
        let row = rows
            .entry(t.collection.clone())
            .or_insert_with(|| CollectionReport {
                collection: t.collection.clone(),
                ..Default::default()
            });
        match t.state.as_str() {
            "confirmed" => match t.kind {
                Kind::Missing => row.missing += t.n,
                Kind::Extra => row.extra += t.n,
                Kind::Differing => row.differing += t.n,
                Kind::DeadLetterMissing => row.dead_letters_missing += t.n,
            },
            "resolved" => row.resolved_on_recheck += t.n,
            _ => {}
        }
    }
    let mut total = CollectionReport {
        collection: "(total)".into(),
        target: Some(0),
        ..Default::default()
    };
    let mut rows: Vec<CollectionReport> = rows.into_values().collect();
    for r in &mut rows {
        r.parity = r.mismatches() == 0 && (!sampled || r.count_parity != Some(false));
        total.source += r.source;
        total.dead_lettered += r.dead_lettered;
        total.expired += r.expired;
        total.sampled_out += r.sampled_out;
        total.compared += r.compared;
        total.expected_in_target += r.expected_in_target;
        total.target = match (total.target, r.target) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        total.missing += r.missing;
        total.extra += r.extra;
        total.differing += r.differing;
        total.dead_letters_missing += r.dead_letters_missing;
        total.resolved_on_recheck += r.resolved_on_recheck;
    }
    total.count_parity = total.target.map(|t| t == total.expected_in_target);
    total.parity = rows.iter().all(|r| r.parity);
    (rows, total)
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub id: String,
    pub started_at: String,
    pub finished_at: String,
    /// Started or resumed this many times.
    pub invocations: u32,
    /// Seconds of this invocation (not of earlier ones).
    pub elapsed_secs: f64,
    /// Source documents read by this invocation's pass 1.
    pub docs_this_invocation: u64,
    /// Seconds this invocation spent in each phase.
    pub phase_secs: PhaseSecs,
}

/// Seconds spent per phase (0 for a phase this invocation did not run).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PhaseSecs {
    /// Pass 1: stream, transform, compare.
    pub compare: f64,
    /// Target counts and the extras scan.
    pub extras: f64,
    /// Recheck, including `--recheck-delay`.
    pub recheck: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub project: String,
    pub firestore_database: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// Redacted connection string.
    pub uri: String,
    pub database: String,
    pub dead_letter_collection: String,
    /// Where the run and all its mismatches are kept (never `database`).
    pub state_database: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptionsInfo {
    pub sample: f64,
    pub extras_checked: bool,
    pub recheck_delay_secs: f64,
    pub max_listed: usize,
    pub transform: String,
    /// Version of the canonical form the hashes are computed with.
    pub canonical_form: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultInfo {
    pub parity: bool,
    pub exit_code: i32,
    /// Confirmed mismatches (all of them, listed or not).
    pub mismatches: u64,
    pub summary: String,
    /// Doubts about the run itself, said before any finding (e.g. verify compared with
    /// other mappings than the job copied with).
    pub warnings: Vec<String>,
}

/// Everything in the report but the mismatch list.
#[derive(Debug, Clone, Serialize)]
pub struct ReportHead {
    pub schema_version: u32,
    pub tool: ToolInfo,
    pub run: RunInfo,
    pub source: SourceInfo,
    pub target: TargetInfo,
    pub options: OptionsInfo,
    pub result: ResultInfo,
    pub totals: CollectionReport,
    pub collections: Vec<CollectionReport>,
}

/// The one-line verdict.
pub fn verdict(total: &CollectionReport, sampled: bool) -> String {
    if total.parity {
        let mut s = format!(
            "PARITY: {} source documents compared, every one matches its target document",
            total.compared
        );
        if sampled {
            s.push_str(" (sampled run; target counts agree)");
        }
        if total.dead_lettered > 0 {
            let _ = write!(s, "; {} dead-lettered as expected", total.dead_lettered);
        }
        if total.expired > 0 {
            let _ = write!(s, "; {} expired by the target's TTL indexes", total.expired);
        }
        s
    } else {
        let mut parts = Vec::new();
        for (n, what) in [
            (total.missing, "missing"),
            (total.extra, "extra"),
            (total.differing, "differing"),
            (total.dead_letters_missing, "dead letters missing"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if total.mismatches() == 0 {
            parts.push("target counts differ from the source outside the sample".into());
        }
        format!("MISMATCHES: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_runs_need_count_parity_full_runs_only_document_parity() {
        let counts = vec![CollectionCounts {
            collection: "users".into(),
            source: 10,
            dead_lettered: 1,
            compared: 10,
            target: Some(10),
            ..Default::default()
        }];
        let (rows, total) = collection_reports(&counts, &[], false);
        assert_eq!(rows[0].expected_in_target, 9);
        assert_eq!(rows[0].count_parity, Some(false));
        assert!(rows[0].parity && total.parity);
        let (rows, total) = collection_reports(&counts, &[], true);
        assert!(!rows[0].parity && !total.parity);
        let tally = vec![Tally {
            collection: "users".into(),
            kind: Kind::Extra,
            state: "confirmed".into(),
            n: 1,
        }];
        let (rows, total) = collection_reports(&counts, &tally, false);
        assert_eq!((rows[0].extra, rows[0].parity, total.extra), (1, false, 1));
    }
}
