//! What the migration itself will take, said before it starts: the expected wall time
//! and Firestore read cost of `migrate` run as N shards under the job's rate limits,
//! and of the `verify` after it, from the plan's document count and an assumed
//! throughput per shard. Pure arithmetic, so the figures are exact and tested.
//!
//! The throughput is an assumption, not a measurement of the operator's databases: the
//! default is the single-process figure `scripts/bench` measured on the test machine
//! (README, Benchmarks), and `--docs-per-second-per-shard` replaces it with the
//! operator's own.

use std::fmt::Write as _;

use serde::Serialize;

use super::query::count_reads;
use crate::source::ranges::split_count_queries;

/// Assumed documents per second of one `migrate` process (one shard, `--parallel 1`),
/// and of one `verify` process. `scripts/bench` on the 2-core test machine against the
/// emulator (README, Benchmarks): one migrate process at 0.82–0.96 of a raw read of
/// 6,700–8,000 docs/s, verify at 7,423 docs/s; rounded down to a figure below both.
pub const DEFAULT_DOCS_PER_SECOND_PER_SHARD: f64 = 5_000.0;

/// The text of the formula, in the JSON and Markdown reports.
pub const FORMULA: &str = "D = documents in the database. migrate: D / min(N × S, R, W) seconds, each limit only when given (R = --max-reads-per-second and W = --max-writes-per-second are the job's, each of the N shards takes R/N and W/N, so the job as a whole is held to R and W); reads = D + N × ceil(D / 1000) (each shard counts the database once for its ETA) + for N > 1 at most C + ceil(D / 1000) for the split into N ranges (C = its count queries, one per key-space slice). verify: one process (it has no --shard and no read limit), D / S seconds, D reads. cost = reads × price / 100,000. S is an assumption: measure your own with scripts/bench. Not counted: the split's own time, index builds, retries, rechecks of suspects, the progress bars' counts on a terminal.";

/// What the forecast is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assumptions {
    /// Shard processes of the job (`migrate --shard K/N`), N ≥ 1.
    pub shards: u32,
    /// Documents per second one shard process copies when nothing else holds it back.
    pub docs_per_second_per_shard: f64,
    /// The job's `--max-reads-per-second`, if any.
    pub max_reads_per_second: Option<f64>,
    /// The job's `--max-writes-per-second`, if any.
    pub max_writes_per_second: Option<f64>,
    /// USD per 100,000 document reads.
    pub price_per_100k_reads: f64,
}

/// What sets a step's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// The processes' own throughput (N × S for migrate, S for verify).
    Throughput,
    /// `--max-reads-per-second`.
    MaxReadsPerSecond,
    /// `--max-writes-per-second`.
    MaxWritesPerSecond,
}

/// One step (migrate or verify).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    /// Processes running the step at once.
    pub processes: u32,
    pub docs_per_second: f64,
    pub limited_by: Bound,
    /// `documents / docs_per_second`, to the millisecond.
    pub seconds: f64,
    pub reads: u64,
    /// `reads × price / 100,000`, to the millionth of a dollar.
    pub cost_usd: f64,
}

/// The parts of migrate's reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MigrateReads {
    /// Every document once.
    pub documents: u64,
    /// One count of the database per shard, for its ETA: `N × ceil(D / 1000)`.
    pub eta_counts: u64,
    /// The split into N ranges (N > 1), at most: one count per key-space slice, each
    /// billed per started 1000 documents.
    pub split_at_most: u64,
    /// The count queries of the split.
    pub split_count_queries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Totals {
    pub seconds: f64,
    pub reads: u64,
    pub cost_usd: f64,
}

/// The forecast of `migrate` + `verify`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    pub formula: &'static str,
    pub inputs: Assumptions,
    /// D: the plan's document count.
    pub documents: u64,
    /// Root collections: the split makes slices per root collection.
    pub root_collections: usize,
    pub migrate: Step,
    pub migrate_reads: MigrateReads,
    pub verify: Step,
    pub total: Totals,
    /// What the figures do not show, in words (e.g. verify is not held to the read limit).
    pub notes: Vec<String>,
}

/// `x` rounded to `1 / per` (`per` = 1000: milliseconds), dividing last so that the
/// result is the double nearest the decimal (0.6006, not 0.6006000000000001).
fn round_to(x: f64, per: f64) -> f64 {
    (x * per).round() / per
}

