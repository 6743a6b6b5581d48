//! Tests of the WAL + sled storage: log bounds, conflicts, compaction, snapshots and restarts.

use super::*;
use raft::Storage;
use serde_json::json;

fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8; 10].into(),
        ..Default::default()
    }
}

fn ctx() -> GetEntriesContext {
    GetEntriesContext::empty(false)
}

/// A storage holding `ents`; the directory lives as long as the storage.
fn storage_with(ents: &[Entry]) -> (tempfile::TempDir, SledStorage) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = SledStorage::open(dir.path()).unwrap();
    s.append(ents, None).unwrap();
    (dir, s)
}

fn put(key: &str, rev: u64, v: Value) -> (String, Option<SharedObject>) {
    (key.to_string(), Some((Arc::new(v), rev)))
}

#[test]
fn empty_storage_starts_at_one() {
    let (_dir, s) = storage_with(&[]);
    assert_eq!(s.first_index().unwrap(), 1);
    assert_eq!(s.last_index().unwrap(), 0);
    assert_eq!(s.term(0).unwrap(), 0);
    assert!(!s.initial_state().unwrap().initialized());
}

#[test]
fn entries_term_and_bounds() {
    let (_dir, s) = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2)]);
    assert_eq!(s.first_index().unwrap(), 1);
    assert_eq!(s.last_index().unwrap(), 3);
    assert_eq!(s.term(3).unwrap(), 2);
    assert_eq!(
        s.term(4),
        Err(raft::Error::Store(StorageError::Unavailable))
    );
    let got = s.entries(1, 4, None, ctx()).unwrap();
    assert_eq!(got, vec![ent(1, 1), ent(2, 1), ent(3, 2)]);
    // max_size keeps at least one entry, then stops before exceeding the limit.
    let one = ent(1, 1).compute_size() as u64;
    assert_eq!(s.entries(1, 4, Some(0), ctx()).unwrap().len(), 1);
    assert_eq!(s.entries(1, 4, Some(one * 2), ctx()).unwrap().len(), 2);
}

#[test]
fn append_truncates_conflicting_suffix() {
    let (_dir, mut s) = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 1), ent(4, 1)]);
    s.append(&[ent(3, 2)], None).unwrap();
    assert_eq!(s.last_index().unwrap(), 3);
    assert_eq!(s.term(3).unwrap(), 2);
    assert_eq!(s.entries(1, 4, None, ctx()).unwrap().len(), 3);
}

#[test]
fn compact_moves_first_index_and_keeps_term() {
    let (_dir, mut s) = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 3)]);
    s.checkpoint(3, Vec::new(), &Members::default()).unwrap();
    s.compact(3).unwrap();
    assert_eq!(s.first_index().unwrap(), 4);
    assert_eq!(s.last_index().unwrap(), 4);
    assert_eq!(s.term(3).unwrap(), 2);
    assert_eq!(s.term(2), Err(raft::Error::Store(StorageError::Compacted)));
    assert_eq!(
        s.entries(3, 5, None, ctx()),
        Err(raft::Error::Store(StorageError::Compacted))
    );
    assert_eq!(s.entries(4, 5, None, ctx()).unwrap(), vec![ent(4, 3)]);
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = SledStorage::open(dir.path()).unwrap();
        s.set_node_id(7).unwrap();
        let hs = HardState {
            term: 1,
            vote: 7,
            commit: 2,
            ..Default::default()
        };
        s.append(&[ent(1, 1), ent(2, 1)], Some(&hs)).unwrap();
        s.checkpoint(
            2,
            vec![put("/core/pods/a/x", 2, json!({"a": 1}))],
            &Members::default(),
        )
        .unwrap();
        s.append(&[ent(3, 1)], None).unwrap();
        s.sync().unwrap();
    }
    let s = SledStorage::open(dir.path()).unwrap();
    assert_eq!(s.node_id().unwrap(), Some(7));
    assert_eq!(s.initial_state().unwrap().hard_state.vote, 7);
    assert_eq!(s.last_index().unwrap(), 3);
    assert_eq!(s.applied(), 2);
    assert_eq!(
        s.objects().unwrap(),
        vec![("/core/pods/a/x".to_string(), json!({"a": 1}), 2)]
    );
}

