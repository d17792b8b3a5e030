//! Mapping suggestions from a pattern's sample (pure): casts where the strings or numbers
//! of a field all have one shape, `ref` where a string field's values are ids of another
//! sampled collection, and notes for conflicts and reference values. At most one rule
//! per field, so that every suggestion can be uncommented at once and still validate.

use std::collections::BTreeMap;

use serde::Serialize;

use super::infer::{mapping_path, FieldStats, Kind, PatternStats, Segment};
use crate::path::CollectionPattern;

/// One suggestion for one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    /// `cast`, `ref` or `note` (no rule).
    pub kind: &'static str,
    /// The `[fields]` entry to write, e.g. `"authorId" = { ref = "users" }`; `None` for
    /// a note.
    pub rule: Option<String>,
    /// Why, in one sentence.
    pub why: String,
}

/// What suggestions need to know about the other collections: the sampled ids of each
/// root collection and how much of it the sample covers.
pub struct Universe<'a> {
    pub roots: Vec<RootIds<'a>>,
}

pub struct RootIds<'a> {
    pub pattern: &'a CollectionPattern,
    pub stats: &'a PatternStats,
    /// Documents in the collection, when counted.
    pub count: Option<u64>,
}

/// Field names that hold money: a double there is better stored as decimal128.
const MONEY: &[&str] = &[
    "price", "amount", "total", "subtotal", "cost", "balance", "fee", "fees", "tax", "discount",
    "revenue", "earnings", "payout", "refund", "tip",
];

fn last_name(path: &[Segment]) -> Option<&str> {
    match path.last() {
        Some(Segment::Name(n)) => Some(n),
        _ => None,
    }
}

fn is_money(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    MONEY.iter().any(|m| {
        lower == *m || lower.ends_with(&format!("_{m}")) || name.ends_with(&capitalised(m))
    })
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// Names of digit strings that are codes, not quantities.
fn is_code_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "code", "zip", "postal", "phone", "pin", "sku", "isbn", "iban", "account", "tel",
    ]
    .iter()
    .any(|c| lower.contains(c))
}

fn is_time_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.ends_with("At")
        || name.ends_with("Time")
        || name.ends_with("Date")
        || lower.ends_with("_at")
        || lower.ends_with("_time")
        || lower == "timestamp"
        || lower == "time"
        || lower == "date"
}

