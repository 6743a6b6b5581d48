//! Fuzz targets for berth's hostile-input parsers. Each target is a function of raw bytes that calls
//! the same code the servers and berthctl call, and panics only when an invariant breaks.
//!
//! # Layout
//! - [`api`]: request bodies (JSON, YAML, protobuf) through decode, create preparation and validation;
//!   patches (JSON, merge, strategic merge, server-side apply).
//! - [`selector`]: label and field selectors, parsed, printed, re-parsed and matched.
//! - [`quantity`]: resource quantities as the scheduler and the node agent read them.
//! - [`compose`]: Compose files converted to Kubernetes objects.
//! - [`layer`]: one image layer tar applied into a temporary rootfs.
//! - [`wal`]: Raft WAL recovery from arbitrary segment bytes.
//!
//! Under `cargo test` every target replays its seed corpus (`src/__fuzz__/<target>/corpus`) and a
//! bounded number of random inputs; `scripts/fuzz.sh` runs them coverage-guided with cargo-bolero.

pub mod api;
pub mod compose;
pub mod layer;
pub mod quantity;
pub mod selector;
pub mod wal;

/// Splits `input` at its first `0xff` byte, which never occurs in UTF-8 text, so a corpus file can
/// hold two documents (`first 0xff second`). Without one, the second part is empty.
pub fn split2(input: &[u8]) -> (&[u8], &[u8]) {
    match input.iter().position(|&b| b == 0xff) {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (input, &[]),
    }
}

/// One bolero test per target. Under `cargo test` each replays its corpus plus `ITERATIONS` random
/// inputs (kept small so the crate's tests stay well under a minute on two cores); under
/// `cargo bolero test` the same tests run coverage-guided.
#[cfg(test)]
mod tests {
    /// Random inputs per target under plain `cargo test`.
    const ITERATIONS: usize = 20_000;
    /// Targets that touch the filesystem on every input get fewer.
    const FS_ITERATIONS: usize = 1_000;
    /// Longest random input: larger inputs only slow the random engine down.
    const MAX_LEN: usize = 4096;

    macro_rules! target {
        ($name:ident, $f:path, $iterations:expr) => {
            #[test]
            fn $name() {
                bolero::check!()
                    .with_iterations($iterations)
                    .with_max_len(MAX_LEN)
                    .for_each(|input: &[u8]| $f(input));
            }
        };
    }

    target!(json_body, crate::api::json_body, ITERATIONS);
    target!(yaml_body, crate::api::yaml_body, ITERATIONS);
    target!(protobuf_body, crate::api::protobuf_body, ITERATIONS);
    target!(patch, crate::api::patch, ITERATIONS);
    target!(label_selector, crate::selector::label, ITERATIONS);
    target!(field_selector, crate::selector::field, ITERATIONS);
    target!(quantity, crate::quantity::quantity, ITERATIONS);
    target!(compose, crate::compose::compose, ITERATIONS);
    target!(layer, crate::layer::layer, FS_ITERATIONS);
    target!(wal, crate::wal::wal, FS_ITERATIONS);
}
