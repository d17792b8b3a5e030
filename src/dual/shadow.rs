//! Shadow reads: a sampled read also reads the other database and compares, in the
//! background, through the mapping (the Firestore document transformed exactly as the
//! migration would, guard time included, against the stored MongoDB document, in the
//! canonical form the verifier uses). The caller's result never depends on it.
//!
//! Outcomes (metric `fireshift_dual_shadow_reads_total{outcome}`):
//! * `match`;
//! * `stale`: both sides hold the document but different update times — a write in
//!   flight or an outbox entry not yet replayed, not a mapping bug;
//! * `missing`: one side has the document, the other not (also lag, or a lost write);
//! * `mismatch`: the same update time and different content — logged with the
//!   differing field paths;
//! * `error`: the other database could not be read.

use mongodb::bson::RawDocumentBuf;

use super::store::{DualStore, ShadowSide, Target};
use crate::sink::guard::{guard_time, GUARD_FIELD};
use crate::verify::compare::{diff_documents, documents_equal};

/// Differing fields logged per mismatch.
const MAX_LOGGED_DIFFS: usize = 20;

pub(crate) async fn compare(store: &DualStore, t: &Target, primary: ShadowSide) {
    let other = match &primary {
        ShadowSide::Firestore(_) => store.mongo_get(t).await,
        ShadowSide::Mongo(_) => {
            async {
                let (mut states, _) = store.fs_get(std::slice::from_ref(&t.name)).await?;
                match states.remove(&t.name).flatten() {
                    Some(d) => Ok(Some(store.transform(&d)?.item.doc)),
                    None => Ok(None),
                }
            }
            .await
        }
    };
    let (expected, actual): (Option<RawDocumentBuf>, Option<RawDocumentBuf>) =
        match (primary, other) {
            (_, Err(e)) => {
                tracing::warn!(path = %t.rel, error = %e, "shadow read failed");
                return count(store, t, "error");
            }
            (ShadowSide::Firestore(fs), Ok(m)) => (fs, m),
            (ShadowSide::Mongo(m), Ok(fs)) => (fs, m),
        };
    let outcome = match (&expected, &actual) {
        (None, None) => "match",
        (Some(_), None) | (None, Some(_)) => {
            tracing::info!(path = %t.rel, in_firestore = expected.is_some(), in_mongodb = actual.is_some(), "shadow read: document on one side only");
            "missing"
        }
        (Some(e), Some(a)) => {
            if guard_time(e, GUARD_FIELD) != guard_time(a, GUARD_FIELD) {
                "stale"
            } else {
                match documents_equal(e, a) {
                    Ok(true) => "match",
                    Ok(false) => {
                        let (diffs, more) =
                            diff_documents(e, a, MAX_LOGGED_DIFFS).unwrap_or_default();
                        let fields: Vec<String> = diffs
                            .iter()
                            .map(|d| format!("{} ({:?})", d.path, d.change))
                            .collect();
                        tracing::warn!(path = %t.rel, collection = %t.collection, differing = ?fields, more, "shadow read mismatch");
                        "mismatch"
                    }
                    Err(e) => {
                        tracing::warn!(path = %t.rel, error = %e, "shadow read: malformed document");
                        "error"
                    }
                }
            }
        }
    };
    count(store, t, outcome);
}

fn count(store: &DualStore, t: &Target, outcome: &str) {
    store
        .metrics()
        .shadow_reads
        .with_label_values(&[&t.pattern, outcome])
        .inc();
}
