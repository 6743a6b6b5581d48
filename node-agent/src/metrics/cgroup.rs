//! Reading CPU and memory counters: of a container from its cgroup (v1 or v2, detected once per host),
//! of the node from `/proc`. The parsers are pure; every reader answers `None` rather than failing, since
//! a cgroup vanishes whenever its container exits.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest counter file read. Every file read here is a few hundred bytes to a few KiB (memory.stat);
/// anything larger is not the file we expect and is not worth holding in memory.
const MAX_FILE: u64 = 64 << 10;

/// `USER_HZ`: the unit of `/proc/stat`, 100 on every Linux ABI the agent runs on.
const USER_HZ: u64 = 100;

/// One reading of a cgroup (or of the node): cumulative CPU time and current memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// CPU time used since the cgroup was made (or the node booted), in nanoseconds.
    pub cpu_ns: Option<u64>,
    /// Memory use now.
    pub memory: Option<Memory>,
}

/// Memory use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Total usage, page cache included.
    pub usage_bytes: u64,
    /// Usage minus inactive file cache.
    pub working_set_bytes: u64,
}

fn parse_u64(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// The value of `key` in a flat keyed file (`memory.stat`, `cpu.stat`: one `key value` per line).
fn keyed(s: &str, key: &str) -> Option<u64> {
    s.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next().and_then(parse_u64))?
    })
}

/// cgroup v1 `cpuacct.usage`: nanoseconds.
pub fn parse_cpuacct_usage(s: &str) -> Option<u64> {
    parse_u64(s)
}

/// cgroup v2 `cpu.stat`: `usage_usec`, as nanoseconds.
pub fn parse_cpu_stat(s: &str) -> Option<u64> {
    keyed(s, "usage_usec")?.checked_mul(1000)
}

/// Working set as cadvisor computes it: usage less the inactive file cache, never below zero. Without
/// the inactive figure (a `memory.stat` that lacks it) the whole usage counts, as cadvisor does.
pub fn working_set(usage: u64, inactive_file: Option<u64>) -> u64 {
    usage.saturating_sub(inactive_file.unwrap_or(0))
}

/// cgroup v1 memory from `memory.usage_in_bytes` and `memory.stat` (`total_inactive_file`, which
/// counts the descendants too, like the usage does).
pub fn parse_memory_v1(usage: &str, stat: Option<&str>) -> Option<Memory> {
    let usage_bytes = parse_u64(usage)?;
    let inactive = stat.and_then(|s| keyed(s, "total_inactive_file"));
    Some(Memory {
        usage_bytes,
        working_set_bytes: working_set(usage_bytes, inactive),
    })
}

/// cgroup v2 memory from `memory.current` and `memory.stat` (`inactive_file`).
pub fn parse_memory_v2(current: &str, stat: Option<&str>) -> Option<Memory> {
    let usage_bytes = parse_u64(current)?;
    let inactive = stat.and_then(|s| keyed(s, "inactive_file"));
    Some(Memory {
        usage_bytes,
        working_set_bytes: working_set(usage_bytes, inactive),
    })
}

/// `/proc/stat`'s `cpu` line as busy nanoseconds: every field but idle and iowait. guest and guest_nice
/// are left out because the kernel already counts them in user and nice.
pub fn parse_proc_stat(s: &str) -> Option<u64> {
    let line = s
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(parse_u64)
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal; kernels before 2.6.11 had fewer.
    if fields.len() < 4 {
        return None;
    }
    let mut busy = 0u64;
    for (i, v) in fields.iter().enumerate() {
        if i != 3 && i != 4 {
            busy = busy.checked_add(*v)?;
        }
    }
    busy.checked_mul(1_000_000_000 / USER_HZ)
}

/// `/proc/meminfo` as node memory: working set = MemTotal - MemAvailable (what is not reclaimable),
/// usage = MemTotal - MemFree (page cache included, like a cgroup's usage).
pub fn parse_meminfo(s: &str) -> Option<Memory> {
    let kib = |key: &str| -> Option<u64> {
        s.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            parse_u64(rest.trim().trim_end_matches("kB"))?.checked_mul(1024)
        })
    };
    let total = kib("MemTotal")?;
    Some(Memory {
        usage_bytes: total.saturating_sub(kib("MemFree")?),
        working_set_bytes: total.saturating_sub(kib("MemAvailable")?),
    })
}

/// Reads a small text file whole; `None` when it is missing, unreadable, not UTF-8 or larger than
/// [`MAX_FILE`].
fn read_small(path: &Path) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    let mut buf = String::new();
    let n = f.take(MAX_FILE + 1).read_to_string(&mut buf).ok()?;
    (n as u64 <= MAX_FILE).then_some(buf)
}

