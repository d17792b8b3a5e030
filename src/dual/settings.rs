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
//!
//! This file reads and writes the document over the store's core; the public calls
//! (`DualStore::refresh_settings`, `publish_mode`, `publish_shadow_read_fraction`) and
//! the poller (`DualStore::spawn_background`) are in the store, which also drains the
//! outbox before a switch to `mongo_only`.

use std::collections::HashMap;

use mongodb::bson::{doc, Bson, Document};

use super::core::Core;
use super::error::DualResult;
use super::mode::Mode;

/// `_id` of the settings document.
pub const SETTINGS_ID: &str = "dual";

fn settings_collection(core: &Core) -> mongodb::Collection<Document> {
    core.collection(&core.config().settings_collection)
}

/// Reads the settings document now and applies it.
pub(crate) async fn refresh(core: &Core) -> DualResult<()> {
    let coll = &core.config().settings_collection;
    let found = settings_collection(core)
        .find_one(doc! {"_id": SETTINGS_ID})
        .await
        .map_err(|e| core.mongo_error("find", coll, e))?;
    let Some(settings) = found else {
        core.modes().apply_settings(HashMap::new());
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
    for (pattern, old, new) in core.modes().apply_settings(modes) {
        tracing::info!(collection = %pattern, from = %old, to = %new, "dual-write mode switched by the settings document");
    }
    match settings.get("shadow_read_fraction") {
        Some(Bson::Double(f)) => core.set_shadow_read_fraction(*f),
        Some(Bson::Int32(i)) => core.set_shadow_read_fraction(f64::from(*i)),
        Some(Bson::Int64(i)) => core.set_shadow_read_fraction(*i as f64),
        _ => {}
    }
    Ok(())
}

/// Writes a collection's mode into the settings document and applies it here. The
/// caller has drained the outbox when the mode is `MongoOnly`.
pub(crate) async fn publish_mode(core: &Core, pattern: &str, mode: Mode) -> DualResult<()> {
    let coll = &core.config().settings_collection;
    settings_collection(core)
        .update_one(
            doc! {"_id": SETTINGS_ID},
            doc! {"$set": { format!("modes.{pattern}"): mode.as_str() }},
        )
        .upsert(true)
        .await
        .map_err(|e| core.mongo_error("update", coll, e))?;
    refresh(core).await
}

/// Writes the shadow-read fraction into the settings document and applies it here.
pub(crate) async fn publish_shadow_read_fraction(core: &Core, fraction: f64) -> DualResult<()> {
    let coll = &core.config().settings_collection;
    settings_collection(core)
        .update_one(
            doc! {"_id": SETTINGS_ID},
            doc! {"$set": { "shadow_read_fraction": fraction.clamp(0.0, 1.0) }},
        )
        .upsert(true)
        .await
        .map_err(|e| core.mongo_error("update", coll, e))?;
    refresh(core).await
}
