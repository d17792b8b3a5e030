//! The `[[indexes]]` of a mapping compiled into [`IndexDef`]s (each checked on its
//! own: keys, TTL, hashed, sparse and partial), and the checks across all mappings
//! (names and key patterns that clash per collection, one text index per collection).

use std::ops::Range;
use std::sync::Arc;

use mongodb::bson::Bson;

use super::def::{default_name, IndexDef};
use crate::mapping::load::{MappingError, SourceFile};
use crate::mapping::spec::{IndexKind, IndexSpec};

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
            match crate::mapping::rules::toml_to_bson(&toml::Value::Table(p.get_ref().clone())) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

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
}
