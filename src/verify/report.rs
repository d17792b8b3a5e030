//! The parity report: `PREFIX.json` (schema in `docs/verify-report.md`, versioned by
//! [`SCHEMA_VERSION`]), `PREFIX.html` (one self-contained page: inline CSS, no script,
//! nothing fetched) and a one-screen terminal summary.
//!
//! Both files are written while the confirmed mismatches stream from the store, so the
//! report needs memory for one mismatch at a time, however many are listed.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use mongodb::bson::Bson;
use serde::Serialize;
use serde_json::{json, Value};

use super::compare::{truncate, Change};
use super::store::{StoredFinding, Tally};
use super::{CollectionCounts, Kind};

/// Version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;
/// Longest extended-JSON rendering of one value kept in a diff (characters); longer
/// Mismatches shown in the terminal summary.
const TERMINAL_MISMATCHES: usize = 8;
/// Collection rows shown in the terminal summary (those with findings first).
const TERMINAL_ROWS: usize = 24;

fn parse_json(s: &Option<String>) -> Value {
    s.as_deref()
        .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())))
        .unwrap_or(Value::Null)
}

/// One collection's line of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectionReport {
    pub collection: String,
    pub source: u64,
    pub dead_lettered: u64,
    pub sampled_out: u64,
    pub compared: u64,
    /// `source − dead_lettered`: what the target should hold.
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
}

impl CollectionReport {
    pub fn mismatches(&self) -> u64 {
        self.missing + self.extra + self.differing + self.dead_letters_missing
    }
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
            let expected = c.source.saturating_sub(c.dead_lettered);
            (
                c.collection.clone(),
                CollectionReport {
                    collection: c.collection.clone(),
                    source: c.source,
                    dead_lettered: c.dead_lettered,
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

/// `PREFIX.json` and `PREFIX.html` for a prefix.
pub fn report_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".json"), with(".html"))
}

/// Writes both files while mismatches stream in: [`begin`](Self::begin) with the
/// head, [`push`](Self::push) each listed mismatch, [`finish`](Self::finish).
pub struct ReportWriter {
    json: BufWriter<File>,
    html: BufWriter<File>,
    json_path: PathBuf,
    html_path: PathBuf,
    listed: u64,
    /// The first few, for the terminal.
    first: Vec<StoredFinding>,
}

impl ReportWriter {
    pub fn create(prefix: &Path) -> std::io::Result<Self> {
        let (json_path, html_path) = report_paths(prefix);
        if let Some(dir) = json_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self {
            json: BufWriter::new(File::create(&json_path)?),
            html: BufWriter::new(File::create(&html_path)?),
            json_path,
            html_path,
            listed: 0,
            first: Vec::new(),
        })
    }

    pub fn paths(&self) -> (&Path, &Path) {
        (&self.json_path, &self.html_path)
    }

    pub fn begin(&mut self, head: &ReportHead) -> std::io::Result<()> {
        let mut s = serde_json::to_string_pretty(head).map_err(std::io::Error::other)?;
        // Reopen the object to append the streamed list.
        let close = s.rfind('}').expect("an object");
        s.truncate(close);
        let s = s.trim_end();
        write!(self.json, "{s},\n  \"mismatches\": [")?;
        self.html.write_all(html_head(head).as_bytes())
    }

    pub fn push(&mut self, f: &StoredFinding) -> std::io::Result<()> {
        let entry = mismatch_json(f);
        let sep = if self.listed == 0 {
            "\n    "
        } else {
            ",\n    "
        };
        write!(self.json, "{sep}{}", serde_json::to_string(&entry)?)?;
        self.html.write_all(html_mismatch(f).as_bytes())?;
        self.listed += 1;
        if self.first.len() < TERMINAL_MISMATCHES {
            self.first.push(f.clone());
        }
        Ok(())
    }

    /// Closes both files; returns the first few mismatches (for the terminal).
    pub fn finish(mut self, total: u64) -> std::io::Result<Vec<StoredFinding>> {
        let omitted = total.saturating_sub(self.listed);
        let nl = if self.listed == 0 { "" } else { "\n  " };
        write!(
            self.json,
            "{nl}],\n  \"mismatches_listed\": {},\n  \"mismatches_omitted\": {omitted}\n}}\n",
            self.listed
        )?;
        let mut tail = String::new();
        if self.listed == 0 {
            tail.push_str("<p class=\"none\">No mismatches.</p>\n");
        }
        if omitted > 0 {
            let _ = writeln!(
                tail,
                "<p class=\"omitted\">{omitted} more mismatches are not listed (see \
                 <code>--max-listed</code>; all are in the <code>_fireshift_verify_mismatches</code> collection).</p>"
            );
        }
        tail.push_str("</main></body></html>\n");
        self.html.write_all(tail.as_bytes())?;
        self.json.flush()?;
        self.html.flush()?;
        Ok(self.first)
    }
}

