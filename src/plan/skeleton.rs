//! Skeleton mapping files (pure, but for [`write`]): one TOML file per collection pattern
//! in the format of docs/mappings.md. Active lines only make the defaults explicit
//! (target, `keep` identity, parent key), so the set validates and migrates exactly like
//! no mapping at all; every rule the sample suggests is a commented line that can be
//! uncommented as it is (`# "field" = { ... }`), with its reason above it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::names::unique;
use super::report::{CollectionReport, Report};
use super::suggest::toml_str;
use super::Plan;
use crate::path::CollectionPattern;

/// Field lines listed per file before "… more"; the report has them all.
const MAX_OUTLINE: usize = 300;

/// A file to write: name (in the output directory) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkeletonFile {
    pub name: String,
    pub text: String,
}

/// `content/{contentId}/comments/{commentId}/replies`: placeholders named after the
/// parent collections (singular + `Id`), unique within the pattern.
pub fn named_pattern(p: &CollectionPattern) -> String {
    let text = p.to_string();
    let collections: Vec<&str> = text.split("/{}/").collect();
    let mut used = BTreeSet::new();
    let mut out = String::new();
    for (i, c) in collections.iter().enumerate() {
        if i > 0 {
            let base = placeholder(collections[i - 1], i);
            let name = unique(&base, |n| used.contains(n), "");
            used.insert(name.clone());
            let _ = write!(out, "/{{{name}}}/");
        }
        out.push_str(c);
    }
    out
}

