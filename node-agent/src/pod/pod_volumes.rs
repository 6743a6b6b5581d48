//! Pod volumes: emptyDir and configMap files under the pod directory, hostPath as given,
//! persistentVolumeClaim as named local volumes at `{data-dir}/volumes/{ns}/{claim}` that outlive pods,
//! and secrets (Secret volumes, the ServiceAccount token) on a tmpfs the agent mounts per pod at
//! `{pod-dir}/secrets` (0700), so they never reach the disk; it is unmounted when the pod goes.
//!
//! Every container gets the ServiceAccount volume (`token`, `ca.crt`, `namespace`) read-only at
//! [`SERVICE_ACCOUNT_DIR`], refreshed in place when the server sends a new token.

use super::{spec, PodManager};
use crate::runtime::MountSpec;
use serde_json::Value;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

/// Where containers find their ServiceAccount token, as in Kubernetes.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The per-pod secrets tmpfs: root-only on the host, bounded in size.
const SECRETS_TMPFS_OPTIONS: &str = "mode=0700,size=32m";
/// File mode of projected keys without `defaultMode`/`mode` (Kubernetes' 0644, `420`).
const DEFAULT_FILE_MODE: u32 = 0o644;

fn is_mountpoint(dir: &Path) -> bool {
    let dev = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.dev()).ok();
    match (dev(dir), dir.parent().and_then(dev)) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

/// Unmounts a pod's secrets tmpfs (lazily, so a container still holding it cannot block removal).
fn release_secrets_fs(dir: &Path) {
    if is_mountpoint(dir) {
        if let Err(e) = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot unmount the pod's secrets tmpfs");
        }
    }
}

/// Unmounts the secrets tmpfs of every pod under `data_dir` (`berth-agent reset`, test cleanup).
pub fn release_secret_mounts(data_dir: &Path) {
    let Ok(pods) = std::fs::read_dir(data_dir.join("pods")) else {
        return;
    };
    for p in pods.flatten() {
        release_secrets_fs(&p.path().join("secrets"));
    }
}

/// Writes `data` to `dir/rel` with `mode`, atomically (a reader sees the old or the new file).
fn write_file(dir: &Path, rel: &str, data: &[u8], mode: u32) -> Result<(), String> {
    let target = dir.join(rel.trim_start_matches('/'));
    if target
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("path {rel:?} leaves the volume"));
    }
    let parent = target.parent().unwrap_or(dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.tmp",
        target.file_name().and_then(|n| n.to_str()).unwrap_or("f")
    ));
    let res = (|| {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        // Set after writing and regardless of the umask.
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
        drop(f);
        std::fs::rename(&tmp, &target)
    })();
    res.map_err(|e| format!("{}: {e}", target.display()))
}

impl PodManager {
    /// The pod's secrets directory: a tmpfs (0700) mounted on first use.
    fn ensure_secrets_fs(&self, pod: &Value) -> Result<PathBuf, String> {
        let dir = self.pod_dir(pod).join("secrets");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        if self.secrets_on_tmpfs && !is_mountpoint(&dir) {
            use nix::mount::MsFlags;
            nix::mount::mount(
                Some("tmpfs"),
                &dir,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some(SECRETS_TMPFS_OPTIONS),
            )
            .map_err(|e| {
                format!(
                    "cannot mount a tmpfs for the pod's secrets at {}: {e}",
                    dir.display()
                )
            })?;
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(dir)
    }

    /// Unmounts the pod's secrets tmpfs (before its directory is removed).
    pub(super) fn release_secrets(&self, pod: &Value) {
        release_secrets_fs(&self.pod_dir(pod).join("secrets"));
    }

    /// Writes the ServiceAccount volume (`token`, `ca.crt`, `namespace`) of a pod that has a token.
    fn write_service_account(&self, uid: &str) -> Result<(), String> {
        let p = &self.pods[uid];
        if p.sa_token.is_empty() {
            return Ok(());
        }
        let dir = self.ensure_secrets_fs(&p.pod)?.join("serviceaccount");
        let ns = p.pod["metadata"]["namespace"].as_str().unwrap_or("default");
        write_file(
            &dir,
            "ca.crt",
            self.settings.ca_pem.as_bytes(),
            DEFAULT_FILE_MODE,
        )?;
        write_file(&dir, "namespace", ns.as_bytes(), DEFAULT_FILE_MODE)?;
        write_file(&dir, "token", p.sa_token.as_bytes(), DEFAULT_FILE_MODE)
    }

    /// A new token arrived: rewrite the files of a pod whose sandbox exists (a pod not started yet gets
    /// them with its sandbox).
    pub(super) fn refresh_service_account(&self, uid: &str) {
        let Some(p) = self.pods.get(uid) else { return };
        if p.netns.is_none() || p.forget {
            return;
        }
        if let Err(e) = self.write_service_account(uid) {
            tracing::warn!(pod = %uid, error = %e, "cannot refresh the ServiceAccount token");
        }
    }

    fn volume_source(&self, uid: &str, vol: &Value) -> Option<PathBuf> {
        let p = &self.pods[uid];
        let name = vol["name"].as_str()?;
        if let Some(path) = vol["hostPath"]["path"].as_str() {
            return Some(PathBuf::from(path));
        }
        if vol["secret"].is_object() {
            return Some(self.pod_dir(&p.pod).join("secrets/volumes").join(name));
        }
        if let Some(claim) = vol["persistentVolumeClaim"]["claimName"].as_str() {
            let ns = p.pod["metadata"]["namespace"].as_str().unwrap_or("default");
            return Some(self.data_dir.join("volumes").join(ns).join(claim));
        }
        Some(self.pod_dir(&p.pod).join("volumes").join(name))
    }

    /// Creates volume directories and writes configMap/secret files.
    pub(super) fn prepare_volumes(&self, uid: &str) -> Result<(), String> {
        self.write_service_account(uid)?;
        let p = &self.pods[uid];
        for vol in p.pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let Some(dir) = self.volume_source(uid, vol) else {
                continue;
            };
            let host_type = vol["hostPath"]["type"].as_str().unwrap_or("");
            if vol["hostPath"].is_object() && !matches!(host_type, "" | "DirectoryOrCreate") {
                continue;
            }
            if vol["secret"].is_object() {
                self.ensure_secrets_fs(&p.pod)?;
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
            let default_mode = vol[key]["defaultMode"]
                .as_u64()
                .map(|m| m as u32)
                .unwrap_or(DEFAULT_FILE_MODE);
            let items: Vec<(String, String, u32)> = match vol[key]["items"].as_array() {
                Some(items) => items
                    .iter()
                    .filter_map(|i| {
                        Some((
                            i["key"].as_str()?.to_string(),
                            i["path"].as_str()?.to_string(),
                            i["mode"].as_u64().map(|m| m as u32).unwrap_or(default_mode),
                        ))
                    })
                    .collect(),
                None => keys
                    .iter()
                    .map(|k| (k.clone(), k.clone(), default_mode))
                    .collect(),
            };
            for (k, path, mode) in items {
                let Some(v) = spec::object_key(&p.objects, kind, obj_name, &k) else {
                    continue;
                };
                write_file(&dir, &path, v.as_bytes(), mode)?;
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
        let sa = self.pod_dir(&p.pod).join("secrets/serviceaccount");
        if !p.sa_token.is_empty()
            && sa.exists()
            && !out.iter().any(|m| m.destination == SERVICE_ACCOUNT_DIR)
        {
            out.push(MountSpec {
                source: sa,
                destination: SERVICE_ACCOUNT_DIR.to_string(),
                read_only: true,
            });
        }
        Ok(out)
    }
}
