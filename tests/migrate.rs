//! End-to-end: the real `fireshift` binary migrates data from the Firestore emulator into
//! the MongoDB-wire server, and the tests read back what actually landed.

mod common;

use common::{assert_same_target, doc_at, expected_target, stderr, stdout, World};
use fireshift_demo as demo;
use gcloud_sdk::google::firestore::v1::{value::ValueType, ArrayValue, MapValue, Value};
use gcloud_sdk::google::r#type::LatLng;
use gcloud_sdk::prost_types::Timestamp;
use mongodb::bson::{doc, spec::BinarySubtype, Binary, Bson, DateTime};

fn v(t: ValueType) -> Value {
    Value {
        value_type: Some(t),
    }
}

#[tokio::test]
async fn every_demo_document_lands_equal_to_its_expected_conversion() {
    let world = World::new("e2e-demo").await;
    let users = 15;
    let written = world.write_demo(users).await;
    assert_eq!(written, demo::expected_count(users));

    let out = world.migrate(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "migrate failed: {}",
        stderr(&out)
    );

    let expected = expected_target(
        &world,
        demo::generate(users, &world.project, common::DB_ID, demo::FIXED_NOW),
    );
    let actual = world.snapshot().await;
    let compared = assert_same_target(&expected, &actual, "the expected conversion");
    assert_eq!(compared, demo::expected_count(users));
    // The summary the operator sees agrees with what landed.
    let s = stdout(&out);
    let total = s
        .lines()
        .find(|l| l.starts_with("total"))
        .expect("summary total line");
    let nums: Vec<u64> = total
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums, vec![compared as u64, compared as u64, 0], "{total}");
}

#[tokio::test]
async fn second_run_changes_nothing_and_duplicates_nothing() {
    let world = World::new("e2e-rerun").await;
    world.write_demo(3).await;
    assert_eq!(world.migrate(&["--batch-size", "7"]).status.code(), Some(0));
    let first = world.snapshot().await;
    assert!(first.values().map(|c| c.len()).sum::<usize>() >= demo::expected_count(3));
    // A full replay over the landed data (--restart forgets the checkpoints), with
    // different batching and ranges: replays must be harmless whatever the grouping.
    let replay = world.migrate(&[
        "--restart",
        "--batch-size",
        "1000",
        "--in-flight",
        "1",
        "--ranges",
        "3",
        "--parallel",
        "2",
    ]);
    assert_eq!(replay.status.code(), Some(0), "{}", stderr(&replay));
    let replayed = stdout(&replay);
    let total = replayed
        .lines()
        .find(|l| l.starts_with("total"))
        .expect("summary");
    assert!(
        total.contains(&demo::expected_count(3).to_string()),
        "the replay read everything again: {total}"
    );
    // A plain rerun of a finished job resumes: nothing left to read, nothing written.
    let rerun = world.migrate(&[]);
    assert_eq!(rerun.status.code(), Some(0), "{}", stderr(&rerun));
    assert!(
        stdout(&rerun).contains("already copied"),
        "{}",
        stdout(&rerun)
    );
    let second = world.snapshot().await;
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (c, docs) in &first {
        assert_eq!(docs.len(), second[c].len(), "{c}: document count changed");
        for (id, d) in docs {
            assert_eq!(
                d.as_bytes(),
                second[c][id].as_bytes(),
                "{c}/{id} changed on rerun"
            );
        }
    }
}

#[tokio::test]
async fn finds_subcollections_at_depth_three_and_under_missing_parents() {
    let world = World::new("e2e-depth").await;
    let n = |i| v(ValueType::IntegerValue(i));
    world
        .write(
            vec![
                doc_at("content/c1", vec![("n", n(1))]),
                doc_at(
                    "content/c1/comments/k1/replies/r1/reactions/x1",
                    vec![("n", n(4))],
                ),
                // None of these parents exist.
                doc_at("ghosts/g1/items/i1", vec![("n", n(2))]),
                doc_at("content/c2/comments/k2/replies/r2", vec![("n", n(3))]),
            ]
            .into_iter(),
        )
        .await;
    let out = world.migrate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let deep = world.raw_docs("content.comments.replies.reactions").await;
    let d = deep["content/c1/comments/k1/replies/r1/reactions/x1"]
        .to_document()
        .unwrap();
    assert_eq!(
        d,
        doc! { "_id": "content/c1/comments/k1/replies/r1/reactions/x1", "_parent": "content/c1/comments/k1/replies/r1", "n": 4i64 }
    );
    let ghost = world.raw_docs("ghosts.items").await;
    assert_eq!(
        ghost["ghosts/g1/items/i1"].to_document().unwrap(),
        doc! { "_id": "ghosts/g1/items/i1", "_parent": "g1", "n": 2i64 }
    );
    let replies = world.raw_docs("content.comments.replies").await;
    assert_eq!(replies.len(), 1);
    assert!(replies.contains_key("content/c2/comments/k2/replies/r2"));
    // The missing parents themselves are not invented.
    assert!(world.raw_docs("ghosts").await.is_empty());
    assert_eq!(world.raw_docs("content").await.len(), 1);
}

