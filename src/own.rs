//! The names of fireshift's own collections, in either database, in one place. Every
//! one starts with [`PREFIX`]: bookkeeping, not application data, so never migrated,
//! verified or reported as "extra".

/// Prefix of every collection fireshift keeps for itself.
pub const PREFIX: &str = "_fireshift";

// In MongoDB (the target database).
/// Per job and range: position, counts, state, the mappings' hash.
pub const CHECKPOINTS: &str = "_fireshift_checkpoints";
/// Documents that could not be converted or written, with the reason.
pub const DEAD_LETTERS: &str = "_fireshift_dead_letters";
/// Verify runs (cursor and counts, for resume).
pub const VERIFY_RUNS: &str = "_fireshift_verify_runs";
/// Verify mismatches (pending, confirmed, resolved).
pub const VERIFY_MISMATCHES: &str = "_fireshift_verify_mismatches";
/// Prefix of a verify run's scratch collection of seen ids.
pub const VERIFY_SEEN_PREFIX: &str = "_fireshift_verify_seen_";
/// The follow ledger: per document of a following job, its place, update time and
/// tombstone (see `crate::ledger`).
pub const LEDGER: &str = "_fireshift_ledger";
/// The dual-write settings document (`_id: "dual"`): modes, shadow-read fraction.
pub const DUAL_SETTINGS: &str = "_fireshift_settings";

// In Firestore (the source database).
/// The dual-write outbox: writes whose MongoDB half is still owed.
pub const OUTBOX: &str = "_fireshift_outbox";

/// Whether a collection (of either database) is one of fireshift's own.
pub fn is_own_collection(name: &str) -> bool {
    name.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_own_name_has_the_prefix() {
        for name in [
            CHECKPOINTS,
            DEAD_LETTERS,
            VERIFY_RUNS,
            VERIFY_MISMATCHES,
            VERIFY_SEEN_PREFIX,
            DUAL_SETTINGS,
            LEDGER,
            OUTBOX,
        ] {
            assert!(is_own_collection(name), "{name}");
        }
        assert!(!is_own_collection("users"));
    }
}
