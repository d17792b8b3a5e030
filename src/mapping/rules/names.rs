//! Names written in mapping files: field paths (`a.b`, `` `a.b`.c ``), the names a
//! mapping gives target fields, and collection patterns with named placeholders
//! (`users/{userId}/posts`).

use crate::path::CollectionPattern;

/// Splits a field path: `a.b`, `` `a.b`.c `` (backticks quote a segment holding dots).
pub fn parse_field_path(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        let (seg, tail) = if let Some(quoted) = rest.strip_prefix('`') {
            let end = quoted
                .find('`')
                .ok_or_else(|| format!("unclosed backtick in field path `{s}`"))?;
            let tail = &quoted[end + 1..];
            if !(tail.is_empty() || tail.starts_with('.')) {
                return Err(format!(
                    "in field path `{s}`, a backtick-quoted segment must be followed by `.` or end the path"
                ));
            }
            (quoted[..end].to_string(), tail)
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            (rest[..end].to_string(), &rest[end..])
        };
        if seg.is_empty() {
            return Err(format!("field path `{s}` has an empty segment"));
        }
        if seg.contains('\0') {
            return Err(format!("field path `{s}` contains NUL"));
        }
        out.push(seg);
        match tail.strip_prefix('.') {
            Some(t) => rest = t,
            None => return Ok(out),
        }
    }
}

/// Whether a name is fit for a target field chosen by the mapping (a rename, the parent
/// key, …): non-empty, no `.`, no leading `$`, no NUL.
pub fn check_output_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a field name cannot be empty".into())
    } else if name.contains('.') {
        Err(format!("`{name}` contains `.`"))
    } else if name.starts_with('$') {
        Err(format!("`{name}` starts with `$`"))
    } else if name.contains('\0') {
        Err(format!("`{name}` contains NUL"))
    } else {
        Ok(())
    }
}

/// Parses `users/{userId}/posts` into its pattern and placeholder names.
pub fn parse_pattern(s: &str) -> Option<(CollectionPattern, Vec<Option<String>>)> {
    let pattern = CollectionPattern::parse(s)?;
    let names = s
        .split('/')
        .skip(1)
        .step_by(2)
        .map(|p| {
            let name = &p[1..p.len() - 1];
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect();
    Some((pattern, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_split_on_dots_outside_backticks() {
        assert_eq!(parse_field_path("a").unwrap(), vec!["a"]);
        assert_eq!(parse_field_path("a.b.c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse_field_path("`a.b`.c").unwrap(), vec!["a.b", "c"]);
        assert_eq!(parse_field_path("x.`$y`").unwrap(), vec!["x", "$y"]);
        assert!(parse_field_path("a..b")
            .unwrap_err()
            .contains("empty segment"));
        assert!(parse_field_path("`a").unwrap_err().contains("unclosed"));
        assert!(parse_field_path("`a`b").is_err());
    }
}
