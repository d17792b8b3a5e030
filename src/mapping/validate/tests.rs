//! One test per validation message: each names the file, line and column, what is
//! wrong and how to fix it.

use super::*;
use crate::mapping::load::load_dir;
use crate::mapping::spec::RefRepr;
use crate::mapping::Identity;

/// Loads the files from a temporary directory; returns the set or the errors rendered
/// as `file:line:col: message | help` (file names only).
fn run(files: &[(&str, &str)]) -> Result<MappingSet, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    compile(load_dir(dir.path())).map_err(|e| {
        e.0.iter()
            .map(|e| {
                format!(
                    "{}:{}:{}: {} | {}",
                    e.file.file_name().unwrap().to_string_lossy(),
                    e.line,
                    e.column,
                    e.message,
                    e.help
                )
            })
            .collect()
    })
}

/// Asserts the files give exactly these errors, each `location` + a piece of message.
#[track_caller]
fn expect(files: &[(&str, &str)], want: &[(&str, &str)]) {
    let got = run(files).err().unwrap_or_default();
    assert_eq!(got.len(), want.len(), "errors: {got:#?}");
    for (g, (at, piece)) in got.iter().zip(want) {
        assert!(g.starts_with(&format!("{at}: ")), "want at {at}: {g}");
        assert!(g.contains(piece), "want {piece:?} in {g}");
        assert!(!g.ends_with("| "), "every error says how to fix it: {g}");
    }
}

const USERS: (&str, &str) = ("users.toml", "collection = \"users\"\n");

#[test]
fn a_valid_set_compiles_and_fills_defaults() {
    let set = run(&[
        USERS,
        ("dataset.toml", "id_key = \"k\"\nreferences = \"path\"\n"),
        ("c.toml", "collection = \"content/{cid}/comments\"\n"),
    ])
    .unwrap();
    let c = set
        .get(&CollectionPattern::parse("content/{}/comments").unwrap())
        .unwrap();
    assert_eq!(c.target, "content.comments");
    assert_eq!(c.identity, Identity::Keep);
    assert_eq!(
        c.landing,
        Landing::Own {
            parent_field: "_parent".into(),
            parent_as: RefRepr::Path
        }
    );
    assert_eq!(c.placeholders, vec!["cid"]);
    assert_eq!(set.dataset.id_key, "k");
    assert_eq!(set.fingerprint().len(), 64);
}

#[test]
fn the_fingerprint_ignores_formatting_and_follows_meaning() {
    let a = run(&[(
        "u.toml",
        "collection = \"users\"\n[fields]\nx = { rename = \"y\" }\n",
    )])
    .unwrap();
    let b = run(&[(
        "other-name.toml",
        "# comment\ncollection=\"users\"\n\n[fields.x]\nrename=\"y\"\n",
    )])
    .unwrap();
    let c = run(&[(
        "u.toml",
        "collection = \"users\"\n[fields]\nx = { rename = \"z\" }\n",
    )])
    .unwrap();
    let d = run(&[
        (
            "u.toml",
            "collection = \"users\"\n[fields]\nx = { rename = \"y\" }\n",
        ),
        ("dataset.toml", "id_key = \"other\"\n"),
    ])
    .unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), c.fingerprint());
    assert_ne!(a.fingerprint(), d.fingerprint());
}

#[test]
fn collection_must_be_a_pattern_and_mapped_once() {
    expect(
        &[("a.toml", "collection = \"users/u1/posts\"\n")],
        &[(
            "a.toml:1:14",
            "`collection = \"users/u1/posts\"` is not a collection pattern",
        )],
    );
    expect(
        &[USERS, ("z.toml", "collection = \"users\"\n")],
        &[("z.toml:1:14", "collection `users` is already mapped in")],
    );
}

#[test]
fn dataset_settings_are_checked() {
    expect(
        &[(
            "dataset.toml",
            "id_key = \"\"\nfirestore_id_field = \"a.b\"\n",
        )],
        &[
            ("dataset.toml:1:10", "`id_key` is empty"),
            (
                "dataset.toml:2:22",
                "`firestore_id_field`: `a.b` contains `.`",
            ),
        ],
    );
    expect(
        &[("dataset.toml", "firestore_id_field = \"_id\"\n")],
        &[("dataset.toml:1:22", "`firestore_id_field` cannot be `_id`")],
    );
    expect(
        &[("dataset.toml", "references = \"pointer\"\n")],
        &[("dataset.toml:1:14", "unknown variant `pointer`")],
    );
}

