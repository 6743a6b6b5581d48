//! OCI images on this node: a content-addressed blob store under `{data-dir}/images`, imports of OCI
//! layouts and `docker save` tars, registry pulls, and layers unpacked once into `{data-dir}/layers/{diffid}`.

mod import;
mod pull;
pub mod reference;
pub mod unpack;

pub use reference::{normalise, Reference};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Result type of the image store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file of the store or of an import could not be read or written.
    #[error("image store i/o on {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The imported archive or pulled image is not a valid image.
    #[error("invalid image: {0}")]
    Invalid(String),
    /// A blob's content does not match its digest.
    #[error("digest mismatch for {0}")]
    DigestMismatch(String),
    /// The image is not present and the pull policy forbids pulling it.
    #[error("image {0} not present with pull policy Never")]
    NotPresent(String),
    /// The registry pull failed (retryable).
    #[error("pull of {image} failed: {message}")]
    PullFailed {
        /// The image reference.
        image: String,
        /// The registry client's error.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One layer of an image: the blob that carries it and the digest of its uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the blob as stored (`sha256:…`, maybe gzip).
    pub digest: String,
    /// Digest of the uncompressed tar (`sha256:…`): names the unpacked directory.
    pub diff_id: String,
}

/// An image known to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Normalised reference (`docker.io/berth/busybox:latest`).
    pub name: String,
    /// Manifest digest, when the image came with a manifest.
    pub manifest_digest: Option<String>,
    /// Config blob digest: the image ID.
    pub config_digest: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerRef>,
}

/// The runtime-relevant part of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` as `K=V`.
    pub env: Vec<String>,
    /// `WorkingDir`, empty when unset.
    pub working_dir: String,
    /// `User`, empty when unset.
    pub user: String,
}

/// When to pull an image, as Kubernetes' `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Never pull; fail when absent.
    Never,
    /// Pull only when absent.
    IfNotPresent,
    /// Pull every time a container starts.
    Always,
}

impl PullPolicy {
    /// The policy named in a container spec, defaulted as Kubernetes does (`Always` for `:latest`).
    pub fn from_spec(policy: Option<&str>, image: &str) -> PullPolicy {
        match policy {
            Some("Never") => PullPolicy::Never,
            Some("Always") => PullPolicy::Always,
            Some("IfNotPresent") => PullPolicy::IfNotPresent,
            _ => match Reference::parse(image) {
                Ok(r) if r.digest.is_none() && r.tag.as_deref() == Some("latest") => {
                    PullPolicy::Always
                }
                _ => PullPolicy::IfNotPresent,
            },
        }
    }
}

/// The node's image store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct ImageStore {
    root: PathBuf,
    layers_root: PathBuf,
    /// Serialises index updates and layer unpacking (both are rare and short).
    index: Mutex<BTreeMap<String, ImageRecord>>,
}

