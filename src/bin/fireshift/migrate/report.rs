//! What a run prints when it ends (the summary table) and writes for machines
//! (`--summary-json`).

use anyhow::Context;
use fireshift::migrate::pipeline::Summary;

use super::MigrateArgs;

pub fn write_summary_json(path: Option<&std::path::Path>, summary: &Summary) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_vec_pretty(summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub fn print_summary(s: &Summary, database: &str, args: &MigrateArgs) {
    let w = s
        .collections
        .iter()
        .map(|c| c.pattern.len().max(c.target.len()))
        .max()
        .unwrap_or(10)
        .max(10);
    println!();
    println!(
        "{:<w$}  {:<w$}  {:>10}  {:>10}  {:>13}",
        "collection", "target", "read", "written", "dead-lettered"
    );
    for c in &s.collections {
        println!(
            "{:<w$}  {:<w$}  {:>10}  {:>10}  {:>13}",
            c.pattern, c.target, c.read, c.written, c.dead_lettered
        );
    }
    println!(
        "{:<w$}  {:<w$}  {:>10}  {:>10}  {:>13}",
        "total", "", s.read, s.written, s.dead_lettered
    );
    let rate = s.read as f64 / s.elapsed_secs.max(1e-3);
    let verb = if args.dry_run {
        "would be written (dry run)"
    } else {
        "written"
    };
    println!(
        "{} documents read, {} {verb} in {:.1} s ({rate:.0} docs/s)",
        s.read, s.written, s.elapsed_secs
    );
    if s.dead_lettered > 0 {
        println!(
            "{} documents dead-lettered: see {database}.{} (source path, rule, reason, raw document)",
            s.dead_lettered, args.dead_letter_collection
        );
    }
    if let Some(reports) = s.indexes.as_deref().filter(|r| !r.is_empty()) {
        println!();
        println!("{}", fireshift::mapping::indexes::render_report(reports));
    }
}
