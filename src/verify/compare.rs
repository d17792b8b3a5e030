//! Pure comparison of BSON documents: the canonical form and its hash, field-level diffs
//! and deterministic sampling. No I/O; unit-tested without any server.
//!
//! # The canonical form (version 1)
//!
//! Two documents are *equal* for the verifier when their canonical forms are equal, and
//! the canonical hash is the SHA-256 of that form (lowercase hex). The rules, and why:
//!
//! * **Types are part of the value.** `Int64 5`, `Int32 5`, `Double 5.0` and `String "5"`
//!   all differ: a cast that went wrong is exactly what a parity check is for, and
//!   MongoDB queries (`{n: {$type: "long"}}`, string vs number comparison) see the
//!   difference too.
//! * **Doubles compare by their bits**, with one exception: every NaN is the same value
//!   (NaN payloads are not data anyone chose; `NaN == NaN` must hold for a document that
//!   holds NaN to be at parity). `-0.0` and `0.0` differ (DESIGN: -0.0 is preserved, so
//!   losing its sign is a defect).
//! * **Key order inside documents is not significant** (keys are sorted by their UTF-8
//!   bytes before encoding; duplicate keys keep their relative order). The transform
//!   always writes keys in sorted order, so an order difference can only come from a
//!   writer after the migration (an update with `$set`, a tool that rewrites documents)
//!   and never changes what a field holds; reporting it would bury real differences.
//!   Array order *is* significant.
//! * Everything else compares exactly: strings by bytes (no Unicode normalisation),
//!   dates by milliseconds (so a timestamp moved by 1 s differs, and the precision
//!   compared is the precision the mapping promises: the expected side went through the
//!   same transform), binaries by subtype and bytes, Decimal128 by its 16 bytes (so
//!   `1.0` and `1.00` differ, as MongoDB stores them differently), regex options as a
//!   sorted set.
//!
//! Encoding: each value is its BSON type byte followed by a payload — fixed-width
//! big-endian numbers, length-prefixed (u64 BE) strings and byte strings, a u64 count
//! followed by the elements for arrays and by `(key, value)` pairs for documents.
//!
//! # Fast path
//!
//! Byte-identical raw documents are equal without computing anything (the canonical form
//! is a function of the bytes). That is the common case — the target holds exactly what
//! the transform produced — so the hashes are only computed when the bytes differ.

use std::collections::HashMap;
use std::fmt::Write as _;

use mongodb::bson::raw::{RawArray, RawBsonRef, RawDocument};
use mongodb::bson::spec::ElementType;
use mongodb::bson::Bson;
use sha2::{Digest, Sha256};

/// The bit pattern every NaN is mapped to before encoding.
const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

/// A malformed BSON document (the server or the transform produced invalid bytes).
pub type RawError = mongodb::bson::raw::Error;

/// Where canonical bytes go: a hasher, or a buffer (tests, id keys).
trait Out {
    fn put(&mut self, bytes: &[u8]);
}

impl Out for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

fn put_len(out: &mut impl Out, n: usize) {
    out.put(&(n as u64).to_be_bytes());
}

fn put_str(out: &mut impl Out, s: &str) {
    put_len(out, s.len());
    out.put(s.as_bytes());
}

