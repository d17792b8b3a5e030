//! `--retry-dead-letters`: the documents a job dead-lettered are read again from the
//! source, converted with the current mappings and written; each one that lands leaves
//! the dead-letter collection, each one deleted from the source since leaves it too
//! (there is nothing left to copy), and each one that still fails stays, with the new
//! reason. Bounded: dead letters are taken in chunks of [`CHUNK`].

use futures::TryStreamExt;
use mongodb::bson::{doc, Document};

use crate::error::{Error, Result};
use crate::mapping::transform::Transformer;
use crate::sink::{Batch, MongoSink};
use crate::source::FirestoreSource;

/// Dead letters read, fetched from the source and written at a time.
const CHUNK: usize = 200;

/// What a retry did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Retried {
    /// Converted and written: no longer dead letters.
    pub landed: u64,
    /// Deleted from the source since: nothing to copy, no longer dead letters.
    pub gone: u64,
    /// Failed again: still dead letters, with this run's reason.
    pub still_dead: u64,
}

/// Dead letters of the documents under `root` (a job's source) in `collection`.
/// Counted with them: the records of the source that could not be read at all (an
/// export's, `--skip-corrupt`), keyed `{root}#{file}@{offset}` (see
/// [`crate::source::Change::Corrupt`]).
pub async fn count(sink: &MongoSink, collection: &str, root: &str) -> Result<u64> {
    let dead = sink.database().collection::<Document>(collection);
    let unreadable = doc! { "_id": { "$gte": format!("{root}#"), "$lt": format!("{root}$") } };
    dead.count_documents(doc! { "$or": [under(root), unreadable] })
        .await
        .map_err(|e| mongo_err("count dead letters", collection, e))
}

/// Retries every dead letter of the documents under the source's root.
pub async fn retry(
    source: &FirestoreSource,
    sink: &MongoSink,
    transformer: &Transformer,
    collection: &str,
    run_id: &str,
) -> Result<Retried> {
    let dead = sink.database().collection::<Document>(collection);
    let guard = sink.config().guard_field.clone();
    let mut done = Retried::default();
    // Dead letters are keyed by document name, so a chunk after `last` is the next one
    // whatever this loop removed or rewrote before it.
    let mut last = String::new();
    loop {
        let mut filter = under(source.root());
        if !last.is_empty() {
            filter.insert("_id", doc! { "$gt": &last, "$lt": end_of(source.root()) });
        }
        let names: Vec<String> = dead
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(CHUNK as i64)
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| mongo_err("read dead letters", collection, e))?
            .try_collect::<Vec<Document>>()
            .await
            .map_err(|e| mongo_err("read dead letters", collection, e))?
            .into_iter()
            .filter_map(|d| d.get_str("_id").ok().map(str::to_string))
            .collect();
        let Some(next) = names.last().cloned() else {
            return Ok(done);
        };
        let fetched = source.get_documents(&names).await?;
        let mut batches: Vec<Batch> = Vec::new();
        let mut resolved: Vec<String> = Vec::new();
        let mut again = Batch::new(collection);
        for name in &names {
            let Some(Some(doc)) = fetched.get(name) else {
                done.gone += 1;
                resolved.push(name.clone());
                continue;
            };
            let applied = transformer.apply(doc).and_then(|t| {
                crate::sink::guard::stamp_transformed_at(
                    t,
                    doc.update_time.as_ref(),
                    guard.as_deref(),
                )
            });
            match applied {
                Ok(t) => match batches.iter_mut().find(|b| b.collection == t.collection) {
                    Some(b) => b.push(t.item),
                    None => {
                        let mut b = Batch::new(t.collection);
                        b.push(t.item);
                        batches.push(b);
                    }
                },
                Err(rejection) => {
                    done.still_dead += 1;
                    again.push(rejection.dead_letter(Some(doc), run_id));
                }
            }
        }
        for batch in &batches {
            let result = sink.write(batch).await?;
            for item in &batch.items {
                match result
                    .failures
                    .iter()
                    .find(|f| f.source_path == item.source_path)
                {
                    None => {
                        done.landed += 1;
                        resolved.push(item.source_path.clone());
                    }
                    Some(f) => {
                        done.still_dead += 1;
                        let rejection = f.rejection(&item.source_path);
                        let raw = fetched.get(&item.source_path).and_then(Option::as_ref);
                        again.push(rejection.dead_letter(raw, run_id));
                    }
                }
            }
        }
        if !again.items.is_empty() {
            let result = sink.write(&again).await?;
            if let Some(f) = result.failures.first() {
                return Err(Error::DeadLetterStore {
                    source_path: f.source_path.clone(),
                    message: f.message.clone(),
                });
            }
        }
        // Removed only after the documents landed: a crash in between leaves a dead
        // letter for a document that is there, which the next retry clears.
        if !resolved.is_empty() {
            dead.delete_many(doc! { "_id": { "$in": &resolved } })
                .await
                .map_err(|e| mongo_err("remove retried dead letters", collection, e))?;
        }
        last = next;
    }
}

/// Dead letters are keyed by full document name: those of `root`'s documents sort
/// between `root/` and `root0` (`0` follows `/`).
fn under(root: &str) -> Document {
    doc! { "_id": { "$gte": format!("{root}/"), "$lt": end_of(root) } }
}

fn end_of(root: &str) -> String {
    format!("{root}0")
}

fn mongo_err(operation: &'static str, collection: &str, e: mongodb::error::Error) -> Error {
    Error::Mongo {
        operation,
        target: collection.to_string(),
        uri: String::new(),
        retryable: crate::mongo::is_retryable(&e),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roots_dead_letters_sort_between_its_slash_and_its_zero() {
        let root = "projects/p/databases/(default)/documents";
        let f = under(root);
        let range = f.get_document("_id").unwrap();
        let (lo, hi) = (
            range.get_str("$gte").unwrap(),
            range.get_str("$lt").unwrap(),
        );
        let inside = format!("{root}/users/u1");
        let other = "projects/p2/databases/(default)/documents/users/u1";
        let longer_root = format!("{root}x/users/u1");
        assert!(lo <= inside.as_str() && inside.as_str() < hi);
        assert!(!(lo <= other && other < hi));
        assert!(!(lo <= longer_root.as_str() && longer_root.as_str() < hi));
    }
}
