//! Where the files of an export are read from: a local directory, or a bucket and prefix
//! on Cloud Storage (`gs://`). The export reader sees one interface for both: list the
//! files, read a small one whole, stream a large one in fixed-size chunks from an offset.
//!
//! The operator's path may name the export's folder or its `….overall_export_metadata`
//! file; either way the *root* is the folder, and every file is addressed by its path
//! relative to it, with `/` separators (`all_namespaces/all_kinds/output-0`).
//!
//! Local files are read with `std::fs` inside `tokio::task::spawn_blocking`, one call per
//! chunk: a blocking thread is held only while a read runs, never while a full channel
//! waits for its consumer, and tokio's `fs` feature (which does the same per call) is not
//! needed. Local reads are not retried: a failing disk does not heal by waiting.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::gcs::Gcs;
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// The suffix of the file that describes a whole export.
pub const OVERALL_METADATA_SUFFIX: &str = ".overall_export_metadata";

/// Settings of an [`ExportStore`] that come from the environment or from tests.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `STORAGE_EMULATOR_HOST`: the Cloud Storage emulator's address (`host:port`, or a
    /// URL); with it `gs://` paths go there, over HTTP, without credentials.
    pub emulator_host: Option<String>,
    /// How long a Cloud Storage answer (its head, or the next piece of its body) may
    /// keep a read waiting before it counts as stalled and is retried.
    pub answer_timeout: Duration,
    /// Objects per listing page (the JSON API allows at most 1000).
    pub list_page_size: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            emulator_host: None,
            answer_timeout: Duration::from_secs(60),
            list_page_size: 1000,
        }
    }
}

impl StoreOptions {
    /// The defaults, with `STORAGE_EMULATOR_HOST` when it is set and not empty.
    pub fn from_env() -> Self {
        Self {
            emulator_host: std::env::var("STORAGE_EMULATOR_HOST")
                .ok()
                .filter(|h| !h.trim().is_empty()),
            ..Self::default()
        }
    }
}

/// Where an export lives: parsed from the operator's path (a local directory, a local
/// `….overall_export_metadata` file, or `gs://bucket/prefix[/….overall_export_metadata]`).
/// Cheap to clone; clones share one HTTP client.
#[derive(Clone)]
pub struct ExportStore {
    inner: Arc<Inner>,
}

struct Inner {
    location: Location,
    /// The metadata file the operator named, if they named one.
    metadata_file: Option<String>,
    retry: RetryPolicy,
}

enum Location {
    Local {
        root: PathBuf,
    },
    Gcs {
        gcs: Gcs,
        /// The root's object-name prefix: empty, or ending in `/`.
        prefix: String,
    },
}

/// The operator's path, parsed without any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ExportPath {
    Local {
        root: PathBuf,
        metadata_file: Option<String>,
    },
    Gcs {
        bucket: String,
        prefix: String,
        metadata_file: Option<String>,
    },
}

fn parse_path(path: &str) -> Result<ExportPath> {
    let path = path.trim();
    if let Some(rest) = path.strip_prefix("gs://") {
        let (bucket, object) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
        if bucket.is_empty() || !bucket.chars().all(valid) {
            return Err(Error::Config(format!(
                "--from-export {path}: `{bucket}` is not a bucket name (expected gs://BUCKET/PREFIX)"
            )));
        }
        let object = object.trim_matches('/');
        let (prefix, metadata_file) = match object.rsplit_once('/') {
            _ if !object.ends_with(OVERALL_METADATA_SUFFIX) => (object, None),
            Some((dir, file)) => (dir, Some(file.to_string())),
            None => ("", Some(object.to_string())),
        };
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        return Ok(ExportPath::Gcs {
            bucket: bucket.to_string(),
            prefix,
            metadata_file,
        });
    }
    if path.is_empty() {
        return Err(Error::Config("--from-export: empty path".into()));
    }
    let p = PathBuf::from(path);
    match p.file_name().and_then(|f| f.to_str()) {
        Some(file) if file.ends_with(OVERALL_METADATA_SUFFIX) => Ok(ExportPath::Local {
            root: match p.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            },
            metadata_file: Some(file.to_string()),
        }),
        _ => Ok(ExportPath::Local {
            root: p,
            metadata_file: None,
        }),
    }
}

impl ExportStore {
    /// Opens the export at `path`, with `STORAGE_EMULATOR_HOST` from the environment.
    /// A local root must be an existing directory (and a named metadata file must
    /// exist); for `gs://` the credentials are resolved here (a first token is
    /// fetched), the bucket is first touched by [`list`](Self::list).
    pub async fn open(path: &str, retry: RetryPolicy) -> Result<Self> {
        Self::open_with(path, retry, StoreOptions::from_env()).await
    }

