//! Pure type inference over sampled documents: per field path (nested maps flattened to
//! dotted paths, maps inside arrays traversed like mapping paths do), how many sampled
//! documents have it, with which Firestore value types, which element types its arrays
//! hold, and the shape of its strings and numbers (what a cast suggestion needs). No
//! value is kept: only counts, so a report never carries personal data.
//!
//! * `kind.rs` a Firestore value type as `plan` reports it.
//! * `path.rs` field paths: segments, dictionary keys, the mapping syntax.
//! * `shape.rs` what the strings, integers and doubles of one field look like.
//! * `stats.rs` the walk over each sampled document, and the statistics it adds up per
//!   field path and per collection pattern.

mod kind;
mod path;
mod shape;
mod stats;

pub use kind::Kind;
pub use path::{display_path, looks_like_id, mapping_path, FieldPath, Segment};
pub use shape::{DoubleShape, IntegerShape, StringShape};
pub use stats::{reference_pattern, FieldStats, PatternStats, MAX_FK_VALUES, MAX_PATHS};
