//! The plan report: one JSON document with a stable, versioned schema (docs/plan.md),
//! rendered as Markdown for people and as a short table for the terminal. Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::forecast::{self, Forecast};
use super::infer::{display_path, mapping_path, Segment};
use super::query::{count_reads, UsageSnapshot};
use super::suggest::{self, Suggestion, Universe};
use super::{CountMethod, Discovery, Plan};

/// The `schema` value of this version of the report.
pub const SCHEMA: &str = "fireshift-plan/1";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub generated_at: String,
    pub source: SourceInfo,
    pub options: Options,
    pub elapsed_secs: f64,
    pub totals: Totals,
    pub reads: Reads,
    /// The wall time and cost of migrate + verify for the shards and rate limits `plan`
    /// was given ([`Report::with_forecast`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Forecast>,
    pub collections: Vec<CollectionReport>,
    pub conflicts: Vec<ConflictReport>,
    pub warnings: Vec<String>,
    pub limitations: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub project: String,
    pub database_id: String,
    pub endpoint: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub sample: usize,
    pub full_scan: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub collections: usize,
    pub documents: u64,
    /// Every count is exact (no `estimated` count method).
    pub documents_exact: bool,
    pub sampled: u64,
    pub fields: usize,
    pub conflicts: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reads {
    /// How the estimates below are computed.
    pub formula: String,
    /// Documents in the database (the sum of the counts).
    pub documents: u64,
    /// `migrate` (one range): every document once, plus its ETA count.
    pub migrate: u64,
    /// What `migrate` adds when it runs on a terminal: one collection-group count per
    /// pattern for its progress bar, `ceil(n / 1000)` reads each (at least 1).
    pub migrate_terminal_extra: u64,
    /// `verify`: every document once (rechecks of suspects add one read each).
    pub verify: u64,
    pub total: u64,
    /// What `plan --full-scan` would be billed: every document once.
    pub plan_full_scan: u64,
    /// What this run asked of Firestore and what it is billed.
    pub this_run: UsageSnapshot,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollectionReport {
    /// `content/{}/comments`.
    pub pattern: String,
    pub collection_id: String,
    pub depth: usize,
    pub discovered_by: Discovery,
    pub documents: u64,
    pub count_method: CountMethod,
    pub count_exact: bool,
    pub sampled: u64,
    pub empty_documents: u64,
    /// Field occurrences past the per-pattern path limit, not analysed.
    pub fields_not_tracked: u64,
    /// The skeleton's target collection and file name.
    pub target: String,
    pub mapping_file: String,
    pub fields: Vec<FieldReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldReport {
    /// For people: mapping syntax when it has one (`` `a.b`.c ``), `*` for any key of a
    /// map keyed by ids.
    pub path: String,
    /// The raw segments; `null` = any key of a map keyed by ids.
    pub segments: Vec<Option<String>>,
    /// The path in mapping syntax; `null` when mapping rules cannot address it.
    pub mapping_path: Option<String>,
    pub in_array: bool,
    /// Sampled documents that have the field (any value, null included).
    pub present: u64,
    /// `present / sampled`, 4 decimals.
    pub frequency: f64,
    /// Value type → sampled documents in which the field had it.
    pub types: BTreeMap<String, u64>,
    /// For arrays: element type → sampled documents with such an element.
    pub element_types: BTreeMap<String, u64>,
    pub conflict: bool,
    pub mixed_elements: bool,
    /// Reference values at this path: pattern they point into → values.
    pub references_to: BTreeMap<String, u64>,
    pub suggestions: Vec<Suggestion>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConflictReport {
    pub collection: String,
    pub path: String,
    pub types: BTreeMap<String, u64>,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Builds the report from a plan.
pub fn build(plan: &Plan, generated_at: &str) -> Report {
    let names = super::names::names(plan.patterns.keys());
    let universe = Universe {
        roots: plan
            .patterns
            .values()
            .filter(|p| p.pattern.depth() == 1)
            .map(|p| suggest::RootIds {
                pattern: &p.pattern,
                stats: &p.stats,
                count: Some(p.documents),
            })
            .collect(),
    };
    let mut collections = Vec::new();
    let mut conflicts = Vec::new();
    for (pattern, pp) in &plan.patterns {
        let suggestions = suggest::suggest(pattern, &pp.stats, &universe);
        let sampled = pp.stats.sampled;
        let fields: Vec<FieldReport> = pp
            .stats
            .fields
            .iter()
            .map(|(path, f)| {
                let kinds = |m: &BTreeMap<super::infer::Kind, u64>| {
                    m.iter().map(|(k, n)| (k.name().to_string(), *n)).collect()
                };
                FieldReport {
                    path: display_path(path),
                    segments: path
                        .iter()
                        .map(|s| match s {
                            Segment::Name(n) => Some(n.clone()),
                            Segment::AnyKey => None,
                        })
                        .collect(),
                    mapping_path: mapping_path(path),
                    in_array: f.in_array,
                    present: f.present,
                    frequency: if sampled == 0 {
                        0.0
                    } else {
                        round4(f.present as f64 / sampled as f64)
                    },
                    types: kinds(&f.types),
                    element_types: kinds(&f.element_types),
                    conflict: f.is_conflict(),
                    mixed_elements: f.mixed_elements(),
                    references_to: f.references.clone(),
                    suggestions: suggestions.get(path).cloned().unwrap_or_default(),
                }
            })
            .collect();
        for f in fields.iter().filter(|f| f.conflict) {
            conflicts.push(ConflictReport {
                collection: pattern.to_string(),
                path: f.path.clone(),
                types: f.types.clone(),
            });
        }
        let (target, file) = names[pattern].clone();
        collections.push(CollectionReport {
            pattern: pattern.to_string(),
            collection_id: pattern.collection_id().to_string(),
            depth: pattern.depth(),
            discovered_by: pp.discovered_by,
            documents: pp.documents,
            count_method: pp.count_method,
            count_exact: pp.count_method.is_exact(),
            sampled,
            empty_documents: pp.stats.empty_documents,
            fields_not_tracked: pp.stats.paths_not_tracked,
            target,
            mapping_file: file,
            fields,
        });
    }
    let documents: u64 = collections.iter().map(|c| c.documents).sum();
    let migrate = documents + count_reads(documents);
    let verify = documents;
    let mut limitations = vec![
        "Types, frequencies, conflicts and suggestions describe the sampled documents only: a type that no sampled document has is not reported.".to_string(),
        "No field value is stored in the report; string shapes (dates, numbers, ids) are counted, not copied.".to_string(),
    ];
    if !plan.full_scan {
        limitations.push(
            "Discovery is bounded by the sample: a subcollection that exists only under parent documents that were neither sampled nor probed is not listed (its documents are counted under a discovered pattern with the same collection id when there is one). `--full-scan` lists every pattern exactly.".to_string(),
        );
        limitations.push(
            "A `group` count is the collection group's: it also includes any undiscovered pattern with the same collection id.".to_string(),
        );
    } else {
        limitations.push(
            "With --full-scan the sample of each pattern is its first documents in __name__ order (for a subcollection: those of the first parents).".to_string(),
        );
    }
    Report {
        schema: SCHEMA,
        generated_at: generated_at.to_string(),
        source: SourceInfo {
            project: plan.project.clone(),
            database_id: plan.database_id.clone(),
            endpoint: plan.endpoint.clone(),
        },
        options: Options {
            sample: plan.sample,
            full_scan: plan.full_scan,
        },
        elapsed_secs: round4(plan.elapsed.as_secs_f64()),
        totals: Totals {
            collections: collections.len(),
            documents,
            documents_exact: collections.iter().all(|c| c.count_exact),
            sampled: collections.iter().map(|c| c.sampled).sum(),
            fields: collections.iter().map(|c| c.fields.len()).sum(),
            conflicts: conflicts.len(),
        },
        reads: Reads {
            formula: "D = documents in the database (sum of the counts). migrate = D (each document read once by the kindless query) + ceil(D / 1000) (the aggregation count behind the ETA; counts are billed 1 read per started 1000 index entries, at least 1). verify = D (each document read once; each suspect rechecked adds 1). total = migrate + verify = 2D + ceil(D / 1000). On a terminal, migrate also counts each pattern's collection group for its progress bar: + the sum over patterns of ceil(n / 1000) (`migrate_terminal_extra`). With `migrate --ranges R` (R > 1), add the split's counts: about 4R count queries of at least 1 read each, plus ceil(D / 1000).".to_string(),
            documents,
            migrate,
            migrate_terminal_extra: collections
                .iter()
                .filter(|c| c.documents > 0)
                .map(|c| count_reads(c.documents))
                .sum(),
            verify,
            total: migrate + verify,
            plan_full_scan: documents.max(1),
            this_run: plan.usage,
        },
        forecast: None,
        collections,
        conflicts,
        warnings: plan.warnings.clone(),
        limitations,
    }
}

impl Report {
    /// Adds the forecast of migrate + verify over this report's documents.
    pub fn with_forecast(mut self, assumptions: &forecast::Assumptions) -> Self {
        let roots = self.collections.iter().filter(|c| c.depth == 1).count();
        self.forecast = Some(forecast::forecast(
            assumptions,
            self.totals.documents,
            roots,
        ));
        self
    }
}

fn kind_list(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
        .replace('`', "\\`")
}

fn code(s: &str) -> String {
    // A code span is fenced by more backticks than the longest run inside it.
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if longest > 0 { " " } else { "" };
    format!(
        "{fence}{pad}{}{pad}{fence}",
        s.replace('|', "\\|").replace('\n', " ")
    )
}

/// The Markdown report.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# fireshift plan — {}\n", cell(&r.source.project));
    let _ = writeln!(
        s,
        "Generated {} from `{}` (database `{}`, {}) in {:.1} s. {}.\n",
        r.generated_at,
        cell(&r.source.project),
        cell(&r.source.database_id),
        cell(&r.source.endpoint),
        r.elapsed_secs,
        if r.options.full_scan {
            format!(
                "Full scan: every document read once, the first {} of each pattern analysed",
                r.options.sample
            )
        } else {
            format!(
                "Sampled: at most {} documents per pattern",
                r.options.sample
            )
        }
    );
    let _ = writeln!(s, "## Summary\n");
    let _ = writeln!(
        s,
        "* {} collection patterns, {} documents{}.",
        r.totals.collections,
        r.totals.documents,
        if r.totals.documents_exact {
            ""
        } else {
            " (some counts are estimates, see `count`)"
        }
    );
    let _ = writeln!(
        s,
        "* {} documents sampled, {} field paths, {} type conflicts.",
        r.totals.sampled, r.totals.fields, r.totals.conflicts
    );
    let _ = writeln!(
        s,
        "* Estimated Firestore reads: **migrate {}**, **verify {}**, total {} (formula below). This plan run: {} billed reads ({} queries returning {} documents, {} counts, {} ListCollectionIds calls).\n",
        r.reads.migrate,
        r.reads.verify,
        r.reads.total,
        r.reads.this_run.billed_reads,
        r.reads.this_run.queries,
        r.reads.this_run.documents_read,
        r.reads.this_run.count_aggregations,
        r.reads.this_run.list_collection_ids_calls
    );
    let _ = writeln!(s, "## Collections\n");
    let _ = writeln!(
        s,
        "| pattern | documents | count | sampled | fields | conflicts | found by | mapping |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---|---|");
    for c in &r.collections {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} → `{}` |",
            code(&c.pattern),
            c.documents,
            serde_json::to_value(c.count_method)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            c.sampled,
            c.fields.len(),
            c.fields.iter().filter(|f| f.conflict).count(),
            serde_json::to_value(c.discovered_by)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            code(&c.mapping_file),
            cell(&c.target)
        );
    }
    let _ = writeln!(s);
    if !r.conflicts.is_empty() {
        let _ = writeln!(s, "## Type conflicts\n");
        let _ = writeln!(s, "| collection | field | types (sampled documents) |");
        let _ = writeln!(s, "|---|---|---|");
        for c in &r.conflicts {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                code(&c.collection),
                code(&c.path),
                kind_list(&c.types)
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Read estimate\n");
    let _ = writeln!(s, "{}\n", r.reads.formula);
    let _ = writeln!(
        s,
        "| | reads |\n|---|---:|\n| documents (D) | {} |\n| migrate | {} |\n| migrate on a terminal, extra | {} |\n| verify | {} |\n| total | {} |\n| `plan --full-scan` | {} |\n",
        r.reads.documents,
        r.reads.migrate,
        r.reads.migrate_terminal_extra,
        r.reads.verify,
        r.reads.total,
        r.reads.plan_full_scan
    );
    if let Some(f) = &r.forecast {
        s.push_str(&forecast::markdown(f));
    }
    let _ = writeln!(s, "## Fields\n");
    for c in &r.collections {
        let _ = writeln!(
            s,
            "### {}\n\n{} documents ({}), {} sampled{}.\n",
            code(&c.pattern),
            c.documents,
            if c.count_exact {
                "counted"
            } else {
                "estimated"
            },
            c.sampled,
            if c.empty_documents > 0 {
                format!(", {} with no fields", c.empty_documents)
            } else {
                String::new()
            }
        );
        if c.fields_not_tracked > 0 {
            let _ = writeln!(
                s,
                "{} field occurrences past the limit of {} paths were not analysed.\n",
                c.fields_not_tracked,
                super::infer::MAX_PATHS
            );
        }
        if c.fields.is_empty() {
            continue;
        }
        let _ = writeln!(s, "| field | share | types | array elements | notes |");
        let _ = writeln!(s, "|---|---:|---|---|---|");
        for f in &c.fields {
            let notes = f
                .suggestions
                .iter()
                .map(|x| match &x.rule {
                    Some(rule) => format!("suggest {} — {}", code(rule), cell(&x.why)),
                    None => cell(&x.why),
                })
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = writeln!(
                s,
                "| {}{} | {:.1}% | {}{} | {} | {} |",
                code(&f.path),
                if f.in_array { " (in array)" } else { "" },
                f.frequency * 100.0,
                kind_list(&f.types),
                if f.conflict { " **conflict**" } else { "" },
                kind_list(&f.element_types),
                notes
            );
        }
        let _ = writeln!(s);
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(s, "## Warnings\n");
        for w in &r.warnings {
            let _ = writeln!(s, "* {}", cell(w));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Limitations\n");
    for l in &r.limitations {
        let _ = writeln!(s, "* {l}");
    }
    s
}

/// The terminal summary.
pub fn terminal(r: &Report) -> String {
    let mut s = String::new();
    let w = r
        .collections
        .iter()
        .map(|c| c.pattern.chars().count())
        .max()
        .unwrap_or(10)
        .max(10);
    let _ = writeln!(
        s,
        "{:<w$}  {:>10}  {:<11}  {:>7}  {:>6}  {:>9}",
        "collection", "documents", "count", "sampled", "fields", "conflicts"
    );
    for c in &r.collections {
        let method = serde_json::to_value(c.count_method)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{:<w$}  {:>10}  {:<11}  {:>7}  {:>6}  {:>9}",
            c.pattern,
            c.documents,
            method,
            c.sampled,
            c.fields.len(),
            c.fields.iter().filter(|f| f.conflict).count()
        );
    }
    let _ = writeln!(
        s,
        "{:<w$}  {:>10}\n\nestimated Firestore reads: migrate {} + verify {} = {} (this plan: {} reads, {:.1} s)",
        "total",
        r.totals.documents,
        r.reads.migrate,
        r.reads.verify,
        r.reads.total,
        r.reads.this_run.billed_reads,
        r.elapsed_secs
    );
    for w in &r.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::code;

    #[test]
    fn code_spans_hold_any_backticks() {
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("`a.b`"), "`` `a.b` ``");
        assert_eq!(code("``x``"), "``` ``x`` ```");
        assert_eq!(code("a|b"), "`a\\|b`");
    }
}