/// How this host lays out cgroups, found once: v2 (one unified tree) or v1 (a hierarchy per controller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The unified hierarchy at this root.
    V2(PathBuf),
    /// v1 hierarchies: the one holding `cpuacct` and the `memory` one (either may be missing).
    V1 {
        /// `cpuacct`, `cpu,cpuacct` or `cpuacct,cpu`, whichever this host mounts.
        cpuacct: Option<PathBuf>,
        /// `memory`.
        memory: Option<PathBuf>,
    },
}

impl Layout {
    /// Detects the layout under `root` (`/sys/fs/cgroup`). v2 only when the root itself is the unified
    /// tree with the cpu and memory controllers: a hybrid host's v2 mount (`unified/`) holds no
    /// container cgroups, since the runtime creates them in the v1 hierarchies.
    pub fn detect(root: &Path) -> Layout {
        let v2 = read_small(&root.join("cgroup.controllers")).is_some_and(|s| {
            let c: Vec<&str> = s.split_whitespace().collect();
            c.contains(&"cpu") && c.contains(&"memory")
        });
        if v2 {
            return Layout::V2(root.to_path_buf());
        }
        let dir = |names: &[&str]| names.iter().map(|n| root.join(n)).find(|p| p.is_dir());
        Layout::V1 {
            cpuacct: dir(&["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]),
            memory: dir(&["memory"]),
        }
    }

    /// Reads the cgroup at `path` (`/berth/pod{uid}/{id}`, absolute within each hierarchy).
    pub fn read(&self, path: &str) -> Reading {
        let rel = path.trim_start_matches('/');
        match self {
            Layout::V2(root) => {
                let d = root.join(rel);
                Reading {
                    cpu_ns: read_small(&d.join("cpu.stat")).and_then(|s| parse_cpu_stat(&s)),
                    memory: read_small(&d.join("memory.current")).and_then(|c| {
                        parse_memory_v2(&c, read_small(&d.join("memory.stat")).as_deref())
                    }),
                }
            }
            Layout::V1 { cpuacct, memory } => Reading {
                cpu_ns: cpuacct
                    .as_ref()
                    .and_then(|h| read_small(&h.join(rel).join("cpuacct.usage")))
                    .and_then(|s| parse_cpuacct_usage(&s)),
                memory: memory.as_ref().and_then(|h| {
                    let d = h.join(rel);
                    let usage = read_small(&d.join("memory.usage_in_bytes"))?;
                    parse_memory_v1(&usage, read_small(&d.join("memory.stat")).as_deref())
                }),
            },
        }
    }
}

/// Where the sampler reads: the cgroup layout and the proc root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Cgroups of this host.
    pub layout: Layout,
    /// `/proc` (a fixture directory in tests).
    pub proc_root: PathBuf,
}

impl Host {
    /// The real host: `/sys/fs/cgroup` and `/proc`.
    pub fn detect() -> Host {
        Host::at(Path::new("/sys/fs/cgroup"), Path::new("/proc"))
    }

    /// A host rooted elsewhere (tests use a temp dir of fixture files).
    pub fn at(cgroup_root: &Path, proc_root: &Path) -> Host {
        Host {
            layout: Layout::detect(cgroup_root),
            proc_root: proc_root.to_path_buf(),
        }
    }

