//! Reading a mapping directory: every `*.toml` file is parsed and checked against the
//! schema, and every problem becomes a [`MappingError`] naming `file:line:column`, what
//! is wrong and how to fix it. Errors are collected across all files (and, for unknown
//! keys, all of them within a file) rather than stopping at the first.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml_edit::{ImDocument, Item, TableLike};

use super::spec::{
    DatasetFile, EmbedSpec, FieldSpec, IdSpec, IndexSpec, MappingFile, MetadataSpec, ParentSpec,
};

/// The reserved file name of the dataset settings.
pub const DATASET_FILE: &str = "dataset.toml";

/// One problem in a mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file or directory itself.
    pub line: usize,
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it (may be empty).
    pub help: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        }
        if !self.help.is_empty() {
            write!(f, "\n    help: {}", self.help)?;
        }
        Ok(())
    }
}

/// Every problem found in a mapping directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingErrors(pub Vec<MappingError>);

impl fmt::Display for MappingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "{e}")?;
        }
        let mut files: Vec<&PathBuf> = self.0.iter().map(|e| &e.file).collect();
        files.sort();
        files.dedup();
        write!(
            f,
            "{} error{} in {} file{}",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" },
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for MappingErrors {}

/// A file's text, with what it takes to turn byte offsets into lines and columns.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|s| *s <= offset);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }

    pub fn error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> MappingError {
        let (line, column) = self.position(span.start);
        MappingError {
            file: self.path.clone(),
            line,
            column,
            message: message.into(),
            help: help.into(),
        }
    }
}

/// A parsed mapping file.
#[derive(Debug)]
pub struct LoadedMapping {
    pub file: Arc<SourceFile>,
    pub spec: MappingFile,
}

/// What a directory holds, parsed; plus the errors found so far.
#[derive(Debug, Default)]
pub struct Loaded {
    pub dir: PathBuf,
    pub dataset: Option<(Arc<SourceFile>, DatasetFile)>,
    pub mappings: Vec<LoadedMapping>,
    /// `collection` values of files that failed to parse: known to exist, so references
    /// to them are not reported as unmapped on top of the file's own error.
    pub broken_collections: Vec<String>,
    /// A mapping file failed to parse and its `collection` could not be read either: any
    /// reference to an unmapped collection may be to it, so none is reported.
    pub broken_unknown: bool,
    pub errors: Vec<MappingError>,
}

/// Reads and parses every `*.toml` file of `dir` (not recursive; `dataset.toml` holds the
/// dataset settings). No I/O but reading the files.
pub fn load_dir(dir: &Path) -> Loaded {
    let mut loaded = Loaded {
        dir: dir.to_path_buf(),
        ..Loaded::default()
    };
    let dir_error = |message: String, help: &str| MappingError {
        file: dir.to_path_buf(),
        line: 0,
        column: 0,
        message,
        help: help.to_string(),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            loaded.errors.push(dir_error(
                format!("cannot read the mapping directory: {e}"),
                "pass --mappings mappings/<dataset>, a directory of *.toml mapping files",
            ));
            return loaded;
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|x| x == "toml")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        // Most likely the folder above a dataset's (`mappings` for `mappings/mixillo`).
        let below: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let mut below = below;
        below.sort();
        loaded.errors.push(dir_error(
            "no mapping files (*.toml) in this directory".to_string(),
            &if below.is_empty() {
                "pass --mappings mappings/<dataset>, a directory of *.toml mapping files"
                    .to_string()
            } else {
                format!("pass one dataset's directory: {}", below.join(", "))
            },
        ));
        return loaded;
    }
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                loaded.errors.push(MappingError {
                    file: path.clone(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read: {e}"),
                    help: String::new(),
                });
                continue;
            }
        };
        let is_dataset = path.file_name().is_some_and(|n| n == DATASET_FILE);
        let file = Arc::new(SourceFile::new(path, text));
        if is_dataset {
            if let Some(spec) = parse::<DatasetFile>(&file, true, &mut loaded) {
                loaded.dataset = Some((file, spec));
            }
        } else if let Some(spec) = parse::<MappingFile>(&file, false, &mut loaded) {
            loaded.mappings.push(LoadedMapping { file, spec });
        }
    }
    loaded
}

