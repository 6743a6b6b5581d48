//! The few raw syscalls the agent needs that `nix` does not wrap safely; the only module allowed `unsafe`.
#![allow(unsafe_code)]

use std::io;

/// Starts a new session for the calling process; used between `fork` and `exec` of supervisors so
/// that they leave the agent's process group and survive it.
///
/// # Errors
/// The OS error of `setsid`.
pub fn setsid_pre_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
