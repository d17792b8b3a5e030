//! Field rules: the `[fields]` table compiled into a tree keyed by source field names,
//! and applied while a document converts (rename, drop, default, required, cast, ref).
//!
//! Rules are applied during the one conversion walk over the document, not after it:
//! a reference rule needs the Firestore value (a path), not its converted form, and
//! every rule addresses source names, whatever the field-name policy does to them.
//!
//! * `tree.rs` the compiled rules: the tree, its entries (casts, references) and the
//!   error a rule raises on a document.
//! * `names.rs` field paths (`a.b`, backticks), output field names, collection patterns
//!   with named placeholders.
//! * `compile.rs` the `[fields]` table of one file → a rule tree, every problem collected.
//! * `cast.rs` the casts (`cast = "decimal128"`, dates with `format` and `unit`).
//! * `walk.rs` the conversion walk of one document: rules applied, references resolved.

mod cast;
mod compile;
mod names;
mod tree;
mod walk;

pub use cast::{cast_value, render};
pub use compile::{compile_fields, toml_to_bson, RuleContext};
pub use names::{check_output_name, parse_field_path, parse_pattern};
pub use tree::{Cast, FieldRule, RefRule, RuleError, RuleNode};
pub use walk::{SetReferences, Walk};
