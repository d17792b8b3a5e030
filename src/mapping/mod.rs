//! Mappings: how each Firestore collection lands in MongoDB, written by the operator as
//! TOML files under `mappings/<dataset>/` (one per collection pattern, plus an optional
//! `dataset.toml`). docs/mappings.md is the reference.
//!
//! * [`value`] Firestore value → BSON, the type table (docs/type-mapping.md).
//! * [`transform`] the [`transform::Transformer`]: one raw document → its target
//!   collection and [`item::WriteItem`], or a rejection (a dead letter) with the reason.
//! * [`item`] what the transform hands the sink; [`outcome`] a transformed document or
//!   a rejection.
//! * [`spec`] the TOML schema (serde, unknown keys refused; its doc comments are the docs).
//! * [`load`] reads a directory; syntax, unknown keys and types → `file:line:col` errors.
//! * [`validate`] checks meaning across all files before any I/O and compiles the set.
//! * [`rules`] field rules (rename, drop, default, required, cast, ref), applied while a
//!   document converts.
//! * [`identity`] `_id`s derived from paths alone (keep, keyed-hash ObjectId).
//! * [`apply`] one document through its mapping file's rules.
//! * [`indexes`] the declared indexes, built idempotently after the copy.
//!
//! A collection with no mapping file keeps the defaults of DESIGN.md (the `keep`
//! identity, its own collection with `_parent`), with the dataset's settings, and its
//! references still resolve through the mappings of the collections they point to.

pub mod apply;
pub mod identity;
pub mod indexes;
pub mod item;
pub mod load;
pub mod location;
pub mod outcome;
pub mod rules;
pub mod spec;
pub mod transform;
pub mod validate;
pub mod value;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mongodb::bson::{doc, Bson};
use serde::Serialize;

pub use load::{MappingError, MappingErrors};

use crate::mapping::value::FieldNamePolicy;
use crate::path::{default_target_id, CollectionPattern, DocPath, PARENT_FIELD};
use indexes::IndexDef;
use load::SourceFile;
use rules::RuleNode;
use spec::{RefRepr, UnmappedFields};

/// Default `id_key` of the `objectid` identity.
pub const DEFAULT_ID_KEY: &str = "fireshift-objectid-v1";
/// Default field that keeps the Firestore id under the `objectid` and `field` identities.
pub const DEFAULT_FIRESTORE_ID_FIELD: &str = "firestoreId";

/// Dataset-wide settings (`dataset.toml`), with defaults filled in.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    /// The directory name, for messages.
    #[serde(skip)]
    pub name: String,
    pub id_key: String,
    pub field_names: FieldNamePolicy,
    pub references: RefRepr,
    pub firestore_id_field: String,
}

impl Default for Dataset {
    fn default() -> Self {
        Self {
            name: String::new(),
            id_key: DEFAULT_ID_KEY.to_string(),
            field_names: FieldNamePolicy::Keep,
            references: RefRepr::Id,
            firestore_id_field: DEFAULT_FIRESTORE_ID_FIELD.to_string(),
        }
    }
}

/// How a mapping makes `_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "strategy", rename_all = "lowercase")]
pub enum Identity {
    Keep,
    #[serde(rename = "objectid")]
    ObjectId {
        firestore_id_field: String,
    },
    Field {
        /// The source field.
        field: String,
        /// Its name in the converted document (after a rename).
        output: String,
        firestore_id_field: String,
    },
}

/// Where a mapping's documents land.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Landing {
    /// A root collection's documents in the target collection.
    Root,
    /// A subcollection's documents in the target collection, with a parent key.
    Own {
        parent_field: String,
        parent_as: RefRepr,
    },
    /// A subcollection's documents as elements of an array of the parent document.
    Embed { field: String, max: u32 },
}

/// Where in its file a mapping's parts were written (for cross-file errors).
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: Arc<SourceFile>,
    pub collection: Range<usize>,
    pub target: Option<Range<usize>>,
    pub id: Option<Range<usize>>,
    pub embed: Option<Range<usize>>,
    /// `into` of `[embed]`, checked against the parent's target.
    pub embed_into: Option<(String, Range<usize>)>,
    pub parent: Option<Range<usize>>,
}

/// One mapping, validated, with every default filled in.
#[derive(Debug, Clone, Serialize)]
pub struct CompiledMapping {
    /// The `collection` key as written, placeholder names included.
    pub collection: String,
    #[serde(skip)]
    pub pattern: CollectionPattern,
    /// Placeholder names of `collection`, by parent level.
    #[serde(skip)]
    pub placeholders: Vec<String>,
    pub target: String,
    pub identity: Identity,
    pub landing: Landing,
    pub field_names: FieldNamePolicy,
    pub unmapped_fields: UnmappedFields,
    pub create_time: Option<String>,
    pub update_time: Option<String>,
    pub rules: RuleNode,
    pub indexes: Vec<IndexDef>,
    /// Array fields that embedded subcollections fill in this mapping's documents.
    pub embedded_fields: Vec<String>,
    /// `None` for the implicit mapping of an unmapped collection.
    #[serde(skip)]
    pub origin: Option<Origin>,
}

impl CompiledMapping {
    /// The file this mapping came from (`None`: a collection without a mapping file).
    pub fn file(&self) -> Option<&Path> {
        self.origin.as_ref().map(|o| o.file.path.as_path())
    }

