//! The host edge of labs: running `ip`, starting detached processes inside a netns, finding and signalling
//! processes, and unmounting what is left under a lab directory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Runs a command and fails with its stderr.
pub fn run(argv: &[String]) -> Result<String> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run {}", argv[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and ignores failure (cleanup of things that may already be gone).
pub fn run_quiet(argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The host's IPv4 routes (all tables).
pub fn host_routes() -> Result<String> {
    run(&[
        "ip".into(),
        "-4".into(),
        "route".into(),
        "show".into(),
        "table".into(),
        "all".into(),
    ])
}

/// Names of all network namespaces.
pub fn netns_list() -> Vec<String> {
    run(&["ip".into(), "netns".into(), "list".into()])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Names of all links in the host namespace.
pub fn link_list() -> Vec<String> {
    run(&["ip".into(), "-o".into(), "link".into(), "show".into()])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next()?.to_string())
        })
        .collect()
}

/// PIDs of processes in a network namespace.
pub fn netns_pids(netns: &str) -> Vec<u32> {
    run(&["ip".into(), "netns".into(), "pids".into(), netns.into()])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Starts `bin args` inside `netns`, in its own session (it outlives berthctl and the terminal), with stdout
/// and stderr appended to `log`. Returns the PID (`setsid` and `nsenter` both exec, so it is the
/// binary's PID). `nsenter --net` rather than `ip netns exec`: the latter also remounts `/sys` in a private
/// mount namespace, which hides the host's cgroup hierarchy from the agent's OCI runtime and keeps the pod
/// network namespaces the agent creates out of the host's `/run/netns`.
/// `env` is added to the inherited environment (secrets go there, never in `args`: a command line is
/// world-readable in `/proc`).
pub fn spawn_in_netns(
    netns: &str,
    bin: &Path,
    args: &[String],
    env: &[(&str, &str)],
    log: &Path,
) -> Result<u32> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("failed to open {}", log.display()))?;
    let child = Command::new("setsid")
        .arg("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .arg(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .spawn()
        .with_context(|| format!("failed to start {} in {netns}", bin.display()))?;
    Ok(child.id())
}

/// The command line of a live process (None when gone or a zombie).
pub fn cmdline(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// Whether `pid` is alive and still runs something whose command line contains `expect` (guards against PID
/// reuse).
pub fn alive(pid: u32, expect: &str) -> bool {
    cmdline(pid).is_some_and(|c| c.contains(expect))
}

/// PIDs of live processes whose command line contains `needle`.
pub fn pids_matching(needle: &str) -> Vec<u32> {
    let mine = ancestors();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| !mine.contains(p))
        .filter(|&p| cmdline(p).is_some_and(|c| c.contains(needle)))
        .collect()
}

/// Whether a process's root filesystem (the `/` entry of its mountinfo) references `needle`: true for a container
/// whose overlay rootfs lives in the lab directory. Only the root entry counts: other namespaces (init's, other
/// tools') see the lab's mounts propagated into them, and must never match.
pub fn root_mount_references(mountinfo: &str, needle: &str) -> bool {
    mountinfo
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some("/"))
        .is_some_and(|l| l.contains(needle))
}

/// PIDs of container processes whose root filesystem lives under `needle` (a lab directory with a trailing
/// `/`). This finds a lab's containers even when the agent that started them lost track of them. PID 1, this
/// process and its ancestors are never returned.
pub fn pids_with_root_under(needle: &str) -> Vec<u32> {
    let skip = ancestors();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| *p > 1 && !skip.contains(p))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/mountinfo"))
                .is_ok_and(|m| root_mount_references(&m, needle))
        })
        .filter(|&p| cmdline(p).is_some())
        .collect()
}

/// The name under `/run/netns` of the network namespace `pid` is in, if it has one.
pub fn netns_name_of(pid: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let ino: u64 = link
        .to_string_lossy()
        .trim_start_matches("net:[")
        .trim_end_matches(']')
        .parse()
        .ok()?;
    std::fs::read_dir("/run/netns")
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| e.metadata().is_ok_and(|m| m.ino() == ino))
        .and_then(|e| e.file_name().into_string().ok())
}

/// This process and its ancestors (`sudo berthctl lab down --dir X/` mentions the directory too).
fn ancestors() -> Vec<u32> {
    let mut out = vec![std::process::id()];
    let mut cur = std::process::id();
    for _ in 0..64 {
        let Some(ppid) = std::fs::read_to_string(format!("/proc/{cur}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            })
        else {
            break;
        };
        if ppid <= 1 {
            break;
        }
        out.push(ppid);
        cur = ppid;
    }
    out
}

/// Sends a signal, ignoring processes that are already gone.
pub fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

/// SIGTERM, wait up to `grace`, then SIGKILL and wait up to 2 s more. Returns the PIDs still alive.
pub fn terminate(pids: &[u32], grace: Duration) -> Vec<u32> {
    for &p in pids {
        signal(p, Signal::SIGTERM);
    }
    let live = |ps: &[u32]| -> Vec<u32> {
        ps.iter()
            .copied()
            .filter(|&p| cmdline(p).is_some())
            .collect()
    };
    let deadline = Instant::now() + grace;
    let mut left = live(pids);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = live(&left);
    }
    for &p in &left {
        signal(p, Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = live(&left);
    }
    left
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.to_string_lossy().trim_end_matches('/').to_string();
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| *m == d || m.starts_with(&format!("{d}/")))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out.dedup();
    out
}

/// Lazily unmounts everything under `dir` (container rootfs, volumes) so removing the directory cannot reach
/// into a mounted filesystem. Returns the mount points that remain.
pub fn unmount_all_under(dir: &Path) -> Vec<String> {
    for _ in 0..5 {
        let m = mounts_under(dir);
        if m.is_empty() {
            return m;
        }
        for p in &m {
            run_quiet(&["umount", "-l", p]);
        }
    }
    mounts_under(dir)
}

/// Whether we run as root (labs need CAP_NET_ADMIN and CAP_SYS_ADMIN).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Takes an exclusive `flock` on `path` (created if needed); released when the guard drops.
pub fn lock_file(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("failed to lock {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_root_mount_identifies_a_container() {
        let container = "154 125 0:61 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/berth/labs/demo/a1/layers/x,upperdir=/var/lib/berth/labs/demo/a1/containers/c/upper\n155 154 0:64 / /proc rw - proc proc rw\n";
        assert!(root_mount_references(
            container,
            "/var/lib/berth/labs/demo/"
        ));
        assert!(!root_mount_references(
            container,
            "/var/lib/berth/labs/dem/"
        ));
        // init (or any host process) sees the lab's overlays propagated below its own root: not a container.
        let init = "22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n300 22 0:61 / /var/lib/berth/labs/demo/a1/containers/c/rootfs rw shared:9 - overlay overlay rw,upperdir=/var/lib/berth/labs/demo/a1/containers/c/upper\n";
        assert!(!root_mount_references(init, "/var/lib/berth/labs/demo/"));
        assert!(!root_mount_references("", "/x/"));
    }

    #[test]
    fn pid_one_and_self_are_never_candidates() {
        // Whatever the needle, init and this test process must not come back.
        let p = pids_with_root_under("/");
        assert!(!p.contains(&1));
        assert!(!p.contains(&std::process::id()));
    }
}
