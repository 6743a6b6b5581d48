//! Compiles the .proto files into tonic/prost code.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        .compile_protos(&[
            "proto/raft.proto",
            "proto/agent.proto",
            "proto/bootstrap.proto",
        ], &["proto"])?;
    Ok(())
}
