//! `examples/deploy`: the Kubernetes Indexed Job and the Cloud Run job use only flags and
//! environment variables the binary has, and their command lines, run here as the
//! engines would run them (4 shards, each with the environment its engine sets, the
//! mappings where the manifest puts them), copy every document exactly once and leave a
//! job that `fireshift status --json` calls done. The Dockerfile cannot be built here
//! (no container registry to pull its base images from): what it names is checked.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{assert_target_is_exact, World};
use mongodb::bson::doc;
use serde::Deserialize;
use serde_norway::Value;

const USERS: usize = 10;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy")
}

/// Every document of a (multi-document) YAML file.
fn yaml_documents(relative: &str) -> Vec<Value> {
    let path = deploy_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in the manifest");
    found[0]
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn number(v: &Value) -> u64 {
    text(v)
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {v:?}"))
}

/// The Kubernetes manifest: the Job and the ServiceAccount.
fn kubernetes() -> (Value, Value) {
    let docs = yaml_documents("kubernetes/job.yaml");
    (
        of_kind(&docs, "Job").clone(),
        of_kind(&docs, "ServiceAccount").clone(),
    )
}

fn kubernetes_container(job: &Value) -> &Value {
    let containers = job["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

fn cloud_run() -> Value {
    let docs = yaml_documents("cloudrun/job.yaml");
    assert_eq!(docs.len(), 1);
    let job = docs[0].clone();
    assert_eq!(job["apiVersion"], "run.googleapis.com/v1");
    assert_eq!(job["kind"], "Job");
    job
}

fn cloud_run_container(job: &Value) -> &Value {
    let containers = job["spec"]["template"]["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(text)
        .collect()
}

/// The value after `flag` in `args`.
fn value_of<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} in {args:?}"));
    &args[i + 1]
}

/// The container's environment: name → its entry.
fn env(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| (text(&e["name"]), e.clone()))
        .collect()
}

fn env_entry(container: &Value, name: &str) -> Value {
    env(container)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} in the container's env"))
        .1
}

/// `fireshift migrate --help` of the real binary.
fn migrate_help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args(["migrate", "--help"])
        .output()
        .expect("run fireshift");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stdout).unwrap()
}

/// Every `--flag` the help text names.
fn flags_in(help: &str) -> BTreeSet<String> {
    help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

/// The flags and environment variables of `container` are the binary's; the MongoDB URI
/// comes from a secret and never from the command line (which the pod spec, `ps` and
/// the engine's console show).
fn check_uses_only_what_exists(what: &str, container: &Value, help: &str) {
    let flags = flags_in(help);
    let args = args(container);
    assert_eq!(args[0], "migrate", "{what}: the command");
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            flags.contains(a),
            "{what}: {a} is not a flag of `fireshift migrate`"
        );
    }
    assert_eq!(value_of(&args, "--shard"), "auto", "{what}");
    assert!(
        !args.iter().any(|a| a.starts_with("--mongodb-uri")),
        "{what}"
    );
    for (name, _) in env(container) {
        assert!(
            help.contains(&name),
            "{what}: `fireshift migrate --help` does not mention the variable {name}"
        );
    }
    let uri = env_entry(container, "MONGODB_URI");
    assert!(
        uri.get("value").is_none() && uri["valueFrom"]["secretKeyRef"]["name"].is_string(),
        "{what}: MONGODB_URI comes from a secret: {uri:?}"
    );
    // The real flag values parse: a bad number would be exit 2 on the cluster.
    for flag in ["--max-reads-per-second", "--max-writes-per-second"] {
        let v: f64 = value_of(&args, flag).parse().unwrap();
        assert!(v > 0.0, "{what}: {flag}");
    }
}

/// The runtime user and the baked mapping directory, as the Dockerfile declares them.
struct Dockerfile {
    text: String,
    uid: u64,
    /// `ARG MAPPINGS=` default (a path in the repository) and where it is copied to.
    mappings_source: String,
    mappings_dest: String,
}

fn dockerfile() -> Dockerfile {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let user = lines
        .iter()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER line");
    let uid = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER");
    let mappings_source = lines
        .iter()
        .find_map(|l| l.strip_prefix("ARG MAPPINGS="))
        .expect("ARG MAPPINGS=")
        .to_string();
    let mappings_dest = lines
        .iter()
        .find_map(|l| l.strip_prefix("COPY ${MAPPINGS} "))
        .expect("COPY ${MAPPINGS} DEST")
        .to_string();
    Dockerfile {
        text,
        uid,
        mappings_source,
        mappings_dest,
    }
}

