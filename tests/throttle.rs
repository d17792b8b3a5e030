//! `--max-writes-per-second`, measured where it matters: the documents the MongoDB
//! server holds over time (not fireshift's own counters). Over every 5 s window the
//! rate stays within 10% above the limit, and the data still lands exactly.

mod common;

use std::time::{Duration, Instant};

use common::{assert_target_is_exact, stderr, World};

/// Documents in the world's database now (every collection but fireshift's own).
async fn landed(world: &World) -> u64 {
    let mut n = 0;
    for name in world.db.list_collection_names().await.unwrap() {
        if name.starts_with("_fireshift") {
            continue;
        }
        n += world
            .db
            .collection::<mongodb::bson::Document>(&name)
            .estimated_document_count()
            .await
            .unwrap();
    }
    n
}

#[tokio::test]
async fn writes_stay_under_the_limit_in_every_5_second_window() {
    let world = World::new("throttle-writes").await;
    let users = 150;
    world.write_demo(users).await;
    let total = fireshift_demo::expected_count(users) as u64;
    let limit = 1000.0;
    let run = {
        let world_args = [
            "migrate".to_string(),
            "--project".into(),
            world.project.clone(),
            "--database".into(),
            world.database.clone(),
            "--mongodb-uri".into(),
            common::mongodb_uri(),
            "--max-writes-per-second".into(),
            limit.to_string(),
            "--quiet".into(),
        ];
        std::process::Command::new(env!("CARGO_BIN_EXE_fireshift"))
            .args(world_args)
            .env("FIRESHIFT_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let mut child = run;
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the run took over 120 s");
        samples.push((Instant::now(), landed(&world).await));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("limited to 1,000 writes/s"),
        "the run says its limit: {}",
        stderr(&out)
    );
    samples.push((Instant::now(), landed(&world).await));
    assert_eq!(samples.last().unwrap().1, total);
    // Every window of at least 5 s between two samples.
    let mut windows = 0;
    for (i, (t0, c0)) in samples.iter().enumerate() {
        let Some((t1, c1)) = samples[i..]
            .iter()
            .find(|(t, _)| t.duration_since(*t0) >= Duration::from_secs(5))
        else {
            break;
        };
        windows += 1;
        let rate = (c1 - c0) as f64 / t1.duration_since(*t0).as_secs_f64();
        assert!(
            rate <= limit * 1.10,
            "{rate:.0} docs/s over the window from sample {i}: the limit is {limit}"
        );
    }
    assert!(windows > 0, "the run lasted at least 5 s at the limit");
    assert_target_is_exact(&world, users).await;
}
