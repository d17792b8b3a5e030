//! One listed mismatch as the JSON file writes it, its diffs' values as JSON again
//! (the head is [`super::ReportHead`] serialized as is).

use serde_json::{json, Value};

use crate::verify::store::StoredFinding;

fn parse_json(s: &Option<String>) -> Value {
    s.as_deref()
        .map(|s| serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string())))
        .unwrap_or(Value::Null)
}

pub(super) fn mismatch_json(f: &StoredFinding) -> Value {
    let diffs: Vec<Value> = f
        .diffs
        .iter()
        .map(|d| {
            json!({
                "path": d.path,
                "change": d.change,
                "expected_type": d.expected_type,
                "expected": parse_json(&d.expected),
                "actual_type": d.actual_type,
                "actual": parse_json(&d.actual),
            })
        })
        .collect();
    json!({
        "kind": f.kind,
        "collection": f.c,
        "id": f.i.clone().into_canonical_extjson(),
        "source_path": f.source_path,
        "expected_hash": f.expected_hash,
        "actual_hash": f.actual_hash,
        "note": f.note,
        "diffs": diffs,
        "diffs_omitted": f.diffs_omitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::compare::diff_documents;
    use crate::verify::diff_record::{ext_json, DiffRecord};
    use mongodb::bson::{doc, Bson, RawDocumentBuf};

    #[test]
    fn diff_records_carry_types_extended_json_and_a_description() {
        let e = RawDocumentBuf::from_document(&doc! {"n": 5i64, "s": {"v": 1i64}}).unwrap();
        let a = RawDocumentBuf::from_document(&doc! {"n": "5", "s": {"v": 2i64}}).unwrap();
        let (diffs, _) = diff_documents(&e, &a, 10).unwrap();
        let recs: Vec<DiffRecord> = diffs.iter().map(DiffRecord::from_diff).collect();
        assert_eq!(recs[0].path, "n");
        assert_eq!(recs[0].expected_type.as_deref(), Some("long"));
        assert_eq!(recs[0].actual_type.as_deref(), Some("string"));
        assert_eq!(recs[0].expected.as_deref(), Some(r#"{"$numberLong":"5"}"#));
        assert_eq!(recs[0].actual.as_deref(), Some(r#""5""#));
        assert_eq!(
            recs[0].describe(),
            "type changed: expected long 5, actual string \"5\""
        );
        assert_eq!(recs[1].path, "s.v");
    }

    #[test]
    fn long_values_are_truncated_in_extended_json() {
        let s = ext_json(&Bson::String("x".repeat(5000)));
        let v: Value = serde_json::from_str(&s).unwrap();
        assert!(v["$truncated"].as_str().unwrap().ends_with('…'));
    }
}
