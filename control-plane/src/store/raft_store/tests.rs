//! Tests of a single-member Raft store: commit, read, watch, restart, compaction, and a dead driver.

use super::*;
use crate::store::{Op, Precondition};
use futures::StreamExt;
use serde_json::json;

fn put(key: &str, p: Precondition) -> Batch {
    Batch::one(Op::Put {
        key: key.into(),
        value: json!({"metadata": {"name": key}}),
        precondition: p,
    })
}

async fn single(dir: &std::path::Path) -> Arc<RaftStore> {
    let me = Member {
        id: 1,
        name: "a".into(),
        peer_addr: "127.0.0.1:1".into(),
        api_addr: String::new(),
    };
    let mut cfg = StoreConfig::new(dir, "a", "127.0.0.1:1", "", Start::InitialCluster(vec![me]));
    cfg.driver.tick = Duration::from_millis(10);
    RaftStore::open(cfg).await.unwrap()
}

async fn wait_leader(s: &RaftStore) {
    let mut rx = s.leadership();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|l| *l))
        .await
        .expect("leader elected")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_commits_reads_watches_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = single(dir.path()).await;
    wait_leader(&s).await;
    let c1 = s
        .commit(put("/core/pods/a/x", Precondition::Absent))
        .await
        .unwrap();
    let again = s
        .commit(put("/core/pods/a/x", Precondition::Absent))
        .await
        .unwrap_err();
    assert!(
        matches!(again, Error::PreconditionFailed { index: 0, .. }),
        "{again:?}"
    );
    let mut w = s.watch("/core/pods/", 0).await.unwrap();
    let c2 = s
        .commit(put("/core/pods/a/y", Precondition::None))
        .await
        .unwrap();
    assert!(c2.revision > c1.revision);
    assert_eq!(w.next().await.unwrap().unwrap().revision, c1.revision);
    assert_eq!(w.next().await.unwrap().unwrap().revision, c2.revision);
    let got = s
        .get("/core/pods/a/x", Consistency::Linearizable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.revision, c1.revision);
    assert_eq!(
        got.value["metadata"]["resourceVersion"],
        c1.revision.to_string()
    );
    let (list, rev) = s.list("/core/pods/", Consistency::Local).await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(rev >= c2.revision);
    s.shutdown().await;
    drop(s);

    let s = single(dir.path()).await;
    wait_leader(&s).await;
    let (list, _) = s
        .list("/core/pods/", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(
        list.iter()
            .map(|o| (o.key.as_str(), o.revision))
            .collect::<Vec<_>>(),
        vec![
            ("/core/pods/a/x", c1.revision),
            ("/core/pods/a/y", c2.revision)
        ]
    );
    let c3 = s
        .commit(put("/core/pods/a/x", Precondition::Revision(c1.revision)))
        .await
        .unwrap();
    assert!(c3.revision > c2.revision);
    s.shutdown().await;
}

/// Set in the child process of `a_dead_driver_takes_the_process_down`.
const CHILD: &str = "BERTH_TEST_DRIVER_PANIC_CHILD";

/// A driver that dies (here: the fsync failure path, which is crash-only) must not leave a
/// process that still answers on its ports: the process exits with status 70. Run in a child
/// process, since the exit is the point.
#[test]
fn a_dead_driver_takes_the_process_down() {
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let s = single(dir.path()).await;
            wait_leader(&s).await;
            s.send_to_driver(Msg::SyncFailed("injected EIO".into()))
                .unwrap();
            tokio::time::sleep(Duration::from_secs(20)).await;
        });
        // Still alive: the parent sees status 0 and fails.
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::raft_store::tests::a_dead_driver_takes_the_process_down",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{stderr}");
    assert!(stderr.contains("raft driver died"), "{stderr}");
    assert!(stderr.contains("injected EIO"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_state_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let me = Member {
        id: 1,
        name: "a".into(),
        peer_addr: "127.0.0.1:1".into(),
        api_addr: String::new(),
    };
    let open = || {
        let mut cfg = StoreConfig::new(
            dir.path(),
            "a",
            "127.0.0.1:1",
            "",
            Start::InitialCluster(vec![me.clone()]),
        );
        cfg.driver.tick = Duration::from_millis(10);
        cfg.driver.snapshot_every = 5;
        RaftStore::open(cfg)
    };
    let s = open().await.unwrap();
    wait_leader(&s).await;
    for i in 0..23 {
        s.commit(put(&format!("/core/cm/a/{i}"), Precondition::Absent))
            .await
            .unwrap();
    }
    // Compaction follows the snapshot on the driver's own schedule: on a loaded machine it may
    // land a little after the last commit returns.
    let mut st = s.status().await.unwrap();
    for _ in 0..100 {
        if st.first_index > 15 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        st = s.status().await.unwrap();
    }
    assert!(st.first_index > 15, "log was compacted: {st:?}");
    s.shutdown().await;
    drop(s);
    let s = open().await.unwrap();
    wait_leader(&s).await;
    let (list, _) = s
        .list("/core/cm/", Consistency::Linearizable)
        .await
        .unwrap();
    assert_eq!(list.len(), 23);
    s.shutdown().await;
}
