//! Indexes declared in mappings: validated with the mappings, built after a collection's
//! copy (a bulk load without secondary indexes is faster), idempotently.
//!
//! One `createIndexes` command per index, so one refusal does not hide the others:
//! creating an index that exists with the same spec is a no-op the server reports
//! ("all indexes already exist"); an index the server cannot build (e.g. a text index on
//! a server without text search, code 67) is reported as refused with the server's code
//! and message; one that clashes with an existing index (same keys under another name,
//! code 85, or the same name with other keys or options, code 86) is reported as a
//! clash. Nothing is ever dropped: resolving a clash is the operator's call.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::Database;
use serde::Serialize;

use super::load::{MappingError, SourceFile};
use super::spec::{IndexKind, IndexSpec};
use super::MappingSet;
use crate::retry::RetryPolicy;

/// One index, validated.
#[derive(Debug, Clone, Serialize)]
pub struct IndexDef {
    pub collection: String,
    pub name: String,
    pub keys: Vec<(String, IndexKind)>,
    pub unique: bool,
    pub sparse: bool,
    pub expire_after_seconds: Option<i64>,
    pub partial: Option<Document>,
    #[serde(skip)]
    pub origin: Option<(Arc<SourceFile>, Range<usize>)>,
}

impl IndexDef {
    /// Same collection, name and spec (where it was declared aside).
    pub fn same_index(&self, other: &IndexDef) -> bool {
        self.collection == other.collection && self.name == other.name && self.same_spec(other)
    }

    pub fn same_spec(&self, other: &IndexDef) -> bool {
        self.keys == other.keys
            && self.unique == other.unique
            && self.sparse == other.sparse
            && self.expire_after_seconds == other.expire_after_seconds
            && self.partial == other.partial
    }

    /// The key pattern, as MongoDB takes it.
    pub fn key_document(&self) -> Document {
        let mut d = Document::new();
        for (k, kind) in &self.keys {
            d.insert(k.clone(), kind.bson());
        }
        d
    }

    /// The `createIndexes` entry.
    pub fn spec_document(&self) -> Document {
        let mut d = doc! { "key": self.key_document(), "name": &self.name };
        if self.unique {
            d.insert("unique", true);
        }
        if self.sparse {
            d.insert("sparse", true);
        }
        if let Some(s) = self.expire_after_seconds {
            d.insert("expireAfterSeconds", s);
        }
        if let Some(p) = &self.partial {
            d.insert("partialFilterExpression", p.clone());
        }
        d
    }

    /// `{userId: 1, createdAt: -1} unique ttl=3600s partial`
    pub fn describe(&self) -> String {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|(k, kind)| match kind {
                IndexKind::Asc | IndexKind::Desc => format!("{k}: {}", kind.label()),
                _ => format!("{k}: \"{}\"", kind.label()),
            })
            .collect();
        let mut s = format!("{{{}}}", keys.join(", "));
        if self.unique {
            s.push_str(" unique");
        }
        if self.sparse {
            s.push_str(" sparse");
        }
        if let Some(t) = self.expire_after_seconds {
            let _ = write!(s, " ttl={t}s");
        }
        if let Some(p) = &self.partial {
            let _ = write!(s, " partial={p}");
        }
        s
    }
}

/// MongoDB's default index name: `userId_1_createdAt_-1`, `bio_text`.
pub fn default_name(keys: &[(String, IndexKind)]) -> String {
    keys.iter()
        .map(|(k, kind)| format!("{k}_{}", kind.label()))
        .collect::<Vec<_>>()
        .join("_")
}

