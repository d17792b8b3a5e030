//! Guarded deletes: what the follower applies when Firestore says a document is gone.
//!
//! A document deleted at time T is removed from MongoDB only when the state it holds is
//! not newer than T (its guard field `<= T`, or absent: a document written without the
//! guard), so a delete that reaches the server after a newer write (a re-created
//! document) never removes the newer state. An embedded document is an element of its
//! parent's array: it is pulled under the same condition on the element's own guard
//! field. Every statement is idempotent: a replayed delete finds nothing to remove.
//!
//! A document whose collection holds embedded children is not deleted but reduced to a
//! holder of its arrays ([`super::holder`]): the children outlive their parent in
//! Firestore, so they do in MongoDB; a holder left with no child is removed.

use mongodb::bson::{doc, Bson, Document};

use super::MongoSink;
use crate::error::{Error, Result};
use crate::mapping::location::Location;
use crate::mapping::MappingSet;
use crate::mongo::ANSWER_TIMEOUT;

/// One document to remove from where it lives.
#[derive(Debug, Clone)]
pub struct Removal {
    pub location: Location,
    /// When Firestore was seen without it (ns since the epoch): the guard's bound.
    pub time: i64,
    /// Its Firestore path relative to the database (for the logs and the holders).
    pub rel: String,
}

/// `{$or: [{F: {$lte: T}}, {F: {$exists: false}}]}`: the state held is not newer than T.
fn not_newer(field: &str, time: i64) -> Document {
    doc! { "$or": [ { field: { "$lte": time } }, { field: { "$exists": false } } ] }
}

impl MongoSink {
    /// Removes every document of `removals` that holds no state newer than its time.
    /// The removals may be in several collections; each collection's share is one
    /// command. In a collection whose documents hold embedded children (`mappings`
    /// say which arrays), a document is reduced to a holder instead. Transient
    /// failures are retried until the retry deadline.
    pub async fn remove(
        &self,
        guard_field: &str,
        mappings: &MappingSet,
        removals: &[Removal],
    ) -> Result<u64> {
        let mut by_collection: std::collections::BTreeMap<&str, Vec<&Removal>> =
            std::collections::BTreeMap::new();
        for r in removals {
            by_collection
                .entry(r.location.collection.as_str())
                .or_default()
                .push(r);
        }
        let mut removed = 0;
        for (collection, rs) in by_collection {
            let (whole, elements): (Vec<&Removal>, Vec<&Removal>) =
                rs.into_iter().partition(|r| r.location.embed.is_none());
            let holds = mappings.embedded_fields_of(collection);
            let (held, whole) = if holds.is_empty() {
                (Vec::new(), whole)
            } else {
                (whole, Vec::new())
            };
            if !held.is_empty() {
                let updates: Vec<Document> = held
                    .iter()
                    .map(|r| {
                        let mut q = not_newer(guard_field, r.time);
                        q.insert("_id", r.location.id.clone());
                        let u = super::holder::reduce_to_holder(&holds, guard_field, r.time);
                        doc! { "q": q, "u": u }
                    })
                    .collect();
                self.write_n("reduce to a holder", "update", collection, updates)
                    .await?;
            }
            let deletes: Vec<Document> = whole
                .iter()
                .map(|r| {
                    let mut q = not_newer(guard_field, r.time);
                    q.insert("_id", r.location.id.clone());
                    doc! { "q": q, "limit": 1 }
                })
                .chain(held.iter().map(|r| {
                    // The holder just made, when it holds nothing.
                    let mut q = super::holder::empty(&holds, guard_field);
                    q.extend(not_newer(guard_field, r.time));
                    q.insert("_id", r.location.id.clone());
                    doc! { "q": q, "limit": 1 }
                }))
                .collect();
            if !deletes.is_empty() {
                removed += self
                    .write_n("guarded delete", "delete", collection, deletes)
                    .await?;
            }
            if !elements.is_empty() {
                let updates: Vec<Document> = elements
                    .iter()
                    .filter_map(|r| {
                        let e = r.location.embed.as_ref()?;
                        let mut cond = not_newer(guard_field, r.time);
                        cond.insert("_id", e.id.clone());
                        Some(doc! {
                            "q": { "_id": r.location.id.clone() },
                            "u": { "$pull": { e.field.as_str(): cond } },
                        })
                    })
                    .collect();
                removed += self
                    .write_n("guarded pull", "update", collection, updates)
                    .await
                    .map(|_| elements.len() as u64)?;
            }
        }
        Ok(removed)
    }

