//! Imports of unpacked archives: an OCI image layout (`index.json` + `blobs/`) or a `docker save`
//! tree (`manifest.json` with `RepoTags`). Blobs are verified and copied into the store.

use super::beneath::{self, Resolver};
use super::{digest_hex, normalise, Error, ImageRecord, ImageStore, LayerRef, Result};
use rustix::fs::{FileType, Mode, OFlags};
use serde_json::Value;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Largest manifest, index or config read into memory; real ones are kilobytes.
const MAX_JSON: u64 = 16 << 20;

/// Deepest chain of nested image indexes followed.
const MAX_NESTING: usize = 4;

/// The tree being imported: every file is opened beneath its root, so a symlink in an uploaded
/// archive (`manifest.json -> /etc/shadow`) resolves inside it, and only regular files are read.
struct Tree {
    root: OwnedFd,
}

impl Tree {
    fn open_dir(dir: &Path) -> Result<Tree> {
        let root = rustix::fs::openat(
            rustix::fs::CWD,
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Io {
            path: dir.display().to_string(),
            source: e.into(),
        })?;
        Ok(Tree { root })
    }

    fn exists(&self, name: &str) -> bool {
        self.open(&[OsString::from(name)], name).is_ok()
    }

    fn open(&self, path: &[OsString], shown: &str) -> Result<fs::File> {
        let fd = beneath::open(Resolver::Kernel, self.root.as_fd(), path, OFlags::RDONLY).map_err(
            |source| Error::Io {
                path: shown.to_string(),
                source,
            },
        )?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::Io {
            path: shown.to_string(),
            source: e.into(),
        })?;
        // A device node (`/dev/zero`) or a FIFO would never end; a directory is not a blob.
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::Invalid(format!("{shown} is not a regular file")));
        }
        Ok(fs::File::from(fd))
    }

    fn read_json(&self, path: &[OsString], shown: &str) -> Result<Value> {
        let mut b = Vec::new();
        self.open(path, shown)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut b)
            .map_err(|source| Error::Io {
                path: shown.to_string(),
                source,
            })?;
        if b.len() as u64 > MAX_JSON {
            return Err(Error::Invalid(format!(
                "{shown} is larger than {MAX_JSON} bytes"
            )));
        }
        serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("{shown}: {e}")))
    }

    fn put_blob(
        &self,
        store: &ImageStore,
        path: &[OsString],
        shown: &str,
        expected: Option<&str>,
    ) -> Result<String> {
        if let Some(e) = expected {
            if store.blob_path(e)?.exists() {
                return Ok(e.to_string());
            }
        }
        store.put_blob_from(self.open(path, shown)?, shown, expected)
    }
}

/// A `docker save` `Config` or `Layers` entry as path components: relative, with no `..`, no empty
/// name and no NUL. Anything else is refused before it reaches the filesystem.
pub(super) fn archive_name(name: &str) -> Result<Vec<OsString>> {
    let bad = || {
        Error::Invalid(format!(
            "manifest.json names {name:?}: want a relative path inside the archive"
        ))
    };
    if name.is_empty() || name.starts_with('/') || name.contains('\0') {
        return Err(bad());
    }
    let mut out = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(bad()),
            c => out.push(OsString::from(c)),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn blob_in(digest: &str) -> Result<Vec<OsString>> {
    Ok(vec![
        "blobs".into(),
        "sha256".into(),
        digest_hex(digest)?.into(),
    ])
}

/// Imports every image of the tree at `dir`; layers are unpacked eagerly so the first start is fast.
pub(super) fn import_dir(store: &ImageStore, dir: &Path) -> Result<Vec<ImageRecord>> {
    let tree = Tree::open_dir(dir)?;
    let recs = if tree.exists("manifest.json") {
        import_docker(store, &tree)?
    } else if tree.exists("index.json") {
        import_oci(store, &tree)?
    } else {
        return Err(Error::Invalid(
            "neither index.json nor manifest.json found".into(),
        ));
    };
    for r in &recs {
        store.layer_dirs(r)?;
        store.tag(r.clone())?;
    }
    Ok(recs)
}

/// The config's `rootfs.diff_ids`, each checked to be a digest that may name a directory.
pub(super) fn diff_ids(config: &Value) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for d in config["rootfs"]["diff_ids"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let d = d
            .as_str()
            .ok_or_else(|| Error::Invalid(format!("diff_id {d} is not a string")))?;
        digest_hex(d)?;
        out.push(d.to_string());
    }
    Ok(out)
}

