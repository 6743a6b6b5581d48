//! The Raft write-ahead log: append-only segment files of checksummed records (log entries and hard
//! states), like etcd's WAL. One `write` per Ready puts the records in the kernel; one `fdatasync`
//! covers every Ready queued meanwhile (group commit, done by the syncer thread).
//!
//! A record is `len: u32 LE | crc32(kind ++ payload): u32 LE | kind: u8 | payload`. Replay reads the
//! segments in order; an entry record at an index already seen replaces that suffix (a follower's
//! conflicting log), exactly as the append did. A torn record at the end of the newest segment (one
//! that nothing valid follows) is a crash during a write that was never acknowledged, so it is cut
//! off, as etcd does; a damaged record with valid ones after it, or damage in an older segment, is
//! corruption and refuses start-up rather than truncate acknowledged entries.

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState};

use super::storage_error::{Error, Result};

/// Segments are rotated past this size, so compaction can delete whole files.
const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 9;
const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;

fn io_err(what: &'static str, source: std::io::Error) -> Error {
    Error::Io { what, source }
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> Error {
    super::storage_error::corrupt(what, detail.into())
}

struct Segment {
    seq: u64,
    path: PathBuf,
    /// Highest entry index written to this segment (0 when it holds none).
    max_index: u64,
}

/// What replay recovered.
#[derive(Debug, Default)]
pub struct Replayed {
    /// The log, in index order, as the last appends left it.
    pub entries: Vec<Entry>,
    /// The newest hard state, if any was written.
    pub hard_state: Option<HardState>,
}

/// The open log: every segment, the newest open for appending.
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    file: Arc<File>,
    size: u64,
    buf: Vec<u8>,
    /// A write failed part-way and its bytes past `size` are not cut yet.
    torn: bool,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.wal"))
}

fn encode(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
}

/// The payload of the record at `pos` if a whole record with a matching checksum starts there.
fn record_at(bytes: &[u8], pos: usize) -> Option<(u8, &[u8])> {
    let header = bytes.get(pos..pos.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4")) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4"));
    let kind = header[8];
    let payload = bytes.get(pos + HEADER..(pos + HEADER).checked_add(len)?)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    (h.finalize() == crc).then_some((kind, payload))
}

/// Whether a whole, checksummed record starts anywhere after `from`. A crash tears only the last
/// write, so nothing valid can follow a torn record; a valid record after a bad one means the bad
/// one was damaged in place, and cutting there would drop acknowledged entries. Only the kinds the
/// log writes are tried, so the scan stays cheap on zeroed or random tails.
fn valid_record_after(bytes: &[u8], from: usize) -> Option<usize> {
    (from + 1..bytes.len().saturating_sub(HEADER - 1)).find(|&pos| {
        matches!(bytes[pos + 8], KIND_ENTRY | KIND_HARD_STATE) && record_at(bytes, pos).is_some()
    })
}

/// Decodes one segment's bytes without touching any file: the fuzzable core of recovery.
///
/// Returns what the segment holds and the length of its valid prefix. A damaged or partial record
/// with nothing valid after it is a torn tail: the prefix before it is returned and the caller may
/// cut the rest (only in the newest segment, where a crash can tear a write).
///
/// # Errors
/// `Corrupt` naming the byte offset when a record is damaged and a valid record follows it (damage
/// in place, not a torn write), when a checksummed record does not decode, or when entries leave a gap.
pub fn decode_segment(bytes: &[u8]) -> Result<(Replayed, usize)> {
    let mut out = Replayed::default();
    let mut max_index = 0;
    let valid = replay_segment(bytes, &mut out, &mut max_index)?;
    Ok((out, valid))
}

/// Replays the log in `dir` as start-up does (cutting a torn tail of the newest segment) and
/// returns what it recovered; the entry point for tools and fuzzing of WAL recovery.
///
/// # Errors
/// As [`Wal::open`]: I/O failure, or corruption anywhere but a torn tail.
pub fn recover(dir: &Path) -> Result<Replayed> {
    Wal::open(dir).map(|(_, replayed)| replayed)
}

