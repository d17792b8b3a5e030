//! Compiling the `[fields]` table of one mapping file into its [`RuleNode`] tree: each
//! entry checked on its own (keys that cannot apply together, casts, defaults,
//! references to mapped collections), then against the others (rules that can never
//! apply, two rules writing one name). Every problem goes to the error list.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use mongodb::bson::{Bson, DateTime, Document};
use toml::Spanned;

use super::cast::{cast_value, check_date_format};
use super::names::{check_output_name, parse_field_path, parse_pattern};
use super::tree::{Cast, FieldRule, RefRule, RuleNode};
use crate::mapping::load::{self, MappingError, SourceFile};
use crate::mapping::spec::{CastType, FieldSpec, RefFrom};
use crate::path::CollectionPattern;

/// What compiling rules needs from the rest of the set.
pub struct RuleContext<'a> {
    pub file: &'a SourceFile,
    /// Patterns that have a mapping file (and can therefore be referenced).
    pub known: &'a BTreeSet<CollectionPattern>,
    /// A file that failed to parse may map any collection: references to unmapped
    /// collections are not reported (they may be follow-ons of that file's error).
    pub any_known: bool,
}

/// Compiles the `[fields]` table of one file; problems go to `errors`.
pub fn compile_fields(
    cx: &RuleContext<'_>,
    fields: &BTreeMap<Spanned<String>, Spanned<FieldSpec>>,
    errors: &mut Vec<MappingError>,
) -> RuleNode {
    let mut root = RuleNode::default();
    let mut compiled: Vec<(Vec<String>, FieldRule)> = Vec::new();
    for (key, spec) in fields {
        let span = key.span();
        let segments = match parse_field_path(key.get_ref()) {
            Ok(s) => s,
            Err(e) => {
                errors.push(cx.file.error(
                    span,
                    e,
                    "write nested fields as `a.b`; quote a segment that holds a dot in backticks: \"`a.b`.c\"",
                ));
                continue;
            }
        };
        if let Some(rule) = compile_rule(cx, key.get_ref(), span, spec, errors) {
            compiled.push((segments, rule));
        }
    }
    // A rule under a field that is dropped, cast or a reference could never apply.
    for (segments, rule) in &compiled {
        for (other_segments, other) in &compiled {
            let is_prefix = other_segments.len() < segments.len()
                && segments[..other_segments.len()] == other_segments[..];
            if !is_prefix {
                continue;
            }
            let what = if other.drop {
                "drops"
            } else if other.cast.is_some() {
                "casts"
            } else if other.reference.is_some() {
                "makes a reference of"
            } else {
                continue;
            };
            errors.push(cx.file.error(
                rule.span.clone(),
                format!(
                    "rule for `{}` can never apply: the rule for `{}` {what} the field that holds it",
                    rule.path, other.path
                ),
                format!("remove one of the two rules, or move the nested one out of `{}`", other.path),
            ));
        }
    }
    // Two rules giving one name at the same level would overwrite each other.
    let mut by_level: BTreeMap<Vec<String>, Vec<(&str, &FieldRule)>> = BTreeMap::new();
    for (segments, rule) in &compiled {
        if rule.drop {
            continue;
        }
        let (last, parent) = segments.split_last().expect("non-empty path");
        let name = rule.rename.as_deref().unwrap_or(last);
        by_level
            .entry(parent.to_vec())
            .or_default()
            .push((name, rule));
    }
    for rules in by_level.values() {
        let mut seen: BTreeMap<&str, &FieldRule> = BTreeMap::new();
        for (name, rule) in rules {
            if let Some(first) = seen.insert(name, rule) {
                errors.push(cx.file.error(
                    rule.span.clone(),
                    format!(
                        "rules for `{}` and `{}` both write the field `{name}`",
                        first.path, rule.path
                    ),
                    "rename one of them to another name",
                ));
            }
        }
    }
    for (segments, rule) in compiled {
        let mut node = &mut root;
        for s in &segments {
            node = node.children.entry(s.clone()).or_default();
        }
        node.rule = Some(rule);
    }
    root
}

