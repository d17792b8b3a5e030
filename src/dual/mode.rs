//! Per-collection modes and the table the store consults on every call.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// Where a collection's writes and reads go. The order is the adoption order; moving
/// back one step is the rollback (see docs/dual.md).
///
/// | mode | writes | reads | secondary |
/// |---|---|---|---|
/// | `FirestoreOnly` | Firestore | Firestore | none |
/// | `DualReadFirestore` | Firestore, then MongoDB | Firestore (shadow: MongoDB) | MongoDB |
/// | `DualReadMongo` | Firestore, then MongoDB | MongoDB (shadow: Firestore) | MongoDB |
/// | `MongoOnly` | MongoDB | MongoDB | none |
///
/// Firestore stays the write primary in both dual modes, so the mapping only ever runs
/// one way (Firestore document → MongoDB document) and the outbox lives in Firestore.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    FirestoreOnly,
    DualReadFirestore,
    DualReadMongo,
    MongoOnly,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::FirestoreOnly,
        Mode::DualReadFirestore,
        Mode::DualReadMongo,
        Mode::MongoOnly,
    ];

    /// Whether writes go to Firestore first (every mode but `MongoOnly`).
    pub fn firestore_primary(self) -> bool {
        self != Mode::MongoOnly
    }

    /// Whether MongoDB receives each write after Firestore.
    pub fn mongo_secondary(self) -> bool {
        matches!(self, Mode::DualReadFirestore | Mode::DualReadMongo)
    }

    /// Whether reads are answered from MongoDB.
    pub fn reads_mongo(self) -> bool {
        matches!(self, Mode::DualReadMongo | Mode::MongoOnly)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::FirestoreOnly => "firestore_only",
            Mode::DualReadFirestore => "dual_read_firestore",
            Mode::DualReadMongo => "dual_read_mongo",
            Mode::MongoOnly => "mongo_only",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown mode `{s}`: expected one of firestore_only, dual_read_firestore, dual_read_mongo, mongo_only"
                )
            })
    }
}

/// Modes by collection pattern (`users`, `content/{}/comments`), with a default for
/// the others. Read on every call, written rarely: a std `RwLock` held for a map lookup
/// never across an await.
#[derive(Debug, Default)]
pub struct ModeTable {
    inner: RwLock<Table>,
}

#[derive(Debug, Default, Clone)]
struct Table {
    default: Mode,
    /// Set by code ([`ModeTable::set`]).
    local: HashMap<String, Mode>,
    /// From the settings document; wins over `local` for the patterns it names, so
    /// that every process of a fleet follows the one document.
    settings: HashMap<String, Mode>,
}

impl ModeTable {
    pub fn new(default: Mode) -> Self {
        Self {
            inner: RwLock::new(Table {
                default,
                ..Table::default()
            }),
        }
    }

    /// The mode of a collection pattern.
    pub fn get(&self, pattern: &str) -> Mode {
        let t = self.inner.read().expect("mode table poisoned");
        t.settings
            .get(pattern)
            .or_else(|| t.local.get(pattern))
            .copied()
            .unwrap_or(t.default)
    }

    /// Sets a pattern's mode from code (a settings document naming it still wins).
    pub fn set(&self, pattern: &str, mode: Mode) {
        let mut t = self.inner.write().expect("mode table poisoned");
        t.local.insert(pattern.to_string(), mode);
    }

    /// Replaces the modes read from the settings document; returns the patterns whose
    /// effective mode changed, with old and new mode.
    pub fn apply_settings(&self, settings: HashMap<String, Mode>) -> Vec<(String, Mode, Mode)> {
        let mut t = self.inner.write().expect("mode table poisoned");
        let before = t.clone();
        t.settings = settings;
        let effective = |t: &Table, p: &str| {
            t.settings
                .get(p)
                .or_else(|| t.local.get(p))
                .copied()
                .unwrap_or(t.default)
        };
        let mut names: Vec<&String> = before.settings.keys().chain(t.settings.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|p| {
                let (old, new) = (effective(&before, p), effective(&t, p));
                (old != new).then(|| (p.clone(), old, new))
            })
            .collect()
    }

    /// Every pattern with an explicit mode, and the default.
    pub fn snapshot(&self) -> (Mode, Vec<(String, Mode)>) {
        let t = self.inner.read().expect("mode table poisoned");
        let mut all: HashMap<String, Mode> = t.local.clone();
        all.extend(t.settings.iter().map(|(k, v)| (k.clone(), *v)));
        let mut v: Vec<(String, Mode)> = all.into_iter().collect();
        v.sort();
        (t.default, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_mode() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert!("dual"
            .parse::<Mode>()
            .unwrap_err()
            .contains("dual_read_mongo"));
    }

    #[test]
    fn settings_win_over_code_and_report_changes() {
        let t = ModeTable::new(Mode::FirestoreOnly);
        t.set("users", Mode::DualReadFirestore);
        assert_eq!(t.get("users"), Mode::DualReadFirestore);
        assert_eq!(t.get("content"), Mode::FirestoreOnly);
        let changed = t.apply_settings(HashMap::from([("users".into(), Mode::DualReadMongo)]));
        assert_eq!(
            changed,
            vec![("users".into(), Mode::DualReadFirestore, Mode::DualReadMongo)]
        );
        assert_eq!(t.get("users"), Mode::DualReadMongo);
        // The settings document drops the pattern: the code's mode applies again.
        let changed = t.apply_settings(HashMap::new());
        assert_eq!(
            changed,
            vec![("users".into(), Mode::DualReadMongo, Mode::DualReadFirestore)]
        );
    }
}
