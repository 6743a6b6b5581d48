//! How the agent's critical thread (the pod manager) ends, on top of the crash-only exit shared with the
//! server ([`apimachinery::runtime`]). The agent adds one case the shared helper has no need for: a loop that
//! *returns* while it should still run, which is as fatal as a panic, since the node would keep heartbeating
//! while no pod is started, stopped or reported.

use apimachinery::runtime::{exit_after_death, panic_message};

/// How a critical thread ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadEnd {
    /// It returned after it was asked to stop.
    Stopped,
    /// It returned while it should still run.
    Returned,
    /// It panicked, with this message.
    Panicked(String),
}

/// Runs `body` (a critical thread's loop) and says how it ended; `stopping` tells whether it was asked
/// to stop. The caller exits the process on anything but [`ThreadEnd::Stopped`] (see [`die`]).
pub fn supervise(stopping: impl Fn() -> bool, body: impl FnOnce()) -> ThreadEnd {
    // The thread's state is dropped with it; nothing half-updated is used afterwards.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(()) if stopping() => ThreadEnd::Stopped,
        Ok(()) => ThreadEnd::Returned,
        Err(p) => ThreadEnd::Panicked(panic_message(p.as_ref())),
    }
}

/// Exits the process with [`apimachinery::runtime::EXIT_SOFTWARE`] (70) unless the thread named `what` was
/// asked to stop, so the supervisor (systemd) restarts the agent, which adopts its pods.
pub fn die(what: &str, end: &ThreadEnd) {
    match end {
        ThreadEnd::Stopped => {}
        ThreadEnd::Returned => exit_after_death(what, "returned while it should still run"),
        ThreadEnd::Panicked(why) => exit_after_death(what, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_dies_is_reported_to_its_supervisor() {
        let end = std::thread::spawn(|| supervise(|| false, || panic!("bad pod {}", 7)))
            .join()
            .unwrap();
        assert_eq!(end, ThreadEnd::Panicked("bad pod 7".into()));
        assert_eq!(supervise(|| false, || {}), ThreadEnd::Returned);
        assert_eq!(supervise(|| true, || {}), ThreadEnd::Stopped);
    }
}
