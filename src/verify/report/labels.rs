//! How findings read for people, in the HTML page and the terminal summary: kinds,
//! changes and `_id`s.

use mongodb::bson::Bson;

use crate::verify::compare::Change;
use crate::verify::Kind;

/// An `_id` for people: a string as is, anything else as canonical extended JSON.
pub fn id_text(id: &Bson) -> String {
    match id {
        Bson::String(s) => s.clone(),
        other => other.clone().into_canonical_extjson().to_string(),
    }
}

pub(super) fn kind_label(k: Kind) -> &'static str {
    match k {
        Kind::Missing => "missing",
        Kind::Extra => "extra",
        Kind::Differing => "differing",
        Kind::DeadLetterMissing => "dead letter missing",
    }
}

pub(super) fn change_label(c: Change) -> &'static str {
    match c {
        Change::Value => "value",
        Change::Type => "type",
        Change::Missing => "missing field",
        Change::Extra => "extra field",
    }
}