    /// The fields of the target document that the mapping itself writes.
    pub fn reserved_fields(&self) -> Vec<(&str, &'static str)> {
        let mut out = vec![("_id", "identity")];
        match &self.identity {
            Identity::Keep => {}
            Identity::ObjectId { firestore_id_field }
            | Identity::Field {
                firestore_id_field, ..
            } => out.push((firestore_id_field, "identity")),
        }
        if let Landing::Own { parent_field, .. } = &self.landing {
            out.push((parent_field, "identity"));
        }
        for f in [&self.create_time, &self.update_time].into_iter().flatten() {
            out.push((f, "metadata"));
        }
        for f in &self.embedded_fields {
            out.push((f, "embed"));
        }
        out
    }
}

/// A validated set of mappings: what the transform, the indexes and the fingerprint use.
#[derive(Debug, Clone)]
pub struct MappingSet {
    pub dir: PathBuf,
    pub dataset: Dataset,
    mappings: BTreeMap<CollectionPattern, CompiledMapping>,
    /// Parent pattern → array fields filled by its embedded subcollections (also for
    /// parents without a mapping file).
    embeds: BTreeMap<CollectionPattern, Vec<String>>,
    fingerprint: String,
}

impl MappingSet {
    /// Reads and validates a mapping directory; no other I/O. Every problem of every
    /// file is in the error.
    pub fn load(dir: &Path) -> Result<Self, MappingErrors> {
        validate::compile(load::load_dir(dir))
    }

    /// A set with no mapping file: every collection keeps the defaults.
    pub fn empty() -> Self {
        validate::assemble(PathBuf::new(), Dataset::default(), BTreeMap::new())
    }

    /// The mapping of a collection pattern, if it has a file.
    pub fn get(&self, pattern: &CollectionPattern) -> Option<&CompiledMapping> {
        self.mappings.get(pattern)
    }

    /// Every mapping, by pattern.
    pub fn mappings(&self) -> impl Iterator<Item = &CompiledMapping> {
        self.mappings.values()
    }

    /// sha256 (hex) of the normalized set: every setting after defaults, in a canonical
    /// order, so comments, formatting, file names and key order do not change it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The implicit mapping of a collection without a mapping file.
    pub fn default_mapping(&self, pattern: &CollectionPattern) -> CompiledMapping {
        CompiledMapping {
            collection: pattern.to_string(),
            pattern: pattern.clone(),
            placeholders: Vec::new(),
            target: pattern.default_target(),
            identity: Identity::Keep,
            landing: if pattern.depth() == 1 {
                Landing::Root
            } else {
                Landing::Own {
                    parent_field: PARENT_FIELD.to_string(),
                    parent_as: self.dataset.references,
                }
            },
            field_names: self.dataset.field_names,
            unmapped_fields: UnmappedFields::Keep,
            create_time: None,
            update_time: None,
            rules: RuleNode::default(),
            indexes: Vec::new(),
            embedded_fields: self.embeds.get(pattern).cloned().unwrap_or_default(),
            origin: None,
        }
    }

    /// Every declared index, once.
    pub fn indexes(&self) -> Vec<&IndexDef> {
        let mut out: Vec<&IndexDef> = Vec::new();
        for ix in self.mappings.values().flat_map(|m| &m.indexes) {
            if !out.iter().any(|o| o.same_index(ix)) {
                out.push(ix);
            }
        }
        out
    }

    /// The collection that holds documents of `pattern` (for an embedded subcollection,
    /// its parent's).
    pub fn target_of(&self, pattern: &CollectionPattern) -> String {
        match self.mappings.get(pattern) {
            Some(CompiledMapping {
                landing: Landing::Embed { .. },
                ..
            }) => match parent_pattern(pattern) {
                Some(parent) => self.target_of(&parent),
                None => pattern.default_target(),
            },
            Some(m) => m.target.clone(),
            None => pattern.default_target(),
        }
    }

    /// The arrays embedded children fill in the documents of the target collection
    /// `collection` (empty when none embeds there).
    pub fn embedded_fields_of(&self, collection: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (parent, fields) in &self.embeds {
            if self.target_of(parent) == collection {
                for f in fields {
                    if !out.contains(f) {
                        out.push(f.clone());
                    }
                }
            }
        }
        out
    }

    /// The target `_id` of the document at `path`, from its collection's identity.
    pub fn target_id(&self, path: &DocPath<'_>) -> Result<Bson, String> {
        let pattern = path.pattern();
        match self.mappings.get(&pattern).map(|m| &m.identity) {
            None | Some(Identity::Keep) => Ok(Bson::String(default_target_id(path))),
            Some(Identity::ObjectId { .. }) => Ok(Bson::ObjectId(identity::derive_object_id(
                &self.dataset.id_key,
                path.relative(),
            ))),
            Some(Identity::Field { field, .. }) => Err(format!(
                "`{}` is in `{pattern}`, whose `_id` comes from its field `{field}`: a reference cannot derive it from the path. \
                 Store such references with `as = \"path\"`, or give `{pattern}` the keep or objectid identity",
                path.relative()
            )),
        }
    }

    /// A reference to the document at `path`, as `repr` says.
    pub fn render_reference(&self, path: &DocPath<'_>, repr: RefRepr) -> Result<Bson, String> {
        Ok(match repr {
            RefRepr::Id => self.target_id(path)?,
            RefRepr::Path => Bson::String(path.relative().to_string()),
            RefRepr::DbRef => {
                let id = self.target_id(path)?;
                Bson::Document(doc! { "$ref": self.target_of(&path.pattern()), "$id": id })
            }
        })
    }
}

/// `a/{}/b/{}/c` → `a/{}/b`.
pub fn parent_pattern(p: &CollectionPattern) -> Option<CollectionPattern> {
    let s = p.to_string();
    let (parent, _) = s.rsplit_once("/{}/")?;
    CollectionPattern::parse(parent)
}
