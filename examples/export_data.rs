//! Writes a managed-export folder of the deterministic demo data set (the
//! `fireshift-demo` crate, examples/demo) without the emulator: the input of
//! `scripts/bench-export` and of `tests/export_generator.rs`.
//!
//! ```text
//! cargo run --release --example export_data -- --users 170000 --out /tmp/exp \
//!   [--project bench-fireshift] [--database-id '(default)'] [--files 8] \
//!   [--name bench] [--layout chunks|round-robin]
//! ```
//!
//! The layout is the one the emulator's export endpoint writes (see
//! `tests/fixtures/export/exp1`, and `docs/` for the format):
//!
//! ```text
//! OUT/NAME/NAME.overall_export_metadata
//! OUT/NAME/all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata
//! OUT/NAME/all_namespaces/all_kinds/output-0 … output-(K-1)
//! ```
//!
//! Each document of `fireshift_demo::generate(users, project, database_id, FIXED_NOW)`
//! (the documents `demo_data` loads and `bench_io write` builds) is encoded with the
//! library's `encode_entity` and appended as one record with its `LogWriter`. Documents
//! are streamed: one is in memory at a time, whatever `--users` (about 59 documents per
//! user: `--users 170000` ≈ 10M documents). `chunks` (the default) gives each file a
//! contiguous run of the stream, as a real export gives each file a key range;
//! `round-robin` deals them out one by one.
//!
//! Prints one JSON line on stdout: `{"docs":N,"bytes":B,"secs":S,"files":K,"dir":…}`
//! (`bytes`: the output files' total size; `dir`: the export folder to pass to
//! `migrate --from-export`).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use fireshift::source::export::entity::encode_entity;
use fireshift::source::export::log::LogWriter;
use fireshift::source::export::metadata::{
    write_kind, write_overall, EntitySetSpec, KindFile, KindMetadata, OverallMetadata,
    OVERALL_MARKER,
};
use fireshift_demo as demo;
use serde_json::json;

/// The kind folder and metadata file of a whole-database export, relative to the
/// export folder (what the emulator writes).
const KIND_DIR: &str = "all_namespaces/all_kinds";
const KIND_METADATA: &str = "all_namespaces_all_kinds.export_metadata";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Layout {
    /// File i holds the i-th contiguous share of the documents.
    Chunks,
    /// Document n goes to file n mod K.
    RoundRobin,
}

#[derive(Debug, Parser)]
#[command(about = "Write a managed-export folder of the fireshift demo data set")]
struct Args {
    /// Number of demo users; about 59 documents each, plus about 200 fixed ones.
    #[arg(long)]
    users: usize,
    /// Folder to write the export folder NAME into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Project the document names (and references) carry.
    #[arg(long, default_value = "bench-fireshift")]
    project: String,
    /// Firestore database id the document names carry.
    #[arg(long, default_value = "(default)")]
    database_id: String,
    /// Number of output-N files.
    #[arg(long, default_value_t = 1)]
    files: usize,
    /// Export name: the export folder's name and its metadata files' prefix.
    #[arg(long, default_value = "export")]
    name: String,
    /// How documents are spread over the files.
    #[arg(long, value_enum, default_value_t = Layout::Chunks)]
    layout: Layout,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.files == 0 {
        bail!("--files must be at least 1");
    }
    if args.name.is_empty() || args.name.contains('/') {
        bail!("--name must be a non-empty file name, got {:?}", args.name);
    }
    let export_dir = args.out.join(&args.name);
    if export_dir.exists() {
        bail!(
            "{} exists: give a new --name or remove it",
            export_dir.display()
        );
    }
    let kind_dir = export_dir.join(KIND_DIR);
    fs::create_dir_all(&kind_dir).with_context(|| format!("creating {}", kind_dir.display()))?;

    let started = Instant::now();
    let start_micros = now_micros();
    let total = demo::expected_count(args.users);
    // Documents per file in `chunks`: the first `total % files` files get one more.
    let share = |i: usize| total / args.files + usize::from(i < total % args.files);

    let outputs: Vec<String> = (0..args.files).map(|i| format!("output-{i}")).collect();
    let mut writers = outputs
        .iter()
        .map(|o| open_output(&kind_dir.join(o)))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut docs = 0usize;
    let (mut file, mut in_file) = (0usize, 0usize);
    for d in demo::generate(
        args.users,
        &args.project,
        &args.database_id,
        demo::FIXED_NOW,
    ) {
        let doc = d.into_document(&args.project, &args.database_id);
        let record = encode_entity(&doc).with_context(|| format!("encoding {}", doc.name))?;
        let target = match args.layout {
            Layout::RoundRobin => docs % args.files,
            Layout::Chunks => {
                while in_file >= share(file) && file + 1 < args.files {
                    (file, in_file) = (file + 1, 0);
                }
                in_file += 1;
                file
            }
        };
        writers[target]
            .add_record(&record)
            .with_context(|| format!("writing {}", outputs[target]))?;
        docs += 1;
    }
    if docs != total {
        bail!("the demo generator yielded {docs} documents, expected_count says {total}");
    }
    let mut bytes = 0u64;
    for (w, o) in writers.into_iter().zip(&outputs) {
        bytes += w.offset();
        let mut inner = w.into_inner();
        inner.flush().with_context(|| format!("writing {o}"))?;
        inner
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("closing {o}"))?;
    }
    let end_micros = now_micros().max(start_micros);

    let kind = KindMetadata {
        name: args.name.clone(),
        start_micros,
        end_micros,
        kinds: vec![String::new()],
        outputs,
    };
    write_file(&kind_dir.join(KIND_METADATA), &write_kind(&kind))?;
    let overall = OverallMetadata {
        marker: vec![OVERALL_MARKER.to_vec()],
        kinds: vec![KindFile {
            path: format!("{KIND_DIR}/{KIND_METADATA}"),
            spec: EntitySetSpec::all(),
            num_entities: docs as u64,
            // The emulator writes the output files' total size here.
            num_bytes: bytes,
        }],
    };
    let overall_path = export_dir.join(format!("{}.overall_export_metadata", args.name));
    write_file(&overall_path, &write_overall(&overall))?;

    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "docs": docs,
            "bytes": bytes,
            "secs": secs,
            "files": args.files,
            "dir": export_dir.display().to_string(),
            "overall_metadata": overall_path.display().to_string(),
        })
    );
    Ok(())
}

fn open_output(path: &Path) -> anyhow::Result<LogWriter<BufWriter<File>>> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(LogWriter::new(BufWriter::with_capacity(1 << 20, f)))
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