#[test]
fn snapshot_round_trip_replaces_state() {
    let (_ldir, mut leader) = storage_with(&[ent(1, 1), ent(2, 1), ent(3, 2)]);
    let members = Members::initial(&[super::super::members::Member {
        id: 1,
        name: "a".into(),
        peer_addr: "127.0.0.1:1".into(),
        api_addr: String::new(),
    }]);
    let cs = ConfState {
        voters: vec![1, 2],
        ..Default::default()
    };
    leader.set_conf_state(&cs);
    leader
        .checkpoint(
            3,
            vec![put("/core/pods/a/x", 3, json!({"x": true}))],
            &members,
        )
        .unwrap();
    // Applied later but not checkpointed: the snapshot is of the checkpoint, not of this.
    leader.set_conf_state(&ConfState::default());
    leader.append(&[ent(4, 2)], None).unwrap();
    let snap = leader.snapshot(0, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 3);
    assert_eq!(snap.get_metadata().term, 2);

    let (fdir, mut follower) = storage_with(&[ent(1, 1)]);
    follower
        .checkpoint(
            1,
            vec![put("/core/pods/a/stale", 1, json!({}))],
            &Members::default(),
        )
        .unwrap();
    let data = follower.apply_snapshot(&snap).unwrap();
    assert_eq!(data.applied, 3);
    assert_eq!(data.members, members);
    assert_eq!(
        follower.objects().unwrap(),
        vec![("/core/pods/a/x".to_string(), json!({"x": true}), 3)]
    );
    assert_eq!(follower.first_index().unwrap(), 4);
    assert_eq!(follower.last_index().unwrap(), 3);
    assert_eq!(follower.term(3).unwrap(), 2);
    assert_eq!(
        follower.initial_state().unwrap().conf_state.voters,
        vec![1, 2]
    );
    assert_eq!(follower.applied(), 3);
    assert_eq!(follower.members().unwrap(), members);
    follower.append(&[ent(4, 2)], None).unwrap();
    drop(follower);
    let again = SledStorage::open(fdir.path()).unwrap();
    assert_eq!(again.first_index().unwrap(), 4);
    assert_eq!(again.entries(4, 5, None, ctx()).unwrap(), vec![ent(4, 2)]);
    assert_eq!(again.applied(), 3);
}

#[test]
fn restart_after_compaction_replays_only_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = SledStorage::open(dir.path()).unwrap();
        let ents: Vec<Entry> = (1..=10).map(|i| ent(i, 1)).collect();
        s.append(&ents, None).unwrap();
        s.checkpoint(6, vec![put("/k", 6, json!(6))], &Members::default())
            .unwrap();
        s.compact(5).unwrap();
        s.append(&[ent(11, 2)], None).unwrap();
        s.sync().unwrap();
    }
    let s = SledStorage::open(dir.path()).unwrap();
    assert_eq!(s.first_index().unwrap(), 6);
    assert_eq!(s.last_index().unwrap(), 11);
    assert_eq!(s.term(5).unwrap(), 1);
    assert_eq!(s.term(11).unwrap(), 2);
    assert_eq!(s.applied(), 6);
    assert_eq!(s.hard_state().commit, 6);
    assert_eq!(s.objects().unwrap(), vec![("/k".to_string(), json!(6), 6)]);
}

mod timing {
    use super::*;

    /// Prints the cost of one append + fsync (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn append_flush_latency() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SledStorage::open(dir.path()).unwrap();
        let n = 200u64;
        let t = std::time::Instant::now();
        for i in 1..=n {
            let e = Entry {
                index: i,
                term: 1,
                data: vec![7u8; 300].into(),
                ..Default::default()
            };
            s.append(&[e], None).unwrap();
            s.sync().unwrap();
        }
        eprintln!("append+flush: {:?} each", t.elapsed() / n as u32);
    }
}