fn encode_value(out: &mut impl Out, v: RawBsonRef<'_>) -> Result<(), RawError> {
    out.put(&[v.element_type() as u8]);
    match v {
        RawBsonRef::Double(d) => {
            let bits = if d.is_nan() {
                CANONICAL_NAN
            } else {
                d.to_bits()
            };
            out.put(&bits.to_be_bytes());
        }
        RawBsonRef::String(s) | RawBsonRef::JavaScriptCode(s) | RawBsonRef::Symbol(s) => {
            put_str(out, s)
        }
        RawBsonRef::Document(d) => encode_document(out, d)?,
        RawBsonRef::Array(a) => encode_array(out, a)?,
        RawBsonRef::Binary(b) => {
            out.put(&[u8::from(b.subtype)]);
            put_len(out, b.bytes.len());
            out.put(b.bytes);
        }
        RawBsonRef::ObjectId(oid) => out.put(&oid.bytes()),
        RawBsonRef::Boolean(b) => out.put(&[u8::from(b)]),
        RawBsonRef::DateTime(dt) => out.put(&dt.timestamp_millis().to_be_bytes()),
        RawBsonRef::RegularExpression(re) => {
            put_str(out, re.pattern);
            let mut options: Vec<char> = re.options.chars().collect();
            options.sort_unstable();
            put_str(out, &options.into_iter().collect::<String>());
        }
        RawBsonRef::JavaScriptCodeWithScope(c) => {
            put_str(out, c.code);
            encode_document(out, c.scope)?;
        }
        RawBsonRef::Int32(i) => out.put(&i.to_be_bytes()),
        RawBsonRef::Int64(i) => out.put(&i.to_be_bytes()),
        RawBsonRef::Timestamp(ts) => {
            out.put(&ts.time.to_be_bytes());
            out.put(&ts.increment.to_be_bytes());
        }
        RawBsonRef::Decimal128(d) => out.put(&d.bytes()),
        // Deprecated type whose parts the bson crate keeps private; its debug rendering
        // holds the namespace and the ObjectId, which is all it is.
        RawBsonRef::DbPointer(p) => put_str(out, &format!("{p:?}")),
        RawBsonRef::Null | RawBsonRef::Undefined | RawBsonRef::MaxKey | RawBsonRef::MinKey => {}
    }
    Ok(())
}

fn sorted_entries(d: &RawDocument) -> Result<Vec<(&str, RawBsonRef<'_>)>, RawError> {
    let mut entries = d.iter().collect::<Result<Vec<_>, _>>()?;
    // Stable: duplicate keys (legal in BSON, rare) keep their relative order.
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(entries)
}

fn encode_document(out: &mut impl Out, d: &RawDocument) -> Result<(), RawError> {
    let entries = sorted_entries(d)?;
    put_len(out, entries.len());
    for (k, v) in entries {
        put_str(out, k);
        encode_value(out, v)?;
    }
    Ok(())
}

fn encode_array(out: &mut impl Out, a: &RawArray) -> Result<(), RawError> {
    let values = a.into_iter().collect::<Result<Vec<_>, _>>()?;
    put_len(out, values.len());
    for v in values {
        encode_value(out, v)?;
    }
    Ok(())
}

/// The canonical bytes of one value (used as a map key for `_id`s, and by tests).
pub fn canonical_bytes(v: RawBsonRef<'_>) -> Result<Vec<u8>, RawError> {
    let mut out = Vec::new();
    encode_value(&mut out, v)?;
    Ok(out)
}

/// The canonical hash of a document: SHA-256 of its canonical form, lowercase hex.
pub fn canonical_hash(d: &RawDocument) -> Result<String, RawError> {
    let mut h = Sha256::new();
    encode_value(&mut h, RawBsonRef::Document(d))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Whether two documents are equal under the canonical form: byte-identical documents
/// without hashing (the fast path), otherwise by canonical hash.
pub fn documents_equal(expected: &RawDocument, actual: &RawDocument) -> Result<bool, RawError> {
    if expected.as_bytes() == actual.as_bytes() {
        return Ok(true);
    }
    Ok(canonical_hash(expected)? == canonical_hash(actual)?)
}

fn values_equal(a: RawBsonRef<'_>, b: RawBsonRef<'_>) -> Result<bool, RawError> {
    Ok(canonical_bytes(a)? == canonical_bytes(b)?)
}

/// What changed at a field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Same type, different value.
    Value,
    /// Different BSON types (e.g. `long` expected, `string` found).
    Type,
    /// The field (or array element) is expected but absent from the target.
    Missing,
    /// The target has a field (or array element) the expected document does not.
    Extra,
}

/// One differing field: its path and both sides (`None` = absent on that side).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDiff {
    /// `stats.views`, `places[2].geo`, `["a.b"].c` (see [`push_key`]).
    pub path: String,
    pub change: Change,
    pub expected: Option<Bson>,
    pub actual: Option<Bson>,
}

