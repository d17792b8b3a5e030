//! The target is protected, through the real binary: after a plain copy, switching to
//! the seed app's mappings with `--restart` is refused while the first copy's documents
//! are there (naming the collections), `--drop-target` drops exactly the collections
//! the job writes (an app's own collection survives) and the copy then holds each user
//! once; `--allow-existing` writes into them.

mod common;

use std::path::Path;

use common::{stderr, stdout, World, EXIT_INDEXES_NOT_ALL_BUILT};
use mongodb::bson::{doc, Document};

const USERS: usize = 12;

fn mixillo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mappings/mixillo")
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn a_new_job_refuses_an_occupied_target_and_drop_target_drops_exactly_its_collections() {
    let world = World::new("target").await;
    world.write_demo(USERS).await;
    // An app's own collection in the same database: never the job's to refuse or drop.
    world
        .db
        .collection::<Document>("app_only_logins")
        .insert_one(doc! { "_id": "s1", "user": "u1" })
        .await
        .unwrap();

    let plain = world.migrate(&["--quiet"]);
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    assert_eq!(world.raw_docs("users").await.len(), USERS);

    // The mappings change the identities: a restart would copy every user a second time.
    let mappings = mixillo();
    let restart = world.migrate(&["--quiet", "--mappings", &mappings, "--restart"]);
    let err = stderr(&restart);
    assert_eq!(restart.status.code(), Some(1), "{err}");
    assert!(
        err.contains("already holds documents")
            && err.contains(" collections, ")
            && err.contains("follows ("),
        "names the occupied collections: {err}"
    );
    assert!(err.contains("--drop-target"), "offers the way out: {err}");
    assert!(
        !err.contains("rerun the same command"),
        "nothing to resume: {err}"
    );
    assert!(
        !err.contains("app_only_logins"),
        "the app's own collection is not the job's: {err}"
    );
    assert_eq!(
        world.raw_docs("users").await.len(),
        USERS,
        "nothing was written before the refusal"
    );

    let dropped = world.migrate(&[
        "--quiet",
        "--mappings",
        &mappings,
        "--restart",
        "--drop-target",
    ]);
    assert_eq!(
        dropped.status.code(),
        Some(EXIT_INDEXES_NOT_ALL_BUILT),
        "the test server refuses text indexes: {}\n{}",
        stderr(&dropped),
        stdout(&dropped)
    );
    assert!(
        stderr(&dropped).contains("dropping a target collection"),
        "each dropped collection is logged: {}",
        stderr(&dropped)
    );
    // Each user once, with the mappings' identities (no string `_id` left beside them).
    let users = world.db.collection::<Document>("users");
    let all: Vec<Document> = {
        use futures::TryStreamExt;
        users
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    assert_eq!(all.len(), USERS, "one document per user");
    assert!(
        all.iter().all(|d| d.get_object_id("_id").is_ok()),
        "every user carries the mapped identity: {:?}",
        all.iter().map(|d| d.get("_id")).collect::<Vec<_>>()
    );
    assert_eq!(
        world
            .db
            .collection::<Document>("app_only_logins")
            .count_documents(doc! {})
            .await
            .unwrap(),
        1,
        "the app's own collection survives --drop-target"
    );

    // Writing into the occupied target on purpose.
    let allowed = world.migrate(&[
        "--quiet",
        "--mappings",
        &mappings,
        "--restart",
        "--allow-existing",
    ]);
    assert_eq!(
        allowed.status.code(),
        Some(EXIT_INDEXES_NOT_ALL_BUILT),
        "{}",
        stderr(&allowed)
    );
    assert_eq!(users.count_documents(doc! {}).await.unwrap(), USERS as u64);
}

/// Building the mappings' indexes touches only collections that received documents: a
/// three-collection source with the app's 66 mappings leaves three collections (and
/// fireshift's own), not one empty collection per mapping; `fireshift indexes` the same.
#[tokio::test]
async fn indexes_are_built_only_on_collections_that_received_documents() {
    use common::doc_at;
    use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};
    let s = |x: &str| Value {
        value_type: Some(ValueType::StringValue(x.into())),
    };
    let world = World::new("target-ix").await;
    let mut docs = Vec::new();
    for i in 0..3 {
        let u = format!("u{i}");
        docs.push(doc_at(
            &format!("users/{u}"),
            vec![
                ("username", s(&u)),
                ("email", s(&format!("{u}@example.com"))),
                ("displayName", s(&u.to_uppercase())),
            ],
        ));
    }
    docs.push(doc_at("tags/t1", vec![("name", s("cats"))]));
    docs.push(doc_at("tags/t2", vec![("name", s("dogs"))]));
    docs.push(doc_at("languages/en", vec![("code", s("en"))]));
    world.write(docs.into_iter()).await;

    let mappings = mixillo();
    let out = world.migrate(&["--mappings", &mappings]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_INDEXES_NOT_ALL_BUILT),
        "the test server refuses the text index of users: {}",
        stderr(&out)
    );
    let collections = || async {
        let mut names = world.db.list_collection_names().await.unwrap();
        names.retain(|n| !n.starts_with(fireshift::own::PREFIX));
        names.sort();
        names
    };
    assert_eq!(collections().await, ["languages", "tags", "users"]);
    let text = stdout(&out);
    let set = fireshift::mapping::MappingSet::load(Path::new(&mappings)).unwrap();
    let declared = set.indexes();
    let built = declared
        .iter()
        .filter(|ix| ["languages", "tags", "users"].contains(&ix.collection.as_str()))
        .count();
    let skipped = declared.len() - built;
    let skipped_collections: std::collections::BTreeSet<&str> = declared
        .iter()
        .map(|ix| ix.collection.as_str())
        .filter(|c| !["languages", "tags", "users"].contains(c))
        .collect();
    assert!(
        text.contains(&format!(
            "skipped {skipped} indexes of {} collections no document landed in",
            skipped_collections.len()
        )) && text.contains(&format!(", {skipped} skipped (no documents)")),
        "the summary counts the skipped indexes: {text}"
    );
    // The collections that got documents have their indexes.
    let names: Vec<String> = world
        .db
        .collection::<Document>("users")
        .list_index_names()
        .await
        .unwrap();
    assert!(names.iter().any(|n| n == "username_1"), "{names:?}");
    let tags: Vec<String> = world
        .db
        .collection::<Document>("tags")
        .list_index_names()
        .await
        .unwrap();
    assert!(tags.iter().any(|n| n == "trending_tags"), "{tags:?}");
    assert!(built > 0 && skipped > 0);

    // `fireshift indexes`: the same rule.
    let again = world.indexes(&mappings);
    assert_eq!(
        again.status.code(),
        Some(EXIT_INDEXES_NOT_ALL_BUILT),
        "{}",
        stderr(&again)
    );
    assert!(
        stdout(&again).contains(&format!("skipped {skipped} indexes")),
        "{}",
        stdout(&again)
    );
    assert_eq!(collections().await, ["languages", "tags", "users"]);
}

