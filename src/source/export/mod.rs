//! The export source: the files of a managed export (`gcloud firestore export`, or the
//! emulator's export endpoint), in a local folder or under `gs://bucket/prefix`.
//!
//! ```text
//! PREFIX/NAME.overall_export_metadata      ─► the kinds' metadata files   (metadata)
//! PREFIX/all_namespaces/KIND/*.export_metadata ─► output files, times    (metadata)
//! PREFIX/all_namespaces/KIND/output-N      ─► LevelDB log records        (log)
//!                                           ─► EntityProto → Document    (entity)
//! ```
//!
//! * [`storage`] where the files are read from: a local folder or Cloud Storage
//!   (through `gcs`, the JSON API client).
//! * [`metadata`] the overall and per-kind metadata files.
//! * [`log`] the LevelDB log format of the output files (blocks, fragments, CRCs).
//! * [`entity`] Datastore v3 `EntityProto` records ⇄ Firestore documents.
//!
//! Each output file is one [`Range`]; a position is the byte offset just past a record,
//! so a resume reads from the block that holds it and skips nothing. An export is one
//! consistent snapshot and carries no per-document create or update time: every
//! document is yielded with the snapshot time as its update time (see [`ExportTimes`]
//! for the mapping fields that ask for document times).

pub mod entity;
mod gcs;
pub mod log;
pub mod metadata;
pub mod storage;

use std::collections::HashMap;
use std::sync::Arc;

use gcloud_sdk::google::firestore::v1::Document;
use gcloud_sdk::prost_types::Timestamp;
use tokio::sync::mpsc;

use self::log::{LogDecoder, Record, BLOCK_SIZE};
use self::storage::ExportStore;
use super::{Change, Position, Range};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

use self::storage::OVERALL_METADATA_SUFFIX as OVERALL_SUFFIX;
/// Blocks read ahead of the decoder per file (32 KiB each).
const READ_AHEAD_BLOCKS: usize = 8;

/// What a document's create and update time become, an export holding neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportTimes {
    /// A mapping that maps them into fields is refused before any I/O (the default: an
    /// operator must choose, see `docs/export.md`).
    #[default]
    Refuse,
    /// The fields are left out of the target documents.
    Omit,
    /// Both are the export's snapshot time: a time the document existed at, not when it
    /// was created or last changed.
    Snapshot,
}

/// How an export is read.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// A damaged or undecodable record becomes a [`Change::Corrupt`] (dead-lettered by
    /// the copy) instead of ending the stream with an error.
    pub skip_corrupt: bool,
    pub times: ExportTimes,
    pub retry: RetryPolicy,
}

/// One output file of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative to the export's store, `/`-separated.
    pub path: String,
    pub size: u64,
}

/// A managed export, read as a [`super::Source`].
#[derive(Clone)]
pub struct ExportSource {
    inner: Arc<Inner>,
}

struct Inner {
    store: ExportStore,
    /// `projects/P/databases/D/documents`, from the first record's key once open
    /// (empty for an export without records).
    root: std::sync::OnceLock<String>,
    endpoint: String,
    /// The export's consistent time.
    snapshot: Timestamp,
    files: Vec<OutputFile>,
    /// Documents the overall metadata counts (`None`: it does not say).
    entities: Option<u64>,
    options: ExportOptions,
}

impl ExportSource {
    /// Opens the export at `path` (a folder, its `….overall_export_metadata` file, or
    /// the same under `gs://bucket/prefix`): reads its metadata, checks that every
    /// output file it names is there, and reads the first record for the project and
    /// database the export belongs to.
    pub async fn open(path: &str, options: ExportOptions) -> Result<Self> {
        let store = ExportStore::open(path, options.retry).await?;
        let listing = store.list().await?;
        let overall = find_overall(&store, &listing)?;
        let base = parent_of(&overall);
        let overall_meta = metadata::parse_overall(&store.read_all(&overall).await?)
            .map_err(|e| export_error(&store, &overall, e))?;
        let sizes: HashMap<&str, u64> = listing.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        let counted: u64 = overall_meta.kinds.iter().map(|k| k.num_entities).sum();
        let mut files = Vec::new();
        let mut start_micros: Option<i64> = None;
        for kind in &overall_meta.kinds {
            let kind_path = join(&base, &kind.path);
            let kind_meta = metadata::parse_kind(&store.read_all(&kind_path).await?)
                .map_err(|e| export_error(&store, &kind_path, e))?;
            let start = kind_meta.snapshot_micros();
            start_micros = Some(start_micros.map_or(start, |s| s.min(start)));
            let kind_dir = parent_of(&kind_path);
            for output in &kind_meta.outputs {
                let file = join(&kind_dir, output);
                let Some(size) = sizes.get(file.as_str()) else {
                    return Err(Error::Export {
                        location: store.describe_file(&kind_path),
                        reason: format!(
                            "names the output file {output}, which is not in the export: an incomplete copy of the export?"
                        ),
                    });
                };
                files.push(OutputFile {
                    path: file,
                    size: *size,
                });
            }
        }
        let snapshot = start_micros
            .map(micros_to_timestamp)
            .ok_or_else(|| Error::Export {
                location: store.describe_file(&overall),
                reason: "lists no kind: no snapshot time and no output file".into(),
            })?;
        let source = ExportSource {
            inner: Arc::new(Inner {
                endpoint: store.describe(),
                store,
                root: std::sync::OnceLock::new(),
                snapshot,
                files,
                entities: (counted > 0).then_some(counted),
                options,
            }),
        };
        let root = source.first_root().await?;
        let _ = source.inner.root.set(root.unwrap_or_default());
        Ok(source)
    }