    /// [`open`](Self::open) with explicit options.
    pub async fn open_with(path: &str, retry: RetryPolicy, options: StoreOptions) -> Result<Self> {
        let (location, metadata_file) = match parse_path(path)? {
            ExportPath::Local {
                root,
                metadata_file,
            } => {
                let checked = root.clone();
                let file = metadata_file.clone();
                blocking(move || {
                    let meta = std::fs::metadata(&checked)
                        .map_err(|e| Error::io("opening the export directory", &checked, e))?;
                    if !meta.is_dir() {
                        return Err(Error::Config(format!(
                            "--from-export {}: not a directory, nor a file named …{OVERALL_METADATA_SUFFIX}",
                            checked.display()
                        )));
                    }
                    if let Some(file) = file {
                        let p = checked.join(file);
                        std::fs::metadata(&p).map_err(|e| Error::io("opening", &p, e))?;
                    }
                    Ok(())
                })
                .await?;
                (Location::Local { root }, metadata_file)
            }
            ExportPath::Gcs {
                bucket,
                prefix,
                metadata_file,
            } => {
                let gcs = Gcs::connect(
                    &bucket,
                    options.emulator_host.as_deref(),
                    options.answer_timeout,
                    options.list_page_size.clamp(1, 1000),
                )
                .await?;
                (Location::Gcs { gcs, prefix }, metadata_file)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                location,
                metadata_file,
                retry,
            }),
        })
    }

    /// The export's root for messages (`gs://bucket/prefix/ (credentials: …)` or a
    /// directory). Never a secret.
    pub fn describe(&self) -> String {
        match &self.inner.location {
            Location::Local { root } => format!("local directory {}", root.display()),
            Location::Gcs { gcs, prefix } => {
                format!("{} ({})", gcs_address(gcs, prefix), gcs.endpoint())
            }
        }
    }

    /// One file of the export for messages: its local path or its `gs://` address.
    pub fn describe_file(&self, rel: &str) -> String {
        match &self.inner.location {
            Location::Local { root } => root.join(rel).display().to_string(),
            Location::Gcs { gcs, prefix } => gcs_address(gcs, &format!("{prefix}{rel}")),
        }
    }

    /// The `….overall_export_metadata` file the operator's path named, relative to the
    /// root, if it named one (else the reader finds it in [`list`](Self::list)).
    pub fn metadata_file(&self) -> Option<&str> {
        self.inner.metadata_file.as_deref()
    }

    /// Every file under the export root: (relative path with `/` separators, size in
    /// bytes), sorted by path. Subdirectories are walked; `gs://` placeholders for
    /// folders (names ending in `/`) are left out.
    pub async fn list(&self) -> Result<Vec<(String, u64)>> {
        match &self.inner.location {
            Location::Local { root } => {
                let root = root.clone();
                blocking(move || {
                    let mut out = Vec::new();
                    walk(&root, "", &mut out)?;
                    out.sort();
                    Ok(out)
                })
                .await
            }
            Location::Gcs { gcs, prefix } => {
                let objects = gcs.list(prefix, self.inner.retry).await?;
                Ok(objects
                    .into_iter()
                    .filter_map(|(name, size)| {
                        Some((name.strip_prefix(prefix.as_str())?.to_string(), size))
                    })
                    .collect())
            }
        }
    }

    /// A small file whole (the metadata files); on `gs://` retried within the retry
    /// policy's deadline.
    pub async fn read_all(&self, rel: &str) -> Result<Vec<u8>> {
        check_relative(rel)?;
        match &self.inner.location {
            Location::Local { root } => {
                let path = root.join(rel);
                blocking(move || std::fs::read(&path).map_err(|e| Error::io("reading", &path, e)))
                    .await
            }
            Location::Gcs { gcs, prefix } => {
                gcs.read_all(&format!("{prefix}{rel}"), self.inner.retry)
                    .await
            }
        }
    }

    /// Streams `rel` from byte `from` to its end as consecutive chunks of exactly
    /// `chunk` bytes (the file's last may be shorter), each with its offset: `(offset,
    /// bytes)`, through a channel of `capacity` chunks, so memory stays near
    /// `capacity × chunk` whatever the file's size. `from` may be any offset up to the
    /// file's size (the export reader passes multiples of its 32 KiB block); past the
    /// end is an error.
    ///
    /// On `gs://` a transient fault (connection reset, HTTP 429/5xx, an answer stalled
    /// past the answer timeout) re-requests from the first byte not yet received, with
    /// backoff within the retry policy's deadline (restarted whenever bytes arrive):
    /// every byte is delivered exactly once and in order. A persistent fault ends the
    /// stream with the error as its last item. The stream also ends when the receiver
    /// is dropped. Must be called inside a tokio runtime.
    pub fn stream(
        &self,
        rel: &str,
        from: u64,
        chunk: usize,
        capacity: usize,
    ) -> mpsc::Receiver<Result<(u64, Bytes)>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let chunk = chunk.max(1);
        let store = self.clone();
        let rel = rel.to_string();
        tokio::spawn(async move {
            if let Err(e) = check_relative(&rel) {
                let _ = tx.send(Err(e)).await;
                return;
            }
            match &store.inner.location {
                Location::Local { root } => stream_local(root.join(&rel), from, chunk, tx).await,
                Location::Gcs { gcs, prefix } => {
                    let name = format!("{prefix}{rel}");
                    gcs.stream(&name, from, chunk, store.inner.retry, tx).await
                }
            }
        });
        rx
    }
}