#[test]
fn landing_errors() {
    let sub = "collection = \"users/{u}/posts\"\n";
    expect(
        &[(
            "p.toml",
            &format!("{sub}[parent]\nfield = \"u\"\n[embed]\nfield = \"posts\"\nmax = 5\n"),
        )],
        &[(
            "p.toml:2:1",
            "either in its own collection ([parent]) or embedded ([embed]), not both",
        )],
    );
    expect(
        &[(
            "u.toml",
            "collection = \"users\"\n[parent]\nfield = \"x\"\n",
        )],
        &[(
            "u.toml:2:1",
            "`users` is a root collection: it has no parent",
        )],
    );
    expect(
        &[(
            "u.toml",
            "collection = \"users\"\n[embed]\nfield = \"x\"\nmax = 2\n",
        )],
        &[("u.toml:2:1", "it has no parent to embed into")],
    );
    expect(
        &[(
            "p.toml",
            &format!("{sub}[embed]\nfield = \"$p\"\nmax = 0\n"),
        )],
        &[
            ("p.toml:3:9", "[embed] field: `$p` starts with `$`"),
            ("p.toml:4:7", "[embed] max = 0 is outside 1..=100000"),
        ],
    );
    expect(
        &[(
            "p.toml",
            &format!("{sub}[embed]\nfield = \"_id\"\nmax = 1\n"),
        )],
        &[("p.toml:3:9", "[embed] field cannot be `_id`")],
    );
    expect(
        &[(
            "p.toml",
            &format!("{sub}target = \"x\"\n[embed]\nfield = \"posts\"\nmax = 1\n[[indexes]]\nkeys = {{ a = 1 }}\n"),
        )],
        &[
            ("p.toml:2:10", "lands in its parent's collection, so `target` does not apply"),
            ("p.toml:6:1", "has no collection of its own to index"),
        ],
    );
    expect(
        &[("p.toml", &format!("{sub}[parent]\nfield = \"a.b\"\n"))],
        &[("p.toml:3:9", "[parent] field: `a.b` contains `.`")],
    );
}

#[test]
fn target_names_are_checked() {
    for (target, piece) in [
        ("system.users", "`system.` collections are MongoDB's"),
        ("_fireshift_x", "fireshift's own bookkeeping"),
        ("a$b", "cannot hold `$`"),
        ("", "cannot be empty"),
    ] {
        expect(
            &[(
                "u.toml",
                &format!("collection = \"users\"\ntarget = \"{target}\"\n"),
            )],
            &[("u.toml:2:10", piece)],
        );
    }
}

#[test]
fn identity_errors() {
    let u = "collection = \"users\"\n";
    expect(
        &[(
            "u.toml",
            &format!("{u}[id]\nfirestore_id_field = \"fid\"\n"),
        )],
        &[(
            "u.toml:3:22",
            "with `strategy = \"keep\"` the Firestore id is `_id` itself",
        )],
    );
    expect(
        &[(
            "u.toml",
            &format!("{u}[id]\nstrategy = \"objectid\"\nfirestore_id_field = \"$f\"\n"),
        )],
        &[("u.toml:4:22", "`firestore_id_field`: `$f` starts with `$`")],
    );
    expect(
        &[("u.toml", &format!("{u}[id]\nstrategy = \"field\"\n"))],
        &[("u.toml:2:1", "`strategy = \"field\"` needs `field`")],
    );
    expect(
        &[(
            "u.toml",
            &format!("{u}[id]\nstrategy = \"objectid\"\nfield = \"x\"\n"),
        )],
        &[(
            "u.toml:4:9",
            "`field` in [id] only applies to `strategy = \"field\"`",
        )],
    );
    expect(
        &[(
            "u.toml",
            &format!("{u}[id]\nstrategy = \"field\"\nfield = \"a.b\"\n"),
        )],
        &[(
            "u.toml:4:9",
            "[id] field `a.b` must be a top-level source field",
        )],
    );
    expect(
        &[(
            "u.toml",
            &format!(
                "{u}[id]\nstrategy = \"field\"\nfield = \"x\"\n[fields]\nx = {{ drop = true }}\n"
            ),
        )],
        &[("u.toml:4:9", "[id] field `x` is dropped in [fields]")],
    );
    expect(
        &[("u.toml", &format!("{u}[id]\nstrategy = \"field\"\nfield = \"x\"\n[fields]\n\"x.y\" = {{ rename = \"z\" }}\n"))],
        &[("u.toml:4:9", "[id] field `x` has nested rules")],
    );
    expect(
        &[("u.toml", &format!("{u}[id]\nstrategy = \"uuid\"\n"))],
        &[("u.toml:3:12", "unknown variant `uuid`")],
    );
}

