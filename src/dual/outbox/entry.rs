//! The outbox entry as stored in Firestore and every Firestore operation on entries:
//! the write that goes into a document commit, reading the due ones, claiming one,
//! recording a failed attempt, removing them, and the depth and age metrics. The
//! format (collection, field names and types) is shared by every process reconciling
//! the same database, so it must not change without a migration of the entries.

use std::collections::HashMap;
use std::time::Duration;

use gcloud_sdk::google::firestore::v1::{
    precondition, structured_query, value::ValueType, Document, DocumentMask, Precondition,
    StructuredQuery, Value, Write,
};

use crate::dual::core::Core;
use crate::dual::error::{DualError, DualResult};
use crate::dual::op::{now_timestamp, string_array};
use crate::sink::guard;

/// A fresh entry id: the creation time first, so names sort roughly by age.
pub(crate) fn new_entry_id() -> String {
    format!("{:020}-{:016x}", guard::now_nanos(), rand::random::<u64>())
}

fn ts_value(t: gcloud_sdk::prost_types::Timestamp) -> Value {
    Value {
        value_type: Some(ValueType::TimestampValue(t)),
    }
}

fn int_value(i: i64) -> Value {
    Value {
        value_type: Some(ValueType::IntegerValue(i)),
    }
}

/// The entry written in the same commit as the documents it names.
pub(crate) fn entry_write(core: &Core, id: &str, paths: &[String]) -> Write {
    let now = guard::now_nanos();
    let grace = core.config().outbox_grace.as_nanos() as i64;
    let fields = HashMap::from([
        ("paths".to_string(), string_array(paths)),
        ("created".to_string(), ts_value(guard::nanos_timestamp(now))),
        (
            "next_attempt".to_string(),
            ts_value(guard::nanos_timestamp(now.saturating_add(grace))),
        ),
        ("attempts".to_string(), int_value(0)),
    ]);
    Write {
        operation: Some(gcloud_sdk::google::firestore::v1::write::Operation::Update(
            Document {
                name: entry_name(core, id),
                fields,
                ..Default::default()
            },
        )),
        current_document: Some(Precondition {
            condition_type: Some(precondition::ConditionType::Exists(false)),
        }),
        ..Default::default()
    }
}

/// `field <= value`.
fn at_most(field: &str, value: Value) -> structured_query::Filter {
    structured_query::Filter {
        filter_type: Some(structured_query::filter::FilterType::FieldFilter(
            structured_query::FieldFilter {
                field: Some(structured_query::FieldReference {
                    field_path: field.to_string(),
                }),
                op: structured_query::field_filter::Operator::LessThanOrEqual as i32,
                value: Some(value),
            },
        )),
    }
}

fn order(field: &str) -> structured_query::Order {
    structured_query::Order {
        field: Some(structured_query::FieldReference {
            field_path: field.to_string(),
        }),
        direction: structured_query::Direction::Ascending as i32,
    }
}

/// An entry as read back.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) paths: Vec<String>,
    pub(super) attempts: i64,
    /// Guard nanoseconds; the entry was written in the same commit as its writes.
    pub(super) created: i64,
    /// The entry's own update time: the precondition of a claim.
    pub(super) update_time: Option<gcloud_sdk::prost_types::Timestamp>,
}

pub(super) fn parse_entry(d: &Document) -> Entry {
    let paths = match d.fields.get("paths").and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::ArrayValue(a)) => a
            .values
            .iter()
            .filter_map(|v| match &v.value_type {
                Some(ValueType::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let attempts = match d.fields.get("attempts").and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::IntegerValue(i)) => *i,
        _ => 0,
    };
    let created = match d.fields.get("created").and_then(|v| v.value_type.as_ref()) {
        Some(ValueType::TimestampValue(t)) => guard::timestamp_nanos(t),
        _ => 0,
    };
    Entry {
        name: d.name.clone(),
        paths,
        attempts,
        created,
        update_time: d.update_time,
    }
}

pub(super) fn outbox_parent(core: &Core) -> String {
    core.root().to_string()
}

pub(super) fn entry_name(core: &Core, id: &str) -> String {
    format!("{}/{}/{id}", core.root(), core.config().outbox_collection)
}

pub(super) async fn delete_entries(core: &Core, names: Vec<String>) -> DualResult<()> {
    for chunk in names.chunks(500) {
        let deletes = chunk
            .iter()
            .map(|n| Write {
                operation: Some(gcloud_sdk::google::firestore::v1::write::Operation::Delete(
                    n.clone(),
                )),
                ..Default::default()
            })
            .collect();
        core.fs_commit(deletes)
            .await
            .map_err(|s| core.fs_error("Commit", s))?;
    }
    Ok(())
}

/// Entries due now (`force`: all; `created_before`: all created up to then), at
/// most `reconcile_batch`.
pub(super) async fn due_entries(
    core: &Core,
    force: bool,
    created_before: Option<i64>,
) -> DualResult<Vec<Entry>> {
    let query = StructuredQuery {
        from: vec![structured_query::CollectionSelector {
            collection_id: core.config().outbox_collection.clone(),
            all_descendants: false,
        }],
        r#where: match (force, created_before) {
            (_, Some(t)) => Some(at_most("created", ts_value(guard::nanos_timestamp(t)))),
            (true, None) => None,
            (false, None) => Some(at_most("next_attempt", ts_value(now_timestamp()))),
        },
        order_by: match (force, created_before) {
            (_, Some(_)) => vec![order("created")],
            (true, None) => Vec::new(),
            (false, None) => vec![order("next_attempt")],
        },
        limit: Some(core.config().reconcile_batch.min(10_000) as i32),
        ..Default::default()
    };
    let docs = core.fs_query(outbox_parent(core), query).await?;
    Ok(docs.iter().map(parse_entry).collect())
}

