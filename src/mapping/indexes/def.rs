//! One declared index, validated ([`IndexDef`]): how it compares with another, its
//! `createIndexes` entry and its readable form; MongoDB's default index names.

use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use mongodb::bson::{doc, Document};
use serde::Serialize;

use crate::mapping::load::SourceFile;
use crate::mapping::spec::IndexKind;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
