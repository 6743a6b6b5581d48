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

use super::sled_storage::{Error, Result};

/// Segments are rotated past this size, so compaction can delete whole files.
const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 9;
const KIND_ENTRY: u8 = 1;
const KIND_HARD_STATE: u8 = 2;

fn io_err(what: &'static str, source: std::io::Error) -> Error {
    Error::Io { what, source }
}

fn corrupt(what: &'static str, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        what,
        detail: detail.into(),
    }
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
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 40].into(),
            ..Default::default()
        }
    }

    fn hs(term: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote: 1,
            commit,
            ..Default::default()
        }
    }

    #[test]
    fn replays_entries_and_newest_hard_state() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, r) = Wal::open(dir.path()).unwrap();
            assert!(r.entries.is_empty() && r.hard_state.is_none());
            w.append(&[ent(1, 1), ent(2, 1)], Some(&hs(1, 1))).unwrap();
            w.append(&[ent(3, 1)], Some(&hs(1, 3))).unwrap();
            w.sync().unwrap();
        }
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries, vec![ent(1, 1), ent(2, 1), ent(3, 1)]);
        assert_eq!(r.hard_state, Some(hs(1, 3)));
    }

    #[test]
    fn a_conflicting_append_replaces_the_suffix_on_replay() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[ent(1, 1), ent(2, 1), ent(3, 1)], None).unwrap();
            w.append(&[ent(2, 2)], None).unwrap();
        }
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries, vec![ent(1, 1), ent(2, 2)]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_appending_continues() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[ent(1, 1), ent(2, 1)], None).unwrap();
        }
        let path = segment_path(dir.path(), 1);
        let len = fs::metadata(&path).unwrap().len();
        // A crash mid-write: the last record is only partly on disk.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        {
            let (mut w, r) = Wal::open(dir.path()).unwrap();
            assert_eq!(r.entries, vec![ent(1, 1)]);
            w.append(&[ent(2, 3)], None).unwrap();
        }
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries, vec![ent(1, 1), ent(2, 3)]);
    }

    #[test]
    fn a_zeroed_tail_is_torn_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[ent(1, 1), ent(2, 1)], None).unwrap();
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let len = bytes.len();
        // Some file systems show the blocks of an unfinished write as zeros after a crash.
        bytes.extend_from_slice(&[0u8; 4096]);
        fs::write(&path, bytes).unwrap();
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries, vec![ent(1, 1), ent(2, 1)]);
        assert_eq!(fs::metadata(&path).unwrap().len(), len as u64);
    }

    #[test]
    fn a_damaged_record_followed_by_valid_ones_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[ent(1, 1), ent(2, 1), ent(3, 1)], Some(&hs(1, 3)))
                .unwrap();
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let original = bytes.clone();
        let record = HEADER + ent(1, 1).compute_size() as usize;
        // One flipped bit in the payload of entry 2, the middle record of the newest segment.
        bytes[record + HEADER + 3] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let err = Wal::open(dir.path())
            .err()
            .expect("damage in place refuses start-up");
        let msg = err.to_string();
        assert!(msg.contains(&format!("byte {record}")), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        // Nothing was cut: the acknowledged entries after the damage are still on disk.
        assert_eq!(fs::read(&path).unwrap().len(), original.len());
        // A damaged length field (the record now claims to run past the end) is refused too.
        let mut bytes = original.clone();
        bytes[record..record + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        assert!(Wal::open(dir.path()).is_err());
        fs::write(&path, &original).unwrap();
        assert_eq!(recover(dir.path()).unwrap().entries.len(), 3);
    }

    #[test]
    fn a_failed_write_is_cut_so_later_records_replay() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path()).unwrap();
        w.append(&[ent(1, 1)], None).unwrap();
        // What a write cut short by a full disk leaves: part of a record past the last whole one.
        (&*w.file).write_all(&[7u8; 20]).unwrap();
        w.torn = true;
        w.append(&[ent(2, 1)], None).unwrap();
        drop(w);
        let r = recover(dir.path()).unwrap();
        assert_eq!(r.entries, vec![ent(1, 1), ent(2, 1)]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever the bytes, decoding a segment returns an answer or an error, never a panic, and a
        /// prefix it calls valid decodes again to the same log.
        #[test]
        fn decode_segment_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok((r, valid)) = decode_segment(&bytes) {
                let (again, v2) = decode_segment(&bytes[..valid]).unwrap();
                proptest::prop_assert_eq!(v2, valid);
                proptest::prop_assert_eq!(again.entries, r.entries);
            }
        }
    }

    #[test]
    fn damage_before_the_newest_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[ent(1, 1)], None).unwrap();
            w.rotate(&hs(1, 1)).unwrap();
            w.append(&[ent(2, 1)], None).unwrap();
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert!(Wal::open(dir.path()).is_err());
    }

    #[test]
    fn purge_deletes_only_segments_below_the_compaction_point() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _) = Wal::open(dir.path()).unwrap();
        w.append(&[ent(1, 1), ent(2, 1)], None).unwrap();
        w.rotate(&hs(1, 2)).unwrap();
        w.append(&[ent(3, 1), ent(4, 1)], None).unwrap();
        w.rotate(&hs(1, 4)).unwrap();
        w.append(&[ent(5, 1)], None).unwrap();
        assert_eq!(w.purge(1).unwrap(), 0);
        assert_eq!(w.purge(3).unwrap(), 1);
        assert_eq!(w.segment_count(), 2);
        assert_eq!(w.purge(10).unwrap(), 1);
        assert_eq!(w.segment_count(), 1);
        drop(w);
        let (_, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(r.entries, vec![ent(5, 1)]);
        assert_eq!(r.hard_state, Some(hs(1, 4)));
    }

    #[test]
    fn reset_keeps_only_the_hard_state() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            w.append(&[ent(1, 1), ent(2, 1)], Some(&hs(1, 2))).unwrap();
            w.reset(&hs(3, 9)).unwrap();
            w.append(&[ent(10, 3)], None).unwrap();
        }
        let (w, r) = Wal::open(dir.path()).unwrap();
        assert_eq!(w.segment_count(), 1);
        assert_eq!(r.entries, vec![ent(10, 3)]);
        assert_eq!(r.hard_state, Some(hs(3, 9)));
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Append `n` entries of `term` starting `back` entries before the end (0 = right after it).
        Append {
            back: u64,
            n: u64,
            term: u64,
        },
        HardState {
            term: u64,
            commit: u64,
        },
        Rotate,
        /// Purge up to `frac`% of the way from the purge point to the last index.
        Purge {
            frac: u64,
        },
        Reopen,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u64..4, 1u64..6, 1u64..5).prop_map(|(back, n, term)| Step::Append { back, n, term }),
            1 => (1u64..5, 0u64..50).prop_map(|(term, commit)| Step::HardState { term, commit }),
            1 => Just(Step::Rotate),
            1 => (0u64..=100).prop_map(|frac| Step::Purge { frac }),
            1 => Just(Step::Reopen),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever mix of appends (conflicting ones included), hard states, rotations, purges and
        /// reopens: replay gives the newest hard state and, above the purge point, exactly the log
        /// the appends left (raft never rewrites below what it compacted).
        #[test]
        fn replay_matches_the_appends(steps in proptest::collection::vec(step(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let (mut w, _) = Wal::open(dir.path()).unwrap();
            let mut model: Vec<Entry> = Vec::new();
            let mut hs_model: Option<HardState> = None;
            let mut purged = 0u64;
            for s in steps {
                let last = model.last().map_or(0, |e| e.index);
                match s {
                    Step::Append { back, n, term } => {
                        let first = (last + 1).saturating_sub(back).max(purged + 1);
                        let ents: Vec<Entry> = (first..first + n).map(|i| Entry {
                            index: i,
                            term,
                            data: vec![(i % 251) as u8; 8].into(),
                            ..Default::default()
                        }).collect();
                        w.append(&ents, None).unwrap();
                        // The model on its own terms: drop the replaced suffix, then extend.
                        model.retain(|e| e.index < first);
                        model.extend(ents);
                    }
                    Step::HardState { term, commit } => {
                        let h = hs(term, commit);
                        w.append(&[], Some(&h)).unwrap();
                        hs_model = Some(h);
                    }
                    Step::Rotate => {
                        let h = hs_model.clone().unwrap_or_default();
                        w.rotate(&h).unwrap();
                        hs_model = Some(h);
                    }
                    Step::Purge { frac } => {
                        let to = purged + (last.saturating_sub(purged)) * frac / 100;
                        w.purge(to).unwrap();
                        purged = purged.max(to);
                    }
                    Step::Reopen => {
                        drop(w);
                        let (again, r) = Wal::open(dir.path()).unwrap();
                        w = again;
                        let above = |v: &[Entry]| -> Vec<Entry> {
                            v.iter().filter(|e| e.index > purged).cloned().collect()
                        };
                        proptest::prop_assert_eq!(above(&r.entries), above(&model));
                        proptest::prop_assert_eq!(r.hard_state.clone(), hs_model.clone());
                    }
                }
            }
        }
    }
}