/// Compiles the `[[indexes]]` of one mapping whose target is `collection`.
pub fn compile(
    file: &Arc<SourceFile>,
    collection: &str,
    specs: &[toml::Spanned<IndexSpec>],
    errors: &mut Vec<MappingError>,
) -> Vec<IndexDef> {
    let mut out = Vec::new();
    for spec in specs {
        let span = spec.span();
        let s = spec.get_ref();
        let before = errors.len();
        let mut err = |span: Range<usize>, message: String, help: &str| {
            errors.push(file.error(span, message, help))
        };
        let keys = s.keys.get_ref().0.clone();
        let keys_span = s.keys.span();
        if keys.is_empty() {
            err(
                keys_span.clone(),
                "an index needs at least one key".into(),
                "write keys = { field = 1 }",
            );
        }
        for (k, _) in &keys {
            if k.is_empty()
                || k.starts_with('$')
                || k.contains('\0')
                || k.split('.').any(str::is_empty)
            {
                err(
                    keys_span.clone(),
                    format!("index key `{k}` is not a field path"),
                    "use target field names, dotted for nested fields (\"comments.author\")",
                );
            }
        }
        if keys.len() == 1
            && keys[0].0 == "_id"
            && matches!(keys[0].1, IndexKind::Asc | IndexKind::Desc)
        {
            err(
                keys_span.clone(),
                "the `_id` index always exists".into(),
                "remove this index",
            );
        }
        let unique = s.unique.as_ref().is_some_and(|u| *u.get_ref());
        let sparse = s.sparse.as_ref().is_some_and(|u| *u.get_ref());
        if unique && keys.iter().any(|(_, k)| *k == IndexKind::Hashed) {
            err(
                keys_span.clone(),
                "a hashed index cannot be unique".into(),
                "remove `unique` or use an ascending key",
            );
        }
        if let Some(ttl) = &s.expire_after_seconds {
            let plain = keys.len() == 1 && matches!(keys[0].1, IndexKind::Asc | IndexKind::Desc);
            if !plain {
                err(
                    ttl.span(),
                    "a TTL index (`expire_after_seconds`) has exactly one ascending or descending key, a date field".into(),
                    "keep one key, e.g. keys = { expiresAt = 1 }",
                );
            }
            if !(0..=i64::from(i32::MAX)).contains(ttl.get_ref()) {
                err(
                    ttl.span(),
                    format!(
                        "expire_after_seconds = {} is outside 0..=2147483647",
                        ttl.get_ref()
                    ),
                    "give a number of seconds",
                );
            }
        }
        if let (Some(p), true) = (&s.partial, sparse) {
            err(
                p.span(),
                "an index cannot be both sparse and partial".into(),
                "remove `sparse`; a partial filter such as { f = { \"$exists\" = true } } does the same",
            );
        }
        let partial = s.partial.as_ref().and_then(|p| {
            match super::rules::toml_to_bson(&toml::Value::Table(p.get_ref().clone())) {
                Ok(Bson::Document(d)) => Some(d),
                Ok(_) => None,
                Err(e) => {
                    err(
                        p.span(),
                        format!("partial filter: {e}"),
                        "write a MongoDB filter as a TOML table",
                    );
                    None
                }
            }
        });
        let name = match &s.name {
            Some(n)
                if n.get_ref().is_empty() || n.get_ref().contains('\0') || n.get_ref() == "*" =>
            {
                err(
                    n.span(),
                    format!("index name `{}` is not allowed", n.get_ref()),
                    "give a plain name",
                );
                continue;
            }
            Some(n) => n.get_ref().clone(),
            None => default_name(&keys),
        };
        if errors.len() == before {
            out.push(IndexDef {
                collection: collection.to_string(),
                name,
                keys,
                unique,
                sparse,
                expire_after_seconds: s.expire_after_seconds.as_ref().map(|t| *t.get_ref()),
                partial,
                origin: Some((file.clone(), span)),
            });
        }
    }
    out
}

/// Checks the indexes of all mappings together: per collection, names and key patterns
/// must not clash, and there is at most one text index.
pub fn check_all<'a>(all: impl Iterator<Item = &'a IndexDef>, errors: &mut Vec<MappingError>) {
    let mut seen: Vec<&IndexDef> = Vec::new();
    for ix in all {
        let (file, span) = ix.origin.as_ref().expect("declared indexes have an origin");
        if seen.iter().any(|o| o.same_index(ix)) {
            // Declared identically elsewhere: built once, checked once.
            continue;
        }
        for other in &seen {
            if other.collection != ix.collection || other.same_index(ix) {
                continue;
            }
            let at = other
                .origin
                .as_ref()
                .map(|(f, s)| {
                    let (l, c) = f.position(s.start);
                    format!("{}:{l}:{c}", f.path.display())
                })
                .unwrap_or_default();
            if other.name == ix.name {
                errors.push(file.error(
                    span.clone(),
                    format!(
                        "index `{}` on `{}` is declared twice with different specs (also at {at})",
                        ix.name, ix.collection
                    ),
                    "give one of them another `name`, or make them identical",
                ));
            } else if other.keys == ix.keys {
                errors.push(file.error(
                    span.clone(),
                    format!(
                        "index `{}` on `{}` has the same keys as index `{}` (at {at}); MongoDB refuses two indexes on one key pattern",
                        ix.name, ix.collection, other.name
                    ),
                    "keep one of them",
                ));
            } else if ix.keys.iter().any(|(_, k)| *k == IndexKind::Text)
                && other.keys.iter().any(|(_, k)| *k == IndexKind::Text)
            {
                errors.push(file.error(
                    span.clone(),
                    format!("`{}` has a second text index `{}` (the first is `{}` at {at}); MongoDB allows one per collection", ix.collection, ix.name, other.name),
                    "merge them into one text index listing every text field",
                ));
            }
        }
        seen.push(ix);
    }
}