#[test]
fn reserved_fields_must_differ_and_rules_must_not_overwrite_them() {
    expect(
        &[(
            "u.toml",
            "collection = \"users\"\n[id]\nstrategy = \"objectid\"\n[metadata]\ncreate_time = \"firestoreId\"\n",
        )],
        &[("u.toml:1:14", "the mapping writes the field `firestoreId` twice")],
    );
    expect(
        &[(
            "u.toml",
            "collection = \"users\"\n[metadata]\nupdate_time = \"updatedAt\"\n[fields]\nmodified = { rename = \"updatedAt\" }\nold = { rename = \"_id\" }\n",
        )],
        &[
            ("u.toml:5:1", "the rule for `modified` writes `updatedAt`, which the mapping's metadata already writes"),
            ("u.toml:6:1", "the rule for `old` writes `_id`, which the mapping's identity already writes"),
        ],
    );
    expect(
        &[(
            "u.toml",
            "collection = \"users\"\n[metadata]\ncreate_time = \"a.b\"\n",
        )],
        &[("u.toml:3:15", "[metadata]: `a.b` contains `.`")],
    );
}

#[test]
fn field_rule_errors() {
    let u = "collection = \"users\"\n[fields]\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "\"a..b\" = { drop = true }\n",
            "u.toml:3:1",
            "field path `a..b` has an empty segment",
        ),
        (
            "a = { drop = true, rename = \"b\", cast = \"int32\" }\n",
            "u.toml:3:1",
            "field `a` is dropped, so `rename`, `cast` would have no effect",
        ),
        (
            "a = { rename = \"x.y\" }\n",
            "u.toml:3:16",
            "rename of `a`: `x.y` contains `.`",
        ),
        (
            "a = { required = true, default = 1 }\n",
            "u.toml:3:18",
            "has a default, so `required` can never fail",
        ),
        (
            "a = { format = \"%Y\" }\n",
            "u.toml:3:16",
            "`format` of `a` only applies to `cast = \"date\"`",
        ),
        (
            "a = { cast = \"int64\", unit = \"s\" }\n",
            "u.toml:3:30",
            "`unit` of `a` only applies to `cast = \"date\"`",
        ),
        (
            "a = { cast = \"date\", format = \"%Q\" }\n",
            "u.toml:3:31",
            "`%Q` is not a valid strftime pattern",
        ),
        (
            "a = { ref = \"users\", cast = \"string\" }\n",
            "u.toml:3:29",
            "`cast = \"string\"` cannot apply to it",
        ),
        (
            "a = { ref = \"users\", default = \"u1\" }\n",
            "u.toml:3:32",
            "reference field `a` cannot have a default",
        ),
        (
            "a = { ref_from = \"path\" }\n",
            "u.toml:3:18",
            "`ref_from` of `a` needs `ref`",
        ),
        (
            "a = { ref = \"users/x\" }\n",
            "u.toml:3:13",
            "`ref = \"users/x\"` of `a` is not a collection pattern",
        ),
        (
            "a = { ref = \"user\" }\n",
            "u.toml:3:13",
            "names a collection that has no mapping file",
        ),
        (
            "a = { cast = \"int32\", default = \"abc\" }\n",
            "u.toml:3:33",
            "default of `a` is impossible: cannot cast string \"abc\" to int32",
        ),
        (
            "a = { cast = \"objectid\", default = 5 }\n",
            "u.toml:3:36",
            "default of `a` is impossible: cannot cast integer 5 to objectid",
        ),
        (
            "a = { default = 2026-01-01 }\n",
            "u.toml:3:17",
            "needs a date, a time and an offset",
        ),
        (
            "a = { cast = \"decimal128\" }\n\"a.b\" = { rename = \"c\" }\n",
            "u.toml:4:1",
            "rule for `a.b` can never apply: the rule for `a` casts the field that holds it",
        ),
        (
            "a = { rename = \"c\" }\nb = { rename = \"c\" }\n",
            "u.toml:4:1",
            "rules for `a` and `b` both write the field `c`",
        ),
        (
            "a = { rename = \"b\" }\nb = {}\n",
            "u.toml:4:1",
            "rules for `a` and `b` both write the field `b`",
        ),
    ];
    for (rule, at, piece) in cases {
        expect(&[("u.toml", &format!("{u}{rule}"))], &[(at, piece)]);
    }
    // The suggestion for a misspelt reference names the mapped collection.
    let got = run(&[("u.toml", &format!("{u}a = {{ ref = \"user\" }}\n"))]).unwrap_err();
    assert!(got[0].contains("did you mean `users`?"), "{got:?}");
}

