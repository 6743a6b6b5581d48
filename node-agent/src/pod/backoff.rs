//! Restart back-off of crashing containers, as the kubelet's: immediate first restart, then 10 s doubling
//! up to 5 min; a run of 10 min resets it.

use std::time::Duration;

/// Maximum back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A run this long forgets earlier crashes.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Delay before restart number `restart_count + 1`.
pub fn restart_delay(restart_count: u32) -> Duration {
    if restart_count == 0 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1u64 << (restart_count - 1).min(16));
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn doubling_from_ten_seconds() {
        let got: Vec<u64> = (0..8).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(got, vec![0, 10, 20, 40, 80, 160, 300, 300]);
    }

    proptest! {
        #[test]
        fn bounded_and_monotonic(n in 0u32..10_000) {
            prop_assert!(restart_delay(n) <= MAX_BACKOFF);
            prop_assert!(restart_delay(n) <= restart_delay(n + 1));
        }
    }
}
