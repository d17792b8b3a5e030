//! Parse throughput of export files on one core, for `scripts/bench-export`: how fast
//! the export source's decoding (LevelDB log framing, then `EntityProto` → Firestore
//! `Document`) runs on its own, with no storage, no transform and no sink.
//!
//! ```text
//! cargo run --release --example export_parse -- DIR
//! ```
//!
//! `DIR` is an export folder (or any folder above its `output-N` files): every file named
//! `output-N` below it is read. Each file is first read once, untimed, so that the timed
//! pass reads from the page cache (the machine needs the memory for that: a file larger
//! than the free memory is read from disk and the figure shows the disk). The timed pass
//! reads each file in 32 KiB blocks, feeds them to `LogDecoder` and every record to
//! `decode_entity`, on this thread only (no async runtime).
//!
//! Prints one JSON line on stdout:
//! `{"docs":N,"bytes":B,"secs":S,"mb_per_sec":…,"docs_per_sec":…,"files":K}`
//! (`bytes`: the files' total size; MB = 10^6 bytes). Speed is printed, never asserted.

use std::fs::File;
use std::io::Read;

/// The allocator the `fireshift` binary uses, so the figure is the binary's parse rate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use fireshift::source::export::entity::decode_entity;
use fireshift::source::export::log::{LogDecoder, BLOCK_SIZE};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Single-core parse throughput of an export's output files")]
struct Args {
    /// Export folder (its output-N files are found below it).
    dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut files = Vec::new();
    find_outputs(&args.dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        bail!("no output-N file below {}", args.dir.display());
    }

    // Untimed pass: bring every file into the page cache.
    let mut block = vec![0u8; BLOCK_SIZE];
    for f in &files {
        let mut file = File::open(f).with_context(|| format!("opening {}", f.display()))?;
        while read_block(&mut file, &mut block)
            .with_context(|| format!("reading {}", f.display()))?
            > 0
        {}
    }

    let started = Instant::now();
    let (mut docs, mut bytes, mut fields) = (0u64, 0u64, 0usize);
    let mut records = Vec::new();
    for f in &files {
        let mut file = File::open(f).with_context(|| format!("opening {}", f.display()))?;
        let mut decoder = LogDecoder::new(0);
        let mut offset = 0u64;
        loop {
            let n = read_block(&mut file, &mut block)
                .with_context(|| format!("reading {}", f.display()))?;
            decoder
                .push_block(offset, &block[..n], &mut records)
                .with_context(|| format!("{}", f.display()))?;
            for r in records.drain(..) {
                let doc = decode_entity(&r.data)
                    .with_context(|| format!("{} byte {}", f.display(), r.offset))?;
                // Use the document, so the decode is not optimised away.
                fields += doc.fields.len() + doc.name.len();
                docs += 1;
            }
            offset += n as u64;
            if n < BLOCK_SIZE {
                break;
            }
        }
        decoder
            .finish()
            .with_context(|| format!("{}", f.display()))?;
        bytes += offset;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{}",
        json!({
            "docs": docs,
            "bytes": bytes,
            "secs": secs,
            "mb_per_sec": bytes as f64 / 1e6 / secs,
            "docs_per_sec": docs as f64 / secs,
            "files": files.len(),
            "checksum": fields,
        })
    );
    Ok(())
}

/// Fills `buf` from `file` (short only at the end of the file); returns the bytes read.
fn read_block(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Every file named `output-N` below `dir`.
fn find_outputs(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            find_outputs(&path, out)?;
        } else if entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("output-"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            out.push(path);
        }
    }
    Ok(())
}
