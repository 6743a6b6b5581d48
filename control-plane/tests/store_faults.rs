//! The store under disk faults: a member whose data dir is a small tmpfs runs out of space, stops
//! acknowledging writes and says why, then recovers when space returns, losing nothing it
//! acknowledged. Needs root (to mount the tmpfs); skipped otherwise.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use control_plane::store::{
    Batch, Consistency, Member, ObjectStore, Op, Precondition, RaftStore, Start, StoreConfig,
};
use serde_json::json;

/// A tmpfs mounted for the test; unmounted on drop, even when the test fails.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: could not mount a tmpfs (no mount privilege in this sandbox)");
            return None;
        }
        Some(Tmpfs { path, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    // The last partial chunk may have used the remaining bytes; what is left is under one chunk.
    let _ = f.write_all(&[0u8; 4096]);
    let _ = f.sync_all();
}

fn put(i: usize, size: usize) -> Batch {
    Batch::one(Op::Put {
        key: format!("/core/configmaps/default/c{i}"),
        value: json!({"metadata": {"name": format!("c{i}")}, "data": {"pad": "x".repeat(size)}}),
        precondition: Precondition::None,
    })
}

async fn open(dir: &Path, snapshot_every: u64) -> Arc<RaftStore> {
    let me = Member {
        id: 1,
        name: "a".into(),
        peer_addr: "127.0.0.1:1".into(),
        api_addr: String::new(),
    };
    let mut cfg = StoreConfig::new(dir, "a", "127.0.0.1:1", "", Start::InitialCluster(vec![me]));
    cfg.driver.tick = Duration::from_millis(10);
    cfg.commit_timeout = Duration::from_secs(2);
    cfg.driver.snapshot_every = snapshot_every;
    let s = RaftStore::open(cfg).await.expect("store opens");
    let mut rx = s.leadership();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| *l))
        .await
        .expect("leader elected")
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_acks_says_why_and_recovers_without_losing_acked_writes() {
    full_disk_case(10_000).await;
}

/// The same with a checkpoint (sled writes and log compaction) every few entries, so the disk also
/// fills under the checkpointer: a failed checkpoint is retried and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_checkpoints_loses_no_acked_write() {
    full_disk_case(3).await;
}

async fn full_disk_case(snapshot_every: u64) {
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let data = fs.path.join("data");
    let filler = fs.path.join("filler");
    let store = open(&data, snapshot_every).await;
    let mut acked = Vec::new();
    for i in 0..5 {
        let c = store.commit(put(i, 100)).await.expect("commit with space");
        acked.push((i, c.revision));
    }

    fill(&filler);
    // The WAL's last page may still take a few small records: write until the disk says no.
    let mut refused = None;
    for i in 5..200 {
        match store.commit(put(i, 16 << 10)).await {
            Ok(c) => acked.push((i, c.revision)),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (refused_at, err) = refused.expect("a full disk refuses writes");
    let why = store
        .storage_error()
        .expect("the store says why it stopped");
    assert!(why.contains("append failed"), "{why}");
    assert!(why.to_lowercase().contains("no space"), "{why}");
    // Still full: every write is refused, none acknowledged.
    let again = store.commit(put(1000, 10)).await.unwrap_err();
    eprintln!("refused with {err}; then {again}");

    std::fs::remove_file(&filler).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let recovered = loop {
        match store.commit(put(2000, 10)).await {
            Ok(c) => break c,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no recovery after space returned: {e}"),
        }
    };
    assert!(store.storage_error().is_none());
    acked.push((2000, recovered.revision));
    store.shutdown().await;
    drop(store);

    // Every acknowledged write survives a restart, at the revision it was acknowledged with.
    let store = open(&data, snapshot_every).await;
    for (i, rev) in &acked {
        let key = format!("/core/configmaps/default/c{i}");
        let got = store
            .get(&key, Consistency::Linearizable)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged write {key} lost"));
        assert_eq!(got.revision, *rev, "{key}");
    }
    assert!(refused_at > 5 || acked.len() > 5);
    store.shutdown().await;
}
