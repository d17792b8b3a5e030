//! Firestore document names, collection patterns and the identity rules of DESIGN.md.
//!
//! A Firestore document name is `projects/P/databases/D/documents/<relative path>`, where
//! the relative path alternates collection ids and document ids:
//! `content/c1/comments/k9`. Everything that routes a document (which collection it
//! lands in) or names it in MongoDB (its `_id`, the `_id` a reference points to) is
//! derived from that path alone, so any machine on any rerun computes the same answer
//! without an id-map table.

use std::fmt;

/// The separator between the database root and the relative document path.
const DOCUMENTS_MARKER: &str = "/documents/";

/// Field that holds a subcollection document's parent `_id` in the target.
pub const PARENT_FIELD: &str = "_parent";

/// A relative document path split into its segments: `[coll, id, coll, id, …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocPath<'a> {
    relative: &'a str,
    segments: Vec<&'a str>,
}

/// Why a document name could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a Firestore document name: {reason}")]
pub struct PathError {
    pub name: String,
    pub reason: &'static str,
}

impl<'a> DocPath<'a> {
    /// Parses a full document name (`projects/…/documents/a/b`) or a relative path (`a/b`).
    pub fn parse(name: &'a str) -> Result<Self, PathError> {
        let relative = relative_path(name);
        let err = |reason| PathError {
            name: name.to_string(),
            reason,
        };
        if relative.is_empty() {
            return Err(err("empty path"));
        }
        let segments: Vec<&str> = relative.split('/').collect();
        if !segments.len().is_multiple_of(2) {
            return Err(err("a document path has an even number of segments"));
        }
        if segments.iter().any(|s| s.is_empty()) {
            return Err(err("empty path segment"));
        }
        Ok(Self { relative, segments })
    }

    /// The path below the database root, e.g. `content/c1/comments/k9`.
    pub fn relative(&self) -> &'a str {
        self.relative
    }

    /// The document id (last segment).
    pub fn id(&self) -> &'a str {
        self.segments[self.segments.len() - 1]
    }

    /// The id of the collection the document is in (`comments`).
    pub fn collection_id(&self) -> &'a str {
        self.segments[self.segments.len() - 2]
    }

    /// Collection depth: 1 for a root collection, 2 for its subcollection, …
    pub fn depth(&self) -> usize {
        self.segments.len() / 2
    }

    /// The parent document of a subcollection document; `None` at the root.
    pub fn parent(&self) -> Option<DocPath<'a>> {
        if self.depth() == 1 {
            return None;
        }
        let n = self.segments.len() - 2;
        let len = self.segments[..n].iter().map(|s| s.len()).sum::<usize>() + n - 1;
        Some(DocPath {
            relative: &self.relative[..len],
            segments: self.segments[..n].to_vec(),
        })
    }

    /// The collection pattern this document belongs to, ids replaced by `{}`:
    /// `content/{}/comments`.
    pub fn pattern(&self) -> CollectionPattern {
        let parts = self
            .segments
            .iter()
            .step_by(2)
            .map(|s| s.to_string())
            .collect();
        CollectionPattern { collections: parts }
    }
}

/// Strips `projects/P/databases/D/documents/` when present.
pub fn relative_path(name: &str) -> &str {
    match name.find(DOCUMENTS_MARKER) {
        Some(i) if name.starts_with("projects/") => &name[i + DOCUMENTS_MARKER.len()..],
        _ => name.trim_start_matches('/'),
    }
}

/// The full resource name of the database's document root.
pub fn documents_root(project: &str, database_id: &str) -> String {
    format!("projects/{project}/databases/{database_id}/documents")
}

/// A collection path with the document ids abstracted away, e.g. `users/{}/posts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CollectionPattern {
    collections: Vec<String>,
}

impl CollectionPattern {
    /// Parses `users/{}/posts` or `users/{userId}/posts` (placeholder names are ignored).
    pub fn parse(s: &str) -> Option<Self> {
        let segs: Vec<&str> = s.split('/').collect();
        if segs.len().is_multiple_of(2) || segs.iter().any(|x| x.is_empty()) {
            return None;
        }
        let ok_placeholders = segs
            .iter()
            .skip(1)
            .step_by(2)
            .all(|p| p.starts_with('{') && p.ends_with('}'));
        ok_placeholders.then(|| Self {
            collections: segs.iter().step_by(2).map(|c| c.to_string()).collect(),
        })
    }

    /// The last collection id (`posts`), as a collection-group query would name it.
    pub fn collection_id(&self) -> &str {
        &self.collections[self.collections.len() - 1]
    }

    pub fn depth(&self) -> usize {
        self.collections.len()
    }

    /// The default MongoDB collection: the collection ids joined by `.`
    /// (`content.comments`), the MongoDB convention for related namespaces.
    pub fn default_target(&self) -> String {
        self.collections.join(".")
    }
}

impl fmt::Display for CollectionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.collections.iter().enumerate() {
            if i > 0 {
                f.write_str("/{}/")?;
            }
            f.write_str(c)?;
        }
        Ok(())
    }
}

/// The default `keep` identity: a root document's `_id` is its Firestore id; a
/// subcollection document's `_id` is its relative path, because its id is only unique
/// under its parent.
pub fn default_target_id(path: &DocPath<'_>) -> String {
    if path.depth() == 1 {
        path.id().to_string()
    } else {
        path.relative().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_relative_names() {
        let p = DocPath::parse("projects/p/databases/(default)/documents/content/c1/comments/k9")
            .unwrap();
        assert_eq!(p.relative(), "content/c1/comments/k9");
        assert_eq!(p.id(), "k9");
        assert_eq!(p.collection_id(), "comments");
        assert_eq!(p.depth(), 2);
        assert_eq!(p.pattern().to_string(), "content/{}/comments");
        assert_eq!(p.pattern().default_target(), "content.comments");
        let parent = p.parent().unwrap();
        assert_eq!(parent.relative(), "content/c1");
        assert_eq!(parent.parent(), None);
        assert_eq!(DocPath::parse("users/u1").unwrap().relative(), "users/u1");
    }

    #[test]
    fn rejects_collection_paths_and_empty_segments() {
        assert!(DocPath::parse("users").is_err());
        assert!(DocPath::parse("users//x/y").is_err());
        assert!(DocPath::parse("projects/p/databases/d/documents/").is_err());
    }

    #[test]
    fn default_identity_includes_parent_path_for_subcollections() {
        let root = DocPath::parse("users/u1").unwrap();
        assert_eq!(default_target_id(&root), "u1");
        let sub = DocPath::parse("a/1/b/2/c/3").unwrap();
        assert_eq!(default_target_id(&sub), "a/1/b/2/c/3");
        assert_eq!(default_target_id(&sub.parent().unwrap()), "a/1/b/2");
    }

    #[test]
    fn pattern_parse_accepts_named_placeholders() {
        let p = CollectionPattern::parse("users/{userId}/posts").unwrap();
        assert_eq!(p.to_string(), "users/{}/posts");
        assert_eq!(p.collection_id(), "posts");
        assert!(CollectionPattern::parse("users/u1/posts").is_none());
        assert!(CollectionPattern::parse("users/{}").is_none());
    }
}
