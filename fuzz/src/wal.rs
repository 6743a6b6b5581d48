//! Raft WAL recovery from arbitrary segment bytes, as a member does when it starts.

use std::fs;

use control_plane::store::wal::Wal;
use protobuf::Message as _;
use raft::eraftpb::Entry;

/// The input is the WAL's bytes. When the first byte is 0x80 or more, the rest is split into two
/// segments at `(first - 0x80) * 16`, so corruption in an older segment is reached too.
///
/// Invariant: never panics; recovery is Ok or an error; a recovered log has consecutive indexes;
/// recovering again yields the same log and hard state (the cut tail stays cut); an entry appended
/// after recovery survives the next recovery.
pub fn wal(input: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let wal_dir = dir.path().join("wal");
    fs::create_dir(&wal_dir).expect("wal dir");
    match input.split_first() {
        Some((&b, rest)) if b >= 0x80 => {
            let at = (usize::from(b - 0x80) * 16).min(rest.len());
            fs::write(wal_dir.join("0000000000000001.wal"), &rest[..at]).expect("write");
            fs::write(wal_dir.join("0000000000000002.wal"), &rest[at..]).expect("write");
        }
        _ => fs::write(wal_dir.join("0000000000000001.wal"), input).expect("write"),
    }
    let (mut wal, first) = match Wal::open(&wal_dir) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    for w in first.entries.windows(2) {
        assert_eq!(w[1].index, w[0].index + 1, "recovered log has a gap");
    }
    let next = first
        .entries
        .last()
        .map_or(1, |e| e.index.saturating_add(1));
    let mut extra = Entry::new();
    extra.index = next;
    extra.term = first.entries.last().map_or(1, |e| e.term);
    extra.data = b"after recovery".to_vec().into();
    wal.append(std::slice::from_ref(&extra), None)
        .expect("append after recovery");
    wal.sync().expect("sync after recovery");
    drop(wal);
    let (_, second) = Wal::open(&wal_dir).expect("a log that recovered once recovers again");
    assert_eq!(
        second.hard_state.as_ref().map(|h| h.write_to_bytes().ok()),
        first.hard_state.as_ref().map(|h| h.write_to_bytes().ok())
    );
    let mut expected = first.entries;
    expected.push(extra);
    if next != u64::MAX {
        assert_eq!(second.entries, expected, "recovery lost or changed entries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::HardState;
    use std::path::Path;

    /// The WAL seed: what `Wal::append` writes for a short log, a hard state and a follower's
    /// conflicting suffix.
    fn written_by_the_wal() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        let entry = |index, term, data: &[u8]| {
            let mut e = Entry::new();
            e.index = index;
            e.term = term;
            e.data = data.to_vec().into();
            e
        };
        let mut hs = HardState::new();
        hs.term = 2;
        hs.vote = 1;
        hs.commit = 2;
        wal.append(&[entry(1, 1, b""), entry(2, 1, b"put a")], Some(&hs))
            .unwrap();
        wal.append(&[entry(3, 1, b"put b"), entry(4, 1, b"put c")], None)
            .unwrap();
        hs.term = 3;
        hs.commit = 3;
        wal.append(&[entry(4, 3, b"put d")], Some(&hs)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let mut seg: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(seg.len(), 1, "one segment");
        fs::read(seg.pop().unwrap()).unwrap()
    }

    /// The corpus's WAL seed is the code's own output, so fuzzing starts from valid records; set
    /// `BERTH_FUZZ_BLESS=1` to rewrite it after a format change.
    #[test]
    fn wal_seed_is_what_the_wal_writes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/__fuzz__/tests__wal/corpus/written.wal");
        let bytes = written_by_the_wal();
        if std::env::var_os("BERTH_FUZZ_BLESS").is_some() {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "{} is stale",
            path.display()
        );
        wal(&bytes);
    }
}
