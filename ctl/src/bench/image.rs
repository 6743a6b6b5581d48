//! The bench image, built by berthctl itself with no network: busybox-static from the host plus
//! `berth-probe` (and the shared libraries it links) when it sits next to berthctl, packed as an OCI
//! image layout tar with deterministic layers (fixed mtimes, sorted entries), so equal inputs give
//! equal digests. A Rust port of the part of tests/images/build_image.py the bench needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Every entry's mtime (build_image.py's), so layers do not change with the clock.
const MTIME: u64 = 1_700_000_000;

/// What goes into the image.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// busybox-static (`/bin/busybox`), with its applet names (`busybox --list`).
    pub busybox: Vec<u8>,
    /// Applets to link to busybox under /bin.
    pub applets: Vec<String>,
    /// `berth-probe` and the libraries it needs: (path in the image, bytes, mode).
    pub extra: Vec<(String, Vec<u8>, u32)>,
    /// A file added to the busybox layer, so the layer (and so the image) is new to every node:
    /// a "cold" start then unpacks it. Empty for the shared `berth/bench:latest`.
    pub nonce: String,
}

/// An image as an OCI layout tar, with the digests a test or a caller checks.
#[derive(Debug, Clone)]
pub struct Built {
    /// The OCI layout tar (what `image load` sends).
    pub tar: Vec<u8>,
    /// `sha256:` of the manifest.
    pub manifest_digest: String,
    /// `sha256:` of each layer (uncompressed tars: blob digest = diff_id).
    pub layers: Vec<String>,
}

/// Reads `/bin/busybox` and its applet list, and `berth-probe` beside the running berthctl with the
/// libraries `ldd` lists for it. Returns the inputs and, when the probe is missing, why.
///
/// # Errors
/// When there is no busybox-static on the host.
pub fn host_inputs() -> Result<(Inputs, Option<String>)> {
    let busybox_path = Path::new("/bin/busybox");
    let busybox = std::fs::read(busybox_path).context(
        "the bench image needs busybox-static at /bin/busybox (apt-get install busybox-static)",
    )?;
    let out = std::process::Command::new(busybox_path)
        .arg("--list")
        .output()
        .context("failed to run busybox --list")?;
    let applets = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut inputs = Inputs {
        busybox,
        applets,
        ..Inputs::default()
    };
    let probe = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("berth-probe")));
    let missing = match probe {
        Some(p) if p.is_file() => {
            let bytes =
                std::fs::read(&p).with_context(|| format!("failed to read {}", p.display()))?;
            inputs.extra.push((
                super::PROBE_PATH.trim_start_matches('/').into(),
                bytes,
                0o755,
            ));
            for lib in shared_libraries(&p) {
                if let Ok(b) = std::fs::read(&lib) {
                    let name = lib.to_string_lossy().trim_start_matches('/').to_string();
                    inputs.extra.push((name, b, 0o755));
                }
            }
            None
        }
        Some(p) => Some(format!("berth-probe is not built (no {})", p.display())),
        None => Some("berth-probe is not built (berthctl's directory is unknown)".into()),
    };
    Ok((inputs, missing))
}

