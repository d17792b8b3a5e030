//! What the transform makes of one document: a [`Transformed`] document for its target
//! collection, or a [`Rejection`] saying which rule refused it and why.

use crate::mapping::item::WriteItem;
use crate::path::CollectionPattern;

/// A converted document, ready for the sink.
#[derive(Debug)]
pub struct Transformed {
    pub pattern: CollectionPattern,
    pub collection: String,
    pub item: WriteItem,
}

/// Why a document could not be converted.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub source_path: String,
    pub pattern: Option<CollectionPattern>,
    /// Which rule refused it: `path`, `identity`, `convert`, `encode`, `sink`; with
    /// mappings also `cast`, `required`, `reference`, `field-name`, `rename`,
    /// `metadata`, `embed`, `embed-limit` (docs/mappings.md, "Dead letters").
    pub rule: &'static str,
    /// The field path concerned, if any.
    pub field: Option<String>,
    pub reason: String,
}