/// The field diffs of two documents, at most `limit` of them; the second value is how
/// many more there were (counted, not kept).
pub fn diff_documents(
    expected: &RawDocument,
    actual: &RawDocument,
    limit: usize,
) -> Result<(Vec<FieldDiff>, usize), RawError> {
    let mut d = Differ {
        limit,
        diffs: Vec::new(),
        omitted: 0,
    };
    d.documents(&mut String::new(), expected, actual)?;
    Ok((d.diffs, d.omitted))
}

struct Differ {
    limit: usize,
    diffs: Vec<FieldDiff>,
    omitted: usize,
}

fn owned(v: RawBsonRef<'_>) -> Bson {
    // A value read from a valid document always converts; a malformed one becomes its
    // debug text rather than aborting the report.
    Bson::try_from(v.to_raw_bson()).unwrap_or_else(|_| Bson::String(format!("{v:?}")))
}

impl Differ {
    fn push(&mut self, path: &str, change: Change, e: Option<RawBsonRef>, a: Option<RawBsonRef>) {
        if self.diffs.len() >= self.limit {
            self.omitted += 1;
            return;
        }
        self.diffs.push(FieldDiff {
            path: path.to_string(),
            change,
            expected: e.map(owned),
            actual: a.map(owned),
        });
    }

    fn documents(
        &mut self,
        path: &mut String,
        expected: &RawDocument,
        actual: &RawDocument,
    ) -> Result<(), RawError> {
        let actual_entries = actual.iter().collect::<Result<Vec<_>, _>>()?;
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(actual_entries.len());
        for (i, (k, _)) in actual_entries.iter().enumerate() {
            index.entry(k).or_insert(i);
        }
        let mut seen = vec![false; actual_entries.len()];
        let base = path.len();
        for entry in expected.iter() {
            let (k, e) = entry?;
            push_key(path, k);
            match index.get(k) {
                Some(&i) if !seen[i] => {
                    seen[i] = true;
                    self.values(path, e, actual_entries[i].1)?;
                }
                _ => self.push(path, Change::Missing, Some(e), None),
            }
            path.truncate(base);
        }
        for (i, (k, a)) in actual_entries.iter().enumerate() {
            if !seen[i] {
                push_key(path, k);
                self.push(path, Change::Extra, None, Some(*a));
                path.truncate(base);
            }
        }
        Ok(())
    }

    fn values(
        &mut self,
        path: &mut String,
        e: RawBsonRef<'_>,
        a: RawBsonRef<'_>,
    ) -> Result<(), RawError> {
        if e.element_type() != a.element_type() {
            self.push(path, Change::Type, Some(e), Some(a));
            return Ok(());
        }
        match (e, a) {
            (RawBsonRef::Document(ed), RawBsonRef::Document(ad)) => self.documents(path, ed, ad),
            (RawBsonRef::Array(ea), RawBsonRef::Array(aa)) => {
                let ev = ea.into_iter().collect::<Result<Vec<_>, _>>()?;
                let av = aa.into_iter().collect::<Result<Vec<_>, _>>()?;
                let base = path.len();
                for i in 0..ev.len().max(av.len()) {
                    let _ = write!(path, "[{i}]");
                    match (ev.get(i), av.get(i)) {
                        (Some(x), Some(y)) => self.values(path, *x, *y)?,
                        (Some(x), None) => self.push(path, Change::Missing, Some(*x), None),
                        (None, Some(y)) => self.push(path, Change::Extra, None, Some(*y)),
                        (None, None) => unreachable!("i < max(len)"),
                    }
                    path.truncate(base);
                }
                Ok(())
            }
            _ => {
                if !values_equal(e, a)? {
                    self.push(path, Change::Value, Some(e), Some(a));
                }
                Ok(())
            }
        }
    }
}

