//! What one layer may cost, checked while it streams in.

/// What one layer may cost. Each limit ends the application with its own [`Error`](super::Error) as soon as it
/// is crossed, so a hostile layer costs at most about that much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of uncompressed tar (headers and padding included).
    pub max_bytes: u64,
    /// Most entries.
    pub max_entries: u64,
    /// Most bytes of headers, GNU long names and PAX records before one entry: the tar reader holds
    /// these in memory.
    pub max_header_bytes: u64,
    /// Most uncompressed bytes per compressed byte, enforced once [`Limits::ratio_after`] bytes are out.
    pub max_ratio: u64,
    /// Uncompressed bytes allowed at any ratio, so small, very regular layers pass.
    pub ratio_after: u64,
}

impl Default for Limits {
    /// Generous for real images (the largest public layers are a few GiB, rarely better than 20:1),
    /// while a gzip bomb (~1000:1) stops after [`Limits::ratio_after`] bytes.
    fn default() -> Self {
        Limits {
            max_bytes: 32 << 30,
            max_entries: 1 << 20,
            max_header_bytes: 1 << 20,
            max_ratio: 200,
            ratio_after: 64 << 20,
        }
    }
}
