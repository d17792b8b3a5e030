//! `fireshift cutover`: the gate an operator runs once the app stopped writing to
//! Firestore. Every gate is checked in order and reported with its figure; the cutover
//! is recorded (and the follower drains and exits 0) only when all pass. A failed gate
//! leaves the follower following, so the operator can fix and run the gate again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, FromArgMatches};
use fireshift::follow::record::{FollowRecord, FollowStore};
use fireshift::sink::guard::{nanos_rfc3339, timestamp_nanos};
use fireshift::sink::SinkConfig;
use serde::Serialize;

use crate::cli::{Cli, Command, Endpoints};
use crate::exit::ExitCode;

#[derive(Debug, Args)]
pub struct CutoverArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// The mapping directory the job copies with (verify transforms the same way).
    #[arg(long)]
    pub mappings: Option<PathBuf>,
    /// The followed job. Default: the one job of the database that follows and was not
    /// cut over yet (`migrate:<project>/<firestore database>` when none does).
    #[arg(long)]
    pub job: Option<String>,
    /// How long the gate waits for the follower to apply everything up to the cutover
    /// time, and then to leave (seconds).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Write the gate report to PREFIX.json and PREFIX.html (verify's own report goes
    /// to PREFIX-verify.*).
    #[arg(long, value_name = "PREFIX", default_value = "fireshift-cutover")]
    pub report: PathBuf,
    /// Once cut over, remove the update-time guard field (`_fs_updated`) from every
    /// document the job wrote (docs/follow.md): the app never reads it, but it is not
    /// the app's data.
    #[arg(long)]
    pub strip_guard: bool,
}

/// One gate of the report.
#[derive(Debug, Clone, Serialize)]
struct Gate {
    name: &'static str,
    passed: bool,
    figure: String,
}

#[derive(Debug, Serialize)]
struct Report {
    job: String,
    cutover_time: Option<String>,
    passed: bool,
    exit_code: i32,
    gates: Vec<Gate>,
}

pub async fn run(args: CutoverArgs) -> anyhow::Result<ExitCode> {
    let ep = &args.endpoints;
    let project = ep.firestore.project.clone().unwrap_or_default();
    let source = fireshift::source::FirestoreSource::connect(ep.source_config()).await?;
    let sink = ep.mongo.connect(SinkConfig::default()).await?;
    // Without --job: the one job of the database that follows (an export's job has its
    // own name), else the live default.
    let job = match &args.job {
        Some(j) => j.clone(),
        None => {
            let following = FollowStore::new(sink.database()).unfinished_jobs().await?;
            match following.as_slice() {
                [one] => one.clone(),
                [] => format!("migrate:{project}/{}", ep.firestore.firestore_database),
                many => {
                    sink.shutdown().await;
                    eprintln!(
                        "error: {} jobs of this database follow Firestore ({}): name one with --job",
                        many.len(),
                        many.join(", ")
                    );
                    return Ok(ExitCode::Usage);
                }
            }
        }
    };
    let outcome = gates(&args, &job, &source, &sink).await;
    sink.shutdown().await;
    let (gates, time) = outcome?;
    let failed = gates.iter().find(|g| !g.passed);
    let code = match failed.map(|g| g.name) {
        None => ExitCode::Ok,
        Some("follower") => ExitCode::FollowerNotRunning,
        Some("caught up") | Some("follower left") => ExitCode::Lagging,
        Some("parity") => ExitCode::Parity,
        Some(_) => ExitCode::OutboxNotEmpty,
    };
    let report = Report {
        job: job.clone(),
        cutover_time: time.map(nanos_rfc3339),
        passed: failed.is_none(),
        exit_code: code.code(),
        gates,
    };
    print_report(&report);
    write_report(&args.report, &report)?;
    Ok(code)
}

fn print_report(r: &Report) {
    println!("cutover gate, job `{}`", r.job);
    if let Some(t) = &r.cutover_time {
        println!("  cutover time  {t}");
    }
    for g in &r.gates {
        println!(
            "  {:<5} {:<14} {}",
            if g.passed { "pass" } else { "FAIL" },
            g.name,
            g.figure
        );
    }
    if r.passed {
        println!("CUT OVER: every gate passed; point the app at MongoDB");
    } else {
        println!(
            "NOT CUT OVER: the follower keeps following; fix what failed and run the gate again"
        );
    }
}

