//! Writes one tar entry beneath the layer root: names are cleaned lexically, every lookup resolves beneath the
//! root, whiteouts become overlayfs markers, and ownership, modes, times and xattrs are applied without
//! following links.

use super::error::{Error, Result, PATH_MAX};
use super::limits::Limits;
use super::stream::Meter;
use crate::images::beneath::{self, Resolver};
use rustix::fs::{
    fchmod, fchown, fsetxattr, futimens, linkat, mkdirat, mknodat, openat, statat, symlinkat,
    unlinkat, utimensat, AtFlags, FileType, Gid, Mode, OFlags, Timestamps, Uid, XattrFlags,
};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// What the tar holds: an image layer (whiteouts, devices) or a plain archive of files (an image
/// tarball being imported, where `.wh.` is just a name and device nodes have no business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Content {
    /// An image layer.
    Layer,
    /// A plain archive.
    Archive,
}

/// Lexically cleans a tar name into plain components: `/` and `.` go, `..` pops. `None` when `..`
/// would climb above the root. Leading `/` is dropped, so absolute names land inside the root.
pub(super) fn clean(name: &[u8]) -> Option<Vec<OsString>> {
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
pub(super) struct Ctx<'a> {
    pub(super) root: BorrowedFd<'a>,
    pub(super) resolver: Resolver,
    pub(super) mode: Content,
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

    pub(super) fn entry<R: Read>(
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
pub(super) fn remove(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
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