#[tokio::test]
async fn edge_values_land_exactly_as_the_type_table_says() {
    let world = World::new("e2e-edge").await;
    let ts = |seconds, nanos| v(ValueType::TimestampValue(Timestamp { seconds, nanos }));
    let geo = |latitude, longitude| {
        v(ValueType::GeoPointValue(LatLng {
            latitude,
            longitude,
        }))
    };
    let map = |pairs: Vec<(&str, Value)>| {
        v(ValueType::MapValue(MapValue {
            fields: common::fields(pairs),
        }))
    };
    let arr = |values| v(ValueType::ArrayValue(ArrayValue { values }));
    let reference = |p: &str| v(ValueType::ReferenceValue(world.full_name(p)));
    let mut nested = v(ValueType::StringValue("bottom".into()));
    // Firestore allows 20 levels of maps and arrays: 10 × (map + array).
    for _ in 0..10 {
        nested = map(vec![("k", arr(vec![nested]))]);
    }
    world
        .write(std::iter::once(doc_at(
            "edge/e1",
            vec![
                ("nan", v(ValueType::DoubleValue(f64::NAN))),
                ("inf", v(ValueType::DoubleValue(f64::INFINITY))),
                ("ninf", v(ValueType::DoubleValue(f64::NEG_INFINITY))),
                ("negzero", v(ValueType::DoubleValue(-0.0))),
                ("imin", v(ValueType::IntegerValue(i64::MIN))),
                ("imax", v(ValueType::IntegerValue(i64::MAX))),
                ("year1", ts(-62_135_596_800, 0)),
                ("year9999", ts(253_402_300_799, 999_999_000)),
                ("moon", ts(-14_182_940, 123_456_000)),
                ("bytes", v(ValueType::BytesValue(vec![0, 1, 254, 255]))),
                ("nobytes", v(ValueType::BytesValue(vec![]))),
                (
                    "places",
                    arr(vec![geo(48.8566, 2.3522), geo(-33.86, 151.21)]),
                ),
                ("refRoot", reference("users/u1")),
                ("refSub", reference("content/c1/comments/k1")),
                ("refDangling", reference("users/nobody-here")),
                ("emptyMap", map(vec![])),
                ("emptyArray", arr(vec![])),
                ("deep", nested),
                ("a.b", v(ValueType::BooleanValue(true))),
                ("$dollar", map(vec![("$in", v(ValueType::IntegerValue(1)))])),
                // Regression: a replacement document may not hold `$`; the sink must
                // fall back to `$replaceWith: {$literal}` instead of refusing it.
                ("$", v(ValueType::IntegerValue(7))),
                ("with space", v(ValueType::NullValue(0))),
                ("naïve ключ 🔥", v(ValueType::StringValue("ünïcödé".into()))),
                (
                    "vec",
                    map(vec![
                        ("__type__", v(ValueType::StringValue("__vector__".into()))),
                        (
                            "value",
                            arr(vec![
                                v(ValueType::DoubleValue(0.25)),
                                v(ValueType::DoubleValue(-1.5)),
                            ]),
                        ),
                    ]),
                ),
            ],
        )))
        .await;
    let out = world.migrate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = world.raw_docs("edge").await["e1"].to_document().unwrap();

    let nan = got.get_f64("nan").unwrap();
    assert!(nan.is_nan());
    let nz = got.get_f64("negzero").unwrap();
    assert!(
        nz == 0.0 && nz.is_sign_negative(),
        "-0.0 lost its sign: {nz}"
    );
    assert_eq!(got.get_f64("inf").unwrap(), f64::INFINITY);
    assert_eq!(got.get_f64("ninf").unwrap(), f64::NEG_INFINITY);
    assert_eq!(got.get("imin"), Some(&Bson::Int64(i64::MIN)));
    assert_eq!(got.get("imax"), Some(&Bson::Int64(i64::MAX)));
    assert_eq!(
        got.get("year1"),
        Some(&Bson::DateTime(DateTime::from_millis(-62_135_596_800_000)))
    );
    assert_eq!(
        got.get("year9999"),
        Some(&Bson::DateTime(DateTime::from_millis(253_402_300_799_999)))
    );
    assert_eq!(
        got.get("moon"),
        Some(&Bson::DateTime(DateTime::from_millis(-14_182_939_877)))
    );
    assert_eq!(
        got.get("bytes"),
        Some(&Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![0, 1, 254, 255]
        }))
    );
    assert_eq!(
        got.get("nobytes"),
        Some(&Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![]
        }))
    );
    assert_eq!(
        got.get_array("places").unwrap(),
        &vec![
            Bson::Document(doc! { "type": "Point", "coordinates": [2.3522, 48.8566] }),
            Bson::Document(doc! { "type": "Point", "coordinates": [151.21, -33.86] }),
        ]
    );
    assert_eq!(got.get_str("refRoot").unwrap(), "u1");
    assert_eq!(got.get_str("refSub").unwrap(), "content/c1/comments/k1");
    assert_eq!(got.get_str("refDangling").unwrap(), "nobody-here");
    assert_eq!(got.get_document("emptyMap").unwrap(), &doc! {});
    assert!(got.get_array("emptyArray").unwrap().is_empty());
    let mut deep = got.get("deep").unwrap();
    for _ in 0..10 {
        deep = &deep.as_document().unwrap().get_array("k").unwrap()[0];
    }
    assert_eq!(deep, &Bson::String("bottom".into()));
    assert_eq!(got.get("a.b"), Some(&Bson::Boolean(true)));
    assert_eq!(got.get_document("$dollar").unwrap(), &doc! { "$in": 1i64 });
    assert_eq!(got.get("$"), Some(&Bson::Int64(7)));
    assert_eq!(got.get("with space"), Some(&Bson::Null));
    assert_eq!(got.get_str("naïve ключ 🔥").unwrap(), "ünïcödé");
    assert_eq!(
        got.get_array("vec").unwrap(),
        &vec![Bson::Double(0.25), Bson::Double(-1.5)]
    );
}