/// Decodes the records of one segment into `out`; returns the length of the valid prefix.
fn replay_segment(bytes: &[u8], out: &mut Replayed, max_index: &mut u64) -> Result<usize> {
    let mut pos = 0;
    while pos < bytes.len() {
        let Some((kind, payload)) = record_at(bytes, pos) else {
            if let Some(next) = valid_record_after(bytes, pos) {
                return Err(corrupt(
                    "wal",
                    format!(
                        "damaged record at byte {pos} is followed by a valid record at byte {next}"
                    ),
                ));
            }
            break;
        };
        let len = payload.len();
        match kind {
            KIND_ENTRY => {
                let e = Entry::parse_from_bytes(payload)
                    .map_err(|e| corrupt("wal entry", e.to_string()))?;
                push_entry(&mut out.entries, e)?;
                *max_index = (*max_index).max(out.entries.last().map_or(0, |e| e.index));
            }
            KIND_HARD_STATE => {
                out.hard_state = Some(
                    HardState::parse_from_bytes(payload)
                        .map_err(|e| corrupt("wal hard state", e.to_string()))?,
                );
            }
            k => return Err(corrupt("wal", format!("unknown record kind {k}"))),
        }
        pos += HEADER + len;
    }
    Ok(pos)
}

/// Appends `e` to an in-memory log, replacing any suffix from its index on.
///
/// # Errors
/// When `e` would leave a gap.
pub fn push_entry(log: &mut Vec<Entry>, e: Entry) -> Result<()> {
    if let Some(first) = log.first().map(|f| f.index) {
        let last = log.last().expect("non-empty").index;
        if e.index <= last {
            log.truncate(e.index.saturating_sub(first) as usize);
        } else if e.index > last.saturating_add(1) {
            return Err(corrupt(
                "wal",
                format!("gap: entry {} after {last}", e.index),
            ));
        }
    }
    log.push(e);
    Ok(())
}

