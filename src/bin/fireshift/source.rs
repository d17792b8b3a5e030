//! Which source a command reads: the live database, or an export (`--from-export`).
//! Commands hold one [`AnySource`] and hand it to the library's generic code.

use std::collections::HashMap;

use anyhow::{bail, Context};
use fireshift::mapping::transform::Transformer;
use fireshift::source::export::{ExportSource, ExportTimes};
use fireshift::source::{Change, FirestoreSource, Position, Range, Source, SourceConfig};
use gcloud_sdk::google::firestore::v1::Document;
use tokio::sync::mpsc;

use crate::cli::{Endpoints, ExportArgs};

/// The live database or an export, as one [`Source`].
#[derive(Clone)]
pub enum AnySource {
    /// Boxed: the live source's configuration is far larger than the export's handle.
    Live(Box<FirestoreSource>),
    Export(ExportSource),
}

impl AnySource {
    /// Opens the source the flags name: the export with `--from-export` (the mappings
    /// checked first against what an export can carry), else the live database with
    /// `config`.
    pub async fn open(
        ep: &Endpoints,
        config: SourceConfig,
        transformer: &Transformer,
    ) -> anyhow::Result<Self> {
        match &ep.export.from_export {
            None => Ok(Self::Live(Box::new(
                FirestoreSource::connect(config)
                    .await
                    .context("connecting to Firestore")?,
            ))),
            Some(path) => Ok(Self::Export(open_export(ep, path, transformer).await?)),
        }
    }

    /// The project and Firestore database the source holds (from its root).
    pub fn ids(&self) -> (String, String) {
        ids_of(self.root())
    }

    /// The live database a follow reads (`migrate --follow`), and the time it must
    /// start from when the copy stands for one: an export's snapshot time (its copy is
    /// the database as of then, so the follow takes every change after it). `None`: the
    /// follow takes Firestore's clock before the copy's first read.
    pub async fn followed(
        &self,
        ep: &Endpoints,
        page_size: i32,
    ) -> anyhow::Result<(FirestoreSource, Option<i64>)> {
        match self {
            Self::Live(live) => Ok(((**live).clone(), None)),
            Self::Export(export) => {
                let (project, database) = self.ids();
                let mut config = ep.source_config();
                config.project = project;
                config.database_id = database;
                config.page_size = page_size;
                let live = FirestoreSource::connect(config)
                    .await
                    .context("connecting to Firestore to follow the export's database")?;
                let start = fireshift::sink::guard::timestamp_nanos(&export.snapshot());
                Ok((live, Some(start)))
            }
        }
    }

    /// The export's path, for an export.
    pub fn export_path<'a>(&self, ep: &'a Endpoints) -> Option<&'a str> {
        match self {
            Self::Live(_) => None,
            Self::Export(_) => ep.export.from_export.as_deref(),
        }
    }
}

/// Refuses mappings that need per-document times an export lacks (before any I/O), then
/// opens the export and checks it against `--project` / `--firestore-database` if given.
async fn open_export(
    ep: &Endpoints,
    path: &str,
    transformer: &Transformer,
) -> anyhow::Result<ExportSource> {
    check_times(&ep.export, transformer)?;
    let export = ExportSource::open(path, ep.export.options(ep.retry()))
        .await
        .with_context(|| format!("opening the export {path}"))?;
    let snapshot = rfc3339(&export.snapshot());
    if export.is_empty() {
        tracing::warn!("the export {path} holds no document (snapshot {snapshot})");
        return Ok(export);
    }
    let (project, database) = ids_of(fireshift::source::Source::root(&export));
    if let Some(given) = &ep.firestore.project {
        if *given != project {
            bail!("the export {path} holds project {project}, not --project {given}");
        }
    }
    let given_db = &ep.firestore.firestore_database;
    if given_db != fireshift::source::DEFAULT_DATABASE_ID && *given_db != database {
        bail!("the export {path} holds database {database}, not --firestore-database {given_db}");
    }
    // On stdout, whatever the log level: the time the copy stands for is a result.
    println!(
        "export {path}: project {project}, database {database}, snapshot at {snapshot}, {} output files, {} bytes",
        export.files().len(),
        export.bytes()
    );
    Ok(export)
}

