//! The metadata files of a managed export: which entity files there are, and when the
//! export ran.
//!
//! An export directory `<prefix>/<name>/` holds `<name>.overall_export_metadata` and,
//! per entity set, a folder with an `.export_metadata` file and its `output-N` files:
//! `all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata` for a whole
//! database, `all_namespaces/kind_<collection id>/all_namespaces_kind_<id>.export_metadata`
//! for each collection group of an export with `--collection-ids`. (The emulator's
//! export endpoint takes only a database, directory and name, so it always writes the
//! first; the parser does not depend on the folder names: it follows the paths given.)
//!
//! **`.overall_export_metadata`** is a LevelDB log (see [`super::log`]). The emulator
//! writes two records: a one-byte `"3"` (a format marker; kept in
//! [`OverallMetadata::marker`], not interpreted) then an `OverallExportMetadata`:
//!
//! * 1 `export_pointers` (repeated `SingleExportMetadataPointer`):
//!   1 `entity_set_spec` {1 kind_type (1 one kind, 2 all kinds), 2 kind, 3
//!   namespace_type (1 default, 2 one, 3 all namespaces), 4 namespace};
//!   2 `export_metadata_file`, relative to the overall file's folder — **relied on**;
//!   3 `num_entities`, 4 `num_bytes` (of the output files) — informative (progress).
//!
//! **`.export_metadata`** is one plain protobuf message, the Datastore Admin backup
//! format (`Backup`):
//!
//! * 1 `backup_info` {1 backup_name (the export name), 2 start_timestamp, 3
//!   end_timestamp (microseconds since the epoch)};
//! * 2 `kind_info` (repeated) {1 kind ("" = all kinds), 2 file (repeated: the output
//!   files, relative to the metadata file's folder) — **relied on**; 3 entity_schema,
//!   4 is_partial — ignored}.
//!
//! # Which instant an export is
//!
//! [`KindMetadata::snapshot_micros`] is `start_timestamp` (field 2 of `backup_info`):
//! the time the export began, the earliest state it can hold. Google documents an
//! export as a consistent view only when it was requested with a `snapshot_time`
//! (which must be a past minute); without one there is no consistency guarantee, and
//! documents may reflect any state between start and end. The files do not record a
//! requested `snapshot_time` (in the emulator's; production exports are expected to
//! share the format). Replaying changes from the start time onwards therefore covers
//! every change the export may have missed; the end time bounds the window.

use super::entity::wire::{Reader, Writer, LEN, VARINT};
use super::log::{read_log, write_log};

/// A metadata file that is not what an export writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("export metadata: {reason}")]
pub struct MetadataError {
    pub reason: String,
}

impl MetadataError {
    fn new(reason: impl Into<String>) -> Self {
        MetadataError {
            reason: reason.into(),
        }
    }
}

impl From<super::entity::wire::WireError> for MetadataError {
    fn from(e: super::entity::wire::WireError) -> Self {
        MetadataError::new(e.0)
    }
}

/// Which entities an entity set holds (`EntitySetSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySetSpec {
    /// 1 = one kind, 2 = all kinds (0 when absent).
    pub kind_type: u64,
    /// The kind (collection group id) when `kind_type` is one kind.
    pub kind: String,
    /// 1 = default namespace, 2 = one namespace, 3 = all namespaces.
    pub namespace_type: u64,
    pub namespace: String,
}

impl EntitySetSpec {
    pub const ONE_KIND: u64 = 1;
    pub const ALL_KINDS: u64 = 2;
    pub const ALL_NAMESPACES: u64 = 3;

    /// All kinds of all namespaces: a whole-database export.
    pub fn all() -> Self {
        EntitySetSpec {
            kind_type: Self::ALL_KINDS,
            kind: String::new(),
            namespace_type: Self::ALL_NAMESPACES,
            namespace: String::new(),
        }
    }

    /// One collection group (an export with `--collection-ids`).
    pub fn kind(kind: &str) -> Self {
        EntitySetSpec {
            kind_type: Self::ONE_KIND,
            kind: kind.to_string(),
            ..Self::all()
        }
    }
}

/// One entity set of an export (`SingleExportMetadataPointer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindFile {
    /// Its `.export_metadata` file, relative to the overall metadata file's folder.
    pub path: String,
    pub spec: EntitySetSpec,
    pub num_entities: u64,
    pub num_bytes: u64,
}

/// The `.overall_export_metadata` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverallMetadata {
    /// The records before the metadata proper (the emulator writes `b"3"`).
    pub marker: Vec<Vec<u8>>,
    pub kinds: Vec<KindFile>,
}