    /// The export's consistent time: every document is as it was then.
    pub fn snapshot(&self) -> Timestamp {
        self.inner.snapshot
    }

    /// The output files, one range each.
    pub fn files(&self) -> &[OutputFile] {
        &self.inner.files
    }

    /// Total bytes of the output files.
    pub fn bytes(&self) -> u64 {
        self.inner.files.iter().map(|f| f.size).sum()
    }

    /// Whether the export holds no record at all (then [`super::Source::root`] is empty).
    pub fn is_empty(&self) -> bool {
        self.inner.root().is_empty()
    }

    /// The project and database of the first record (`None`: no record anywhere).
    async fn first_root(&self) -> Result<Option<String>> {
        for file in &self.inner.files {
            if file.size == 0 {
                continue;
            }
            // Damage is passed over here: the copy reports it where it is.
            let mut rx = self.stream_file(file.path.clone(), None, 1, true);
            while let Some(item) = rx.recv().await {
                if let (Change::Upsert { doc, .. }, _) = item? {
                    let root = doc
                        .name
                        .find("/documents/")
                        .map(|i| doc.name[..i + "/documents".len()].to_string());
                    return root.map(Some).ok_or_else(|| Error::Export {
                        location: self.inner.store.describe_file(&file.path),
                        reason: format!("a record's key is not a document name: {}", doc.name),
                    });
                }
            }
        }
        Ok(None)
    }

    /// Streams the records of `file` after `after` as changes; damaged records as
    /// [`Change::Corrupt`] when `skip` (else they end the stream with the error).
    fn stream_file(
        &self,
        file: String,
        after: Option<u64>,
        capacity: usize,
        skip: bool,
    ) -> mpsc::Receiver<Result<(Change, Position)>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Err(e) = read_file(&inner, &file, after.unwrap_or(0), skip, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }
}

impl Inner {
    fn root(&self) -> &str {
        self.root.get().map_or("", String::as_str)
    }
}

/// Reads `file` from byte `start` (a record boundary) to its end into `tx`.
async fn read_file(
    inner: &Inner,
    file: &str,
    start: u64,
    skip: bool,
    tx: &mpsc::Sender<Result<(Change, Position)>>,
) -> Result<()> {
    let mut decoder = LogDecoder::new(start);
    let mut blocks = inner
        .store
        .stream(file, decoder.first_block(), BLOCK_SIZE, READ_AHEAD_BLOCKS);
    let mut records = Vec::new();
    // Where a bad record is, for an error, and the key of its dead letter.
    let place = |offset: u64| format!("{}@{offset}", inner.store.describe_file(file));
    let at = |offset: u64| format!("{}#{}", inner.root(), place(offset));
    let send = |change: Change, end: u64| {
        let position = Position::Record {
            file: file.to_string(),
            end,
            name: change.name().to_string(),
        };
        tx.send(Ok((change, position)))
    };
    while let Some(block) = blocks.recv().await {
        let (offset, bytes) = block?;
        let mut pushed = decoder.push_block(offset, &bytes, &mut records);
        loop {
            for record in records.drain(..) {
                let change = match record_change(inner, &record, &place) {
                    Ok(c) => c,
                    Err(Error::Export { reason, .. }) if skip => Change::Corrupt {
                        at: at(record.offset),
                        reason,
                        bytes: record.data,
                    },
                    Err(e) => return Err(e),
                };
                if send(change, record.end).await.is_err() {
                    return Ok(()); // the consumer stopped
                }
            }
            let e = match pushed {
                Ok(()) => break,
                Err(e) if !skip => {
                    return Err(Error::Export {
                        location: place(e.offset),
                        reason: e.reason,
                    })
                }
                Err(e) => e,
            };
            // The damaged record is a dead letter with the block's bytes from the
            // damage on (its own length cannot be trusted). Its position is where it
            // starts: a resume from there meets it again and replaces the same dead
            // letter, then goes on.
            let from = e.offset.saturating_sub(offset) as usize;
            let kept = if e.offset >= offset && from < bytes.len() {
                bytes[from..].to_vec()
            } else {
                Vec::new()
            };
            let change = Change::Corrupt {
                at: at(e.offset),
                reason: e.reason,
                bytes: kept,
            };
            if send(change, e.offset).await.is_err() {
                return Ok(());
            }
            pushed = decoder.skip_corrupt(&mut records);
        }
    }
    match decoder.finish() {
        Ok(()) => Ok(()),
        Err(e) if skip => {
            // The file ends inside a record: the cut record is the dead letter.
            let change = Change::Corrupt {
                at: at(e.offset),
                reason: e.reason,
                bytes: Vec::new(),
            };
            let _ = send(change, e.offset).await;
            Ok(())
        }
        Err(e) => Err(Error::Export {
            location: place(e.offset),
            reason: e.reason,
        }),
    }
}

