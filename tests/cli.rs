//! The command line itself: bad values are a bad command line (exit 2) before any I/O,
//! every command's `--help` shows an example and the exit codes, `--version` names the commit, and
//! logs are fit for machines (no escape codes off a terminal, JSON on request).

mod common;

use std::process::{Command, Output};

use common::{stderr, stdout, World};

/// Endpoints nothing listens on: a run that got past the flags would fail on them with
/// exit 1, not 2.
const NOWHERE: &[&str] = &[
    "--project",
    "p",
    "--database",
    "d",
    "--mongodb-uri",
    "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200",
    "--retry-timeout",
    "1",
];

fn fireshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args(args)
        .env("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
        .env_remove("FIRESHIFT_LOG")
        .env_remove("FIRESHIFT_METRICS_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn every_invalid_flag_value_is_a_bad_command_line_before_any_io() {
    let cases: &[(&str, &[&str])] = &[
        ("migrate", &["--batch-size", "0"]),
        ("migrate", &["--batch-size", "200000"]),
        ("migrate", &["--batch-bytes", "10"]),
        ("migrate", &["--in-flight", "0"]),
        ("migrate", &["--page-size", "0"]),
        ("migrate", &["--read-ahead", "0"]),
        ("migrate", &["--parallel", "0"]),
        ("migrate", &["--ranges", "0"]),
        ("migrate", &["--shard", "3/2"]),
        // No engine variable in the test's environment: `auto` has nothing to use.
        ("migrate", &["--shard", "auto"]),
        // Metrics off loopback without a token (none is set here).
        ("migrate", &["--metrics-addr", "0.0.0.0:9464"]),
        ("migrate", &["--metrics-addr", "localhost"]),
        ("verify", &["--sample", "0"]),
        ("verify", &["--sample", "1.5"]),
        ("verify", &["--chunk-size", "0"]),
        ("verify", &["--max-docs", "0"]),
        ("verify", &["--checkpoint-docs", "0"]),
        ("verify", &["--recheck-delay=-1"]),
    ];
    for (command, bad) in cases {
        let mut args = vec![*command];
        args.extend_from_slice(NOWHERE);
        args.extend_from_slice(bad);
        let out = fireshift(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{command} {bad:?}: {err}");
        let flag = bad[0].split('=').next().unwrap();
        assert!(
            err.contains(flag),
            "{command} {bad:?}: the message names the flag: {err}"
        );
    }
    let plan = fireshift(&[
        "plan",
        "--project",
        "p",
        "--out",
        "o",
        "--report",
        "r",
        "--sample",
        "0",
    ]);
    assert_eq!(plan.status.code(), Some(2), "{}", stderr(&plan));
}

#[test]
fn an_invalid_log_filter_is_a_bad_command_line() {
    let out = fireshift(&[
        "--log",
        "fireshift=loud",
        "check",
        "--mappings",
        "mappings/mixillo",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--log"), "{}", stderr(&out));
    let env = Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args(["check", "--mappings", "mappings/mixillo"])
        .env("FIRESHIFT_LOG", "nonsense=?")
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(2), "{}", stderr(&env));
}

#[test]
fn every_commands_help_lists_every_exit_code() {
    for command in ["migrate", "status", "verify", "check", "indexes", "plan"] {
        let out = fireshift(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        let help = stdout(&out);
        for code in 0..=7 {
            assert!(
                help.contains(&format!("\n  {code}  ")),
                "{command} --help lacks exit code {code}:\n{help}"
            );
        }
    }
}

#[test]
fn every_commands_help_shows_an_example_of_itself() {
    for command in ["migrate", "status", "verify", "check", "indexes", "plan"] {
        for flag in ["--help", "-h"] {
            let out = fireshift(&[command, flag]);
            assert_eq!(out.status.code(), Some(0));
            let help = stdout(&out);
            let example = help
                .find("Examples:\n")
                .unwrap_or_else(|| panic!("{command} {flag} has no example:\n{help}"));
            assert!(
                help[example..].contains(&format!("\n  fireshift {command} --")),
                "{command} {flag}: the example runs the command:\n{help}"
            );
            assert!(
                example < help.find("Exit codes").unwrap(),
                "the example comes before the exit codes:\n{help}"
            );
        }
    }
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = fireshift(&["--version"]);
    let version = stdout(&out);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) => assert_eq!(
            version.trim(),
            format!("fireshift {} ({head})", env!("CARGO_PKG_VERSION"))
        ),
        // Not a git checkout: the version alone.
        None => assert_eq!(
            version.trim(),
            format!("fireshift {}", env!("CARGO_PKG_VERSION"))
        ),
    }
}

#[tokio::test]
async fn redirected_logs_hold_no_escape_codes_and_json_logs_parse() {
    let world = World::new("cli-logs").await;
    world
        .write(std::iter::once(common::doc_at("users/u1", vec![])))
        .await;
    let text = Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "migrate",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--quiet",
        ])
        .env("FIRESHIFT_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    let err = stderr(&text);
    assert!(err.contains("INFO"), "no log lines to check: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "escape codes in redirected logs: {err:?}"
    );
    let json = Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "--log-format",
            "json",
            "migrate",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--quiet",
        ])
        .env("FIRESHIFT_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let lines: Vec<serde_json::Value> = stderr(&json)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "{lines:?}"
    );
}

#[test]
fn secrets_in_a_connection_string_never_reach_the_output() {
    let cases = [
        (
            "mongodb://127.0.0.1:1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:FQoGZXIvYXdzE1s3cr3t",
            "FQoGZXIvYXdzE1s3cr3t",
            Some("MONGODB-AWS is not supported"),
        ),
        (
            "mongodb://127.0.0.1:1/?authMechanism=PLAIN&authMechanismProperties=SECRET_THING:FQoGZXIvYXdzE1s3cr3t&serverSelectionTimeoutMS=200",
            "FQoGZXIvYXdzE1s3cr3t",
            None,
        ),
        (
            "mongodb://127.0.0.1:1/?tls=true&tlsCertificateKeyFile=/nonexistent/client.pem&tlsCertificateKeyFilePassword=hunter2hunter2",
            "hunter2hunter2",
            Some("client.pem"),
        ),
        (
            "mongodb://fire:hunter2hunter2@127.0.0.1:1/?serverSelectionTimeoutMS=200",
            "hunter2hunter2",
            Some("fire:***@"),
        ),
    ];
    for (uri, secret, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_fireshift"))
            .args([
                "indexes",
                "--mappings",
                "mappings/mixillo",
                "--database",
                "d",
                "--mongodb-uri",
                uri,
                "--retry-timeout",
                "1",
            ])
            .env("FIRESHIFT_LOG", "debug")
            .output()
            .unwrap();
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(
            !all.contains(secret),
            "{uri}: the secret reached the output: {all}"
        );
        assert!(!all.contains("feature must be enabled"), "{uri}: {all}");
        if let Some(says) = says {
            assert!(all.contains(says), "{uri}: {all}");
        }
    }
}
