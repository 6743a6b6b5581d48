//! Errors of a member's disk storage, shared by the WAL and the sled checkpoint store so that neither
//! depends on the other for its error type.

/// Errors of the member's disk storage (the WAL and sled). Any of them makes the member inoperable (STYLE rule 24).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// Reading or writing the log failed (disk full, I/O error).
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes did not decode.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
}

/// Result type of the disk storage.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error for stored bytes that do not decode.
pub(crate) fn corrupt(what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        what,
        detail: e.to_string(),
    }
}
