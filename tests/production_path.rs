//! The production path, on loopback: no `FIRESTORE_EMULATOR_HOST`, Firestore behind a
//! TLS front that checks bearer tokens (tests/common/google.rs), MongoDB behind a TLS
//! front, credentials found the way a deployment finds them — a service account key
//! file, gcloud's user credentials, the metadata server with short-lived tokens. Each
//! command lands exactly what the emulator path lands; every bad certificate or
//! credential ends with exit 1, the endpoint and the cause, no panic, no secret.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::google::{
    mongo_upstream, GoogleFront, Issuing, MongoTlsFront, Pki, ServiceAccount, TokenServers,
};
use common::{mongodb_uri, stderr, stdout, World};
use fireshift_demo as demo;

/// Variables that would let a run take another path than the one a test sets up.
const AMBIENT: &[&str] = &[
    "FIRESTORE_EMULATOR_HOST",
    "FIRESTORE_ENDPOINT",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GCE_METADATA_HOST",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "MONGODB_URI",
    "MONGODB_CA_FILE",
];

/// How a migrate with the mixillo mappings ends on the test server: every document
/// lands, the four text indexes are refused (exit 5, whichever path it takes).
const MIXILLO_EXIT: i32 = common::EXIT_INDEXES_NOT_ALL_BUILT;

fn mixillo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/mixillo")
        .to_string_lossy()
        .into_owned()
}

/// One test's production-like setup: its CA, the Firestore front, the MongoDB front,
/// and an empty HOME (so no gcloud credentials file is found by accident).
struct Prod {
    pki: Pki,
    front: GoogleFront,
    mongo: MongoTlsFront,
    home: tempfile::TempDir,
}

