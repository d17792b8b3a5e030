//! The LevelDB log format that managed exports (Firestore and Datastore) frame their
//! files with: `output-N` entity files and the `.overall_export_metadata` file.
//!
//! A file is a sequence of 32 KiB blocks (the last one may be short). A block holds
//! fragments, each a 7-byte header — masked CRC32C (u32 LE, over the type byte and the
//! payload), payload length (u16 LE), type (1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST) — then
//! the payload. A record is one FULL fragment or FIRST, MIDDLE…, LAST; a fragment never
//! crosses a block boundary, so every block starts with a header, and a block's last
//! 1–6 bytes, too few for a header, are padding. A header with type 0 and length 0 is
//! padding written by preallocating writers: LevelDB's reader drops the rest of the
//! block silently, and so does this one.
//!
//! [`LogDecoder`] is a push decoder (the caller reads blocks from a local file or an
//! HTTP body and feeds them in order); [`LogWriter`] writes the same format, fragmenting
//! exactly as LevelDB's `log::Writer` does (the benchmark generator and the tests use it).
//!
//! # Errors and skipping damaged records
//!
//! Every damage is reported once, as a [`LogError`] at the file offset of the damaged
//! record (of its first fragment; of the fragment itself when no record was open).
//! After `push_block` (or `skip_corrupt`) returned an error the decoder is stopped: a
//! strict reader gives up; a reader that skips damaged records calls
//! [`LogDecoder::skip_corrupt`], which goes on from just after the damage in the same
//! block (it keeps the rest of that block), delivering records and returning the next
//! error, if any, the same way; once it returns `Ok` the caller feeds the next block.
//! Resynchronising: when a fragment's CRC or length is bad, its length cannot be
//! trusted, so the decoder looks for the next fragment with a valid CRC, first right
//! after the damaged fragment, then byte by byte up to the block's end (a false match
//! needs a CRC32C collision); the next block starts with a header again. MIDDLE and
//! LAST fragments met before the next FULL or FIRST belong to the damaged record and
//! are skipped without a second report. A file cut inside a header or payload is
//! reported by `push_block` on its short last block; one cut between fragments of a
//! record (FIRST or MIDDLE last) by [`LogDecoder::finish`].

/// Size of a log block: fragments never cross a multiple of it.
pub const BLOCK_SIZE: usize = 32 * 1024;

/// Size of a fragment header: masked CRC (4), length (2), type (1).
pub const HEADER_SIZE: usize = 7;

const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// The constant LevelDB adds when masking a CRC (so that a CRC of data holding CRCs
/// does not degenerate).
const MASK_DELTA: u32 = 0xa282_ead8;

/// LevelDB's masked CRC32C of a fragment: over the type byte, then the payload.
pub fn masked_crc(kind: u8, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload);
    // LevelDB: ((crc >> 15) | (crc << 17)) + kMaskDelta.
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// One whole record and where it lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// File offset of the header of its first fragment.
    pub offset: u64,
    /// File offset just after its last fragment: where a resume starts.
    pub end: u64,
    /// The payloads of its fragments, joined.
    pub data: Vec<u8>,
}

/// A damaged or truncated log. `offset` is where the damaged record (or, when no
/// record was open, the damaged fragment) starts: the position to name in a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {reason}")]
pub struct LogError {
    pub offset: u64,
    pub reason: String,
}

/// A record being assembled from fragments.
#[derive(Debug)]
struct Open {
    offset: u64,
    data: Vec<u8>,
}

/// Where to go on from in a block.
#[derive(Debug, Clone, Copy)]
enum Resume {
    /// A fragment header starts here.
    At(usize),
    /// After a fragment whose CRC did not match but whose length fit: a header may
    /// start at `try_at`; if none does, scan from `scan_from`.
    TryThenScan { try_at: usize, scan_from: usize },
    /// Look for a fragment with a valid CRC at every byte from here.
    Scan(usize),
}

/// Where the decoder stopped after an error: the rest of the block it was in.
#[derive(Debug)]
struct Stopped {
    block_offset: u64,
    block: Vec<u8>,
    resume: Resume,
}