/// `reads × price / 100,000`, to the millionth of a dollar.
pub fn cost_usd(reads: u64, price_per_100k_reads: f64) -> f64 {
    round_to(reads as f64 / 100_000.0 * price_per_100k_reads, 1e6)
}

/// The slowest of the given rates and what it is.
fn slowest(rates: &[(f64, Bound)]) -> (f64, Bound) {
    rates
        .iter()
        .copied()
        .fold((f64::INFINITY, Bound::Throughput), |best, r| {
            if r.0 < best.0 {
                r
            } else {
                best
            }
        })
}

fn step(processes: u32, documents: u64, rate: (f64, Bound), reads: u64, price: f64) -> Step {
    Step {
        processes,
        docs_per_second: rate.0,
        limited_by: rate.1,
        seconds: round_to(documents as f64 / rate.0, 1e3),
        reads,
        cost_usd: cost_usd(reads, price),
    }
}

/// The forecast for `documents` in `root_collections` root collections.
pub fn forecast(a: &Assumptions, documents: u64, root_collections: usize) -> Forecast {
    let n = a.shards.max(1);
    let s = a.docs_per_second_per_shard;
    let mut rates = vec![(f64::from(n) * s, Bound::Throughput)];
    rates.extend(
        a.max_reads_per_second
            .map(|r| (r, Bound::MaxReadsPerSecond)),
    );
    rates.extend(
        a.max_writes_per_second
            .map(|w| (w, Bound::MaxWritesPerSecond)),
    );
    let queries = split_count_queries(n as usize, root_collections) as u64;
    let migrate_reads = MigrateReads {
        documents,
        eta_counts: u64::from(n) * count_reads(documents),
        split_at_most: if n > 1 {
            queries + count_reads(documents)
        } else {
            0
        },
        split_count_queries: queries,
    };
    let price = a.price_per_100k_reads;
    let migrate = step(
        n,
        documents,
        slowest(&rates),
        migrate_reads.documents + migrate_reads.eta_counts + migrate_reads.split_at_most,
        price,
    );
    let verify = step(1, documents, (s, Bound::Throughput), documents, price);
    let mut notes = Vec::new();
    if let Some(r) = a.max_reads_per_second.filter(|&r| r < s) {
        notes.push(format!(
            "verify has no read limit: it reads as fast as it can (assumed {} docs/s), above --max-reads-per-second {}",
            number(s),
            number(r)
        ));
    }
    let reads = migrate.reads + verify.reads;
    Forecast {
        formula: FORMULA,
        inputs: *a,
        documents,
        root_collections,
        migrate,
        migrate_reads,
        verify,
        total: Totals {
            seconds: round_to(migrate.seconds + verify.seconds, 1e3),
            reads,
            cost_usd: cost_usd(reads, price),
        },
        notes,
    }
}

/// A rate as the operator typed it: `2000`, `2.5`.
pub fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// `0.4 s`, `12 min 5 s`, `3 h 12 min`, `2 d 4 h`.
pub fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    match s {
        0..=3_599 => format!("{} min {} s", s / 60, s % 60),
        3_600..=86_399 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

fn bound_flag(b: Bound) -> &'static str {
    match b {
        Bound::Throughput => "the shards' throughput",
        Bound::MaxReadsPerSecond => "--max-reads-per-second",
        Bound::MaxWritesPerSecond => "--max-writes-per-second",
    }
}

/// The job's flags the forecast assumes: `--shards 4 --max-writes-per-second 2000`.
fn flags(a: &Assumptions) -> String {
    let mut s = format!("--shards {}", a.shards);
    if let Some(r) = a.max_reads_per_second {
        let _ = write!(s, " --max-reads-per-second {}", number(r));
    }
    if let Some(w) = a.max_writes_per_second {
        let _ = write!(s, " --max-writes-per-second {}", number(w));
    }
    s
}

