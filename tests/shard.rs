//! `--shard auto`: each process of a Kubernetes Indexed Job or a Cloud Run job takes its
//! share from the engine's environment, says which it took, and the shares together copy
//! every document once.

mod common;

use std::process::Command;

use common::{assert_target_is_exact, stderr, World};

/// `migrate --shard auto` of `world` with `env` as the engine would set it (and no other
/// engine variable) and `extra` flags; stdout and stderr kept.
fn shard_command(world: &World, env: &[(&str, &str)], extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fireshift"));
    cmd.args([
        "migrate",
        "--project",
        &world.project,
        "--database",
        &world.database,
        "--mongodb-uri",
        &common::mongodb_uri(),
        "--shard",
        "auto",
        "--quiet",
    ])
    .args(extra)
    .env("FIRESHIFT_LOG", "info")
    .env("NO_COLOR", "1");
    for var in [
        "CLOUD_RUN_TASK_INDEX",
        "CLOUD_RUN_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "FIRESHIFT_SHARD_COUNT",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

fn shard_auto(world: &World, env: &[(&str, &str)]) -> std::process::Output {
    shard_command(world, env, &[])
        .output()
        .expect("run fireshift")
}

#[tokio::test]
async fn indexed_job_and_cloud_run_shards_share_the_job() {
    for (engine, index_var, count_var) in [
        ("k8s", "JOB_COMPLETION_INDEX", "FIRESHIFT_SHARD_COUNT"),
        ("cloudrun", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT"),
    ] {
        let world = World::new(&format!("shard-auto-{engine}")).await;
        let users = 10;
        world.write_demo(users).await;
        let mut written = 0;
        for index in ["1", "0"] {
            let out = shard_auto(&world, &[(index_var, index), (count_var, "2")]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(0), "{err}");
            // The job as a whole is done only once both shares are.
            let status = world.fireshift(
                &["status", "--require-done", "--database", &world.database],
                &[],
            );
            let want = if index == "1" { 8 } else { 0 };
            assert_eq!(status.status.code(), Some(want), "{}", stderr(&status));
            let k = index.parse::<usize>().unwrap() + 1;
            let said = format!("shard {k}/2 ({index_var}={index}, {count_var}=2)");
            assert!(
                err.contains(&said),
                "says which share it took: {said} in {err}"
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            written += stdout
                .lines()
                .find(|l| l.starts_with("total"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("a summary total line: {stdout}"));
        }
        // Each share copied its own ranges: together every document, once.
        assert_eq!(
            written,
            fireshift_demo::expected_count(users),
            "the two shares wrote each document once"
        );
        assert_target_is_exact(&world, users).await;
    }
}

/// Starts `migrate --shard auto` as shard `index` of 4 in an Indexed Job's environment.
fn spawn_shard_with(world: &World, index: usize, extra: &[&str]) -> std::process::Child {
    spawn_on(world, Engine::Kubernetes, index, extra)
}

#[derive(Debug, Clone, Copy)]
enum Engine {
    Kubernetes,
    CloudRun,
}

/// Starts `migrate --shard auto` as task `index` of 4 of `engine`.
fn spawn_on(world: &World, engine: Engine, index: usize, extra: &[&str]) -> std::process::Child {
    let index = index.to_string();
    let env = match engine {
        Engine::Kubernetes => [
            ("JOB_COMPLETION_INDEX", index.as_str()),
            ("FIRESHIFT_SHARD_COUNT", "4"),
        ],
        Engine::CloudRun => [
            ("CLOUD_RUN_TASK_INDEX", index.as_str()),
            ("CLOUD_RUN_TASK_COUNT", "4"),
        ],
    };
    shard_command(world, &env, extra)
        .spawn()
        .expect("spawn fireshift")
}

#[tokio::test]
async fn four_shards_started_at_once_agree_on_one_plan_and_build_indexes_once() {
    for engine in [Engine::Kubernetes, Engine::CloudRun] {
        four_at_once(engine).await;
    }
}

async fn four_at_once(engine: Engine) {
    let world = World::new(&format!("shard-at-once-{engine:?}").to_lowercase()).await;
    let users = 20;
    world.write_demo(users).await;
    let children: Vec<_> = (0..4).map(|i| spawn_on(&world, engine, i, &[])).collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{engine:?} shard {i}: {}",
            stderr(out)
        );
    }
    let said = |what: &str| outs.iter().filter(|o| stderr(o).contains(what)).count();
    assert_eq!(
        said("this process plans the job"),
        1,
        "exactly one shard planned the job"
    );
    assert_eq!(
        said("this process builds the job's indexes"),
        1,
        "exactly one shard built the indexes"
    );
    let jobs = world
        .db
        .collection::<mongodb::bson::Document>("_fireshift_checkpoints")
        .count_documents(mongodb::bson::doc! { "kind": "job" })
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    // Every document once, and the job as a whole is done.
    assert_target_is_exact(&world, users).await;
    let status = world.fireshift(
        &[
            "status",
            "--json",
            "--require-done",
            "--database",
            &world.database,
        ],
        &[],
    );
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let job = &json["jobs"][0];
    assert_eq!(job["done"], true, "{json}");
    // And the parity report a reviewer signs off on agrees.
    let report = tempfile::tempdir().unwrap();
    let verify = world.fireshift(
        &[
            "verify",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--report",
            report.path().join("verify").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));
}

#[tokio::test]
async fn each_shard_killed_once_and_restarted_gives_the_same_exact_result() {
    use rand::Rng;
    let world = World::new("shard-kill").await;
    let users = 30;
    world.write_demo(users).await;
    // Small batches, one in flight: each shard runs long enough to be killed mid-copy.
    let slow = [
        "--batch-size",
        "10",
        "--in-flight",
        "1",
        "--page-size",
        "100",
    ];
    let mut children: Vec<_> = (0..4).map(|i| spawn_shard_with(&world, i, &slow)).collect();
    let mut rng = rand::thread_rng();
    let mut killed_running = 0;
    for child in children.iter_mut() {
        // A random moment: during the plan, the copy, or after the shard's own end.
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(100..1500))).await;
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        let _ = child.kill(); // SIGKILL: no drain, no checkpoint of what is in flight
        let _ = child.wait();
    }
    assert!(killed_running > 0, "at least one shard was killed mid-run");
    // Every shard restarted (a Job's backoffLimitPerIndex retry): each resumes its own
    // ranges, a killed planner's claim is taken over at once (same host, pid gone).
    let restarted: Vec<_> = (0..4).map(|i| spawn_shard_with(&world, i, &slow)).collect();
    for (i, child) in restarted.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "shard {i}: {}", stderr(&out));
    }
    assert_target_is_exact(&world, users).await;
    let status = world.fireshift(
        &["status", "--require-done", "--database", &world.database],
        &[],
    );
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
}
