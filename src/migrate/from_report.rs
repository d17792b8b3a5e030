//! `migrate --only-from-report PREFIX.json`: re-copies just the documents a verify
//! report lists as `missing`, `differing` or `dead_letter_missing`. Each is read again
//! from the source by name, converted with the current mappings and written through
//! the sink (same `_id`: a differing document is replaced); one the transform or the
//! server refuses is dead-lettered, as in a full copy.
//!
//! Nothing is deleted. An `extra` (a target document no source document maps to) is
//! left where it is and counted: it may be the application's own write, or a document
//! deleted from the source after the report was made, and a report is a snapshot of a
//! live system; deleting on its word could lose data. Likewise a listed document the
//! source no longer holds is counted as gone and its target copy, if any, left. The
//! next `verify` lists what remains; delete it by hand once reviewed.
//!
//! The report must describe this copy: the same Firestore project and database, the
//! same target database and the same transform (mappings fingerprint); otherwise its
//! findings say nothing about what this run would write and it is refused.
//!
//! Bounded: the report is parsed as a stream (one mismatch entry at a time) by a
//! blocking thread that hands [`CHUNK`] document names at a time to the copy, through a
//! channel of one chunk; the copy reads, converts and writes one chunk at a time.

use std::path::{Path, PathBuf};

use gcloud_sdk::google::firestore::v1::Document as FsDocument;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::mapping::item::WriteItem;
use crate::mapping::transform::Transformer;
use crate::sink::{Batch, MongoSink};
use crate::source::FirestoreSource;

/// Document names read from the source, converted and written at a time.
pub const CHUNK: usize = 200;

/// What a re-copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Recopied {
    /// Entries of the report's list that name a document to copy (missing, differing,
    /// dead letter missing).
    pub listed: u64,
    /// Converted and written.
    pub landed: u64,
    /// Refused by the transform or the server: in the dead-letter collection now.
    pub dead_lettered: u64,
    /// No longer in the source: nothing to copy (the target copy, if any, is left).
    pub gone: u64,
    /// Extras of the report, left in place (see the module docs).
    pub extras_left: u64,
    /// Mismatches the report counted but did not list (`mismatches_omitted`): not
    /// re-copied.
    pub not_listed: u64,
}

/// What the report must have compared for its list to apply to this copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// `projects/P/databases/D/documents`.
    pub root: String,
    pub database: String,
    pub transform: String,
}

/// Re-copies the documents `report` lists (see the module docs).
pub async fn recopy(
    source: &FirestoreSource,
    sink: &MongoSink,
    transformer: &Transformer,
    report: &Path,
    dead_letter_collection: &str,
    run_id: &str,
) -> Result<Recopied> {
    let expected = Expected {
        root: source.root().to_string(),
        database: sink.database().name().to_string(),
        transform: transformer.fingerprint(),
    };
    let (tx, mut rx) = mpsc::channel::<Vec<String>>(1);
    let path = report.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || read_report(&path, &expected, tx));
    let mut done = Recopied::default();
    let mut copy_error = None;
    while let Some(names) = rx.recv().await {
        done.listed += names.len() as u64;
        if let Err(e) = copy_chunk(
            source,
            sink,
            transformer,
            &names,
            dead_letter_collection,
            run_id,
            &mut done,
        )
        .await
        {
            copy_error = Some(e);
            break;
        }
    }
    // Dropping the receiver stops the reader at its next chunk.
    drop(rx);
    let read = reader
        .await
        .map_err(|e| Error::Internal(format!("the report reader panicked: {e}")))?;
    if let Some(e) = copy_error {
        return Err(e);
    }
    let facts = read?;
    done.extras_left = facts.extras;
    done.not_listed = facts.omitted;
    Ok(done)
}

/// Reads, converts and writes one chunk of document names.
async fn copy_chunk(
    source: &FirestoreSource,
    sink: &MongoSink,
    transformer: &Transformer,
    names: &[String],
    dead_letter_collection: &str,
    run_id: &str,
    done: &mut Recopied,
) -> Result<()> {
    let fetched = source.get_documents(names).await?;
    let guard = sink.config().guard_field.clone();
    // Per target collection, in the order first met (a handful per chunk).
    let mut by_collection: Vec<(String, Vec<WriteItem>)> = Vec::new();
    let mut dead: Vec<WriteItem> = Vec::new();
    for name in names {
        let Some(Some(doc)) = fetched.get(name) else {
            done.gone += 1;
            continue;
        };
        let applied = transformer.apply(doc).and_then(|t| {
            crate::sink::guard::stamp_transformed_at(t, doc.update_time.as_ref(), guard.as_deref())
        });
        match applied {
            Ok(t) => match by_collection.iter_mut().find(|(c, _)| *c == t.collection) {
                Some((_, items)) => items.push(t.item),
                None => by_collection.push((t.collection, vec![t.item])),
            },
            Err(rejection) => dead.push(rejection.dead_letter(Some(doc), run_id)),
        }
    }
    for (collection, items) in by_collection {
        for batch in batches(&collection, items, sink) {
            let result = sink.write(&batch).await?;
            for item in &batch.items {
                match result
                    .failures
                    .iter()
                    .find(|f| f.source_path == item.source_path)
                {
                    None => done.landed += 1,
                    Some(f) => {
                        let rejection = f.rejection(&item.source_path);
                        let raw: Option<&FsDocument> =
                            fetched.get(&item.source_path).and_then(Option::as_ref);
                        dead.push(rejection.dead_letter(raw, run_id));
                    }
                }
            }
        }
    }
    done.dead_lettered += dead.len() as u64;
    for batch in batches(dead_letter_collection, dead, sink) {
        let result = sink.write(&batch).await?;
        if let Some(f) = result.failures.first() {
            return Err(Error::DeadLetterStore {
                source_path: f.source_path.clone(),
                message: f.message.clone(),
            });
        }
    }
    Ok(())
}