fn write_report(prefix: &std::path::Path, r: &Report) -> anyhow::Result<()> {
    let json = prefix.with_extension("json");
    std::fs::write(&json, serde_json::to_vec_pretty(r)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = format!(
        "<!doctype html><meta charset=utf-8><title>cutover {0}</title><h1>Cutover gate: {0}</h1><p>{1}</p><table border=1><tr><th>gate<th>result<th>figure",
        esc(&r.job),
        if r.passed { "CUT OVER: every gate passed" } else { "NOT CUT OVER" }
    );
    for g in &r.gates {
        html.push_str(&format!(
            "<tr><td>{}<td>{}<td>{}",
            g.name,
            if g.passed { "pass" } else { "FAIL" },
            esc(&g.figure)
        ));
    }
    html.push_str("</table>\n");
    let path = prefix.with_extension("html");
    std::fs::write(&path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The gates in order; stops at the first that fails.
async fn gates(
    args: &CutoverArgs,
    job: &str,
    source: &fireshift::source::FirestoreSource,
    sink: &fireshift::sink::MongoSink,
) -> anyhow::Result<(Vec<Gate>, Option<i64>)> {
    let store = FollowStore::new(sink.database());
    let mut gates = Vec::new();
    let record = store.load(job).await?;
    let now = mongodb::bson::DateTime::now();
    let alive = record.as_ref().is_some_and(|r| r.follower_alive(now));
    gates.push(Gate {
        name: "follower",
        passed: alive,
        figure: match &record {
            None => format!("no follow record for job `{job}`: run `fireshift migrate --follow`"),
            Some(r) if r.finished.is_some() => "the job was cut over already".into(),
            Some(r) => match &r.holder {
                Some(h) if alive => format!("running on {} (pid {})", h.host, h.pid),
                Some(h) => format!(
                    "last seen {} on {} (pid {}): not running",
                    h.heartbeat.try_to_rfc3339_string().unwrap_or_default(),
                    h.host,
                    h.pid
                ),
                None => "not running".into(),
            },
        },
    });
    if !alive {
        return Ok((gates, None));
    }
    // T: after the gate started, so every write the app made before it stopped is
    // before T.
    let time = timestamp_nanos(&source.server_time().await?);
    store.want(job, time).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let caught_up = |r: &FollowRecord| {
        r.applied_or_start() >= time && r.copy_done && r.dirty_groups().is_empty()
    };
    let mut last = record.expect("checked above");
    while !caught_up(&last) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(r) = store.load(job).await? {
            last = r;
        }
    }
    let lag = (time - last.applied_or_start()).max(0) as f64 / 1e9;
    let ok = caught_up(&last);
    gates.push(Gate {
        name: "caught up",
        passed: ok,
        figure: if ok {
            format!(
                "applied up to {} (cutover time reached)",
                nanos_rfc3339(last.applied_or_start())
            )
        } else if !last.copy_done {
            "the copy is not done yet".into()
        } else if !last.dirty_groups().is_empty() {
            format!(
                "groups still being read again: {}",
                last.dirty_groups().join(", ")
            )
        } else {
            format!("{lag:.1}s behind the cutover time after {}s", args.timeout)
        },
    });
    if !ok {
        return Ok((gates, Some(time)));
    }
    let (verify_code, differing) = run_verify(args).await?;
    gates.push(Gate {
        name: "parity",
        passed: verify_code == ExitCode::Ok,
        figure: if verify_code == ExitCode::Ok {
            format!("verify: parity ({}-verify.html)", args.report.display())
        } else if differing.is_empty() {
            format!("verify exited {}", verify_code.code())
        } else {
            format!("collections that differ: {}", differing.join(", "))
        },
    });
    if verify_code != ExitCode::Ok {
        return Ok((gates, Some(time)));
    }
    let outbox = source
        .count_collection_group(fireshift::own::OUTBOX)
        .await?;
    gates.push(Gate {
        name: "outbox",
        passed: outbox == 0,
        figure: format!("{outbox} dual-write entries owed to MongoDB"),
    });
    if outbox > 0 {
        return Ok((gates, Some(time)));
    }
    store.request_cutover(job, time).await?;
    let mut left = false;
    while Instant::now() < deadline + Duration::from_secs(30) {
        if store.load(job).await?.is_some_and(|r| r.finished.is_some()) {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    gates.push(Gate {
        name: "follower left",
        passed: left,
        figure: if left {
            "the follower applied everything up to the cutover time and exited".into()
        } else {
            "the cutover is recorded but the follower has not left yet".into()
        },
    });
    if left && args.strip_guard {
        let n = strip_guard(sink, job).await?;
        gates.push(Gate {
            name: "strip guard",
            passed: true,
            figure: format!(
                "`{}` removed from {n} documents",
                fireshift::sink::guard::GUARD_FIELD
            ),
        });
    }
    Ok((gates, Some(time)))
}

/// Runs verify in this process with the gate's own endpoint flags: the command line is
/// read again as a `verify` command, without the gate's own flags.
async fn run_verify(args: &CutoverArgs) -> anyhow::Result<(ExitCode, Vec<String>)> {
    let own_with_value = ["--job", "--timeout", "--report"];
    let own_flags = ["--strip-guard"];
    let mut argv: Vec<String> = Vec::new();
    let mut skip_next = false;
    for a in std::env::args() {
        if skip_next {
            skip_next = false;
            continue;
        }
        if a == "cutover" && argv.len() <= 3 {
            argv.push("verify".into());
            continue;
        }
        if own_flags.contains(&a.as_str()) {
            continue;
        }
        if own_with_value.contains(&a.as_str()) {
            skip_next = true;
            continue;
        }
        if own_with_value
            .iter()
            .any(|f| a.starts_with(&format!("{f}=")))
        {
            continue;
        }
        argv.push(a);
    }
    let prefix = format!("{}-verify", args.report.display());
    argv.push("--report".into());
    argv.push(prefix.clone());
    let matches = <Cli as clap::CommandFactory>::command()
        .try_get_matches_from(&argv)
        .context("reading the command line again for verify")?;
    let cli = Cli::from_arg_matches(&matches)?;
    let Command::Verify(v) = cli.command else {
        anyhow::bail!("the gate could not run verify");
    };
    let code = crate::verify::run(v).await?;
    let mut differing = Vec::new();
    if let Ok(text) = std::fs::read_to_string(format!("{prefix}.json")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            for c in v["collections"].as_array().into_iter().flatten() {
                if c["parity"] == serde_json::Value::Bool(false) {
                    differing.push(c["collection"].as_str().unwrap_or("?").to_string());
                }
            }
        }
    }
    Ok((code, differing))
}

/// Removes the guard field from every document (and embedded element) the job's
/// ledger says it wrote.
async fn strip_guard(sink: &fireshift::sink::MongoSink, job: &str) -> anyhow::Result<u64> {
    use mongodb::bson::{doc, Document};
    let field = fireshift::sink::guard::GUARD_FIELD;
    let ledger = sink
        .database()
        .collection::<Document>(fireshift::ledger::LEDGER_COLLECTION);
    let collections = ledger.distinct("c", doc! { "j": job }).await?;
    let mut n = 0;
    for c in collections.iter().filter_map(|c| c.as_str()) {
        let coll = sink.database().collection::<Document>(c);
        n += coll
            .update_many(
                doc! { field: { "$exists": true } },
                doc! { "$unset": { field: "" } },
            )
            .await?
            .modified_count;
        for f in ledger
            .distinct("f.field", doc! { "j": job, "c": c })
            .await?
            .iter()
            .filter_map(|f| f.as_str())
        {
            let path = format!("{f}.$[].{field}");
            coll.update_many(
                doc! { f: { "$type": "array" } },
                doc! { "$unset": { path: "" } },
            )
            .await?;
        }
    }
    Ok(n)
}
