//! The OCI bundle of one container: `config.json` built with `oci-spec` from a [`ContainerConfig`].
//! Own pid/mount/uts/ipc namespaces, the pod sandbox's network namespace, cgroup v1 limits.

use super::ContainerConfig;
use apimachinery::security::{oci_capability, ALL_CAPABILITIES};
use oci_spec::runtime::LinuxSeccomp;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, RootBuilder, Spec, UserBuilder,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Every capability, `CAP_`-prefixed as the OCI spec writes them, in kernel order: what `add: [ALL]` grants.
pub fn all_capabilities() -> Vec<String> {
    ALL_CAPABILITIES.iter().map(|c| oci_capability(c)).collect()
}

/// The capabilities a privileged container gets: every one in the agent's own bounding set, as Docker's
/// `--privileged` (asking for one the agent lacks would make the runtime's capset fail).
pub fn privileged_capabilities() -> Vec<String> {
    static BOUNDING: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let bounding = *BOUNDING.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapBnd:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(u64::MAX)
    });
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, c)| oci_capability(c))
        .collect()
}

/// # Panics
/// On a name that is not a capability (an invariant of [`super::SecurityConfig`]).
fn capability(name: &str) -> Capability {
    serde_json::from_value(serde_json::Value::from(name))
        .unwrap_or_else(|e| panic!("capability {name:?} was not checked: {e}"))
}

/// The cgroup path of a container: `/berth/pod{pod_uid}/{id}` in every v1 hierarchy.
pub fn cgroup_path(config: &ContainerConfig) -> String {
    cgroup_path_of(&config.pod_uid, &config.id)
}

/// [`cgroup_path`] from the two names it is made of, for readers that hold no config (the metrics sampler).
pub fn cgroup_path_of(pod_uid: &str, id: &str) -> String {
    format!("/berth/pod{pod_uid}/{id}")
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("static mount is valid")
}

