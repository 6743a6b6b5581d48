//! Cluster membership as the store replicates it: Raft ids with names and addresses, carried in
//! conf-change contexts and snapshots so every member (and a new one) knows where its peers are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One member of the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Raft id (never reused).
    pub id: u64,
    /// Human name (`--name`).
    pub name: String,
    /// Address peers dial for Raft traffic (`host:6444`).
    pub peer_addr: String,
    /// Address of the Kubernetes API (`host:6443`), for redirecting clients.
    pub api_addr: String,
}

impl From<&Member> for proto::raftpb::Member {
    fn from(m: &Member) -> Self {
        proto::raftpb::Member {
            id: m.id,
            name: m.name.clone(),
            peer_addr: m.peer_addr.clone(),
            api_addr: m.api_addr.clone(),
        }
    }
}

impl From<proto::raftpb::Member> for Member {
    fn from(m: proto::raftpb::Member) -> Self {
        Member {
            id: m.id,
            name: m.name,
            peer_addr: m.peer_addr,
            api_addr: m.api_addr,
        }
    }
}

/// Current members by id, plus the highest id ever handed out so removed ids are never reused
/// (raft-rs must not see a wiped member come back under its old id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// Members in the configuration.
    pub by_id: BTreeMap<u64, Member>,
    /// Highest id ever assigned.
    pub max_id: u64,
}

impl Members {
    /// Members of a fresh cluster; ids are positions (1-based) in `--initial-cluster`.
    pub fn initial(cluster: &[Member]) -> Self {
        let mut m = Members::default();
        for member in cluster {
            m.insert(member.clone());
        }
        m
    }

    /// Adds or replaces a member.
    pub fn insert(&mut self, member: Member) {
        self.max_id = self.max_id.max(member.id);
        self.by_id.insert(member.id, member);
    }

    /// Removes a member; its id stays used.
    pub fn remove(&mut self, id: u64) -> Option<Member> {
        self.by_id.remove(&id)
    }

    /// The member called `name`, if any.
    pub fn by_name(&self, name: &str) -> Option<&Member> {
        self.by_id.values().find(|m| m.name == name)
    }

    /// One member by id.
    pub fn get(&self, id: u64) -> Option<&Member> {
        self.by_id.get(&id)
    }

    /// The next unused id.
    pub fn next_id(&self) -> u64 {
        self.max_id + 1
    }

    /// Every member in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.by_id.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64, name: &str) -> Member {
        Member {
            id,
            name: name.into(),
            peer_addr: format!("127.0.0.1:{id}"),
            api_addr: String::new(),
        }
    }

    #[test]
    fn removed_ids_are_not_reused() {
        let mut ms = Members::initial(&[m(1, "a"), m(2, "b"), m(3, "c")]);
        ms.remove(3);
        assert_eq!(ms.next_id(), 4);
        assert_eq!(ms.by_name("b").unwrap().id, 2);
        assert!(ms.by_name("c").is_none());
    }
}
