//! The driver's seams to the outside: where its Raft messages go ([`Network`]) and what time it is
//! ([`Clock`]). The gRPC transport and the monotonic clock are the production implementations; the
//! deterministic harness and the unit tests pass in-memory ones.

use std::time::Instant;

use raft::eraftpb::Message;

use super::super::members::Members;

/// Where the driver's outbound Raft messages go: the gRPC transport in a member, an in-process
/// network in the deterministic harness. Sending *MUST NOT* block: a slow peer may not stall the driver.
pub(crate) trait Network: Send + Sync + 'static {
    /// Queues messages to their peers; undeliverable ones are dropped (Raft resends).
    fn send(&self, msgs: Vec<Message>);
    /// Makes the address book match the applied configuration.
    fn set_peers(&self, members: &Members);
}

/// The driver's source of time: it times ticks and retries by it and never reads the system clock
/// itself, so a test can run it on a clock it moves by hand.
pub(crate) trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The monotonic clock of the process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MonotonicClock;

impl Clock for MonotonicClock {
    #[allow(clippy::disallowed_methods)] // The one place the driver reads real time.
    fn now(&self) -> Instant {
        Instant::now()
    }
}
