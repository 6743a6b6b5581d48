//! The few raw syscalls the agent needs that `nix` does not wrap safely; the only module allowed `unsafe`.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Sets an extended attribute on `path` without following a final symlink (`lsetxattr(2)`).
///
/// # Errors
/// The OS error of `lsetxattr`.
pub fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let n = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: both strings are NUL-terminated and live across the call; value is a valid slice.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

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
