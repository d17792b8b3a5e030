//! What the transform hands the sink: one document to write, where it came from, and
//! how it lands. The sink turns it into a statement; verify and the
//! dual-write store read the same values.

use mongodb::bson::{Bson, RawDocumentBuf};

/// One document to write, with the Firestore path it came from (for error reports).
#[derive(Debug, Clone)]
pub struct WriteItem {
    pub source_path: String,
    /// The `_id` of the target document the statement writes (for [`WriteKind::Embed`],
    /// the parent's).
    pub id: Bson,
    pub doc: RawDocumentBuf,
    /// The document has `$`-prefixed field names, which a replacement document may not
    /// hold: it is written with `[{$replaceWith: {$literal: doc}}]` instead, which stores
    /// it unchanged (MongoDB 4.2+). Only read for [`WriteKind::Replace`]: the other kinds
    /// always wrap the document in `$literal`.
    pub literal: bool,
    pub kind: WriteKind,
}

/// How a [`WriteItem`] lands. Every kind is an upsert filtered on `_id`, idempotent and
/// independent of the order of the statements touching one document, because batches
/// run unordered and concurrently (a parent and its embedded children may be written in
/// any order, or at once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteKind {
    /// Replace the whole document.
    #[default]
    Replace,
    /// Replace the whole document but keep the existing value of these array fields
    /// (`[]` when absent): the parent of embedded subcollections, whose arrays are
    /// written by the children's own statements.
    /// `[{$replaceWith: {$mergeObjects: [{$literal: doc}, {f: {$ifNull: ["$f", []]}}]}}]`.
    ReplaceKeeping { fields: Vec<String> },
    /// Put `doc` (which has an `_id`) into the array `field` of the document `id`: any
    /// element with the same `_id` is removed and `doc` added, the array kept sorted by
    /// `_id` (MongoDB 5.2+), so a rerun replaces rather than duplicates and the result
    /// does not depend on the order of the writes. When the array already holds `max`
    /// other elements the statement fails on purpose and the item comes back as a
    /// `DocFailure` with rule `embed-limit` (dead-lettered, never silently dropped).
    Embed { field: String, max: u32 },
}

/// Whether any field name, at any depth, starts with `$`.
pub fn has_dollar_field(doc: &mongodb::bson::Document) -> bool {
    fn in_value(v: &Bson) -> bool {
        match v {
            Bson::Document(d) => has_dollar_field(d),
            Bson::Array(a) => a.iter().any(in_value),
            _ => false,
        }
    }
    doc.iter().any(|(k, v)| k.starts_with('$') || in_value(v))
}
