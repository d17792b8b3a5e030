//! Target protection: a new job does not write into collections that already hold
//! documents it did not write (a second copy with other identities would sit beside the
//! first: `users` with string `_id`s and ObjectIds for the same people, and unique
//! indexes refused).
//!
//! The collections a job may write are the mappings' targets, and the default targets
//! (`users`, `users.posts`) of the source's root collections that no mapping file
//! claims. Other collections of the target database (an app's own data) are neither
//! refused nor ever dropped.

use mongodb::bson::doc;
use mongodb::Database;

use crate::error::{Error, Result};
use crate::mapping::transform::Transformer;
use crate::path::CollectionPattern;

/// What to do when a new job's target collections hold documents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Existing {
    /// Stop before reading, naming them ([`Error::TargetNotEmpty`]).
    #[default]
    Refuse,
    /// Write into them (documents with the same `_id` are replaced).
    Allow,
    /// Drop them first.
    Drop,
}

/// A target collection that holds documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupied {
    pub collection: String,
    pub documents: u64,
}

/// Whether a job with `transformer` over a source with root collections `roots` may
/// write collection `name`.
pub fn may_write(transformer: &Transformer, roots: &[String], name: &str) -> bool {
    if crate::own::is_own_collection(name) || name.starts_with("system.") {
        return false;
    }
    let mappings = transformer.mappings();
    if mappings.is_some_and(|set| set.mappings().any(|m| m.target == name)) {
        return true;
    }
    // A default target: the collection ids of its pattern joined by `.`.
    let segments: Vec<&str> = name.split('.').collect();
    let Some(pattern) = CollectionPattern::parse(&segments.join("/{}/")) else {
        return false;
    };
    let claimed = mappings.is_some_and(|set| set.get(&pattern).is_some());
    !claimed && roots.iter().any(|r| r == segments[0])
}

/// The collections of `db` the job may write that hold documents, with their counts.
pub async fn occupied(
    db: &Database,
    transformer: &Transformer,
    roots: &[String],
) -> Result<Vec<Occupied>> {
    let names = db
        .list_collection_names()
        .await
        .map_err(|e| mongo_err("list collections", db.name(), e))?;
    let mut out = Vec::new();
    for name in names {
        if !may_write(transformer, roots, &name) {
            continue;
        }
        let documents = db
            .collection::<mongodb::bson::Document>(&name)
            .count_documents(doc! {})
            .await
            .map_err(|e| mongo_err("count documents", &name, e))?;
        if documents > 0 {
            out.push(Occupied {
                collection: name,
                documents,
            });
        }
    }
    // The largest first: a message that names only some names those that matter most.
    out.sort_by(|a, b| {
        b.documents
            .cmp(&a.documents)
            .then_with(|| a.collection.cmp(&b.collection))
    });
    Ok(out)
}

/// Applies the operator's choice to the occupied collections of a new job: refuse,
/// allow, or drop them (each logged before it goes).
pub async fn protect(db: &Database, occupied: Vec<Occupied>, existing: Existing) -> Result<()> {
    if occupied.is_empty() {
        return Ok(());
    }
    match existing {
        Existing::Allow => {
            tracing::warn!(
                "writing into collections that already hold documents (--allow-existing): {}",
                describe(&occupied)
            );
            Ok(())
        }
        Existing::Refuse => Err(Error::TargetNotEmpty {
            database: db.name().to_string(),
            collections: describe(&occupied),
        }),
        Existing::Drop => {
            for o in &occupied {
                tracing::warn!(collection = %o.collection, documents = o.documents, "dropping a target collection before the copy (--drop-target)");
                db.collection::<mongodb::bson::Document>(&o.collection)
                    .drop()
                    .await
                    .map_err(|e| mongo_err("drop collection", &o.collection, e))?;
            }
            Ok(())
        }
    }
}

/// The totals, then the collections and their counts; past [`SHOWN`] of them, the
/// rest summed.
fn describe(occupied: &[Occupied]) -> String {
    let total: u64 = occupied.iter().map(|o| o.documents).sum();
    let mut parts: Vec<String> = vec![format!(
        "{total} documents in {} collections",
        occupied.len()
    )];
    parts.extend(
        occupied
            .iter()
            .take(SHOWN)
            .map(|o| format!("{} ({} documents)", o.collection, o.documents)),
    );
    if occupied.len() > SHOWN {
        let rest = &occupied[SHOWN..];
        parts.push(format!(
            "and {} more collections ({} documents)",
            rest.len(),
            rest.iter().map(|o| o.documents).sum::<u64>()
        ));
    }
    parts.join(", ")
}

/// Collections named one by one in a message.
const SHOWN: usize = 12;

fn mongo_err(operation: &'static str, target: &str, e: mongodb::error::Error) -> Error {
    Error::Mongo {
        operation,
        target: target.to_string(),
        uri: String::new(),
        retryable: crate::mongo::is_retryable(&e),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_may_write_the_default_targets_of_its_roots_and_nothing_else() {
        let t = Transformer::default();
        let roots = vec!["users".to_string(), "content".to_string()];
        assert!(may_write(&t, &roots, "users"));
        assert!(may_write(&t, &roots, "content.comments"));
        assert!(may_write(&t, &roots, "users.posts.likes"));
        assert!(
            !may_write(&t, &roots, "sessions"),
            "the app's own collection"
        );
        assert!(!may_write(&t, &roots, "_fireshift_checkpoints"));
        assert!(!may_write(&t, &roots, "system.views"));
    }
}
