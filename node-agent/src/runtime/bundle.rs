//! The OCI bundle of one container: `config.json` built with `oci-spec` from a [`ContainerConfig`].
//! Own pid/mount/uts/ipc namespaces, the pod sandbox's network namespace, cgroup v1 limits.

use super::ContainerConfig;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount,
    MountBuilder, RootBuilder, Spec, UserBuilder,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Docker's default capability set, which Kubernetes containers get unless the pod asks otherwise.
const DEFAULT_CAPS: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// The cgroup path of a container: `/berth/{pod_uid}/{id}` in every v1 hierarchy.
pub fn cgroup_path(config: &ContainerConfig) -> String {
    format!("/berth/pod{}/{}", config.pod_uid, config.id)
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
    spec.set_root(Some(
        RootBuilder::default()
            .path(PathBuf::from(rootfs))
            .readonly(false)
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
            .build()
            .expect("user"),
    );
    process.set_no_new_privileges(Some(false));
    let caps: HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
    process.set_capabilities(Some(
        oci_spec::runtime::LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .build()
            .expect("capabilities"),
    ));

    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
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
            &["nosuid", "noexec", "nodev", "ro"],
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
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
    ] {
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

    let mut resources =
        LinuxResourcesBuilder::default().devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .typ(LinuxDeviceType::A)
            .access("rwm")
            .build()
            .expect("device rule")]);
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
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(cgroup_path(config)))
        .resources(resources.build().expect("resources"))
        .masked_paths(defaults.masked_paths().clone().unwrap_or_default())
        .readonly_paths(defaults.readonly_paths().clone().unwrap_or_default())
        .build()
        .expect("linux");
    spec.set_linux(Some(linux));
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
