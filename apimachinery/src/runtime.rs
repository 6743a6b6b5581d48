//! Crash-only handling of a dead critical thread or task, shared by the server and the agent (as
//! `k8s.io/apimachinery/pkg/util/runtime` is): a process that lost its Raft driver, a controller
//! task or its pod manager cannot heal itself, so it exits and its supervisor restarts it.

use std::any::Any;

/// Exit code of a process whose critical thread or task died (`EX_SOFTWARE` from sysexits.h).
pub const EXIT_SOFTWARE: i32 = 70;

/// The message of a panic payload (`panic!("..")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".into()
    }
}

/// Logs that `what` died and why, and exits with [`EXIT_SOFTWARE`].
pub fn exit_after_death(what: &str, why: &str) -> ! {
    tracing::error!(
        what,
        why,
        "critical thread or task died; exiting so a supervisor restarts this process"
    );
    eprintln!("{what} died: {why}; exiting");
    std::process::exit(EXIT_SOFTWARE)
}

/// Runs `body` (a critical thread's loop); a panic in it ends the process through
/// [`exit_after_death`] instead of leaving the process running without the thread.
pub fn exit_on_panic(what: &str, body: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        exit_after_death(what, &panic_message(panic.as_ref()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages() {
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "plain");
        let n = 3;
        let p = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "formatted 3");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "panic with a non-string payload");
    }
}
