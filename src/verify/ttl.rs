//! MongoDB's TTL indexes remove a document once the date in its indexed field is older
//! than the index's `expireAfterSeconds` (the mappings declare such indexes: a 24-hour
//! story, an upload session). Firestore still holds the document, so a verify that only
//! asked "is it there" would call it missing — and a cutover gate would fail on every
//! old story. A source document absent from the target whose expected state the
//! target's own TTL index has expired is counted as **expired**, not missing; one that
//! is present is compared as any other (the TTL monitor runs about once a minute).
//!
//! The TTL indexes are read from the target (`listIndexes`), not from the mappings: what
//! MongoDB actually enforces, an index the operator made included.

use std::collections::HashMap;
use std::sync::Arc;

use mongodb::bson::{Bson, Document, RawBsonRef, RawDocument};
use mongodb::Database;

use crate::error::Result;
use crate::retry::RetryPolicy;

/// One TTL index of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct TtlIndex {
    pub name: String,
    /// The indexed field (a dotted path into embedded documents).
    pub field: String,
    pub after_secs: i64,
}

impl TtlIndex {
    /// The TTL index an index specification (as `listIndexes` returns it) describes:
    /// one key and `expireAfterSeconds`. A partial TTL index is left out — whether its
    /// filter held for the document when the monitor ran cannot be known afterwards, so
    /// such an absence stays a finding.
    pub fn from_spec(spec: &Document) -> Option<Self> {
        let after = match spec.get("expireAfterSeconds")? {
            Bson::Int32(n) => i64::from(*n),
            Bson::Int64(n) => *n,
            Bson::Double(n) if n.is_finite() => *n as i64,
            _ => return None,
        };
        if spec.contains_key("partialFilterExpression") {
            return None;
        }
        let key = spec.get_document("key").ok()?;
        let mut fields = key.keys();
        let field = fields.next()?.clone();
        if fields.next().is_some() {
            return None;
        }
        Some(Self {
            name: spec.get_str("name").unwrap_or_default().to_string(),
            field,
            after_secs: after,
        })
    }

    /// Whether MongoDB may have removed `doc` by now (`now_ms`, milliseconds since the
    /// epoch): its field holds a date, or an array with a date (the earliest counts),
    /// and that date plus `expireAfterSeconds` has passed. Anything else never expires.
    pub fn expired(&self, doc: &RawDocument, now_ms: i64) -> bool {
        let Some(value) = at_path(doc, &self.field) else {
            return false;
        };
        let earliest = match value {
            RawBsonRef::DateTime(d) => Some(d.timestamp_millis()),
            RawBsonRef::Array(a) => a
                .into_iter()
                .filter_map(|v| match v {
                    Ok(RawBsonRef::DateTime(d)) => Some(d.timestamp_millis()),
                    _ => None,
                })
                .min(),
            _ => None,
        };
        earliest.is_some_and(|t| t.saturating_add(self.after_secs.saturating_mul(1000)) <= now_ms)
    }
}

/// The value at a dotted path through embedded documents.
fn at_path<'a>(doc: &'a RawDocument, path: &str) -> Option<RawBsonRef<'a>> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?).ok()??;
    for part in parts {
        let RawBsonRef::Document(d) = value else {
            return None;
        };
        value = d.get(part).ok()??;
    }
    Some(value)
}

/// The TTL indexes of each collection of the target, listed once per collection and
/// run (a handful of small entries per collection: the schema's size, not the data's).
#[derive(Debug, Default)]
pub struct TtlIndexes {
    listed: tokio::sync::Mutex<HashMap<String, Arc<Vec<TtlIndex>>>>,
}