impl Prod {
    async fn start(front_delay: Duration) -> Self {
        common::init_env();
        let pki = Pki::new();
        let emulator = std::env::var("FIRESTORE_EMULATOR_HOST").unwrap();
        let names = ["127.0.0.1", "localhost"];
        let front = GoogleFront::start(&pki, &names, &emulator, front_delay).await;
        let mongo = MongoTlsFront::start(&pki, &names, mongo_upstream(&mongodb_uri())).await;
        Self {
            pki,
            front,
            mongo,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn ca(&self) -> String {
        self.pki.ca_file().to_string_lossy().into_owned()
    }

    /// A service account the front trusts, its key file written.
    fn trusted_key(&self, project: &str) -> (ServiceAccount, PathBuf) {
        let account = ServiceAccount::generate("migrator");
        let path = self.pki.dir().join("key.json");
        account.write_key_file(&path, project);
        self.front.tokens.trust(&account);
        (account, path)
    }

    /// The flags that point a command at both fronts (the MongoDB CA in the URI).
    fn endpoint_flags(&self) -> Vec<String> {
        vec![
            "--firestore-endpoint".into(),
            self.front.url(),
            "--firestore-ca-file".into(),
            self.ca(),
            "--mongodb-uri".into(),
            self.mongo.uri(&self.pki.ca_file()),
        ]
    }

    /// Runs the real binary with only the environment `env` adds to a clean one.
    async fn run(&self, args: &[String], env: &[(&str, String)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fireshift"));
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("FIRESHIFT_LOG", "warn");
        for v in AMBIENT {
            cmd.env_remove(v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        // The fronts run on this test's runtime: wait for the child off its threads.
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        eprintln!(
            "--- fireshift {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        out
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn migrate_args(world: &World, database: &str, extra: &[&str]) -> Vec<String> {
    let mut a = args(&[
        "migrate",
        "--project",
        &world.project,
        "--database",
        database,
    ]);
    a.extend(args(extra));
    a
}

/// Application Default Credentials pointed at the key file `key`.
fn key_env(key: &Path) -> [(&'static str, String); 1] {
    [(
        "GOOGLE_APPLICATION_CREDENTIALS",
        key.to_string_lossy().into_owned(),
    )]
}

/// Asserts the run stopped with exit 1 (not a panic's 101); returns its stderr.
fn failed(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

/// Asserts the output holds none of `secrets`, and no panic.
fn assert_clean(out: &Output, secrets: &[&str]) {
    let text = format!("{}{}", stdout(out), stderr(out));
    assert!(!text.contains("panicked"), "a panic: {text}");
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!text.contains(s), "a secret reached the output: {s}");
    }
}

/// The body lines of a PEM key: what must never be printed.
fn key_material(pem: &str) -> Vec<&str> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect()
}

/// Collections with a TTL index in the mixillo mappings: the server deletes their
/// expired documents at a time of its own, so two targets may differ there by
/// expired documents only.
fn ttl_collections() -> std::collections::BTreeSet<String> {
    let set = fireshift::mapping::MappingSet::load(Path::new(&mixillo())).unwrap();
    set.indexes()
        .into_iter()
        .filter(|i| i.expire_after_seconds.is_some())
        .map(|i| i.collection.clone())
        .collect()
}

/// Asserts database `b` holds what database `a` holds, byte for byte, collection by
/// collection (fireshift's own bookkeeping aside). Returns the documents compared.
async fn assert_same_landing(world: &World, b: &str) -> usize {
    let other = World {
        project: world.project.clone(),
        database: b.to_string(),
        db: world.db.client().database(b),
        firestore: world.firestore.clone(),
    };
    let (left, right) = (world.snapshot().await, other.snapshot().await);
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        right.keys().collect::<Vec<_>>(),
        "the same collections"
    );
    let ttl = ttl_collections();
    let mut compared = 0;
    for (name, docs) in &left {
        let theirs = &right[name];
        for (id, doc) in docs {
            match theirs.get(id) {
                Some(t) => {
                    assert_eq!(t.as_bytes(), doc.as_bytes(), "{name}/{id} differs");
                    compared += 1;
                }
                None => assert!(ttl.contains(name), "{name}/{id} missing from {b}"),
            }
        }
        for id in theirs.keys().filter(|id| !docs.contains_key(*id)) {
            assert!(ttl.contains(name), "{name}/{id} only in {b}");
        }
    }
    compared
}

/// The demo data set of `users` users in `world`, and the emulator-path migrate of it
/// with the mixillo mappings into `world.database`: the reference landing.
async fn reference_landing(world: &World, users: usize) {
    world.write_demo(users).await;
    let out = world.migrate(&["--mappings", &mixillo(), "--quiet"]);
    assert_eq!(out.status.code(), Some(MIXILLO_EXIT), "{}", stderr(&out));
}

#[tokio::test]
async fn a_service_account_key_migrates_verifies_and_plans_over_tls_as_the_emulator_path_does() {
    let world = World::new("prod-sa").await;
    reference_landing(&world, 12).await;
    let prod = Prod::start(Duration::ZERO).await;
    let (account, key) = prod.trusted_key(&world.project);
    let env = key_env(&key);
    let secrets = key_material(&account.private_pem);

    // migrate, with the mixillo mappings: the same documents, byte for byte.
    let tls_db = format!("{}_tls", world.database);
    let mut a = migrate_args(&world, &tls_db, &["--mappings", &mixillo(), "--quiet"]);
    a.extend(prod.endpoint_flags());
    let out = prod.run(&a, &env).await;
    assert_eq!(out.status.code(), Some(MIXILLO_EXIT), "{}", stderr(&out));
    assert_clean(&out, &secrets);
    let compared = assert_same_landing(&world, &tls_db).await;
    assert!(compared > 500, "only {compared} documents compared");
    let refused = prod.front.tokens.refused();
    assert!(refused.is_empty(), "calls refused: {refused:?}");
    // The only token used is a JWT the key signed (the front checked its signature).
    let accepted = prod.front.tokens.accepted();
    assert!(!accepted.is_empty() && accepted.iter().all(|t| t.matches('.').count() == 2));

    // verify, over TLS, of a default-mapping copy: parity, every document compared.
    let plain_db = format!("{}_plain", world.database);
    let mut a = migrate_args(&world, &plain_db, &["--quiet"]);
    a.extend(prod.endpoint_flags());
    assert_eq!(prod.run(&a, &env).await.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("report").to_string_lossy().into_owned();
    let mut v = args(&[
        "verify",
        "--project",
        &world.project,
        "--database",
        &plain_db,
        "--report",
        &prefix,
        "--recheck-delay",
        "0",
    ]);
    v.extend(prod.endpoint_flags());
    let out = prod.run(&v, &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_clean(&out, &secrets);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    let expected = demo::expected_count(12) as u64;
    assert_eq!(
        report["totals"]["source"].as_u64(),
        Some(expected),
        "{report}"
    );
    assert_eq!(report["totals"]["parity"], true);

    // plan: the same patterns, counts and skeleton mappings as through the emulator.
    let (emu_dir, tls_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plan = |dir: &Path| {
        args(&[
            "plan",
            "--project",
            &world.project,
            "--out",
            &dir.join("mappings").to_string_lossy(),
            "--report",
            &dir.join("plan").to_string_lossy(),
            "--full-scan",
        ])
    };
    let emu = world.fireshift(
        &["plan"],
        &plan(emu_dir.path())[1..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(emu.status.code(), Some(0), "{}", stderr(&emu));
    let mut p = plan(tls_dir.path());
    p.extend(args(&[
        "--firestore-endpoint",
        &prod.front.url(),
        "--firestore-ca-file",
        &prod.ca(),
    ]));
    let out = prod.run(&p, &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_clean(&out, &secrets);
    let read_plan = |dir: &Path| {
        let mut j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
        // Only when and where it ran may differ.
        for k in ["generated_at", "elapsed_secs"] {
            j.as_object_mut().unwrap().remove(k);
        }
        j["source"].as_object_mut().unwrap().remove("endpoint");
        j
    };
    assert_eq!(read_plan(tls_dir.path()), read_plan(emu_dir.path()));
    // The files say when plan wrote them (to the second): two runs may straddle one.
    let without_time = |dir: &Path| {
        dir_contents(dir)
            .into_iter()
            .map(|(name, bytes)| {
                let text = String::from_utf8(bytes).unwrap();
                let kept: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.contains("written by `fireshift plan` at"))
                    .collect();
                (name, kept.join("\n"))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        without_time(&tls_dir.path().join("mappings")),
        without_time(&emu_dir.path().join("mappings"))
    );
}

fn dir_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

#[tokio::test]
async fn metadata_server_tokens_are_renewed_during_a_migrate_that_outlives_them() {
    let world = World::new("prod-mds").await;
    reference_landing(&world, 8).await;
    // 12 s tokens, renewed by the auth library every 10 s; about 35 pages of 20
    // documents at ≥ 1.2 s a call keep the run going past three token lifetimes.
    let prod = Prod::start(Duration::from_millis(1200)).await;
    let lifetime = Duration::from_secs(12);
    let servers =
        TokenServers::start(prod.front.tokens.clone(), lifetime, Issuing::Valid, "").await;
    let env = [("GCE_METADATA_HOST", servers.addr.to_string())];
    let tls_db = format!("{}_tls", world.database);
    let mut a = migrate_args(
        &world,
        &tls_db,
        &["--mappings", &mixillo(), "--page-size", "20", "--quiet"],
    );
    a.extend(prod.endpoint_flags());
    let started = std::time::Instant::now();
    let out = prod.run(&a, &env).await;
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(MIXILLO_EXIT), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("retrying"),
        "the job noticed a token change: {}",
        stderr(&out)
    );
    assert!(
        took > lifetime * 3,
        "the run took {took:?}: too short to outlive 3 tokens"
    );
    let refused = prod.front.tokens.refused();
    assert!(refused.is_empty(), "calls refused: {refused:?}");
    let accepted = prod.front.tokens.accepted();
    assert!(
        accepted.len() >= 3 && accepted.iter().all(|t| t.starts_with("mds-")),
        "tokens used: {accepted:?}"
    );
    assert!(servers.count("metadata") >= 3);
    assert_clean(
        &out,
        &accepted.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(assert_same_landing(&world, &tls_db).await > 300);
}

#[tokio::test]
async fn gcloud_user_credentials_and_ssl_cert_file_reach_firestore_and_a_ca_flag_reaches_mongodb() {
    let world = World::new("prod-user").await;
    world.write_demo(3).await;
    let prod = Prod::start(Duration::ZERO).await;
    let refresh = "1//refresh-token-d0n0tprint";
    let servers = TokenServers::start(
        prod.front.tokens.clone(),
        Duration::from_secs(3600),
        Issuing::Valid,
        refresh,
    )
    .await;
    servers.write_user_credentials(prod.home.path(), refresh);
    let mut a = migrate_args(&world, &world.database, &["--quiet"]);
    // The CA through SSL_CERT_FILE (which replaces the system roots) for Firestore,
    // and through --mongodb-ca-file (not the URI) for MongoDB.
    a.extend(args(&[
        "--firestore-endpoint",
        &prod.front.url(),
        "--mongodb-uri",
        &format!("mongodb://{}/?directConnection=true", prod.mongo.addr),
        "--mongodb-ca-file",
        &prod.ca(),
    ]));
    let out = prod.run(&a, &[("SSL_CERT_FILE", prod.ca())]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_clean(&out, &[refresh, "test-client-secret-d0n0tprint"]);
    assert!(servers.count("oauth") >= 1);
    assert!(prod
        .front
        .tokens
        .accepted()
        .iter()
        .all(|t| t.starts_with("user-")));
    common::assert_target_is_exact(&world, 3).await;
}

#[tokio::test]
async fn the_dual_store_writes_through_the_tls_fronts() {
    use mongodb::bson::doc;
    let world = World::new("prod-dual").await;
    let prod = Prod::start(Duration::ZERO).await;
    let (account, key) = prod.trusted_key(&world.project);
    let mut cmd = tokio::process::Command::new(common::example_binary("dual_api"));
    cmd.args([
        "--project",
        &world.project,
        "--database",
        &world.database,
        "--firestore-endpoint",
        &prod.front.url(),
        "--firestore-ca-file",
        &prod.ca(),
        "--mongodb-uri",
        &format!(
            "mongodb://{}/?directConnection=true&tls=true",
            prod.mongo.addr
        ),
        "--mongodb-ca-file",
        &prod.ca(),
        "--default-mode",
        "dual_read_firestore",
        "--listen",
        "127.0.0.1:0",
    ])
    .env("HOME", prod.home.path())
    .env("FIRESHIFT_LOG", "warn");
    for v in AMBIENT {
        cmd.env_remove(v);
    }
    cmd.env("GOOGLE_APPLICATION_CREDENTIALS", &key);
    let (mut child, addr) = common::start_example_api(cmd).await;
    let (status, body) = common::http(
        &addr,
        "POST",
        "/api/users",
        r#"{"id": "ann", "name": "Ann"}"#,
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, body) = common::http(&addr, "GET", "/api/users/ann", "")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"Ann\""), "{body}");
    child.kill().await.unwrap();
    // Landed in both: Firestore (read directly from the emulator) and MongoDB.
    let names = common::firestore_names(&world, "users").await;
    assert_eq!(names, vec![world.full_name("users/ann")]);
    let mongo = world
        .db
        .collection::<mongodb::bson::Document>("users")
        .find_one(doc! {"_id": "ann"})
        .await
        .unwrap()
        .expect("the user reached MongoDB through the TLS front");
    assert_eq!(mongo.get_str("name").unwrap(), "Ann");
    let refused = prod.front.tokens.refused();
    assert!(refused.is_empty(), "calls refused: {refused:?}");
    let _ = account;
}

// ----- failures: exit 1, the endpoint and the cause, no panic, no secret -------------------

#[tokio::test]
async fn without_credentials_the_binary_says_what_it_tried_and_how_to_fix_it() {
    let world = World::new("prod-nocreds").await;
    let prod = Prod::start(Duration::ZERO).await;
    let closed = common::free_port();
    let mut a = migrate_args(&world, &world.database, &["--retry-timeout", "1"]);
    a.extend(prod.endpoint_flags());
    let out = prod
        .run(&a, &[("GCE_METADATA_HOST", format!("127.0.0.1:{closed}"))])
        .await;
    let err = failed(&out);
    assert_clean(&out, &[]);
    for needle in [
        "no Google credentials found",
        "GOOGLE_APPLICATION_CREDENTIALS (not set)",
        "application_default_credentials.json (no such file)",
        &format!("metadata server at 127.0.0.1:{closed}"),
        "gcloud auth application-default login",
        &prod.front.url(),
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    assert_eq!(
        prod.front
            .tokens
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn the_default_endpoint_without_credentials_exits_1_not_101() {
    // What a new user runs first: no emulator, no flags, no credentials.
    let prod = Prod::start(Duration::ZERO).await;
    let out = prod
        .run(
            &args(&[
                "migrate",
                "--project",
                "p",
                "--database",
                "d",
                "--mongodb-uri",
                "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
                "--retry-timeout",
                "1",
            ]),
            &[(
                "GCE_METADATA_HOST",
                format!("127.0.0.1:{}", common::free_port()),
            )],
        )
        .await;
    let err = failed(&out);
    assert!(
        err.contains("https://firestore.googleapis.com")
            && err.contains("no Google credentials found"),
        "{err}"
    );
    assert_clean(&out, &[]);
}

#[tokio::test]
async fn a_key_the_server_does_not_know_is_refused_with_the_endpoint_and_the_source() {
    let world = World::new("prod-badkey").await;
    world.write_demo(1).await;
    let prod = Prod::start(Duration::ZERO).await;
    // A well-formed key the front was never told about.
    let stranger = ServiceAccount::generate("stranger");
    let key = prod.pki.dir().join("stranger.json");
    stranger.write_key_file(&key, &world.project);
    let mut a = migrate_args(&world, &world.database, &["--retry-timeout", "60"]);
    a.extend(prod.endpoint_flags());
    let out = prod.run(&a, &key_env(&key)).await;
    let err = failed(&out);
    assert!(err.contains(&prod.front.url()), "{err}");
    assert!(
        err.contains("Unauthenticated") && err.contains("unknown service account key"),
        "{err}"
    );
    assert!(
        err.contains("service_account credentials from GOOGLE_APPLICATION_CREDENTIALS"),
        "{err}"
    );
    assert!(
        !err.contains("retrying"),
        "a refused credential is not retried: {err}"
    );
    assert_clean(&out, &key_material(&stranger.private_pem));
}

#[tokio::test]
async fn a_refused_refresh_token_stops_before_any_work() {
    let world = World::new("prod-badrefresh").await;
    let prod = Prod::start(Duration::ZERO).await;
    let servers = TokenServers::start(
        prod.front.tokens.clone(),
        Duration::from_secs(3600),
        Issuing::Valid,
        "the-good-one",
    )
    .await;
    let revoked = "1//revoked-refresh-token-d0n0tprint";
    servers.write_user_credentials(prod.home.path(), revoked);
    let mut a = migrate_args(&world, &world.database, &[]);
    a.extend(prod.endpoint_flags());
    let out = prod.run(&a, &[]).await;
    let err = failed(&out);
    assert!(
        err.contains(&prod.front.url()) && err.contains("could not produce a token"),
        "{err}"
    );
    assert!(err.contains("authorized_user credentials from"), "{err}");
    assert_clean(&out, &[revoked, "test-client-secret-d0n0tprint"]);
    assert_eq!(
        prod.front
            .tokens
            .calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn an_expired_token_the_server_rejects_is_a_clear_error() {
    let world = World::new("prod-expired").await;
    world.write_demo(1).await;
    let prod = Prod::start(Duration::ZERO).await;
    let servers = TokenServers::start(
        prod.front.tokens.clone(),
        Duration::from_secs(3600),
        Issuing::AlreadyExpired,
        "",
    )
    .await;
    let mut a = migrate_args(&world, &world.database, &["--retry-timeout", "60"]);
    a.extend(prod.endpoint_flags());
    let out = prod
        .run(&a, &[("GCE_METADATA_HOST", servers.addr.to_string())])
        .await;
    let err = failed(&out);
    assert!(
        err.contains(&prod.front.url()) && err.contains("access token expired"),
        "{err}"
    );
    assert!(err.contains("the metadata server at"), "{err}");
    assert_clean(&out, &[]);
}

#[tokio::test]
async fn an_untrusted_or_misnamed_firestore_certificate_is_refused_at_once() {
    let world = World::new("prod-fscert").await;
    let prod = Prod::start(Duration::ZERO).await;
    let (_, key) = prod.trusted_key(&world.project);
    let env = key_env(&key);
    let mongo = prod.mongo.uri(&prod.pki.ca_file());
    // No CA given: the system roots do not know the test's CA.
    let untrusted = migrate_args(
        &world,
        &world.database,
        &[
            "--firestore-endpoint",
            &prod.front.url(),
            "--mongodb-uri",
            &mongo,
        ],
    );
    let out = prod.run(&untrusted, &env).await;
    let err = failed(&out);
    assert!(
        err.contains(&prod.front.url()) && err.contains("does not trust"),
        "{err}"
    );
    assert_clean(&out, &[]);
    // A certificate for another name.
    let emulator = std::env::var("FIRESTORE_EMULATOR_HOST").unwrap();
    let other =
        GoogleFront::start(&prod.pki, &["firestore.invalid"], &emulator, Duration::ZERO).await;
    let misnamed = migrate_args(
        &world,
        &world.database,
        &[
            "--firestore-endpoint",
            &other.url(),
            "--firestore-ca-file",
            &prod.ca(),
            "--mongodb-uri",
            &mongo,
        ],
    );
    let out = prod.run(&misnamed, &env).await;
    let err = failed(&out);
    assert!(
        err.contains(&other.url()) && err.contains("not valid for that host name"),
        "{err}"
    );
    assert_clean(&out, &[]);
}

#[tokio::test]
async fn an_untrusted_or_misnamed_mongodb_certificate_is_refused_without_retrying() {
    let world = World::new("prod-mcert").await;
    world.write_demo(1).await;
    let prod = Prod::start(Duration::ZERO).await;
    let (_, key) = prod.trusted_key(&world.project);
    let env = key_env(&key);
    let other = MongoTlsFront::start(
        &prod.pki,
        &["mongo.invalid"],
        mongo_upstream(&mongodb_uri()),
    )
    .await;
    for uri in [
        format!(
            "mongodb://u:hunter2@{}/?directConnection=true&tls=true",
            prod.mongo.addr
        ),
        other
            .uri(&prod.pki.ca_file())
            .replace("mongodb://", "mongodb://u:hunter2@"),
    ] {
        let a = migrate_args(
            &world,
            &world.database,
            &[
                "--firestore-endpoint",
                &prod.front.url(),
                "--firestore-ca-file",
                &prod.ca(),
                "--mongodb-uri",
                &uri,
                "--retry-timeout",
                "120",
            ],
        );
        let out = prod.run(&a, &env).await;
        let err = failed(&out);
        assert!(
            err.contains("MongoDB") && err.contains("certificate was refused"),
            "{err}"
        );
        assert!(
            !err.contains("retrying"),
            "a refused certificate is not retried: {err}"
        );
        assert_clean(&out, &["hunter2"]);
    }
}
