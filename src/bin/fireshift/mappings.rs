//! `fireshift check` and `fireshift indexes`, and the one place the binary turns
//! `--mappings DIR` into a [`Transformer`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use fireshift::mapping::indexes::{self, render_report};
use fireshift::mapping::transform::Transformer;
use fireshift::mapping::{parent_pattern, Identity, Landing, MappingSet};
use fireshift::retry::RetryPolicy;
use fireshift::sink::SinkConfig;

use crate::exit::ExitCode;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Mapping directory (`mappings/<dataset>`): every `*.toml` file, plus `dataset.toml`.
    #[arg(long)]
    pub mappings: PathBuf,
}

#[derive(Debug, Args)]
pub struct IndexesArgs {
    /// Mapping directory whose `[[indexes]]` to build.
    #[arg(long)]
    pub mappings: PathBuf,
    #[command(flatten)]
    pub mongo: crate::cli::MongoTarget,
    /// Give up on an unreachable server after retrying this long (seconds).
    #[arg(long, default_value_t = 300)]
    pub retry_timeout: u64,
}

/// The transformer for `--mappings DIR` (default mapping when `None`), validated before
/// any I/O; every error of every file in the message.
pub fn transformer(dir: Option<&Path>) -> anyhow::Result<Transformer> {
    Transformer::from_dir(dir).map_err(|e| anyhow::anyhow!("invalid mappings:\n{e}"))
}

/// `fireshift check --mappings DIR`: validates only; exit 0 when valid, 1 otherwise.
pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    match MappingSet::load(&args.mappings) {
        Ok(set) => {
            print!("{}", describe(&set));
            Ok(ExitCode::Ok)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::Error)
        }
    }
}

/// A table of what the set does, for `check`.
fn describe(set: &MappingSet) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let rows: Vec<[String; 4]> = set
        .mappings()
        .map(|m| {
            let identity = match &m.identity {
                Identity::Keep => "keep".to_string(),
                Identity::ObjectId { firestore_id_field } => {
                    format!("objectid (+{firestore_id_field})")
                }
                Identity::Field { field, .. } => format!("field `{field}`"),
            };
            let landing = match &m.landing {
                Landing::Root => m.target.clone(),
                Landing::Own { parent_field, .. } => format!("{} (+{parent_field})", m.target),
                Landing::Embed { field, max } => format!(
                    "{}.{field}[≤{max}]",
                    parent_pattern(&m.pattern)
                        .map(|p| set.target_of(&p))
                        .unwrap_or_default()
                ),
            };
            [
                m.collection.clone(),
                landing,
                identity,
                m.file()
                    .and_then(|f| f.file_name())
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let w = |i: usize, title: &str| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (w0, w1, w2) = (w(0, "collection"), w(1, "lands in"), w(2, "identity"));
    let _ = writeln!(
        s,
        "{:<w0$}  {:<w1$}  {:<w2$}  file",
        "collection", "lands in", "identity"
    );
    for r in &rows {
        let _ = writeln!(s, "{:<w0$}  {:<w1$}  {:<w2$}  {}", r[0], r[1], r[2], r[3]);
    }
    let _ = writeln!(
        s,
        "{}: {} mappings, {} indexes, all valid. Collections without a mapping file keep the defaults. Fingerprint {}",
        set.dir.display(),
        rows.len(),
        set.indexes().len(),
        set.fingerprint()
    );
    s
}

/// `fireshift indexes`: builds the declared indexes alone (idempotent), prints a report.
/// Exit 0 when every index exists, 5 when some were refused or clash, 1 on a bad
/// mapping or an unreachable server.
pub async fn indexes(args: IndexesArgs) -> anyhow::Result<ExitCode> {
    let set = match MappingSet::load(&args.mappings) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::Error);
        }
    };
    let config = SinkConfig {
        retry: RetryPolicy {
            deadline: Duration::from_secs(args.retry_timeout),
            ..RetryPolicy::default()
        },
        ..SinkConfig::default()
    };
    let sink = args.mongo.connect(config).await?;
    let reports = indexes::build(sink.database(), &set).await;
    sink.shutdown().await;
    println!("{}", render_report(&reports));
    Ok(if reports.iter().all(|r| r.is_ok()) {
        ExitCode::Ok
    } else {
        ExitCode::IndexesNotBuilt
    })
}
