//! The agent's one "exit with code 70 when a critical thread dies" helper. A node agent that lost a critical
//! thread would keep heartbeating while doing nothing, so the node would look healthy to the control plane.

/// The exit code of an agent whose critical thread died: `EX_SOFTWARE` from sysexits.h, "internal software error".
pub const EXIT_CRITICAL: i32 = 70;

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
        Err(p) => ThreadEnd::Panicked(
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-string payload".into()),
        ),
    }
}

/// Exits the process with [`EXIT_CRITICAL`] unless the thread named `what` was asked to stop. Exiting lets
/// the supervisor (systemd) restart the agent, which adopts its pods, instead of limping on without `what`.
pub fn die(what: &str, end: &ThreadEnd) {
    if *end != ThreadEnd::Stopped {
        tracing::error!(end = ?end, "the {what} thread died; exiting");
        std::process::exit(EXIT_CRITICAL);
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
