//! Indexes declared in mappings: validated with the mappings, built after a collection's
//! copy (a bulk load without secondary indexes is faster), idempotently.
//!
//! * `def.rs` one validated index ([`IndexDef`]): its `createIndexes` entry and its
//!   readable form.
//! * `compile.rs` the `[[indexes]]` of a mapping → definitions, and the checks across
//!   all mappings.
//! * `build.rs` building them in MongoDB, idempotently (the only I/O here).
//! * `report.rs` what happened to each index, and its table for a terminal.

mod build;
mod compile;
mod def;
mod report;

pub use build::build;
pub use compile::{check_all, compile};
pub use def::{default_name, IndexDef};
pub use report::{render_report, IndexOutcome, IndexReport};
