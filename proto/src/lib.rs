//! Generated gRPC code for berth: the Raft peer transport (`raft.proto`) and the agent protocol (`agent.proto`).
//! No logic lives here.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// Raft peer transport between `berth-server` members.
pub mod raftpb {
    tonic::include_proto!("berth.raft");
}

/// Agent protocol between `berth-agent` and `berth-server`.
pub mod agentpb {
    tonic::include_proto!("berth.agent");
}

/// First contact of a new member or agent: the CA with a token proof, and member certificates.
pub mod bootstrappb {
    tonic::include_proto!("berth.bootstrap");
}

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