/// Push decoder of a LevelDB log; see the module doc for the error contract.
#[derive(Debug)]
pub struct LogDecoder {
    start: u64,
    /// The block the caller must feed next.
    next_block: u64,
    /// Set once a short block (the file's last) was fed.
    ended: bool,
    open: Option<Open>,
    /// Skipping the fragments of a damaged record up to the next FULL/FIRST.
    resync: bool,
    stopped: Option<Stopped>,
    /// Stopped without the rest of a block to resume from (a caller error).
    poisoned: Option<LogError>,
}

impl LogDecoder {
    /// Starts decoding at file offset `start`: 0, or the `end` of an earlier record (a
    /// resume). Bytes of the first block before `start` are not looked at.
    pub fn new(start: u64) -> Self {
        LogDecoder {
            start,
            next_block: start - start % BLOCK_SIZE as u64,
            ended: false,
            open: None,
            resync: false,
            stopped: None,
            poisoned: None,
        }
    }

    /// The block-aligned file offset the caller must start feeding blocks from.
    pub fn first_block(&self) -> u64 {
        self.start - self.start % BLOCK_SIZE as u64
    }

    /// Feeds the block that starts at file offset `block_offset` (every block is
    /// [`BLOCK_SIZE`] bytes except the file's last, which may be shorter or empty);
    /// appends the records it completes to `out`, in file order. On `Err`, the records
    /// before the damage are in `out`; see [`skip_corrupt`](Self::skip_corrupt).
    pub fn push_block(
        &mut self,
        block_offset: u64,
        block: &[u8],
        out: &mut Vec<Record>,
    ) -> Result<(), LogError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        if let Some(s) = &self.stopped {
            return Err(LogError {
                offset: s.block_offset,
                reason:
                    "the decoder stopped at an error in this block: call skip_corrupt or give up"
                        .into(),
            });
        }
        if self.ended {
            return Err(self.poison(
                block_offset,
                "a block was fed after the file's short last block",
            ));
        }
        if block_offset != self.next_block {
            let reason = format!(
                "expected the block at {}, got one at {block_offset}",
                self.next_block
            );
            return Err(self.poison(block_offset, &reason));
        }
        if block.len() > BLOCK_SIZE {
            let reason = format!(
                "a block of {} bytes is longer than {BLOCK_SIZE}",
                block.len()
            );
            return Err(self.poison(block_offset, &reason));
        }
        self.next_block += BLOCK_SIZE as u64;
        self.ended = block.len() < BLOCK_SIZE;
        let pos = if block_offset < self.start {
            (self.start - block_offset) as usize
        } else {
            0
        };
        if pos > block.len() {
            let reason = format!(
                "the resume offset {} lies past the end of the file",
                self.start
            );
            return Err(self.poison(self.start, &reason));
        }
        self.run(block_offset, block, Resume::At(pos), out)
    }

    /// After an error: goes on from just after the damage, in the block where it was
    /// found, skipping the damaged record. Returns `Ok` when that block is done (feed
    /// the next one), or the next damage (call `skip_corrupt` again). Without a
    /// pending error it does nothing.
    pub fn skip_corrupt(&mut self, out: &mut Vec<Record>) -> Result<(), LogError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let Some(s) = self.stopped.take() else {
            return Ok(());
        };
        self.run(s.block_offset, &s.block, s.resume, out)
    }

    /// End of file. An unfinished record (FIRST without LAST, a truncated header or
    /// payload) is an error, and so is an error not yet skipped.
    pub fn finish(self) -> Result<(), LogError> {
        if let Some(e) = self.poisoned {
            return Err(e);
        }
        if let Some(s) = self.stopped {
            return Err(LogError {
                offset: s.block_offset,
                reason: "the file ended while the decoder was stopped at an error".into(),
            });
        }
        if let Some(open) = self.open {
            return Err(LogError {
                offset: open.offset,
                reason: format!(
                    "truncated file: a record of {} bytes so far has no LAST fragment",
                    open.data.len()
                ),
            });
        }
        Ok(())
    }

    fn poison(&mut self, offset: u64, reason: &str) -> LogError {
        let e = LogError {
            offset,
            reason: reason.to_string(),
        };
        self.poisoned = Some(e.clone());
        e
    }

    /// Stops at `err`, keeping the block to resume from `resume` in `skip_corrupt`.
    fn stop(&mut self, err: LogError, block_offset: u64, block: &[u8], resume: Resume) -> LogError {
        self.stopped = Some(Stopped {
            block_offset,
            block: block.to_vec(),
            resume,
        });
        err
    }

    /// Whether a fragment with a valid CRC and a known type starts at `pos`.
    fn valid_fragment_at(block: &[u8], pos: usize) -> bool {
        if block.len() - pos < HEADER_SIZE {
            return false;
        }
        let h = &block[pos..pos + HEADER_SIZE];
        let stored = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let len = u16::from_le_bytes([h[4], h[5]]) as usize;
        let kind = h[6];
        (FULL..=LAST).contains(&kind)
            && pos + HEADER_SIZE + len <= block.len()
            && masked_crc(kind, &block[pos + HEADER_SIZE..pos + HEADER_SIZE + len]) == stored
    }

    /// Decodes `block` from `resume` to its end.
    fn run(
        &mut self,
        block_offset: u64,
        block: &[u8],
        resume: Resume,
        out: &mut Vec<Record>,
    ) -> Result<(), LogError> {
        let full = block.len() == BLOCK_SIZE;
        let mut pos = match resume {
            Resume::At(pos) => pos,
            Resume::TryThenScan { try_at, scan_from } => {
                if block.len() - try_at.min(block.len()) < HEADER_SIZE
                    || Self::valid_fragment_at(block, try_at)
                {
                    try_at
                } else {
                    Self::scan(block, scan_from)
                }
            }
            Resume::Scan(from) => Self::scan(block, from),
        };
        loop {
            let left = block.len() - pos;
            let at = block_offset + pos as u64;
            if left < HEADER_SIZE {
                if !full && left > 0 {
                    let offset = self.open.take().map_or(at, |o| o.offset);
                    self.resync = true;
                    let err = LogError {
                        offset,
                        reason: format!(
                            "truncated file: it ends {left} bytes into the fragment header at byte {at}"
                        ),
                    };
                    return Err(self.stop(err, block_offset, block, Resume::At(block.len())));
                }
                // A full block's trailer is padding.
                return Ok(());
            }
            let h = &block[pos..pos + HEADER_SIZE];
            let stored = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let len = u16::from_le_bytes([h[4], h[5]]) as usize;
            let kind = h[6];
            if kind == 0 && len == 0 {
                // Preallocation padding: the rest of the block is empty.
                if let Some(open) = self.open.take() {
                    self.resync = true;
                    let err = LogError {
                        offset: open.offset,
                        reason: format!("zero padding at byte {at} inside the record"),
                    };
                    return Err(self.stop(err, block_offset, block, Resume::At(block.len())));
                }
                return Ok(());
            }
            if HEADER_SIZE + len > left {
                let offset = self.open.take().map_or(at, |o| o.offset);
                self.resync = true;
                let reason = if full {
                    format!(
                        "the fragment at byte {at} announces {len} bytes, past the block end ({} left)",
                        left - HEADER_SIZE
                    )
                } else {
                    format!(
                        "truncated file: the fragment at byte {at} announces {len} bytes, {} remain",
                        left - HEADER_SIZE
                    )
                };
                let err = LogError { offset, reason };
                return Err(self.stop(err, block_offset, block, Resume::Scan(pos + 1)));
            }
            let payload = &block[pos + HEADER_SIZE..pos + HEADER_SIZE + len];
            let next = pos + HEADER_SIZE + len;
            let computed = masked_crc(kind, payload);
            if computed != stored {
                let offset = self.open.take().map_or(at, |o| o.offset);
                self.resync = true;
                let err = LogError {
                    offset,
                    reason: format!(
                        "CRC mismatch in the fragment at byte {at}: expected {stored:#010x}, found {computed:#010x}"
                    ),
                };
                let resume = Resume::TryThenScan {
                    try_at: next,
                    scan_from: pos + 1,
                };
                return Err(self.stop(err, block_offset, block, resume));
            }
            let end = block_offset + next as u64;
            match kind {
                FULL | FIRST => {
                    if let Some(open) = self.open.take() {
                        // LevelDB drops the unfinished record and keeps the new one:
                        // on skip_corrupt this fragment is decoded again.
                        let err = LogError {
                            offset: open.offset,
                            reason: format!(
                                "the record has no LAST fragment: a new record starts at byte {at}"
                            ),
                        };
                        return Err(self.stop(err, block_offset, block, Resume::At(pos)));
                    }
                    self.resync = false;
                    if kind == FULL {
                        out.push(Record {
                            offset: at,
                            end,
                            data: payload.to_vec(),
                        });
                    } else {
                        self.open = Some(Open {
                            offset: at,
                            data: payload.to_vec(),
                        });
                    }
                }
                MIDDLE | LAST => {
                    if let Some(open) = self.open.as_mut() {
                        open.data.extend_from_slice(payload);
                        if kind == LAST {
                            let open = self.open.take().expect("an open record");
                            out.push(Record {
                                offset: open.offset,
                                end,
                                data: open.data,
                            });
                        }
                    } else if !self.resync {
                        self.resync = true;
                        let name = if kind == MIDDLE { "MIDDLE" } else { "LAST" };
                        let err = LogError {
                            offset: at,
                            reason: format!("{name} fragment without a FIRST"),
                        };
                        return Err(self.stop(err, block_offset, block, Resume::At(next)));
                    }
                    // else: the tail of a damaged record, already reported.
                }
                other => {
                    let offset = self.open.take().map_or(at, |o| o.offset);
                    self.resync = true;
                    let err = LogError {
                        offset,
                        reason: format!("unknown fragment type {other} at byte {at}"),
                    };
                    return Err(self.stop(err, block_offset, block, Resume::At(next)));
                }
            }
            pos = next;
        }
    }

    /// The first position from `from` where a valid fragment starts, or the block's end.
    fn scan(block: &[u8], from: usize) -> usize {
        (from..block.len())
            .find(|&p| Self::valid_fragment_at(block, p))
            .unwrap_or(block.len())
    }
}

