//! Path resolution that cannot leave a root directory: `openat2(RESOLVE_IN_ROOT)` where the kernel has
//! it, else a component-by-component walk that never lets the kernel follow a symlink or `..` itself.

use rustix::fs::{
    openat, openat2, readlinkat, statat, AtFlags, FileType, Mode, OFlags, ResolveFlags,
};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once openat2 answered ENOSYS, so later opens go straight to the walk.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Linux's own limit on symlinks followed in one lookup (`MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// How a lookup resolves: through the kernel when it can, or always by walking (tests of the fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// openat2 with RESOLVE_IN_ROOT, walking only when the kernel lacks openat2.
    Kernel,
    /// The userspace walk, as on kernels before 5.6.
    Walk,
}

/// Opens `path` (plain components: no `/`, `.` or `..`) as if `root` were `/`: symlinks, absolute or
/// relative, and `..` met on the way stay beneath `root`. A final symlink is followed too, unless
/// `flags` holds `O_NOFOLLOW`. Magic links (`/proc/self/fd/N`) are never followed.
///
/// # Errors
/// The OS error of the lookup; `ELOOP` after [`MAX_LINKS`] symlinks.
pub(crate) fn open(
    resolver: Resolver,
    root: BorrowedFd<'_>,
    path: &[OsString],
    flags: OFlags,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC;
    if resolver == Resolver::Kernel && !NO_OPENAT2.load(Ordering::Relaxed) {
        let joined = join(path);
        // EAGAIN: a concurrent rename raced the lookup, which RESOLVE_IN_ROOT refuses to guess about.
        for _ in 0..16 {
            match openat2(
                root,
                joined.as_os_str(),
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(rustix::io::Errno::AGAIN) => continue,
                Err(rustix::io::Errno::NOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                r => return r.map_err(io::Error::from),
            }
        }
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            return Err(io::Error::from(rustix::io::Errno::AGAIN));
        }
    }
    walk(root, path, flags)
}

fn join(path: &[OsString]) -> OsString {
    if path.is_empty() {
        return OsString::from(".");
    }
    let mut out = Vec::new();
    for (i, c) in path.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c.as_bytes());
    }
    OsString::from_vec(out)
}

/// The walk: every component is opened `O_PATH|O_NOFOLLOW` relative to the directory before it, a
/// symlink's text is read and spliced into the queue, and `..` pops a stack of directory fds that
/// never drops below `root`. The kernel itself thus never resolves anything but a single plain name.
fn walk(root: BorrowedFd<'_>, path: &[OsString], flags: OFlags) -> io::Result<OwnedFd> {
    let follow_final = !flags.contains(OFlags::NOFOLLOW);
    let mut stack: Vec<OwnedFd> = vec![openat(
        root,
        ".",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?];
    let mut queue: VecDeque<OsString> = path.iter().cloned().collect();
    let mut links = 0;
    while let Some(c) = queue.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        if c == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("the stack always holds root").as_fd();
        let last = queue.iter().all(|q| q.is_empty() || q == ".");
        let st = statat(cur, c.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::Symlink && (!last || follow_final) {
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from(rustix::io::Errno::LOOP));
            }
            let target = readlinkat(cur, c.as_os_str(), Vec::new())?;
            let target = target.as_bytes();
            if target.first() == Some(&b'/') {
                stack.truncate(1);
            }
            for part in target.split(|b| *b == b'/').rev() {
                queue.push_front(OsStr::from_bytes(part).to_os_string());
            }
            continue;
        }
        if last {
            // NOFOLLOW: if the name was swapped for a symlink since the stat, fail rather than follow it.
            return Ok(openat(
                cur,
                c.as_os_str(),
                flags | OFlags::NOFOLLOW,
                Mode::empty(),
            )?);
        }
        if ft != FileType::Directory {
            return Err(io::Error::from(rustix::io::Errno::NOTDIR));
        }
        let next = openat(
            cur,
            c.as_os_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        stack.push(next);
    }
    let cur = stack.last().expect("the stack always holds root").as_fd();
    Ok(openat(cur, ".", flags, Mode::empty())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn comps(s: &str) -> Vec<OsString> {
        s.split('/').map(OsString::from).collect()
    }

    fn root_fd(p: &std::path::Path) -> OwnedFd {
        openat(
            rustix::fs::CWD,
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    /// Both resolvers keep absolute links, relative `..` chains and `..` components inside the root.
    #[test]
    fn links_and_dotdot_stay_beneath_root() {
        for resolver in [Resolver::Kernel, Resolver::Walk] {
            let t = tempfile::tempdir().unwrap();
            let root = t.path().join("root");
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::write(root.join("etc/marker"), "inside").unwrap();
            std::fs::write(t.path().join("marker"), "outside").unwrap();
            symlink("/", root.join("abs")).unwrap();
            symlink("../../../..", root.join("up")).unwrap();
            symlink("/etc/marker", root.join("m")).unwrap();
            let fd = root_fd(&root);
            for p in ["abs/etc/marker", "up/etc/marker", "m", "../etc/marker"] {
                let f = open(resolver, fd.as_fd(), &comps(p), OFlags::RDONLY).unwrap();
                let s = std::io::read_to_string(std::fs::File::from(f)).unwrap();
                assert_eq!(s, "inside", "{resolver:?} {p}");
            }
            // The outside marker is one `..` above root: unreachable by any spelling.
            for p in ["../marker", "up/marker", "abs/../marker"] {
                let e = open(resolver, fd.as_fd(), &comps(p), OFlags::RDONLY).unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::NotFound, "{resolver:?} {p}");
            }
        }
    }

    #[test]
    fn symlink_loops_end_in_eloop() {
        for resolver in [Resolver::Kernel, Resolver::Walk] {
            let t = tempfile::tempdir().unwrap();
            symlink("b", t.path().join("a")).unwrap();
            symlink("a", t.path().join("b")).unwrap();
            let fd = root_fd(t.path());
            let e = open(resolver, fd.as_fd(), &comps("a/x"), OFlags::RDONLY).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{resolver:?}");
        }
    }

    #[test]
    fn nofollow_opens_a_final_symlink_itself_or_refuses() {
        for resolver in [Resolver::Kernel, Resolver::Walk] {
            let t = tempfile::tempdir().unwrap();
            symlink("/etc/passwd", t.path().join("l")).unwrap();
            let fd = root_fd(t.path());
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW;
            let e = open(resolver, fd.as_fd(), &comps("l"), flags).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{resolver:?}");
        }
    }
}