/// An export carries no create or update time per document: mappings that map them
/// are refused unless `--export-times` says what they become.
fn check_times(export: &ExportArgs, transformer: &Transformer) -> anyhow::Result<()> {
    if export.options(Default::default()).times != ExportTimes::Refuse {
        return Ok(());
    }
    let Some(set) = transformer.mappings() else {
        return Ok(());
    };
    let asking: Vec<String> = set
        .mappings()
        .filter(|m| m.create_time.is_some() || m.update_time.is_some())
        .map(|m| {
            m.origin.as_ref().map_or_else(
                || m.collection.clone(),
                |o| o.file.path.display().to_string(),
            )
        })
        .collect();
    if !asking.is_empty() {
        bail!(
            "these mappings map document create/update times ([metadata]), which an export does not hold: {}. \
             Choose what they become: --export-times omit (left out) or --export-times snapshot (the export's snapshot time); see docs/export.md",
            asking.join(", ")
        );
    }
    Ok(())
}

/// A timestamp as RFC 3339 text, microseconds shown (an export's precision).
pub fn rfc3339(ts: &gcloud_sdk::prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.max(0) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| format!("{}s {}ns", ts.seconds, ts.nanos))
}

/// `projects/P/databases/D/documents` → (P, D).
fn ids_of(root: &str) -> (String, String) {
    let mut parts = root.split('/');
    let project = parts.nth(1).unwrap_or_default().to_string();
    let database = parts.nth(1).unwrap_or_default().to_string();
    (project, database)
}

impl Source for AnySource {
    fn root(&self) -> &str {
        match self {
            Self::Live(s) => s.root(),
            Self::Export(s) => s.root(),
        }
    }

    fn endpoint(&self) -> &str {
        match self {
            Self::Live(s) => Source::endpoint(&**s),
            Self::Export(s) => s.endpoint(),
        }
    }

    async fn split(&self, n: usize) -> fireshift::error::Result<Vec<Range>> {
        match self {
            Self::Live(s) => s.split(n).await,
            Self::Export(s) => s.split(n).await,
        }
    }

    async fn estimate(&self) -> fireshift::error::Result<Option<u64>> {
        match self {
            Self::Live(s) => s.estimate().await,
            Self::Export(s) => s.estimate().await,
        }
    }

    fn stream(
        &self,
        range: &Range,
        after: Option<Position>,
        capacity: usize,
    ) -> mpsc::Receiver<fireshift::error::Result<(Change, Position)>> {
        match self {
            Self::Live(s) => Source::stream(&**s, range, after, capacity),
            Self::Export(s) => s.stream(range, after, capacity),
        }
    }

    fn lag_batches(&self) -> usize {
        match self {
            Self::Live(s) => s.lag_batches(),
            Self::Export(s) => s.lag_batches(),
        }
    }

    fn stream_all(
        &self,
        after: Option<Position>,
        capacity: usize,
    ) -> mpsc::Receiver<fireshift::error::Result<(Change, Position)>> {
        match self {
            Self::Live(s) => s.stream_all(after, capacity),
            Self::Export(s) => s.stream_all(after, capacity),
        }
    }

    async fn root_collections(&self) -> fireshift::error::Result<Vec<String>> {
        match self {
            Self::Live(s) => Source::root_collections(&**s).await,
            Self::Export(s) => s.root_collections().await,
        }
    }

    async fn read_back(
        &self,
        names: &[String],
    ) -> fireshift::error::Result<HashMap<String, Option<Document>>> {
        match self {
            Self::Live(s) => s.read_back(names).await,
            Self::Export(s) => s.read_back(names).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_root() {
        assert_eq!(
            ids_of("projects/p1/databases/(default)/documents"),
            ("p1".to_string(), "(default)".to_string())
        );
        assert_eq!(
            ids_of("projects/p-2/databases/db2/documents"),
            ("p-2".to_string(), "db2".to_string())
        );
    }
}
