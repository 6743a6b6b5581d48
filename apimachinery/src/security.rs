//! Linux security tables that the API (which validates pods) and the agents (which set up containers)
//! must agree on: one copy, so a capability the API accepts is one the agent knows.

/// The kubelet's default allowlist of safe sysctls (namespaced, harmless to the node and other pods):
/// part of the contract between the API, which validates pods, and the agents, which set them.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// Every Linux capability a `securityContext` may name, without the `CAP_` prefix (as Kubernetes writes
/// them); `ALL` is accepted besides these.
pub const ALL_CAPABILITIES: &[&str] = &[
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
];

/// Docker's default capability set, which containers get unless the pod asks otherwise.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The `CAP_`-prefixed name the OCI runtime spec uses for a capability (`NET_RAW` -> `CAP_NET_RAW`);
/// an already prefixed name is kept.
pub fn oci_capability(name: &str) -> String {
    let bare = name.strip_prefix("CAP_").unwrap_or(name);
    format!("CAP_{}", bare.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_known_capabilities() {
        for c in DEFAULT_CAPABILITIES {
            assert!(ALL_CAPABILITIES.contains(c), "{c}");
        }
        assert_eq!(oci_capability("net_raw"), "CAP_NET_RAW");
        assert_eq!(oci_capability("CAP_KILL"), "CAP_KILL");
    }
}