/// Writes records in the log format, fragmenting them exactly as LevelDB's
/// `log::Writer::AddRecord` does: a record fills the rest of the current block and
/// goes on in the next ones; a block with fewer than 7 bytes left is padded with
/// zeros; an empty record is one empty FULL fragment. The last block is not padded.
#[derive(Debug)]
pub struct LogWriter<W: std::io::Write> {
    inner: W,
    /// Bytes written so far: the file offset of the next fragment.
    offset: u64,
}

impl<W: std::io::Write> LogWriter<W> {
    /// A writer at the start of a new file.
    pub fn new(inner: W) -> Self {
        Self::at(inner, 0)
    }

    /// A writer appending to a file that already holds `offset` bytes of log.
    pub fn at(inner: W, offset: u64) -> Self {
        LogWriter { inner, offset }
    }

    /// The file offset the next record's bytes go to.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Appends one record; returns where it lies, as the decoder reports it:
    /// `(offset of its first fragment header, end)`.
    pub fn add_record(&mut self, data: &[u8]) -> std::io::Result<(u64, u64)> {
        let mut rest = data;
        let mut begin = true;
        let mut first_offset = None;
        loop {
            let in_block = (self.offset % BLOCK_SIZE as u64) as usize;
            let leftover = BLOCK_SIZE - in_block;
            if leftover < HEADER_SIZE {
                self.inner.write_all(&[0u8; HEADER_SIZE][..leftover])?;
                self.offset += leftover as u64;
                continue;
            }
            let avail = leftover - HEADER_SIZE;
            let n = rest.len().min(avail);
            let end = n == rest.len();
            let kind = match (begin, end) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, true) => LAST,
                (false, false) => MIDDLE,
            };
            let (payload, tail) = rest.split_at(n);
            let mut header = [0u8; HEADER_SIZE];
            header[..4].copy_from_slice(&masked_crc(kind, payload).to_le_bytes());
            header[4..6].copy_from_slice(&(n as u16).to_le_bytes());
            header[6] = kind;
            first_offset.get_or_insert(self.offset);
            self.inner.write_all(&header)?;
            self.inner.write_all(payload)?;
            self.offset += (HEADER_SIZE + n) as u64;
            rest = tail;
            begin = false;
            if end {
                return Ok((first_offset.unwrap_or(self.offset), self.offset));
            }
        }
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Writes `records` as one log file in memory.
pub fn write_log<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut w = LogWriter::new(Vec::new());
    for r in records {
        w.add_record(r).expect("writing to a Vec cannot fail");
    }
    w.into_inner()
}

