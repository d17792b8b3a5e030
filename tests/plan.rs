//! `fireshift plan` end to end: the real binary against the Firestore emulator filled with
//! the demo data set plus planted documents (a type conflict, date strings, a foreign
//! key), then `check` and `migrate` on the skeleton mappings it wrote.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{doc_at, stderr, stdout, World, DB_ID};
use fireshift_demo as demo;
use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};
use serde_json::Value as Json;

const USERS: usize = 20;

fn v(t: ValueType) -> Value {
    Value {
        value_type: Some(t),
    }
}

fn s(x: &str) -> Value {
    v(ValueType::StringValue(x.into()))
}

/// The demo data plus `planted/*`: `value` is a string in one document and an integer
/// in the other (a conflict), `when` holds RFC 3339 strings, `ownerId` a user's id.
async fn fill(world: &World) -> BTreeMap<String, u64> {
    let first_user = demo::generate(USERS, &world.project, DB_ID, demo::FIXED_NOW)
        .find(|d| d.collection_pattern() == "users")
        .unwrap()
        .id()
        .to_string();
    let planted = vec![
        doc_at(
            "planted/a",
            vec![
                ("value", s("a string")),
                ("when", s("2026-01-02T03:04:05Z")),
                ("ownerId", s(&first_user)),
            ],
        ),
        doc_at(
            "planted/b",
            vec![
                ("value", v(ValueType::IntegerValue(7))),
                ("when", s("2026-02-03T00:00:00+01:00")),
                ("ownerId", s(&first_user)),
            ],
        ),
    ];
    // One collection id (`zz_notes`) under several patterns: at the root, under two root
    // collections, and twice under `planted` (once below a parent that does not exist),
    // so counts must be split per pattern.
    let note = |path: &str| doc_at(path, vec![("text", s("n"))]);
    let shared = vec![
        note("zz_notes/n0"),
        note("planted/a/zz_notes/n1"),
        note("planted/b/zz_notes/n2"),
        note("planted/a/deep/d1/zz_notes/n3"),
        note(&format!("users/{first_user}/zz_notes/n4")),
    ];
    world
        .write(
            demo::generate(USERS, &world.project, DB_ID, demo::FIXED_NOW)
                .chain(planted)
                .chain(shared),
        )
        .await;
    let mut want: BTreeMap<String, u64> = demo::expected_counts(USERS)
        .into_iter()
        .map(|(k, n)| (k.to_string(), n as u64))
        .collect();
    want.insert("planted".into(), 2);
    want.insert("zz_notes".into(), 1);
    want.insert("planted/*/zz_notes".into(), 2);
    want.insert("planted/*/deep/*/zz_notes".into(), 1);
    want.insert("users/*/zz_notes".into(), 1);
    want
}

fn plan(world: &World, dir: &Path, extra: &[&str]) -> (std::process::Output, Json) {
    let out = dir.join("mappings");
    let report = dir.join("plan");
    let o = world.fireshift(
        &[
            "plan",
            "--project",
            &world.project,
            "--out",
            out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        extra,
    );
    assert_eq!(o.status.code(), Some(0), "plan failed");
    let json: Json =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).expect("plan.json"))
            .expect("valid JSON");
    (o, json)
}

/// `content/{}/comments` → `content/*/comments`, the demo generator's keys.
fn demo_key(pattern: &str) -> String {
    pattern.replace("{}", "*")
}

fn collection<'a>(report: &'a Json, pattern: &str) -> &'a Json {
    report["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["pattern"] == pattern)
        .unwrap_or_else(|| panic!("no collection {pattern} in the report"))
}

fn field<'a>(report: &'a Json, pattern: &str, path: &str) -> &'a Json {
    collection(report, pattern)["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no field {path} in {pattern}"))
}

