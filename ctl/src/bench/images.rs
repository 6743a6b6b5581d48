//! Image size on a node: per image, compressed (its layer blobs) and unpacked size, and what layer
//! sharing saves (every image's layers counted per image against the unique layers). The agent's
//! `/images` lists names and layer counts only, so sizes come from its image store on disk: on a lab
//! host only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use super::ctx::BenchCtx;
use super::report::{Comparison, Row, Stats};
use crate::rest;

const MIB: f64 = 1024.0 * 1024.0;

/// A layer in the agent's `images/index.json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StoredLayer {
    /// Blob digest.
    pub digest: String,
    /// Uncompressed tar digest: names the unpacked directory.
    pub diff_id: String,
}

/// An image in the agent's `images/index.json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StoredImage {
    /// Reference.
    pub name: String,
    /// Layers, bottom first.
    pub layers: Vec<StoredLayer>,
}

/// Parses the agent's `images/index.json` (a map from reference to record).
///
/// # Errors
/// When it is not that JSON.
pub fn parse_index(text: &str) -> Result<Vec<StoredImage>> {
    let m: BTreeMap<String, StoredImage> =
        serde_json::from_str(text).context("invalid images/index.json")?;
    Ok(m.into_values().collect())
}

/// The tag prefix of the start-up measurement's cold images.
pub const COLD_TAG: &str = "berth/bench:cold-";

/// Names and layer counts from the agent's `/images` JSON (`{"images":[{"name","id","layers"}]}`).
pub fn parse_agent_list(v: &Value) -> Vec<(String, u64)> {
    v["images"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some((
                i["name"].as_str()?.to_string(),
                i["layers"].as_u64().unwrap_or(0),
            ))
        })
        .collect()
}

/// Bytes of regular files under `dir` (no symlinks followed; hard links counted once per path).
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    // Bounded: a layer has at most what the agent's unpack limits let in.
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// Unpacked size of a layer: its directory when the agent unpacked it, else the uncompressed tar
/// length (a gzip blob's ISIZE trailer, or the blob itself when it is a plain tar).
pub fn unpacked_of(blob: &[u8], dir: Option<u64>) -> u64 {
    if let Some(d) = dir {
        return d;
    }
    if blob.len() > 18 && blob[0] == 0x1f && blob[1] == 0x8b {
        let t = &blob[blob.len() - 4..];
        return u64::from(u32::from_le_bytes([t[0], t[1], t[2], t[3]]));
    }
    blob.len() as u64
}

/// An image's (name, compressed bytes, unpacked bytes).
type ImageSize = (String, u64, u64);

/// Sizes of one node's images from its agent data dir: per image (name, compressed, unpacked) and
/// per unique layer diff_id its unpacked size.
fn sizes(data: &Path) -> Result<(Vec<ImageSize>, BTreeMap<String, u64>)> {
    let idx = data.join("images/index.json");
    let images = parse_index(
        &std::fs::read_to_string(&idx)
            .with_context(|| format!("failed to read {}", idx.display()))?,
    )?;
    let mut layer_size: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for im in images {
        let (mut comp, mut unp) = (0, 0);
        for l in &im.layers {
            let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
            let blob_path = data.join("images/blobs/sha256").join(hex(&l.digest));
            let blob_len = std::fs::metadata(&blob_path).map_or(0, |m| m.len());
            comp += blob_len;
            let size = match layer_size.get(&l.diff_id) {
                Some(s) => *s,
                None => {
                    let dir = data.join("layers").join(hex(&l.diff_id));
                    let s = if dir.is_dir() {
                        du(&dir)
                    } else {
                        unpacked_of(&std::fs::read(&blob_path).unwrap_or_default(), None)
                    };
                    layer_size.insert(l.diff_id.clone(), s);
                    s
                }
            };
            unp += size;
        }
        out.push((im.name, comp, unp));
    }
    Ok((out, layer_size))
}

fn one(subject: String, bytes: u64, note: String) -> Row {
    Row {
        subject,
        stats: Stats::of(&[bytes as f64 / MIB]).unwrap_or_default(),
        note,
    }
}

