//! A field diff as the mismatch store keeps it and the report shows it: both sides'
//! types, canonical extended JSON (truncated past a bound) and a short rendering.

use mongodb::bson::Bson;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::compare::{display_value, truncate, type_name, Change, FieldDiff};

/// ones become `{"$truncated": "<prefix>"}`.
pub const MAX_VALUE_JSON: usize = 2048;
/// Longest human rendering of a value (HTML, terminal).
const MAX_DISPLAY: usize = 200;
/// A field diff as stored and reported: types, canonical extended JSON and a short
/// rendering of both sides (`None` = absent on that side).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiffRecord {
    pub path: String,
    pub change: Change,
    pub expected_type: Option<String>,
    /// Canonical extended JSON text.
    pub expected: Option<String>,
    pub expected_display: Option<String>,
    pub actual_type: Option<String>,
    pub actual: Option<String>,
    pub actual_display: Option<String>,
}

impl DiffRecord {
    pub fn from_diff(d: &FieldDiff) -> Self {
        Self {
            path: d.path.clone(),
            change: d.change,
            expected_type: d.expected.as_ref().map(|v| type_name(v).to_string()),
            expected: d.expected.as_ref().map(ext_json),
            expected_display: d.expected.as_ref().map(|v| display_value(v, MAX_DISPLAY)),
            actual_type: d.actual.as_ref().map(|v| type_name(v).to_string()),
            actual: d.actual.as_ref().map(ext_json),
            actual_display: d.actual.as_ref().map(|v| display_value(v, MAX_DISPLAY)),
        }
    }

    /// `expected long 10, actual long 11`; `missing (expected string "x")`.
    pub fn describe(&self) -> String {
        let e = self.expected_display.as_deref().unwrap_or("(absent)");
        let a = self.actual_display.as_deref().unwrap_or("(absent)");
        match self.change {
            Change::Missing => format!("missing in target (expected {e})"),
            Change::Extra => format!("not expected (actual {a})"),
            Change::Type => format!("type changed: expected {e}, actual {a}"),
            Change::Value => format!("expected {e}, actual {a}"),
        }
    }
}

/// Canonical extended JSON text of a value, `{"$truncated": …}` past [`MAX_VALUE_JSON`].
pub fn ext_json(v: &Bson) -> String {
    let s = v.clone().into_canonical_extjson().to_string();
    if s.chars().count() <= MAX_VALUE_JSON {
        s
    } else {
        json!({ "$truncated": truncate(&s, MAX_VALUE_JSON) }).to_string()
    }
}