/// The marker record the emulator writes first.
pub const OVERALL_MARKER: &[u8] = b"3";

/// An `.export_metadata` file (`Backup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindMetadata {
    /// The export name (`backup_name`).
    pub name: String,
    /// When the export started, microseconds since the epoch.
    pub start_micros: i64,
    /// When it ended.
    pub end_micros: i64,
    /// The kinds listed ("" = all kinds), one per `kind_info`.
    pub kinds: Vec<String>,
    /// The output files of every `kind_info`, in order, relative to this file's folder.
    pub outputs: Vec<String>,
}

impl KindMetadata {
    /// The instant this export stands for; see the module doc (its start).
    pub fn snapshot_micros(&self) -> i64 {
        self.start_micros
    }
}

fn utf8(b: &[u8], what: &str) -> Result<String, MetadataError> {
    String::from_utf8(b.to_vec()).map_err(|_| MetadataError::new(format!("{what} is not UTF-8")))
}

/// Parses an `.overall_export_metadata` file (a log): the last record is the
/// metadata, earlier ones are markers.
pub fn parse_overall(bytes: &[u8]) -> Result<OverallMetadata, MetadataError> {
    let mut records = read_log(bytes)
        .map_err(|e| MetadataError::new(format!("overall metadata log: {e}")))?
        .into_iter()
        .map(|r| r.data)
        .collect::<Vec<_>>();
    let body = records
        .pop()
        .ok_or_else(|| MetadataError::new("the overall metadata file holds no record"))?;
    let mut kinds = Vec::new();
    let mut r = Reader::new(&body);
    while let Some((field, wt)) = r.tag()? {
        match (field, wt) {
            (1, LEN) => {
                let n = kinds.len();
                kinds.push(parse_pointer(r.bytes()?).map_err(|e| {
                    MetadataError::new(format!("export pointer {n}: {}", e.reason))
                })?);
            }
            (f, w) => r.skip(f, w)?,
        }
    }
    if kinds.is_empty() {
        return Err(MetadataError::new(
            "the overall metadata lists no export_metadata file (field 1)",
        ));
    }
    Ok(OverallMetadata {
        marker: records,
        kinds,
    })
}

fn parse_pointer(bytes: &[u8]) -> Result<KindFile, MetadataError> {
    let mut r = Reader::new(bytes);
    let mut path = None;
    let mut spec = EntitySetSpec {
        kind_type: 0,
        kind: String::new(),
        namespace_type: 0,
        namespace: String::new(),
    };
    let (mut num_entities, mut num_bytes) = (0, 0);
    while let Some((field, wt)) = r.tag()? {
        match (field, wt) {
            (1, LEN) => {
                let mut s = Reader::new(r.bytes()?);
                while let Some((f, w)) = s.tag()? {
                    match (f, w) {
                        (1, VARINT) => spec.kind_type = s.varint()?,
                        (2, LEN) => spec.kind = utf8(s.bytes()?, "entity_set_spec.kind")?,
                        (3, VARINT) => spec.namespace_type = s.varint()?,
                        (4, LEN) => spec.namespace = utf8(s.bytes()?, "entity_set_spec.namespace")?,
                        (f, w) => s.skip(f, w)?,
                    }
                }
            }
            (2, LEN) => path = Some(utf8(r.bytes()?, "export_metadata_file (field 2)")?),
            (3, VARINT) => num_entities = r.varint()?,
            (4, VARINT) => num_bytes = r.varint()?,
            (f, w) => r.skip(f, w)?,
        }
    }
    let path = path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| MetadataError::new("no export_metadata_file (field 2)"))?;
    Ok(KindFile {
        path,
        spec,
        num_entities,
        num_bytes,
    })
}

/// Writes an `.overall_export_metadata` file as the emulator does.
pub fn write_overall(m: &OverallMetadata) -> Vec<u8> {
    let mut w = Writer::default();
    for k in &m.kinds {
        let mut spec = Writer::default();
        if k.spec.kind_type != 0 {
            spec.varint(1, k.spec.kind_type);
        }
        if !k.spec.kind.is_empty() {
            spec.bytes(2, k.spec.kind.as_bytes());
        }
        if k.spec.namespace_type != 0 {
            spec.varint(3, k.spec.namespace_type);
        }
        if !k.spec.namespace.is_empty() {
            spec.bytes(4, k.spec.namespace.as_bytes());
        }
        let mut p = Writer::default();
        p.bytes(1, &spec.buf);
        p.bytes(2, k.path.as_bytes());
        p.varint(3, k.num_entities);
        p.varint(4, k.num_bytes);
        w.bytes(1, &p.buf);
    }
    let mut records: Vec<&[u8]> = m.marker.iter().map(|r| r.as_slice()).collect();
    records.push(&w.buf);
    write_log(records)
}