fn gcs_address(gcs: &Gcs, prefix: &str) -> String {
    format!("gs://{}/{prefix}", gcs.bucket())
}

/// Refuses a relative path that would leave the root (`..`, absolute): the paths come
/// from the export's own files, which an operator may have edited.
fn check_relative(rel: &str) -> Result<()> {
    let ok = !rel.is_empty()
        && !rel.starts_with('/')
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "`{rel}` is not a file path inside the export (it must be relative, without `..`)"
        )))
    }
}

/// Runs a blocking file operation off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("a file-reading task failed: {e}")))?
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, u64)>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing", dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        // Follows symbolic links, as reading the file will.
        let meta = std::fs::metadata(&path).map_err(|e| Error::io("reading", &path, e))?;
        if meta.is_dir() {
            walk(&path, &child, out)?;
        } else if meta.is_file() {
            out.push((child, meta.len()));
        }
    }
    Ok(())
}

async fn stream_local(
    path: PathBuf,
    from: u64,
    chunk: usize,
    tx: mpsc::Sender<Result<(u64, Bytes)>>,
) {
    let p = path.clone();
    let opened = blocking(move || {
        let mut file = std::fs::File::open(&p).map_err(|e| Error::io("opening", &p, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading", &p, e))?
            .len();
        if from > len {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("offset {from} is past the end of the file ({len} bytes)"),
            );
            return Err(Error::io("reading", &p, e));
        }
        file.seek(SeekFrom::Start(from))
            .map_err(|e| Error::io("reading", &p, e))?;
        Ok(file)
    })
    .await;
    let mut file = match opened {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    let mut offset = from;
    loop {
        let p = path.clone();
        let read = blocking(move || {
            let mut buf = vec![0u8; chunk];
            let mut filled = 0;
            while filled < chunk {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("reading", &p, e)),
                }
            }
            buf.truncate(filled);
            Ok((file, buf))
        })
        .await;
        match read {
            Ok((f, buf)) => {
                file = f;
                let n = buf.len();
                if n > 0 && tx.send(Ok((offset, Bytes::from(buf)))).await.is_err() {
                    return;
                }
                offset += n as u64;
                if n < chunk {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_root_and_the_metadata_file() {
        assert_eq!(
            parse_path("gs://bk/exports/2024/x.overall_export_metadata").unwrap(),
            ExportPath::Gcs {
                bucket: "bk".into(),
                prefix: "exports/2024/".into(),
                metadata_file: Some("x.overall_export_metadata".into()),
            }
        );
        assert_eq!(
            parse_path("gs://bk/exports/2024/").unwrap(),
            ExportPath::Gcs {
                bucket: "bk".into(),
                prefix: "exports/2024/".into(),
                metadata_file: None,
            }
        );
        assert_eq!(
            parse_path("gs://bk").unwrap(),
            ExportPath::Gcs {
                bucket: "bk".into(),
                prefix: String::new(),
                metadata_file: None,
            }
        );
        assert_eq!(
            parse_path("gs://bk/x.overall_export_metadata").unwrap(),
            ExportPath::Gcs {
                bucket: "bk".into(),
                prefix: String::new(),
                metadata_file: Some("x.overall_export_metadata".into()),
            }
        );
        assert_eq!(
            parse_path("/data/exp/exp.overall_export_metadata").unwrap(),
            ExportPath::Local {
                root: "/data/exp".into(),
                metadata_file: Some("exp.overall_export_metadata".into()),
            }
        );
        assert_eq!(
            parse_path("exp.overall_export_metadata").unwrap(),
            ExportPath::Local {
                root: ".".into(),
                metadata_file: Some("exp.overall_export_metadata".into()),
            }
        );
        let bad = parse_path("gs://My Bucket/x").unwrap_err().to_string();
        assert!(bad.contains("`My Bucket` is not a bucket name"), "{bad}");
        assert!(parse_path("gs://").is_err());
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        assert!(check_relative("all_namespaces/all_kinds/output-0").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
    }

    fn pattern(n: usize) -> Vec<u8> {
        // Not periodic in any chunk size a test uses, so a misplaced chunk shows.
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    async fn collect(mut rx: mpsc::Receiver<Result<(u64, Bytes)>>) -> Result<Vec<(u64, Bytes)>> {
        let mut out = Vec::new();
        while let Some(item) = rx.recv().await {
            out.push(item?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_local_export_lists_reads_and_streams_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let kinds = dir.path().join("all_namespaces/all_kinds");
        std::fs::create_dir_all(&kinds).unwrap();
        std::fs::write(dir.path().join("e.overall_export_metadata"), b"meta").unwrap();
        std::fs::write(
            kinds.join("all_namespaces_all_kinds.export_metadata"),
            b"km",
        )
        .unwrap();
        let data = pattern(100_000);
        std::fs::write(kinds.join("output-0"), &data).unwrap();

        let named = dir.path().join("e.overall_export_metadata");
        let store = ExportStore::open(named.to_str().unwrap(), RetryPolicy::default())
            .await
            .unwrap();
        assert_eq!(store.metadata_file(), Some("e.overall_export_metadata"));
        assert!(store.describe().contains(dir.path().to_str().unwrap()));
        assert_eq!(
            store.list().await.unwrap(),
            vec![
                (
                    "all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata".to_string(),
                    2
                ),
                ("all_namespaces/all_kinds/output-0".to_string(), 100_000),
                ("e.overall_export_metadata".to_string(), 4),
            ]
        );
        assert_eq!(
            store.read_all("e.overall_export_metadata").await.unwrap(),
            b"meta"
        );

        let chunks = collect(store.stream("all_namespaces/all_kinds/output-0", 0, 32 * 1024, 2))
            .await
            .unwrap();
        let offsets: Vec<u64> = chunks.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, vec![0, 32768, 65536, 98304]);
        assert_eq!(chunks[3].1.len(), 100_000 - 98304);
        assert_eq!(
            chunks
                .iter()
                .flat_map(|(_, b)| b.to_vec())
                .collect::<Vec<_>>(),
            data
        );

        let tail = collect(store.stream("all_namespaces/all_kinds/output-0", 65536, 10_000, 1))
            .await
            .unwrap();
        assert_eq!(
            tail[0],
            (65536, Bytes::copy_from_slice(&data[65536..75536]))
        );
        assert_eq!(
            tail.iter()
                .flat_map(|(_, b)| b.to_vec())
                .collect::<Vec<_>>(),
            &data[65536..]
        );

        let at_end = collect(store.stream("all_namespaces/all_kinds/output-0", 100_000, 4096, 1))
            .await
            .unwrap();
        assert!(at_end.is_empty());
    }

    #[tokio::test]
    async fn local_faults_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small"), b"abc").unwrap();
        let store = ExportStore::open(dir.path().to_str().unwrap(), RetryPolicy::default())
            .await
            .unwrap();
        assert_eq!(store.metadata_file(), None);
        let missing = store
            .read_all("nope/output-1")
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope/output-1"), "{missing}");
        let past = collect(store.stream("small", 32768, 4096, 1))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            past.contains("small") && past.contains("past the end"),
            "{past}"
        );
        let gone = collect(store.stream("gone", 0, 4096, 1))
            .await
            .unwrap_err()
            .to_string();
        assert!(gone.contains("gone"), "{gone}");
        let outside = store
            .read_all("../etc/passwd")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            outside.contains("not a file path inside the export"),
            "{outside}"
        );

        let no_dir = dir.path().join("missing-dir");
        let e = ExportStore::open(no_dir.to_str().unwrap(), RetryPolicy::default())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("missing-dir"), "{e}");
        let file = dir.path().join("small");
        let e = ExportStore::open(file.to_str().unwrap(), RetryPolicy::default())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
    }
}
