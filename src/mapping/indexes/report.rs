//! What happened to each declared index when it was built ([`IndexReport`]), and the
//! report as a table for a terminal.

use std::fmt::Write as _;

use serde::Serialize;

/// What happened to one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IndexOutcome {
    Created,
    AlreadyExisted,
    /// The server cannot build it (e.g. code 67 `CannotCreateIndex`).
    Refused {
        code: i32,
        message: String,
    },
    /// Conflicts with an existing index (code 85 or 86).
    Clashes {
        code: i32,
        message: String,
    },
    /// The server could not be asked (network, timeout).
    Failed {
        message: String,
    },
    /// Not built: its collection does not exist, no document landed there (building it
    /// would create an empty collection). Not a failure; `fireshift indexes` builds it
    /// once documents have landed.
    NoDocuments,
}

/// The report of one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    pub collection: String,
    pub name: String,
    /// The spec, readable (`{email: 1} unique`).
    pub spec: String,
    #[serde(flatten)]
    pub outcome: IndexOutcome,
}

impl IndexReport {
    /// Created, already there, or not needed yet (its collection does not exist).
    pub fn is_ok(&self) -> bool {
        matches!(
            self.outcome,
            IndexOutcome::Created | IndexOutcome::AlreadyExisted | IndexOutcome::NoDocuments
        )
    }
}

/// Collections named in full on the "skipped" line of [`render_report`].
const SKIPPED_NAMED: usize = 10;

/// The report as a table for a terminal, one line per index built, one line for the
/// indexes skipped because no document landed in their collection, then a summary line.
pub fn render_report(reports: &[IndexReport]) -> String {
    let skipped: Vec<&IndexReport> = reports
        .iter()
        .filter(|r| r.outcome == IndexOutcome::NoDocuments)
        .collect();
    let reports_all = reports;
    let reports: Vec<&IndexReport> = reports
        .iter()
        .filter(|r| r.outcome != IndexOutcome::NoDocuments)
        .collect();
    let wc = reports
        .iter()
        .map(|r| r.collection.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let wn = reports
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut s = String::new();
    if !reports.is_empty() {
        let _ = writeln!(s, "{:<wc$}  {:<wn$}  result", "collection", "index");
    }
    for r in reports {
        let result = match &r.outcome {
            IndexOutcome::Created => format!("created  {}", r.spec),
            IndexOutcome::AlreadyExisted => format!("already existed  {}", r.spec),
            IndexOutcome::Refused { code, message } => {
                format!("REFUSED by the server (code {code}): {message}  [{}]", r.spec)
            }
            IndexOutcome::Clashes { code, message } => format!(
                "CLASHES with an existing index (code {code}): {message}  [{}] — drop or rename one of them",
                r.spec
            ),
            IndexOutcome::Failed { message } => format!("FAILED: {message}  [{}]", r.spec),
            IndexOutcome::NoDocuments => continue,
        };
        let _ = writeln!(s, "{:<wc$}  {:<wn$}  {result}", r.collection, r.name);
    }
    if !skipped.is_empty() {
        let mut collections: Vec<&str> = skipped.iter().map(|r| r.collection.as_str()).collect();
        collections.sort_unstable();
        collections.dedup();
        let mut named = collections
            .iter()
            .take(SKIPPED_NAMED)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if collections.len() > SKIPPED_NAMED {
            let _ = write!(named, " and {} more", collections.len() - SKIPPED_NAMED);
        }
        let _ = writeln!(
            s,
            "skipped {} indexes of {} collections no document landed in (building them would create empty collections; `fireshift indexes` builds them once documents land): {named}",
            skipped.len(),
            collections.len()
        );
    }
    let count = |f: fn(&IndexOutcome) -> bool| reports_all.iter().filter(|r| f(&r.outcome)).count();
    let _ = write!(
        s,
        "{} indexes: {} created, {} already existed, {} refused, {} clash, {} failed",
        reports_all.len(),
        count(|o| matches!(o, IndexOutcome::Created)),
        count(|o| matches!(o, IndexOutcome::AlreadyExisted)),
        count(|o| matches!(o, IndexOutcome::Refused { .. })),
        count(|o| matches!(o, IndexOutcome::Clashes { .. })),
        count(|o| matches!(o, IndexOutcome::Failed { .. })),
    );
    if !skipped.is_empty() {
        let _ = write!(s, ", {} skipped (no documents)", skipped.len());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_every_index_and_its_outcome() {
        let r = vec![
            IndexReport {
                collection: "users".into(),
                name: "email_1".into(),
                spec: "{email: 1} unique".into(),
                outcome: IndexOutcome::Created,
            },
            IndexReport {
                collection: "content".into(),
                name: "caption_text".into(),
                spec: "{caption: \"text\"}".into(),
                outcome: IndexOutcome::Refused {
                    code: 67,
                    message: "text indexes are not supported".into(),
                },
            },
        ];
        let s = render_report(&r);
        assert!(
            s.contains("users       email_1       created  {email: 1} unique"),
            "{s}"
        );
        assert!(
            s.contains(
                "caption_text  REFUSED by the server (code 67): text indexes are not supported"
            ),
            "{s}"
        );
        assert!(
            s.ends_with("2 indexes: 1 created, 0 already existed, 1 refused, 0 clash, 0 failed")
        );
        assert!(!r[1].is_ok() && r[0].is_ok());
    }

    #[test]
    fn indexes_of_empty_collections_are_one_line_and_not_failures() {
        let skip = |collection: &str, name: &str| IndexReport {
            collection: collection.into(),
            name: name.into(),
            spec: "{a: 1}".into(),
            outcome: IndexOutcome::NoDocuments,
        };
        let r = vec![
            IndexReport {
                collection: "users".into(),
                name: "email_1".into(),
                spec: "{email: 1} unique".into(),
                outcome: IndexOutcome::Created,
            },
            skip("tags", "a_1"),
            skip("likes", "a_1"),
            skip("tags", "b_1"),
        ];
        let s = render_report(&r);
        assert!(s.contains("users       email_1  created"), "{s}");
        assert!(
            !s.contains("a_1"),
            "skipped indexes get no line of their own: {s}"
        );
        assert!(
            s.contains("skipped 3 indexes of 2 collections no document landed in"),
            "{s}"
        );
        assert!(s.contains(": likes, tags\n"), "{s}");
        assert!(s.ends_with(
            "4 indexes: 1 created, 0 already existed, 0 refused, 0 clash, 0 failed, 3 skipped (no documents)"
        ));
        assert!(r.iter().all(IndexReport::is_ok));

        let many: Vec<IndexReport> = (0..12).map(|i| skip(&format!("c{i:02}"), "a_1")).collect();
        let s = render_report(&many);
        assert!(s.contains("c09 and 2 more\n"), "{s}");
        assert!(!s.contains("collection  index"), "{s}");
    }
}
