//! A service's `volumes`: bind mounts, named volumes (claims) and tmpfs.

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

use super::converter::Converter;
use super::values::{check_name, list_at, str_of};

impl Converter<'_> {
    /// Mounts of the container and volumes of the pod.
    pub(super) fn volumes(&mut self, svc: &Map<String, Value>) -> Result<(Vec<Value>, Vec<Value>)> {
        let mut mounts = Vec::new();
        let mut vols = Vec::new();
        for (i, v) in list_at(svc, "volumes")?.into_iter().enumerate() {
            let (kind, source, target, read_only) = match v {
                Value::String(s) => {
                    let parts: Vec<&str> = s.split(':').collect();
                    let (src, dst, mode) = match parts[..] {
                        [dst] => (None, dst, None),
                        [src, dst] => (Some(src), dst, None),
                        [src, dst, mode] => (Some(src), dst, Some(mode)),
                        _ => bail!("volume {s:?}: expected [SOURCE:]TARGET[:MODE]"),
                    };
                    let ro = match mode {
                        None | Some("rw") => false,
                        Some("ro") => true,
                        Some(m) => bail!("volume {s:?}: mode {m:?} is not supported (ro or rw)"),
                    };
                    let kind = match src {
                        None => "anonymous",
                        Some(p)
                            if p.starts_with('/') || p.starts_with('.') || p.starts_with('~') =>
                        {
                            "bind"
                        }
                        Some(_) => "volume",
                    };
                    (
                        kind.to_string(),
                        src.map(str::to_string),
                        dst.to_string(),
                        ro,
                    )
                }
                Value::Object(m) => {
                    let kind = str_of(m.get("type"), "volumes[].type")?.unwrap_or("volume");
                    let target = str_of(m.get("target"), "volumes[].target")?
                        .ok_or_else(|| anyhow!("volume {i}: no target"))?;
                    let source = str_of(m.get("source"), "volumes[].source")?;
                    let ro = m.get("read_only").and_then(Value::as_bool).unwrap_or(false);
                    let kind = match (kind, source) {
                        ("volume", None) => "anonymous",
                        (k @ ("volume" | "bind" | "tmpfs"), _) => k,
                        (k, _) => bail!("volume type {k} is not supported (volume, bind or tmpfs)"),
                    };
                    (
                        kind.to_string(),
                        source.map(str::to_string),
                        target.to_string(),
                        ro,
                    )
                }
                _ => bail!("volumes entries must be strings or mappings"),
            };
            if !target.starts_with('/') {
                bail!("volume target {target:?} must be an absolute path");
            }
            let vol_name = format!("vol-{i}");
            let source_spec = match kind.as_str() {
                "anonymous" => json!({"emptyDir": {}}),
                "tmpfs" => json!({"emptyDir": {"medium": "Memory"}}),
                "bind" => {
                    let src = source.unwrap_or_default();
                    let path = if let Some(rest) = src.strip_prefix("~/") {
                        let home = (self.env)("HOME").unwrap_or_else(|| "/root".into());
                        Path::new(&home).join(rest)
                    } else {
                        let p = self.base.join(&src);
                        std::path::absolute(&p).unwrap_or(p)
                    };
                    json!({"hostPath": {"path": path.display().to_string()}})
                }
                _ => {
                    let src = source.unwrap_or_default();
                    let def = self.volumes.get(&src).ok_or_else(|| {
                        anyhow!("named volume {src:?} is not declared in the top-level volumes")
                    })?;
                    let external = def["external"].as_bool().unwrap_or(false);
                    let claim = def["name"].as_str().unwrap_or(&src).to_string();
                    check_name("volume name", &claim)?;
                    if !external {
                        self.claims.insert(claim.clone());
                    }
                    json!({"persistentVolumeClaim": {"claimName": claim}})
                }
            };
            let mut vol = source_spec;
            vol["name"] = json!(vol_name);
            vols.push(vol);
            let mut mount = json!({"name": vol_name, "mountPath": target});
            if read_only {
                mount["readOnly"] = json!(true);
            }
            mounts.push(mount);
        }
        Ok((mounts, vols))
    }
}