fn placeholder(collection: &str, i: usize) -> String {
    let singular = if let Some(s) = collection.strip_suffix("ies") {
        format!("{s}y")
    } else if let Some(s) = collection.strip_suffix('s') {
        s.to_string()
    } else {
        collection.to_string()
    };
    // camelCase of the letters and digits: `edge_cases` → `edgeCase`.
    let mut name = String::new();
    let mut upper = false;
    for ch in singular.chars() {
        if ch.is_ascii_alphanumeric() {
            if upper && !name.is_empty() {
                name.push(ch.to_ascii_uppercase());
            } else {
                name.push(ch);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name = format!("p{i}{name}");
    }
    format!("{name}Id")
}

/// A comment's text on one line (names may hold newlines or control characters).
fn comment_text(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The skeleton files of a plan, one per collection in the report.
pub fn files(plan: &Plan, report: &Report, generated_at: &str) -> Vec<SkeletonFile> {
    report
        .collections
        .iter()
        .filter_map(|c| {
            let pattern = CollectionPattern::parse(&c.pattern)?;
            Some(SkeletonFile {
                name: c.mapping_file.clone(),
                text: file_text(plan, c, &pattern, generated_at),
            })
        })
        .collect()
}

fn file_text(plan: &Plan, c: &CollectionReport, p: &CollectionPattern, at: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Skeleton mapping for `{}`, written by `fireshift plan` at {at}",
        comment_text(&c.pattern)
    );
    let _ = writeln!(
        s,
        "# from project `{}`, database `{}`: {} documents ({} count), {} sampled.",
        comment_text(&plan.project),
        comment_text(&plan.database_id),
        c.documents,
        if c.count_exact { "exact" } else { "estimated" },
        c.sampled
    );
    let _ = writeln!(
        s,
        "# Active lines only make the defaults explicit. Suggested rules are commented out:"
    );
    let _ = writeln!(
        s,
        "# review each one, uncomment what you want (drop the leading `# `), then run"
    );
    let _ = writeln!(
        s,
        "# `fireshift check --mappings <this directory>`. Reference: docs/mappings.md."
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "collection = {}", toml_str(&named_pattern(p)));
    let _ = writeln!(s, "target = {}", toml_str(&c.target));
    let _ = writeln!(
        s,
        "# unmapped_fields = \"drop\"    # keep only the fields listed under [fields]"
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "[id]");
    if p.depth() > 1 {
        let _ = writeln!(
            s,
            "# keep: _id = the document's path (ids are unique only under their parent)."
        );
    } else {
        let _ = writeln!(s, "# keep: _id = the Firestore id.");
    }
    let _ = writeln!(
        s,
        "# objectid: an ObjectId derived from the path, the Firestore id kept in `firestoreId`."
    );
    let _ = writeln!(s, "strategy = \"keep\"");
    if p.depth() > 1 {
        let _ = writeln!(s);
        let _ = writeln!(s, "[parent]");
        let _ = writeln!(
            s,
            "# The parent document's _id. Or embed instead: replace [parent] by"
        );
        let _ = writeln!(
            s,
            "# [embed] with field = \"{}\" and max = <largest count per parent>.",
            comment_text(p.collection_id())
        );
        let _ = writeln!(s, "field = \"_parent\"");
    }
    let top: BTreeSet<&str> = c
        .fields
        .iter()
        .filter(|f| f.segments.len() == 1)
        .filter_map(|f| f.segments[0].as_deref())
        .collect();
    let meta = ["firestoreCreateTime", "firestoreUpdateTime"];
    if meta.iter().all(|m| !top.contains(m)) {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "# [metadata]                  # Firestore's own create/update times, as dates"
        );
        let _ = writeln!(s, "# create_time = \"{}\"", meta[0]);
        let _ = writeln!(s, "# update_time = \"{}\"", meta[1]);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "[fields]");
    if c.fields.is_empty() {
        let _ = writeln!(s, "# No field in the sampled documents.");
    } else {
        let _ = writeln!(
            s,
            "# Fields of the {} sampled documents: share of documents, types (documents).",
            c.sampled
        );
        let w = c
            .fields
            .iter()
            .take(MAX_OUTLINE)
            .map(|f| f.path.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        for f in c.fields.iter().take(MAX_OUTLINE) {
            let types = f
                .types
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let elements = if f.element_types.is_empty() {
                String::new()
            } else {
                format!(
                    "; elements: {}",
                    f.element_types
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(
                s,
                "#   {:<w$}  {:>6.1}%  {types}{elements}{}{}",
                comment_text(&f.path),
                f.frequency * 100.0,
                if f.in_array { " (in array)" } else { "" },
                if f.conflict { "  CONFLICT" } else { "" }
            );
        }
        if c.fields.len() > MAX_OUTLINE {
            let _ = writeln!(
                s,
                "#   … and {} more (see the plan report)",
                c.fields.len() - MAX_OUTLINE
            );
        }
    }
    let mut index_suggestions = Vec::new();
    for f in &c.fields {
        if f.suggestions.is_empty() {
            continue;
        }
        let _ = writeln!(s, "#");
        for x in &f.suggestions {
            let _ = writeln!(s, "# {}: {}", comment_text(&f.path), comment_text(&x.why));
        }
        for x in &f.suggestions {
            if let Some(rule) = &x.rule {
                let _ = writeln!(s, "# {rule}");
                if x.kind == "ref" {
                    if let Some(mp) = &f.mapping_path {
                        index_suggestions.push((mp.clone(), f.segments.clone()));
                    }
                }
            }
        }
    }
    if !index_suggestions.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "# Lookups by reference usually want an index (keys are target field names):"
        );
        for (_, segments) in index_suggestions {
            // Index keys are dotted target paths; a name with a dot cannot be one.
            let names: Option<Vec<&str>> = segments.iter().map(|x| x.as_deref()).collect();
            let Some(names) = names.filter(|n| n.iter().all(|x| !x.contains('.'))) else {
                continue;
            };
            let _ = writeln!(s, "# [[indexes]]");
            let _ = writeln!(s, "# keys = {{ {} = 1 }}", toml_str(&names.join(".")));
        }
    }
    s
}

/// Output-directory check, before anything is read: a directory that already holds
/// mapping files is refused unless `overwrite` (an operator's edits are never replaced
/// by accident). Returns the `*.toml` files already there.
pub fn check_out_dir(out: &Path, overwrite: bool) -> Result<Vec<PathBuf>> {
    if out.exists() && !out.is_dir() {
        return Err(Error::Config(format!(
            "--out {} exists and is not a directory",
            out.display()
        )));
    }
    let existing = toml_files(out)?;
    if !existing.is_empty() && !overwrite {
        return Err(Error::Config(format!(
            "--out {} already holds {} mapping file(s); pass --overwrite to replace the ones plan writes (others are kept), or choose a new directory",
            out.display(),
            existing.len()
        )));
    }
    Ok(existing)
}

fn toml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io("reading", dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    Ok(out)
}

/// Writes the files (each through a temporary file and a rename, so a crash never
/// leaves half a mapping). Files of `existing` that this run did not write are kept and
/// reported: `check` reads them too.
pub fn write(out: &Path, files: &[SkeletonFile], existing: Vec<PathBuf>) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io("creating", out, e))?;
    let written: BTreeSet<&str> = files.iter().map(|f| f.name.as_str()).collect();
    for f in files {
        let path = out.join(&f.name);
        let tmp = out.join(format!(".{}.tmp", f.name));
        std::fs::write(&tmp, &f.text).map_err(|e| Error::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("writing", &path, e))?;
    }
    for p in existing {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !written.contains(name) {
            tracing::warn!(
                file = %p.display(),
                "kept a mapping file plan did not write; `fireshift check` reads it too"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MappingSet;
    use crate::plan::infer::PatternStats;
    use crate::plan::names::names;
    use crate::plan::{report, CountMethod, Discovery, PatternPlan};
    use crate::test_support::{doc, v};
    use gcloud_sdk::google::firestore::v1::{value::ValueType, Document, MapValue};
    use std::collections::BTreeMap;

    /// A plan with awkward names: dotted and `$` fields, a collection id that needs a
    /// safe target, a conflict, suggestions of every kind.
    fn sample_plan() -> Plan {
        let mut patterns = BTreeMap::new();
        let mut add = |pattern: &str, docs: Vec<Document>| {
            let p = CollectionPattern::parse(pattern).unwrap();
            let mut stats = PatternStats::default();
            for d in &docs {
                stats.add(d);
            }
            patterns.insert(
                p.clone(),
                PatternPlan {
                    pattern: p,
                    discovered_by: Discovery::Root,
                    documents: docs.len() as u64,
                    count_method: CountMethod::Group,
                    stats,
                },
            );
        };
        let s = |x: &str| v(ValueType::StringValue(x.into()));
        add(
            "users",
            vec![
                doc(
                    "users/u1",
                    vec![("name", s("a")), ("born", s("2000-01-02"))],
                ),
                doc(
                    "users/u2",
                    vec![("name", s("b")), ("born", s("2001-03-04"))],
                ),
            ],
        );
        add(
            "content",
            vec![doc(
                "content/c1",
                vec![
                    ("authorId", s("u1")),
                    ("a.b", s("12")),
                    ("$weird", s("true")),
                    ("line\nbreak", s("x")),
                    (
                        "items",
                        v(ValueType::ArrayValue(
                            gcloud_sdk::google::firestore::v1::ArrayValue {
                                values: vec![v(ValueType::MapValue(MapValue {
                                    fields: [("buyerId".to_string(), s("u2"))].into(),
                                }))],
                            },
                        )),
                    ),
                    ("price", v(ValueType::DoubleValue(1.5))),
                    ("mixed", s("x")),
                ],
            )],
        );
        add(
            "content/{}/comments",
            vec![
                doc("content/c1/comments/k1", vec![("mixed", s("x"))]),
                doc(
                    "content/c1/comments/k2",
                    vec![("mixed", v(ValueType::IntegerValue(1)))],
                ),
            ],
        );
        add("_fireshift_x", vec![doc("_fireshift_x/a", vec![])]);
        add("system.users", vec![]);
        add("Users", vec![]);
        Plan {
            project: "p".into(),
            database_id: "(default)".into(),
            endpoint: "test".into(),
            sample: 10,
            full_scan: false,
            patterns,
            usage: Default::default(),
            warnings: vec![],
            elapsed: Default::default(),
        }
    }

    fn write_and_load(files: &[SkeletonFile]) -> Result<MappingSet, String> {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(dir.path().join(&f.name), &f.text).unwrap();
        }
        MappingSet::load(dir.path()).map_err(|e| e.to_string())
    }

    #[test]
    fn skeletons_pass_the_validator_as_written_and_with_every_suggestion_uncommented() {
        let plan = sample_plan();
        let r = report::build(&plan, "2026-01-01T00:00:00Z");
        let files = files(&plan, &r, "2026-01-01T00:00:00Z");
        assert_eq!(files.len(), plan.patterns.len());
        let set = write_and_load(&files).unwrap_or_else(|e| {
            panic!(
                "{e}\n{}",
                files.iter().map(|f| f.text.clone()).collect::<String>()
            )
        });
        assert_eq!(set.mappings().count(), plan.patterns.len());

        // Every suggested rule uncommented at once is still a valid set.
        let uncommented: Vec<SkeletonFile> = files
            .iter()
            .map(|f| SkeletonFile {
                name: f.name.clone(),
                text: f
                    .text
                    .lines()
                    .map(|l| {
                        if l.starts_with("# \"")
                            || l.starts_with("# [[indexes]]")
                            || l.starts_with("# keys = ")
                            || l.starts_with("# [metadata]")
                            || l.starts_with("# create_time")
                            || l.starts_with("# update_time")
                        {
                            l[2..].to_string()
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
            .collect();
        let all_text: String = uncommented.iter().map(|f| f.text.clone()).collect();
        for want in [
            r#""authorId" = { ref = "users" }"#,
            r#""items.buyerId" = { ref = "users" }"#,
            r#""born" = { cast = "date", format = "%Y-%m-%d" }"#,
            r#""`a.b`" = { cast = "int64" }"#,
            r#""$weird" = { cast = "bool" }"#,
            r#""price" = { cast = "decimal128" }"#,
            r#"keys = { "items.buyerId" = 1 }"#,
        ] {
            assert!(all_text.contains(want), "missing {want}:\n{all_text}");
        }
        let set = write_and_load(&uncommented).unwrap_or_else(|e| panic!("{e}\n{all_text}"));
        let comments = set
            .mappings()
            .find(|m| m.collection.starts_with("content/"))
            .unwrap();
        assert_eq!(comments.collection, "content/{contentId}/comments");
        assert_eq!(comments.target, "content.comments");
    }

    #[test]
    fn names_are_safe_and_unique() {
        let plan = sample_plan();
        let n = names(plan.patterns.keys());
        let get = |p: &str| n[&CollectionPattern::parse(p).unwrap()].clone();
        assert_eq!(get("_fireshift_x").0, "fs__fireshift_x");
        assert_eq!(get("system.users").0, "fs_system.users");
        let (users, users_cap) = (get("users").1, get("Users").1);
        assert_ne!(users.to_lowercase(), users_cap.to_lowercase());
        assert_eq!(get("content/{}/comments").1, "content.comments.toml");
        assert_eq!(
            named_pattern(
                &CollectionPattern::parse("edge_cases/{}/children/{}/stories/{}/x").unwrap()
            ),
            "edge_cases/{edgeCaseId}/children/{childrenId}/stories/{storyId}/x"
        );
        assert_eq!(
            named_pattern(&CollectionPattern::parse("a/{}/a/{}/b").unwrap()),
            "a/{aId}/a/{aId2}/b"
        );
    }

    #[test]
    fn out_dir_with_mappings_is_refused_without_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_out_dir(&dir.path().join("new"), false)
            .unwrap()
            .is_empty());
        std::fs::write(dir.path().join("users.toml"), "collection = \"users\"\n").unwrap();
        let err = check_out_dir(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("--overwrite"), "{err}");
        assert_eq!(check_out_dir(dir.path(), true).unwrap().len(), 1);
    }
}
