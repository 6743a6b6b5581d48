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
            let dir = dest.join(rel.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&dir)?;
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
