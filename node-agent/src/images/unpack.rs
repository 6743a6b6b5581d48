//! Applies a layer tar (plain or gzip) into a directory usable as an overlayfs lower layer:
//! `.wh.NAME` whiteouts become 0:0 character devices, `.wh..wh..opq` marks the directory opaque.
//! Every file operation resolves beneath that directory, and [`Limits`] bound what one layer may cost.

use super::beneath;
pub use super::beneath::Resolver;
use rustix::fs::{
    fchmod, fchown, fsetxattr, futimens, linkat, mkdirat, mknodat, openat, statat, symlinkat,
    unlinkat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid, XattrFlags,
};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

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
#[derive(Debug, Clone, Copy)]
enum Hit {
    Bytes,
    Header,
    Ratio,
}

#[derive(Default)]
struct Meter {
    raw: Cell<u64>,
    out: Cell<u64>,
    /// Bytes written into files: more than `out` for GNU sparse entries, whose holes the tar reader
    /// fills with zeros that never passed through the stream.
    written: Cell<u64>,
    /// `Some(out at the start)` while the tar reader is looking for the next entry's header.
    header_from: Cell<Option<u64>>,
    hit: Cell<Option<Hit>>,
}

impl Meter {
    /// Accounts for `n` bytes written into a file, under the same size and ratio limits as the stream.
    fn wrote(&self, n: usize, limits: &Limits) -> Result<()> {
        let w = self.written.get() + n as u64;
        self.written.set(w);
        if w > limits.max_bytes {
            return Err(Error::TooLarge {
                limit: limits.max_bytes,
            });
        }
        if w > limits.ratio_after && w / limits.max_ratio.max(1) > self.raw.get() {
            return Err(Error::Ratio {
                limit: limits.max_ratio,
            });
        }
        Ok(())
    }

    /// The error behind an `io::Error` that came out of the readers: a crossed limit, or a bad stream.
    fn classify(&self, limits: &Limits, e: io::Error) -> Error {
        match self.hit.take() {
            Some(Hit::Bytes) => Error::TooLarge {
                limit: limits.max_bytes,
            },
            Some(Hit::Header) => Error::HeaderTooLarge {
                limit: limits.max_header_bytes,
            },
            Some(Hit::Ratio) => Error::Ratio {
                limit: limits.max_ratio,
            },
            None => Error::Tar(e),
        }
    }
}

/// The blob as read: hashed for its digest, counted for the ratio.
struct Raw<R> {
    inner: R,
    hasher: Sha256,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Raw<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.meter.raw.set(self.meter.raw.get() + n as u64);
        Ok(n)
    }
}

enum Decoded<R: Read> {
    Gzip(flate2::read::MultiGzDecoder<BufReader<Raw<R>>>),
    Plain(BufReader<Raw<R>>),
}

impl<R: Read> Decoded<R> {
    fn into_raw(self) -> BufReader<Raw<R>> {
        match self {
            Decoded::Gzip(d) => d.into_inner(),
            Decoded::Plain(r) => r,
        }
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Gzip(d) => d.read(buf),
            Decoded::Plain(r) => r.read(buf),
        }
    }
}

/// The uncompressed tar: hashed for the diff_id, and where every limit but the entry count bites.
struct Limited<R: Read> {
    inner: Decoded<R>,
    hasher: Sha256,
    meter: Rc<Meter>,
    limits: Limits,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        let m = &self.meter;
        let out = m.out.get() + n as u64;
        m.out.set(out);
        let hit = if out > self.limits.max_bytes {
            Some(Hit::Bytes)
        } else if m
            .header_from
            .get()
            .is_some_and(|from| out - from > self.limits.max_header_bytes)
        {
            Some(Hit::Header)
        } else if out > self.limits.ratio_after && out / self.limits.max_ratio.max(1) > m.raw.get()
        {
            Some(Hit::Ratio)
        } else {
            None
        };
        if let Some(h) = hit {
            m.hit.set(Some(h));
            return Err(io::Error::other("layer limit crossed"));
        }
        Ok(n)
    }
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

/// Lexically cleans a tar name into plain components: `/` and `.` go, `..` pops. `None` when `..`
/// would climb above the root. Leading `/` is dropped, so absolute names land inside the root.
pub(crate) fn clean(name: &[u8]) -> Option<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Some(out)
}

/// One application's fixed context: the root every lookup starts from.
struct Ctx<'a> {
    root: BorrowedFd<'a>,
    resolver: Resolver,
    mode: Content,
}

fn io_at<'a>(entry: &'a str, op: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error + 'a {
    move |e| Error::Io {
        entry: entry.to_string(),
        op,
        source: e.into(),
    }
}