#[test]
fn subcollection_references_need_named_placeholders_unless_read_as_paths() {
    let files = |r: &str| {
        vec![
            USERS,
            ("p.toml", "collection = \"users/{userId}/posts\"\n"),
            (
                "l.toml",
                Box::leak(
                    format!("collection = \"likes\"\n[fields]\npost = {r}\n").into_boxed_str(),
                ),
            ),
        ]
    };
    expect(
        &files("{ ref = \"users/{}/posts\" }"),
        &[(
            "l.toml:3:16",
            "every parent id of the path must come from a named placeholder",
        )],
    );
    assert!(run(&files("{ ref = \"users/{}/posts\", ref_from = \"path\" }")).is_ok());
    assert!(run(&files("{ ref = \"users/{userId}/posts\" }")).is_ok());
}

#[test]
fn references_and_parents_need_path_derived_identities() {
    let shop = (
        "s.toml",
        "collection = \"shops\"\n[id]\nstrategy = \"field\"\nfield = \"slug\"\n",
    );
    expect(
        &[shop, ("o.toml", "collection = \"orders\"\n[fields]\nshop = { ref = \"shops\" }\n")],
        &[("o.toml:3:16", "`shops` takes `_id` from its field `slug`, which a reference cannot derive from a path")],
    );
    assert!(run(&[
        shop,
        (
            "o.toml",
            "collection = \"orders\"\n[fields]\nshop = { ref = \"shops\", as = \"path\" }\n"
        )
    ])
    .is_ok());
    expect(
        &[shop, ("p.toml", "collection = \"shops/{s}/products\"\n[parent]\nfield = \"shop\"\n")],
        &[("p.toml:2:1", "the parent `shops` takes `_id` from its field `slug`, so the parent key cannot be derived")],
    );
    expect(
        &[
            shop,
            (
                "p.toml",
                "collection = \"shops/{s}/products\"\n[embed]\nfield = \"products\"\nmax = 5\n",
            ),
        ],
        &[(
            "p.toml:2:1",
            "children cannot find their parent document from their path",
        )],
    );
}

#[test]
fn embedding_errors_across_files() {
    let c = (
        "c.toml",
        "collection = \"content/{c}/comments\"\n[embed]\nfield = \"comments\"\nmax = 5\n",
    );
    expect(
        &[c, ("r.toml", "collection = \"content/{c}/comments/{k}/replies\"\n[embed]\nfield = \"replies\"\nmax = 5\n")],
        &[("r.toml:2:1", "`content/{}/comments` is itself embedded")],
    );
    expect(
        &[
            c,
            (
                "d.toml",
                "collection = \"content/{c}/drafts\"\n[embed]\nfield = \"comments\"\nmax = 5\n",
            ),
        ],
        &[(
            "d.toml:2:1",
            "both embed into the field `comments` of `content`",
        )],
    );
    expect(
        &[c, ("p.toml", "collection = \"content\"\n[fields]\ncommentList = { rename = \"comments\" }\n")],
        &[("p.toml:3:1", "the rule for `commentList` writes `comments`, the array that `content/{}/comments` is embedded into")],
    );
    expect(
        &[
            c,
            (
                "p.toml",
                "collection = \"content\"\n[metadata]\ncreate_time = \"comments\"\n",
            ),
        ],
        &[(
            "c.toml:2:1",
            "the parent mapping `content` already writes the field `comments`",
        )],
    );
    expect(
        &[("c.toml", "collection = \"content/{c}/comments\"\n[embed]\ninto = \"posts\"\nfield = \"comments\"\nmax = 5\n")],
        &[("c.toml:3:8", "[embed] into = \"posts\", but the parent `content` lands in `content`")],
    );
    // An unmapped parent is fine: it keeps the defaults and keeps the array.
    let set = run(&[c]).unwrap();
    let parent = set.default_mapping(&CollectionPattern::parse("content").unwrap());
    assert_eq!(parent.embedded_fields, vec!["comments"]);
}

