//! Every rule, applied to documents (no server).

use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};
use gcloud_sdk::prost_types::Timestamp;
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Decimal128};

use super::*;
use crate::mapping::identity::derive_object_id;
use crate::mapping::transform::Transformer;
use crate::test_support::{arr, doc as document, i, map, s, v, ROOT as P};

fn set(files: &[(&str, &str)]) -> MappingSet {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    MappingSet::load(dir.path()).unwrap_or_else(|e| panic!("{e}"))
}

fn d(x: f64) -> Value {
    v(ValueType::DoubleValue(x))
}
fn null() -> Value {
    v(ValueType::NullValue(0))
}
fn r(path: &str) -> Value {
    v(ValueType::ReferenceValue(format!("{P}{path}")))
}
fn out(t: &Transformed) -> bson::Document {
    t.item.doc.to_document().unwrap()
}
fn oid(set: &MappingSet, path: &str) -> ObjectId {
    derive_object_id(&set.dataset.id_key, path)
}
fn dec(x: &str) -> Bson {
    Bson::Decimal128(x.parse::<Decimal128>().unwrap())
}

#[test]
fn an_empty_set_transforms_exactly_like_the_default() {
    let empty = MappingSet::empty();
    let default = Transformer::default();
    for demo in fireshift_demo::generate(3, "p", "(default)", fireshift_demo::FIXED_NOW) {
        let raw = document(&demo.path, vec![]);
        let raw = Document {
            fields: demo.fields,
            ..raw
        };
        let a = default.apply(&raw).expect("demo converts");
        let b = apply(&empty, &raw).expect("demo converts");
        assert_eq!(a.collection, b.collection, "{}", raw.name);
        assert_eq!(a.pattern, b.pattern);
        assert_eq!(a.item.id, b.item.id);
        assert_eq!(a.item.doc.as_bytes(), b.item.doc.as_bytes(), "{}", raw.name);
        assert_eq!(a.item.literal, b.item.literal);
        assert_eq!(b.item.kind, WriteKind::Replace);
    }
}

