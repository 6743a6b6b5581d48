//! Applies a layer tar (plain or gzip) into a directory usable as an overlayfs lower layer:
//! `.wh.NAME` whiteouts become 0:0 character devices, `.wh..wh..opq` marks the directory opaque.
//! Every file operation resolves beneath that directory, and [`Limits`] bound what one layer may cost.

//!
//! Split by concern: [`stream`] meters and hashes the bytes read, [`entry`] writes each entry beneath the root.

mod entry;
mod stream;

pub use super::beneath::Resolver;
use entry::Ctx;
use rustix::fs::{openat, Mode, OFlags};
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::rc::Rc;
use stream::{Decoded, Limited, Meter, Raw};

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
    /// More uncompressed bytes than [`Limits::max_bytes`].
    #[error("layer is larger than {limit} bytes uncompressed")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// More entries than [`Limits::max_entries`].
    #[error("layer has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// One entry's headers (long names, PAX records) exceed [`Limits::max_header_bytes`].
    #[error("layer tar headers of one entry exceed {limit} bytes")]
    HeaderTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The stream inflates more than [`Limits::max_ratio`] times its compressed size.
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

/// What one layer may cost. Each limit ends the application with its own [`Error`] as soon as it
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

/// What applying a layer measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `sha256:` of the bytes read (the blob as stored, maybe gzip): compare with the manifest's digest.
    pub digest: String,
    /// `sha256:` of the uncompressed tar: compare with the config's `diff_id`.
    pub diff_id: String,
    /// Entries applied.
    pub entries: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
}

/// What the tar holds: an image layer (whiteouts, devices) or a plain archive of files (an image
/// tarball being imported, where `.wh.` is just a name and device nodes have no business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    Layer,
    Archive,
}

/// Applies the layer `reader` (gzip or plain tar) into the existing directory `rootfs`. Names,
/// parent symlinks and hardlink targets all resolve beneath `rootfs`; symlinks are created with their
/// text as written (never followed here). The returned digests are of what was read: the caller
/// *MUST* compare them with the manifest and config and discard `rootfs` on a mismatch.
///
/// # Errors
/// A limit is crossed, a name or hardlink escapes, the stream is not a tar, or a file operation
/// fails. `rootfs` then holds a partial layer and should be removed.
pub fn apply_layer(reader: impl Read, rootfs: &Path, limits: &Limits) -> Result<Applied> {
    apply(reader, rootfs, limits, Content::Layer, Resolver::Kernel)
}

/// [`apply_layer`] with a chosen resolver: [`Resolver::Walk`] exercises the path taken on kernels
/// without `openat2` (tests, fuzzing).
///
/// # Errors
/// As [`apply_layer`].
pub fn apply_layer_with(
    reader: impl Read,
    rootfs: &Path,
    limits: &Limits,
    resolver: Resolver,
) -> Result<Applied> {
    apply(reader, rootfs, limits, Content::Layer, resolver)
}

/// Extracts a plain archive (a `docker save` or OCI layout tarball) into `dir`, with the same
/// containment and limits as a layer.
pub(crate) fn extract_archive(reader: impl Read, dir: &Path, limits: &Limits) -> Result<Applied> {
    apply(reader, dir, limits, Content::Archive, Resolver::Kernel)
}

/// Which limit was crossed, kept aside because it has to travel up as an `io::Error` through the
/// gzip and tar readers.

fn apply(
    reader: impl Read,
    rootfs: &Path,
    limits: &Limits,
    mode: Content,
    resolver: Resolver,
) -> Result<Applied> {
    let root = openat(
        rustix::fs::CWD,
        rootfs,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        entry: "/".into(),
        op: "open the root",
        source: e.into(),
    })?;
    let meter = Rc::new(Meter::default());
    let mut raw = BufReader::new(Raw {
        inner: reader,
        hasher: Sha256::new(),
        meter: meter.clone(),
    });
    let gzip = {
        let head = raw.fill_buf().map_err(Error::Tar)?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    let decoded = if gzip {
        Decoded::Gzip(flate2::read::MultiGzDecoder::new(raw))
    } else {
        Decoded::Plain(raw)
    };
    let mut ar = tar::Archive::new(Limited {
        inner: decoded,
        hasher: Sha256::new(),
        meter: meter.clone(),
        limits: *limits,
    });
    let ctx = Ctx {
        root: root.as_fd(),
        resolver,
        mode,
    };
    let mut count = 0u64;
    {
        let mut entries = ar.entries().map_err(Error::Tar)?;
        loop {
            meter.header_from.set(Some(meter.out.get()));
            let next = entries.next();
            meter.header_from.set(None);
            let mut entry = match next {
                None => break,
                Some(Err(e)) => return Err(meter.classify(limits, e)),
                Some(Ok(e)) => e,
            };
            count += 1;
            if count > limits.max_entries {
                return Err(Error::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            ctx.entry(&mut entry, &meter, limits)?;
            // Whatever the entry carried and we did not need (a symlink with data) is still part of
            // the stream: read it here, under the byte limit, not inside the next header's budget.
            io::copy(&mut entry, &mut io::sink()).map_err(|e| meter.classify(limits, e))?;
        }
    }
    let mut limited = ar.into_inner();
    // The end-of-archive blocks and any padding after them are part of the diff_id.
    io::copy(&mut limited, &mut io::sink()).map_err(|e| meter.classify(limits, e))?;
    let diff_id = format!("sha256:{}", hex::encode(limited.hasher.finalize()));
    let mut raw = limited.inner.into_raw();
    io::copy(&mut raw, &mut io::sink()).map_err(Error::Tar)?;
    let digest = format!("sha256:{}", hex::encode(raw.into_inner().hasher.finalize()));
    Ok(Applied {
        digest,
        diff_id,
        entries: count,
        bytes: meter.out.get(),
    })
}

/// Lexically cleans a tar name into plain components: `/` and `.` go, `..` pops. `None` when `..`

#[cfg(test)]
mod tests;
