//! The driver's tunables, and the planted test-only fault that acknowledges writes before they commit.

use std::time::Duration;

/// The environment variable that turns on the planted ack-before-commit bug (see [`ack_before_commit`]).
pub const ACK_BEFORE_COMMIT_ENV: &str = "BERTH_TEST_ACK_BEFORE_COMMIT";

/// TEST-ONLY FAULT. With `BERTH_TEST_ACK_BEFORE_COMMIT=1` in the environment when the process starts,
/// a leader answers a write as soon as the entry is in its own log, *before* a quorum has it. A
/// leader that then loses its leadership loses writes it acknowledged: it exists so the
/// linearizability checker can prove it catches exactly that. Never set it on a real cluster.
/// Read once per process, so flipping the variable later changes nothing.
pub fn ack_before_commit() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        let on = std::env::var(ACK_BEFORE_COMMIT_ENV).is_ok_and(|v| v == "1");
        if on {
            tracing::error!(
                "!!! {ACK_BEFORE_COMMIT_ENV}=1: TEST-ONLY FAULT ON: writes are acknowledged BEFORE \
                 they commit and may be lost; never run a real cluster like this !!!"
            );
        }
        on
    })
}

/// Tunables of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// One Raft tick.
    pub tick: Duration,
    /// Ticks without a heartbeat before an election.
    pub election_ticks: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// Compact the log every this many applied entries.
    pub snapshot_every: u64,
    /// Test-only fault: acknowledge writes before they commit ([`ack_before_commit`]).
    pub ack_before_commit: bool,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            snapshot_every: 10_000,
            ack_before_commit: ack_before_commit(),
        }
    }
}
