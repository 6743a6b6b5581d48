//! Named network namespaces for pod sandboxes (`/run/netns/NAME`, as `ip netns` manages them) and a helper that runs
//! code inside a namespace on a dedicated thread.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Error, Result};

const NETNS_DIR: &str = "/run/netns";

/// Name of the sandbox netns of a pod: `berth-` plus the first 12 alphanumerics of its UID (fits link and file
/// name limits, unique in practice since UIDs are random v4).
pub fn netns_name(pod_uid: &str) -> String {
    let short: String = pod_uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    format!("berth-{short}")
}

/// Path of a named netns.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Creates the named netns `/run/netns/{name}` and returns its path. Idempotent: an existing netns is reused
/// (the agent may have restarted while the pod kept running).
///
/// # Errors
/// `ip netns add` failed.
pub fn create_netns(name: &str) -> Result<PathBuf> {
    let path = netns_path(name);
    if path.exists() {
        return Ok(path);
    }
    run(Command::new("ip").args(["netns", "add", name]))?;
    Ok(path)
}

/// Deletes the named netns (accepts a bare name or a `/run/netns/...` path). Deleting an absent netns is `Ok`.
/// Links inside it (the pod's veth end) are destroyed by the kernel with it.
///
/// # Errors
/// `ip netns del` failed for another reason than absence.
pub fn delete_netns(name_or_path: &str) -> Result<()> {
    let name = Path::new(name_or_path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(name_or_path)
        .to_string();
    if !netns_path(&name).exists() {
        return Ok(());
    }
    run(Command::new("ip").args(["netns", "del", &name]))
}

/// Runs `f` on a fresh thread that has joined the network namespace at `path`, and returns its result.
/// Sockets created inside `f` stay bound to that namespace after it returns, so this is how a process listens in a
/// namespace it does not live in (the DNS server in tests, the benchmark's client and server).
///
/// # Errors
/// The namespace could not be opened or joined.
pub fn in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let p = path.to_path_buf();
    let handle = std::thread::spawn(move || -> Result<T> {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io("setns", &p, std::io::Error::from(e)))?;
        Ok(f())
    });
    match handle.join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(|_| ())
}

/// Runs a command and returns its stdout; a non-zero exit becomes [`Error::CommandFailed`].
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let line = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| Error::SpawnFailed {
        cmd: line.clone(),
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            cmd: line,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_name_is_short_and_stable() {
        assert_eq!(
            netns_name("6f1c2a9e-44b1-4f0e-9a55-0c1d2e3f4a5b"),
            "berth-6f1c2a9e44b1"
        );
        assert_eq!(netns_path("berth-x"), PathBuf::from("/run/netns/berth-x"));
    }
}