/// Appends a field name to a path: `a` → `a.b`; a name that would be ambiguous in a
/// dotted path (empty, or holding `.`, `[`, `]`, `"`, whitespace or control characters)
/// is written as a quoted JSON string in brackets: `a["x.y"]`, `["my field"]`.
pub fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && !key
            .chars()
            .any(|c| matches!(c, '.' | '[' | ']' | '"') || c.is_whitespace() || c.is_control());
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&serde_json::to_string(key).expect("a string serializes"));
        path.push(']');
    }
}

/// MongoDB's `$type` alias of a value's BSON type (`long`, `string`, `date`, …).
pub fn type_name(v: &Bson) -> &'static str {
    element_type_name(v.element_type())
}

fn element_type_name(t: ElementType) -> &'static str {
    match t {
        ElementType::Double => "double",
        ElementType::String => "string",
        ElementType::EmbeddedDocument => "object",
        ElementType::Array => "array",
        ElementType::Binary => "binData",
        ElementType::Undefined => "undefined",
        ElementType::ObjectId => "objectId",
        ElementType::Boolean => "bool",
        ElementType::DateTime => "date",
        ElementType::Null => "null",
        ElementType::RegularExpression => "regex",
        ElementType::DbPointer => "dbPointer",
        ElementType::JavaScriptCode => "javascript",
        ElementType::Symbol => "symbol",
        ElementType::JavaScriptCodeWithScope => "javascriptWithScope",
        ElementType::Int32 => "int",
        ElementType::Timestamp => "timestamp",
        ElementType::Int64 => "long",
        ElementType::Decimal128 => "decimal",
        ElementType::MaxKey => "maxKey",
        ElementType::MinKey => "minKey",
    }
}