/// What happened to one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IndexOutcome {
    Created,
    AlreadyExisted,
    /// The server cannot build it (e.g. code 67 `CannotCreateIndex`).
    Refused {
        code: i32,
        message: String,
    },
    /// Conflicts with an existing index (code 85 or 86).
    Clashes {
        code: i32,
        message: String,
    },
    /// The server could not be asked (network, timeout).
    Failed {
        message: String,
    },
}

/// The report of one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    pub collection: String,
    pub name: String,
    /// The spec, readable (`{email: 1} unique`).
    pub spec: String,
    #[serde(flatten)]
    pub outcome: IndexOutcome,
}

impl IndexReport {
    /// Created or already there.
    pub fn is_ok(&self) -> bool {
        matches!(
            self.outcome,
            IndexOutcome::Created | IndexOutcome::AlreadyExisted
        )
    }
}

/// Builds every index of the set (idempotent: existing identical indexes are left as
/// they are). Never stops at a refusal: each index gets its own report.
///
/// An index whose name already exists is compared with the declaration first, ignoring
/// what servers add on their own (`v`, `2dsphereIndexVersion`, number types), because
/// not every server does that comparison itself when asked to create it again.
pub async fn build(db: &Database, set: &MappingSet) -> Vec<IndexReport> {
    let mut out = Vec::new();
    let mut existing: std::collections::BTreeMap<String, Vec<Document>> = Default::default();
    for ix in set.indexes() {
        if !existing.contains_key(&ix.collection) {
            existing.insert(
                ix.collection.clone(),
                list_indexes(db, &ix.collection).await,
            );
        }
        let same_name = existing[&ix.collection]
            .iter()
            .find(|e| e.get_str("name").ok() == Some(ix.name.as_str()));
        let report = |outcome| IndexReport {
            collection: ix.collection.clone(),
            name: ix.name.clone(),
            spec: ix.describe(),
            outcome,
        };
        out.push(match same_name {
            Some(e) if equivalent(e, ix) => report(IndexOutcome::AlreadyExisted),
            Some(e) => report(IndexOutcome::Clashes {
                code: 86,
                message: format!(
                    "an index named `{}` already exists with another spec: {e}",
                    ix.name
                ),
            }),
            None => build_one(db, ix).await,
        });
    }
    out
}

