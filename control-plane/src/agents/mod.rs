//! gRPC service the node agents talk to: Join and the Sync stream.
