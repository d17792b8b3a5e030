//! `PREFIX.html`: one self-contained page (inline CSS, no script, nothing fetched),
//! its head (verdict, warnings, run, collections table with the failing ones first)
//! written first, then per failing collection its counts, hints and first mismatches.

use std::fmt::Write as _;

use super::labels::{change_label, id_text, kind_label};
use super::model::{failing_first, CollectionReport, ReportHead, SCHEMA_VERSION};
use crate::verify::store::StoredFinding;

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

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:16px;margin:22px 0 6px}h4{font-size:15px;margin:0 0 6px}
.warning,.hint{padding:8px 12px;border-radius:6px;margin:8px 0;background:#fff7e0;color:#6b4a00;border:1px solid #f0d48a}
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

pub(super) fn html_head(h: &ReportHead) -> String {
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
    for w in &h.result.warnings {
        let _ = writeln!(s, "<p class=\"warning\">warning: {}</p>", e(w));
    }
    let _ = writeln!(s, "<dl class=\"meta\">");
    let rows: [(&str, String); 9] = [
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
        ("state database", h.target.state_database.clone()),
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
    let _ = writeln!(s, "<h2>Collections</h2>\n<table><thead><tr><th>collection</th><th>source</th><th>dead-lettered</th><th>expired (TTL)</th><th>sampled out</th><th>compared</th><th>expected in target</th><th>target</th><th>missing</th><th>extra</th><th>differing</th><th>dead letters missing</th><th>resolved on recheck</th><th>parity</th></tr></thead><tbody>");
    for r in failing_first(&h.collections)
        .into_iter()
        .chain(std::iter::once(&h.totals))
    {
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
            "<tr{class}><td class=\"mono\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            e(&r.collection),
            r.source,
            r.dead_lettered,
            r.expired,
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

/// A failing collection's heading in the list: its counts and hints.
pub(super) fn html_collection(r: &CollectionReport) -> String {
    let e = html_escape;
    let mut s = String::new();
    let mut counts = Vec::new();
    for (n, what) in [
        (r.missing, "missing"),
        (r.extra, "extra"),
        (r.differing, "differing"),
        (r.dead_letters_missing, "dead letters missing"),
    ] {
        if n > 0 {
            counts.push(format!("{n} {what}"));
        }
    }
    let _ = writeln!(
        s,
        "<h3 class=\"mono\">{}: {}</h3>",
        e(&r.collection),
        e(&counts.join(", "))
    );
    for hint in &r.hints {
        let _ = writeln!(s, "<p class=\"hint\">hint: {}</p>", e(hint));
    }
    s
}

/// The line closing a collection whose list was capped.
pub(super) fn html_more(more: u64, json_file: &str) -> String {
    if more == 0 {
        return String::new();
    }
    format!(
        "<p class=\"omitted\">{more} more mismatches of this collection are not listed here \
         (<code>--max-listed</code>); <code>{}</code> lists them all.</p>\n",
        html_escape(json_file)
    )
}

pub(super) fn html_mismatch(f: &StoredFinding) -> String {
    let e = html_escape;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<section class=\"mm\"><h4><span class=\"kind\">{}</span><span class=\"mono\">{} / {}</span></h4>",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escape_escapes_markup_and_quotes() {
        assert_eq!(
            html_escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
