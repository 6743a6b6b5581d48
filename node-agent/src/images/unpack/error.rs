//! Why a layer could not be applied.

use std::io;

/// Linux's limit on a path passed to one system call.
pub const PATH_MAX: usize = 4096;

/// Result type of layer application.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a layer could not be applied. None of these is retryable: the same bytes fail the same way.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An entry's name climbs above the layer root with `..`.
    #[error("layer entry {entry:?} escapes the layer root")]
    Escapes {
        /// The name as written in the tar.
        entry: String,
    },
    /// A hardlink's target climbs above the layer root with `..`.
    #[error("layer hardlink {entry:?} points outside the layer root: {target:?}")]
    LinkEscapes {
        /// The link's name.
        entry: String,
        /// Its target as written in the tar.
        target: String,
    },
    /// A whiteout (`.wh.`) hides nothing nameable (`.wh.`, `.wh..`).
    #[error("layer whiteout {entry:?} names no file")]
    BadWhiteout {
        /// The whiteout's name.
        entry: String,
    },
    /// A name or hardlink target longer than Linux's `PATH_MAX`: no real file has one, and deep
    /// paths only make every lookup slower.
    #[error("layer entry name of {len} bytes is longer than {PATH_MAX}")]
    NameTooLong {
        /// Its length.
        len: usize,
    },
    /// More uncompressed bytes than [`Limits::max_bytes`](super::Limits::max_bytes).
    #[error("layer is larger than {limit} bytes uncompressed")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// More entries than [`Limits::max_entries`](super::Limits::max_entries).
    #[error("layer has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// One entry's headers (long names, PAX records) exceed
    /// [`Limits::max_header_bytes`](super::Limits::max_header_bytes).
    #[error("layer tar headers of one entry exceed {limit} bytes")]
    HeaderTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The stream inflates more than [`Limits::max_ratio`](super::Limits::max_ratio) times its
    /// compressed size.
    #[error("layer inflates more than {limit}:1 when decompressed (a compression bomb)")]
    Ratio {
        /// The limit.
        limit: u64,
    },
    /// The stream is not a valid (gzip) tar, or could not be read.
    #[error("layer is not a valid tar: {0}")]
    Tar(#[source] io::Error),
    /// A filesystem operation on an entry failed.
    #[error("layer entry {entry:?}: {op} failed: {source}")]
    Io {
        /// The entry's name.
        entry: String,
        /// The operation (`create`, `link`, ...).
        op: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