#[test]
fn manifests_use_only_flags_and_variables_the_binary_has() {
    let help = migrate_help();
    // The check can fail: a flag the binary lacks is not in the set.
    let flags = flags_in(&help);
    assert!(flags.contains("--max-writes-per-second") && flags.contains("--log-format"));
    assert!(flags.contains("--follow") && !flags.contains("--no-such-flag"));

    let docker = dockerfile();

    // Kubernetes: an Indexed Job whose FIRESHIFT_SHARD_COUNT is its completions.
    let (job, account) = kubernetes();
    let spec = &job["spec"];
    let pod = &spec["template"]["spec"];
    let container = kubernetes_container(&job);
    check_uses_only_what_exists("kubernetes/job.yaml", container, &help);
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = number(&spec["completions"]);
    assert_eq!(completions, 4);
    assert_eq!(number(&spec["parallelism"]), completions);
    assert_eq!(
        number(&env_entry(container, "FIRESHIFT_SHARD_COUNT")["value"]),
        completions,
        "FIRESHIFT_SHARD_COUNT is the Job's completions"
    );
    assert!(number(&spec["backoffLimitPerIndex"]) >= 1);
    assert!(number(&spec["maxFailedIndexes"]) <= completions);
    // backoffLimitPerIndex and podFailurePolicy need it.
    assert_eq!(pod["restartPolicy"], "Never");
    for rule in spec["podFailurePolicy"]["rules"].as_sequence().unwrap() {
        if let Some(codes) = rule.get("onExitCodes") {
            assert_eq!(codes["containerName"], container["name"]);
        }
    }
    // Workload Identity: the pod's service account is the annotated one of the file.
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    let gsa = text(&account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]);
    assert!(gsa.ends_with(".iam.gserviceaccount.com"), "{gsa}");
    // The Dockerfile's user, so runAsNonRoot can check it.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(number(&pod["securityContext"]["runAsUser"]), docker.uid);
    assert!(docker.uid != 0);
    // Memory sized from the measured ~40 MiB peak, with headroom.
    let mib = |v: &Value| text(v).strip_suffix("Mi").unwrap().parse::<u64>().unwrap();
    let resources = &container["resources"];
    assert!(mib(&resources["requests"]["memory"]) >= 80);
    assert!(mib(&resources["limits"]["memory"]) >= mib(&resources["requests"]["memory"]));
    // The mappings the args name are the ConfigMap's mount.
    let args_k8s = args(container);
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == value_of(&args_k8s, "--mappings"))
        .expect("--mappings is a mounted volume");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mount's volume");
    assert!(volume["configMap"]["name"].is_string());

    // Cloud Run: N tasks, the URI from Secret Manager, a service account, the baked
    // mappings.
    let job = cloud_run();
    let spec = &job["spec"]["template"]["spec"];
    let container = cloud_run_container(&job);
    check_uses_only_what_exists("cloudrun/job.yaml", container, &help);
    assert!(help.contains("CLOUD_RUN_TASK_INDEX") && help.contains("CLOUD_RUN_TASK_COUNT"));
    assert_eq!(number(&spec["taskCount"]), 4);
    assert_eq!(number(&spec["parallelism"]), 4);
    let task = &spec["template"]["spec"];
    assert!(text(&task["serviceAccountName"]).ends_with(".iam.gserviceaccount.com"));
    assert!(
        number(&task["timeoutSeconds"]) > 600,
        "above the 10-minute default"
    );
    assert_eq!(
        value_of(&args(container), "--mappings"),
        docker.mappings_dest,
        "Cloud Run reads the mappings the image bakes in"
    );

    // The Dockerfile builds the binary these manifests run, with the feature Cargo.toml
    // requires of it, and copies only what exists.
    let cargo: toml::Value = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap(),
    )
    .unwrap();
    let bin = cargo["bin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"].as_str() == Some("fireshift"))
        .unwrap();
    let required: Vec<&str> = bin["required-features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let build = docker
        .text
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build line");
    assert!(build.contains("--release") && build.contains("--bin fireshift"));
    for feature in required {
        assert!(build.contains(&format!("--features {feature}")), "{build}");
    }
    assert!(docker.text.contains("ENTRYPOINT [\"fireshift\"]"));
    let rust_version = cargo["package"]["rust-version"].as_str().unwrap();
    assert!(
        docker
            .text
            .contains(&format!("FROM rust:{rust_version}-bookworm AS build"))
            && docker.text.contains("FROM debian:bookworm-slim"),
        "the builder has the crate's toolchain, on the runtime's Debian release"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for line in docker.text.lines().filter(|l| l.starts_with("COPY ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[1].starts_with("--from") || words[1].starts_with("${") {
            continue;
        }
        for source in &words[1..words.len() - 1] {
            assert!(
                root.join(source).exists(),
                "COPY {source}: not in the repository"
            );
        }
    }
    let ignored = std::fs::read_to_string(deploy_dir().join("Dockerfile.dockerignore")).unwrap();
    assert!(ignored.lines().any(|l| l.trim() == "target"));
    // The baked mappings are valid.
    let check = Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args(["check", "--mappings"])
        .arg(root.join(&docker.mappings_source))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", common::stderr(&check));
}

#[test]
fn the_follower_manifest_uses_only_what_the_binary_has_and_runs_one_pod() {
    let help = migrate_help();
    let flags = flags_in(&help);
    let docs = yaml_documents("kubernetes/follower.yaml");
    let job = of_kind(&docs, "Job");
    let spec = &job["spec"];
    // One follower per job: one pod, replaced only once the failed one is gone.
    assert_eq!(number(&spec["completions"]), 1);
    assert_eq!(number(&spec["parallelism"]), 1);
    assert_eq!(spec["podReplacementPolicy"], "Failed");
    let container = kubernetes_container(job);
    let args = args(container);
    assert_eq!(args[0], "migrate");
    assert!(args.iter().any(|a| a == "--follow"));
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            flags.contains(a),
            "follower.yaml: {a} is not a flag of `fireshift migrate`"
        );
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--shard")),
        "one process: no shard"
    );
    assert!(!args.iter().any(|a| a.starts_with("--mongodb-uri")));
    // Metrics off loopback need the token, from a secret, and the binary names it.
    let addr: std::net::SocketAddr = value_of(&args, "--metrics-addr").parse().unwrap();
    assert!(!addr.ip().is_loopback());
    for name in ["MONGODB_URI", "FIRESHIFT_METRICS_TOKEN"] {
        assert!(
            help.contains(name),
            "`fireshift migrate --help` mentions {name}"
        );
        let e = env_entry(container, name);
        assert!(
            e.get("value").is_none() && e["valueFrom"]["secretKeyRef"]["name"].is_string(),
            "{name} comes from a secret: {e:?}"
        );
    }
    assert_eq!(
        number(&container["ports"][0]["containerPort"]),
        u64::from(addr.port())
    );
}

