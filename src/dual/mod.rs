//! `fireshift::dual`: the dual-write library an API embeds while Firestore and MongoDB
//! run side by side, then flips collection by collection (docs/dual.md).
//!
//! # Layout
//!
//! Public:
//!
//! * [`store`] [`DualStore`]: create / set / update / delete / get / query / batch,
//!   routed by mode; the public face of everything below.
//! * [`mode`] the per-collection [`Mode`]s and the table every call consults.
//! * [`outbox`] durable intents in Firestore, the settler and the reconciler.
//! * [`settings`] the settings document every process polls (mode switches, shadow
//!   fraction).
//! * [`shadow`] sampled shadow reads compared through the mapping.
//! * [`query`] equality/order/limit queries for both databases.
//! * [`metrics`] Prometheus text metrics.
//! * [`json`] JSON → Firestore values, for JSON APIs.
//! * [`error`] [`DualError`].
//!
//! Inside the store: `config` ([`DualConfig`]), `op` (operations, results and pure
//! helpers), `core` (the shared state and the operations on both databases), `write`
//! (the Firestore-primary write path) and `mongo_only` (writes in `mongo_only`). The
//! update-time guard shared with `fireshift migrate --guard-update-time` is
//! [`crate::sink::guard`].
//!
//! The files depend on each other in layers, never in a circle: `store` uses the rest;
//! `write` uses `outbox`; `outbox`, `settings`, `shadow` and `mongo_only` use `core`;
//! `core` uses `op` and `config`; `op`, `config`, `mode`, `query`, `metrics`, `json`
//! and `error` use none of the others but `mode` and `error`.

mod config;
mod core;
mod mongo_only;
mod op;
mod write;

pub mod error;
pub mod json;
pub mod metrics;
pub mod mode;
pub mod outbox;
pub mod query;
pub mod settings;
pub mod shadow;
pub mod store;

pub use config::DualConfig;
pub use error::{DualError, DualResult};
pub use metrics::DualMetrics;
pub use mode::{Mode, ModeTable};
pub use op::{Fields, Secondary, WriteOp, WriteResult};
pub use outbox::{Background, ReconcileReport};
pub use query::{Direction, Query};
pub use store::DualStore;
