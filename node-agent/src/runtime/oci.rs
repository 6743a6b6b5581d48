//! Finding and invoking the OCI runtime binary (crun or runc). Shared by the runtime, which creates and kills
//! containers, and the per-container supervisor, which runs them; neither owns the other.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds a command running the OCI runtime `bin`. crun refuses a cgroup "hybrid" host whose v2 mount has
/// controllers (here: hugetlb); it then runs in a private mount namespace without `/sys/fs/cgroup/unified`,
/// where it sees plain cgroup v1. runc copes with hybrid hosts as they are.
pub fn oci_command(bin: &Path) -> Command {
    let is_crun = bin
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("crun"));
    let hybrid_with_controllers = fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false);
    if is_crun && hybrid_with_controllers {
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"",
        ])
        .arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// Finds the OCI runtime: `$BERTH_OCI_RUNTIME`, else crun, else runc.
pub fn find_oci_runtime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_OCI_RUNTIME") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/crun",
        "/usr/local/bin/crun",
        "/usr/bin/runc",
        "/usr/local/sbin/runc",
        "/usr/sbin/runc",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}