/// `items` in batches within the sink's bounds.
fn batches(collection: &str, items: Vec<WriteItem>, sink: &MongoSink) -> Vec<Batch> {
    let mut out = vec![Batch::new(collection)];
    for item in items {
        let last = out.last_mut().expect("one batch at least");
        if last.would_overflow(&item, sink.config()) {
            out.push(Batch::new(collection));
        }
        out.last_mut().expect("pushed").push(item);
    }
    out.retain(|b| !b.items.is_empty());
    out
}

/// What the reader learnt besides the names it sent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Facts {
    extras: u64,
    omitted: u64,
}

/// Parses `path` as a stream, checks its head against `expected` before the list, and
/// sends the names of the listed documents to copy in chunks of [`CHUNK`].
fn read_report(path: &Path, expected: &Expected, tx: mpsc::Sender<Vec<String>>) -> Result<Facts> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    let facts = ReportSeed {
        path: path.to_path_buf(),
        expected,
        tx,
    }
    .deserialize(&mut de)
    .map_err(|e| {
        Error::Config(format!(
            "{} is not a usable verify report: {e}",
            path.display()
        ))
    })?;
    de.end().map_err(|e| {
        Error::Config(format!(
            "{} is not a usable verify report: {e}",
            path.display()
        ))
    })?;
    Ok(facts)
}

#[derive(Deserialize)]
struct SourceHead {
    project: String,
    firestore_database: String,
}

#[derive(Deserialize)]
struct TargetHead {
    database: String,
}

#[derive(Deserialize)]
struct OptionsHead {
    transform: String,
}

/// One entry of `mismatches`, only what a re-copy needs (the rest is skipped).
#[derive(Deserialize)]
struct Entry {
    kind: String,
    source_path: Option<String>,
}

struct ReportSeed<'a> {
    path: PathBuf,
    expected: &'a Expected,
    tx: mpsc::Sender<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for ReportSeed<'_> {
    type Value = Facts;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Facts, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ReportSeed<'_> {
    type Value = Facts;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a verify report (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Facts, A::Error> {
        let mut facts = Facts::default();
        let (mut source, mut target, mut options) = (None, None, None);
        let mut list_seen = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "schema_version" => {
                    let v: u32 = map.next_value()?;
                    if v != 1 {
                        return Err(de::Error::custom(format!(
                            "report schema version {v}, this fireshift reads version 1"
                        )));
                    }
                }
                "source" => source = Some(map.next_value::<SourceHead>()?),
                "target" => target = Some(map.next_value::<TargetHead>()?),
                "options" => options = Some(map.next_value::<OptionsHead>()?),
                "mismatches" => {
                    // The head comes first in every report verify writes: check it
                    // before a single document is copied.
                    let (Some(s), Some(t), Some(o)) = (&source, &target, &options) else {
                        return Err(de::Error::custom(
                            "`mismatches` comes before `source`, `target` and `options`",
                        ));
                    };
                    check_head(s, t, o, self.expected).map_err(de::Error::custom)?;
                    facts.extras = map.next_value_seed(ListSeed { tx: &self.tx })?;
                    list_seen = true;
                }
                "mismatches_omitted" => facts.omitted = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !list_seen {
            return Err(de::Error::custom(format!(
                "{} has no `mismatches` list",
                self.path.display()
            )));
        }
        Ok(facts)
    }
}