    /// Removes the documents of `ids` in `collection` that are holders of the arrays
    /// `holds` holding nothing; any other document is left alone. For the parents of
    /// pulled children whose own Firestore document does not exist.
    pub async fn remove_empty_holders(
        &self,
        guard_field: &str,
        collection: &str,
        holds: &[String],
        ids: &[Bson],
    ) -> Result<u64> {
        if ids.is_empty() || holds.is_empty() {
            return Ok(0);
        }
        let deletes: Vec<Document> = ids
            .iter()
            .map(|id| {
                let mut q = super::holder::empty(holds, guard_field);
                q.insert("_id", id.clone());
                doc! { "q": q, "limit": 1 }
            })
            .collect();
        self.write_n("remove empty holders", "delete", collection, deletes)
            .await
    }

    /// Runs one unordered `update` or `delete` command (`verb`) of `statements` on
    /// `collection` until it is answered without a write error, retrying transient
    /// failures; returns its `n`. Durable when answered: majority, journaled.
    async fn write_n(
        &self,
        operation: &'static str,
        verb: &str,
        collection: &str,
        statements: Vec<Document>,
    ) -> Result<u64> {
        let cmd = doc! {
            verb: collection,
            format!("{verb}s"): statements,
            "ordered": false,
            "writeConcern": { "w": "majority", "j": true },
        };
        let target = format!("{}.{collection}", self.database().name());
        let mut backoff = self.config().retry.backoff();
        loop {
            let attempt =
                tokio::time::timeout(ANSWER_TIMEOUT, self.database().run_command(cmd.clone()))
                    .await;
            let err = match attempt {
                Ok(Ok(reply)) => match write_error(&reply) {
                    None => {
                        return Ok(match reply.get("n") {
                            Some(Bson::Int32(n)) => *n as u64,
                            Some(Bson::Int64(n)) => *n as u64,
                            _ => 0,
                        })
                    }
                    Some((message, retryable)) => Error::Mongo {
                        operation,
                        target: target.clone(),
                        uri: self.uri().to_string(),
                        message,
                        retryable,
                    },
                },
                Ok(Err(e)) => crate::mongo::error(operation, &target, self.uri(), e),
                Err(_) => Error::Mongo {
                    operation,
                    target: target.clone(),
                    uri: self.uri().to_string(),
                    message: format!("no answer within {}s", ANSWER_TIMEOUT.as_secs()),
                    retryable: true,
                },
            };
            backoff
                .wait(err, &format!("{operation} in {collection}"))
                .await?;
        }
    }
}

/// A write command reports its failures in its reply: the first, and whether it is
/// worth another attempt.
fn write_error(reply: &Document) -> Option<(String, bool)> {
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Some((
            wce.get_str("errmsg")
                .unwrap_or("write concern error")
                .into(),
            true,
        ));
    }
    let e = reply
        .get_array("writeErrors")
        .ok()?
        .iter()
        .find_map(|e| e.as_document())?;
    let code = match e.get("code") {
        Some(Bson::Int32(c)) => i64::from(*c),
        Some(Bson::Int64(c)) => *c,
        _ => 0,
    };
    let retryable = crate::mongo::RETRYABLE_CODES
        .iter()
        .any(|c| i64::from(*c) == code);
    Some((
        format!("code {code}: {}", e.get_str("errmsg").unwrap_or("")),
        retryable,
    ))
}
