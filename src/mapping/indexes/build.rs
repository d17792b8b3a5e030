//! Building the declared indexes in MongoDB, after a collection's copy (a bulk load
//! without secondary indexes is faster), idempotently.
//!
//! One `createIndexes` command per index, so one refusal does not hide the others:
//! creating an index that exists with the same spec is a no-op the server reports
//! ("all indexes already exist"); an index the server cannot build (e.g. a text index on
//! a server without text search, code 67) is reported as refused with the server's code
//! and message; one that clashes with an existing index (same keys under another name,
//! code 85, or the same name with other keys or options, code 86) is reported as a
//! clash. Nothing is ever dropped: resolving a clash is the operator's call.
//!
//! Only collections that exist get their indexes: `createIndexes` creates the
//! collection it names, so building every declared index would leave an empty
//! collection for each mapping whose source had no document (some sixty of them for a
//! three-collection source with an app's full mappings). A copy creates a collection
//! with its first document, so after a copy "exists" means "received documents" (or was
//! made by the operator, whose collection gets its indexes and clash reports). The
//! indexes of a missing collection are reported as skipped; `fireshift indexes` builds
//! them once documents have landed.

use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::Database;

use super::def::IndexDef;
use super::report::{IndexOutcome, IndexReport};
use crate::mapping::MappingSet;
use crate::mongo::DUPLICATE_KEY;
use crate::retry::RetryPolicy;

/// Builds every index of the set whose collection exists (idempotent: existing
/// identical indexes are left as they are); the others are reported as
/// [`IndexOutcome::NoDocuments`]. Never stops at a refusal: each index gets its own
/// report.
///
/// An index whose name already exists is compared with the declaration first, ignoring
/// what servers add on their own (`v`, `2dsphereIndexVersion`, number types), because
/// not every server does that comparison itself when asked to create it again.
pub async fn build(db: &Database, set: &MappingSet) -> Vec<IndexReport> {
    let mut out = Vec::new();
    // Per collection: its indexes, or `None` when it does not exist.
    let mut existing: std::collections::BTreeMap<String, Option<Vec<Document>>> =
        Default::default();
    for ix in set.indexes() {
        if !existing.contains_key(&ix.collection) {
            let listed = if exists(db, &ix.collection).await {
                // A listing that fails counts as none: the `createIndexes` that
                // follows then reports the real problem.
                Some(
                    crate::mongo::list_indexes(db, &ix.collection)
                        .await
                        .unwrap_or_default(),
                )
            } else {
                None
            };
            existing.insert(ix.collection.clone(), listed);
        }
        let report = |outcome| IndexReport {
            collection: ix.collection.clone(),
            name: ix.name.clone(),
            spec: ix.describe(),
            outcome,
        };
        let Some(listed) = &existing[&ix.collection] else {
            out.push(report(IndexOutcome::NoDocuments));
            continue;
        };
        let same_name = listed
            .iter()
            .find(|e| e.get_str("name").ok() == Some(ix.name.as_str()));
        out.push(match same_name {
            Some(e) if equivalent(e, ix) => report(IndexOutcome::AlreadyExisted),
            Some(e) => report(IndexOutcome::Clashes {
                code: 86,
                message: format!(
                    "an index named `{}` already exists with another spec: {e}",
                    ix.name
                ),
            }),
            None => build_one(db, ix).await,
        });
    }
    out
}

/// Whether the collection exists. When that cannot be asked, it is assumed to (the
/// `createIndexes` that follows then reports the real problem rather than a skip
/// hiding it).
async fn exists(db: &Database, collection: &str) -> bool {
    db.list_collection_names()
        .filter(doc! { "name": collection })
        .await
        .map_or(true, |names| !names.is_empty())
}

/// Whether an existing index (as `listIndexes` shows it) is the declared one.
fn equivalent(existing: &Document, ix: &IndexDef) -> bool {
    let number = |b: Option<&Bson>| match b {
        Some(Bson::Int32(i)) => Some(f64::from(*i)),
        Some(Bson::Int64(i)) => Some(*i as f64),
        Some(Bson::Double(d)) => Some(*d),
        _ => None,
    };
    let Ok(keys) = existing.get_document("key") else {
        return false;
    };
    let keys_match = keys.len() == ix.keys.len()
        && keys.iter().zip(&ix.keys).all(|((k, v), (want, kind))| {
            k == want
                && match kind.bson() {
                    Bson::String(s) => v.as_str() == Some(s.as_str()),
                    n => number(Some(v)) == number(Some(&n)),
                }
        });
    let flag = |k: &str| existing.get_bool(k).unwrap_or(false);
    let relaxed =
        |d: Option<&Document>| d.map(|d| Bson::Document(d.clone()).into_relaxed_extjson());
    keys_match
        && flag("unique") == ix.unique
        && flag("sparse") == ix.sparse
        && number(existing.get("expireAfterSeconds")) == ix.expire_after_seconds.map(|s| s as f64)
        && relaxed(existing.get_document("partialFilterExpression").ok())
            == relaxed(ix.partial.as_ref())
}

async fn build_one(db: &Database, ix: &IndexDef) -> IndexReport {
    let cmd = doc! { "createIndexes": &ix.collection, "indexes": [ix.spec_document()] };
    let policy = RetryPolicy {
        deadline: Duration::from_secs(60),
        ..RetryPolicy::default()
    };
    let mut backoff = policy.backoff();
    let outcome = loop {
        match db.run_command(cmd.clone()).await {
            Ok(reply) => {
                let n = |k: &str| match reply.get(k) {
                    Some(Bson::Int32(i)) => Some(i64::from(*i)),
                    Some(Bson::Int64(i)) => Some(*i),
                    _ => None,
                };
                let same = n("numIndexesBefore").is_some()
                    && n("numIndexesBefore") == n("numIndexesAfter");
                let noted = reply
                    .get_str("note")
                    .is_ok_and(|s| s.contains("already exist"));
                break if same || noted {
                    IndexOutcome::AlreadyExisted
                } else {
                    IndexOutcome::Created
                };
            }
            Err(e) => {
                if let ErrorKind::Command(c) = e.kind.as_ref() {
                    if matches!(c.code, 85 | 86) {
                        break IndexOutcome::Clashes {
                            code: c.code,
                            message: c.message.clone(),
                        };
                    }
                    // 11000 is retried by the sink (two upserts of one `_id` racing),
                    // but here it means the data breaks a unique key: waiting changes
                    // nothing.
                    if c.code == DUPLICATE_KEY || !crate::mongo::is_retryable(&e) {
                        break IndexOutcome::Refused {
                            code: c.code,
                            message: c.message.clone(),
                        };
                    }
                }
                let err = crate::error::Error::Mongo {
                    operation: "createIndexes",
                    target: format!("{}.{}", db.name(), ix.collection),
                    uri: String::new(),
                    retryable: crate::mongo::is_retryable(&e),
                    message: e.to_string(),
                };
                if let Err(last) = backoff
                    .wait(err, &format!("create index {}", ix.name))
                    .await
                {
                    break IndexOutcome::Failed {
                        message: last.to_string(),
                    };
                }
            }
        }
    };
    IndexReport {
        collection: ix.collection.clone(),
        name: ix.name.clone(),
        spec: ix.describe(),
        outcome,
    }
}