fn mismatch_json(f: &StoredFinding) -> Value {
    let diffs: Vec<Value> = f
        .diffs
        .iter()
        .map(|d| {
            json!({
                "path": d.path,
                "change": d.change,
                "expected_type": d.expected_type,
                "expected": parse_json(&d.expected),
                "actual_type": d.actual_type,
                "actual": parse_json(&d.actual),
            })
        })
        .collect();
    json!({
        "kind": f.kind,
        "collection": f.c,
        "id": f.i.clone().into_canonical_extjson(),
        "source_path": f.source_path,
        "expected_hash": f.expected_hash,
        "actual_hash": f.actual_hash,
        "note": f.note,
        "diffs": diffs,
        "diffs_omitted": f.diffs_omitted,
    })
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `_id` for people: a string as is, anything else as canonical extended JSON.
pub fn id_text(id: &Bson) -> String {
    match id {
        Bson::String(s) => s.clone(),
        other => other.clone().into_canonical_extjson().to_string(),
    }
}

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:0 0 6px}
.verdict{padding:12px 16px;border-radius:6px;font-weight:600;margin:12px 0}
.ok{background:#e3f6e8;color:#14532d;border:1px solid #9ad5aa}.bad{background:#fdeaea;color:#7f1d1d;border:1px solid #f2a7a7}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dl.meta dt{color:#5b6476}dl.meta dd{margin:0;word-break:break-all}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0}
th,td{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fff5f5}tr.total td{font-weight:600;background:#f1f3f6}
section.mm{background:#fff;border:1px solid #dde1e8;border-left:4px solid #d9534f;border-radius:4px;padding:10px 14px;margin:10px 0}
.kind{display:inline-block;padding:1px 8px;border-radius:10px;background:#fde2e2;color:#7f1d1d;font-size:12px;margin-right:6px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;word-break:break-all}
.muted{color:#5b6476}.none{color:#14532d}.omitted{color:#7f1d1d}
";

fn html_head(h: &ReportHead) -> String {
    let e = html_escape;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>fireshift parity report {}</title><style>{CSS}</style></head><body><main>\n",
        e(&h.run.id)
    );
    let _ = writeln!(s, "<h1>Parity report: Firestore → MongoDB</h1>");
    let class = if h.result.parity { "ok" } else { "bad" };
    let _ = writeln!(
        s,
        "<p class=\"verdict {class}\">{}</p>",
        e(&h.result.summary)
    );
    let _ = writeln!(s, "<dl class=\"meta\">");
    let rows: [(&str, String); 8] = [
        ("run", h.run.id.clone()),
        (
            "source",
            format!(
                "projects/{}/databases/{} ({})",
                h.source.project, h.source.firestore_database, h.source.endpoint
            ),
        ),
        (
            "target",
            format!("{} database {}", h.target.uri, h.target.database),
        ),
        ("started", h.run.started_at.clone()),
        ("finished", h.run.finished_at.clone()),
        (
            "sample",
            if h.options.extras_checked {
                format!("{} (every document)", h.options.sample)
            } else {
                format!(
                    "{} (extras not searched; count parity decides)",
                    h.options.sample
                )
            },
        ),
        ("transform", h.options.transform.clone()),
        ("report schema", format!("version {}", SCHEMA_VERSION)),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "<dt>{}</dt><dd>{}</dd>", e(k), e(&v));
    }
    let _ = writeln!(s, "</dl>");
    let _ = writeln!(s, "<h2>Collections</h2>\n<table><thead><tr><th>collection</th><th>source</th><th>dead-lettered</th><th>sampled out</th><th>compared</th><th>expected in target</th><th>target</th><th>missing</th><th>extra</th><th>differing</th><th>dead letters missing</th><th>resolved on recheck</th><th>parity</th></tr></thead><tbody>");
    for r in h.collections.iter().chain(std::iter::once(&h.totals)) {
        let class = if std::ptr::eq(r, &h.totals) {
            " class=\"total\""
        } else if !r.parity {
            " class=\"bad\""
        } else {
            ""
        };
        let target = r
            .target
            .map(|t| t.to_string())
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            s,
            "<tr{class}><td class=\"mono\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            e(&r.collection),
            r.source,
            r.dead_lettered,
            r.sampled_out,
            r.compared,
            r.expected_in_target,
            target,
            r.missing,
            r.extra,
            r.differing,
            r.dead_letters_missing,
            r.resolved_on_recheck,
            if r.parity { "✔" } else { "✘" }
        );
    }
    let _ = writeln!(s, "</tbody></table>");
    let _ = writeln!(s, "<h2>Mismatches ({})</h2>", h.result.mismatches);
    s
}

fn html_mismatch(f: &StoredFinding) -> String {
    let e = html_escape;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<section class=\"mm\"><h3><span class=\"kind\">{}</span><span class=\"mono\">{} / {}</span></h3>",
        e(kind_label(f.kind)),
        e(&f.c),
        e(&id_text(&f.i))
    );
    if let Some(p) = &f.source_path {
        let _ = writeln!(s, "<div class=\"muted\">source <code>{}</code></div>", e(p));
    }
    if let Some(n) = &f.note {
        let _ = writeln!(s, "<div class=\"muted\">{}</div>", e(n));
    }
    let hash = |h: &Option<String>| h.as_deref().map(e).unwrap_or_else(|| "–".into());
    let _ = writeln!(
        s,
        "<div class=\"muted\">expected hash <code>{}</code><br>actual hash <code>{}</code></div>",
        hash(&f.expected_hash),
        hash(&f.actual_hash)
    );
    if !f.diffs.is_empty() {
        let _ = writeln!(s, "<table><thead><tr><th>field</th><th>change</th><th>expected</th><th>actual</th></tr></thead><tbody>");
        for d in &f.diffs {
            let side = |v: &Option<String>| {
                v.as_deref()
                    .map(e)
                    .unwrap_or_else(|| "<span class=\"muted\">(absent)</span>".into())
            };
            let _ = writeln!(
                s,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
                e(&d.path),
                change_label(d.change),
                side(&d.expected_display),
                side(&d.actual_display)
            );
        }
        let _ = writeln!(s, "</tbody></table>");
        if f.diffs_omitted > 0 {
            let _ = writeln!(
                s,
                "<div class=\"omitted\">{} more differing fields not listed</div>",
                f.diffs_omitted
            );
        }
    }
    s.push_str("</section>\n");
    s
}

fn kind_label(k: Kind) -> &'static str {
    match k {
        Kind::Missing => "missing",
        Kind::Extra => "extra",
        Kind::Differing => "differing",
        Kind::DeadLetterMissing => "dead letter missing",
    }
}