fn import_docker(store: &ImageStore, tree: &Tree) -> Result<Vec<ImageRecord>> {
    let manifest = tree.read_json(&["manifest.json".into()], "manifest.json")?;
    let mut out = Vec::new();
    for m in manifest
        .as_array()
        .ok_or_else(|| Error::Invalid("manifest.json is not a list".into()))?
    {
        let cfg_name = m["Config"]
            .as_str()
            .ok_or_else(|| Error::Invalid("manifest.json: no Config".into()))?;
        let cfg_path = archive_name(cfg_name)?;
        let config = tree.read_json(&cfg_path, cfg_name)?;
        let config_digest = tree.put_blob(store, &cfg_path, cfg_name, None)?;
        let ids = diff_ids(&config)?;
        let mut files = Vec::new();
        for l in m["Layers"].as_array().into_iter().flatten() {
            let name = l.as_str().ok_or_else(|| {
                Error::Invalid(format!("manifest.json: layer {l} is not a string"))
            })?;
            files.push((name, archive_name(name)?));
        }
        if files.len() != ids.len() {
            return Err(Error::Invalid(format!(
                "{} layers but {} diff_ids",
                files.len(),
                ids.len()
            )));
        }
        let mut layers = Vec::new();
        for ((name, path), id) in files.iter().zip(ids) {
            let digest = tree.put_blob(store, path, name, None)?;
            layers.push(LayerRef {
                digest,
                diff_id: id,
            });
        }
        let tags: Vec<String> = m["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(normalise))
            .collect();
        let names = if tags.is_empty() {
            vec![config_digest.clone()]
        } else {
            tags
        };
        for name in names {
            out.push(ImageRecord {
                name,
                manifest_digest: None,
                config_digest: config_digest.clone(),
                layers: layers.clone(),
            });
        }
    }
    Ok(out)
}

fn import_oci(store: &ImageStore, tree: &Tree) -> Result<Vec<ImageRecord>> {
    let index = tree.read_json(&["index.json".into()], "index.json")?;
    let mut out = Vec::new();
    for desc in index["manifests"].as_array().into_iter().flatten() {
        let ann = &desc["annotations"];
        let name = ann["io.containerd.image.name"]
            .as_str()
            .or_else(|| {
                ann["org.opencontainers.image.ref.name"]
                    .as_str()
                    .filter(|n| n.contains('/') || n.contains(':'))
            })
            .map(normalise);
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| Error::Invalid("descriptor without digest".into()))?;
        out.extend(import_manifest(store, tree, digest, name, 0)?);
    }
    Ok(out)
}

fn import_manifest(
    store: &ImageStore,
    tree: &Tree,
    digest: &str,
    name: Option<String>,
    depth: usize,
) -> Result<Vec<ImageRecord>> {
    if depth > MAX_NESTING {
        return Err(Error::Invalid(format!(
            "image indexes nested deeper than {MAX_NESTING}"
        )));
    }
    let path = blob_in(digest)?;
    // Stored (and so verified) before it is believed.
    tree.put_blob(store, &path, digest, Some(digest))?;
    let m = tree.read_json(&path, digest)?;
    // A nested index (multi-platform): take the linux/amd64 entry, or the first one.
    if m.get("manifests").is_some() {
        let list = m["manifests"].as_array().cloned().unwrap_or_default();
        let pick = list
            .iter()
            .find(|d| d["platform"]["os"] == "linux" && d["platform"]["architecture"] == "amd64")
            .or_else(|| list.first())
            .ok_or_else(|| Error::Invalid("empty image index".into()))?;
        let d = pick["digest"]
            .as_str()
            .ok_or_else(|| Error::Invalid("descriptor without digest".into()))?;
        return import_manifest(store, tree, d, name, depth + 1);
    }
    let cfg_digest = m["config"]["digest"]
        .as_str()
        .ok_or_else(|| Error::Invalid("manifest without config".into()))?;
    let cfg_path = blob_in(cfg_digest)?;
    tree.put_blob(store, &cfg_path, cfg_digest, Some(cfg_digest))?;
    let config = tree.read_json(&cfg_path, cfg_digest)?;
    let ids = diff_ids(&config)?;
    let descs: Vec<&Value> = m["layers"].as_array().into_iter().flatten().collect();
    if descs.len() != ids.len() {
        return Err(Error::Invalid(format!(
            "{} layers but {} diff_ids",
            descs.len(),
            ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (d, id) in descs.iter().zip(ids) {
        let ld = d["digest"]
            .as_str()
            .ok_or_else(|| Error::Invalid("layer without digest".into()))?;
        tree.put_blob(store, &blob_in(ld)?, ld, Some(ld))?;
        layers.push(LayerRef {
            digest: ld.to_string(),
            diff_id: id,
        });
    }
    Ok(vec![ImageRecord {
        name: name.unwrap_or_else(|| digest.to_string()),
        manifest_digest: Some(digest.to_string()),
        config_digest: cfg_digest.to_string(),
        layers,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_are_relative_and_never_climb() {
        assert_eq!(
            archive_name("abc/layer.tar").unwrap(),
            vec![OsString::from("abc"), OsString::from("layer.tar")]
        );
        assert_eq!(
            archive_name("./x.json").unwrap(),
            vec![OsString::from("x.json")]
        );
        for bad in ["", "/etc/shadow", "../x", "a/../../x", "a/..", ".", "a\0b"] {
            assert!(
                matches!(archive_name(bad), Err(Error::Invalid(m)) if m.contains("manifest.json names")),
                "{bad:?}"
            );
        }
    }
}
