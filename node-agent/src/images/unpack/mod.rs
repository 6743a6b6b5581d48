//! Applies a layer tar (plain or gzip) into a directory usable as an overlayfs lower layer:
//! `.wh.NAME` whiteouts become 0:0 character devices, `.wh..wh..opq` marks the directory opaque.
//! Every file operation resolves beneath that directory, and [`Limits`] bound what one layer may cost.
//!
//! Split by concern: `stream` meters and hashes the bytes read, `entry` writes each entry beneath the
//! root; [`Error`] and [`Limits`] live in their own files so those two need nothing from this one.

mod entry;
mod error;
mod limits;
mod stream;

pub use super::beneath::Resolver;
use entry::{Content, Ctx};
pub use error::{Error, Result, PATH_MAX};
pub use limits::Limits;
use rustix::fs::{openat, Mode, OFlags};
use sha2::{Digest, Sha256};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::rc::Rc;
use stream::{Decoded, Limited, Meter, Raw};

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

#[cfg(test)]
mod tests;