#[test]
fn rename_drop_default_and_required() {
    let m = set(&[(
        "u.toml",
        "collection = \"users\"\n[fields]\ndisplayName = { rename = \"name\", required = true }\npassword = { drop = true }\nstatus = { default = \"active\" }\n",
    )]);
    let t = apply(
        &m,
        &document(
            "users/u1",
            vec![
                ("displayName", s("Ann")),
                ("password", s("x")),
                ("age", i(3)),
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        out(&t),
        doc! { "_id": "u1", "age": 3i64, "name": "Ann", "status": "active" }
    );
    // A default never replaces a value, not even null.
    let t = apply(
        &m,
        &document(
            "users/u1",
            vec![("displayName", s("A")), ("status", null())],
        ),
    )
    .unwrap();
    assert_eq!(out(&t).get("status"), Some(&Bson::Null));
    for fields in [vec![], vec![("displayName", null())]] {
        let r = apply(&m, &document("users/u2", fields)).unwrap_err();
        assert_eq!(r.rule, "required");
        assert_eq!(r.field.as_deref(), Some("displayName"));
        assert!(
            r.reason.starts_with("required field `displayName` is "),
            "{}",
            r.reason
        );
    }
}

#[test]
fn a_failed_cast_is_a_dead_letter_with_rule_field_reason_and_raw_value() {
    let m = set(&[("o.toml", "collection = \"orders\"\n[fields]\ntotal = { cast = \"decimal128\" }\n\"items.qty\" = { cast = \"int32\" }\n")]);
    let raw = document(
        "orders/o1",
        vec![
            ("total", d(19.99)),
            (
                "items",
                arr(vec![
                    map(vec![("qty", i(2))]),
                    map(vec![("qty", s("many"))]),
                ]),
            ),
        ],
    );
    let r = apply(&m, &raw).unwrap_err();
    assert_eq!(r.rule, "cast");
    assert_eq!(r.field.as_deref(), Some("items[1].qty"));
    assert_eq!(
        r.reason,
        "cannot cast string \"many\" to int32: not a whole number in the int32 range"
    );
    let dl = r.dead_letter(Some(&raw), "run").doc.to_document().unwrap();
    assert_eq!(dl.get_str("rule").unwrap(), "cast");
    assert_eq!(dl.get_str("field").unwrap(), "items[1].qty");
    assert_eq!(dl.get_str("value").unwrap(), "many");
    assert_eq!(dl.get_str("_id").unwrap(), raw.name);
    assert_eq!(dl.get_str("collection").unwrap(), "orders");

    let ok = apply(
        &m,
        &document(
            "orders/o2",
            vec![
                ("total", d(19.99)),
                ("items", arr(vec![map(vec![("qty", d(2.0))])])),
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        out(&ok),
        doc! { "_id": "o2", "items": [{ "qty": 2i32 }], "total": dec("19.99") }
    );
}

#[test]
fn nested_rules_reach_into_maps_and_arrays_of_maps() {
    let m = set(&[(
        "o.toml",
        "collection = \"orders\"\n[fields]\n\"items.price\" = { cast = \"decimal128\", rename = \"amount\" }\n\"items.sku\" = { required = true }\n\"meta.`a.b`\" = { rename = \"ab\" }\n\"meta.gone\" = { drop = true }\n\"meta.flag\" = { default = true }\n",
    )]);
    let t = apply(
        &m,
        &document(
            "orders/o1",
            vec![
                (
                    "items",
                    arr(vec![
                        map(vec![("sku", s("A")), ("price", i(5))]),
                        s("not a map"),
                    ]),
                ),
                ("meta", map(vec![("a.b", i(1)), ("gone", i(2))])),
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        out(&t),
        doc! { "_id": "o1", "items": [{ "amount": dec("5"), "sku": "A" }, "not a map"], "meta": { "ab": 1i64, "flag": true } }
    );
    let r = apply(
        &m,
        &document(
            "orders/o2",
            vec![("items", arr(vec![map(vec![("price", i(1))])]))],
        ),
    )
    .unwrap_err();
    assert_eq!(
        (r.rule, r.field.as_deref()),
        ("required", Some("items[0].sku"))
    );
}

const USERS_OID: (&str, &str) = (
    "users.toml",
    "collection = \"users\"\ntarget = \"people\"\n[id]\nstrategy = \"objectid\"\n",
);

#[test]
fn objectid_identity_keeps_the_firestore_id_and_references_resolve_to_it() {
    let m = set(&[
        USERS_OID,
        ("dataset.toml", "id_key = \"test-key\"\n"),
        (
            "c.toml",
            "collection = \"content\"\n[fields]\nauthorId = { ref = \"users\" }\nauthor = { ref = \"users\" }\nfans = { ref = \"users\" }\n",
        ),
    ]);
    let u1 = oid(&m, "users/u1");
    assert_eq!(u1, derive_object_id("test-key", "users/u1"));
    let t = apply(&m, &document("users/u1", vec![("n", i(1))])).unwrap();
    assert_eq!(t.collection, "people");
    assert_eq!(out(&t), doc! { "_id": u1, "firestoreId": "u1", "n": 1i64 });
    let t = apply(
        &m,
        &document(
            "content/c1",
            vec![
                ("authorId", s("u1")),
                ("author", r("users/u1")),
                ("fans", arr(vec![s("u1"), r("users/u2"), null()])),
                // Undeclared reference values resolve through the referenced mapping too.
                ("mentioned", r("users/u2")),
                ("other", r("stores/s1")),
            ],
        ),
    )
    .unwrap();
    let u2 = oid(&m, "users/u2");
    assert_eq!(
        out(&t),
        doc! { "_id": "c1", "author": u1, "authorId": u1, "fans": [u1, u2, Bson::Null], "mentioned": u2, "other": "s1" }
    );
}

#[test]
fn references_that_cannot_resolve_are_dead_letters() {
    let m = set(&[
        USERS_OID,
        (
            "c.toml",
            "collection = \"content\"\n[fields]\nauthorId = { ref = \"users\" }\n",
        ),
    ]);
    for (value, piece) in [
        (
            r("stores/s1"),
            "`stores/s1` is in `stores`, but the mapping declares `ref = \"users\"`",
        ),
        (i(5), "expects a string id or a reference, found integer"),
        (s("a/b"), "ids are non-empty and hold no `/`"),
        (s(""), "ids are non-empty"),
    ] {
        let r = apply(&m, &document("content/c1", vec![("authorId", value)])).unwrap_err();
        assert_eq!(
            (r.rule, r.field.as_deref()),
            ("reference", Some("authorId"))
        );
        assert!(r.reason.contains(piece), "{}", r.reason);
    }
}

#[test]
fn subcollection_references_take_parent_ids_from_fields_own_path_or_a_path_string() {
    let m = set(&[
        ("p.toml", "collection = \"stores/{storeId}/products\"\n[id]\nstrategy = \"objectid\"\n"),
        (
            "o.toml",
            "collection = \"stores/{storeId}/orders\"\n[fields]\nproductId = { ref = \"stores/{storeId}/products\" }\n\
             \"lines.productId\" = { ref = \"stores/{shop}/products\" }\nproductPath = { ref = \"stores/{}/products\", ref_from = \"path\" }\n",
        ),
    ]);
    let t = apply(
        &m,
        &document(
            "stores/s1/orders/o1",
            vec![
                ("productId", s("p1")),
                ("shop", s("s2")),
                ("lines", arr(vec![map(vec![("productId", s("p2"))])])),
                ("productPath", s("stores/s3/products/p3")),
            ],
        ),
    )
    .unwrap();
    let o = out(&t);
    assert_eq!(
        o.get("productId"),
        Some(&Bson::ObjectId(oid(&m, "stores/s1/products/p1")))
    );
    assert_eq!(
        o.get_array("lines").unwrap()[0]
            .as_document()
            .unwrap()
            .get("productId"),
        Some(&Bson::ObjectId(oid(&m, "stores/s2/products/p2")))
    );
    assert_eq!(
        o.get("productPath"),
        Some(&Bson::ObjectId(oid(&m, "stores/s3/products/p3")))
    );
    let r = apply(
        &m,
        &document(
            "stores/s1/orders/o2",
            vec![("lines", arr(vec![map(vec![("productId", s("p2"))])]))],
        ),
    )
    .unwrap_err();
    assert_eq!(r.rule, "reference");
    assert_eq!(r.field.as_deref(), Some("lines[0].productId"));
    assert!(
        r.reason
            .contains("needs the field `shop`, which is missing"),
        "{}",
        r.reason
    );
}

#[test]
fn references_as_paths_and_dbrefs() {
    let m = set(&[
        USERS_OID,
        ("dataset.toml", "references = \"path\"\n"),
        ("c.toml", "collection = \"content\"\n[fields]\nby = { ref = \"users\", as = \"dbref\" }\nraw = { as = \"id\" }\n"),
    ]);
    let t = apply(
        &m,
        &document(
            "content/c1",
            vec![
                ("by", s("u1")),
                ("raw", r("users/u2")),
                ("other", r("users/u3")),
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        out(&t),
        doc! { "_id": "c1", "by": { "$ref": "people", "$id": oid(&m, "users/u1") }, "other": "users/u3", "raw": oid(&m, "users/u2") }
    );
    assert!(t.item.literal, "a DBRef has `$` field names");
}

#[test]
fn field_identity_moves_the_cast_value_to_id() {
    let m = set(&[(
        "s.toml",
        "collection = \"skus\"\n[id]\nstrategy = \"field\"\nfield = \"code\"\n[fields]\ncode = { cast = \"string\" }\n",
    )]);
    let t = apply(&m, &document("skus/x1", vec![("code", i(42)), ("n", i(1))])).unwrap();
    assert_eq!(
        out(&t),
        doc! { "_id": "42", "firestoreId": "x1", "n": 1i64 }
    );
    for (fields, piece) in [
        (vec![], "missing or null"),
        (vec![("code", arr(vec![]))], "an array"),
    ] {
        let r = apply(&m, &document("skus/x2", fields)).unwrap_err();
        assert_eq!((r.rule, r.field.as_deref()), ("identity", Some("code")));
        assert!(r.reason.contains(piece), "{}", r.reason);
    }
}

#[test]
fn subcollections_get_a_named_parent_key_in_the_chosen_representation() {
    let m = set(&[
        USERS_OID,
        (
            "p.toml",
            "collection = \"users/{u}/posts\"\ntarget = \"posts\"\n[parent]\nfield = \"userId\"\n",
        ),
        (
            "f.toml",
            "collection = \"users/{u}/follows\"\n[parent]\nfield = \"owner\"\nas = \"path\"\n",
        ),
    ]);
    let t = apply(&m, &document("users/u1/posts/p1", vec![])).unwrap();
    assert_eq!(t.collection, "posts");
    assert_eq!(
        out(&t),
        doc! { "_id": "users/u1/posts/p1", "userId": oid(&m, "users/u1") }
    );
    let t = apply(&m, &document("users/u1/follows/f1", vec![])).unwrap();
    assert_eq!(
        out(&t),
        doc! { "_id": "users/u1/follows/f1", "owner": "users/u1" }
    );
    // Unmapped subcollections keep `_parent`, now the parent's mapped identity.
    let t = apply(&m, &document("users/u1/likes/l1", vec![])).unwrap();
    assert_eq!(
        out(&t),
        doc! { "_id": "users/u1/likes/l1", "_parent": oid(&m, "users/u1") }
    );
    let r = apply(&m, &document("users/u1/posts/p2", vec![("userId", s("x"))])).unwrap_err();
    assert_eq!((r.rule, r.field.as_deref()), ("identity", Some("userId")));
}

#[test]
fn embedded_children_become_array_writes_on_their_parent() {
    let m = set(&[
        (
            "c.toml",
            "collection = \"content\"\n[id]\nstrategy = \"objectid\"\n",
        ),
        (
            "k.toml",
            "collection = \"content/{c}/comments\"\n[embed]\nfield = \"comments\"\nmax = 50\n",
        ),
    ]);
    let child = apply(
        &m,
        &document("content/c1/comments/k1", vec![("text", s("hi"))]),
    )
    .unwrap();
    assert_eq!(child.collection, "content");
    assert_eq!(child.item.id, Bson::ObjectId(oid(&m, "content/c1")));
    assert_eq!(
        out(&child),
        doc! { "_id": "content/c1/comments/k1", "text": "hi" }
    );
    assert_eq!(
        child.item.kind,
        WriteKind::Embed {
            field: "comments".into(),
            max: 50
        }
    );
    let parent = apply(&m, &document("content/c1", vec![("title", s("t"))])).unwrap();
    assert_eq!(
        parent.item.kind,
        WriteKind::ReplaceKeeping {
            fields: vec!["comments".into()]
        }
    );
    let r = apply(&m, &document("content/c2", vec![("comments", i(3))])).unwrap_err();
    assert_eq!((r.rule, r.field.as_deref()), ("embed", Some("comments")));
    assert!(
        r.reason.contains("rename it in the mapping"),
        "{}",
        r.reason
    );
}

#[test]
fn the_write_statements_of_each_kind() {
    let m = set(&[(
        "k.toml",
        "collection = \"content/{c}/comments\"\n[embed]\nfield = \"comments\"\nmax = 2\n",
    )]);
    let child = apply(&m, &document("content/c1/comments/k1", vec![])).unwrap();
    let u = bson::Bson::try_from(child.item.update()).unwrap();
    let text = u.to_string();
    assert!(
        text.contains("$filter")
            && text.contains("$concatArrays")
            && text.contains("fireshift-embed-limit"),
        "{text}"
    );
    let parent = apply(&m, &document("content/c1", vec![])).unwrap();
    let u = bson::Bson::try_from(parent.item.update()).unwrap();
    assert_eq!(
        u,
        bson::bson!([{ "$replaceWith": { "$mergeObjects": [
            { "$literal": { "_id": "c1" } },
            { "comments": { "$ifNull": ["$comments", []] } }
        ] } }])
    );
}

#[test]
fn metadata_times_become_date_fields() {
    let m = set(&[("u.toml", "collection = \"users\"\n[metadata]\ncreate_time = \"createdAt\"\nupdate_time = \"updatedAt\"\n")]);
    let mut raw = document("users/u1", vec![("n", i(1))]);
    raw.create_time = Some(Timestamp {
        seconds: 1_767_225_600,
        nanos: 123_456_000,
    });
    raw.update_time = Some(Timestamp {
        seconds: 1_767_225_601,
        nanos: 0,
    });
    let t = apply(&m, &raw).unwrap();
    assert_eq!(
        out(&t),
        doc! { "_id": "u1", "createdAt": DateTime::from_millis(1_767_225_600_123), "updatedAt": DateTime::from_millis(1_767_225_601_000), "n": 1i64 }
    );
    raw.fields.insert("createdAt".into(), s("mine"));
    let r = apply(&m, &raw).unwrap_err();
    assert_eq!(
        (r.rule, r.field.as_deref()),
        ("metadata", Some("createdAt"))
    );
}

#[test]
fn field_name_policies() {
    let m = set(&[
        ("dataset.toml", "field_names = \"escape\"\n"),
        (
            "o.toml",
            "collection = \"orders\"\nfield_names = \"reject\"\n",
        ),
    ]);
    let t = apply(&m, &document("users/u1", vec![("a.b", i(1)), ("$c", i(2))])).unwrap();
    assert_eq!(
        out(&t),
        doc! { "_id": "u1", "\u{FF04}c": 2i64, "a\u{FF0E}b": 1i64 }
    );
    let r = apply(
        &m,
        &document("orders/o1", vec![("m", map(vec![("x.y", i(1))]))]),
    )
    .unwrap_err();
    assert_eq!((r.rule, r.field.as_deref()), ("field-name", Some("m.x.y")));
    assert!(r.reason.contains("policy is `reject`"));
}

#[test]
fn unmapped_fields_can_be_dropped() {
    let m = set(&[(
        "u.toml",
        "collection = \"users\"\nunmapped_fields = \"drop\"\n[fields]\nkept = {}\n",
    )]);
    let t = apply(
        &m,
        &document("users/u1", vec![("kept", i(1)), ("noise", i(2))]),
    )
    .unwrap();
    assert_eq!(out(&t), doc! { "_id": "u1", "kept": 1i64 });
}

#[test]
fn a_rename_onto_an_existing_field_is_refused_not_merged() {
    let m = set(&[(
        "u.toml",
        "collection = \"users\"\n[fields]\nfullName = { rename = \"name\" }\n",
    )]);
    let r = apply(
        &m,
        &document("users/u1", vec![("fullName", s("A")), ("name", s("B"))]),
    )
    .unwrap_err();
    assert_eq!(r.rule, "rename");
    assert!(r.reason.contains("already uses"), "{}", r.reason);
    let r = apply(&m, &document("users/u1", vec![("_id", s("x"))])).unwrap_err();
    assert_eq!((r.rule, r.field.as_deref()), ("identity", Some("_id")));
}

#[test]
fn references_to_field_identities_cannot_be_derived() {
    let m = set(&[(
        "s.toml",
        "collection = \"shops\"\n[id]\nstrategy = \"field\"\nfield = \"slug\"\n",
    )]);
    let r = apply(&m, &document("orders/o1", vec![("shop", r("shops/s1"))])).unwrap_err();
    assert_eq!((r.rule, r.field.as_deref()), ("reference", Some("shop")));
    assert!(
        r.reason.contains("cannot derive it from the path"),
        "{}",
        r.reason
    );
}

#[test]
fn the_transformer_uses_the_set_and_its_fingerprint() {
    let m = set(&[USERS_OID]);
    let fp = m.fingerprint().to_string();
    let t = Transformer::with_mappings(m);
    assert_eq!(t.fingerprint(), fp);
    assert_eq!(
        t.apply(&document("users/u1", vec![])).unwrap().collection,
        "people"
    );
    // The default fingerprint is unchanged, so jobs started before mappings still resume.
    assert_eq!(Transformer::default().fingerprint().len(), 16);
    assert_ne!(Transformer::default().fingerprint(), fp);
}
