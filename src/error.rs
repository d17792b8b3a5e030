//! Typed errors of the library, each classified as retryable (a transient fault worth
//! another attempt with backoff) or fatal (retrying cannot help), with the context an
//! operator needs: which service, which endpoint, which collection or document.

use std::time::Duration;

use gcloud_sdk::tonic::Code;

/// Errors from the library's I/O paths.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Firestore {operation} failed ({code:?}): {message} [endpoint {endpoint}]")]
    Firestore {
        operation: &'static str,
        endpoint: String,
        code: Code,
        message: String,
    },
    #[error("cannot connect to Firestore at {endpoint}: {message}")]
    FirestoreConnect {
        endpoint: String,
        message: String,
        /// False for what waiting cannot fix (a refused certificate).
        retryable: bool,
    },
    /// No usable Google credentials: none found, a malformed file, or a token that could
    /// not be obtained. Never retried: the operator has to act.
    #[error("no usable Google credentials for Firestore at {endpoint}: {message}")]
    Credentials { endpoint: String, message: String },
    #[error("MongoDB {operation} on `{target}` failed: {message} [server {uri}]")]
    Mongo {
        operation: &'static str,
        /// Database or `database.collection`.
        target: String,
        /// Redacted connection string.
        uri: String,
        message: String,
        retryable: bool,
    },
    #[error("{what} still failing after retrying for {:.0?}: {last}", elapsed)]
    RetriesExhausted {
        what: String,
        elapsed: Duration,
        last: Box<Error>,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A broken invariant of fireshift itself (a bug, not bad data or a fault): the
    /// message says which.
    #[error("internal error (a fireshift bug; please report it): {0}")]
    Internal(String),
    /// A record fireshift stored earlier (a checkpoint, a verify run, an outbox entry)
    /// cannot be read: changed by hand, or written by an incompatible version.
    #[error("corrupt stored state in {location}: {message}")]
    CorruptState { location: String, message: String },
    /// Another writer changed the same state at the same time (a lost race for a record
    /// that must have one owner).
    #[error("contention on {what}: {message}")]
    Contention { what: String, message: String },
    /// A dead letter could not be stored: the document would vanish without a trace, so
    /// the run stops.
    #[error("could not store the dead letter for {source_path}: {message}")]
    DeadLetterStore {
        source_path: String,
        message: String,
    },
    /// No document was acknowledged for `secs` seconds (`--stall-timeout`): the run
    /// stops rather than wait forever.
    #[error("no document acknowledged for {secs}s; stopped (--stall-timeout). Waiting: {waiting}")]
    Stalled { secs: u64, waiting: String },
    /// A local file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// `--max-dead-letters` was exceeded: the run stops so an operator can fix the
    /// mapping or the data before more documents pile up in the dead letters.
    #[error(
        "more than {limit} documents were dead-lettered in this run (--max-dead-letters {limit}); \
         stopped with the checkpoints kept: fix the mappings or the data, then rerun to resume"
    )]
    DeadLetterLimit { limit: u64 },
    /// The source holds no document at all: most likely the wrong project or database.
    /// The job's records were deleted, so a rerun does not take the empty copy for done.
    #[error(
        "no documents found in {root}: is --project right? (--allow-empty accepts an empty source)"
    )]
    EmptySource { root: String },
    /// `plan` would go past its read budget: it stops before the call that could.
    #[error(
        "plan stopped before going over --max-reads {budget} billed reads ({billed} so far, {next} more needed next); \
         nothing was written: raise --max-reads or add --yes"
    )]
    ReadBudget { budget: u64, billed: u64, next: u64 },
    /// A new job's target collections already hold documents it did not write.
    #[error(
        "the target database `{database}` already holds documents where this job would write: {collections}. \
         A second copy would sit beside them (other identities, refused unique indexes). \
         --drop-target drops exactly these collections first; --allow-existing writes into them (same _id replaced)"
    )]
    TargetNotEmpty {
        database: String,
        collections: String,
    },
    /// A live process holds the lease of a range this run was to copy.
    #[error(
        "range {range} is being copied by another process ({holder}). Two processes on one job would read everything twice: \
         wait for it (`fireshift status` shows it), or, if it crashed, rerun once its lease has expired"
    )]
    LeaseHeld { range: String, holder: String },
    /// Another process took over a range this one held (its lease expired while this
    /// process was paused or cut off): this process must stop writing its checkpoints.
    #[error(
        "the lease of range {range} was taken over by another process (this one did not renew it in time); \
         stopped so that only one process moves its checkpoint"
    )]
    LeaseLost { range: String },
    /// The operator asked the run to stop (a signal): reading stopped, what was in
    /// flight landed and was checkpointed.
    #[error("stopped on request; every acknowledged document is checkpointed: rerun the same command to resume")]
    Interrupted,
    /// A database that must hold data (the one `verify` compares) has no collection:
    /// most likely a mistyped `--database`. `existing` lists what the server holds, when
    /// it lets us list it.
    #[error("the database `{database}` does not exist (it has no collections): is --database right? {existing}")]
    NoSuchDatabase { database: String, existing: String },
    /// An export that cannot be read as one: a missing or malformed metadata file, a
    /// damaged or undecodable record. `location` is the file, with `@offset` (the byte
    /// where the bad record starts) where there is one.
    #[error("export {location}: {reason}")]
    Export { location: String, reason: String },
    /// Cloud Storage (an export at `gs://`) failed a request. `object` is the `gs://`
    /// address of the object, or of the bucket and prefix for a listing.
    #[error("Cloud Storage {operation} of {object} failed: {message}")]
    Storage {
        operation: &'static str,
        object: String,
        message: String,
        /// False for what waiting cannot fix (no such object, access denied).
        retryable: bool,
    },
}

impl Error {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Firestore { code, .. } => is_retryable_code(*code),
            Error::FirestoreConnect { retryable, .. } => *retryable,
            Error::Credentials { .. } => false,
            Error::Mongo { retryable, .. } => *retryable,
            Error::Storage { retryable, .. } => *retryable,
            Error::RetriesExhausted { .. }
            | Error::Config(_)
            | Error::Internal(_)
            | Error::CorruptState { .. }
            | Error::Contention { .. }
            | Error::DeadLetterStore { .. }
            | Error::Stalled { .. }
            | Error::Io { .. }
            | Error::DeadLetterLimit { .. }
            | Error::EmptySource { .. }
            | Error::ReadBudget { .. }
            | Error::TargetNotEmpty { .. }
            | Error::LeaseHeld { .. }
            | Error::LeaseLost { .. }
            | Error::Interrupted
            | Error::NoSuchDatabase { .. }
            | Error::Export { .. } => false,
        }
    }
}

impl Error {
    /// A failed file operation: `action` (`reading`, `writing`, `creating`) on `path`.
    pub fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// gRPC codes that describe a passing condition. `Unknown` is included because tonic
/// reports a dropped connection as `Unknown` ("transport error").
pub fn is_retryable_code(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Internal
            | Code::Unknown
            | Code::Cancelled
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
