//! Pod volumes: emptyDir and configMap/secret files under the pod directory, hostPath as given, and
//! persistentVolumeClaim as named local volumes at `{data-dir}/volumes/{ns}/{claim}` that outlive pods.

use super::{spec, PodManager};
use crate::runtime::MountSpec;
use serde_json::Value;
use std::path::PathBuf;

impl PodManager {
    fn volume_source(&self, uid: &str, vol: &Value) -> Option<PathBuf> {
        let p = &self.pods[uid];
        let name = vol["name"].as_str()?;
        if let Some(path) = vol["hostPath"]["path"].as_str() {
            return Some(PathBuf::from(path));
        }
        if let Some(claim) = vol["persistentVolumeClaim"]["claimName"].as_str() {
            let ns = p.pod["metadata"]["namespace"].as_str().unwrap_or("default");
            return Some(self.data_dir.join("volumes").join(ns).join(claim));
        }
        Some(self.pod_dir(&p.pod).join("volumes").join(name))
    }

    /// Creates volume directories and writes configMap/secret files.
    pub(super) fn prepare_volumes(&self, uid: &str) -> Result<(), String> {
        let p = &self.pods[uid];
        for vol in p.pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let Some(dir) = self.volume_source(uid, vol) else {
                continue;
            };
            let host_type = vol["hostPath"]["type"].as_str().unwrap_or("");
            if vol["hostPath"].is_object() && !matches!(host_type, "" | "DirectoryOrCreate") {
                continue;
            }
            std::fs::create_dir_all(&dir).map_err(|e| format!("volume {}: {e}", dir.display()))?;
            let (kind, obj_name, key) = if vol["configMap"].is_object() {
                (
                    "ConfigMap",
                    vol["configMap"]["name"].as_str().unwrap_or(""),
                    "configMap",
                )
            } else if vol["secret"].is_object() {
                (
                    "Secret",
                    vol["secret"]["secretName"].as_str().unwrap_or(""),
                    "secret",
                )
            } else {
                continue;
            };
            let Some(obj) = p
                .objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == obj_name)
            else {
                if vol[key]["optional"].as_bool().unwrap_or(false) {
                    continue;
                }
                return Err(format!("{kind} {obj_name:?} not found"));
            };
            let mut keys: Vec<String> = obj["data"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            keys.extend(
                obj["stringData"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            let items: Vec<(String, String)> = match vol[key]["items"].as_array() {
                Some(items) => items
                    .iter()
                    .filter_map(|i| {
                        Some((
                            i["key"].as_str()?.to_string(),
                            i["path"].as_str()?.to_string(),
                        ))
                    })
                    .collect(),
                None => keys.iter().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (k, path) in items {
                let Some(v) = spec::object_key(&p.objects, kind, obj_name, &k) else {
                    continue;
                };
                let target = dir.join(path.trim_start_matches('/'));
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::write(&target, v).map_err(|e| format!("{}: {e}", target.display()))?;
            }
        }
        Ok(())
    }

    /// Bind mounts for a container's `volumeMounts`.
    pub(super) fn volume_mounts(
        &self,
        uid: &str,
        container: &Value,
    ) -> Result<Vec<MountSpec>, String> {
        let p = &self.pods[uid];
        let vols = p.pod["spec"]["volumes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for m in container["volumeMounts"].as_array().into_iter().flatten() {
            let name = m["name"].as_str().unwrap_or("");
            let vol = vols
                .iter()
                .find(|v| v["name"] == name)
                .ok_or_else(|| format!("volume {name:?} not found"))?;
            let mut source = self
                .volume_source(uid, vol)
                .ok_or_else(|| format!("volume {name:?} has no source"))?;
            if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
                source = source.join(sub);
                if !source.exists() {
                    std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
                }
            }
            let ro = m["readOnly"].as_bool().unwrap_or(false)
                || vol["configMap"].is_object()
                || vol["secret"].is_object();
            out.push(MountSpec {
                source,
                destination: m["mountPath"].as_str().unwrap_or("/").to_string(),
                read_only: ro,
            });
        }
        Ok(out)
    }
}
