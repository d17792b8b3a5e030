//! Field rules: the `[fields]` table compiled into a tree keyed by source field names,
//! and applied while a document converts (rename, drop, default, required, cast, ref).
//!
//! Rules are applied during the one conversion walk over the document, not after it:
//! a reference rule needs the Firestore value (a path), not its converted form, and
//! every rule addresses source names, whatever the field-name policy does to them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::str::FromStr;

use gcloud_sdk::google::firestore::v1::{value::ValueType, Value};
use mongodb::bson::{oid::ObjectId, Bson, DateTime, Decimal128, Document};
use serde::Serialize;
use toml::Spanned;

use super::load::{MappingError, SourceFile};
use super::spec::{CastType, EpochUnit, FieldSpec, RefFrom, RefRepr, UnmappedFields};
use super::MappingSet;
use crate::mapping::value::{
    field_name, to_bson_with, type_name, ConvertError, ConvertErrorKind, ConvertOptions,
    ResolveReference,
};
use crate::path::{CollectionPattern, DocPath};

/// The rules of one mapping, as a tree: `items.price` is the child `price` of `items`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleNode {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<FieldRule>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub children: BTreeMap<String, RuleNode>,
}

/// One compiled `[fields]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct FieldRule {
    /// The key as written, for messages.
    pub path: String,
    pub rename: Option<String>,
    pub drop: bool,
    /// Already cast.
    pub default: Option<Bson>,
    pub required: bool,
    pub cast: Option<Cast>,
    pub reference: Option<RefRule>,
    pub repr: Option<RefRepr>,
    #[serde(skip)]
    pub span: Range<usize>,
}

/// A cast and its options.
#[derive(Debug, Clone, Serialize)]
pub struct Cast {
    pub to: CastType,
    pub format: Option<String>,
    pub unit: EpochUnit,
}

/// A declared reference.
#[derive(Debug, Clone, Serialize)]
pub struct RefRule {
    /// As written: `users/{userId}/posts`.
    pub text: String,
    #[serde(skip)]
    pub pattern: CollectionPattern,
    /// Placeholder names of the referenced pattern's parent levels (`None` for `{}`).
    pub placeholders: Vec<Option<String>>,
    pub from: RefFrom,
    #[serde(skip)]
    pub span: Range<usize>,
}

/// Why a field refused a document: the dead-letter rule, field path and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub rule: &'static str,
    pub field: String,
    pub reason: String,
}

/// Splits a field path: `a.b`, `` `a.b`.c `` (backticks quote a segment holding dots).
pub fn parse_field_path(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let (seg, tail) = if let Some(quoted) = rest.strip_prefix('`') {
            let end = quoted
                .find('`')
                .ok_or_else(|| format!("unclosed backtick in field path `{s}`"))?;
            let tail = &quoted[end + 1..];
            if !(tail.is_empty() || tail.starts_with('.')) {
                return Err(format!(
                    "in field path `{s}`, a backtick-quoted segment must be followed by `.` or end the path"
                ));
            }
            (quoted[..end].to_string(), tail)
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            (rest[..end].to_string(), &rest[end..])
        };
        if seg.is_empty() {
            return Err(format!("field path `{s}` has an empty segment"));
        }
        if seg.contains('\0') {
            return Err(format!("field path `{s}` contains NUL"));
        }
        out.push(seg);
        match tail.strip_prefix('.') {
            Some(t) => rest = t,
            None => return Ok(out),
        }
    }
}

/// Whether a name is fit for a target field chosen by the mapping (a rename, the parent
/// key, …): non-empty, no `.`, no leading `$`, no NUL.
pub fn check_output_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a field name cannot be empty".into())
    } else if name.contains('.') {
        Err(format!("`{name}` contains `.`"))
    } else if name.starts_with('$') {
        Err(format!("`{name}` starts with `$`"))
    } else if name.contains('\0') {
        Err(format!("`{name}` contains NUL"))
    } else {
        Ok(())
    }
}