/// `userId` → `user`, `owner_id` → `owner`; `None` when the name is not foreign-key-like.
fn fk_stem(name: &str) -> Option<&str> {
    ["Id", "ID", "_id"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|stem| !stem.is_empty())
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn rule(path: &str, body: &str) -> Option<String> {
    Some(format!("{} = {{ {body} }}", toml_str(path)))
}

/// Suggestions for every field of a pattern, keyed by field path.
pub fn suggest(
    pattern: &CollectionPattern,
    stats: &PatternStats,
    universe: &Universe<'_>,
) -> BTreeMap<Vec<Segment>, Vec<Suggestion>> {
    let mut out = BTreeMap::new();
    for (path, f) in &stats.fields {
        let s = for_field(pattern, path, f, universe);
        if !s.is_empty() {
            out.insert(path.clone(), s);
        }
    }
    out
}

fn for_field(
    pattern: &CollectionPattern,
    path: &[Segment],
    f: &FieldStats,
    universe: &Universe<'_>,
) -> Vec<Suggestion> {
    let mut out = Vec::new();
    let note = |why: String| Suggestion {
        kind: "note",
        rule: None,
        why,
    };
    // Value kinds of the field itself, and of its array elements.
    let mut kinds = f.non_null_types();
    if kinds == [Kind::Array] {
        kinds = f
            .element_types
            .keys()
            .copied()
            .filter(|k| *k != Kind::Null)
            .collect();
    }
    if f.is_conflict() {
        let types = f
            .types
            .iter()
            .map(|(k, n)| format!("{} in {n}", k.name()))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(note(format!(
            "type conflict ({types} sampled documents): each value converts by its own type; unify it with a cast or clean the data"
        )));
    }
    if f.mixed_elements() {
        let types = f
            .element_types
            .keys()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ");
        out.push(note(format!("arrays mix element types ({types})")));
    }
    for (target, n) in &f.references {
        out.push(note(format!(
            "{n} reference value(s) into `{target}`: rewritten to the referenced document's target _id automatically"
        )));
    }
    let Some(mpath) = mapping_path(path) else {
        return out;
    };
    let name = last_name(path).unwrap_or_default();
    let in_array = if f.in_array {
        " (in array elements: the rule applies to each)"
    } else {
        ""
    };

    if kinds == [Kind::String] {
        let sh = &f.strings;
        let ne = sh.non_empty();
        if ne == 0 {
            return out;
        }
        if let Some(s) = reference_suggestion(pattern, &mpath, name, f, universe) {
            out.push(s);
            return out;
        }
        let cast = |body: &str, what: &str| Suggestion {
            kind: "cast",
            rule: rule(&mpath, body),
            why: format!("all {ne} sampled non-empty values are {what}{in_array}"),
        };
        let all = |n: u64| n == ne;
        let suggestion = if all(sh.rfc3339) {
            Some(cast("cast = \"date\"", "RFC 3339 date-times"))
        } else if all(sh.date_only) {
            Some(cast(
                "cast = \"date\", format = \"%Y-%m-%d\"",
                "dates (YYYY-MM-DD)",
            ))
        } else if all(sh.date_time_space) {
            Some(cast(
                "cast = \"date\", format = \"%Y-%m-%d %H:%M:%S\"",
                "date-times (YYYY-MM-DD HH:MM:SS)",
            ))
        } else if all(sh.boolean) {
            Some(cast("cast = \"bool\"", "true/false"))
        } else if all(sh.integer) && is_code_name(name) {
            Some(note(format!(
                "all {ne} sampled values are digits, but the name says code: keep it a string (a leading zero would be lost)"
            )))
        } else if all(sh.integer) {
            Some(cast("cast = \"int64\"", "whole numbers"))
        } else if all(sh.integer + sh.decimal) {
            Some(cast("cast = \"decimal128\"", "decimal numbers"))
        } else if all(sh.hex24) {
            Some(cast("cast = \"objectid\"", "24-digit hex ObjectId strings"))
        } else {
            None
        };
        if let Some(mut s) = suggestion {
            if sh.empty > 0 && s.rule.is_some() {
                // An empty string cannot cast: the document would be dead-lettered.
                s = note(format!(
                    "{}; but {} value(s) are empty strings, which this cast would dead-letter: `{}` once they are cleaned",
                    s.why,
                    sh.empty,
                    s.rule.unwrap_or_default()
                ));
            }
            out.push(s);
        } else if sh.leading_zero > 0 && all(sh.integer + sh.leading_zero) {
            out.push(note(format!(
                "digits with leading zeros in {} of {ne} values: a code, not a number; keep it a string",
                sh.leading_zero
            )));
        }
    } else if kinds == [Kind::Integer] {
        let n = &f.integers;
        if is_time_name(name) && n.values > 0 {
            if n.epoch_seconds == n.values {
                out.push(Suggestion {
                    kind: "cast",
                    rule: rule(&mpath, "cast = \"date\", unit = \"s\""),
                    why: format!(
                        "named like a time and all {} sampled values are seconds since the epoch (2001–2100){in_array}",
                        n.values
                    ),
                });
            } else if n.epoch_millis == n.values {
                out.push(Suggestion {
                    kind: "cast",
                    rule: rule(&mpath, "cast = \"date\", unit = \"ms\""),
                    why: format!(
                        "named like a time and all {} sampled values are milliseconds since the epoch (2001–2100){in_array}",
                        n.values
                    ),
                });
            }
        }
    } else if kinds == [Kind::Double] || kinds == [Kind::Integer, Kind::Double] {
        // A cast that some sampled value cannot take would dead-letter its document.
        if f.doubles.non_finite > 0 {
            out.push(note(format!(
                "{} NaN or infinite value(s): neither decimal128 nor a fixed numeric type holds them; keep the field as it is",
                f.doubles.non_finite
            )));
        } else if is_money(name) {
            out.push(Suggestion {
                kind: "cast",
                rule: rule(&mpath, "cast = \"decimal128\""),
                why: format!(
                    "named like money and holds {}: decimal128 keeps cents exact{in_array}",
                    if kinds.len() == 2 {
                        "integers and doubles"
                    } else {
                        "doubles"
                    }
                ),
            });
        } else if kinds.len() == 2 && f.integers.beyond_double > 0 {
            out.push(note(format!(
                "integers and doubles mixed, but {} integer(s) are beyond ±2^53, which a double cannot hold exactly: keep the field as it is",
                f.integers.beyond_double
            )));
        } else if kinds.len() == 2 {
            out.push(Suggestion {
                kind: "cast",
                rule: rule(&mpath, "cast = \"double\""),
                why: format!("integers and doubles mixed: one numeric type{in_array}"),
            });
        }
    }
    out
}

/// A `ref` when the field's string values are ids of sampled documents of one root
/// collection (or, with no id evidence, when its name says so and that collection
/// exists).
fn reference_suggestion(
    pattern: &CollectionPattern,
    mpath: &str,
    name: &str,
    f: &FieldStats,
    universe: &Universe<'_>,
) -> Option<Suggestion> {
    if f.strings.with_slash > 0 || f.strings.empty > 0 || f.fk_values.is_empty() {
        return None;
    }
    let stem = fk_stem(name);
    let values = f.fk_values.len() as u64;
    let best = universe
        .roots
        .iter()
        .map(|r| {
            let matches = f.fk_values.intersection(&r.stats.ids).count() as u64;
            (matches, r)
        })
        .filter(|(m, _)| *m > 0)
        .max_by_key(|(m, r)| (*m, std::cmp::Reverse(r.pattern.to_string())));
    let in_array = if f.in_array {
        " (in array elements)"
    } else {
        ""
    };
    if let Some((matches, r)) = best {
        // Without an id-like name, most values must match, not a coincidental few.
        if stem.is_some() || matches * 2 >= values {
            let coverage = match r.count {
                Some(c) if c > 0 => format!(
                    "; the sample holds {} of {c} `{}` documents",
                    r.stats.sampled, r.pattern
                ),
                _ => String::new(),
            };
            let self_ref = if r.pattern == pattern {
                " (a self-reference)"
            } else {
                ""
            };
            return Some(Suggestion {
                kind: "ref",
                rule: rule(mpath, &format!("ref = {}", toml_str(&r.pattern.to_string()))),
                why: format!(
                    "{matches} of {values} distinct sampled values are ids of sampled `{}` documents{self_ref}{coverage}{in_array}",
                    r.pattern
                ),
            });
        }
    }
    let stem = stem?;
    let lower = stem.to_ascii_lowercase();
    let by_name = universe.roots.iter().find(|r| {
        let id = r.pattern.collection_id().to_ascii_lowercase();
        [
            lower.clone(),
            format!("{lower}s"),
            format!("{lower}es"),
            lower
                .strip_suffix('y')
                .map(|s| format!("{s}ies"))
                .unwrap_or_default(),
        ]
        .contains(&id)
    })?;
    Some(Suggestion {
        kind: "ref",
        rule: rule(mpath, &format!("ref = {}", toml_str(&by_name.pattern.to_string()))),
        why: format!(
            "by its name only: none of {values} distinct sampled values is the id of a sampled `{}` document ({} sampled); check before using{in_array}",
            by_name.pattern, by_name.stats.sampled
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::typed_doc as doc;
    use gcloud_sdk::google::firestore::v1::value::ValueType;

    fn s(x: &str) -> ValueType {
        ValueType::StringValue(x.into())
    }
    fn p(x: &str) -> Vec<Segment> {
        x.split('.').map(|s| Segment::Name(s.into())).collect()
    }

    #[test]
    fn suggests_casts_refs_and_notes() {
        let users_p = CollectionPattern::parse("users").unwrap();
        let mut users = PatternStats::default();
        users.add(&doc("users/u1", vec![]));
        users.add(&doc("users/u2", vec![]));
        let orders_p = CollectionPattern::parse("orders").unwrap();
        let mut orders = PatternStats::default();
        for (i, (uid, day, zip, price)) in [
            ("u1", "2026-01-02", "01234", 1.5),
            ("u2", "2026-01-03", "12345", 2.0),
        ]
        .into_iter()
        .enumerate()
        {
            orders.add(&doc(
                &format!("orders/o{i}"),
                vec![
                    ("buyerId", s(uid)),
                    ("day", s(day)),
                    ("zip", s(zip)),
                    ("price", ValueType::DoubleValue(price)),
                    ("paidAt", ValueType::IntegerValue(1_767_225_600 + i as i64)),
                    ("qty", s(&format!("{}", i + 3))),
                    (
                        "mixed",
                        if i == 0 {
                            s("x")
                        } else {
                            ValueType::IntegerValue(1)
                        },
                    ),
                    ("ownerId", s("nobody")),
                    (
                        "big",
                        if i == 0 {
                            ValueType::IntegerValue(i64::MAX)
                        } else {
                            ValueType::DoubleValue(0.5)
                        },
                    ),
                    (
                        "fee",
                        ValueType::DoubleValue(if i == 0 { f64::NAN } else { 1.0 }),
                    ),
                    (
                        "ratio",
                        if i == 0 {
                            ValueType::IntegerValue(1)
                        } else {
                            ValueType::DoubleValue(0.5)
                        },
                    ),
                ],
            ));
        }
        let universe = Universe {
            roots: vec![RootIds {
                pattern: &users_p,
                stats: &users,
                count: Some(2),
            }],
        };
        let got = suggest(&orders_p, &orders, &universe);
        let rule_of = |f: &str| got[&p(f)].iter().find_map(|x| x.rule.clone());
        assert_eq!(
            rule_of("buyerId").as_deref(),
            Some(r#""buyerId" = { ref = "users" }"#)
        );
        assert_eq!(
            rule_of("day").as_deref(),
            Some(r#""day" = { cast = "date", format = "%Y-%m-%d" }"#)
        );
        assert_eq!(rule_of("zip"), None, "leading zeros: a note, no cast");
        assert_eq!(
            rule_of("price").as_deref(),
            Some(r#""price" = { cast = "decimal128" }"#)
        );
        assert_eq!(
            rule_of("paidAt").as_deref(),
            Some(r#""paidAt" = { cast = "date", unit = "s" }"#)
        );
        assert_eq!(
            rule_of("qty").as_deref(),
            Some(r#""qty" = { cast = "int64" }"#)
        );
        assert_eq!(
            rule_of("ratio").as_deref(),
            Some(r#""ratio" = { cast = "double" }"#)
        );
        // Casts some sampled value cannot take are notes, never rules.
        assert!(got[&p("big")].iter().all(|x| x.rule.is_none()), "{got:?}");
        assert!(got[&p("fee")].iter().all(|x| x.rule.is_none()), "{got:?}");
        assert_eq!(got[&p("mixed")][0].kind, "note");
        assert!(got[&p("mixed")][0].why.contains("type conflict"), "{got:?}");
        // No sampled id matches, but the name points at `users`? No: `owner` is not a
        // collection; nothing is suggested.
        assert!(!got.contains_key(&p("ownerId")));
    }

    #[test]
    fn money_and_naming_helpers() {
        assert!(is_code_name("postalCode") && is_code_name("zip") && !is_code_name("qty"));
        assert!(is_money("price") && is_money("totalPrice") && is_money("shipping_fee"));
        assert!(!is_money("priceless") && !is_money("rating"));
        assert!(is_time_name("createdAt") && is_time_name("expire_at") && !is_time_name("chat"));
        assert_eq!(fk_stem("userId"), Some("user"));
        assert_eq!(fk_stem("Id"), None);
        assert_eq!(toml_str("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        let parsed: toml::Value =
            toml::from_str(&format!("k = {}", toml_str("a\"b\\c\n\u{1}"))).unwrap();
        assert_eq!(parsed["k"].as_str(), Some("a\"b\\c\n\u{1}"));
    }
}