/// Measures image sizes on the bench node; see the module docs.
///
/// # Errors
/// When the agent's image list cannot be read.
pub async fn run(ctx: &BenchCtx) -> Result<Vec<Comparison>> {
    let node = ctx.node().name.clone();
    let list = rest::get(
        &ctx.client,
        &format!("/api/v1/nodes/{}/proxy/images", rest::encode(&node)),
    )
    .await?;
    let listed = parse_agent_list(&list);
    let mut size = Comparison {
        id: "image-size".into(),
        title: format!("Image size on {node}"),
        unit: "MiB".into(),
        lower_is_better: true,
        rows: vec![],
        skipped: vec![],
    };
    let mut sharing = Comparison {
        id: "layer-sharing".into(),
        title: format!("Layer sharing across the images on {node}"),
        unit: "MiB".into(),
        lower_is_better: true,
        rows: vec![],
        skipped: vec![],
    };
    let data = ctx.lab.as_ref().and_then(|l| l.data_dir(&node));
    let Some(data) = data else {
        let names: Vec<String> = listed
            .iter()
            .map(|(n, l)| format!("{n} ({l} layers)"))
            .collect();
        let why = format!(
            "sizes: not a lab host, and the agent's /images lists no sizes (images: {})",
            names.join(", ")
        );
        size.skipped.push(why.clone());
        sharing.skipped.push(why);
        return Ok(vec![size, sharing]);
    };
    let (images, layers) = sizes(&data)?;
    let mut total = 0;
    let mut cold = 0;
    for (name, comp, unp) in &images {
        total += unp;
        // The start-up measurement's cold images (one per sample, never removable: the agent has no
        // image removal) would drown the table; they still count for layer sharing below.
        if name.contains(COLD_TAG) {
            cold += 1;
            continue;
        }
        size.rows.push(one(
            format!("{name} compressed"),
            *comp,
            "sum of its layer blobs".into(),
        ));
        size.rows.push(one(
            format!("{name} unpacked"),
            *unp,
            "its layers' files".into(),
        ));
    }
    if cold > 0 {
        size.skipped.push(format!(
            "{cold} cold-start images of earlier start-up samples ({COLD_TAG}*) left out of this table"
        ));
    }
    let unique: u64 = layers.values().sum();
    let distinct: BTreeSet<&String> = layers.keys().collect();
    sharing.rows.push(one(
        "every image's layers counted per image (no sharing)".into(),
        total,
        format!("{} images", images.len()),
    ));
    sharing.rows.push(one(
        "unique layers on disk (shared)".into(),
        unique,
        format!(
            "{} distinct layers; saves {:.1} MiB",
            distinct.len(),
            (total - unique.min(total)) as f64 / MIB
        ),
    ));
    Ok(vec![size, sharing])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_index_and_list_parse() {
        let idx = r#"{"docker.io/berth/bench:latest":{"name":"docker.io/berth/bench:latest","manifest_digest":null,
            "config_digest":"sha256:c","layers":[{"digest":"sha256:a","diff_id":"sha256:b"}]}}"#;
        let im = parse_index(idx).unwrap();
        assert_eq!(
            im[0].layers,
            vec![StoredLayer {
                digest: "sha256:a".into(),
                diff_id: "sha256:b".into()
            }]
        );
        let v = serde_json::json!({"images": [{"name": "x", "id": "sha256:c", "layers": 2}]});
        assert_eq!(parse_agent_list(&v), vec![("x".to_string(), 2)]);
    }

    #[test]
    fn unpacked_size_from_dir_gzip_trailer_or_tar() {
        assert_eq!(unpacked_of(b"tar bytes", Some(7)), 7);
        assert_eq!(unpacked_of(b"tar bytes", None), 9);
        let mut gz = vec![0x1f, 0x8b];
        gz.extend([0; 16]);
        gz.extend(1000u32.to_le_bytes());
        assert_eq!(unpacked_of(&gz, None), 1000);
    }
}