/// Parses one file: syntax, then every unknown key (all of them), then types: serde
/// stops at its first error, so [`type_errors`] takes each one out and reads the file
/// again to find the next (an error repeating an unknown key found above is left out).
fn parse<T: for<'de> serde::Deserialize<'de>>(
    file: &Arc<SourceFile>,
    is_dataset: bool,
    loaded: &mut Loaded,
) -> Option<T> {
    let doc = match ImDocument::parse(file.text.as_str()) {
        Ok(d) => d,
        Err(e) => {
            loaded.errors.push(file.error(
                e.span().unwrap_or(0..0),
                format!("TOML syntax error: {}", e.message().trim()),
                "see https://toml.io for the syntax; strings need double quotes",
            ));
            // Its collection still exists: references to it elsewhere are not errors of
            // their own (they would bury this one under follow-ons).
            if !is_dataset {
                match collection_of_unparsed(&file.text) {
                    Some(c) => loaded.broken_collections.push(c),
                    None => loaded.broken_unknown = true,
                }
            }
            return None;
        }
    };
    let unknown = if is_dataset {
        let mut errors = Vec::new();
        check_keys(file, doc.as_table(), DatasetFile::KEYS, "", &mut errors);
        errors
    } else {
        scan_mapping(file, &doc)
    };
    let found_unknown = !unknown.is_empty();
    loaded.errors.extend(unknown);
    match toml::from_str::<T>(&file.text) {
        Ok(spec) if !found_unknown => Some(spec),
        Ok(_) => None,
        Err(e) => {
            for (span, message) in type_errors::<T>(&file.text, e) {
                if !(found_unknown && message.starts_with("unknown field")) {
                    loaded.errors.push(schema_error(file, span, &message));
                }
            }
            if !is_dataset {
                if let Some(c) = doc.get("collection").and_then(|c| c.as_str()) {
                    loaded.broken_collections.push(c.to_string());
                }
            }
            None
        }
    }
}

/// Most type errors one file reports; a file with more has bigger problems than a list
/// can help with.
const MAX_TYPE_ERRORS: usize = 20;

/// Every type error of a file that TOML parses, `first` (serde's) included, in file
/// order as serde meets them. serde stops at the first error, so each error's line is
/// blanked out (spaces, so the offsets of the rest stay) and the text read again; a
/// `missing field` error for a key blanked that way is a follow-on and is left out.
/// Stops at an error that does not sit on key-value lines of its own (a missing key of a
/// whole table, a table header), at the first blanking TOML cannot parse, and at
/// [`MAX_TYPE_ERRORS`].
fn type_errors<T: for<'de> serde::Deserialize<'de>>(
    text: &str,
    first: toml::de::Error,
) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    let mut text = text.to_string();
    let mut blanked: Vec<String> = Vec::new();
    let mut error = first;
    loop {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().to_string();
        let follow_on = message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
            .is_some_and(|k| blanked.iter().any(|b| b == k));
        if !follow_on {
            out.push((span.clone(), message.clone()));
        }
        if out.len() >= MAX_TYPE_ERRORS || message.starts_with("missing field") {
            return out;
        }
        let Some((lines, key)) = own_lines(&text, &span) else {
            return out;
        };
        let mut next = text.clone();
        // Spaces keep every later offset, hence every later line and column, as it was.
        next.replace_range(lines.clone(), &" ".repeat(lines.len()));
        if ImDocument::parse(next.as_str()).is_err() {
            return out;
        }
        blanked.push(key);
        text = next;
        error = match toml::from_str::<T>(&text) {
            Ok(_) => return out,
            Err(e) => e,
        };
    }
}

/// The byte range of the whole lines `span` lies on (newlines excluded) and the key of
/// the first one, when the first is a `key = value` line (not a table header).
fn own_lines(text: &str, span: &Range<usize>) -> Option<(Range<usize>, String)> {
    if span.end > text.len() || span.is_empty() {
        return None;
    }
    let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let end = text[span.end..]
        .find('\n')
        .map_or(text.len(), |i| span.end + i);
    let first = text[start..].lines().next()?.trim_start();
    if first.starts_with('[') {
        return None;
    }
    let (key, _) = first.split_once('=')?;
    let key = key.trim().trim_matches('"').trim_matches('\'').to_string();
    Some((start..end, key))
}

