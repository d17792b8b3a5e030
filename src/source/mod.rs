//! Sources: where documents come from, as one ordered, resumable stream per key range.
//!
//! * [`query`] the Firestore query source: one kindless, all-descendants `RunQuery` in
//!   `__name__` order, paged and resumed from a `__name__` cursor.
//! * [`ranges`] splits the `__name__` key space into balanced ranges for parallel readers.

pub mod query;
pub mod ranges;

pub use query::{
    collection_query, count_request, is_own_document, is_unreachable, kindless_query, read_count,
    FirestoreSource, KeyRange, SourceConfig, DEFAULT_DATABASE_ID, OWN_COLLECTION_PREFIX,
};