/// The manifest's arguments with this machine's values: the test world's project and
/// database, `mappings` for the mapping directory, and `replace`'s other values (each
/// flag must be in the manifest).
fn localize(
    args: &[String],
    world: &World,
    mappings: &Path,
    replace: &[(&str, String)],
) -> Vec<String> {
    let mut values: Vec<(&str, String)> = vec![
        ("--project", world.project.clone()),
        ("--database", world.database.clone()),
        ("--mappings", mappings.display().to_string()),
    ];
    values.extend(replace.iter().cloned());
    let mut out = args.to_vec();
    for (flag, value) in values {
        let i = out
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} in the manifest's args"));
        out[i + 1] = value;
    }
    out
}

/// Starts one shard as its engine would: the manifest's command line, the engine's
/// variables, the MongoDB URI where the secret puts it, nothing else of ours.
fn start_shard(args: &[String], env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fireshift"));
    cmd.args(args);
    for var in [
        "CLOUD_RUN_TASK_INDEX",
        "CLOUD_RUN_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "FIRESHIFT_SHARD_COUNT",
        "FIRESHIFT_LOG",
        "FIRESHIFT_LOG_FORMAT",
        "GOOGLE_CLOUD_PROJECT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("MONGODB_URI", common::mongodb_uri())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fireshift")
}

