//! The settings document: one MongoDB document (`_fireshift_settings`, `_id: "dual"`)
//! that every API process polls, so an operator switches a collection's mode for the
//! whole fleet without a restart:
//!
//! ```json
//! { "_id": "dual",
//!   "modes": { "users": "dual_read_mongo", "content/{}/comments": "dual_read_firestore" },
//!   "shadow_read_fraction": 0.05 }
//! ```
//!
//! It lives in MongoDB, the database that stays after Firestore is retired. If it
//! cannot be read, processes keep their current modes (and log). A mode named in the
//! document wins over a mode set by code; an unknown mode string is logged and ignored
//! (the pattern keeps its mode).

use std::collections::HashMap;

use mongodb::bson::{doc, Bson, Document};

use super::error::DualResult;
use super::mode::Mode;
use super::store::DualStore;

/// `_id` of the settings document.
pub const SETTINGS_ID: &str = "dual";

impl DualStore {
    fn settings_collection(&self) -> mongodb::Collection<Document> {
        self.inner
            .mongo
            .collection(&self.inner.config.settings_collection)
    }

    /// Reads the settings document now and applies it.
    pub async fn refresh_settings(&self) -> DualResult<()> {
        let coll = &self.inner.config.settings_collection;
        let found = self
            .settings_collection()
            .find_one(doc! {"_id": SETTINGS_ID})
            .await
            .map_err(|e| self.mongo_error("find", coll, e))?;
        let Some(settings) = found else {
            self.inner.modes.apply_settings(HashMap::new());
            return Ok(());
        };
        let mut modes = HashMap::new();
        if let Ok(m) = settings.get_document("modes") {
            for (pattern, v) in m {
                match v.as_str().map(str::parse::<Mode>) {
                    Some(Ok(mode)) => {
                        modes.insert(pattern.clone(), mode);
                    }
                    Some(Err(e)) => {
                        tracing::error!(collection = %pattern, "settings document: {e}")
                    }
                    None => {
                        tracing::error!(collection = %pattern, "settings document: mode must be a string")
                    }
                }
            }
        }
        for (pattern, old, new) in self.inner.modes.apply_settings(modes) {
            tracing::info!(collection = %pattern, from = %old, to = %new, "dual-write mode switched by the settings document");
        }
        match settings.get("shadow_read_fraction") {
            Some(Bson::Double(f)) => self.set_shadow_read_fraction(*f),
            Some(Bson::Int32(i)) => self.set_shadow_read_fraction(f64::from(*i)),
            Some(Bson::Int64(i)) => self.set_shadow_read_fraction(*i as f64),
            _ => {}
        }
        Ok(())
    }

    /// Writes a collection's mode into the settings document (every polling process
    /// follows within one poll interval) and applies it here at once.
    ///
    /// Switching to `MongoOnly` first drains the outbox (within `drain_timeout`) and
    /// refuses when it cannot: the outbox must be empty when writes flip, or MongoDB
    /// would miss the writes still waiting in it.
    pub async fn publish_mode(
        &self,
        pattern: &str,
        mode: Mode,
        drain_timeout: std::time::Duration,
    ) -> DualResult<()> {
        if mode == Mode::MongoOnly {
            self.drain(drain_timeout).await.map_err(|e| {
                super::error::DualError::Unsupported(format!(
                    "not switching `{pattern}` to mongo_only: the outbox could not be drained ({e})"
                ))
            })?;
        }
        let coll = &self.inner.config.settings_collection;
        self.settings_collection()
            .update_one(
                doc! {"_id": SETTINGS_ID},
                doc! {"$set": { format!("modes.{pattern}"): mode.as_str() }},
            )
            .upsert(true)
            .await
            .map_err(|e| self.mongo_error("update", coll, e))?;
        self.refresh_settings().await
    }

    /// Writes the shadow-read fraction into the settings document and applies it here.
    pub async fn publish_shadow_read_fraction(&self, fraction: f64) -> DualResult<()> {
        let coll = &self.inner.config.settings_collection;
        self.settings_collection()
            .update_one(
                doc! {"_id": SETTINGS_ID},
                doc! {"$set": { "shadow_read_fraction": fraction.clamp(0.0, 1.0) }},
            )
            .upsert(true)
            .await
            .map_err(|e| self.mongo_error("update", coll, e))?;
        self.refresh_settings().await
    }
}
