//! Tests of the WAL: replay, torn tails, corruption, rotation and purge.

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