/// chown fails with EPERM/EINVAL when not root or for ids unmapped in a user namespace: the layer is
/// still usable (kept as ours), as rootless unpackers do.
fn chown_tolerant(r: rustix::io::Result<()>) -> rustix::io::Result<()> {
    match r {
        Err(rustix::io::Errno::PERM | rustix::io::Errno::INVAL) => Ok(()),
        r => r,
    }
}

impl Ctx<'_> {
    fn open(&self, path: &[OsString], flags: OFlags) -> io::Result<OwnedFd> {
        beneath::open(self.resolver, self.root, path, flags)
    }

    /// The directory `path` beneath the root, created (0755, like Docker) where missing.
    fn dir(&self, path: &[OsString], entry: &str) -> Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let err = |source| Error::Io {
            entry: entry.to_string(),
            op: "open parent directory",
            source,
        };
        match self.open(path, flags) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        // Whether a prefix opens is monotone in its length, so the deepest existing one is found by
        // bisection: a deep new path costs O(log n) in-root lookups, not one per component.
        let (mut lo, mut hi) = (0, path.len());
        let mut fd = self.open(&[], flags).map_err(err)?;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match self.open(&path[..mid], flags) {
                Ok(f) => (lo, fd) = (mid, f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => hi = mid,
                Err(e) => return Err(err(e)),
            }
        }
        // Below the deepest existing directory everything is made here, so plain names opened with
        // NOFOLLOW are exact; a name that already exists there (a dangling symlink) fails instead.
        for c in &path[lo..] {
            match mkdirat(&fd, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(err(e.into())),
            }
            fd = openat(
                &fd,
                c.as_os_str(),
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                // A dangling symlink: its target is missing inside the root.
                rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                    err(io::Error::from(rustix::io::Errno::NOENT))
                }
                e => err(e.into()),
            })?;
        }
        Ok(fd)
    }

    fn entry<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        meter: &Meter,
        limits: &Limits,
    ) -> Result<()> {
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        if raw_name.len() > PATH_MAX {
            return Err(Error::NameTooLong {
                len: raw_name.len(),
            });
        }
        let path = clean(&raw_name).ok_or_else(|| Error::Escapes {
            entry: shown.clone(),
        })?;
        // The root itself (`./`): its mode and owner belong to whoever made it, not to the layer.
        let Some((name, parent)) = path.split_last() else {
            return Ok(());
        };
        let kind = entry.header().entry_type();
        if self.mode == Content::Layer {
            if let Some(hidden) = name.as_bytes().strip_prefix(b".wh.") {
                return self.whiteout(parent, hidden, &shown);
            }
        }
        let dir = self.dir(parent, &shown)?;
        let name = name.as_os_str();
        let meta = Meta::of(entry.header());
        match kind {
            tar::EntryType::Directory => {
                let exists = statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
                if !exists {
                    remove(&dir, name).map_err(|source| Error::Io {
                        entry: shown.clone(),
                        op: "replace",
                        source,
                    })?;
                    mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                        .map_err(io_at(&shown, "mkdir"))?;
                }
                let fd = openat(
                    &dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io_at(&shown, "open directory"))?;
                meta.apply_fd(&fd, &shown, false)?;
                self.xattrs(entry, &fd, &shown)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                remove(&dir, name).map_err(|source| Error::Io {
                    entry: shown.clone(),
                    op: "replace",
                    source,
                })?;
                // EXCL|NOFOLLOW: the name was just cleared, so anything there now is not ours to write through.
                let fd = openat(
                    &dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_at(&shown, "create"))?;
                let mut file = std::fs::File::from(fd);
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = entry
                        .read(&mut buf)
                        .map_err(|e| meter.classify(limits, e))?;
                    if n == 0 {
                        break;
                    }
                    meter.wrote(n, limits)?;
                    file.write_all(&buf[..n]).map_err(|source| Error::Io {
                        entry: shown.clone(),
                        op: "write",
                        source,
                    })?;
                }
                meta.apply_fd(&file, &shown, true)?;
                self.xattrs(entry, &file, &shown)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.is_empty() {
                    return Err(Error::Tar(io::Error::other(format!(
                        "symlink {shown:?} has no target"
                    ))));
                }
                remove(&dir, name).map_err(|source| Error::Io {
                    entry: shown.clone(),
                    op: "replace",
                    source,
                })?;
                symlinkat(OsStr::from_bytes(&target), &dir, name)
                    .map_err(io_at(&shown, "symlink"))?;
                meta.apply_at(&dir, name, &shown)?;
            }
            tar::EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let escapes = || Error::LinkEscapes {
                    entry: shown.clone(),
                    target: String::from_utf8_lossy(&raw_target).into_owned(),
                };
                if raw_target.len() > PATH_MAX {
                    return Err(Error::NameTooLong {
                        len: raw_target.len(),
                    });
                }
                let target = clean(&raw_target).ok_or_else(escapes)?;
                let Some((tname, tparent)) = target.split_last() else {
                    return Err(escapes());
                };
                if target == path {
                    return Ok(());
                }
                let tdir = self
                    .open(tparent, OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(|source| Error::Io {
                        entry: shown.clone(),
                        op: "open hardlink target directory",
                        source,
                    })?;
                remove(&dir, name).map_err(|source| Error::Io {
                    entry: shown.clone(),
                    op: "replace",
                    source,
                })?;
                // No AT_SYMLINK_FOLLOW: a target that is a symlink is linked as the symlink itself.
                linkat(&tdir, tname.as_os_str(), &dir, name, AtFlags::empty())
                    .map_err(io_at(&shown, "hardlink"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
                if self.mode == Content::Layer =>
            {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                remove(&dir, name).map_err(|source| Error::Io {
                    entry: shown.clone(),
                    op: "replace",
                    source,
                })?;
                mknodat(
                    &dir,
                    name,
                    ft,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(io_at(&shown, "mknod"))?;
                meta.apply_at(&dir, name, &shown)?;
            }
            other => {
                tracing::debug!(entry = %shown, kind = ?other, "skipped a tar entry of an unsupported kind");
            }
        }
        Ok(())
    }

    fn whiteout(&self, parent: &[OsString], hidden: &[u8], shown: &str) -> Result<()> {
        let dir = self.dir(parent, shown)?;
        if hidden == b".wh..opq" {
            return fsetxattr(&dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(io_at(shown, "mark opaque"));
        }
        // `.wh..wh.*` other than `.opq` is aufs bookkeeping (hardlink dirs), meaningless to overlayfs.
        if hidden.starts_with(b".wh.") {
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(Error::BadWhiteout {
                entry: shown.to_string(),
            });
        }
        let hidden = OsStr::from_bytes(hidden);
        remove(&dir, hidden).map_err(|source| Error::Io {
            entry: shown.to_string(),
            op: "remove hidden file",
            source,
        })?;
        mknodat(
            &dir,
            hidden,
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(io_at(shown, "create whiteout"))
    }

    /// PAX `SCHILY.xattr.*` records: only `user.*` and file capabilities. `trusted.overlay.*` in
    /// particular would let a layer steer overlayfs (redirects, metacopy) and is never copied.
    fn xattrs<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        fd: impl AsFd,
        shown: &str,
    ) -> Result<()> {
        if self.mode != Content::Layer {
            return Ok(());
        }
        let Some(exts) = entry.pax_extensions().map_err(Error::Tar)? else {
            return Ok(());
        };
        for ext in exts {
            let ext = ext.map_err(Error::Tar)?;
            let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            if !(key.starts_with(b"user.") || key == b"security.capability") {
                continue;
            }
            match fsetxattr(
                &fd,
                OsStr::from_bytes(key),
                ext.value_bytes(),
                XattrFlags::empty(),
            ) {
                Ok(()) | Err(rustix::io::Errno::NOTSUP) => {}
                Err(e) => return Err(io_at(shown, "set xattr")(e)),
            }
        }
        Ok(())
    }
}

/// Owner, mode and mtime from a tar header.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
}

impl Meta {
    /// Unreadable or empty numeric fields count as 0 (0644 for the mode), as Go's archive/tar, which
    /// wrote most layers, reads them: they cannot widen what the entry may do.
    fn of(h: &tar::Header) -> Meta {
        let id = |v: io::Result<u64>| v.ok().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        Meta {
            uid: id(h.uid()),
            gid: id(h.gid()),
            mode: h.mode().unwrap_or(0o644) & 0o7777,
            mtime: h
                .mtime()
                .ok()
                .and_then(|t| i64::try_from(t).ok())
                .unwrap_or(0),
        }
    }

    fn times(&self) -> Timestamps {
        let t = rustix::fs::Timespec {
            tv_sec: self.mtime,
            tv_nsec: 0,
        };
        Timestamps {
            last_access: t,
            last_modification: t,
        }
    }

    /// On an open file or directory. Mode after owner: chown clears setuid/setgid bits.
    fn apply_fd(&self, fd: impl AsFd, shown: &str, times: bool) -> Result<()> {
        chown_tolerant(fchown(
            &fd,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
        ))
        .map_err(io_at(shown, "chown"))?;
        fchmod(&fd, Mode::from_raw_mode(self.mode)).map_err(io_at(shown, "chmod"))?;
        // A directory's mtime changes again with every later entry in it: not worth setting here.
        if times {
            futimens(&fd, &self.times()).map_err(io_at(shown, "set times"))?;
        }
        Ok(())
    }

    /// On a name that cannot be opened for writing (symlinks, device nodes): never followed.
    fn apply_at(&self, dir: &OwnedFd, name: &OsStr, shown: &str) -> Result<()> {
        chown_tolerant(rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        ))
        .map_err(io_at(shown, "chown"))?;
        let st = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io_at(shown, "stat"))?;
        // Linux has no lchmod, and a symlink's mode means nothing; fchmodat would follow it.
        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(self.mode), AtFlags::empty())
                .map_err(io_at(shown, "chmod"))?;
        }
        utimensat(dir, name, &self.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_at(shown, "set times"))?;
        Ok(())
    }
}

