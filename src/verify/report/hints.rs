//! Hints for known causes of findings, so that a report says *why* where the cause is
//! known instead of listing documents without a word:
//!
//! * a *partial* TTL index of the mappings removes documents from a target collection
//!   after a while when its filter holds: verify counts what a plain TTL index expired
//!   (`crate::verify::ttl`) but cannot tell whether a filter held when the monitor ran,
//!   so documents it finds missing there may simply have expired;
//! * a verify run with other mappings than the job copied with (no `--mappings`, or
//!   another directory) compares against another conversion: every document may look
//!   missing and extra. The job stores its mappings' hash; a different one is a warning
//!   said up front.

use super::model::CollectionReport;
use crate::mapping::MappingSet;

/// A partial TTL index the mappings declare: documents of `collection` that match its
/// filter expire `seconds` after the date in `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtlIndex {
    pub collection: String,
    pub field: String,
    pub seconds: i64,
}

/// The partial TTL indexes of a mapping set (none without mappings).
pub fn ttl_indexes(set: Option<&MappingSet>) -> Vec<TtlIndex> {
    let Some(set) = set else { return Vec::new() };
    set.mappings()
        .flat_map(|m| m.indexes.iter())
        .filter_map(|ix| {
            let seconds = ix.expire_after_seconds?;
            ix.partial.as_ref()?;
            let (field, _) = ix.keys.first()?;
            Some(TtlIndex {
                collection: ix.collection.clone(),
                field: field.clone(),
                seconds,
            })
        })
        .collect()
}

/// Adds the hints that fit each row's findings.
pub fn add_collection_hints(rows: &mut [CollectionReport], ttl: &[TtlIndex]) {
    for row in rows.iter_mut().filter(|r| r.missing > 0) {
        for t in ttl.iter().filter(|t| t.collection == row.collection) {
            row.hints.push(format!(
                "a partial TTL index of the mappings (field {}, {} s) removes the documents its filter selects: missing ones may be expired",
                t.field, t.seconds
            ));
        }
    }
}

/// The warning for each job that copied this source with other mappings than this
/// verify uses: `jobs` holds (job name, mappings hash) of the jobs of the same source
/// in the target database.
pub fn mappings_warnings(
    jobs: &[(String, String)],
    fingerprint: &str,
    with_mappings: bool,
) -> Vec<String> {
    jobs.iter()
        .filter(|(_, hash)| hash != fingerprint)
        .map(|(job, hash)| {
            format!(
                "the job `{job}` copied with mappings hash {hash}, this verify uses {fingerprint}{}: \
                 run with the same --mappings (otherwise documents are compared with another conversion \
                 and may all show as missing and extra)",
                if with_mappings { "" } else { " (no --mappings)" }
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_hint_goes_to_collections_with_missing_documents_only() {
        let ttl = vec![TtlIndex {
            collection: "stories".into(),
            field: "expiresAt".into(),
            seconds: 0,
        }];
        let row = |c: &str, missing| CollectionReport {
            collection: c.into(),
            missing,
            ..Default::default()
        };
        let mut rows = vec![row("stories", 3), row("users", 2), row("stories", 0)];
        add_collection_hints(&mut rows, &ttl);
        assert_eq!(
            rows[0].hints,
            vec!["a partial TTL index of the mappings (field expiresAt, 0 s) removes the documents its filter selects: missing ones may be expired"]
        );
        assert!(rows[1].hints.is_empty() && rows[2].hints.is_empty());
    }

    #[test]
    fn a_job_with_other_mappings_is_warned_about_by_name_and_hashes() {
        let jobs = vec![
            ("a".to_string(), "h1".to_string()),
            ("b".to_string(), "h2".to_string()),
        ];
        let w = mappings_warnings(&jobs, "h1", false);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with(
                "the job `b` copied with mappings hash h2, this verify uses h1 (no --mappings): run with the same --mappings"
            ),
            "{}",
            w[0]
        );
        assert!(mappings_warnings(&jobs[..1], "h1", true).is_empty());
    }
}