impl TtlIndexes {
    pub async fn of(
        &self,
        db: &Database,
        uri: &str,
        retry: &RetryPolicy,
        collection: &str,
    ) -> Result<Arc<Vec<TtlIndex>>> {
        if let Some(known) = self.listed.lock().await.get(collection) {
            return Ok(known.clone());
        }
        let target = format!("{}.{collection}", db.name());
        let specs: Vec<Document> = retry
            .run(
                || format!("list the indexes of {target}"),
                || async {
                    crate::mongo::list_indexes(db, collection)
                        .await
                        .map_err(|e| crate::mongo::error("listIndexes", target.clone(), uri, e))
                },
            )
            .await?;
        let ttl = Arc::new(specs.iter().filter_map(TtlIndex::from_spec).collect());
        self.listed
            .lock()
            .await
            .insert(collection.to_string(), Arc::clone(&ttl));
        Ok(ttl)
    }
}

/// The name of the TTL index among `indexes` that may have removed `doc`, if any.
pub fn expired_by<'a>(indexes: &'a [TtlIndex], doc: &RawDocument, now_ms: i64) -> Option<&'a str> {
    indexes
        .iter()
        .find(|ix| ix.expired(doc, now_ms))
        .map(|ix| ix.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, DateTime, RawDocumentBuf};

    fn ttl(field: &str, after: i64) -> TtlIndex {
        TtlIndex {
            name: format!("{field}_ttl"),
            field: field.into(),
            after_secs: after,
        }
    }

    fn raw(d: Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    #[test]
    fn a_spec_is_a_ttl_index_with_one_key_and_no_filter() {
        let spec = doc! { "v": 2, "key": { "expiresAt": 1 }, "name": "expires_ttl", "expireAfterSeconds": 0 };
        assert_eq!(
            TtlIndex::from_spec(&spec),
            Some(ttl("expiresAt", 0)).map(|t| TtlIndex {
                name: "expires_ttl".into(),
                ..t
            })
        );
        let long = doc! { "key": { "a.b": 1 }, "name": "n", "expireAfterSeconds": 86_400i64 };
        assert_eq!(TtlIndex::from_spec(&long).unwrap().after_secs, 86_400);
        assert_eq!(
            TtlIndex::from_spec(&doc! { "key": { "a": 1 }, "name": "plain" }),
            None
        );
        assert_eq!(
            TtlIndex::from_spec(
                &doc! { "key": { "a": 1, "b": 1 }, "name": "c", "expireAfterSeconds": 5 }
            ),
            None
        );
        assert_eq!(
            TtlIndex::from_spec(
                &doc! { "key": { "a": 1 }, "name": "p", "expireAfterSeconds": 5, "partialFilterExpression": { "x": true } }
            ),
            None
        );
    }

    #[test]
    fn a_date_expires_after_the_index_delay() {
        let now = 1_000_000_000;
        let at = |ms: i64| DateTime::from_millis(ms);
        let d = raw(doc! { "expiresAt": at(now - 10_000) });
        assert!(ttl("expiresAt", 0).expired(&d, now));
        assert!(ttl("expiresAt", 10).expired(&d, now));
        assert!(!ttl("expiresAt", 11).expired(&d, now));
        assert!(!ttl("expiresAt", 0).expired(&raw(doc! { "expiresAt": at(now + 1) }), now));
        // The earliest date of an array counts; other values never expire.
        let arr = raw(doc! { "expiresAt": [at(now + 50_000), "x", at(now - 1)] });
        assert!(ttl("expiresAt", 0).expired(&arr, now));
        assert!(!ttl("expiresAt", 0).expired(&raw(doc! { "expiresAt": "2020-01-01" }), now));
        assert!(!ttl("expiresAt", 0).expired(&raw(doc! { "other": at(0) }), now));
        assert!(!ttl("expiresAt", 0).expired(&raw(doc! { "expiresAt": [] }), now));
        // A dotted path reaches into embedded documents.
        let nested = raw(doc! { "session": { "until": at(now - 1) } });
        assert!(ttl("session.until", 0).expired(&nested, now));
        assert!(!ttl("session.other", 0).expired(&nested, now));
        assert_eq!(
            expired_by(&[ttl("a", 0), ttl("session.until", 0)], &nested, now),
            Some("session.until_ttl")
        );
    }
}