/// The `collection` of a file TOML cannot parse, read leniently: the first line whose
/// key is `collection` and that holds a quoted string.
fn collection_of_unparsed(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("collection")?;
        if !rest.trim_start().starts_with('=') {
            return None;
        }
        let start = rest.find('"')? + 1;
        let len = rest[start..].find('"')?;
        Some(rest[start..start + len].to_string())
    })
}

/// A serde error, with a suggestion when it names an unknown key or value.
fn schema_error(file: &SourceFile, span: Range<usize>, message: &str) -> MappingError {
    let ticked: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let help = match ticked.split_first() {
        Some((bad, expected))
            if message.starts_with("unknown variant") || message.starts_with("unknown field") =>
        {
            match did_you_mean(bad, expected.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected one of: {}", expected.join(", ")),
            }
        }
        _ if message.starts_with("missing field") => {
            "add it; docs/mappings.md lists every key with its type and default".to_string()
        }
        _ => "docs/mappings.md lists every key with its type and default".to_string(),
    };
    file.error(span, message.to_string(), help)
}

/// The closest candidate, if close enough to be a typo.
pub fn did_you_mean<'a>(bad: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(bad, c), c))
        .filter(|(score, c)| *score >= 0.8 || strsim::levenshtein(bad, c) <= 2)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Every unknown key of a mapping file, in every table.
fn scan_mapping(file: &SourceFile, doc: &ImDocument<&str>) -> Vec<MappingError> {
    let mut errors = Vec::new();
    let top = doc.as_table();
    check_keys(file, top, MappingFile::KEYS, "", &mut errors);
    for (name, keys) in [
        ("id", IdSpec::KEYS),
        ("parent", ParentSpec::KEYS),
        ("embed", EmbedSpec::KEYS),
        ("metadata", MetadataSpec::KEYS),
    ] {
        if let Some(t) = top.get(name).and_then(Item::as_table_like) {
            check_keys(file, t, keys, &format!("[{name}]"), &mut errors);
        }
    }
    if let Some(fields) = top.get("fields").and_then(Item::as_table_like) {
        for (name, item) in fields.iter() {
            if let Some(t) = item.as_table_like() {
                check_keys(
                    file,
                    t,
                    FieldSpec::KEYS,
                    &format!("[fields.\"{name}\"]"),
                    &mut errors,
                );
            }
        }
    }
    match top.get("indexes") {
        Some(Item::ArrayOfTables(a)) => {
            for (i, t) in a.iter().enumerate() {
                check_keys(
                    file,
                    t,
                    IndexSpec::KEYS,
                    &format!("[[indexes]] #{}", i + 1),
                    &mut errors,
                );
            }
        }
        Some(Item::Value(toml_edit::Value::Array(a))) => {
            for (i, v) in a.iter().enumerate() {
                if let Some(t) = v.as_inline_table() {
                    check_keys(
                        file,
                        t,
                        IndexSpec::KEYS,
                        &format!("indexes[{i}]"),
                        &mut errors,
                    );
                }
            }
        }
        _ => {}
    }
    errors
}