    /// The node's reading from `/proc/stat` and `/proc/meminfo`.
    pub fn read_node(&self) -> Reading {
        Reading {
            cpu_ns: read_small(&self.proc_root.join("stat")).and_then(|s| parse_proc_stat(&s)),
            memory: read_small(&self.proc_root.join("meminfo")).and_then(|s| parse_meminfo(&s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_STAT: &str = "cache 4096\nrss 1048576\ninactive_file 100\ntotal_cache 8192\ntotal_rss 1048576\ntotal_inactive_file 8192\ntotal_active_file 0\n";
    const V2_STAT: &str = "anon 1048576\nfile 8192\nactive_file 0\ninactive_file 4096\n";
    const PROC_STAT: &str =
        "cpu  100 20 30 1000 50 5 5 10 7 3\ncpu0 50 10 15 500 25 2 2 5 3 1\nintr 1\n";
    const MEMINFO: &str = "MemTotal:        2048000 kB\nMemFree:          512000 kB\nMemAvailable:    1024000 kB\nBuffers: 1 kB\n";

    #[test]
    fn v1_files_parse() {
        assert_eq!(parse_cpuacct_usage("123456789\n"), Some(123_456_789));
        assert_eq!(
            parse_memory_v1("1060864\n", Some(V1_STAT)),
            Some(Memory {
                usage_bytes: 1_060_864,
                working_set_bytes: 1_060_864 - 8192
            })
        );
    }

    #[test]
    fn v2_files_parse() {
        assert_eq!(
            parse_cpu_stat("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"),
            Some(2_500_000)
        );
        assert_eq!(
            parse_memory_v2("1056768", Some(V2_STAT)),
            Some(Memory {
                usage_bytes: 1_056_768,
                working_set_bytes: 1_056_768 - 4096
            })
        );
    }

    #[test]
    fn working_set_saturates_and_falls_back_to_usage() {
        assert_eq!(working_set(100, Some(500)), 0);
        assert_eq!(working_set(100, None), 100);
        let m = parse_memory_v1("100", Some("garbage")).unwrap();
        assert_eq!(m.working_set_bytes, 100);
    }

    #[test]
    fn node_files_parse() {
        // Busy: user nice system irq softirq steal = 100+20+30+5+5+10 jiffies of 10 ms.
        assert_eq!(parse_proc_stat(PROC_STAT), Some(170 * 10_000_000));
        assert_eq!(
            parse_meminfo(MEMINFO),
            Some(Memory {
                usage_bytes: (2_048_000 - 512_000) * 1024,
                working_set_bytes: (2_048_000 - 1_024_000) * 1024
            })
        );
    }

    #[test]
    fn garbage_empty_and_huge_values_are_none() {
        let huge = "99999999999999999999999999";
        for s in ["", "\n", "abc", "-5", huge, "1.5", "\0\0"] {
            assert_eq!(parse_cpuacct_usage(s), None, "{s:?}");
            assert_eq!(parse_memory_v1(s, None), None, "{s:?}");
            assert_eq!(parse_memory_v2(s, Some(s)), None, "{s:?}");
            assert_eq!(parse_proc_stat(s), None, "{s:?}");
            assert_eq!(parse_meminfo(s), None, "{s:?}");
        }
        assert_eq!(parse_cpu_stat("usage_usec"), None);
        assert_eq!(parse_cpu_stat("usage_usec x"), None);
        // Microseconds that overflow as nanoseconds.
        assert_eq!(parse_cpu_stat(&format!("usage_usec {}", u64::MAX)), None);
        assert_eq!(parse_proc_stat("cpu  1 2 3"), None);
        assert_eq!(
            parse_proc_stat(&format!("cpu {} {} 0 0", u64::MAX, 1)),
            None
        );
        assert_eq!(
            parse_proc_stat(&format!("cpu {} 0 0 0", u64::MAX / 2)),
            None
        );
        assert_eq!(parse_meminfo("MemTotal: 10 kB\n"), None);
    }

    fn write(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    #[test]
    fn v1_layout_reads_a_container_and_the_node() {
        let d = tempfile::tempdir().unwrap();
        let (cg, proc_) = (d.path().join("cg"), d.path().join("proc"));
        // The hybrid host: a v2 mount with no cpu/memory controllers is not v2.
        write(&cg, "unified/cgroup.controllers", "hugetlb\n");
        write(&cg, "cpu,cpuacct/berth/podu1/c1/cpuacct.usage", "5000\n");
        write(
            &cg,
            "memory/berth/podu1/c1/memory.usage_in_bytes",
            "1060864\n",
        );
        write(&cg, "memory/berth/podu1/c1/memory.stat", V1_STAT);
        write(&proc_, "stat", PROC_STAT);
        write(&proc_, "meminfo", MEMINFO);
        let host = Host::at(&cg, &proc_);
        assert!(matches!(host.layout, Layout::V1 { .. }), "{host:?}");
        let r = host.layout.read("/berth/podu1/c1");
        assert_eq!(r.cpu_ns, Some(5000));
        assert_eq!(r.memory.unwrap().working_set_bytes, 1_060_864 - 8192);
        assert_eq!(host.layout.read("/berth/podu1/gone"), Reading::default());
        assert_eq!(host.read_node().cpu_ns, Some(1_700_000_000));
        assert!(host.read_node().memory.is_some());
    }

    #[test]
    fn v2_layout_reads_a_container_and_missing_files_are_none() {
        let d = tempfile::tempdir().unwrap();
        let cg = d.path().join("cg");
        write(&cg, "cgroup.controllers", "cpuset cpu io memory pids\n");
        write(&cg, "berth/podu1/c1/cpu.stat", "usage_usec 7\n");
        write(&cg, "berth/podu1/c1/memory.current", "4096\n");
        let host = Host::at(&cg, &d.path().join("noproc"));
        assert_eq!(host.layout, Layout::V2(cg.clone()));
        let r = host.layout.read("/berth/podu1/c1");
        assert_eq!(r.cpu_ns, Some(7000));
        assert_eq!(
            r.memory,
            Some(Memory {
                usage_bytes: 4096,
                working_set_bytes: 4096
            })
        );
        assert_eq!(host.read_node(), Reading::default());
    }

    #[test]
    fn oversized_files_are_not_read() {
        let d = tempfile::tempdir().unwrap();
        let cg = d.path().join("cg");
        write(
            &cg,
            "cpuacct/x/cpuacct.usage",
            &"1".repeat(MAX_FILE as usize + 1),
        );
        let host = Host::at(&cg, d.path());
        assert_eq!(host.layout.read("/x").cpu_ns, None);
    }
}
