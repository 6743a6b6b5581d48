//! What the in-process API tests share: the single-member Raft store they serve the API over.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use control_plane::store::{Member, RaftStore, Start, StoreConfig};

/// A single-member Raft store called `a` in `dir/raft` advertising `api_addr`, once it leads;
/// `event_window` shrinks the watch replay window (so a 410 needs few writes).
pub async fn raft_store(dir: &Path, api_addr: &str, event_window: Option<usize>) -> Arc<RaftStore> {
    let me = Member {
        id: 1,
        name: "a".into(),
        peer_addr: "127.0.0.1:1".into(),
        api_addr: api_addr.into(),
    };
    let mut cfg = StoreConfig::new(
        dir.join("raft"),
        "a",
        "127.0.0.1:1",
        api_addr,
        Start::InitialCluster(vec![me]),
    );
    cfg.driver.tick = Duration::from_millis(10);
    if let Some(w) = event_window {
        cfg.event_window = w;
    }
    let store = RaftStore::open(cfg).await.unwrap();
    let mut leader = store.leadership();
    tokio::time::timeout(Duration::from_secs(10), leader.wait_for(|l| *l))
        .await
        .expect("leader elected")
        .unwrap();
    store
}
