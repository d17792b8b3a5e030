//! One process does a job-wide step: plan the job (check the target, split the key
//! space, store the ranges) or build the indexes once every range is copied. N shard
//! processes started at the same instant (a Kubernetes Indexed Job, a Cloud Run job)
//! race for a claim record; the winner does the step while renewing its claim, the
//! others wait for the plan (or leave the indexes to the winner). A claimer that dies
//! stops renewing and its claim is taken over once expired — at once when it was a
//! process of this machine that no longer exists — so a crash blocks nobody for long.
//!
//! Claims are records `{_id: "<job>#<step>", job, kind: "claim", lease}` beside the
//! job's checkpoints ([`crate::migrate::checkpoint`]); the lease is the ranges' kind
//! ([`crate::migrate::lease::Lease`]).

use std::future::Future;
use std::time::Duration;

use mongodb::bson::{doc, Document};
use mongodb::Collection;

use crate::error::{Error, Result};
use crate::migrate::checkpoint::CheckpointStore;
use crate::migrate::lease::Lease;
use crate::mongo::is_duplicate_key;

/// A job-wide step that one process does.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    /// Check the target, split the source into ranges, store the job.
    Plan,
    /// Build the mappings' indexes after the last range.
    Indexes,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Plan => "plan",
            Step::Indexes => "indexes",
        }
    }
}

/// The outcome of trying to claim a step.
pub enum Claim {
    /// This process holds it: do the step inside [`Held::hold_while`].
    Mine(Held),
    /// Another live process holds it.
    Theirs(Lease),
}

/// A claim this process holds.
pub struct Held {
    records: Collection<Document>,
    store: CheckpointStore,
    id: String,
    lease: Lease,
}

/// Tries to claim `step` of `job` for `ttl` (renewed while held).
pub async fn claim(store: &CheckpointStore, job: &str, step: Step, ttl: Duration) -> Result<Claim> {
    let records = store.records();
    let id = format!("{job}#{}", step.name());
    let lease = Lease::new(ttl);
    let lease_bson = mongodb::bson::to_bson(&lease).map_err(|e| Error::Internal(e.to_string()))?;
    let held = |lease: Lease| {
        Claim::Mine(Held {
            records: records.clone(),
            store: store.clone(),
            id: id.clone(),
            lease,
        })
    };
    // A pass repeats only when the record changed between two commands.
    for _ in 0..5 {
        let record = doc! { "_id": &id, "job": job, "kind": "claim", "lease": &lease_bson };
        let inserted = tokio::time::timeout(
            crate::mongo::ANSWER_TIMEOUT,
            std::future::IntoFuture::into_future(records.insert_one(&record)),
        )
        .await;
        match inserted {
            Ok(Ok(_)) => return Ok(held(lease)),
            Ok(Err(e)) if is_duplicate_key(&e) => {}
            Ok(Err(e)) => return Err(store.mongo_error("claim a job step", e)),
            Err(_) => return Err(store.no_answer("claim a job step")),
        }
        let stored = store
            .call(
                "read a job step's claim",
                records.find_one(doc! { "_id": &id }),
            )
            .await?;
        let Some(holder) = stored
            .and_then(|d| d.get_document("lease").ok().cloned())
            .and_then(|l| mongodb::bson::from_document::<Lease>(l).ok())
        else {
            // Released since the insert failed: the next pass inserts.
            continue;
        };
        // Ours: an insert that timed out here may still have landed.
        if holder.token == lease.token {
            return Ok(held(lease));
        }
        if holder.is_held() {
            return Ok(Claim::Theirs(holder));
        }
        // Expired, or its process of this machine is gone: take it over.
        let taken = store
            .call(
                "take over a job step's claim",
                records.update_one(
                    doc! { "_id": &id, "lease.token": &holder.token },
                    doc! { "$set": { "lease": &lease_bson } },
                ),
            )
            .await?;
        if taken.matched_count == 1 {
            tracing::warn!(claim = %id, "took over the claim of a process that stopped renewing it ({})", holder.describe());
            return Ok(held(lease));
        }
    }
    Err(Error::Contention {
        what: format!("the claim {id}"),
        message: "it changed hands five times while this run tried to take it".into(),
    })
}

impl Held {
    /// Runs `step` while renewing the claim every quarter of its ttl, then gives the
    /// claim back (also when the step failed, so another process may try at once).
    pub async fn hold_while<T>(self, step: impl Future<Output = Result<T>>) -> Result<T> {
        let every = Duration::from_secs(self.lease.ttl_secs.max(1)).div_f64(4.0);
        let renew = async {
            loop {
                tokio::time::sleep(every).await;
                let mut lease = self.lease.clone();
                lease.refresh();
                let renewed = self
                    .store
                    .call(
                        "renew a job step's claim",
                        self.records.update_one(
                            doc! { "_id": &self.id, "lease.token": &lease.token },
                            doc! { "$set": {
                                "lease.renewed_at": lease.renewed_at,
                                "lease.expires_at": lease.expires_at,
                            } },
                        ),
                    )
                    .await;
                match renewed {
                    Ok(r) if r.matched_count == 1 => {}
                    // Taken over: the other process does the step now; this one stops.
                    Ok(_) => {
                        return Error::LeaseLost {
                            range: self.id.clone(),
                        }
                    }
                    Err(e) => tracing::warn!(claim = %self.id, "could not renew the claim: {e}"),
                }
            }
        };
        let result = tokio::select! {
            r = step => r,
            lost = renew => Err(lost),
        };
        let released = self
            .store
            .call(
                "release a job step's claim",
                self.records
                    .delete_one(doc! { "_id": &self.id, "lease.token": &self.lease.token }),
            )
            .await;
        if let Err(e) = released {
            tracing::warn!(claim = %self.id, "could not release the claim (it expires by itself): {e}");
        }
        result
    }
}