/// Calls `seen` with the document name of every record of `file` whose key decodes;
/// damage is passed over (the copy reports it where it is).
async fn scan_names(inner: &Inner, file: &str, mut seen: impl FnMut(&str)) -> Result<()> {
    let mut decoder = LogDecoder::new(0);
    let mut blocks = inner.store.stream(file, 0, BLOCK_SIZE, READ_AHEAD_BLOCKS);
    let mut records = Vec::new();
    while let Some(block) = blocks.recv().await {
        let (offset, bytes) = block?;
        let mut pushed = decoder.push_block(offset, &bytes, &mut records);
        loop {
            for record in records.drain(..) {
                if let Ok(name) = entity::decode_name(&record.data) {
                    seen(&name);
                }
            }
            if pushed.is_ok() {
                break;
            }
            pushed = decoder.skip_corrupt(&mut records);
        }
    }
    Ok(())
}

/// The change one record holds: the document as of the snapshot.
fn record_change(inner: &Inner, record: &Record, place: &impl Fn(u64) -> String) -> Result<Change> {
    let mut doc = entity::decode_entity(&record.data).map_err(|e| Error::Export {
        location: place(record.offset),
        reason: format!("undecodable record: {e}"),
    })?;
    if inner.options.times == ExportTimes::Snapshot {
        doc.create_time = Some(inner.snapshot);
        doc.update_time = Some(inner.snapshot);
    }
    // Stamped with the snapshot time whatever the choice above: correct for the
    // update-time guard, every later change being newer than the snapshot.
    Ok(Change::Upsert {
        doc,
        update_time: Some(inner.snapshot),
    })
}

impl super::Source for ExportSource {
    fn root(&self) -> &str {
        self.inner.root()
    }

    fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// An export's records interleave collections (60 in the demo data): with 16
    /// batches of lag, a batch fills to a few hundred documents, and the batches
    /// acknowledged past the position stay within the islands a checkpoint keeps (64).
    fn lag_batches(&self) -> usize {
        16
    }

    /// One range per output file, whatever `n`: a file is read front to back.
    async fn split(&self, _n: usize) -> Result<Vec<Range>> {
        Ok(self
            .inner
            .files
            .iter()
            .map(|f| Range::File {
                file: f.path.clone(),
            })
            .collect())
    }

    /// The documents the export's metadata counts.
    async fn estimate(&self) -> Result<Option<u64>> {
        Ok(self.inner.entities)
    }