/// What compiling rules needs from the rest of the set.
pub struct RuleContext<'a> {
    pub file: &'a SourceFile,
    /// Patterns that have a mapping file (and can therefore be referenced).
    pub known: &'a BTreeSet<CollectionPattern>,
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
    if !cx.known.contains(&pattern) {
        let mapped: Vec<String> = cx.known.iter().map(|p| p.to_string()).collect();
        let suggestion =
            super::load::did_you_mean(&pattern.to_string(), mapped.iter().map(|s| s.as_str()))
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

/// Parses `users/{userId}/posts` into its pattern and placeholder names.
pub fn parse_pattern(s: &str) -> Option<(CollectionPattern, Vec<Option<String>>)> {
    let pattern = CollectionPattern::parse(s)?;
    let names = s
        .split('/')
        .skip(1)
        .step_by(2)
        .map(|p| {
            let name = &p[1..p.len() - 1];
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect();
    Some((pattern, names))
}

fn check_date_format(fmt: &str) -> Result<(), String> {
    if fmt == "rfc3339" {
        return Ok(());
    }
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        return Err(format!("`{fmt}` is not a valid strftime pattern"));
    }
    if !fmt.contains('%') {
        return Err(format!(
            "`{fmt}` has no `%` field: it can only match itself"
        ));
    }
    Ok(())
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

// ---------------------------------------------------------------------------------------
// Casts

/// Applies a cast: null stays null, arrays convert element by element.
pub fn cast_value(v: Bson, c: &Cast) -> Result<Bson, String> {
    match v {
        Bson::Null => Ok(Bson::Null),
        Bson::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, x)| cast_value(x, c).map_err(|e| format!("element [{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Bson::Array),
        v => cast_scalar(v, c),
    }
}

fn bson_type(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Document(_) => "map",
        Bson::Array(_) => "array",
        Bson::Boolean(_) => "boolean",
        Bson::Null => "null",
        Bson::Int32(_) => "int32",
        Bson::Int64(_) => "integer",
        Bson::DateTime(_) => "timestamp",
        Bson::Binary(_) => "bytes",
        Bson::ObjectId(_) => "objectid",
        Bson::Decimal128(_) => "decimal128",
        _ => "value",
    }
}

/// A short rendering of a value for a message.
pub fn render(v: &Bson) -> String {
    let mut s = match v {
        Bson::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

const TWO_POW_53: u64 = 1 << 53;
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

fn cast_scalar(v: Bson, c: &Cast) -> Result<Bson, String> {
    let fail = |v: &Bson, why: &str| {
        format!(
            "cannot cast {} {} to {}{why}",
            bson_type(v),
            render(v),
            c.to.name()
        )
    };
    let out = match (c.to, &v) {
        (CastType::String, Bson::String(_)) => v,
        (CastType::String, Bson::Int32(i)) => Bson::String(i.to_string()),
        (CastType::String, Bson::Int64(i)) => Bson::String(i.to_string()),
        (CastType::String, Bson::Double(d)) => Bson::String(d.to_string()),
        (CastType::String, Bson::Boolean(b)) => Bson::String(b.to_string()),
        (CastType::String, Bson::ObjectId(o)) => Bson::String(o.to_hex()),
        (CastType::String, Bson::Decimal128(d)) => Bson::String(d.to_string()),
        (CastType::String, Bson::DateTime(d)) => {
            Bson::String(d.try_to_rfc3339_string().map_err(|_| fail(&v, ""))?)
        }
        (CastType::Int32, Bson::Int32(_)) => v,
        (CastType::Int32, Bson::Int64(i)) => {
            Bson::Int32(i32::try_from(*i).map_err(|_| fail(&v, ": out of the int32 range"))?)
        }
        (CastType::Int32, Bson::Double(d)) => {
            if d.fract() == 0.0 && *d >= f64::from(i32::MIN) && *d <= f64::from(i32::MAX) {
                Bson::Int32(*d as i32)
            } else {
                return Err(fail(&v, ": not a whole number in the int32 range"));
            }
        }
        (CastType::Int32, Bson::String(s)) => Bson::Int32(
            s.trim()
                .parse()
                .map_err(|_| fail(&v, ": not a whole number in the int32 range"))?,
        ),
        (CastType::Int64, Bson::Int32(i)) => Bson::Int64(i64::from(*i)),
        (CastType::Int64, Bson::Int64(_)) => v,
        (CastType::Int64, Bson::Double(d)) => {
            if d.fract() == 0.0 && *d >= -TWO_POW_63 && *d < TWO_POW_63 {
                Bson::Int64(*d as i64)
            } else {
                return Err(fail(&v, ": not a whole number in the int64 range"));
            }
        }
        (CastType::Int64, Bson::String(s)) => Bson::Int64(
            s.trim()
                .parse()
                .map_err(|_| fail(&v, ": not a whole number in the int64 range"))?,
        ),
        (CastType::Double, Bson::Int32(i)) => Bson::Double(f64::from(*i)),
        (CastType::Double, Bson::Int64(i)) => {
            if i.unsigned_abs() > TWO_POW_53 {
                return Err(fail(
                    &v,
                    ": beyond 2^53 a double loses digits (cast to decimal128 instead)",
                ));
            }
            Bson::Double(*i as f64)
        }
        (CastType::Double, Bson::Double(_)) => v,
        (CastType::Double, Bson::String(s)) => {
            Bson::Double(s.trim().parse().map_err(|_| fail(&v, ": not a number"))?)
        }
        (CastType::Double, Bson::Decimal128(d)) => Bson::Double(
            d.to_string()
                .parse()
                .map_err(|_| fail(&v, ": not a number"))?,
        ),
        (CastType::Decimal128, Bson::Int32(i)) => Bson::Decimal128(decimal(&i.to_string())?),
        (CastType::Decimal128, Bson::Int64(i)) => Bson::Decimal128(decimal(&i.to_string())?),
        (CastType::Decimal128, Bson::Double(d)) => {
            if !d.is_finite() {
                return Err(fail(&v, ": not a finite number"));
            }
            // `{:e}` is the shortest text that reads back as the same double, so 19.99
            // becomes 19.99, not 19.989999999999998436805981327779591083526611328125.
            Bson::Decimal128(decimal(&format!("{d:e}"))?)
        }
        (CastType::Decimal128, Bson::String(s)) => {
            let t = s.trim();
            let ok = !t.is_empty()
                && t.chars()
                    .all(|ch| ch.is_ascii_digit() || matches!(ch, '.' | '-' | '+' | 'e' | 'E'));
            if !ok {
                return Err(fail(&v, ": not a decimal number"));
            }
            Bson::Decimal128(decimal(t).map_err(|_| fail(&v, ": not a decimal number"))?)
        }
        (CastType::Decimal128, Bson::Decimal128(_)) => v,
        (CastType::Date, Bson::DateTime(_)) => v,
        (CastType::Date, Bson::String(s)) => {
            Bson::DateTime(parse_date(s, c).map_err(|e| fail(&v, &e))?)
        }
        (CastType::Date, Bson::Int32(n)) => {
            Bson::DateTime(epoch(i64::from(*n), c).ok_or_else(|| fail(&v, ": out of range"))?)
        }
        (CastType::Date, Bson::Int64(n)) => {
            Bson::DateTime(epoch(*n, c).ok_or_else(|| fail(&v, ": out of range"))?)
        }
        (CastType::Date, Bson::Double(d)) => {
            let ms = match c.unit {
                EpochUnit::Ms => *d,
                EpochUnit::S => d * 1000.0,
            };
            if !ms.is_finite() || ms.abs() >= TWO_POW_63 {
                return Err(fail(&v, ": out of range"));
            }
            Bson::DateTime(DateTime::from_millis(ms.floor() as i64))
        }
        (CastType::Bool, Bson::Boolean(_)) => v,
        (CastType::Bool, Bson::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Bson::Boolean(true),
            "false" | "no" | "0" | "off" => Bson::Boolean(false),
            _ => return Err(fail(&v, ": expected true/false, yes/no, on/off or 1/0")),
        },
        (CastType::Bool, Bson::Int32(0)) | (CastType::Bool, Bson::Int64(0)) => Bson::Boolean(false),
        (CastType::Bool, Bson::Int32(1)) | (CastType::Bool, Bson::Int64(1)) => Bson::Boolean(true),
        (CastType::ObjectId, Bson::ObjectId(_)) => v,
        (CastType::ObjectId, Bson::String(s)) => Bson::ObjectId(
            ObjectId::parse_str(s.trim()).map_err(|_| fail(&v, ": expected 24 hex digits"))?,
        ),
        _ => return Err(fail(&v, "")),
    };
    Ok(out)
}

fn decimal(s: &str) -> Result<Decimal128, String> {
    Decimal128::from_str(s).map_err(|e| format!("`{s}` is not a decimal128: {e}"))
}

fn epoch(n: i64, c: &Cast) -> Option<DateTime> {
    match c.unit {
        EpochUnit::Ms => Some(n),
        EpochUnit::S => n.checked_mul(1000),
    }
    .map(DateTime::from_millis)
}

fn parse_date(s: &str, c: &Cast) -> Result<DateTime, String> {
    let ms = match c.format.as_deref() {
        None | Some("rfc3339") => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map_err(|e| format!(": not an RFC 3339 date-time like 2026-01-31T12:00:00Z ({e}); set `format` for other layouts"))?
            .timestamp_millis(),
        Some(fmt) if fmt.contains("%z") || fmt.contains("%:z") => {
            chrono::DateTime::parse_from_str(s.trim(), fmt)
                .map_err(|e| format!(": does not match `{fmt}` ({e})"))?
                .timestamp_millis()
        }
        Some(fmt) => match chrono::NaiveDateTime::parse_from_str(s.trim(), fmt) {
            Ok(t) => t.and_utc().timestamp_millis(),
            Err(e) => chrono::NaiveDate::parse_from_str(s.trim(), fmt)
                .map_err(|_| format!(": does not match `{fmt}` ({e})"))?
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp_millis(),
        },
    };
    Ok(DateTime::from_millis(ms))
}

// ---------------------------------------------------------------------------------------
// Applying rules while converting

/// What the conversion walk of one document needs.
pub struct Walk<'a> {
    pub set: &'a MappingSet,
    /// The document being converted.
    pub path: &'a DocPath<'a>,
    /// Placeholder names of the document's own pattern, by parent level.
    pub placeholders: &'a [String],
    pub source: &'a HashMap<String, Value>,
    pub opts: ConvertOptions,
    pub unmapped: UnmappedFields,
    /// Representation of undeclared reference values.
    pub repr: RefRepr,
}

/// Resolves reference values through the mapping set, in one representation.
pub struct SetReferences<'a> {
    pub set: &'a MappingSet,
    pub repr: RefRepr,
}

impl ResolveReference for SetReferences<'_> {
    fn resolve(&self, path: &DocPath<'_>) -> Result<Bson, String> {
        self.set.render_reference(path, self.repr)
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn convert_error(path: &str, e: ConvertError) -> RuleError {
    let field = if e.field.is_empty() {
        path.to_string()
    } else if e.field.starts_with('[') {
        format!("{path}{}", e.field)
    } else {
        format!("{path}.{}", e.field)
    };
    RuleError {
        rule: match e.kind {
            ConvertErrorKind::Value => "convert",
            ConvertErrorKind::FieldName => "field-name",
            ConvertErrorKind::Reference => "reference",
        },
        field,
        reason: e.reason,
    }
}

impl Walk<'_> {
    /// Converts the document's top-level fields under `rules`.
    pub fn convert_document(&self, rules: &RuleNode) -> Result<Document, RuleError> {
        self.convert_map(self.source, Some(rules), "", true)
    }

    fn convert_map(
        &self,
        fields: &HashMap<String, Value>,
        node: Option<&RuleNode>,
        prefix: &str,
        top: bool,
    ) -> Result<Document, RuleError> {
        let mut keys: Vec<&String> = fields.keys().collect();
        keys.sort_unstable();
        let mut out = Document::new();
        for key in keys {
            let child = node.and_then(|n| n.children.get(key.as_str()));
            if top && child.is_none() && self.unmapped == UnmappedFields::Drop {
                continue;
            }
            let rule = child.and_then(|c| c.rule.as_ref());
            if rule.is_some_and(|r| r.drop) {
                continue;
            }
            let path = join(prefix, key);
            let value = &fields[key];
            let mut bson = match (rule, child) {
                (
                    Some(FieldRule {
                        reference: Some(r),
                        repr,
                        ..
                    }),
                    _,
                ) => self.convert_ref(value, r, repr.unwrap_or(self.repr), &path)?,
                (_, Some(c)) if !c.children.is_empty() => self.convert_nested(value, c, &path)?,
                (
                    Some(FieldRule {
                        repr: Some(repr), ..
                    }),
                    _,
                ) => {
                    let refs = SetReferences {
                        set: self.set,
                        repr: *repr,
                    };
                    to_bson_with(value, &self.opts, &refs).map_err(|e| convert_error(&path, e))?
                }
                _ => self.plain(value, &path)?,
            };
            if let Some(c) = rule.and_then(|r| r.cast.as_ref()) {
                bson = cast_value(bson, c).map_err(|reason| RuleError {
                    rule: "cast",
                    field: path.clone(),
                    reason,
                })?;
            }
            let name = match rule.and_then(|r| r.rename.clone()) {
                Some(n) => n,
                None => {
                    field_name(key, self.opts.field_names).map_err(|e| convert_error(&path, e))?
                }
            };
            if out.contains_key(&name) {
                return Err(clash(&path, &name));
            }
            out.insert(name, bson);
        }
        if let Some(node) = node {
            for (key, child) in &node.children {
                let Some(rule) = &child.rule else { continue };
                let value = fields.get(key);
                let absent = value.is_none();
                let null = matches!(
                    value.map(|v| &v.value_type),
                    Some(None | Some(ValueType::NullValue(_)))
                );
                if rule.required && (absent || null) {
                    return Err(RuleError {
                        rule: "required",
                        field: join(prefix, key),
                        reason: format!(
                            "required field `{}` is {}",
                            rule.path,
                            if absent { "missing" } else { "null" }
                        ),
                    });
                }
                if let (true, Some(d)) = (absent, &rule.default) {
                    let name = match &rule.rename {
                        Some(n) => n.clone(),
                        None => field_name(key, self.opts.field_names)
                            .map_err(|e| convert_error(&join(prefix, key), e))?,
                    };
                    if out.contains_key(&name) {
                        return Err(clash(&join(prefix, key), &name));
                    }
                    out.insert(name, d.clone());
                }
            }
        }
        Ok(out)
    }

    fn plain(&self, value: &Value, path: &str) -> Result<Bson, RuleError> {
        let refs = SetReferences {
            set: self.set,
            repr: self.repr,
        };
        to_bson_with(value, &self.opts, &refs).map_err(|e| convert_error(path, e))
    }

    /// A value whose nested fields have rules: maps get them, arrays pass them to their
    /// elements, anything else converts as usual.
    fn convert_nested(
        &self,
        value: &Value,
        node: &RuleNode,
        path: &str,
    ) -> Result<Bson, RuleError> {
        match &value.value_type {
            Some(ValueType::MapValue(m)) if !is_vector(m) => Ok(Bson::Document(self.convert_map(
                &m.fields,
                Some(node),
                path,
                false,
            )?)),
            Some(ValueType::ArrayValue(a)) => a
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| self.convert_nested(v, node, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Bson::Array),
            _ => self.plain(value, path),
        }
    }

    /// A declared reference: a string id (or path) or a reference value, or an array of
    /// them; null stays null.
    fn convert_ref(
        &self,
        value: &Value,
        r: &RefRule,
        repr: RefRepr,
        path: &str,
    ) -> Result<Bson, RuleError> {
        let err = |reason: String| RuleError {
            rule: "reference",
            field: path.to_string(),
            reason,
        };
        let target: String = match &value.value_type {
            None | Some(ValueType::NullValue(_)) => return Ok(Bson::Null),
            Some(ValueType::ArrayValue(a)) => {
                return a
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.convert_ref(v, r, repr, &format!("{path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Bson::Array)
            }
            Some(ValueType::StringValue(s)) => match r.from {
                RefFrom::Id => self.path_from_id(s, r).map_err(err)?,
                RefFrom::Path => crate::path::relative_path(s).to_string(),
            },
            Some(ValueType::ReferenceValue(name)) => crate::path::relative_path(name).to_string(),
            Some(_) => {
                return Err(err(format!(
                    "`ref = \"{}\"` expects a string id or a reference, found {}",
                    r.text,
                    type_name(value)
                )))
            }
        };
        let doc = DocPath::parse(&target).map_err(|e| err(e.to_string()))?;
        if doc.pattern() != r.pattern {
            return Err(err(format!(
                "`{target}` is in `{}`, but the mapping declares `ref = \"{}\"`",
                doc.pattern(),
                r.text
            )));
        }
        self.set.render_reference(&doc, repr).map_err(err)
    }

    /// Builds the referenced path from an id: parent ids come from this document's own
    /// placeholders of the same name, else from its top-level source fields.
    fn path_from_id(&self, id: &str, r: &RefRule) -> Result<String, String> {
        if id.is_empty() || id.contains('/') {
            return Err(format!(
                "`{id}` is not a document id for `ref = \"{}\"` (ids are non-empty and hold no `/`; set `ref_from = \"path\"` for paths)",
                r.text
            ));
        }
        let collections: Vec<String> = r
            .pattern
            .to_string()
            .split("/{}/")
            .map(str::to_string)
            .collect();
        let mut out = String::new();
        for (i, coll) in collections.iter().enumerate() {
            out.push_str(coll);
            out.push('/');
            if i + 1 == collections.len() {
                out.push_str(id);
            } else {
                let name = r.placeholders[i].as_deref().expect("validated: named");
                out.push_str(&self.placeholder(name, &r.text)?);
                out.push('/');
            }
        }
        Ok(out)
    }

    fn placeholder(&self, name: &str, text: &str) -> Result<String, String> {
        if let Some(level) = self.placeholders.iter().position(|p| p == name) {
            // The own path's parent id at that level: segments are coll/id/coll/id/…
            let parts: Vec<&str> = self.path.relative().split('/').collect();
            return Ok(parts[2 * level + 1].to_string());
        }
        match self.source.get(name).and_then(|v| v.value_type.as_ref()) {
            Some(ValueType::StringValue(s)) if !s.is_empty() && !s.contains('/') => Ok(s.clone()),
            Some(ValueType::ReferenceValue(n)) => DocPath::parse(n)
                .map(|p| p.id().to_string())
                .map_err(|e| e.to_string()),
            Some(_) => Err(format!(
                "placeholder {{{name}}} of `ref = \"{text}\"` needs the field `{name}` to hold a document id"
            )),
            None => Err(format!(
                "placeholder {{{name}}} of `ref = \"{text}\"` needs the field `{name}`, which is missing"
            )),
        }
    }
}

fn clash(path: &str, name: &str) -> RuleError {
    RuleError {
        rule: "rename",
        field: path.to_string(),
        reason: format!(
            "`{path}` would be written as `{name}`, which another field of the document already uses"
        ),
    }
}

fn is_vector(m: &gcloud_sdk::google::firestore::v1::MapValue) -> bool {
    matches!(
        m.fields.get("__type__").and_then(|v| v.value_type.as_ref()),
        Some(ValueType::StringValue(s)) if s == "__vector__"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast(to: CastType) -> Cast {
        Cast {
            to,
            format: None,
            unit: EpochUnit::Ms,
        }
    }

    #[test]
    fn field_paths_split_on_dots_outside_backticks() {
        assert_eq!(parse_field_path("a").unwrap(), vec!["a"]);
        assert_eq!(parse_field_path("a.b.c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse_field_path("`a.b`.c").unwrap(), vec!["a.b", "c"]);
        assert_eq!(parse_field_path("x.`$y`").unwrap(), vec!["x", "$y"]);
        assert!(parse_field_path("a..b")
            .unwrap_err()
            .contains("empty segment"));
        assert!(parse_field_path("`a").unwrap_err().contains("unclosed"));
        assert!(parse_field_path("`a`b").is_err());
    }

    #[test]
    fn casts_to_numbers_check_range_and_precision() {
        let c = cast(CastType::Int32);
        assert_eq!(cast_value(Bson::Int64(7), &c).unwrap(), Bson::Int32(7));
        assert_eq!(cast_value(Bson::Double(7.0), &c).unwrap(), Bson::Int32(7));
        assert_eq!(
            cast_value(Bson::String(" 12 ".into()), &c).unwrap(),
            Bson::Int32(12)
        );
        assert!(cast_value(Bson::Int64(1 << 40), &c)
            .unwrap_err()
            .contains("int32 range"));
        assert!(cast_value(Bson::Double(1.5), &c)
            .unwrap_err()
            .contains("whole number"));
        let c = cast(CastType::Int64);
        assert_eq!(cast_value(Bson::Double(-3.0), &c).unwrap(), Bson::Int64(-3));
        assert_eq!(
            cast_value(Bson::String("42".into()), &c).unwrap(),
            Bson::Int64(42)
        );
        assert!(cast_value(Bson::Double(f64::NAN), &c).is_err());
        let c = cast(CastType::Double);
        assert_eq!(cast_value(Bson::Int64(3), &c).unwrap(), Bson::Double(3.0));
        assert!(cast_value(Bson::Int64(i64::MAX), &c)
            .unwrap_err()
            .contains("2^53"));
        assert_eq!(
            cast_value(Bson::String("2.5".into()), &c).unwrap(),
            Bson::Double(2.5)
        );
        assert_eq!(
            cast_value(Bson::String("abc".into()), &c).unwrap_err(),
            "cannot cast string \"abc\" to double: not a number"
        );
    }

    #[test]
    fn money_becomes_decimal128_without_binary_noise() {
        let c = cast(CastType::Decimal128);
        let d = |s: &str| Bson::Decimal128(s.parse().unwrap());
        assert_eq!(
            cast_value(Bson::Double(19.99), &c).unwrap().to_string(),
            d("19.99").to_string()
        );
        assert_eq!(
            cast_value(Bson::Double(0.1), &c).unwrap().to_string(),
            "0.1"
        );
        assert_eq!(
            cast_value(Bson::Int64(1500), &c).unwrap().to_string(),
            "1500"
        );
        assert_eq!(
            cast_value(Bson::String("12.30".into()), &c)
                .unwrap()
                .to_string(),
            "12.30"
        );
        assert!(cast_value(Bson::Double(f64::INFINITY), &c)
            .unwrap_err()
            .contains("finite"));
        assert!(cast_value(Bson::String("12,30".into()), &c)
            .unwrap_err()
            .contains("decimal"));
        assert!(cast_value(Bson::Boolean(true), &c).is_err());
    }

    #[test]
    fn dates_from_rfc3339_patterns_and_epochs() {
        let c = cast(CastType::Date);
        assert_eq!(
            cast_value(Bson::String("2026-01-01T00:00:00.123456Z".into()), &c).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_123))
        );
        assert!(cast_value(Bson::String("01/02/2026".into()), &c)
            .unwrap_err()
            .contains("RFC 3339"));
        let pattern = Cast {
            format: Some("%d/%m/%Y".into()),
            ..cast(CastType::Date)
        };
        assert_eq!(
            cast_value(Bson::String("01/01/2026".into()), &pattern).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_000))
        );
        let pattern = Cast {
            format: Some("%Y-%m-%d %H:%M".into()),
            ..cast(CastType::Date)
        };
        assert_eq!(
            cast_value(Bson::String("2026-01-01 00:01".into()), &pattern).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_660_000))
        );
        assert_eq!(
            cast_value(Bson::Int64(1_767_225_600_000), &c).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_000))
        );
        let secs = Cast {
            unit: EpochUnit::S,
            ..cast(CastType::Date)
        };
        assert_eq!(
            cast_value(Bson::Int64(1_767_225_600), &secs).unwrap(),
            Bson::DateTime(DateTime::from_millis(1_767_225_600_000))
        );
        assert!(cast_value(Bson::Int64(i64::MAX), &secs).is_err());
        assert!(check_date_format("%Q").is_err());
        assert!(check_date_format("yyyy").is_err());
    }

    #[test]
    fn bools_strings_objectids_nulls_and_arrays() {
        let b = cast(CastType::Bool);
        assert_eq!(
            cast_value(Bson::String("Yes".into()), &b).unwrap(),
            Bson::Boolean(true)
        );
        assert_eq!(
            cast_value(Bson::Int64(0), &b).unwrap(),
            Bson::Boolean(false)
        );
        assert!(cast_value(Bson::Int64(2), &b).is_err());
        assert!(cast_value(Bson::String("maybe".into()), &b).is_err());
        let s = cast(CastType::String);
        assert_eq!(
            cast_value(Bson::Int64(5), &s).unwrap(),
            Bson::String("5".into())
        );
        assert_eq!(
            cast_value(Bson::Double(0.5), &s).unwrap(),
            Bson::String("0.5".into())
        );
        assert!(cast_value(Bson::Document(Document::new()), &s).is_err());
        let o = cast(CastType::ObjectId);
        let hex = "65a1b2c3d4e5f60718293a4b";
        assert_eq!(
            cast_value(Bson::String(hex.into()), &o).unwrap(),
            Bson::ObjectId(ObjectId::parse_str(hex).unwrap())
        );
        assert!(cast_value(Bson::String("nope".into()), &o)
            .unwrap_err()
            .contains("24 hex"));
        assert_eq!(cast_value(Bson::Null, &o).unwrap(), Bson::Null);
        let i = cast(CastType::Int64);
        assert_eq!(
            cast_value(
                Bson::Array(vec![Bson::String("1".into()), Bson::Double(2.0)]),
                &i
            )
            .unwrap(),
            Bson::Array(vec![Bson::Int64(1), Bson::Int64(2)])
        );
        assert!(cast_value(
            Bson::Array(vec![Bson::Int64(1), Bson::String("x".into())]),
            &i
        )
        .unwrap_err()
        .starts_with("element [1]"));
    }

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
