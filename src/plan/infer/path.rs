//! Field paths as inference collects them ([`FieldPath`]: names, and one [`Segment::AnyKey`]
//! for all keys of a map used as a dictionary), written in mapping syntax or for people.

/// One segment of a field path: a field name, or any key of a map used as a dictionary
/// (keys that look like document ids, e.g. `readBy.{userId}`), collapsed into one path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    Name(String),
    AnyKey,
}

/// A field path.
pub type FieldPath = Vec<Segment>;

/// The path in mapping syntax (`a.b`, `` `a.b`.c ``), or `None` when the mapping
/// syntax cannot name it (a dictionary segment, a name starting with a backtick or
/// holding one next to a dot): such fields get no rule suggestion.
pub fn mapping_path(path: &[Segment]) -> Option<String> {
    let mut out = Vec::with_capacity(path.len());
    for s in path {
        let Segment::Name(n) = s else { return None };
        if n.is_empty() || n.contains('\0') {
            return None;
        }
        if n.contains('.') {
            if n.contains('`') {
                return None;
            }
            out.push(format!("`{n}`"));
        } else if n.starts_with('`') {
            return None;
        } else {
            out.push(n.clone());
        }
    }
    let s = out.join(".");
    // The renderer and the mapping parser must agree; anything else is not suggested.
    let parsed = crate::mapping::rules::parse_field_path(&s).ok()?;
    let want: Vec<&str> = path
        .iter()
        .map(|s| match s {
            Segment::Name(n) => n.as_str(),
            Segment::AnyKey => "",
        })
        .collect();
    (parsed.iter().map(String::as_str).eq(want.iter().copied())).then_some(s)
}

/// The path for people: mapping syntax when it has one, else the segments with `*` for
/// dictionary keys and backticks around odd names.
pub fn display_path(path: &[Segment]) -> String {
    mapping_path(path).unwrap_or_else(|| {
        path.iter()
            .map(|s| match s {
                Segment::AnyKey => "*".to_string(),
                Segment::Name(n) if n.contains('.') || n.contains('`') || n.is_empty() => {
                    format!("`{n}`")
                }
                Segment::Name(n) => n.clone(),
            })
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// Whether a map key looks like a document id rather than a field name: Firestore
/// auto-ids and Auth uids (mixed-case alphanumerics with digits, 16+ characters) or
/// UUIDs. Maps keyed by such ids are dictionaries: one path per key would be noise.
pub fn looks_like_id(k: &str) -> bool {
    let len = k.chars().count();
    let uuid = len == 36
        && k.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    let auto = (16..=64).contains(&len)
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && k.chars().any(|c| c.is_ascii_digit())
        && k.chars().any(|c| c.is_ascii_uppercase())
        && k.chars().any(|c| c.is_ascii_lowercase());
    uuid || auto
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_paths_round_trip_or_are_refused() {
        let p = |xs: &[&str]| -> FieldPath {
            xs.iter().map(|x| Segment::Name(x.to_string())).collect()
        };
        assert_eq!(mapping_path(&p(&["a", "b"])).as_deref(), Some("a.b"));
        assert_eq!(mapping_path(&p(&["a.b", "c"])).as_deref(), Some("`a.b`.c"));
        assert_eq!(
            mapping_path(&p(&["$x", "naïve ключ"])).as_deref(),
            Some("$x.naïve ключ")
        );
        assert_eq!(mapping_path(&p(&["`backtick`"])), None);
        assert_eq!(mapping_path(&p(&["a.`b"])), None);
    }
}