fn compile_rule(
    cx: &RuleContext<'_>,
    path: &str,
    key_span: Range<usize>,
    spec: &Spanned<FieldSpec>,
    errors: &mut Vec<MappingError>,
) -> Option<FieldRule> {
    let f = cx.file;
    let s = spec.get_ref();
    let before = errors.len();
    let on = |v: Option<&Spanned<bool>>| v.is_some_and(|b| *b.get_ref());
    let drop = on(s.drop.as_ref());
    if drop {
        let others: Vec<&str> = [
            ("rename", s.rename.is_some()),
            ("default", s.default.is_some()),
            ("required", on(s.required.as_ref())),
            ("cast", s.cast.is_some()),
            ("format", s.format.is_some()),
            ("unit", s.unit.is_some()),
            ("ref", s.reference.is_some()),
            ("ref_from", s.ref_from.is_some()),
            ("as", s.repr.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect();
        if !others.is_empty() {
            errors.push(f.error(
                key_span.clone(),
                format!(
                    "field `{path}` is dropped, so {} would have no effect",
                    others
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "remove `drop = true` or the other keys",
            ));
        }
    }
    let rename = s.rename.as_ref().map(|r| {
        if let Err(e) = check_output_name(r.get_ref()) {
            errors.push(f.error(
                r.span(),
                format!("rename of `{path}`: {e}"),
                "a rename gives the last segment a new plain name; it cannot move the field",
            ));
        }
        r.get_ref().clone()
    });
    let required = on(s.required.as_ref());
    if required && s.default.is_some() {
        errors.push(f.error(
            s.required.as_ref().expect("set").span(),
            format!("field `{path}` has a default, so `required` can never fail"),
            "remove `required` or `default`",
        ));
    }
    let cast = s.cast.as_ref().map(|c| Cast {
        to: *c.get_ref(),
        format: s.format.as_ref().map(|x| x.get_ref().clone()),
        unit: s.unit.as_ref().map(|u| *u.get_ref()).unwrap_or_default(),
    });
    let is_date = cast.as_ref().is_some_and(|c| c.to == CastType::Date);
    for (key, span) in [
        ("format", s.format.as_ref().map(|x| x.span())),
        ("unit", s.unit.as_ref().map(|x| x.span())),
    ] {
        if let (Some(span), false) = (span, is_date) {
            errors.push(f.error(
                span,
                format!("`{key}` of `{path}` only applies to `cast = \"date\"`"),
                format!("add `cast = \"date\"` or remove `{key}`"),
            ));
        }
    }
    if let (Some(fmt), true) = (s.format.as_ref(), is_date) {
        if let Err(e) = check_date_format(fmt.get_ref()) {
            errors.push(f.error(
                fmt.span(),
                format!("`format` of `{path}`: {e}"),
                "use \"rfc3339\" or a strftime pattern such as \"%Y-%m-%d %H:%M:%S\"",
            ));
        }
    }
    let reference = s.reference.as_ref().and_then(|r| {
        if let Some(c) = &s.cast {
            errors.push(f.error(
                c.span(),
                format!(
                    "field `{path}` is a reference, which becomes the referenced document's `_id`; `cast = \"{}\"` cannot apply to it",
                    c.get_ref().name()
                ),
                "remove `cast` (the `_id` type comes from the referenced mapping's identity)",
            ));
        }
        if let Some(d) = &s.default {
            errors.push(f.error(
                d.span(),
                format!("reference field `{path}` cannot have a default"),
                "remove `default`; a missing reference stays missing",
            ));
        }
        compile_ref(cx, path, r, s.ref_from.as_ref().map(|x| *x.get_ref()), errors)
    });
    if let (Some(rf), None) = (&s.ref_from, &s.reference) {
        errors.push(f.error(
            rf.span(),
            format!("`ref_from` of `{path}` needs `ref`"),
            "add `ref = \"<collection>\"` or remove `ref_from`",
        ));
    }
    let default = s
        .default
        .as_ref()
        .and_then(|d| match toml_to_bson(d.get_ref()) {
            Err(e) => {
                errors.push(f.error(
                    d.span(),
                    format!("default of `{path}`: {e}"),
                    "use a string, number, boolean, offset date-time, array or table",
                ));
                None
            }
            Ok(v) => match &cast {
                None => Some(v),
                Some(c) => match cast_value(v, c) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errors.push(f.error(
                            d.span(),
                            format!("default of `{path}` is impossible: {e}"),
                            format!("give a default that converts to {}", c.to.name()),
                        ));
                        None
                    }
                },
            },
        });
    (errors.len() == before).then(|| FieldRule {
        path: path.to_string(),
        rename,
        drop,
        default,
        required,
        cast,
        reference,
        repr: s.repr.as_ref().map(|r| *r.get_ref()),
        span: key_span,
    })
}

fn compile_ref(
    cx: &RuleContext<'_>,
    path: &str,
    r: &Spanned<String>,
    from: Option<RefFrom>,
    errors: &mut Vec<MappingError>,
) -> Option<RefRule> {
    let text = r.get_ref();
    let Some((pattern, placeholders)) = parse_pattern(text) else {
        errors.push(cx.file.error(
            r.span(),
            format!("`ref = \"{text}\"` of `{path}` is not a collection pattern"),
            "write a collection id (`users`) or a subcollection pattern (`users/{userId}/posts`)",
        ));
        return None;
    };
    if !cx.known.contains(&pattern) && cx.any_known {
        return None;
    }
    if !cx.known.contains(&pattern) {
        let mapped: Vec<String> = cx.known.iter().map(|p| p.to_string()).collect();
        let suggestion =
            load::did_you_mean(&pattern.to_string(), mapped.iter().map(|s| s.as_str()))
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
        errors.push(cx.file.error(
            r.span(),
            format!("`ref = \"{text}\"` of `{path}` names a collection that has no mapping file"),
            format!(
                "{suggestion}references resolve through the referenced collection's identity: add a mapping with `collection = \"{text}\"` (it may hold only that line) or fix the name"
            ),
        ));
        return None;
    }
    let from = from.unwrap_or_default();
    if from == RefFrom::Id && placeholders.iter().any(Option::is_none) {
        errors.push(cx.file.error(
            r.span(),
            format!(
                "`ref = \"{text}\"` of `{path}` reads an id, so every parent id of the path must come from a named placeholder"
            ),
            "name each placeholder after a placeholder of this mapping's `collection` or a source field (`users/{userId}/posts`), or set `ref_from = \"path\"` when the field holds document paths",
        ));
        return None;
    }
    Some(RefRule {
        text: text.clone(),
        pattern,
        placeholders,
        from,
        span: r.span(),
    })
}

/// A TOML value as BSON (integers are Int64, tables keep their order).
pub fn toml_to_bson(v: &toml::Value) -> Result<Bson, String> {
    Ok(match v {
        toml::Value::String(s) => Bson::String(s.clone()),
        toml::Value::Integer(i) => Bson::Int64(*i),
        toml::Value::Float(f) => Bson::Double(*f),
        toml::Value::Boolean(b) => Bson::Boolean(*b),
        toml::Value::Datetime(d) => {
            let text = d.to_string();
            let parsed = chrono::DateTime::parse_from_rfc3339(&text).map_err(|_| {
                format!("date-time `{text}` needs a date, a time and an offset (e.g. 2026-01-01T00:00:00Z)")
            })?;
            Bson::DateTime(DateTime::from_millis(parsed.timestamp_millis()))
        }
        toml::Value::Array(a) => Bson::Array(a.iter().map(toml_to_bson).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => {
            let mut d = Document::new();
            for (k, v) in t {
                d.insert(k.clone(), toml_to_bson(v)?);
            }
            Bson::Document(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_values_become_bson() {
        let v: toml::Table = toml::from_str(
            "a = 1\nb = 1.5\nc = \"s\"\nd = 2026-01-01T00:00:00Z\ne = [true]\nf = { z = 1, a = 2 }\ng = 2026-01-01",
        )
        .unwrap();
        let b = |k: &str| toml_to_bson(&v[k]);
        assert_eq!(b("a").unwrap(), Bson::Int64(1));
        assert_eq!(b("b").unwrap(), Bson::Double(1.5));
        assert_eq!(b("c").unwrap(), Bson::String("s".into()));
        assert_eq!(
            b("d").unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_000))
        );
        assert_eq!(b("e").unwrap(), Bson::Array(vec![Bson::Boolean(true)]));
        let f = b("f").unwrap();
        let keys: Vec<&String> = f.as_document().unwrap().keys().collect();
        assert_eq!(keys, vec!["z", "a"]);
        assert!(b("g").unwrap_err().contains("offset"));
    }
}