/// The absolute library paths `ldd` prints for `bin` (none for a static binary or without ldd).
fn shared_libraries(bin: &Path) -> Vec<PathBuf> {
    let Ok(out) = std::process::Command::new("ldd").arg(bin).output() else {
        return vec![];
    };
    parse_ldd(&String::from_utf8_lossy(&out.stdout))
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`
/// lines to their paths (the loader too, or nothing runs); resolved to real files (a symlink in
/// the image would point at a file that is not there).
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            out.push(PathBuf::from(p));
        }
    }
    out
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        Layer(b)
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h
    }

    fn dir(&mut self, name: &str, mode: u32) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, name, std::io::empty())?;
        Ok(())
    }

    fn file(&mut self, name: &str, data: &[u8], mode: u32) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, name, data)?;
        Ok(())
    }

    fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, name, target)?;
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>> {
        Ok(self.0.into_inner()?)
    }
}

/// Builds `reference` (`berth/bench:latest`) from `inputs`: layer 1 is the busybox rootfs (plus the
/// nonce), layer 2 the probe and its libraries (absent without them). Layers are plain tars: the
/// image travels over the lab bridge or one API hop, where gzip would cost more than it saves.
///
/// # Errors
/// Only if tar writing fails (it writes to memory).
pub fn build(reference: &str, inputs: &Inputs) -> Result<Built> {
    if inputs.busybox.is_empty() {
        bail!("no busybox for the bench image");
    }
    let mut l1 = Layer::new();
    for d in [
        "bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin", "var",
    ] {
        l1.dir(d, 0o755)?;
    }
    l1.dir("tmp", 0o1777)?;
    l1.file("bin/busybox", &inputs.busybox, 0o755)?;
    let applets: std::collections::BTreeSet<&String> = inputs.applets.iter().collect();
    for a in applets
        .into_iter()
        .filter(|a| *a != "busybox" && !a.contains('/'))
    {
        l1.symlink(&format!("bin/{a}"), "busybox")?;
    }
    l1.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
        0o644,
    )?;
    l1.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
    if !inputs.nonce.is_empty() {
        l1.file("etc/berth-bench-nonce", inputs.nonce.as_bytes(), 0o644)?;
    }
    let mut raw = vec![l1.finish()?];
    if !inputs.extra.is_empty() {
        let mut l2 = Layer::new();
        // Parent directories first, each once, in order: importers need them before their files.
        let mut dirs = std::collections::BTreeSet::new();
        for (path, _, _) in &inputs.extra {
            let mut acc = String::new();
            let parts: Vec<&str> = path.split('/').collect();
            for p in &parts[..parts.len().saturating_sub(1)] {
                acc = if acc.is_empty() {
                    p.to_string()
                } else {
                    format!("{acc}/{p}")
                };
                dirs.insert(acc.clone());
            }
        }
        for d in &dirs {
            l2.dir(d, 0o755)?;
        }
        let files: BTreeMap<&String, (&Vec<u8>, u32)> =
            inputs.extra.iter().map(|(p, b, m)| (p, (b, *m))).collect();
        for (p, (b, m)) in files {
            l2.file(p, b, m)?;
        }
        raw.push(l2.finish()?);
    }
    let layers: Vec<String> = raw.iter().map(|r| sha(r)).collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": layers},
    });
    // serde_json's Value keeps keys sorted (no preserve_order), so the bytes are stable.
    let config_b = serde_json::to_vec(&config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config_b), "size": config_b.len()},
        "layers": raw.iter().map(|r| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(r), "size": r.len(),
        })).collect::<Vec<Value>>(),
    });
    let manifest_b = serde_json::to_vec(&manifest)?;
    let tag = reference.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest_b),
            "size": manifest_b.len(),
            "annotations": {
                "io.containerd.image.name": format!("docker.io/{reference}"),
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files.insert("index.json".into(), serde_json::to_vec(&index)?);
    for b in [config_b, manifest_b.clone()].into_iter().chain(raw) {
        files.insert(format!("blobs/sha256/{}", &sha(&b)[7..]), b);
    }
    let mut t = Layer::new();
    t.dir("blobs", 0o755)?;
    t.dir("blobs/sha256", 0o755)?;
    for (name, data) in &files {
        t.file(name, data, 0o644)?;
    }
    Ok(Built {
        tar: t.finish()?,
        manifest_digest: sha(&manifest_b),
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            busybox: b"\x7fELF not really".to_vec(),
            applets: vec!["sh".into(), "sleep".into(), "busybox".into()],
            extra: vec![("usr/local/bin/berth-probe".into(), b"probe".to_vec(), 0o755)],
            nonce: String::new(),
        }
    }

    fn entries(tar_bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut a = tar::Archive::new(tar_bytes);
        let mut out = BTreeMap::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut b).unwrap();
            out.insert(name, b);
        }
        out
    }

    #[test]
    fn image_is_deterministic_and_a_nonce_changes_the_layer() {
        let a = build("berth/bench:latest", &inputs()).unwrap();
        let b = build("berth/bench:latest", &inputs()).unwrap();
        assert_eq!(a.tar, b.tar);
        assert_eq!(a.manifest_digest, b.manifest_digest);
        let mut i = inputs();
        i.nonce = "cold-1".into();
        let c = build("berth/bench:cold-1", &i).unwrap();
        assert_ne!(
            a.layers[0], c.layers[0],
            "a cold image must not share its layer"
        );
        assert_eq!(a.layers[1], c.layers[1]);
    }

    #[test]
    fn layout_has_index_manifest_config_and_layers() {
        let built = build("berth/bench:latest", &inputs()).unwrap();
        let files = entries(&built.tar);
        assert!(files.contains_key("oci-layout"));
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let m = &index["manifests"][0];
        assert_eq!(m["digest"], built.manifest_digest.as_str());
        assert_eq!(
            m["annotations"]["io.containerd.image.name"],
            "docker.io/berth/bench:latest"
        );
        let blob = |d: &str| &files[&format!("blobs/sha256/{}", &d[7..])];
        let manifest_b = blob(&built.manifest_digest);
        assert_eq!(sha(manifest_b), built.manifest_digest);
        let manifest: Value = serde_json::from_slice(manifest_b).unwrap();
        let config: Value =
            serde_json::from_slice(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!(built.layers));
        for l in manifest["layers"].as_array().unwrap() {
            let b = blob(l["digest"].as_str().unwrap());
            assert_eq!(l["size"], b.len());
        }
        let layer1 = entries(blob(&built.layers[0]));
        assert!(layer1.contains_key("bin/busybox") && layer1.contains_key("bin/sh"));
        let layer2 = entries(blob(&built.layers[1]));
        assert_eq!(layer2["usr/local/bin/berth-probe"], b"probe");
        assert!(layer2.contains_key("usr/local/bin"));
    }

    #[test]
    fn ldd_output_to_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }
}
