//! Errors of the dual-write store, as the calling API sees them.

use crate::error::Error;

/// What a dual-store call can fail with. Only the **primary** decides a write's result:
/// a secondary failure never appears here (it becomes an outbox entry).
#[derive(Debug, thiserror::Error)]
pub enum DualError {
    #[error("`{path}` is not a document path: {reason}")]
    Path { path: String, reason: String },
    #[error("document `{path}` already exists")]
    AlreadyExists { path: String },
    #[error("document `{path}` does not exist")]
    NotFound { path: String },
    /// The mapping refuses the document (same rules as the migration's dead letters).
    #[error("the mapping refuses `{path}` (rule `{rule}`): {reason}")]
    Mapping {
        path: String,
        rule: &'static str,
        reason: String,
    },
    /// An operation the store cannot do correctly for this collection or mode.
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A primary database failed (or, for reconciler calls, the secondary).
    #[error(transparent)]
    Io(#[from] Error),
}

impl DualError {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DualError::Io(e) if e.is_retryable())
    }
}

pub type DualResult<T> = std::result::Result<T, DualError>;
