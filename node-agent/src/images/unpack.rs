//! Unpacks a layer tar (plain or gzip) into a directory usable as an overlayfs lower layer:
//! `.wh.NAME` whiteouts become 0:0 character devices, `.wh..wh..opq` marks the directory opaque.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// Unpacks `reader` (a layer, gzip-compressed or not) into `dest`, which must exist.
///
/// # Errors
/// I/O errors while reading the tar or writing files.
pub fn unpack_layer(reader: impl Read, dest: &Path) -> std::io::Result<()> {
    let mut buf = BufReader::new(reader);
    let gz = {
        let head = buf.fill_buf()?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    let inner: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(buf))
    } else {
        Box::new(buf)
    };
    let mut ar = tar::Archive::new(inner);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(true);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(rel) = clean(&path) else { continue };
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let dir = dir_inside(dest, rel.parent().unwrap_or(Path::new("")))?;
            if hidden == ".wh..opq" {
                crate::sys::lsetxattr(&dir, "trusted.overlay.opaque", b"y")?;
            } else {
                let target = dir.join(hidden);
                let _ = fs::remove_file(&target);
                let _ = fs::remove_dir_all(&target);
                nix::sys::stat::mknod(
                    &target,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    nix::sys::stat::makedev(0, 0),
                )
                .map_err(std::io::Error::from)?;
            }
            continue;
        }
        entry.unpack_in(dest)?;
    }
    Ok(())
}

/// `dest/rel`, creating missing directories, refusing any component that is not a real directory.
/// A layer's earlier symlink (`a -> /etc`) must not carry a whiteout (`a/.wh.passwd`) out of `dest`:
/// the whiteout's unlink and mknod would then act on the host.
///
/// # Errors
/// `InvalidData` when a component is a symlink or a file; I/O errors while creating directories.
fn dir_inside(dest: &Path, rel: &Path) -> std::io::Result<PathBuf> {
    let mut dir = dest.to_path_buf();
    for c in rel.components() {
        dir.push(c);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "whiteout under {}, which is not a directory inside the layer",
                        rel.display()
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir(&dir)?,
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

/// The path without leading `/` or `./`; `None` for the root itself or paths escaping with `..`.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return None,
            _ => {}
        }
    }
    if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match link {
                Some(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, path, target).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(0);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// Fuzz finding (target `layer`): a symlink followed by a whiteout beneath it made the whiteout
    /// act outside the rootfs (`create_dir_all`, unlink and mknod through the link).
    #[test]
    fn whiteouts_never_follow_a_layers_symlinks_out_of_the_rootfs() {
        let work = tempfile::tempdir().unwrap();
        let rootfs = work.path().join("rootfs");
        let outside = work.path().join("outside");
        fs::create_dir(&rootfs).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        let tar = layer(&[
            ("a", Some("../outside")),
            ("a/.wh.keep", None),
            ("a/new/.wh.x", None),
        ]);
        let err = unpack_layer(tar.as_slice(), &rootfs).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err:?}");
        assert!(
            outside.join("keep").exists(),
            "the whiteout removed a file outside the rootfs"
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
    }
}
