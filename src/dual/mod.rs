//! `fireshift::dual`: the dual-write library an API embeds while Firestore and MongoDB
//! run side by side, then flips collection by collection (docs/dual.md).
//!
//! # Layout
//!
//! * [`mode`] the per-collection [`Mode`]s and the table every call consults.
//! * [`store`] [`DualStore`]: create / set / update / delete / get / query / batch,
//!   routed by mode; the write path (primary, then the secondary, guarded).
//! * [`guard`] the update-time guard shared with `fireshift migrate --guard-update-time`.
//! * [`outbox`] durable intents in Firestore, the settler and the reconciler.
//! * [`settings`] the settings document every process polls (mode switches, shadow
//!   fraction).
//! * [`shadow`] sampled shadow reads compared through the mapping.
//! * [`query`] equality/order/limit queries for both databases.
//! * [`metrics`] Prometheus text metrics.
//! * [`json`] JSON → Firestore values, for JSON APIs.
//! * [`error`] [`DualError`].

pub mod error;
pub mod json;
pub mod metrics;
pub mod mode;
pub mod outbox;
pub mod query;
pub mod settings;
pub mod shadow;
pub mod store;

pub use error::{DualError, DualResult};
pub use metrics::DualMetrics;
pub use mode::{Mode, ModeTable};
pub use outbox::{Background, ReconcileReport};
pub use query::{Direction, Query};
pub use store::{DualConfig, DualStore, Fields, Secondary, WriteOp, WriteResult};
