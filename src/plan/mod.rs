//! `fireshift plan`.

pub mod infer;
pub mod query;
