//! The Raft driver: one owner of `RawNode` fed by an inbox of [`Msg`], batching every pending proposal
//! and message into one `Ready` (one append, one fsync), applying committed entries to the state
//! machine and completing the callers waiting on them.
//!
//! Layout: `node` (the decisions, sans-IO behind the seams in `io` and the storage trait
//! `LogStore`), `apply` (committed entries and snapshots), `compact`
//! (checkpoints and log compaction), `run` (the threads a member runs it on), `codec` (entry contexts
//! and input checks), `shared` (what readers see), `msg`, `config` and `logging`.

mod apply;
mod codec;
mod compact;
mod config;
mod io;
mod logging;
mod msg;
mod node;
mod run;
mod shared;
#[cfg(test)]
mod tests;

pub use config::{ack_before_commit, DriverConfig, ACK_BEFORE_COMMIT_ENV};
pub use msg::Status;
pub use shared::Leadership;

#[cfg(test)]
pub(crate) use codec::check_message;
#[cfg(test)]
pub(crate) use io::Clock;
pub(crate) use io::{MonotonicClock, Network};
pub(crate) use msg::Msg;
pub(crate) use node::Driver;
pub(crate) use run::supervise;
pub(crate) use shared::{new_shared, DriverThread, Shared};
