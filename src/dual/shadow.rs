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
//! * `skipped`: sampled, but `max_shadow_in_flight` comparisons were already running;
//! * `error`: the other database could not be read.
//!
//! This file owns the sampling and the comparison; the read path only says what it
//! read (`ShadowSide`).

use std::sync::Arc;

use mongodb::bson::RawDocumentBuf;

use super::core::Core;
use super::op::Target;
use crate::sink::guard::{guard_time, GUARD_FIELD};
use crate::verify::compare::{diff_documents, documents_equal};

/// Differing fields logged per mismatch.
const MAX_LOGGED_DIFFS: usize = 20;

/// What the read path already has, for a shadow comparison.
pub(crate) enum ShadowSide {
    /// The read came from Firestore: its shaped document (stamped).
    Firestore(Option<RawDocumentBuf>),
    /// The read came from MongoDB: the stored document.
    Mongo(Option<RawDocumentBuf>),
}

/// Whether this read is one of the sampled ones (the fraction may change at run time).
pub(crate) fn sampled(core: &Core) -> bool {
    let p = core.shadow_read_fraction();
    p > 0.0 && (p >= 1.0 || rand::random::<f64>() < p)
}

/// Compares in the background, if a slot is free; otherwise counts a skip.
pub(crate) fn spawn(core: &Arc<Core>, t: Target, primary: ShadowSide) {
    let Some(permit) = core.try_shadow_permit() else {
        count(core, &t, "skipped");
        return;
    };
    let core = core.clone();
    tokio::spawn(async move {
        let _permit = permit;
        compare(&core, &t, primary).await;
    });
}

async fn compare(core: &Core, t: &Target, primary: ShadowSide) {
    let other = match &primary {
        ShadowSide::Firestore(_) => core.mongo_get(t).await,
        ShadowSide::Mongo(_) => {
            async {
                let (mut states, _) = core.fs_get(std::slice::from_ref(&t.name)).await?;
                match states.remove(&t.name).flatten() {
                    Some(d) => Ok(Some(core.transform(&d)?.item.doc)),
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
                return count(core, t, "error");
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
    count(core, t, outcome);
}

fn count(core: &Core, t: &Target, outcome: &str) {
    core.metrics()
        .shadow_reads
        .with_label_values(&[&t.pattern, outcome])
        .inc();
}