/// Parses an `.export_metadata` file.
pub fn parse_kind(bytes: &[u8]) -> Result<KindMetadata, MetadataError> {
    let mut r = Reader::new(bytes);
    let mut info = None;
    let mut kinds = Vec::new();
    let mut outputs = Vec::new();
    while let Some((field, wt)) = r.tag()? {
        match (field, wt) {
            (1, LEN) => {
                let mut b = Reader::new(r.bytes()?);
                let (mut name, mut start, mut end) = (String::new(), None, None);
                while let Some((f, w)) = b.tag()? {
                    match (f, w) {
                        (1, LEN) => name = utf8(b.bytes()?, "backup_info.backup_name")?,
                        (2, VARINT) => start = Some(b.varint()? as i64),
                        (3, VARINT) => end = Some(b.varint()? as i64),
                        (f, w) => b.skip(f, w)?,
                    }
                }
                let start = start.ok_or_else(|| {
                    MetadataError::new("backup_info has no start_timestamp (field 2)")
                })?;
                let end = end.ok_or_else(|| {
                    MetadataError::new("backup_info has no end_timestamp (field 3)")
                })?;
                info = Some((name, start, end));
            }
            (2, LEN) => {
                let mut k = Reader::new(r.bytes()?);
                let mut kind = String::new();
                while let Some((f, w)) = k.tag()? {
                    match (f, w) {
                        (1, LEN) => kind = utf8(k.bytes()?, "kind_info.kind")?,
                        (2, LEN) => outputs.push(utf8(k.bytes()?, "kind_info.file")?),
                        (f, w) => k.skip(f, w)?,
                    }
                }
                kinds.push(kind);
            }
            (f, w) => r.skip(f, w)?,
        }
    }
    let (name, start_micros, end_micros) =
        info.ok_or_else(|| MetadataError::new("no backup_info (field 1)"))?;
    if kinds.is_empty() {
        return Err(MetadataError::new("no kind_info (field 2)"));
    }
    if outputs.iter().any(|o| o.is_empty()) {
        return Err(MetadataError::new(
            "an empty output file name in kind_info.file",
        ));
    }
    Ok(KindMetadata {
        name,
        start_micros,
        end_micros,
        kinds,
        outputs,
    })
}

