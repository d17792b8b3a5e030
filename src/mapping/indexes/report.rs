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
    /// Created or already there.
    pub fn is_ok(&self) -> bool {
        matches!(
            self.outcome,
            IndexOutcome::Created | IndexOutcome::AlreadyExisted
        )
    }
}

/// The report as a table for a terminal, one line per index, then a summary line.
pub fn render_report(reports: &[IndexReport]) -> String {
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
    let _ = writeln!(s, "{:<wc$}  {:<wn$}  result", "collection", "index");
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
        };
        let _ = writeln!(s, "{:<wc$}  {:<wn$}  {result}", r.collection, r.name);
    }
    let count = |f: fn(&IndexOutcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    let _ = write!(
        s,
        "{} indexes: {} created, {} already existed, {} refused, {} clash, {} failed",
        reports.len(),
        count(|o| matches!(o, IndexOutcome::Created)),
        count(|o| matches!(o, IndexOutcome::AlreadyExisted)),
        count(|o| matches!(o, IndexOutcome::Refused { .. })),
        count(|o| matches!(o, IndexOutcome::Clashes { .. })),
        count(|o| matches!(o, IndexOutcome::Failed { .. })),
    );
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
}