/// Takes an entry for this process: moves its `next_attempt` one lease ahead, on
/// the condition that nobody changed it since it was read. A process that dies
/// holding it only delays it by the lease. `false`: someone else has it.
pub(super) async fn claim(core: &Core, entry: &Entry) -> DualResult<bool> {
    let Some(seen) = entry.update_time else {
        return Ok(true);
    };
    let lease = (core.config().secondary_timeout * 4).max(Duration::from_secs(30));
    let until = guard::now_nanos().saturating_add(lease.as_nanos() as i64);
    let write = Write {
        operation: Some(gcloud_sdk::google::firestore::v1::write::Operation::Update(
            Document {
                name: entry.name.clone(),
                fields: HashMap::from([(
                    "next_attempt".to_string(),
                    ts_value(guard::nanos_timestamp(until)),
                )]),
                ..Default::default()
            },
        )),
        update_mask: Some(DocumentMask {
            field_paths: vec!["next_attempt".into()],
        }),
        current_document: Some(Precondition {
            condition_type: Some(precondition::ConditionType::UpdateTime(seen)),
        }),
        ..Default::default()
    };
    match core.fs_commit(vec![write]).await {
        Ok(_) => Ok(true),
        Err(s)
            if matches!(
                s.code(),
                gcloud_sdk::tonic::Code::FailedPrecondition
                    | gcloud_sdk::tonic::Code::NotFound
                    | gcloud_sdk::tonic::Code::Aborted
            ) =>
        {
            Ok(false)
        }
        Err(s) => Err(core.fs_error("Commit", s).into()),
    }
}

/// Records a failed attempt on an entry and when to try again.
pub(super) async fn record_failure(
    core: &Core,
    entry: &Entry,
    error: &DualError,
) -> DualResult<()> {
    let policy = core.config().reconcile_backoff;
    let exp = entry.attempts.clamp(0, 30) as u32;
    let backoff = policy
        .initial_backoff
        .saturating_mul(2u32.saturating_pow(exp))
        .min(policy.max_backoff);
    // Jitter keeps many failed entries from coming due in one burst.
    let backoff = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
    let next = guard::now_nanos().saturating_add(backoff.as_nanos() as i64);
    let mut message = error.to_string();
    message.truncate(2000);
    let fields = HashMap::from([
        ("attempts".to_string(), int_value(entry.attempts + 1)),
        (
            "last_error".to_string(),
            Value {
                value_type: Some(ValueType::StringValue(message)),
            },
        ),
        (
            "next_attempt".to_string(),
            ts_value(guard::nanos_timestamp(next)),
        ),
    ]);
    let write = Write {
        operation: Some(gcloud_sdk::google::firestore::v1::write::Operation::Update(
            Document {
                name: entry.name.clone(),
                fields,
                ..Default::default()
            },
        )),
        update_mask: Some(DocumentMask {
            field_paths: vec![
                "attempts".into(),
                "last_error".into(),
                "next_attempt".into(),
            ],
        }),
        current_document: Some(Precondition {
            condition_type: Some(precondition::ConditionType::Exists(true)),
        }),
        ..Default::default()
    };
    match core.fs_commit(vec![write]).await {
        Ok(_) => Ok(()),
        // Another process synced and removed it meanwhile.
        Err(s) if s.code() == gcloud_sdk::tonic::Code::NotFound => Ok(()),
        Err(s) => Err(core.fs_error("Commit", s).into()),
    }
}

/// Outbox depth and the age of the oldest entry; also sets the metrics.
pub(crate) async fn outbox_stats(core: &Core) -> DualResult<(u64, Option<Duration>)> {
    let from = vec![structured_query::CollectionSelector {
        collection_id: core.config().outbox_collection.clone(),
        all_descendants: false,
    }];
    let depth = core
        .fs_count(
            &outbox_parent(core),
            StructuredQuery {
                from: from.clone(),
                ..Default::default()
            },
        )
        .await?;
    let mut oldest = None;
    if depth > 0 {
        let query = StructuredQuery {
            from,
            order_by: vec![structured_query::Order {
                field: Some(structured_query::FieldReference {
                    field_path: "created".into(),
                }),
                direction: structured_query::Direction::Ascending as i32,
            }],
            limit: Some(1),
            ..Default::default()
        };
        let first = core.fs_query(outbox_parent(core), query).await?;
        if let Some(Some(ValueType::TimestampValue(t))) = first
            .first()
            .and_then(|d| d.fields.get("created"))
            .map(|v| v.value_type.as_ref())
        {
            let age = guard::now_nanos() - guard::timestamp_nanos(t);
            oldest = Some(Duration::from_nanos(age.max(0) as u64));
        }
    }
    core.metrics().outbox_depth.set(depth as i64);
    core.metrics()
        .outbox_oldest_age_seconds
        .set(oldest.map(|d| d.as_secs_f64()).unwrap_or(0.0));
    Ok((depth, oldest))
}