/// Writes an `.export_metadata` file as the emulator does. With several kinds, every
/// output goes to the first `kind_info` (an export the emulator or Firestore writes has
/// one per file).
pub fn write_kind(m: &KindMetadata) -> Vec<u8> {
    let mut info = Writer::default();
    info.bytes(1, m.name.as_bytes());
    info.varint(2, m.start_micros as u64);
    info.varint(3, m.end_micros as u64);
    let mut w = Writer::default();
    w.bytes(1, &info.buf);
    for (i, kind) in m.kinds.iter().enumerate() {
        let mut k = Writer::default();
        k.bytes(1, kind.as_bytes());
        if i == 0 {
            for o in &m.outputs {
                k.bytes(2, o.as_bytes());
            }
        }
        w.bytes(2, &k.buf);
    }
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    const E1_OVERALL: &[u8] =
        include_bytes!("../../../tests/fixtures/export/exp1/e1/e1.overall_export_metadata");
    const E1_KIND: &[u8] = include_bytes!(
        "../../../tests/fixtures/export/exp1/e1/all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata"
    );
    const E3_OVERALL: &[u8] =
        include_bytes!("../../../tests/fixtures/export/exp3/e3/e3.overall_export_metadata");
    const E3_KIND: &[u8] = include_bytes!(
        "../../../tests/fixtures/export/exp3/e3/all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata"
    );
    const EDGE_OVERALL: &[u8] =
        include_bytes!("../../../tests/fixtures/export/edge/e/e.overall_export_metadata");

    const PATH: &str = "all_namespaces/all_kinds/all_namespaces_all_kinds.export_metadata";

    #[test]
    fn parses_the_emulator_overall_metadata() {
        let m = parse_overall(E1_OVERALL).unwrap();
        assert_eq!(
            m,
            OverallMetadata {
                marker: vec![b"3".to_vec()],
                kinds: vec![KindFile {
                    path: PATH.into(),
                    spec: EntitySetSpec::all(),
                    num_entities: 3,
                    num_bytes: 518,
                }],
            }
        );
        // The byte count is the output file's size.
        let out = include_bytes!(
            "../../../tests/fixtures/export/exp1/e1/all_namespaces/all_kinds/output-0"
        );
        assert_eq!(m.kinds[0].num_bytes, out.len() as u64);
        let m3 = parse_overall(E3_OVERALL).unwrap();
        assert_eq!((m3.kinds[0].num_entities, m3.kinds[0].num_bytes), (1, 96));
        let edge = parse_overall(EDGE_OVERALL).unwrap();
        assert_eq!(
            (edge.kinds[0].num_entities, edge.kinds[0].num_bytes),
            (4, 70882)
        );
    }

    #[test]
    fn writes_the_emulator_overall_metadata_byte_for_byte() {
        for file in [E1_OVERALL, E3_OVERALL, EDGE_OVERALL] {
            assert_eq!(write_overall(&parse_overall(file).unwrap()), file.to_vec());
        }
    }

    #[test]
    fn parses_the_emulator_kind_metadata() {
        let m = parse_kind(E1_KIND).unwrap();
        assert_eq!(m.name, "e1");
        assert_eq!(m.kinds, [""]);
        assert_eq!(m.outputs, ["output-0"]);
        assert_eq!(m.start_micros, 1_796_232_797_221_918);
        assert_eq!(m.end_micros, 1_796_232_797_260_189);
        assert_eq!(m.snapshot_micros(), m.start_micros);
        assert!(m.start_micros <= m.end_micros);
        let m3 = parse_kind(E3_KIND).unwrap();
        assert_eq!(
            (m3.name.as_str(), m3.outputs.as_slice()),
            ("e3", ["output-0".to_string()].as_slice())
        );
        for file in [E1_KIND, E3_KIND] {
            assert_eq!(write_kind(&parse_kind(file).unwrap()), file.to_vec());
        }
    }

    #[test]
    fn per_collection_exports_round_trip() {
        let m = OverallMetadata {
            marker: vec![OVERALL_MARKER.to_vec()],
            kinds: vec![
                KindFile {
                    path: "all_namespaces/kind_users/all_namespaces_kind_users.export_metadata"
                        .into(),
                    spec: EntitySetSpec::kind("users"),
                    num_entities: 10,
                    num_bytes: 1 << 40,
                },
                KindFile {
                    path: "all_namespaces/kind_posts/all_namespaces_kind_posts.export_metadata"
                        .into(),
                    spec: EntitySetSpec::kind("posts"),
                    num_entities: 0,
                    num_bytes: 0,
                },
            ],
        };
        assert_eq!(parse_overall(&write_overall(&m)).unwrap(), m);
        let k = KindMetadata {
            name: "2026-12-02T17:00:00_1234".into(),
            start_micros: -5,
            end_micros: 1_764_696_813_306_269,
            kinds: vec!["users".into()],
            outputs: vec!["output-0".into(), "output-1".into(), "output-2".into()],
        };
        assert_eq!(parse_kind(&write_kind(&k)).unwrap(), k);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let no_pointer = write_log([b"3".as_slice(), b"".as_slice()]);
        assert!(parse_overall(&no_pointer)
            .unwrap_err()
            .reason
            .contains("no export_metadata file (field 1)"));
        assert!(parse_overall(b"")
            .unwrap_err()
            .reason
            .contains("holds no record"));
        let mut damaged = E1_OVERALL.to_vec();
        damaged[20] ^= 1;
        assert!(parse_overall(&damaged)
            .unwrap_err()
            .reason
            .contains("CRC mismatch"));
        // Kind metadata without backup_info, without end time, without kind_info.
        let mut w = Writer::default();
        w.bytes(2, b"\x12\x08output-0");
        assert!(parse_kind(&w.buf)
            .unwrap_err()
            .reason
            .contains("no backup_info (field 1)"));
        let mut w = Writer::default();
        w.bytes(1, b"\x0a\x01e\x10\x05");
        assert!(parse_kind(&w.buf)
            .unwrap_err()
            .reason
            .contains("no end_timestamp (field 3)"));
        let mut w = Writer::default();
        w.bytes(1, b"\x0a\x01e\x10\x05\x18\x06");
        assert!(parse_kind(&w.buf)
            .unwrap_err()
            .reason
            .contains("no kind_info (field 2)"));
        assert!(parse_kind(&E1_KIND[..E1_KIND.len() - 3])
            .unwrap_err()
            .reason
            .contains("past the end"));
    }
}