impl Wal {
    /// Opens (or creates) the log in `dir` and replays it.
    ///
    /// # Errors
    /// On I/O failure or a corrupt record before the end of the newest segment.
    pub fn open(dir: &Path) -> Result<(Wal, Replayed)> {
        fs::create_dir_all(dir).map_err(|e| io_err("wal dir", e))?;
        // The directory's own name must be durable too, or a crash after the first fsync could lose it.
        if let Some(parent) = dir.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("wal dir", e))?;
        }
        let mut seqs: Vec<u64> = fs::read_dir(dir)
            .map_err(|e| io_err("wal dir", e))?
            .filter_map(|d| {
                let name = d.ok()?.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".wal")?, 16).ok()
            })
            .collect();
        seqs.sort_unstable();
        let mut replayed = Replayed::default();
        let mut segments = Vec::new();
        for (i, &seq) in seqs.iter().enumerate() {
            let path = segment_path(dir, seq);
            let mut bytes = Vec::new();
            File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| io_err("wal segment", e))?;
            let mut max_index = 0;
            let valid =
                replay_segment(&bytes, &mut replayed, &mut max_index).map_err(|e| match e {
                    Error::Corrupt { what, detail } => Error::Corrupt {
                        what,
                        detail: format!("{}: {detail}", path.display()),
                    },
                    e => e,
                })?;
            if valid < bytes.len() {
                if i + 1 < seqs.len() {
                    return Err(corrupt(
                        "wal",
                        format!("{} is damaged at byte {valid}", path.display()),
                    ));
                }
                tracing::warn!(segment = %path.display(), at = valid, "cutting a torn WAL tail");
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| io_err("wal segment", e))?;
                f.set_len(valid as u64)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io_err("wal segment", e))?;
            }
            segments.push(Segment {
                seq,
                path,
                max_index,
            });
        }
        let mut wal = match segments.last() {
            Some(last) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&last.path)
                    .map_err(|e| io_err("wal segment", e))?;
                let size = file.metadata().map_err(|e| io_err("wal segment", e))?.len();
                Wal {
                    dir: dir.to_path_buf(),
                    segments,
                    file: Arc::new(file),
                    size,
                    buf: Vec::new(),
                    torn: false,
                }
            }
            None => {
                let (file, seg) = Self::create_segment(dir, 1)?;
                Wal {
                    dir: dir.to_path_buf(),
                    segments: vec![seg],
                    file: Arc::new(file),
                    size: 0,
                    buf: Vec::new(),
                    torn: false,
                }
            }
        };
        wal.buf.reserve(64 << 10);
        Ok((wal, replayed))
    }

    fn create_segment(dir: &Path, seq: u64) -> Result<(File, Segment)> {
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err("wal segment", e))?;
        // The new name must survive a crash too, or replay would miss the segment.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("wal dir", e))?;
        Ok((
            file,
            Segment {
                seq,
                path,
                max_index: 0,
            },
        ))
    }

    /// Writes entries (and the hard state, if given) with one `write`. Durable after [`sync`](Self::sync).
    ///
    /// # Errors
    /// On I/O failure.
    pub fn append(&mut self, entries: &[Entry], hs: Option<&HardState>) -> Result<()> {
        self.buf.clear();
        let mut scratch = Vec::new();
        for e in entries {
            scratch.clear();
            e.write_to_vec(&mut scratch).expect("entry encodes");
            encode(&mut self.buf, KIND_ENTRY, &scratch);
        }
        if let Some(hs) = hs {
            encode(
                &mut self.buf,
                KIND_HARD_STATE,
                &hs.write_to_bytes().expect("hard state encodes"),
            );
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.torn {
            self.cut_torn_write()?;
        }
        if let Err(e) = (&*self.file).write_all(&self.buf) {
            // A failed write (disk full) may leave part of a record behind. Records appended after
            // it would make replay refuse the log as damaged in place, so cut it before going on.
            self.torn = true;
            let _ = self.cut_torn_write();
            return Err(io_err("wal write", e));
        }
        self.size += self.buf.len() as u64;
        if let Some(last) = entries.last() {
            let seg = self.segments.last_mut().expect("one segment");
            // A conflicting append lowers the last index but never what older records hold.
            seg.max_index = seg.max_index.max(last.index);
        }
        Ok(())
    }

    /// Truncates the newest segment back to its last whole record after a failed write.
    fn cut_torn_write(&mut self) -> Result<()> {
        self.file
            .set_len(self.size)
            .map_err(|e| io_err("wal truncate", e))?;
        self.torn = false;
        Ok(())
    }

    /// Starts a new segment once the current one is full; it opens with the hard state so deleting
    /// older segments never loses it. The full segment is synced first: the syncer only syncs the newest.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn maybe_rotate(&mut self, hs: &HardState) -> Result<()> {
        if self.size < SEGMENT_BYTES {
            return Ok(());
        }
        self.rotate(hs)
    }

    fn rotate(&mut self, hs: &HardState) -> Result<()> {
        self.sync()?;
        let seq = self.segments.last().map_or(0, |s| s.seq) + 1;
        let (file, seg) = Self::create_segment(&self.dir, seq)?;
        self.file = Arc::new(file);
        self.size = 0;
        self.torn = false;
        self.segments.push(seg);
        self.append(&[], Some(hs))?;
        self.sync()
    }

    /// The file the syncer must `fdatasync` to make every write so far durable.
    pub fn sync_handle(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| io_err("wal fsync", e))
    }

    /// Deletes the segments that hold only entries at or below `index` (a compaction point). The
    /// newest segment is kept whatever it holds.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn purge(&mut self, index: u64) -> Result<usize> {
        let keep_from = self
            .segments
            .iter()
            .position(|s| s.max_index > index)
            .unwrap_or(self.segments.len() - 1)
            .min(self.segments.len() - 1);
        let gone: Vec<Segment> = self.segments.drain(..keep_from).collect();
        for s in &gone {
            fs::remove_file(&s.path).map_err(|e| io_err("wal purge", e))?;
        }
        Ok(gone.len())
    }

    /// Drops the whole log (an installed snapshot replaces it): a fresh segment holding `hs`, synced,
    /// then every older segment deleted.
    ///
    /// # Errors
    /// On I/O failure.
    pub fn reset(&mut self, hs: &HardState) -> Result<()> {
        self.rotate(hs)?;
        let keep = self.segments.len() - 1;
        for s in self.segments.drain(..keep) {
            fs::remove_file(&s.path).map_err(|e| io_err("wal reset", e))?;
        }
        Ok(())
    }

    /// Number of segment files.
    #[cfg(test)]
    fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests;