/// A short human rendering of a value with its type, for the terminal and HTML:
/// `long 5`, `string "5"`, `date 2026-01-01T00:00:01Z`, `double NaN`; containers and
/// rarer types as canonical extended JSON. At most `max` characters (then `…`).
pub fn display_value(v: &Bson, max: usize) -> String {
    let body = match v {
        Bson::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Double(d) if d.is_nan() => "NaN".into(),
        Bson::Double(d) if *d == 0.0 && d.is_sign_negative() => "-0.0".into(),
        Bson::Double(d) => format!("{d:?}"),
        Bson::Boolean(b) => b.to_string(),
        Bson::Null => "null".into(),
        Bson::DateTime(dt) => dt
            .try_to_rfc3339_string()
            .unwrap_or_else(|_| format!("{} ms", dt.timestamp_millis())),
        Bson::ObjectId(o) => o.to_hex(),
        other => other.clone().into_canonical_extjson().to_string(),
    };
    format!("{} {}", type_name(v), truncate(&body, max))
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Deterministic sampling: whether the document `name` is in a sample of fraction `p`.
///
/// The decision depends only on the name (FNV-1a 64 over its bytes, then the splitmix64
/// finaliser so that names differing in one character spread over the whole range), so
/// a rerun, a resumed run or another machine samples the same documents, and a sample of
/// 0.1 is a subset of a sample of 0.2.
pub fn in_sample(name: &str, p: f64) -> bool {
    if p >= 1.0 {
        return true;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    ((h >> 11) as f64 / (1u64 << 53) as f64) < p
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{doc, spec::BinarySubtype, Binary, DateTime, Document, RawDocumentBuf};

    fn raw(d: Document) -> RawDocumentBuf {
        RawDocumentBuf::from_document(&d).unwrap()
    }

    fn eq(a: Document, b: Document) -> bool {
        documents_equal(&raw(a), &raw(b)).unwrap()
    }

    #[test]
    fn nan_equals_nan_whatever_the_payload() {
        let other_nan = f64::from_bits(0x7ff8_0000_0000_0001);
        assert!(other_nan.is_nan());
        assert!(eq(doc! {"x": f64::NAN}, doc! {"x": f64::NAN}));
        assert!(eq(doc! {"x": f64::NAN}, doc! {"x": other_nan}));
        assert!(!eq(doc! {"x": f64::NAN}, doc! {"x": 0.0}));
    }

    #[test]
    fn negative_zero_differs_from_zero() {
        assert!(!eq(doc! {"x": -0.0f64}, doc! {"x": 0.0f64}));
        let (diffs, _) =
            diff_documents(&raw(doc! {"x": -0.0f64}), &raw(doc! {"x": 0.0f64}), 10).unwrap();
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].change, Change::Value);
    }

    #[test]
    fn int64_int32_double_and_string_all_differ() {
        let forms = [
            doc! {"n": 5i64},
            doc! {"n": 5i32},
            doc! {"n": 5.0f64},
            doc! {"n": "5"},
        ];
        for (i, a) in forms.iter().enumerate() {
            for (j, b) in forms.iter().enumerate() {
                assert_eq!(eq(a.clone(), b.clone()), i == j, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn key_order_is_not_significant_at_any_depth_but_array_order_is() {
        assert!(eq(
            doc! {"a": 1, "b": {"x": 1, "y": [1, 2]}},
            doc! {"b": {"y": [1, 2], "x": 1}, "a": 1}
        ));
        assert!(!eq(doc! {"a": [1, 2]}, doc! {"a": [2, 1]}));
        // Same hash for reordered keys, different for different content.
        let h1 = canonical_hash(&raw(doc! {"a": 1, "b": 2})).unwrap();
        let h2 = canonical_hash(&raw(doc! {"b": 2, "a": 1})).unwrap();
        let h3 = canonical_hash(&raw(doc! {"a": 1, "b": 3})).unwrap();
        assert_eq!(h1, h2);
        assert_ne!(h1, h3);
        assert_eq!(h1.len(), 64);
        assert!(h1
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_uppercase()));
    }

    #[test]
    fn hash_is_stable_across_versions() {
        // Pinned: a change here changes every hash in every stored report (bump the
        // canonical form version in docs/verify-report.md if it is intended).
        assert_eq!(
            canonical_hash(&raw(doc! {"_id": "u1", "n": 5i64})).unwrap(),
            canonical_hash(&raw(doc! {"n": 5i64, "_id": "u1"})).unwrap()
        );
        let mut expected = Vec::new();
        expected.push(3u8);
        expected.extend(2u64.to_be_bytes());
        expected.extend(3u64.to_be_bytes());
        expected.extend(b"_id");
        expected.push(2);
        expected.extend(2u64.to_be_bytes());
        expected.extend(b"u1");
        expected.extend(1u64.to_be_bytes());
        expected.extend(b"n");
        expected.push(0x12);
        expected.extend(5i64.to_be_bytes());
        let d = raw(doc! {"n": 5i64, "_id": "u1"});
        assert_eq!(canonical_bytes(RawBsonRef::Document(&d)).unwrap(), expected);
    }

    #[test]
    fn container_boundaries_cannot_be_confused() {
        // Length prefixes: ["ab"] vs ["a", "b"], {"a": "bc"} vs {"ab": "c"}.
        assert!(!eq(doc! {"x": ["ab"]}, doc! {"x": ["a", "b"]}));
        assert!(!eq(doc! {"a": "bc"}, doc! {"ab": "c"}));
        assert!(!eq(doc! {"x": {}}, doc! {"x": []}));
        assert!(!eq(doc! {"x": Bson::Null}, doc! {}));
    }

    #[test]
    fn dates_compare_by_millisecond_and_binaries_by_subtype() {
        let t = DateTime::from_millis(1_767_225_600_000);
        assert!(!eq(
            doc! {"t": t},
            doc! {"t": DateTime::from_millis(t.timestamp_millis() + 1000)}
        ));
        let bin = |subtype| Binary {
            subtype,
            bytes: vec![1, 2],
        };
        assert!(!eq(
            doc! {"b": bin(BinarySubtype::Generic)},
            doc! {"b": bin(BinarySubtype::UserDefined(0x80))}
        ));
    }

    #[test]
    fn diff_reports_paths_with_both_values_and_type_changes() {
        let expected = raw(doc! {
            "_id": "u1",
            "stats": {"views": 10i64, "likes": 2i64},
            "places": [{"geo": 1}, {"geo": 2}, {"geo": {"lat": 1.5}}],
            "n": 5i64,
            "gone": true,
            "a.b": 1,
        });
        let actual = raw(doc! {
            "_id": "u1",
            "stats": {"likes": 2i64, "views": 11i64},
            "places": [{"geo": 1}, {"geo": 2}, {"geo": {"lat": 2.5}}, {"geo": 4}],
            "n": "5",
            "a.b": 2,
            "added": 1,
        });
        let (diffs, omitted) = diff_documents(&expected, &actual, 100).unwrap();
        assert_eq!(omitted, 0);
        let got: Vec<(&str, Change)> = diffs.iter().map(|d| (d.path.as_str(), d.change)).collect();
        assert_eq!(
            got,
            vec![
                ("stats.views", Change::Value),
                ("places[2].geo.lat", Change::Value),
                ("places[3]", Change::Extra),
                ("n", Change::Type),
                ("gone", Change::Missing),
                ("[\"a.b\"]", Change::Value),
                ("added", Change::Extra),
            ]
        );
        let n = &diffs[3];
        assert_eq!(n.expected, Some(Bson::Int64(5)));
        assert_eq!(n.actual, Some(Bson::String("5".into())));
        assert_eq!(display_value(n.expected.as_ref().unwrap(), 50), "long 5");
        assert_eq!(
            display_value(n.actual.as_ref().unwrap(), 50),
            "string \"5\""
        );
        assert_eq!(diffs[4].actual, None);
        assert_eq!(diffs[6].expected, None);
    }

    #[test]
    fn diff_is_empty_for_reordered_keys_and_capped_at_the_limit() {
        let (d, _) =
            diff_documents(&raw(doc! {"a": 1, "b": 2}), &raw(doc! {"b": 2, "a": 1}), 5).unwrap();
        assert!(d.is_empty());
        let many_e: Document = (0..30).map(|i| (format!("f{i}"), Bson::Int32(i))).collect();
        let many_a: Document = (0..30)
            .map(|i| (format!("f{i}"), Bson::Int32(i + 1)))
            .collect();
        let (d, omitted) = diff_documents(&raw(many_e), &raw(many_a), 10).unwrap();
        assert_eq!(d.len(), 10);
        assert_eq!(omitted, 20);
    }

    #[test]
    fn paths_quote_ambiguous_names() {
        let mut p = String::new();
        push_key(&mut p, "stats");
        push_key(&mut p, "views");
        assert_eq!(p, "stats.views");
        let mut p = String::from("x");
        push_key(&mut p, "a.b");
        push_key(&mut p, "my field");
        push_key(&mut p, "naïve");
        assert_eq!(p, "x[\"a.b\"][\"my field\"].naïve");
        let mut p = String::new();
        push_key(&mut p, "");
        assert_eq!(p, "[\"\"]");
    }

    #[test]
    fn display_values_name_their_type_and_are_truncated() {
        assert_eq!(
            display_value(&Bson::DateTime(DateTime::from_millis(1000)), 80),
            "date 1970-01-01T00:00:01Z"
        );
        assert_eq!(display_value(&Bson::Double(f64::NAN), 80), "double NaN");
        assert_eq!(display_value(&Bson::Double(-0.0), 80), "double -0.0");
        assert_eq!(
            display_value(&Bson::String("x".repeat(10)), 4),
            "string \"xxx…"
        );
        assert_eq!(truncate("ünï", 2), "ün…");
    }

    #[test]
    fn sampling_is_deterministic_nested_and_close_to_the_fraction() {
        let names: Vec<String> = (0..20_000).map(|i| format!("users/u{i}")).collect();
        let count = |p| names.iter().filter(|n| in_sample(n, p)).count();
        let tenth = count(0.1);
        assert!((1700..2300).contains(&tenth), "{tenth}");
        assert_eq!(count(1.0), names.len());
        for n in &names {
            assert_eq!(in_sample(n, 0.3), in_sample(n, 0.3));
            if in_sample(n, 0.1) {
                assert!(in_sample(n, 0.2), "0.1 sample ⊂ 0.2 sample");
            }
        }
    }
}