/// Waits for every shard; asserts each exited 0, logged only JSON lines and said which
/// share it took (`said(k)` for the engine's index `k`).
fn finish_shards(children: Vec<(usize, Child)>, said: impl Fn(usize) -> String) -> Vec<Output> {
    let mut outputs = Vec::new();
    for (k, child) in children {
        let out = child.wait_with_output().unwrap();
        let err = common::stderr(&out);
        eprintln!("--- shard index {k} exited {:?}\n{err}", out.status.code());
        assert_eq!(out.status.code(), Some(0), "shard index {k}: {err}");
        let mut messages = Vec::new();
        for line in err.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("--log-format json: not JSON ({e}): {line}"));
            messages.push(v["fields"]["message"].as_str().unwrap_or("").to_string());
        }
        let said = said(k);
        assert!(
            messages.iter().any(|m| m.contains(&said)),
            "shard index {k} says `{said}`: {messages:?}"
        );
        outputs.push(out);
    }
    outputs
}

/// `fireshift status --database D --job J --json`, as the README's "is it done" check runs it.
fn status(world: &World, job: &str) -> serde_json::Value {
    let out = world.fireshift(
        &[
            "status",
            "--database",
            &world.database,
            "--job",
            job,
            "--json",
        ],
        &["--mongodb-uri", &common::mongodb_uri()],
    );
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1, "{v}");
    v["jobs"][0].clone()
}

async fn job_records(world: &World) -> u64 {
    world
        .db
        .collection::<mongodb::bson::Document>("_fireshift_checkpoints")
        .count_documents(doc! { "kind": "job" })
        .await
        .unwrap()
}

/// Whether the mapping's unique `email` index exists on `users`.
async fn email_index(world: &World) -> bool {
    let names = world
        .db
        .collection::<mongodb::bson::Document>("users")
        .list_index_names()
        .await
        .unwrap();
    names.iter().any(|n| n == "email_1")
}

/// Lays out `source`'s files as the kubelet mounts a ConfigMap: the files in a
/// timestamped directory, `..data` linking to it, and each name a link through `..data`.
fn as_configmap_volume(source: &Path, dir: &Path) -> PathBuf {
    let volume = dir.join("configmap");
    let stamped = volume.join("..2026_01_01_00_00_00.000000000");
    std::fs::create_dir_all(&stamped).unwrap();
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000000", volume.join("..data")).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let name = entry.unwrap().file_name();
        std::fs::copy(source.join(&name), stamped.join(&name)).unwrap();
        std::os::unix::fs::symlink(Path::new("..data").join(&name), volume.join(&name)).unwrap();
    }
    volume
}

/// The four pods of the Indexed Job started at the same instant (`JOB_COMPLETION_INDEX`
/// 0..3, `FIRESHIFT_SHARD_COUNT` from the manifest), the mappings mounted as the
/// ConfigMap volume, the summary where the termination message would be.
#[tokio::test]
async fn the_kubernetes_indexed_job_runs_here_four_pods_at_once() {
    let (job, _) = kubernetes();
    let container = kubernetes_container(&job);
    let manifest = args(container);
    let completions = number(&job["spec"]["completions"]) as usize;
    let count = text(&env_entry(container, "FIRESHIFT_SHARD_COUNT")["value"]);
    let job_name = value_of(&manifest, "--job").to_string();

    let world = World::new("deploy-k8s").await;
    world.write_demo(USERS).await;
    let dir = tempfile::tempdir().unwrap();
    let mappings = as_configmap_volume(&dockerfile_mappings(), dir.path());

    let children: Vec<(usize, Child)> = (0..completions)
        .map(|k| {
            // Each pod has its own /dev/termination-log.
            let summary = dir.path().join(format!("termination-log-{k}"));
            let args = localize(
                &manifest,
                &world,
                &mappings,
                &[("--summary-json", summary.display().to_string())],
            );
            let env = [
                ("JOB_COMPLETION_INDEX", k.to_string()),
                ("FIRESHIFT_SHARD_COUNT", count.clone()),
            ];
            (k, start_shard(&args, &env))
        })
        .collect();
    finish_shards(children, |k| {
        format!(
            "shard {}/{completions} (JOB_COMPLETION_INDEX={k}, FIRESHIFT_SHARD_COUNT={completions})",
            k + 1
        )
    });

    // Each pod's summary says it ended clean; together they wrote every document once,
    // and at least one of them (the last to finish) built the mappings' index.
    let mut written = 0;
    let mut built = 0;
    for k in 0..completions {
        let path = dir.path().join(format!("termination-log-{k}"));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            (s["outcome"].as_str(), s["exit_code"].as_i64()),
            (Some("clean"), Some(0))
        );
        assert_eq!(s["job"], job_name.as_str());
        written += s["written"].as_u64().unwrap();
        built += usize::from(s.get("indexes").is_some());
    }
    assert_eq!(written as usize, fireshift_demo::expected_count(USERS));
    assert!(built >= 1, "the last shard built the indexes");
    assert_eq!(job_records(&world).await, 1, "one stored plan");
    assert_target_is_exact(&world, USERS).await;
    assert!(email_index(&world).await);

    let status = status(&world, &job_name);
    assert_eq!(status["done"], true, "{status}");
    assert_eq!(status["ranges_total"], completions, "{status}");
    let states: Vec<&str> = status["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["indexed"; completions], "{status}");
}

