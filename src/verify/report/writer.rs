//! Writes `PREFIX.json` and `PREFIX.html` while the confirmed mismatches stream from
//! the store: memory for one mismatch at a time, however many are listed. The JSON
//! takes every mismatch ([`ReportWriter::push_json`]); the HTML, collection by
//! collection, the first `--max-listed` of each ([`ReportWriter::html_collection`],
//! [`ReportWriter::push_html`]).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::html::{html_collection, html_head, html_mismatch, html_more};
use super::json::mismatch_json;
use super::model::{CollectionReport, ReportHead};
use super::terminal::TERMINAL_MISMATCHES;
use crate::verify::store::StoredFinding;

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
/// head, [`push_json`](Self::push_json) each mismatch, then per failing collection
/// [`html_collection`](Self::html_collection), [`push_html`](Self::push_html) each
/// listed one and [`html_collection_end`](Self::html_collection_end); then
/// [`finish`](Self::finish).
pub struct ReportWriter {
    json: BufWriter<File>,
    html: BufWriter<File>,
    json_path: PathBuf,
    html_path: PathBuf,
    listed: u64,
    /// Where the unlisted ones are (the state database).
    state_database: String,
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
            state_database: String::new(),
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
        self.state_database = head.target.state_database.clone();
        self.html.write_all(html_head(head).as_bytes())
    }

    /// One mismatch into the JSON list.
    pub fn push_json(&mut self, f: &StoredFinding) -> std::io::Result<()> {
        let entry = mismatch_json(f);
        let sep = if self.listed == 0 {
            "\n    "
        } else {
            ",\n    "
        };
        write!(self.json, "{sep}{}", serde_json::to_string(&entry)?)?;
        self.listed += 1;
        Ok(())
    }

    /// Opens a collection's part of the HTML list: its counts and hints.
    pub fn html_collection(&mut self, row: &CollectionReport) -> std::io::Result<()> {
        self.html.write_all(html_collection(row).as_bytes())
    }

    /// One listed mismatch of the open collection into the HTML page (and the first
    /// few for the terminal).
    pub fn push_html(&mut self, f: &StoredFinding) -> std::io::Result<()> {
        self.html.write_all(html_mismatch(f).as_bytes())?;
        if self.first.len() < TERMINAL_MISMATCHES {
            self.first.push(f.clone());
        }
        Ok(())
    }

    /// Closes a collection's part: says how many of its mismatches were not listed.
    pub fn html_collection_end(
        &mut self,
        row: &CollectionReport,
        listed: u64,
    ) -> std::io::Result<()> {
        let more = row.mismatches().saturating_sub(listed);
        let json = self
            .json_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.html.write_all(html_more(more, &json).as_bytes())
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
                 <code>--max-listed</code>; all are in the <code>_fireshift_verify_mismatches</code> collection \
                 of the database <code>{}</code>).</p>",
                super::html::html_escape(&self.state_database)
            );
        }
        tail.push_str("</main></body></html>\n");
        self.html.write_all(tail.as_bytes())?;
        self.json.flush()?;
        self.html.flush()?;
        Ok(self.first)
    }
}
