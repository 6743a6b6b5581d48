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