/// The repository directory the image bakes in as its mappings (the Dockerfile's
/// `ARG MAPPINGS` default).
fn dockerfile_mappings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dockerfile().mappings_source)
}

/// The Cloud Run job's tasks (`CLOUD_RUN_TASK_INDEX`, `CLOUD_RUN_TASK_COUNT`): three at
/// once, after which the job is not done and no index is built; then the fourth, which
/// builds the index and leaves the job done. Each task's stdout carries the run's events.
#[tokio::test]
async fn the_cloud_run_job_runs_here_three_tasks_then_the_last() {
    let job = cloud_run();
    let container = cloud_run_container(&job);
    let manifest = args(container);
    let tasks = number(&job["spec"]["template"]["spec"]["taskCount"]) as usize;
    let job_name = value_of(&manifest, "--job").to_string();
    assert_eq!(value_of(&manifest, "--progress-json"), "/dev/stdout");

    let world = World::new("deploy-cloudrun").await;
    world.write_demo(USERS).await;
    let args = localize(&manifest, &world, &dockerfile_mappings(), &[]);
    let run = |indexes: &[usize]| {
        let children = indexes
            .iter()
            .map(|&k| {
                let env = [
                    ("CLOUD_RUN_TASK_INDEX", k.to_string()),
                    ("CLOUD_RUN_TASK_COUNT", tasks.to_string()),
                ];
                (k, start_shard(&args, &env))
            })
            .collect();
        finish_shards(children, |k| {
            format!(
                "shard {}/{tasks} (CLOUD_RUN_TASK_INDEX={k}, CLOUD_RUN_TASK_COUNT={tasks})",
                k + 1
            )
        })
    };
    // The events on stdout: the `end` one is the run's report.
    let end_event = |out: &Output| -> serde_json::Value {
        let stdout = common::stdout(out);
        let events: Vec<serde_json::Value> = stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.first().unwrap()["event"], "start", "{stdout}");
        events
            .into_iter()
            .find(|e| e["event"] == "end")
            .unwrap_or_else(|| panic!("an end event: {stdout}"))
    };

    let last = 2;
    let first: Vec<usize> = (0..tasks).filter(|&k| k != last).collect();
    let mut written = 0;
    for out in run(&first) {
        let end = end_event(&out);
        assert_eq!(
            (end["outcome"].as_str(), end["exit_code"].as_i64()),
            (Some("clean"), Some(0))
        );
        assert!(
            end.get("indexes").is_none(),
            "other tasks are still copying: {end}"
        );
        written += end["written"].as_u64().unwrap();
    }
    let status_now = status(&world, &job_name);
    assert_eq!(status_now["done"], false, "{status_now}");
    assert_eq!(status_now["ranges_done"], tasks - 1, "{status_now}");
    assert!(
        !email_index(&world).await,
        "indexes wait for the last range"
    );

    let out = run(&[last]);
    let end = end_event(&out[0]);
    assert_eq!(
        (end["outcome"].as_str(), end["exit_code"].as_i64()),
        (Some("clean"), Some(0))
    );
    assert!(
        end["indexes"].as_array().is_some_and(|i| !i.is_empty()),
        "{end}"
    );
    written += end["written"].as_u64().unwrap();
    assert_eq!(written as usize, fireshift_demo::expected_count(USERS));
    assert_eq!(job_records(&world).await, 1, "one stored plan");
    assert_target_is_exact(&world, USERS).await;
    assert!(email_index(&world).await);
    let status_now = status(&world, &job_name);
    assert_eq!(status_now["done"], true, "{status_now}");
}