#[tokio::test]
async fn unconvertible_document_is_dead_lettered_with_its_reason_and_exit_is_non_zero() {
    let world = World::new("e2e-dead").await;
    world
        .write(
            vec![
                doc_at(
                    "users/good",
                    vec![("name", v(ValueType::StringValue("ok".into())))],
                ),
                // `_id` would overwrite the target identity: refused, never silently lost.
                // It holds every kind of value, to read its raw form back below.
                doc_at(
                    "users/bad",
                    vec![
                        ("_id", v(ValueType::StringValue("other".into()))),
                        ("nothing", v(ValueType::NullValue(0))),
                        ("yes", v(ValueType::BooleanValue(true))),
                        ("big", v(ValueType::IntegerValue(i64::MIN))),
                        ("half", v(ValueType::DoubleValue(0.5))),
                        ("nan", v(ValueType::DoubleValue(f64::NAN))),
                        ("inf", v(ValueType::DoubleValue(f64::INFINITY))),
                        ("ninf", v(ValueType::DoubleValue(f64::NEG_INFINITY))),
                        (
                            "at",
                            v(ValueType::TimestampValue(Timestamp {
                                seconds: 1_700_000_000,
                                nanos: 123_456_000,
                            })),
                        ),
                        ("bytes", v(ValueType::BytesValue(vec![0, 255, 1]))),
                        (
                            "ref",
                            v(ValueType::ReferenceValue(world.full_name("users/good"))),
                        ),
                        (
                            "geo",
                            v(ValueType::GeoPointValue(LatLng {
                                latitude: 1.5,
                                longitude: -2.25,
                            })),
                        ),
                        (
                            "list",
                            v(ValueType::ArrayValue(ArrayValue {
                                values: vec![
                                    v(ValueType::IntegerValue(1)),
                                    v(ValueType::StringValue("two".into())),
                                ],
                            })),
                        ),
                        (
                            "map",
                            v(ValueType::MapValue(MapValue {
                                fields: [("k".to_string(), v(ValueType::BooleanValue(false)))]
                                    .into(),
                            })),
                        ),
                        ("empty", v(ValueType::MapValue(MapValue::default()))),
                    ],
                ),
                doc_at(
                    "users/bad2",
                    vec![("_id", v(ValueType::StringValue("other2".into())))],
                ),
                doc_at(
                    "users/bad3",
                    vec![("_id", v(ValueType::StringValue("other3".into())))],
                ),
            ]
            .into_iter(),
        )
        .await;
    let out = world.migrate(&[]);
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_DEAD_LETTERS),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("3 documents dead-lettered"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("users/bad"),
        "the log names the document: {}",
        stderr(&out)
    );
    let users = world.raw_docs("users").await;
    assert_eq!(users.keys().collect::<Vec<_>>(), vec!["good"]);
    let dead = world.raw_docs("_fireshift_dead_letters").await;
    assert_eq!(dead.len(), 3);
    let dl = dead[&world.full_name("users/bad")].to_document().unwrap();
    assert_eq!(dl.get_str("collection").unwrap(), "users");
    assert_eq!(dl.get_str("rule").unwrap(), "identity");
    assert_eq!(dl.get_str("field").unwrap(), "_id");
    assert!(dl.get_str("reason").unwrap().contains("clashes"));
    // The raw document, as Firestore's REST API writes it (it used to be Rust debug
    // text): every kind of value in its typed form, the times in RFC 3339.
    let raw = dl.get_document("raw").unwrap();
    assert_eq!(raw.get_str("name").unwrap(), world.full_name("users/bad"));
    assert_eq!(
        raw.get_document("fields").unwrap(),
        &doc! {
            "_id": { "stringValue": "other" },
            "nothing": { "nullValue": null },
            "yes": { "booleanValue": true },
            "big": { "integerValue": "-9223372036854775808" },
            "half": { "doubleValue": 0.5 },
            "nan": { "doubleValue": "NaN" },
            "inf": { "doubleValue": "Infinity" },
            "ninf": { "doubleValue": "-Infinity" },
            "at": { "timestampValue": "2023-11-14T22:13:20.123456Z" },
            "bytes": { "bytesValue": "AP8B" },
            "ref": { "referenceValue": world.full_name("users/good") },
            "geo": { "geoPointValue": { "latitude": 1.5, "longitude": -2.25 } },
            "list": { "arrayValue": { "values": [ { "integerValue": "1" }, { "stringValue": "two" } ] } },
            "map": { "mapValue": { "fields": { "k": { "booleanValue": false } } } },
            "empty": { "mapValue": {} },
        }
    );
    for time in ["createTime", "updateTime"] {
        let t = raw.get_str(time).unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
            "{time}: {t}"
        );
    }
    assert!(dl.get("rawText").is_none(), "{dl}");

    // The identical rerun has nothing left to copy, and still reports the job's dead
    // letters with their exit code (it used to exit 0).
    let again = world.migrate(&[]);
    assert_eq!(
        again.status.code(),
        Some(common::EXIT_DEAD_LETTERS),
        "{}",
        stderr(&again)
    );
    assert!(
        stdout(&again).contains("3 dead-lettered documents from earlier runs"),
        "{}",
        stdout(&again)
    );

    // One document is fixed at the source, one deleted, one left as it was:
    // --retry-dead-letters copies the fixed one and forgets the deleted one.
    world
        .write(
            vec![doc_at(
                "users/bad",
                vec![("name", v(ValueType::StringValue("fixed".into())))],
            )]
            .into_iter(),
        )
        .await;
    world.delete("users/bad2").await;
    let retried = world.migrate(&["--retry-dead-letters"]);
    assert_eq!(
        retried.status.code(),
        Some(common::EXIT_DEAD_LETTERS),
        "one is still dead: {}",
        stderr(&retried)
    );
    assert!(
        stdout(&retried).contains("1 landed, 1 deleted from the source since, 1 still dead"),
        "{}",
        stdout(&retried)
    );
    let users = world.raw_docs("users").await;
    assert_eq!(users.keys().collect::<Vec<_>>(), vec!["bad", "good"]);
    assert_eq!(
        users["bad"].to_document().unwrap().get_str("name").unwrap(),
        "fixed"
    );
    let dead = world.raw_docs("_fireshift_dead_letters").await;
    assert_eq!(
        dead.keys().cloned().collect::<Vec<_>>(),
        vec![world.full_name("users/bad3")]
    );
    // The last one fixed too: the job is clean, exit 0.
    world
        .write(
            vec![doc_at(
                "users/bad3",
                vec![("name", v(ValueType::StringValue("fixed too".into())))],
            )]
            .into_iter(),
        )
        .await;
    let clean = world.migrate(&["--retry-dead-letters"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(world.raw_docs("_fireshift_dead_letters").await.is_empty());
    assert_eq!(
        world.raw_docs("users").await["bad3"]
            .to_document()
            .unwrap()
            .get_str("name")
            .unwrap(),
        "fixed too"
    );
}

#[tokio::test]
async fn unreachable_firestore_is_a_clear_error() {
    let world = World::new("e2e-nofs").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fireshift"))
        .args([
            "migrate",
            "--project",
            &world.project,
            "--database",
            &world.database,
            "--retry-timeout",
            "2",
        ])
        .env("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Firestore") && err.contains("127.0.0.1:9"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_mongodb_is_a_clear_error_without_leaking_the_password() {
    let world = World::new("e2e-nomongo").await;
    world
        .write(std::iter::once(doc_at("users/u1", vec![])))
        .await;
    let out = world.migrate(&[
        "--mongodb-uri",
        "mongodb://fire:hunter2@127.0.0.1:9/?directConnection=true",
        "--retry-timeout",
        "1",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("MongoDB") && err.contains("127.0.0.1:9"),
        "{err}"
    );
    assert!(err.contains("fire:***@"), "redacted form shown: {err}");
    assert!(
        !err.contains("hunter2") && !stdout(&out).contains("hunter2"),
        "password leaked: {err}"
    );
}

#[tokio::test]
async fn wrong_project_is_a_clear_error() {
    let world = World::new("e2e-empty").await;
    let summary = tempfile::NamedTempFile::new().unwrap();
    let out = world.migrate(&["--summary-json", summary.path().to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // A run that stopped before any copy still reports how it ended.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.path()).unwrap()).unwrap();
    assert_eq!(json["outcome"], "empty_source", "{json}");
    assert_eq!(json["exit_code"].as_i64(), Some(1), "{json}");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("no documents found"),
        "{json}"
    );
    assert_eq!(json["read"].as_u64(), Some(0), "{json}");
    assert!(
        err.contains("no documents found")
            && err.contains(&world.project)
            && err.contains("--project"),
        "{err}"
    );
    // Nothing is kept that would make the identical rerun take the empty copy for
    // done (it used to exit 0: "ranges already copied").
    assert!(
        common::range_checkpoints(&world.db).await.is_empty(),
        "no checkpoint left behind"
    );
    let again = world.migrate(&[]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).contains("no documents found"));
    // An operator who means it can say so.
    assert_eq!(world.migrate(&["--allow-empty"]).status.code(), Some(0));
}

#[tokio::test]
async fn fireshifts_own_source_collections_are_neither_migrated_nor_verified() {
    let world = World::new("e2e-own").await;
    let users = 2;
    world.write_demo(users).await;
    // What the dual-write library keeps in Firestore while an API runs in dual mode
    // (its outbox), including a subcollection under it.
    let own = [
        doc_at(
            "_fireshift_outbox/e1",
            vec![("op", v(ValueType::StringValue("set".into())))],
        ),
        doc_at("_fireshift_outbox/e1/notes/n1", vec![]),
    ];
    world.write(own.into_iter()).await;
    let out = world.migrate(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let landed = world.db.list_collection_names().await.unwrap();
    assert!(
        landed.iter().all(|c| !c.starts_with("_fireshift_outbox")),
        "the outbox was migrated: {landed:?}"
    );
    assert!(
        !stdout(&out).contains("_fireshift_outbox"),
        "{}",
        stdout(&out)
    );
    let total = demo::expected_count(users);
    assert_eq!(
        world
            .snapshot()
            .await
            .values()
            .map(|d| d.len())
            .sum::<usize>(),
        total
    );
    // Verify does not count them as source documents missing from the target.
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = common::verify(&world, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = report.expect("verify wrote its JSON report");
    assert_eq!(report["totals"]["source"], total as u64, "{report:#}");
    assert_eq!(report["totals"]["missing"], 0, "{report:#}");
}