/// Refuses a report about another source, target or transform.
fn check_head(
    s: &SourceHead,
    t: &TargetHead,
    o: &OptionsHead,
    expected: &Expected,
) -> std::result::Result<(), String> {
    let root = format!(
        "projects/{}/databases/{}/documents",
        s.project, s.firestore_database
    );
    if root != expected.root {
        return Err(format!(
            "it compares {root}, this migrate reads {}",
            expected.root
        ));
    }
    if t.database != expected.database {
        return Err(format!(
            "it compares the database `{}`, this migrate writes `{}`",
            t.database, expected.database
        ));
    }
    if o.transform != expected.transform {
        return Err(format!(
            "it compared with the transform {} and this migrate converts with {}: \
             run with the --mappings the report was made with, or verify again",
            o.transform, expected.transform
        ));
    }
    Ok(())
}

/// The `mismatches` array: sends the names to copy in chunks; returns the extras.
struct ListSeed<'a> {
    tx: &'a mpsc::Sender<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = u64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<u64, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "the list of mismatches")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<u64, A::Error> {
        let mut extras = 0u64;
        let mut chunk = Vec::with_capacity(CHUNK);
        let send = |chunk: Vec<String>| {
            self.tx
                .blocking_send(chunk)
                .map_err(|_| de::Error::custom("the copy stopped"))
        };
        while let Some(e) = seq.next_element::<Entry>()? {
            match (e.kind.as_str(), e.source_path) {
                ("extra", _) => extras += 1,
                ("missing" | "differing" | "dead_letter_missing", Some(p)) => {
                    chunk.push(p);
                    if chunk.len() >= CHUNK {
                        send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))?;
                    }
                }
                (kind, p) => {
                    return Err(de::Error::custom(format!(
                        "a `{kind}` entry {} a source_path",
                        if p.is_some() { "with" } else { "without" }
                    )))
                }
            }
        }
        if !chunk.is_empty() {
            send(chunk)?;
        }
        Ok(extras)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Expected {
        Expected {
            root: "projects/p/databases/(default)/documents".into(),
            database: "app".into(),
            transform: "t1".into(),
        }
    }

    fn report(list: &str, transform: &str) -> String {
        format!(
            r#"{{"schema_version": 1, "tool": {{"name": "fireshift"}},
              "source": {{"project": "p", "firestore_database": "(default)", "endpoint": "x"}},
              "target": {{"uri": "u", "database": "app"}},
              "options": {{"sample": 1.0, "transform": "{transform}"}},
              "mismatches": [{list}], "mismatches_listed": 3, "mismatches_omitted": 2}}"#
        )
    }

    fn read(text: &str) -> (Result<Facts>, Vec<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, text).unwrap();
        let (tx, mut rx) = mpsc::channel(1000);
        let facts = read_report(&path, &expected(), tx);
        let mut got = Vec::new();
        while let Ok(c) = rx.try_recv() {
            got.push(c);
        }
        (facts, got)
    }

    #[test]
    fn the_names_to_copy_are_streamed_and_extras_only_counted() {
        let list = r#"
            {"kind": "missing", "collection": "users", "id": "a", "source_path": "projects/p/databases/(default)/documents/users/a", "diffs": []},
            {"kind": "extra", "collection": "users", "id": "x", "source_path": null},
            {"kind": "differing", "collection": "users", "id": "b", "source_path": "projects/p/databases/(default)/documents/users/b",
             "diffs": [{"path": "n", "expected": {"$numberLong": "1"}}]}"#;
        let (facts, chunks) = read(&report(list, "t1"));
        assert_eq!(
            facts.unwrap(),
            Facts {
                extras: 1,
                omitted: 2
            }
        );
        assert_eq!(
            chunks,
            vec![vec![
                "projects/p/databases/(default)/documents/users/a".to_string(),
                "projects/p/databases/(default)/documents/users/b".to_string()
            ]]
        );
    }

    #[test]
    fn a_report_of_another_transform_or_source_is_refused_before_any_name() {
        let list = r#"{"kind": "missing", "source_path": "projects/p/databases/(default)/documents/users/a"}"#;
        let (facts, chunks) = read(&report(list, "t2"));
        let e = facts.unwrap_err().to_string();
        assert!(
            e.contains("transform t2") && e.contains("--mappings"),
            "{e}"
        );
        assert!(chunks.is_empty());
        let other = report(list, "t1").replace("\"project\": \"p\"", "\"project\": \"q\"");
        let e = read(&other).0.unwrap_err().to_string();
        assert!(
            e.contains("projects/q/databases/(default)/documents"),
            "{e}"
        );
        let e = read("[1, 2]").0.unwrap_err().to_string();
        assert!(e.contains("not a usable verify report"), "{e}");
    }

    #[test]
    fn a_long_list_is_sent_in_bounded_chunks() {
        let entry = |i: usize| {
            format!(
                r#"{{"kind": "missing", "source_path": "projects/p/databases/(default)/documents/u/{i}"}}"#
            )
        };
        let list: Vec<String> = (0..CHUNK * 2 + 1).map(entry).collect();
        let (facts, chunks) = read(&report(&list.join(","), "t1"));
        facts.unwrap();
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![CHUNK, CHUNK, 1]);
    }
}
