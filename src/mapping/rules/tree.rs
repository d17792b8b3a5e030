//! The compiled field rules of one mapping: a tree keyed by source field names
//! ([`RuleNode`]), its entries ([`FieldRule`] with its [`Cast`] and [`RefRule`]), and
//! [`RuleError`], why a rule refused a document.

use std::collections::BTreeMap;
use std::ops::Range;

use mongodb::bson::Bson;
use serde::Serialize;

use crate::mapping::spec::{CastType, EpochUnit, RefFrom, RefRepr};
use crate::path::CollectionPattern;

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