/// Decodes a whole in-memory log strictly: every record, or the first error.
pub fn read_log(bytes: &[u8]) -> Result<Vec<Record>, LogError> {
    let mut dec = LogDecoder::new(0);
    let mut out = Vec::new();
    for (i, block) in bytes.chunks(BLOCK_SIZE).enumerate() {
        dec.push_block((i * BLOCK_SIZE) as u64, block, &mut out)?;
    }
    dec.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` from `start` block by block; on an error, records it and skips.
    fn decode_skipping(bytes: &[u8], start: u64) -> (Vec<Record>, Vec<LogError>) {
        let mut dec = LogDecoder::new(start);
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let mut off = dec.first_block() as usize;
        while off < bytes.len() {
            let block = &bytes[off..(off + BLOCK_SIZE).min(bytes.len())];
            let mut r = dec.push_block(off as u64, block, &mut out);
            while let Err(e) = r {
                errors.push(e);
                r = dec.skip_corrupt(&mut out);
            }
            off += BLOCK_SIZE;
        }
        if let Err(e) = dec.finish() {
            errors.push(e);
        }
        (out, errors)
    }

    fn record(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
    }

    /// Records of varied sizes: several spanning blocks (FIRST/MIDDLE/LAST), some tiny,
    /// one empty, one ending a few bytes before a block end (padding trailer).
    fn sample() -> Vec<Vec<u8>> {
        let sizes = [
            10,
            0,
            100_000,
            5,
            40_000,
            32_768 - 7 * 6 - 40_000 % 32_768,
            3,
            70_000,
            1,
            2,
        ];
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| record(i, n))
            .collect()
    }

    #[test]
    fn masked_crc_matches_the_emulator_files() {
        // The first fragment of the emulator's overall metadata: FULL, payload "3".
        let file =
            include_bytes!("../../../tests/fixtures/export/exp1/e1/e1.overall_export_metadata");
        let stored = u32::from_le_bytes(file[..4].try_into().unwrap());
        assert_eq!(masked_crc(FULL, b"3"), stored);
    }

    #[test]
    fn decodes_the_emulator_entity_file() {
        let file = include_bytes!(
            "../../../tests/fixtures/export/exp1/e1/all_namespaces/all_kinds/output-0"
        );
        let recs = read_log(file).unwrap();
        assert_eq!(
            recs.iter().map(|r| (r.offset, r.end)).collect::<Vec<_>>(),
            [(0, 70), (70, 148), (148, 518)]
        );
        assert_eq!(&recs[0].data[..4], &[0x6a, 0x22, 0x6a, 0x06]);
        assert_eq!(recs[2].data.len(), 518 - 148 - 7);
    }

    #[test]
    fn a_record_spanning_blocks_is_first_middle_last_as_in_the_emulator_file() {
        let file = include_bytes!(
            "../../../tests/fixtures/export/edge/e/all_namespaces/all_kinds/output-0"
        );
        let recs = read_log(file).unwrap();
        assert_eq!(recs.len(), 4);
        // The second record: FIRST at 79 filling block 0, MIDDLE filling block 1, LAST.
        assert_eq!((recs[1].offset, recs[1].end), (79, 65536 + 7 + 4613));
        assert_eq!(recs[1].data.len(), 32682 + 32761 + 4613);
        // Our writer fragments those records into the very same bytes.
        let rewritten = write_log(recs.iter().map(|r| r.data.as_slice()));
        assert_eq!(rewritten, file.to_vec());
    }

    #[test]
    fn writer_and_decoder_round_trip_across_blocks() {
        let records = sample();
        let bytes = write_log(records.iter().map(|r| r.as_slice()));
        let got = read_log(&bytes).unwrap();
        assert_eq!(
            got.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
            records
        );
        // Offsets chain: each record starts where the previous ended, or at the next
        // block when fewer than 7 bytes were left.
        for w in got.windows(2) {
            let gap = w[1].offset - w[0].end;
            assert!(
                gap == 0 || (gap < 7 && w[1].offset % BLOCK_SIZE as u64 == 0),
                "{w:?}"
            );
        }
        assert_eq!(got.last().unwrap().end, bytes.len() as u64);
    }

    #[test]
    fn writer_pads_a_block_trailer_with_zeros_and_returns_offsets() {
        let mut w = LogWriter::new(Vec::new());
        // Leaves exactly 3 bytes in block 0.
        let (o1, e1) = w.add_record(&vec![9u8; BLOCK_SIZE - 7 - 3]).unwrap();
        assert_eq!((o1, e1), (0, BLOCK_SIZE as u64 - 3));
        let (o2, e2) = w.add_record(b"abc").unwrap();
        assert_eq!((o2, e2), (BLOCK_SIZE as u64, BLOCK_SIZE as u64 + 10));
        let bytes = w.into_inner();
        assert_eq!(&bytes[BLOCK_SIZE - 3..BLOCK_SIZE], &[0, 0, 0]);
        assert_eq!(bytes[BLOCK_SIZE + 6], FULL);
        let got = read_log(&bytes).unwrap();
        assert_eq!(
            got[1],
            Record {
                offset: o2,
                end: e2,
                data: b"abc".to_vec()
            }
        );
    }

    #[test]
    fn resumes_from_a_record_end_in_the_middle_of_a_block() {
        let records = sample();
        let bytes = write_log(records.iter().map(|r| r.as_slice()));
        let all = read_log(&bytes).unwrap();
        for k in 1..all.len() {
            let start = all[k - 1].end;
            let (got, errors) = decode_skipping(&bytes, start);
            assert!(errors.is_empty(), "from {start}: {errors:?}");
            assert_eq!(got, all[k..].to_vec(), "from {start}");
        }
        // One of those resumes starts inside a block, not at its beginning.
        assert!(all
            .iter()
            .any(|r| r.end % BLOCK_SIZE as u64 > 0 && r.end > BLOCK_SIZE as u64));
        // Resuming at the very end yields nothing and no error.
        let (got, errors) = decode_skipping(&bytes, bytes.len() as u64);
        assert!(got.is_empty() && errors.is_empty());
    }

    #[test]
    fn a_truncated_payload_is_an_error_naming_the_record() {
        let records = sample();
        let bytes = write_log(records.iter().map(|r| r.as_slice()));
        let all = read_log(&bytes).unwrap();
        // Cut inside the last record's payload.
        let cut = &bytes[..bytes.len() - 1];
        let err = read_log(cut).unwrap_err();
        assert_eq!(err.offset, all.last().unwrap().offset);
        assert!(err.reason.contains("truncated"), "{err}");
        // Cut inside a header of a record's fragment in the last block.
        let last = all.last().unwrap();
        let err = read_log(&bytes[..last.offset as usize + 3]).unwrap_err();
        assert_eq!(err.offset, last.offset);
        assert!(err.reason.contains("truncated"), "{err}");
    }

    #[test]
    fn a_file_cut_at_a_block_boundary_inside_a_record_fails_at_finish() {
        let bytes = write_log([vec![1u8; 3 * BLOCK_SIZE].as_slice()]);
        let cut = &bytes[..2 * BLOCK_SIZE];
        let err = read_log(cut).unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(err.reason.contains("no LAST fragment"), "{err}");
    }

    #[test]
    fn a_flipped_byte_reports_exactly_the_damaged_record_and_skips_it() {
        let records = sample();
        let bytes = write_log(records.iter().map(|r| r.as_slice()));
        let all = read_log(&bytes).unwrap();
        // Flip a byte in every position class: a payload in the middle of a multi-block
        // record, a small record's payload, its length field, its type, its CRC.
        let big = &all[2]; // 100 000 bytes, FIRST in block 0
        let small = &all[3];
        let targets = [
            (big.offset as usize + 40_000, 2usize),
            (small.offset as usize + 7 + 2, 3),
            (small.offset as usize + 4, 3),
            (small.offset as usize + 6, 3),
            (small.offset as usize, 3),
            (all[0].offset as usize + 9, 0),
        ];
        for (at, damaged) in targets {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let (got, errors) = decode_skipping(&bad, 0);
            assert_eq!(errors.len(), 1, "flip at {at}: {errors:?}");
            assert_eq!(
                errors[0].offset, all[damaged].offset,
                "flip at {at}: {errors:?}"
            );
            let expected: Vec<Record> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != damaged)
                .map(|(_, r)| r.clone())
                .collect();
            assert_eq!(got, expected, "flip at {at}");
            // A strict reader stops at the damage with a reason saying what was wrong.
            let strict = read_log(&bad).unwrap_err();
            assert_eq!(strict, errors[0]);
        }
        let mut bad = bytes.clone();
        bad[all[3].offset as usize + 9] ^= 1;
        let err = read_log(&bad).unwrap_err();
        assert!(
            err.reason.starts_with("CRC mismatch") && err.reason.contains("expected"),
            "{err}"
        );
    }

    #[test]
    fn bad_fragment_sequences_are_reported_and_skipped() {
        // Hand-built fragments: LAST without FIRST, unknown type, FIRST while open.
        let frag = |kind: u8, payload: &[u8]| {
            let mut v = masked_crc(kind, payload).to_le_bytes().to_vec();
            v.extend_from_slice(&(payload.len() as u16).to_le_bytes());
            v.push(kind);
            v.extend_from_slice(payload);
            v
        };
        let mut bytes = Vec::new();
        bytes.extend(frag(FULL, b"a")); // 0..8
        bytes.extend(frag(LAST, b"x")); // 8..16: without FIRST
        bytes.extend(frag(9, b"y")); // 16..24: unknown type
        bytes.extend(frag(FIRST, b"p")); // 24..32: never finished
        bytes.extend(frag(FIRST, b"b")); // 32..40
        bytes.extend(frag(LAST, b"c")); // 40..48
        let (got, errors) = decode_skipping(&bytes, 0);
        let reasons: Vec<(u64, &str)> = errors
            .iter()
            .map(|e| (e.offset, e.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (8, "LAST fragment without a FIRST"),
                (16, "unknown fragment type 9 at byte 16"),
                (
                    24,
                    "the record has no LAST fragment: a new record starts at byte 32"
                ),
            ]
        );
        assert_eq!(
            got,
            [
                Record {
                    offset: 0,
                    end: 8,
                    data: b"a".to_vec()
                },
                Record {
                    offset: 32,
                    end: 48,
                    data: b"bc".to_vec()
                },
            ]
        );
    }

    #[test]
    fn zero_type_padding_ends_the_block_silently() {
        // A preallocating writer's zeros after the last record of a full block.
        let mut bytes = write_log([b"one".as_slice()]);
        bytes.resize(BLOCK_SIZE, 0);
        bytes.extend(write_log([b"two".as_slice()]));
        let got = read_log(&bytes).unwrap();
        assert_eq!(
            got.iter().map(|r| r.data.as_slice()).collect::<Vec<_>>(),
            [b"one", b"two"]
        );
        assert_eq!(got[1].offset, BLOCK_SIZE as u64);
    }

    #[test]
    fn the_caller_must_feed_blocks_in_order() {
        let mut dec = LogDecoder::new(0);
        let mut out = Vec::new();
        let err = dec
            .push_block(BLOCK_SIZE as u64, &[], &mut out)
            .unwrap_err();
        assert!(err.reason.contains("expected the block at 0"), "{err}");
        assert!(dec.finish().is_err());
    }
}