/// Builds the runtime spec for `config` with its root filesystem at `rootfs`.
///
/// # Panics
/// Never for valid inputs; builder errors on static values are invariant violations.
pub fn build_spec(config: &ContainerConfig, rootfs: &Path) -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some(config.hostname.clone()));
    let sec = &config.security;
    spec.set_root(Some(
        RootBuilder::default()
            .path(PathBuf::from(rootfs))
            .readonly(sec.read_only_rootfs)
            .build()
            .expect("root"),
    ));

    let process = spec
        .process_mut()
        .as_mut()
        .expect("default spec has a process");
    process.set_args(Some(config.args.clone()));
    process.set_env(Some(config.env.clone()));
    process.set_cwd(PathBuf::from(if config.cwd.is_empty() {
        "/"
    } else {
        &config.cwd
    }));
    process.set_user(
        UserBuilder::default()
            .uid(config.uid)
            .gid(config.gid)
            .additional_gids(sec.supplementary_gids.clone())
            .build()
            .expect("user"),
    );
    process.set_no_new_privileges(Some(sec.no_new_privileges && !sec.privileged));
    let caps: HashSet<Capability> = if sec.privileged {
        privileged_capabilities()
            .iter()
            .map(|c| capability(c))
            .collect()
    } else {
        sec.capabilities.iter().map(|c| capability(c)).collect()
    };
    // As Docker does since 20.10: a non-root process gets its capabilities only in the bounding set, so it
    // holds none by merely running (and no_new_privs keeps file capabilities from granting them).
    let held = if config.uid == 0 || sec.privileged {
        caps.clone()
    } else {
        HashSet::new()
    };
    process.set_capabilities(Some(
        oci_spec::runtime::LinuxCapabilitiesBuilder::default()
            .bounding(caps)
            .effective(held.clone())
            .inheritable(HashSet::new())
            .ambient(HashSet::new())
            .permitted(held)
            .build()
            .expect("capabilities"),
    ));

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        if sec.privileged {
            // Docker gives a privileged container the host's devices.
            mount("/dev", "bind", "/dev", &["rbind", "rslave", "nosuid"])
        } else {
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            )
        },
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            if sec.privileged {
                &["nosuid", "noexec", "nodev"][..]
            } else {
                &["nosuid", "noexec", "nodev", "ro"][..]
            },
        ),
    ];
    for m in &config.mounts {
        let mut opts = vec!["rbind", "rprivate"];
        if m.read_only {
            opts.push("ro");
        }
        mounts.push(mount(
            &m.destination,
            "bind",
            &m.source.display().to_string(),
            &opts,
        ));
    }
    spec.set_mounts(Some(mounts));

    let mut namespaces = vec![];
    let mut own = vec![LinuxNamespaceType::Mount, LinuxNamespaceType::Uts];
    if !sec.host_pid {
        own.push(LinuxNamespaceType::Pid);
    }
    if !sec.host_ipc {
        own.push(LinuxNamespaceType::Ipc);
    }
    for t in own {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(t)
                .build()
                .expect("namespace"),
        );
    }
    if let Some(netns) = &config.netns {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(netns.clone())
                .build()
                .expect("netns"),
        );
    }

    let mut resources = LinuxResourcesBuilder::default()
        .devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(sec.privileged)
            .typ(LinuxDeviceType::A)
            .access("rwm")
            .build()
            .expect("device rule")])
        .pids(
            LinuxPidsBuilder::default()
                .limit(sec.pids_limit)
                .build()
                .expect("pids"),
        );
    if let Some(limit) = config.memory_limit {
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit)
                .build()
                .expect("memory"),
        );
    }
    if config.cpu_shares.is_some() || config.cpu_quota.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(s) = config.cpu_shares {
            cpu = cpu.shares(s);
        }
        if let Some(q) = config.cpu_quota {
            cpu = cpu.quota(q).period(100_000u64);
        }
        resources = resources.cpu(cpu.build().expect("cpu"));
    }

    let defaults = oci_spec::runtime::Linux::default();
    let unmasked = sec.privileged || sec.unmasked_proc;
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(cgroup_path(config)))
        .resources(resources.build().expect("resources"))
        .masked_paths(if unmasked {
            vec![]
        } else {
            defaults.masked_paths().clone().unwrap_or_default()
        })
        .readonly_paths(if unmasked {
            vec![]
        } else {
            defaults.readonly_paths().clone().unwrap_or_default()
        })
        .sysctl(
            sec.sysctls
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .expect("linux");
    if sec.seccomp && !sec.privileged {
        let caps: Vec<String> = sec.capabilities.clone();
        let profile: LinuxSeccomp = serde_json::from_value(super::seccomp::default_profile(&caps))
            .expect("the default seccomp profile is a valid LinuxSeccomp");
        linux.set_seccomp(Some(profile));
    }
    spec.set_linux(Some(linux));
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_capabilities_are_oci_names_in_kernel_order() {
        assert_eq!(all_capabilities()[0], "CAP_CHOWN");
    }

    #[test]
    fn spec_joins_pod_netns_and_sets_limits() {
        let cfg = ContainerConfig {
            id: "c1".into(),
            pod_uid: "u1".into(),
            args: vec!["httpd".into(), "-f".into()],
            netns: Some("/run/netns/berth-u1".into()),
            memory_limit: Some(64 << 20),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            hostname: "web".into(),
            ..Default::default()
        };
        let v = serde_json::to_value(build_spec(&cfg, Path::new("/r"))).unwrap();
        assert_eq!(v["hostname"], "web");
        assert_eq!(v["process"]["args"][0], "httpd");
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        assert!(ns
            .iter()
            .any(|n| n["type"] == "network" && n["path"] == "/run/netns/berth-u1"));
        assert!(ns
            .iter()
            .any(|n| n["type"] == "pid" && n.get("path").is_none()));
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["cgroupsPath"], "/berth/podu1/c1");
    }

    #[test]
    fn defaults_confine_and_privileged_lifts() {
        let cfg = ContainerConfig {
            id: "c1".into(),
            uid: 0,
            ..Default::default()
        };
        let v = serde_json::to_value(build_spec(&cfg, Path::new("/r"))).unwrap();
        assert_eq!(v["process"]["noNewPrivileges"], true);
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 4096);
        assert_eq!(v["root"]["readonly"], false);
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(!caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert!(!v["linux"]["maskedPaths"].as_array().unwrap().is_empty());

        let mut p = cfg.clone();
        p.security.privileged = true;
        p.security.read_only_rootfs = true;
        let v = serde_json::to_value(build_spec(&p, Path::new("/r"))).unwrap();
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert!(v["linux"]["seccomp"].is_null());
        assert_eq!(v["root"]["readonly"], true);
        let caps = v["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap();
        assert_eq!(caps.len(), privileged_capabilities().len());
        assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);

        let mut u = cfg;
        u.uid = 1000;
        let v = serde_json::to_value(build_spec(&u, Path::new("/r"))).unwrap();
        assert!(v["process"]["capabilities"]["effective"]
            .as_array()
            .is_none_or(|a| a.is_empty()));
        assert!(!v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .is_empty());
    }
}
