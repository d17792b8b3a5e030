//! One process per range: a lease stored in the range's checkpoint record.
//!
//! A run takes the lease of every range it is to copy before it reads anything, so a
//! second process started on the same job (or shard) finds them held and stops, naming
//! the holder, instead of reading the whole source a second time. The holder renews its
//! leases while it runs; a process that dies stops renewing, and once its leases expire
//! (`ttl`, 60 s by default) the next run takes them over: a crashed process blocks
//! nobody for long.
//!
//! Every checkpoint save of a leased range is fenced by the lease's token
//! ([`crate::migrate::checkpoint::CheckpointStore::save`]): a process that was paused
//! past its lease (a stopped VM, `SIGSTOP`) and whose ranges another process took over
//! cannot move their checkpoints any more; its next save or renewal fails with
//! [`Error::LeaseLost`] and it stops.
//!
//! Expiry is judged by the clocks of the processes involved (machines keep them in step
//! with NTP; the ttl is far above their skew).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use mongodb::bson::{doc, oid::ObjectId, DateTime};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::migrate::checkpoint::{CheckpointStore, RangeCheckpoint};

/// Who holds a range, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// Unique to one run of one process: what fences a holder whose lease was taken over.
    pub token: String,
    pub host: String,
    pub pid: u32,
    pub since: DateTime,
    pub renewed_at: DateTime,
    pub expires_at: DateTime,
    /// How long the lease lasts without renewal, in seconds.
    pub ttl_secs: u64,
}

impl Lease {
    /// A new lease for this process.
    pub fn new(ttl: Duration) -> Self {
        let now = DateTime::now();
        Self {
            token: ObjectId::new().to_hex(),
            host: host_name(),
            pid: std::process::id(),
            since: now,
            renewed_at: now,
            expires_at: expiry(now, ttl.as_secs()),
            ttl_secs: ttl.as_secs(),
        }
    }

    /// Moves the expiry to `ttl` from now.
    pub fn refresh(&mut self) {
        self.renewed_at = DateTime::now();
        self.expires_at = expiry(self.renewed_at, self.ttl_secs);
    }

    /// Whether the holder is still within its lease (by this machine's clock).
    pub fn is_live(&self) -> bool {
        self.expires_at > DateTime::now()
    }

    /// Whether a process may still be using the lease: not expired, and not known dead.
    pub fn is_held(&self) -> bool {
        self.is_live() && !self.is_dead_here()
    }

    /// Whether the holder was a process of this machine that no longer exists: its
    /// lease can be taken at once instead of after it expires (a rerun right after a
    /// crash). Same host and same pid as this process means an earlier incarnation
    /// (a restarted container is pid 1 again). A pid that exists is taken as alive.
    pub fn is_dead_here(&self) -> bool {
        self.host == host_name()
            && (self.pid == std::process::id()
                || !std::path::Path::new(&format!("/proc/{}", self.pid)).exists())
    }

    /// `host H, pid P, since T, renewed Ns ago, expires in Ms`, for messages.
    pub fn describe(&self) -> String {
        let now = DateTime::now().timestamp_millis();
        let ago = (now - self.renewed_at.timestamp_millis()).max(0) / 1000;
        let left = (self.expires_at.timestamp_millis() - now) / 1000;
        let expiry = if left > 0 {
            format!("expires in {left}s")
        } else {
            format!("expired {}s ago", -left)
        };
        format!(
            "host {}, pid {}, since {}, renewed {ago}s ago, {expiry}",
            self.host,
            self.pid,
            self.since.try_to_rfc3339_string().unwrap_or_default()
        )
    }
}

fn expiry(from: DateTime, ttl_secs: u64) -> DateTime {
    DateTime::from_millis(from.timestamp_millis() + (ttl_secs as i64) * 1000)
}

/// This machine's name, for the holder shown to other processes and in `status`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The leases this process holds, taken at the start of a run and renewed until each
/// range is released.
pub struct Leases {
    store: CheckpointStore,
    lease: Lease,
    held: Mutex<BTreeSet<String>>,
}

impl Leases {
    pub fn new(store: CheckpointStore, ttl: Duration) -> Self {
        Self {
            store,
            lease: Lease::new(ttl),
            held: Mutex::new(BTreeSet::new()),
        }
    }