/// The forecast for the terminal, a few lines.
pub fn terminal(f: &Forecast) -> String {
    let a = &f.inputs;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "forecast for {} (assuming {} docs/s per shard: measure yours with scripts/bench, --docs-per-second-per-shard):",
        flags(a),
        number(a.docs_per_second_per_shard)
    );
    let _ = writeln!(
        s,
        "  migrate: {} documents at {} docs/s ({}) ≈ {}; {} reads ≈ ${:.4}",
        f.documents,
        number(f.migrate.docs_per_second),
        bound_flag(f.migrate.limited_by),
        duration(f.migrate.seconds),
        f.migrate.reads,
        f.migrate.cost_usd
    );
    let _ = writeln!(
        s,
        "  verify:  {} documents at {} docs/s (one process) ≈ {}; {} reads ≈ ${:.4}",
        f.documents,
        number(f.verify.docs_per_second),
        duration(f.verify.seconds),
        f.verify.reads,
        f.verify.cost_usd
    );
    let _ = writeln!(
        s,
        "  total:   ≈ {}; {} reads ≈ ${:.4} at ${} per 100,000 reads",
        duration(f.total.seconds),
        f.total.reads,
        f.total.cost_usd,
        number(a.price_per_100k_reads)
    );
    for n in &f.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}