fn counts(report: &Json) -> BTreeMap<String, u64> {
    report["collections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["documents"].as_u64().unwrap() > 0)
        .map(|c| {
            (
                demo_key(c["pattern"].as_str().unwrap()),
                c["documents"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn rules(report: &Json, pattern: &str, path: &str) -> Vec<String> {
    field(report, pattern, path)["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["rule"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn sampled_plan_counts_types_conflicts_and_writes_mappings_that_check_and_migrate() {
    let world = World::new("e2e-plan").await;
    let want = fill(&world).await;
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (out, report) = plan(&world, dir.path(), &["--sample", "200"]);
    eprintln!("plan took {:?}", started.elapsed());
    assert_eq!(report["schema"], "fireshift-plan/1");

    // Counts: every pattern found has exactly the generator's count; every root
    // collection is found; nothing is counted that the generator did not write.
    let got = counts(&report);
    for (pattern, n) in &got {
        assert_eq!(want.get(pattern), Some(n), "count of {pattern}");
    }
    for pattern in want.keys().filter(|p| !p.contains('/')) {
        assert!(
            got.contains_key(pattern),
            "root collection {pattern} not found"
        );
    }
    assert_eq!(
        report["totals"]["documents"].as_u64().unwrap(),
        got.values().sum::<u64>()
    );
    // The demo's subcollections under parents that do not exist are found by the probes.
    assert!(got.contains_key("archives/*/items"), "{got:?}");
    assert!(got.contains_key("edge_cases/*/children"), "{got:?}");

    // A collection id shared by several patterns: the root collection counted on its
    // own, the others per root collection's key range, split by a sample within one.
    for (pattern, method) in [
        ("zz_notes", "collection"),
        ("users/{}/zz_notes", "group-range"),
        ("planted/{}/zz_notes", "estimated"),
        ("planted/{}/deep/{}/zz_notes", "estimated"),
        ("content/{}/comments", "group"),
    ] {
        assert_eq!(
            collection(&report, pattern)["count_method"],
            method,
            "{pattern}"
        );
    }
    assert_eq!(report["totals"]["documents_exact"], false);

    // Reads: migrate = D + ceil(D/1000), verify = D.
    let d = report["totals"]["documents"].as_u64().unwrap();
    assert_eq!(
        report["reads"]["migrate"].as_u64(),
        Some(d + d.div_ceil(1000))
    );
    assert_eq!(report["reads"]["verify"].as_u64(), Some(d));
    assert!(
        report["reads"]["this_run"]["billed_reads"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Types and frequencies.
    let email = field(&report, "users", "email");
    assert_eq!(email["types"]["string"].as_u64(), Some(USERS as u64));
    assert_eq!(email["frequency"].as_f64(), Some(1.0));
    assert_eq!(
        field(&report, "users", "createdAt")["types"]["timestamp"].as_u64(),
        Some(USERS as u64)
    );
    assert_eq!(
        field(&report, "users", "settings.notifications.push")["types"]["boolean"].as_u64(),
        Some(USERS as u64)
    );
    let location = field(&report, "users", "location");
    assert!(location["types"]["geopoint"].as_u64().unwrap() > 0);
    assert!(location["frequency"].as_f64().unwrap() < 1.0);
    assert!(
        field(&report, "content", "embedding")["types"]["vector"]
            .as_u64()
            .unwrap()
            > 0
    );
    let interests = field(&report, "users", "interests");
    assert!(interests["types"]["array"].as_u64().unwrap() > 0);
    assert!(interests["element_types"]["string"].as_u64().unwrap() > 0);
    let product = field(&report, "orders", "items.productId");
    assert_eq!(product["in_array"], true);
    assert!(product["types"]["reference"].as_u64().unwrap() > 0);
    assert!(product["references_to"]["products"].as_u64().unwrap() > 0);
    // A map keyed by user ids is one dictionary path, not one path per user.
    field(&report, "conversations/{}/messages", "readBy.*");

    // The planted conflict, reported per field and in the conflict list.
    let value = field(&report, "planted", "value");
    assert_eq!(value["conflict"], true);
    assert_eq!(value["types"]["string"].as_u64(), Some(1));
    assert_eq!(value["types"]["integer"].as_u64(), Some(1));
    assert!(report["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["collection"] == "planted" && c["path"] == "value"));
    assert_eq!(field(&report, "users", "email")["conflict"], false);

    // Suggestions: a ref for foreign keys, a date cast for date strings.
    assert_eq!(
        rules(&report, "follows", "followerId"),
        vec![r#""followerId" = { ref = "users" }"#]
    );
    assert_eq!(
        rules(&report, "planted", "ownerId"),
        vec![r#""ownerId" = { ref = "users" }"#]
    );
    assert_eq!(
        rules(&report, "planted", "when"),
        vec![r#""when" = { cast = "date" }"#]
    );

    // One skeleton per pattern; `check` accepts them.
    let mappings = dir.path().join("mappings");
    let files: Vec<_> = std::fs::read_dir(&mappings)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    assert_eq!(
        files.len(),
        report["collections"].as_array().unwrap().len(),
        "{files:?}"
    );
    let follows = std::fs::read_to_string(mappings.join("follows.toml")).unwrap();
    assert!(
        follows.contains("# \"followerId\" = { ref = \"users\" }"),
        "{follows}"
    );
    let check = world.fireshift(&["check", "--mappings", mappings.to_str().unwrap()], &[]);
    assert_eq!(check.status.code(), Some(0), "check refused the skeletons");
    assert!(stdout(&check).contains("all valid"));

    // The Markdown report and the terminal summary.
    let md = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    assert!(
        md.contains("## Type conflicts") && md.contains("`planted`"),
        "{md}"
    );
    assert!(stdout(&out).contains("estimated Firestore reads: migrate"));

    // The skeletons migrate the same data with no dead letter.
    let m = world.migrate(&["--mappings", mappings.to_str().unwrap()]);
    assert_eq!(m.status.code(), Some(0), "migrate with the skeletons");
    let snapshot = world.snapshot().await;
    for c in report["collections"].as_array().unwrap() {
        let n = c["documents"].as_u64().unwrap() as usize;
        let target = c["target"].as_str().unwrap();
        assert_eq!(
            snapshot.get(target).map(|d| d.len()).unwrap_or(0),
            n,
            "documents in {target}"
        );
    }
    let dead = world.raw_docs("_fireshift_dead_letters").await;
    assert!(dead.is_empty(), "{} dead letters", dead.len());

    // Every suggestion uncommented at once: still valid, and every document converts
    // (a suggested cast that some sampled value could not take would dead-letter it).
    let all = dir.path().join("all-suggestions");
    std::fs::create_dir_all(&all).unwrap();
    let mut uncommented = 0;
    for f in std::fs::read_dir(&mappings).unwrap() {
        let f = f.unwrap().path();
        let text: Vec<String> = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('"')
                        || rest.starts_with("[[indexes]]")
                        || rest.starts_with("keys = ") =>
                {
                    uncommented += 1;
                    rest.to_string()
                }
                _ => l.to_string(),
            })
            .collect();
        std::fs::write(all.join(f.file_name().unwrap()), text.join("\n")).unwrap();
    }
    assert!(uncommented > 20, "only {uncommented} suggestion lines");
    let check = world.fireshift(&["check", "--mappings", all.to_str().unwrap()], &[]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "check refused the suggestions"
    );
    let summary = dir.path().join("summary.json");
    let m = world.migrate(&[
        "--mappings",
        all.to_str().unwrap(),
        "--dry-run",
        "--job",
        "all-suggestions",
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(m.status.code(), Some(0), "dry run with every suggestion");
    let summary: Json = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(summary["dead_lettered"].as_u64(), Some(0));
    assert_eq!(summary["read"].as_u64(), Some(d));
}

#[tokio::test]
async fn full_scan_plan_has_every_pattern_with_its_exact_count() {
    let world = World::new("e2e-plan-full").await;
    let want = fill(&world).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, report) = plan(
        &world,
        dir.path(),
        &["--full-scan", "--sample", "50", "--database-id", DB_ID],
    );
    assert_eq!(report["options"]["full_scan"], true);
    assert_eq!(counts(&report), want);
    assert_eq!(report["totals"]["documents_exact"], true);
    let d: u64 = want.values().sum();
    // The scan reads each document once (plus the root listing).
    assert_eq!(
        report["reads"]["this_run"]["documents_read"].as_u64(),
        Some(d)
    );
    for c in report["collections"].as_array().unwrap() {
        assert!(c["sampled"].as_u64().unwrap() <= 50);
        assert_eq!(c["count_method"], "full-scan");
    }
    assert_eq!(field(&report, "planted", "value")["conflict"], true);
    let check = world.fireshift(
        &[
            "check",
            "--mappings",
            dir.path().join("mappings").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(check.status.code(), Some(0));
}

#[tokio::test]
async fn a_small_sample_bounds_what_plan_reads_and_counts_stay_exact() {
    let world = World::new("e2e-plan-small").await;
    let want = fill(&world).await;
    let dir = tempfile::tempdir().unwrap();
    let sample = 5u64;
    let (_, report) = plan(&world, dir.path(), &["--sample", &sample.to_string()]);
    let collections = report["collections"].as_array().unwrap();
    for c in collections {
        assert!(c["sampled"].as_u64().unwrap() <= sample, "{}", c["pattern"]);
    }
    for (pattern, n) in counts(&report) {
        assert_eq!(want.get(&pattern), Some(&n), "count of {pattern}");
    }
    // Samples (≤ sample per pattern) and probes (≤ sample per root collection, in 4
    // windows of ceil(sample / 4)): nowhere near the whole database.
    let patterns = collections.len() as u64;
    let read = report["reads"]["this_run"]["documents_read"]
        .as_u64()
        .unwrap();
    let bound = patterns * (sample + 4 * sample.div_ceil(4));
    assert!(read <= bound, "read {read} documents, bound {bound}");
    assert!(read < want.values().sum::<u64>() / 2);
}

#[tokio::test]
async fn an_out_directory_with_mappings_is_not_overwritten_by_accident() {
    let world = World::new("e2e-plan-out").await;
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    std::fs::write(mappings.join("users.toml"), "collection = \"users\"\n").unwrap();
    let o = world.fireshift(
        &[
            "plan",
            "--project",
            &world.project,
            "--out",
            mappings.to_str().unwrap(),
            "--report",
            dir.path().join("plan").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(common::stderr(&o).contains("--overwrite"));
    assert_eq!(
        std::fs::read_to_string(mappings.join("users.toml")).unwrap(),
        "collection = \"users\"\n"
    );
    assert!(!dir.path().join("plan.json").exists());
}

#[tokio::test]
async fn an_empty_database_is_an_error_and_writes_nothing() {
    let world = World::new("e2e-plan-empty").await;
    let dir = tempfile::tempdir().unwrap();
    let o = world.fireshift(
        &[
            "plan",
            "--project",
            &world.project,
            "--out",
            dir.path().join("mappings").to_str().unwrap(),
            "--report",
            dir.path().join("plan").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(common::stderr(&o).contains("no collections found"));
    assert!(!dir.path().join("mappings").exists());
    assert!(!dir.path().join("plan.json").exists());
}

#[tokio::test]
async fn plan_says_its_cost_before_reading_and_keeps_to_its_read_budget() {
    let world = World::new("plan-budget").await;
    let users = 20;
    world.write_demo(users).await;
    let total = fireshift_demo::expected_count(users) as u64;
    let run = |extra: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let out = world.fireshift(
            &[
                "plan",
                "--project",
                &world.project,
                "--out",
                dir.path().join("mappings").to_str().unwrap(),
                "--report",
                dir.path().join("plan").to_str().unwrap(),
            ],
            extra,
        );
        let wrote = dir.path().join("plan.json").exists();
        (out, wrote)
    };
    // A full scan past the budget is refused after its count, before it reads.
    let (out, wrote) = run(&["--full-scan", "--max-reads", "500"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--max-reads 500")
            && err.contains("--yes")
            && err.contains(&format!("{total} more needed")),
        "{err}"
    );
    assert!(!wrote, "nothing is written when the budget stops the plan");
    // Sampled discovery stops before the call that would pass a tiny budget.
    let (out, wrote) = run(&["--max-reads", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--max-reads 5"), "{}", stderr(&out));
    assert!(!wrote);
    // Within budget: the cost is said before reading, the bill after.
    let (out, wrote) = run(&["--price-per-100k-reads", "0.18"]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(wrote);
    assert!(
        said.contains(
            "at most 100000 billed reads (--max-reads), ≈ $0.1800 at $0.18 per 100,000 reads"
        ),
        "{said}"
    );
    assert!(said.contains("plan read "), "{said}");
    // --yes lifts the budget: the full scan reads every document (plus its count).
    let (out, wrote) = run(&["--full-scan", "--max-reads", "500", "--yes"]);
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(wrote && said.contains("no read budget (--yes)"), "{said}");
    let billed: u64 = said
        .lines()
        .find_map(|l| l.strip_prefix("plan read "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the bill: {said}"));
    assert!(
        billed > total,
        "every document and the count are billed: {billed}"
    );
}

/// `x` to `1 / per`, as the report rounds seconds (per = 1000) and dollars (per = 1e6).
fn rounded(x: f64, per: f64) -> f64 {
    (x * per).round() / per
}

#[tokio::test]
async fn plan_forecasts_the_wall_time_and_cost_of_a_sharded_migrate_and_verify() {
    let world = World::new("plan-forecast").await;
    let d = world.write_demo(20).await as u64;
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = plan(
        &world,
        dir.path(),
        &[
            "--full-scan",
            "--shards",
            "4",
            "--max-writes-per-second",
            "2000",
        ],
    );
    let said = stdout(&out);
    let f = &report["forecast"];
    assert_eq!(
        report["totals"]["documents"], d,
        "the plan counted what was written"
    );
    assert_eq!(f["documents"], d);
    assert_eq!(
        f["inputs"],
        serde_json::json!({
            "shards": 4, "docs_per_second_per_shard": 5000.0,
            "max_reads_per_second": null, "max_writes_per_second": 2000.0,
            "price_per_100k_reads": 0.06
        })
    );
    // min(4 shards × 5000, W = 2000): the write limit holds the job.
    let migrate_secs = rounded(d as f64 / 2000.0, 1e3);
    assert_eq!(f["migrate"]["docs_per_second"], 2000.0);
    assert_eq!(f["migrate"]["limited_by"], "max-writes-per-second");
    assert_eq!(f["migrate"]["processes"], 4);
    assert_eq!(f["migrate"]["seconds"], migrate_secs);
    // Reads: every document, one ETA count per shard, and at most the split's counts
    // (4 ranges: max(2, ceil(16 / roots)) slices per root collection) plus ceil(D/1000).
    let roots = report["collections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["depth"] == 1)
        .count() as u64;
    assert!(roots > 1, "the demo has several root collections");
    let per_root = 16u64.div_ceil(roots).max(2);
    let counts = d.div_ceil(1000);
    let split = roots * (per_root - 1) + 1 + counts;
    let migrate_reads = d + 4 * counts + split;
    assert_eq!(f["migrate_reads"]["split_at_most"], split);
    assert_eq!(f["migrate"]["reads"], migrate_reads);
    let migrate_cost = rounded(migrate_reads as f64 / 100_000.0 * 0.06, 1e6);
    assert_eq!(f["migrate"]["cost_usd"], migrate_cost);
    // verify: one process at the assumed 5000 docs/s, every document once.
    let verify_secs = rounded(d as f64 / 5000.0, 1e3);
    assert_eq!(f["verify"]["seconds"], verify_secs);
    assert_eq!(f["verify"]["reads"], d);
    let verify_cost = rounded(d as f64 / 100_000.0 * 0.06, 1e6);
    assert_eq!(f["verify"]["cost_usd"], verify_cost);
    assert_eq!(f["total"]["reads"], migrate_reads + d);
    assert_eq!(
        f["total"]["cost_usd"],
        rounded((migrate_reads + d) as f64 / 100_000.0 * 0.06, 1e6)
    );
    assert_eq!(
        f["total"]["seconds"],
        rounded(migrate_secs + verify_secs, 1e3)
    );
    // The same figures on stdout and in the Markdown report.
    for line in [
        "forecast for --shards 4 --max-writes-per-second 2000 (assuming 5000 docs/s per shard".to_string(),
        format!(
            "  migrate: {d} documents at 2000 docs/s (--max-writes-per-second) ≈ {:.1} s; {migrate_reads} reads ≈ ${migrate_cost:.4}",
            migrate_secs
        ),
        format!(
            "  verify:  {d} documents at 5000 docs/s (one process) ≈ {:.1} s; {d} reads ≈ ${verify_cost:.4}",
            verify_secs
        ),
    ] {
        assert!(said.contains(&line), "missing `{line}` in:\n{said}");
    }
    let md = std::fs::read_to_string(dir.path().join("plan.md")).unwrap();
    let row = format!(
        "| migrate | 4 | 2000 | --max-writes-per-second | {:.1} s ({migrate_secs} s) | {migrate_reads} | {migrate_cost:.4} |",
        migrate_secs
    );
    assert!(
        md.contains("## Time and cost forecast") && md.contains(&row),
        "{row}\n{md}"
    );

    // Bad input is refused before anything is read.
    for bad in [
        &["--shards", "0"][..],
        &["--docs-per-second-per-shard", "0"][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let o = world.fireshift(
            &[
                "plan",
                "--project",
                &world.project,
                "--out",
                dir.path().join("m").to_str().unwrap(),
                "--report",
                dir.path().join("p").to_str().unwrap(),
            ],
            bad,
        );
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(bad[0]), "{}", stderr(&o));
        assert!(!dir.path().join("p.json").exists());
    }
}