    /// Takes the lease of `record`'s range (stored in the record and in MongoDB, where
    /// the record is created if it was not there): free, expired, already ours, or held
    /// by a process of this machine that no longer exists is taken; held by a live
    /// process is [`Error::LeaseHeld`].
    pub async fn acquire(&self, record: &mut RangeCheckpoint) -> Result<()> {
        let mut lease = self.lease.clone();
        lease.refresh();
        let as_bson = mongodb::bson::to_bson(&lease).map_err(|e| Error::Internal(e.to_string()))?;
        // Each pass either takes the lease or sees who holds it; a pass only repeats
        // when the record changed between two commands (another process raced us).
        for _ in 0..5 {
            let now = DateTime::now();
            let taken = self
                .store
                .update_range(
                    "take a range lease",
                    &record.id,
                    doc! {
                        "$or": [
                            { "lease": { "$exists": false } },
                            { "lease": null },
                            { "lease.expires_at": { "$lt": now } },
                            { "lease.token": &lease.token },
                        ],
                    },
                    doc! { "$set": { "lease": &as_bson } },
                )
                .await?;
            if taken == 1 {
                return self.took(record, lease);
            }
            let stored = self.store.load_range(&record.id).await?;
            match stored.and_then(|r| r.lease) {
                None => {
                    let mut fresh = record.clone();
                    fresh.lease = Some(lease.clone());
                    if self.store.insert_range(&fresh).await? {
                        return self.took(record, lease);
                    }
                }
                Some(holder) if holder.is_dead_here() => {
                    let taken = self
                        .store
                        .update_range(
                            "take a range lease",
                            &record.id,
                            doc! { "lease.token": &holder.token },
                            doc! { "$set": { "lease": &as_bson } },
                        )
                        .await?;
                    if taken == 1 {
                        tracing::warn!(range = %record.id, "took over the lease of a process of this machine that no longer runs ({})", holder.describe());
                        return self.took(record, lease);
                    }
                }
                Some(holder) if holder.is_live() => {
                    return Err(Error::LeaseHeld {
                        range: record.id.clone(),
                        holder: holder.describe(),
                    })
                }
                // Expired since the first command: the next pass takes it.
                Some(_) => {}
            }
        }
        Err(Error::Contention {
            what: format!("the lease of range {}", record.id),
            message: "it changed hands five times while this run tried to take it".into(),
        })
    }

    fn took(&self, record: &mut RangeCheckpoint, lease: Lease) -> Result<()> {
        if let Some(old) = record.lease.as_ref().filter(|l| l.token != lease.token) {
            tracing::info!(range = %record.id, "took over the lease of a process that stopped renewing it ({})", old.describe());
        }
        record.lease = Some(lease);
        self.held.lock().unwrap().insert(record.id.clone());
        Ok(())
    }

    /// Stops renewing `id` (its record's last save cleared or fenced the lease).
    pub fn forget(&self, id: &str) {
        self.held.lock().unwrap().remove(id);
    }

    /// Renews every held lease each quarter of the ttl. Returns only when one was lost
    /// (another process took it over, or the record was deleted): the run must stop.
    pub async fn keep(&self) -> Error {
        let every = Duration::from_secs(self.lease.ttl_secs.max(1)).div_f64(4.0);
        loop {
            tokio::time::sleep(every).await;
            let ids: Vec<String> = self.held.lock().unwrap().iter().cloned().collect();
            for id in ids {
                let mut lease = self.lease.clone();
                lease.refresh();
                let renewed = self
                    .store
                    .update_range(
                        "renew a range lease",
                        &id,
                        doc! { "lease.token": &lease.token },
                        doc! { "$set": {
                            "lease.renewed_at": lease.renewed_at,
                            "lease.expires_at": lease.expires_at,
                        } },
                    )
                    .await;
                match renewed {
                    Ok(1) => {}
                    // Released between the listing and the renewal.
                    Ok(_) if !self.held.lock().unwrap().contains(&id) => {}
                    Ok(_) => return Error::LeaseLost { range: id },
                    // A renewal that fails is tried again at the next tick; the lease
                    // lasts four of them.
                    Err(e) => tracing::warn!(range = %id, "could not renew the range's lease: {e}"),
                }
            }
        }
    }

    /// Gives the leases this process still holds back (a run that stops before copying
    /// them), so the next run need not wait for them to expire.
    pub async fn release_all(&self) {
        let ids: Vec<String> = std::mem::take(&mut *self.held.lock().unwrap())
            .into_iter()
            .collect();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.store.release_many(&ids, &self.lease.token).await {
            tracing::warn!("could not release the range leases (they expire by themselves): {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_ttl_after_its_renewal_and_says_who_holds_it() {
        let mut lease = Lease::new(Duration::from_secs(60));
        assert!(lease.is_live());
        assert_eq!(
            lease.expires_at.timestamp_millis() - lease.renewed_at.timestamp_millis(),
            60_000
        );
        let text = lease.describe();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(
            text.contains("expires in 60s") || text.contains("expires in 59s"),
            "{text}"
        );
        lease.ttl_secs = 0;
        lease.refresh();
        std::thread::sleep(Duration::from_millis(5));
        assert!(!lease.is_live());
        assert!(lease.describe().contains("expired"), "{}", lease.describe());
        assert_ne!(Lease::new(Duration::from_secs(1)).token, lease.token);
    }

    #[test]
    fn a_holder_of_this_machine_that_no_longer_runs_is_known_dead() {
        let mut lease = Lease::new(Duration::from_secs(60));
        // Same host and pid as this process, another token: an earlier incarnation.
        assert!(lease.is_dead_here() && !lease.is_held());
        // A process of this machine that exists (pid 1 always does).
        lease.pid = 1;
        assert!(!lease.is_dead_here() && lease.is_held());
        // Above the kernel's pid limit: no such process.
        lease.pid = 4_194_304 + 1;
        assert!(lease.is_dead_here());
        // Another machine's process is judged by its expiry alone.
        lease.host = "elsewhere".into();
        assert!(!lease.is_dead_here() && lease.is_held());
    }
}