/// The forecast section of the Markdown report.
pub fn markdown(f: &Forecast) -> String {
    let a = &f.inputs;
    let mut s = String::new();
    let _ = writeln!(s, "## Time and cost forecast\n");
    let _ = writeln!(
        s,
        "For `fireshift migrate` as {} shard processes (`{}`) and one `verify`, assuming **{} documents per second per shard** (replace it with your own `scripts/bench` figure: `--docs-per-second-per-shard`), at ${} per 100,000 reads.\n",
        a.shards,
        flags(a),
        number(a.docs_per_second_per_shard),
        number(a.price_per_100k_reads)
    );
    let _ = writeln!(
        s,
        "| | processes | docs/s | limited by | wall time | reads | cost (USD) |\n|---|---:|---:|---|---:|---:|---:|"
    );
    for (name, st) in [("migrate", &f.migrate), ("verify", &f.verify)] {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} ({} s) | {} | {:.4} |",
            st.processes,
            number(st.docs_per_second),
            bound_flag(st.limited_by),
            duration(st.seconds),
            st.seconds,
            st.reads,
            st.cost_usd
        );
    }
    let _ = writeln!(
        s,
        "| total | | | | {} ({} s) | {} | {:.4} |\n",
        duration(f.total.seconds),
        f.total.seconds,
        f.total.reads,
        f.total.cost_usd
    );
    let r = &f.migrate_reads;
    let _ = writeln!(
        s,
        "migrate's reads: {} documents + {} for the shards' ETA counts + at most {} for the split ({} count queries).\n",
        r.documents, r.eta_counts, r.split_at_most, r.split_count_queries
    );
    for n in &f.notes {
        let _ = writeln!(s, "* {n}");
    }
    if !f.notes.is_empty() {
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "{}\n", f.formula);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Assumptions {
        Assumptions {
            shards: 1,
            docs_per_second_per_shard: 5_000.0,
            max_reads_per_second: None,
            max_writes_per_second: None,
            price_per_100k_reads: 0.06,
        }
    }

    #[test]
    fn one_shard_without_limits_runs_at_its_own_throughput() {
        let f = forecast(&inputs(), 1_000_000, 3);
        assert_eq!(f.migrate.docs_per_second, 5_000.0);
        assert_eq!(f.migrate.limited_by, Bound::Throughput);
        assert_eq!(f.migrate.seconds, 200.0);
        // D + ceil(D / 1000), no split: what the plan's `reads.migrate` says.
        assert_eq!(f.migrate.reads, 1_001_000);
        assert_eq!(f.migrate_reads.split_at_most, 0);
        assert_eq!(f.migrate.cost_usd, 0.6006);
        assert_eq!(f.verify.seconds, 200.0);
        assert_eq!(f.verify.reads, 1_000_000);
        assert_eq!(f.verify.cost_usd, 0.6);
        assert_eq!(f.total.seconds, 400.0);
        assert_eq!(f.total.reads, 2_001_000);
        assert_eq!(f.total.cost_usd, 1.2006);
        assert!(f.notes.is_empty());
    }

    #[test]
    fn shards_multiply_throughput_until_a_limit_holds_the_job() {
        let mut a = inputs();
        a.shards = 4;
        // 4 × 5,000 = 20,000 docs/s: no limit given.
        let f = forecast(&a, 1_000_000, 1);
        assert_eq!(
            (f.migrate.docs_per_second, f.migrate.limited_by),
            (20_000.0, Bound::Throughput)
        );
        assert_eq!(f.migrate.seconds, 50.0);
        assert_eq!(f.migrate.processes, 4);
        // Writes below the shards' throughput hold the job.
        a.max_writes_per_second = Some(2_000.0);
        let f = forecast(&a, 1_000_000, 1);
        assert_eq!(
            (f.migrate.docs_per_second, f.migrate.limited_by),
            (2_000.0, Bound::MaxWritesPerSecond)
        );
        assert_eq!(f.migrate.seconds, 500.0);
        // A lower read limit takes over; verify, one process with no limit, does not.
        a.max_reads_per_second = Some(1_500.0);
        let f = forecast(&a, 1_000_000, 1);
        assert_eq!(
            (f.migrate.docs_per_second, f.migrate.limited_by),
            (1_500.0, Bound::MaxReadsPerSecond)
        );
        assert_eq!(f.migrate.seconds, 666.667);
        assert_eq!(f.verify.docs_per_second, 5_000.0);
        assert_eq!(f.verify.processes, 1);
        assert_eq!(f.verify.seconds, 200.0);
        assert_eq!(f.total.seconds, 866.667);
        assert_eq!(f.notes.len(), 1, "{:?}", f.notes);
        assert!(f.notes[0].contains("--max-reads-per-second 1500"));
        // A limit above the throughput does not bind.
        a.max_reads_per_second = Some(1e9);
        a.max_writes_per_second = None;
        assert_eq!(
            forecast(&a, 1_000_000, 1).migrate.limited_by,
            Bound::Throughput
        );
    }

    #[test]
    fn sharded_reads_add_each_shards_eta_count_and_the_split() {
        let mut a = inputs();
        a.shards = 4;
        // 1 root collection, 4 ranges: 16 slices, so 16 count queries.
        let f = forecast(&a, 1_000_000, 1);
        assert_eq!(
            f.migrate_reads,
            MigrateReads {
                documents: 1_000_000,
                eta_counts: 4_000,
                split_at_most: 16 + 1_000,
                split_count_queries: 16,
            }
        );
        assert_eq!(f.migrate.reads, 1_005_016);
        assert_eq!(f.migrate.cost_usd, 0.60301);
        assert_eq!(f.total.reads, 2_005_016);
        assert_eq!(f.total.cost_usd, 1.20301);
    }

    #[test]
    fn small_and_empty_databases_still_pay_the_minimum_count_read() {
        let f = forecast(&inputs(), 0, 1);
        assert_eq!(f.migrate.reads, 1);
        assert_eq!(f.migrate.seconds, 0.0);
        assert_eq!(f.verify.reads, 0);
        let f = forecast(&inputs(), 893, 12);
        assert_eq!(f.migrate.reads, 894);
        assert_eq!(f.migrate.seconds, 0.179);
        assert_eq!(f.migrate.cost_usd, 0.000536);
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0.44), "0.4 s");
        assert_eq!(duration(725.0), "12 min 5 s");
        assert_eq!(duration(11_520.0), "3 h 12 min");
        assert_eq!(duration(187_200.0), "2 d 4 h");
        assert_eq!(number(2000.0), "2000");
        assert_eq!(number(2.5), "2.5");
    }

    #[test]
    fn the_terminal_lines_say_the_inputs_and_what_binds() {
        let mut a = inputs();
        a.shards = 4;
        a.max_writes_per_second = Some(2_000.0);
        let t = terminal(&forecast(&a, 1_000_000, 1));
        assert!(
            t.contains("forecast for --shards 4 --max-writes-per-second 2000 (assuming 5000 docs/s per shard"),
            "{t}"
        );
        assert!(
            t.contains("migrate: 1000000 documents at 2000 docs/s (--max-writes-per-second) ≈ 8 min 20 s; 1005016 reads ≈ $0.6030"),
            "{t}"
        );
        assert!(
            t.contains("verify:  1000000 documents at 5000 docs/s (one process) ≈ 3 min 20 s; 1000000 reads ≈ $0.6000"),
            "{t}"
        );
        assert!(
            t.contains(
                "total:   ≈ 11 min 40 s; 2005016 reads ≈ $1.2030 at $0.06 per 100,000 reads"
            ),
            "{t}"
        );
        let md = markdown(&forecast(&a, 1_000_000, 1));
        assert!(
            md.contains("| migrate | 4 | 2000 | --max-writes-per-second | 8 min 20 s (500 s) | 1005016 | 0.6030 |"),
            "{md}"
        );
    }
}
