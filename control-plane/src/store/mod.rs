//! The replicated object store: Kubernetes objects as JSON under `/{group}/{resource}/{namespace}/{name}` keys,
//! written in atomic batches through Raft, read linearizably, and watched from a revision.
//!
//! `resourceVersion` is the Raft index of the entry that wrote an object, so it is monotonic across the cluster.
//!
//! Layout (each module uses only the ones listed before it):
//! - `object_store`: the [`ObjectStore`] contract and its values; `state_machine`: applying batches,
//!   and the watch window; `members`: the cluster membership; `mem`: the single-process [`MemStore`].
//! - `storage_error`, `snapshot` (snapshot and object-record bytes), `wal`, `log_cache` (the log in
//!   memory), `log_store` (the storage trait the driver needs), `sled_storage` (its WAL + sled
//!   implementation).
//! - `driver`: the Raft driver, generic over its storage, network and clock.
//! - `transport` (gRPC client side, the driver's network), `raft_store` ([`RaftStore`], the
//!   production store), `peer_service` (gRPC server side), `loopback` (in-process clusters).
//! - Tests only: `mem_log` (in-memory storage), `harness` (members on an in-process network) and `sim`
//!   (the seeded simulation over it).

mod driver;
#[cfg(test)]
mod harness;
mod log_cache;
mod log_store;
pub mod loopback;
mod mem;
#[cfg(test)]
mod mem_log;
mod members;
mod object_store;
mod peer_service;
mod raft_store;
#[cfg(test)]
mod sim;
pub mod sled_storage;
mod snapshot;
mod state_machine;
mod storage_error;
pub mod transport;
pub mod wal;

pub use driver::{ack_before_commit, DriverConfig, Leadership, Status, ACK_BEFORE_COMMIT_ENV};
pub use mem::MemStore;
pub use members::{Member, Members};
pub use object_store::{
    key, prefix, Batch, BoxFuture, Committed, Consistency, Error, Event, EventType, Health,
    Membership, Object, ObjectStore, Op, Precondition, Result, WatchStream,
};
pub use peer_service::{MembersOnly, PeerServer, PeerService};
pub use raft_store::{RaftStore, Start, StoreConfig};
pub use state_machine::{EventWindow, StateMachine};
