//! The parity report: `PREFIX.json` (schema in `docs/verify-report.md`, versioned by
//! [`SCHEMA_VERSION`]), `PREFIX.html` (one self-contained page: inline CSS, no script,
//! nothing fetched) and a one-screen terminal summary.
//!
//! Both files are written while the confirmed mismatches stream from the store (all of
//! them into the JSON, then each failing collection's first few into the HTML), so the
//! report needs memory for one mismatch at a time, however many are listed.
//!
//! * `model.rs` what the report says: the JSON schema's types, the per-collection lines
//!   and their totals, the verdict.
//! * `writer.rs` writes both files while the mismatches stream in.
//! * `json.rs` one listed mismatch in the JSON file.
//! * `html.rs` the HTML page.
//! * `terminal.rs` the one-screen terminal summary.
//! * `labels.rs` how kinds, changes and `_id`s read for people (HTML and terminal).
//! * [`hints`] known causes of findings (a TTL index of the mappings, a verify with other
//!   mappings than the job's), shown beside them.
//!
//! For action: the HTML page and the terminal show collections without parity first,
//! each with its counts, its hints and at most `--max-listed` of its mismatches; the
//! JSON lists every confirmed mismatch (what `migrate --only-from-report` re-copies).

pub mod hints;
mod html;
mod json;
mod labels;
mod model;
mod terminal;
mod writer;

pub use html::html_escape;
pub use labels::id_text;
pub use model::{
    collection_reports, failing_first, verdict, CollectionReport, OptionsInfo, PhaseSecs,
    ReportHead, ResultInfo, RunInfo, SourceInfo, TargetInfo, ToolInfo, SCHEMA_VERSION,
};
pub use terminal::terminal_summary;
pub use writer::{report_paths, ReportWriter};