fn check_keys(
    file: &SourceFile,
    table: &dyn TableLike,
    known: &[&str],
    context: &str,
    errors: &mut Vec<MappingError>,
) {
    for (key, item) in table.iter() {
        if known.contains(&key) {
            continue;
        }
        let span = table
            .get_key_value(key)
            .and_then(|(k, _)| k.span())
            .or_else(|| item.span())
            .unwrap_or(0..0);
        let place = if context.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in {context}")
        };
        let help = match did_you_mean(key, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("allowed keys here: {}", known.join(", ")),
        };
        errors.push(file.error(span, format!("unknown key `{key}` {place}"), help));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(name: &str, text: &str) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
        let mut l = load_dir(dir.path());
        for e in &mut l.errors {
            e.file = PathBuf::from(e.file.file_name().unwrap());
        }
        l
    }

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let f = SourceFile::new("x".into(), "ab\nçd = 1\n".into());
        assert_eq!(f.position(0), (1, 1));
        assert_eq!(f.position(3), (2, 1));
        assert_eq!(f.position(6), (2, 3));
    }

    #[test]
    fn every_unknown_key_is_reported_with_line_column_and_suggestion() {
        let l = load_text(
            "users.toml",
            "collection = \"users\"\ntagret = \"people\"\n\n[fields.name]\nrenam = \"n\"\n\n[[indexes]]\nkeys = { a = 1 }\nuniqe = true\n",
        );
        let shown: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "users.toml:2:1: unknown key `tagret` at the top level\n    help: did you mean `target`?",
                "users.toml:5:1: unknown key `renam` in [fields.\"name\"]\n    help: did you mean `rename`?",
                "users.toml:9:1: unknown key `uniqe` in [[indexes]] #1\n    help: did you mean `unique`?",
            ]
        );
        assert!(l.mappings.is_empty());
        assert_eq!(l.broken_collections, vec!["users"]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let l = load_text("a.toml", "collection = \"a\"\ntarget = b\n");
        assert_eq!(l.errors.len(), 1);
        let e = &l.errors[0];
        assert_eq!((e.line, e.column), (2, 10));
        assert!(e.message.starts_with("TOML syntax error"), "{e}");
    }

    #[test]
    fn type_errors_and_bad_values_are_reported_with_a_suggestion() {
        let l = load_text(
            "a.toml",
            "collection = \"a\"\n[fields.x]\ncast = \"datetime\"\n",
        );
        assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
        let e = &l.errors[0];
        assert_eq!(e.line, 3);
        assert!(e.message.contains("unknown variant `datetime`"), "{e}");
        let l = load_text("a.toml", "collection = \"a\"\n[fields.x]\ncast = \"dat\"\n");
        assert_eq!(l.errors[0].help, "did you mean `date`?");
        let l = load_text("a.toml", "target = \"a\"\n");
        assert!(l.errors[0].message.contains("missing field `collection`"));
        let l = load_text("a.toml", "collection = 5\n");
        assert_eq!((l.errors[0].line, l.errors[0].column), (1, 14));
    }

    #[test]
    fn every_type_error_of_a_file_is_reported_with_its_line() {
        let l = load_text(
            "a.toml",
            "collection = \"a\"\n\n[fields.x]\ncast = \"datetime\"\n\n[fields.y]\nrequired = \"yes\"\n\n[[indexes]]\nkeys = { a = 1 }\nunique = 3\n",
        );
        let shown: Vec<(usize, &str)> = l
            .errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(shown.len(), 3, "{:#?}", l.errors);
        assert_eq!(shown[0].0, 4);
        assert!(
            shown[0].1.contains("unknown variant `datetime`"),
            "{shown:?}"
        );
        assert_eq!(shown[1].0, 7);
        assert!(
            shown[1].1.contains("invalid type: string \"yes\""),
            "{shown:?}"
        );
        assert_eq!(shown[2].0, 11);
        assert!(
            shown[2].1.contains("invalid type: integer `3`"),
            "{shown:?}"
        );
        assert!(l.mappings.is_empty());
        assert_eq!(l.broken_collections, vec!["a"]);
    }

    #[test]
    fn a_blanked_required_key_is_not_reported_missing_as_well() {
        let l = load_text(
            "a.toml",
            "collection = 5
target = 6
",
        );
        let shown: Vec<(usize, &str)> = l
            .errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(shown.len(), 2, "{:#?}", l.errors);
        assert_eq!((shown[0].0, shown[1].0), (1, 2));
        assert!(
            shown.iter().all(|(_, m)| !m.contains("missing field")),
            "{shown:?}"
        );
    }

    #[test]
    fn a_missing_directory_is_one_clear_error() {
        let l = load_dir(Path::new("/nonexistent/mappings/x"));
        assert_eq!(l.errors.len(), 1);
        assert!(l.errors[0]
            .to_string()
            .starts_with("/nonexistent/mappings/x: cannot read the mapping directory"));
    }
}