#[test]
fn two_mappings_writing_one_target_with_clashing_ids() {
    expect(
        &[
            USERS,
            ("a.toml", "collection = \"admins\"\ntarget = \"users\"\n"),
        ],
        &[("a.toml:2:10", "`admins` and `users` (at ")],
    );
    let got = run(&[
        USERS,
        ("a.toml", "collection = \"admins\"\ntarget = \"users\"\n"),
    ])
    .unwrap_err();
    assert!(got[0].contains("both keep bare Firestore ids"), "{got:?}");
    expect(
        &[
            ("u.toml", "collection = \"users\"\n[id]\nstrategy = \"objectid\"\n"),
            ("a.toml", "collection = \"admins\"\ntarget = \"users\"\n[id]\nstrategy = \"field\"\nfield = \"email\"\n"),
        ],
        &[("a.toml:2:10", "one takes `_id` from a field value")],
    );
    // Ids derived from full paths never clash; nor do subcollection paths with bare ids.
    assert!(run(&[
        (
            "u.toml",
            "collection = \"users\"\n[id]\nstrategy = \"objectid\"\n"
        ),
        (
            "a.toml",
            "collection = \"admins\"\ntarget = \"users\"\n[id]\nstrategy = \"objectid\"\n"
        ),
        (
            "p.toml",
            "collection = \"users/{u}/posts\"\ntarget = \"users\"\n"
        ),
    ])
    .is_ok());
}

#[test]
fn errors_of_all_files_are_collected_in_file_and_line_order() {
    let got = run(&[
        ("a.toml", "collection = \"a\"\ntagret = \"x\"\n"),
        ("b.toml", "collection = \"b\"\n[fields]\nx = { ref = \"nope\" }\ny = { cast = \"int32\", default = \"z\" }\n"),
        ("c.toml", "collection = \"c\"\n[fields]\nz = { ref = \"a\" }\n"),
    ])
    .unwrap_err();
    let at: Vec<&str> = got.iter().map(|g| g.split(": ").next().unwrap()).collect();
    // c.toml's reference to `a` is not reported: `a` is mapped, though its file is broken.
    assert_eq!(at, vec!["a.toml:2:1", "b.toml:3:13", "b.toml:4:33"]);
}

#[test]
fn a_syntax_error_is_reported_alone_without_its_follow_ons() {
    // The collection line survives: references to `a` are not "unmapped".
    let got = run(&[
        ("a.toml", "collection = \"a\"\ntarget = = \"x\"\n"),
        (
            "b.toml",
            "collection = \"b\"\n[fields]\nx = { ref = \"a\" }\n",
        ),
        (
            "c.toml",
            "collection = \"c\"\n[fields]\ny = { ref = \"a\" }\n",
        ),
    ])
    .unwrap_err();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with("a.toml:2:"), "{got:#?}");
    // The collection line itself is broken: no reference to an unmapped collection is
    // reported, since any of them may be that file's.
    let got = run(&[
        ("a.toml", "collection = a\n"),
        (
            "b.toml",
            "collection = \"b\"\n[fields]\nx = { ref = \"a\" }\n",
        ),
    ])
    .unwrap_err();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with("a.toml:1:"), "{got:#?}");
    // Without a broken file the same reference is an error.
    let got = run(&[(
        "b.toml",
        "collection = \"b\"\n[fields]\nx = { ref = \"a\" }\n",
    )])
    .unwrap_err();
    assert!(
        got[0].contains("names a collection that has no mapping file"),
        "{got:#?}"
    );
}

#[test]
fn a_directory_without_mapping_files_is_an_error_naming_the_datasets_below() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shop")).unwrap();
    std::fs::write(
        dir.path().join("shop/users.toml"),
        "collection = \"users\"\n",
    )
    .unwrap();
    let err = compile(load_dir(dir.path())).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert!(err.0[0].message.contains("no mapping files"), "{err}");
    assert!(err.0[0].help.contains("shop"), "{err}");
    // A dataset file alone is a set: its settings apply to every collection.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dataset.toml"), "").unwrap();
    assert!(compile(load_dir(dir.path())).is_ok());
}