/// A unique index already on the target (a resumed copy, a follow, an index the
/// operator made) and two Firestore documents with the same key: Firestore enforces no
/// uniqueness, MongoDB does. The second document is dead-lettered at once, naming the
/// index — not retried as if two writes of one `_id` were racing — and the rest lands.
#[tokio::test]
async fn a_document_that_breaks_a_unique_index_is_dead_lettered_not_retried() {
    use common::doc_at;
    use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};
    let s = |x: &str| Value {
        value_type: Some(ValueType::StringValue(x.into())),
    };
    let world = World::new("target-unique").await;
    let user = |id: &str, email: &str| {
        doc_at(
            &format!("users/{id}"),
            vec![("email", s(email)), ("name", s(id))],
        )
    };
    world
        .write(
            [
                user("u0", "same@example.com"),
                user("u1", "own@example.com"),
                user("u2", "same@example.com"),
            ]
            .into_iter(),
        )
        .await;
    let users = world.db.collection::<Document>("users");
    users
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "email": 1 })
                .options(
                    mongodb::options::IndexOptions::builder()
                        .unique(true)
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();

    let out = world.migrate(&["--quiet"]);
    assert_eq!(
        out.status.code(),
        Some(common::EXIT_DEAD_LETTERS),
        "{}",
        stderr(&out)
    );
    let landed = world.raw_docs("users").await;
    assert_eq!(landed.keys().collect::<Vec<_>>(), ["u0", "u1"]);
    assert_eq!(landed["u0"].get_str("email").unwrap(), "same@example.com");
    assert_eq!(landed["u1"].get_str("email").unwrap(), "own@example.com");
    assert_eq!(landed["u1"].get_str("name").unwrap(), "u1");
    let dead = common::dead_letters(&world).await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let u2 = &dead[&world.full_name("users/u2")];
    assert_eq!(u2.get_str("rule").unwrap(), "unique");
    let reason = u2.get_str("reason").unwrap();
    assert!(
        reason.contains("unique index") && reason.contains("email_1"),
        "{reason}"
    );
    assert!(
        !stderr(&out).contains("transient failure, retrying"),
        "not retried: {}",
        stderr(&out)
    );
}
