//! Imports of unpacked archives: an OCI image layout (`index.json` + `blobs/`) or a `docker save`
//! tree (`manifest.json` with `RepoTags`). Blobs are verified and copied into the store.

use super::{normalise, Error, ImageRecord, ImageStore, LayerRef, Result};
use serde_json::Value;
use std::fs;
use std::path::Path;

fn read_json(path: &Path) -> Result<Value> {
    let b = fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_slice(&b).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// Imports every image of the tree at `dir`; layers are unpacked eagerly so the first start is fast.
pub(super) fn import_dir(store: &ImageStore, dir: &Path) -> Result<Vec<ImageRecord>> {
    let recs = if dir.join("manifest.json").exists() {
        import_docker(store, dir)?
    } else if dir.join("index.json").exists() {
        import_oci(store, dir)?
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

fn diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn import_docker(store: &ImageStore, dir: &Path) -> Result<Vec<ImageRecord>> {
    let manifest = read_json(&dir.join("manifest.json"))?;
    let mut out = Vec::new();
    for m in manifest
        .as_array()
        .ok_or_else(|| Error::Invalid("manifest.json is not a list".into()))?
    {
        let cfg_path = dir.join(
            m["Config"]
                .as_str()
                .ok_or_else(|| Error::Invalid("no Config".into()))?,
        );
        let config = read_json(&cfg_path)?;
        let config_digest = store.put_blob_file(&cfg_path, None)?;
        let ids = diff_ids(&config);
        let files: Vec<&str> = m["Layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str())
            .collect();
        if files.len() != ids.len() {
            return Err(Error::Invalid(format!(
                "{} layers but {} diff_ids",
                files.len(),
                ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (f, id) in files.iter().zip(ids) {
            let digest = store.put_blob_file(&dir.join(f), None)?;
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

fn import_oci(store: &ImageStore, dir: &Path) -> Result<Vec<ImageRecord>> {
    let index = read_json(&dir.join("index.json"))?;
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
        out.extend(import_manifest(store, dir, digest, name)?);
    }
    Ok(out)
}

fn blob_in(dir: &Path, digest: &str) -> std::path::PathBuf {
    dir.join("blobs").join(digest.replace(':', "/"))
}

fn import_manifest(
    store: &ImageStore,
    dir: &Path,
    digest: &str,
    name: Option<String>,
) -> Result<Vec<ImageRecord>> {
    let path = blob_in(dir, digest);
    let m = read_json(&path)?;
    store.put_blob_file(&path, Some(digest))?;
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
        return import_manifest(store, dir, d, name);
    }
    let cfg_digest = m["config"]["digest"]
        .as_str()
        .ok_or_else(|| Error::Invalid("manifest without config".into()))?;
    store.put_blob_file(&blob_in(dir, cfg_digest), Some(cfg_digest))?;
    let config = read_json(&blob_in(dir, cfg_digest))?;
    let ids = diff_ids(&config);
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
        store.put_blob_file(&blob_in(dir, ld), Some(ld))?;
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