impl ImageStore {
    /// Opens (creating) the store under `data_dir`.
    ///
    /// # Errors
    /// The directories cannot be created or the index is unreadable.
    pub fn open(data_dir: &Path) -> Result<ImageStore> {
        let root = data_dir.join("images");
        let layers_root = data_dir.join("layers");
        for d in [
            root.join("blobs/sha256"),
            root.join("tmp"),
            layers_root.clone(),
        ] {
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let idx = root.join("index.json");
        let index = match fs::read(&idx) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::Invalid(format!("index.json: {e}")))?,
            Err(_) => BTreeMap::new(),
        };
        Ok(ImageStore {
            root,
            layers_root,
            index: Mutex::new(index),
        })
    }

    /// Path of a blob by digest (`sha256:…`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Stores `data` as a blob and returns its digest.
    ///
    /// # Errors
    /// Writing the blob failed.
    pub fn put_blob(&self, data: &[u8]) -> Result<String> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        let path = self.blob_path(&digest);
        if !path.exists() {
            let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
            fs::write(&tmp, data).map_err(io_err(&tmp))?;
            fs::rename(&tmp, &path).map_err(io_err(&path))?;
        }
        Ok(digest)
    }

    /// Copies the file at `src` into the store, checking it against `expected` when given.
    ///
    /// # Errors
    /// Reading or writing failed, or the content does not match `expected`.
    pub fn put_blob_file(&self, src: &Path, expected: Option<&str>) -> Result<String> {
        if let Some(e) = expected {
            if self.blob_path(e).exists() {
                return Ok(e.to_string());
            }
        }
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut input = fs::File::open(src).map_err(io_err(src))?;
        let mut out = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = input.read(&mut buf).map_err(io_err(src))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            std::io::Write::write_all(&mut out, &buf[..n]).map_err(io_err(&tmp))?;
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        if let Some(e) = expected {
            if e != digest {
                let _ = fs::remove_file(&tmp);
                return Err(Error::DigestMismatch(e.to_string()));
            }
        }
        let path = self.blob_path(&digest);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(digest)
    }

    /// Records `rec` under its name, replacing an older image with that name.
    ///
    /// # Errors
    /// The index could not be written.
    pub fn tag(&self, rec: ImageRecord) -> Result<()> {
        let mut idx = self.index.lock().expect("image index poisoned");
        idx.insert(rec.name.clone(), rec);
        let path = self.root.join("index.json");
        let tmp = self.root.join("index.json.tmp");
        let data = serde_json::to_vec_pretty(&*idx).expect("index serialises");
        fs::write(&tmp, data).map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Looks up an image by any form of its reference (`busybox`, full name, or `sha256:` image ID).
    pub fn resolve(&self, reference: &str) -> Option<ImageRecord> {
        let idx = self.index.lock().expect("image index poisoned");
        if reference.starts_with("sha256:") {
            return idx.values().find(|r| r.config_digest == reference).cloned();
        }
        idx.get(&normalise(reference)).cloned()
    }

    /// Every image in the store.
    pub fn list(&self) -> Vec<ImageRecord> {
        self.index
            .lock()
            .expect("image index poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Reads the runtime part of an image's config.
    ///
    /// # Errors
    /// The config blob is missing or is not JSON.
    pub fn config(&self, rec: &ImageRecord) -> Result<ImageConfig> {
        let path = self.blob_path(&rec.config_digest);
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).map_err(io_err(&path))?)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let c = &v["config"];
        let strs = |k: &str| -> Vec<String> {
            c[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(ImageConfig {
            entrypoint: strs("Entrypoint"),
            cmd: strs("Cmd"),
            env: strs("Env"),
            working_dir: c["WorkingDir"].as_str().unwrap_or("").to_string(),
            user: c["User"].as_str().unwrap_or("").to_string(),
        })
    }

    /// The unpacked layer directories of an image, bottom first, unpacking any not yet on disk.
    /// Layers are shared by every image and container that uses them.
    ///
    /// # Errors
    /// A layer blob is missing or could not be unpacked.
    pub fn layer_dirs(&self, rec: &ImageRecord) -> Result<Vec<PathBuf>> {
        let mut out = Vec::with_capacity(rec.layers.len());
        for l in &rec.layers {
            let dir = self
                .layers_root
                .join(l.diff_id.trim_start_matches("sha256:"));
            if !dir.exists() {
                // Holding the index lock keeps two containers of the same image from unpacking twice.
                let _guard = self.index.lock().expect("image index poisoned");
                if !dir.exists() {
                    let tmp = self
                        .layers_root
                        .join(format!("tmp-{}", uuid::Uuid::new_v4()));
                    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
                    let blob = self.blob_path(&l.digest);
                    let f = fs::File::open(&blob).map_err(io_err(&blob))?;
                    unpack::unpack_layer(f, &tmp).map_err(io_err(&blob))?;
                    fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
                }
            }
            out.push(dir);
        }
        Ok(out)
    }

    /// Imports an OCI image layout or a `docker save` archive, as a directory or a tar file.
    ///
    /// # Errors
    /// The archive is not an image, or a blob is corrupt.
    pub fn import_path(&self, path: &Path) -> Result<Vec<ImageRecord>> {
        if path.is_dir() {
            return import::import_dir(self, path);
        }
        let f = fs::File::open(path).map_err(io_err(path))?;
        self.import_tar(f)
    }

    /// Imports an OCI image layout or `docker save` tar from a reader (the body of `POST /images/load`).
    ///
    /// # Errors
    /// The archive is not an image, or a blob is corrupt.
    pub fn import_tar(&self, reader: impl Read) -> Result<Vec<ImageRecord>> {
        let tmp = self
            .root
            .join("tmp")
            .join(format!("import-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let res = (|| {
            let mut ar = tar::Archive::new(reader);
            ar.unpack(&tmp).map_err(io_err(&tmp))?;
            import::import_dir(self, &tmp)
        })();
        let _ = fs::remove_dir_all(&tmp);
        res
    }

    /// Makes `image` present according to `policy`, pulling from its registry when needed.
    ///
    /// # Errors
    /// `NotPresent` for `Never` when absent; `PullFailed` when the registry pull fails and no local copy exists.
    pub async fn ensure(&self, image: &str, policy: PullPolicy) -> Result<ImageRecord> {
        let local = self.resolve(image);
        match (policy, local) {
            (PullPolicy::Never, Some(r)) | (PullPolicy::IfNotPresent, Some(r)) => Ok(r),
            (PullPolicy::Never, None) => Err(Error::NotPresent(image.to_string())),
            (PullPolicy::IfNotPresent, None) => self.pull(image).await,
            (PullPolicy::Always, local) => match self.pull(image).await {
                Ok(r) => Ok(r),
                // An image imported by `berthctl image load` has no registry: use it, as kubelet would with a cached digest.
                Err(e) => local.ok_or(e),
            },
        }
    }

    /// Pulls `image` from its registry (plain HTTP for loopback registries) and records it.
    ///
    /// # Errors
    /// `PullFailed` with the registry client's message.
    pub async fn pull(&self, image: &str) -> Result<ImageRecord> {
        pull::pull(self, image).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults_like_kubernetes() {
        assert_eq!(PullPolicy::from_spec(None, "busybox"), PullPolicy::Always);
        assert_eq!(
            PullPolicy::from_spec(None, "busybox:1.2"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            PullPolicy::from_spec(Some("Never"), "busybox"),
            PullPolicy::Never
        );
    }
}