fn change_label(c: Change) -> &'static str {
    match c {
        Change::Value => "value",
        Change::Type => "type",
        Change::Missing => "missing field",
        Change::Extra => "extra field",
    }
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
    let mut rows: Vec<&CollectionReport> = h.collections.iter().collect();
    // Findings first, so a long list never pushes them off the screen.
    rows.sort_by_key(|r| (r.parity, std::cmp::Reverse(r.mismatches())));
    let hidden = rows.len().saturating_sub(TERMINAL_ROWS);
    rows.truncate(TERMINAL_ROWS);
    rows.sort_by(|a, b| a.collection.cmp(&b.collection));
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
        let _ = writeln!(
            s,
            "… and {hidden} more collections at parity (see the report)"
        );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::compare::diff_documents;
    use crate::verify::diff_record::{ext_json, DiffRecord};
    use mongodb::bson::{doc, RawDocumentBuf};

    #[test]
    fn html_escape_escapes_markup_and_quotes() {
        assert_eq!(
            html_escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn diff_records_carry_types_extended_json_and_a_description() {
        let e = RawDocumentBuf::from_document(&doc! {"n": 5i64, "s": {"v": 1i64}}).unwrap();
        let a = RawDocumentBuf::from_document(&doc! {"n": "5", "s": {"v": 2i64}}).unwrap();
        let (diffs, _) = diff_documents(&e, &a, 10).unwrap();
        let recs: Vec<DiffRecord> = diffs.iter().map(DiffRecord::from_diff).collect();
        assert_eq!(recs[0].path, "n");
        assert_eq!(recs[0].expected_type.as_deref(), Some("long"));
        assert_eq!(recs[0].actual_type.as_deref(), Some("string"));
        assert_eq!(recs[0].expected.as_deref(), Some(r#"{"$numberLong":"5"}"#));
        assert_eq!(recs[0].actual.as_deref(), Some(r#""5""#));
        assert_eq!(
            recs[0].describe(),
            "type changed: expected long 5, actual string \"5\""
        );
        assert_eq!(recs[1].path, "s.v");
    }

    #[test]
    fn long_values_are_truncated_in_extended_json() {
        let s = ext_json(&Bson::String("x".repeat(5000)));
        let v: Value = serde_json::from_str(&s).unwrap();
        assert!(v["$truncated"].as_str().unwrap().ends_with('…'));
    }

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
