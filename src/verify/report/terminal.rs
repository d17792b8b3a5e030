//! The one-screen terminal summary: the run, warnings about the run, the collections
//! with findings first (with their hints), the verdict and the first few mismatches.

use std::fmt::Write as _;
use std::path::Path;

use super::labels::{id_text, kind_label};
use super::model::{failing_first, ReportHead};
use crate::verify::compare::truncate;
use crate::verify::store::StoredFinding;
use crate::verify::Kind;

/// Mismatches shown in the terminal summary.
pub(super) const TERMINAL_MISMATCHES: usize = 8;
/// Collection rows shown in the terminal summary (those with findings first).
const TERMINAL_ROWS: usize = 24;

/// The one-screen terminal summary.
pub fn terminal_summary(h: &ReportHead, first: &[StoredFinding], paths: (&Path, &Path)) -> String {
    let mut s = String::new();
    let rate = h.run.docs_this_invocation as f64 / h.run.elapsed_secs.max(1e-3);
    let _ = writeln!(
        s,
        "\nverify run {}: projects/{}/databases/{} → {} ({})",
        h.run.id, h.source.project, h.source.firestore_database, h.target.database, h.target.uri
    );
    let _ = writeln!(
        s,
        "{} documents read in {:.1} s ({rate:.0} docs/s){}{}",
        h.run.docs_this_invocation,
        h.run.elapsed_secs,
        if h.run.invocations > 1 {
            format!(", resumed (invocation {})", h.run.invocations)
        } else {
            String::new()
        },
        if h.options.sample < 1.0 {
            format!(", sample {}", h.options.sample)
        } else {
            String::new()
        }
    );
    for w in &h.result.warnings {
        let _ = writeln!(s, "\nwarning: {w}");
    }
    // Findings first, so a long list never pushes them off the screen.
    let mut rows = failing_first(&h.collections);
    let hidden = rows.len().saturating_sub(TERMINAL_ROWS);
    rows.truncate(TERMINAL_ROWS);
    let w = rows
        .iter()
        .map(|r| r.collection.chars().count())
        .max()
        .unwrap_or(10)
        .clamp(10, 40);
    let _ = writeln!(
        s,
        "\n{:<w$} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9} {:>6} {:>8}",
        "collection",
        "source",
        "target",
        "compared",
        "missing",
        "extra",
        "differing",
        "dead",
        "resolved"
    );
    for r in rows.iter().copied().chain(std::iter::once(&h.totals)) {
        let target = r
            .target
            .map(|t| t.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "{:<w$} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9} {:>6} {:>8}",
            truncate(&r.collection, w),
            r.source,
            target,
            r.compared,
            r.missing,
            r.extra,
            r.differing,
            r.dead_lettered,
            r.resolved_on_recheck
        );
    }
    if hidden > 0 {
        let _ = writeln!(s, "… and {hidden} more collections (see the report)");
    }
    for r in rows.iter().filter(|r| !r.hints.is_empty()) {
        for hint in &r.hints {
            let _ = writeln!(s, "hint: {}: {hint}", r.collection);
        }
    }
    let _ = writeln!(s, "\n{}", h.result.summary);
    for f in first {
        let detail = match f.diffs.first() {
            Some(d) => format!(
                "{}: {}{}",
                d.path,
                d.describe(),
                if f.diffs.len() > 1 || f.diffs_omitted > 0 {
                    format!(
                        " (+{} more fields)",
                        f.diffs.len() as u64 - 1 + f.diffs_omitted
                    )
                } else {
                    String::new()
                }
            ),
            None => match (&f.note, f.kind) {
                (Some(n), _) => n.clone(),
                (None, Kind::Missing) => format!(
                    "not in the target (source {})",
                    f.source_path.as_deref().unwrap_or("?")
                ),
                (None, Kind::DeadLetterMissing) => format!(
                    "refused by the transform and no dead letter records it (source {})",
                    f.source_path.as_deref().unwrap_or("?")
                ),
                (None, _) => String::new(),
            },
        };
        let _ = writeln!(
            s,
            "  {:<10} {}/{}  {}",
            kind_label(f.kind),
            f.c,
            truncate(&id_text(&f.i), 60),
            truncate(&detail, 120)
        );
    }
    if (first.len() as u64) < h.result.mismatches {
        let _ = writeln!(
            s,
            "  … {} more in the report",
            h.result.mismatches - first.len() as u64
        );
    }
    let _ = writeln!(
        s,
        "\nreport: {} and {}",
        paths.0.display(),
        paths.1.display()
    );
    s
}