/// The collection's indexes; none when it does not exist (or cannot be listed: the
/// `createIndexes` that follows then reports the real problem).
async fn list_indexes(db: &Database, collection: &str) -> Vec<Document> {
    match db.run_command(doc! { "listIndexes": collection }).await {
        Ok(reply) => reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map(|a| a.iter().filter_map(|b| b.as_document().cloned()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Whether an existing index (as `listIndexes` shows it) is the declared one.
fn equivalent(existing: &Document, ix: &IndexDef) -> bool {
    let number = |b: Option<&Bson>| match b {
        Some(Bson::Int32(i)) => Some(f64::from(*i)),
        Some(Bson::Int64(i)) => Some(*i as f64),
        Some(Bson::Double(d)) => Some(*d),
        _ => None,
    };
    let Ok(keys) = existing.get_document("key") else {
        return false;
    };
    let keys_match = keys.len() == ix.keys.len()
        && keys.iter().zip(&ix.keys).all(|((k, v), (want, kind))| {
            k == want
                && match kind.bson() {
                    Bson::String(s) => v.as_str() == Some(s.as_str()),
                    n => number(Some(v)) == number(Some(&n)),
                }
        });
    let flag = |k: &str| existing.get_bool(k).unwrap_or(false);
    let relaxed =
        |d: Option<&Document>| d.map(|d| Bson::Document(d.clone()).into_relaxed_extjson());
    keys_match
        && flag("unique") == ix.unique
        && flag("sparse") == ix.sparse
        && number(existing.get("expireAfterSeconds")) == ix.expire_after_seconds.map(|s| s as f64)
        && relaxed(existing.get_document("partialFilterExpression").ok())
            == relaxed(ix.partial.as_ref())
}

/// `DuplicateKey`: a unique index the existing documents violate.
const DUPLICATE_KEY: i32 = 11000;

async fn build_one(db: &Database, ix: &IndexDef) -> IndexReport {
    let cmd = doc! { "createIndexes": &ix.collection, "indexes": [ix.spec_document()] };
    let policy = RetryPolicy {
        deadline: Duration::from_secs(60),
        ..RetryPolicy::default()
    };
    let mut backoff = policy.backoff();
    let outcome = loop {
        match db.run_command(cmd.clone()).await {
            Ok(reply) => {
                let n = |k: &str| match reply.get(k) {
                    Some(Bson::Int32(i)) => Some(i64::from(*i)),
                    Some(Bson::Int64(i)) => Some(*i),
                    _ => None,
                };
                let same = n("numIndexesBefore").is_some()
                    && n("numIndexesBefore") == n("numIndexesAfter");
                let noted = reply
                    .get_str("note")
                    .is_ok_and(|s| s.contains("already exist"));
                break if same || noted {
                    IndexOutcome::AlreadyExisted
                } else {
                    IndexOutcome::Created
                };
            }
            Err(e) => {
                if let ErrorKind::Command(c) = e.kind.as_ref() {
                    if matches!(c.code, 85 | 86) {
                        break IndexOutcome::Clashes {
                            code: c.code,
                            message: c.message.clone(),
                        };
                    }
                    // 11000 is retried by the sink (two upserts of one `_id` racing),
                    // but here it means the data breaks a unique key: waiting changes
                    // nothing.
                    if c.code == DUPLICATE_KEY || !crate::mongo::is_retryable(&e) {
                        break IndexOutcome::Refused {
                            code: c.code,
                            message: c.message.clone(),
                        };
                    }
                }
                let err = crate::error::Error::Mongo {
                    operation: "createIndexes",
                    target: format!("{}.{}", db.name(), ix.collection),
                    uri: String::new(),
                    retryable: crate::mongo::is_retryable(&e),
                    message: e.to_string(),
                };
                if let Err(last) = backoff
                    .wait(err, &format!("create index {}", ix.name))
                    .await
                {
                    break IndexOutcome::Failed {
                        message: last.to_string(),
                    };
                }
            }
        }
    };
    IndexReport {
        collection: ix.collection.clone(),
        name: ix.name.clone(),
        spec: ix.describe(),
        outcome,
    }
}

/// The report as a table for a terminal, one line per index, then a summary line.
pub fn render_report(reports: &[IndexReport]) -> String {
    let wc = reports
        .iter()
        .map(|r| r.collection.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let wn = reports
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut s = String::new();
    let _ = writeln!(s, "{:<wc$}  {:<wn$}  result", "collection", "index");
    for r in reports {
        let result = match &r.outcome {
            IndexOutcome::Created => format!("created  {}", r.spec),
            IndexOutcome::AlreadyExisted => format!("already existed  {}", r.spec),
            IndexOutcome::Refused { code, message } => {
                format!("REFUSED by the server (code {code}): {message}  [{}]", r.spec)
            }
            IndexOutcome::Clashes { code, message } => format!(
                "CLASHES with an existing index (code {code}): {message}  [{}] — drop or rename one of them",
                r.spec
            ),
            IndexOutcome::Failed { message } => format!("FAILED: {message}  [{}]", r.spec),
        };
        let _ = writeln!(s, "{:<wc$}  {:<wn$}  {result}", r.collection, r.name);
    }
    let count = |f: fn(&IndexOutcome) -> bool| reports.iter().filter(|r| f(&r.outcome)).count();
    let _ = write!(
        s,
        "{} indexes: {} created, {} already existed, {} refused, {} clash, {} failed",
        reports.len(),
        count(|o| matches!(o, IndexOutcome::Created)),
        count(|o| matches!(o, IndexOutcome::AlreadyExisted)),
        count(|o| matches!(o, IndexOutcome::Refused { .. })),
        count(|o| matches!(o, IndexOutcome::Clashes { .. })),
        count(|o| matches!(o, IndexOutcome::Failed { .. })),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_text(text: &str) -> (Vec<IndexDef>, Vec<MappingError>) {
        #[derive(serde::Deserialize)]
        struct W {
            indexes: Vec<toml::Spanned<IndexSpec>>,
        }
        let w: W = toml::from_str(text).unwrap();
        let file = Arc::new(SourceFile::new("m.toml".into(), text.to_string()));
        let mut errors = Vec::new();
        let out = compile(&file, "users", &w.indexes, &mut errors);
        (out, errors)
    }

    #[test]
    fn default_names_follow_mongodb() {
        assert_eq!(
            default_name(&[
                ("userId".into(), IndexKind::Asc),
                ("createdAt".into(), IndexKind::Desc)
            ]),
            "userId_1_createdAt_-1"
        );
        assert_eq!(default_name(&[("bio".into(), IndexKind::Text)]), "bio_text");
    }

    #[test]
    fn specs_become_create_indexes_entries() {
        let (ix, errors) = compile_text(
            "[[indexes]]\nkeys = { email = 1 }\nunique = true\npartial = { email = { \"$exists\" = true } }\n\
             [[indexes]]\nkeys = { expiresAt = 1 }\nexpire_after_seconds = 0\nname = \"ttl\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            ix[0].spec_document(),
            doc! { "key": {"email": 1}, "name": "email_1", "unique": true, "partialFilterExpression": {"email": {"$exists": true}} }
        );
        assert_eq!(
            ix[1].spec_document(),
            doc! { "key": {"expiresAt": 1}, "name": "ttl", "expireAfterSeconds": 0i64 }
        );
        assert_eq!(
            ix[0].describe(),
            "{email: 1} unique partial={ \"email\": { \"$exists\": true } }"
        );
    }

    #[test]
    fn impossible_indexes_are_refused_with_line_and_fix() {
        let (_, errors) = compile_text(
            "[[indexes]]\nkeys = {}\n\
             [[indexes]]\nkeys = { a = 1, b = 1 }\nexpire_after_seconds = 60\n\
             [[indexes]]\nkeys = { h = \"hashed\" }\nunique = true\n\
             [[indexes]]\nkeys = { s = 1 }\nsparse = true\npartial = { s = 1 }\n\
             [[indexes]]\nkeys = { _id = 1 }\n\
             [[indexes]]\nkeys = { \"$x\" = 1 }\n\
             [[indexes]]\nkeys = { t = 1 }\nexpire_after_seconds = -1\n",
        );
        let shown: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
            .collect();
        assert_eq!(
            shown,
            vec![
                "2:8 an index needs at least one key",
                "5:24 a TTL index (`expire_after_seconds`) has exactly one ascending or descending key, a date field",
                "7:8 a hashed index cannot be unique",
                "12:11 an index cannot be both sparse and partial",
                "14:8 the `_id` index always exists",
                "16:8 index key `$x` is not a field path",
                "19:24 expire_after_seconds = -1 is outside 0..=2147483647",
            ]
        );
    }

    #[test]
    fn clashing_declarations_across_mappings_are_refused() {
        let (mut a, _) = compile_text(
            "[[indexes]]\nkeys = { email = 1 }\n[[indexes]]\nkeys = { bio = \"text\" }\n[[indexes]]\nkeys = { x = 1 }\nname = \"n\"\n",
        );
        let (b, _) = compile_text(
            "[[indexes]]\nkeys = { email = 1 }\nname = \"other\"\n[[indexes]]\nkeys = { about = \"text\" }\n[[indexes]]\nkeys = { y = 1 }\nname = \"n\"\n[[indexes]]\nkeys = { email = 1 }\n",
        );
        a.extend(b);
        let mut errors = Vec::new();
        check_all(a.iter(), &mut errors);
        let shown: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(shown[0].contains("same keys as index `email_1`"));
        assert!(shown[1].contains("second text index `about_text`"));
        assert!(shown[2].contains("index `n` on `users` is declared twice"));
    }

    #[test]
    fn the_report_names_every_index_and_its_outcome() {
        let r = vec![
            IndexReport {
                collection: "users".into(),
                name: "email_1".into(),
                spec: "{email: 1} unique".into(),
                outcome: IndexOutcome::Created,
            },
            IndexReport {
                collection: "content".into(),
                name: "caption_text".into(),
                spec: "{caption: \"text\"}".into(),
                outcome: IndexOutcome::Refused {
                    code: 67,
                    message: "text indexes are not supported".into(),
                },
            },
        ];
        let s = render_report(&r);
        assert!(
            s.contains("users       email_1       created  {email: 1} unique"),
            "{s}"
        );
        assert!(
            s.contains(
                "caption_text  REFUSED by the server (code 67): text indexes are not supported"
            ),
            "{s}"
        );
        assert!(
            s.ends_with("2 indexes: 1 created, 0 already existed, 1 refused, 0 clash, 0 failed")
        );
        assert!(!r[1].is_ok() && r[0].is_ok());
    }
}