    fn stream(
        &self,
        range: &Range,
        after: Option<Position>,
        capacity: usize,
    ) -> mpsc::Receiver<Result<(Change, Position)>> {
        let refuse = |message: String| {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Err(Error::Internal(message)));
            rx
        };
        let Range::File { file } = range else {
            return refuse(format!(
                "the export source was given a key range ({range:?})"
            ));
        };
        let start = match after {
            None => None,
            Some(Position::Record { file: f, end, .. }) if &f == file => Some(end),
            Some(other) => {
                return refuse(format!(
                    "the export range {file} was given the position {other:?}"
                ))
            }
        };
        self.stream_file(
            file.clone(),
            start,
            capacity,
            self.inner.options.skip_corrupt,
        )
    }

    /// Every file in the order of [`Self::split`], from the file `after` stands in.
    fn stream_all(
        &self,
        after: Option<Position>,
        capacity: usize,
    ) -> mpsc::Receiver<Result<(Change, Position)>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let source = self.clone();
        tokio::spawn(async move {
            let files: Vec<String> = source.inner.files.iter().map(|f| f.path.clone()).collect();
            let (first, mut start) = match &after {
                None => (0, None),
                Some(Position::Record { file, end, .. }) => {
                    match files.iter().position(|f| f == file) {
                        Some(i) => (i, Some(*end)),
                        None => {
                            let _ = tx
                                .send(Err(Error::Internal(format!(
                                    "a position in {file}, which this export does not hold"
                                ))))
                                .await;
                            return;
                        }
                    }
                }
                Some(other) => {
                    let _ = tx
                        .send(Err(Error::Internal(format!(
                            "the export was given the position {other:?}"
                        ))))
                        .await;
                    return;
                }
            };
            for file in &files[first..] {
                let skip = source.inner.options.skip_corrupt;
                let mut rx = source.stream_file(file.clone(), start.take(), capacity, skip);
                while let Some(item) = rx.recv().await {
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            }
        });
        rx
    }

    /// The root collections of the documents in the export: read from every record's
    /// key (an export lists no collections; the properties are not decoded). Costs a
    /// pass over the files at disk or network speed, every file at once, no Firestore
    /// read.
    async fn root_collections(&self) -> Result<Vec<String>> {
        let prefix = format!("{}/", self.inner.root());
        let scans = self.inner.files.iter().map(|file| {
            let inner = self.inner.clone();
            let prefix = prefix.clone();
            let path = file.path.clone();
            async move {
                let mut roots = std::collections::BTreeSet::new();
                scan_names(&inner, &path, |name| {
                    if let Some(root) = name.strip_prefix(&prefix).and_then(|r| r.split('/').next())
                    {
                        if !roots.contains(root) {
                            roots.insert(root.to_string());
                        }
                    }
                })
                .await?;
                Ok::<_, Error>(roots)
            }
        });
        let mut roots = std::collections::BTreeSet::new();
        for found in futures::future::try_join_all(scans).await? {
            roots.extend(found);
        }
        Ok(roots.into_iter().collect())
    }

    /// The named documents as the export holds them: found by reading the export
    /// again (it has no index by name), every file at once. The verifier rechecks its
    /// suspects in batches (100 by default), so a verify that finds mismatches reads
    /// the export once more per batch; one without mismatches never calls this.
    async fn read_back(&self, names: &[String]) -> Result<HashMap<String, Option<Document>>> {
        let wanted: std::collections::HashSet<&str> = names.iter().map(|n| n.as_str()).collect();
        let mut found: HashMap<String, Option<Document>> =
            names.iter().map(|n| (n.clone(), None)).collect();
        let scans = self.inner.files.iter().map(|file| {
            let mut rx = self.stream_file(file.path.clone(), None, 1024, true);
            let wanted = &wanted;
            async move {
                let mut hits = Vec::new();
                while let Some(item) = rx.recv().await {
                    // A damaged record cannot be the one asked for: pass 1 reported it.
                    if let (Change::Upsert { doc, .. }, _) = item? {
                        if wanted.contains(doc.name.as_str()) {
                            hits.push(doc);
                        }
                    }
                }
                Ok::<_, Error>(hits)
            }
        });
        for hits in futures::future::try_join_all(scans).await? {
            for doc in hits {
                found.insert(doc.name.clone(), Some(doc));
            }
        }
        Ok(found)
    }
}

/// The `….overall_export_metadata` file of the export: exactly one.
fn find_overall(store: &ExportStore, listing: &[(String, u64)]) -> Result<String> {
    if let Some(named) = store.metadata_file() {
        return Ok(named.to_string());
    }
    let found: Vec<&String> = listing
        .iter()
        .map(|(p, _)| p)
        .filter(|p| p.ends_with(OVERALL_SUFFIX))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::Export {
            location: store.describe(),
            reason: format!(
                "no *{OVERALL_SUFFIX} file here: give the export's folder (the one `gcloud firestore export` named) or that file"
            ),
        }),
        many => Err(Error::Export {
            location: store.describe(),
            reason: format!(
                "holds {} exports ({}): give one of them",
                many.len(),
                many.iter()
                    .take(5)
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

fn export_error(store: &ExportStore, file: &str, e: impl std::fmt::Display) -> Error {
    Error::Export {
        location: store.describe_file(file),
        reason: e.to_string(),
    }
}

/// The folder of a `/`-separated relative path (`""` at the top).
fn parent_of(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default()
}

fn join(dir: &str, rel: &str) -> String {
    if dir.is_empty() {
        rel.to_string()
    } else {
        format!("{dir}/{rel}")
    }
}

fn micros_to_timestamp(micros: i64) -> Timestamp {
    Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_split() {
        assert_eq!(parent_of("a/b/c.export_metadata"), "a/b");
        assert_eq!(parent_of("e1.overall_export_metadata"), "");
        assert_eq!(join("", "x"), "x");
        assert_eq!(join("a/b", "output-0"), "a/b/output-0");
    }

    #[test]
    fn micros_become_timestamps_below_zero_too() {
        assert_eq!(
            micros_to_timestamp(1_796_232_797_221_918),
            Timestamp {
                seconds: 1_796_232_797,
                nanos: 221_918_000
            }
        );
        assert_eq!(
            micros_to_timestamp(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_999_000
            }
        );
    }
}