/// Removes `name` from `dir` (a whole tree when it is a directory) without following any symlink;
/// nothing there is fine. Iterative, since a layer controls how deep its trees go.
fn remove(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let st = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Ok(unlinkat(dir, name, AtFlags::empty())?);
    }
    let open_dir = |at: BorrowedFd<'_>, n: &OsStr| {
        openat(
            at,
            n,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(rustix::fs::Dir::new)
    };
    // Each frame: an open directory and its name in the frame below (the first one's parent is `dir`).
    let mut stack: Vec<(rustix::fs::Dir, OsString)> =
        vec![(open_dir(dir.as_fd(), name)?, name.to_os_string())];
    while let Some((d, _)) = stack.last_mut() {
        match d.next() {
            Some(e) => {
                let e = e?;
                let n = OsStr::from_bytes(e.file_name().to_bytes());
                if n == "." || n == ".." {
                    continue;
                }
                let at = d.fd()?;
                if e.file_type() == FileType::Directory {
                    let child = open_dir(at, n)?;
                    stack.push((child, n.to_os_string()));
                } else {
                    match unlinkat(at, n, AtFlags::empty()) {
                        // `d_type` may be unknown on some filesystems: a directory then refuses unlink.
                        Err(rustix::io::Errno::ISDIR) => {
                            let child = open_dir(at, n)?;
                            stack.push((child, n.to_os_string()));
                        }
                        r => r?,
                    }
                }
            }
            None => {
                let (mut d, n) = stack.pop().expect("the loop holds a frame");
                let parent = match stack.last() {
                    Some((p, _)) => p.fd()?,
                    None => dir.as_fd(),
                };
                match unlinkat(parent, n.as_os_str(), AtFlags::REMOVEDIR) {
                    Ok(()) => {}
                    // Unlinking while reading may make getdents skip names: read again.
                    Err(rustix::io::Errno::NOTEMPTY) => {
                        d.rewind();
                        stack.push((d, n));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn clean_drops_roots_and_dots_and_refuses_climbing() {
        assert_eq!(clean(b"/etc/passwd"), Some(names(&["etc", "passwd"])));
        assert_eq!(clean(b"./a//b/./c/"), Some(names(&["a", "b", "c"])));
        assert_eq!(clean(b"a/../b"), Some(names(&["b"])));
        assert_eq!(clean(b"./"), Some(vec![]));
        assert_eq!(clean(b"../x"), None);
        assert_eq!(clean(b"a/../../x"), None);
        assert_eq!(clean(b"/../x"), None);
    }

    proptest! {
        /// Whatever the name, a cleaned path is plain names only: nothing the kernel could walk upward.
        #[test]
        fn clean_yields_only_plain_names(name in proptest::collection::vec(
            prop_oneof![Just(b'/'), Just(b'.'), Just(b'a'), Just(0xffu8)], 0..24)) {
            if let Some(parts) = clean(&name) {
                for p in parts {
                    prop_assert!(!p.is_empty() && p != "." && p != "..");
                    prop_assert!(!p.as_bytes().contains(&b'/'));
                }
            }
        }
    }

    #[test]
    fn remove_takes_deep_trees_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let mut p = t.path().join("root/tree");
        for i in 0..300 {
            p = p.join(format!("d{i}"));
        }
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("root/tree/link")).unwrap();
        let dir = openat(
            rustix::fs::CWD,
            t.path().join("root"),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        remove(&dir, OsStr::new("tree")).unwrap();
        assert!(!t.path().join("root/tree").exists());
        assert!(outside.join("keep").exists());
        remove(&dir, OsStr::new("tree")).unwrap();
    }
}
