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
        let _ = release_subpaths(&p.path());
    }
}

/// Writes `data` to `dir/rel` with `mode`, atomically (a reader sees the old or the new file).
fn write_file(dir: &Path, rel: &str, data: &[u8], mode: u32) -> Result<(), String> {
    if let Some(why) = local_path_error(rel) {
        return Err(format!("invalid path {rel:?}: {why}"));
    }
    let target = dir.join(rel);
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

/// Why `path` is not a path that stays inside its volume, in kube-apiserver's words
/// (`validateLocalDescendingPath`), or `None` when it is fine. Symlinks are the caller's business.
pub fn local_path_error(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("must not be empty");
    }
    if path.starts_with('/') {
        return Some("must be a relative path");
    }
    if path.split('/').any(|c| c == "..") {
        return Some("must not contain '..'");
    }
    None
}

/// Whether `s` is a DNS-1123 label (a volume name) or, with `dots`, subdomain (a claim name): names
/// that become one path component each and so can never be `..` or hold a `/`.
fn dns_name_ok(s: &str, dots: bool) -> bool {
    use apimachinery::validation::{dns1123_label, dns1123_subdomain};
    if dots {
        dns1123_subdomain(s).is_empty()
    } else {
        dns1123_label(s).is_empty()
    }
}

/// Opens `sub` inside the directory `root` (an `O_PATH` fd), creating missing directories as the kubelet
/// does, and refusing any path whose resolution (symlinks included) leaves `root`: a container that
/// planted `evil -> /` in an emptyDir must not get the node's root through `subPath: evil`.
fn open_beneath(root: &Path, sub: &str) -> Result<std::os::fd::OwnedFd, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    let root_fd = rustix::fs::open(root, flags | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| format!("volume {}: {e}", root.display()))?;
    let escape = |e: rustix::io::Errno| {
        if e == rustix::io::Errno::XDEV || e == rustix::io::Errno::LOOP {
            format!("subPath {sub:?} resolves outside its volume")
        } else {
            format!("subPath {sub:?}: {e}")
        }
    };
    let mut prefix = String::new();
    for comp in sub.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let parent = if prefix.is_empty() {
            ".".to_string()
        } else {
            prefix.clone()
        };
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(comp);
        match rustix::fs::openat2(&root_fd, prefix.as_str(), flags, Mode::empty(), resolve) {
            Ok(_) => {}
            Err(rustix::io::Errno::NOENT) => {
                let dir = rustix::fs::openat2(
                    &root_fd,
                    parent.as_str(),
                    flags | OFlags::DIRECTORY,
                    Mode::empty(),
                    resolve,
                )
                .map_err(escape)?;
                // mkdirat on an O_PATH fd of a directory resolves `comp` in that directory only.
                match rustix::fs::mkdirat(&dir, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(escape(e)),
                }
            }
            Err(e) => return Err(escape(e)),
        }
    }
    rustix::fs::openat2(&root_fd, sub, flags, Mode::empty(), resolve).map_err(escape)
}

/// Pins `sub` of the volume at `root` to `target` with a bind mount of the opened fd, so that the runtime's
/// later bind mount of `target` gets what was checked even if the container swaps in a symlink meanwhile.
fn pin_subpath(root: &Path, sub: &str, target: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd as _;
    if let Some(why) = local_path_error(sub) {
        return Err(format!("invalid subPath {sub:?}: {why}"));
    }
    let fd = open_beneath(root, sub)?;
    let is_dir = rustix::fs::fstat(&fd)
        .map(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        })
        .map_err(|e| format!("subPath {sub:?}: {e}"))?;
    if target.symlink_metadata().is_ok() {
        // The pin of a previous instance: its volume content may have changed since.
        if !unmount_all(target) {
            return Err(format!(
                "cannot unpin the previous subPath at {}",
                target.display()
            ));
        }
        let _ = std::fs::remove_dir(target).or_else(|_| std::fs::remove_file(target));
    }
    let parent = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let made = if is_dir {
        std::fs::create_dir(target)
    } else {
        std::fs::File::create(target).map(drop)
    };
    made.map_err(|e| format!("{}: {e}", target.display()))?;
    let magic = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    nix::mount::mount(
        Some(&magic),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("cannot pin subPath {sub:?}: {e}"))
}

/// Unmounts every mount stacked on `path`; `false` when one cannot be unmounted.
fn unmount_all(path: &Path) -> bool {
    // Bounded: a path holds at most a few stacked pins (one per restart that raced a failure).
    for _ in 0..16 {
        match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return true,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot unmount a subPath");
                return false;
            }
        }
    }
    false
}

/// Unmounts the pinned subPaths of a pod; `false` when one stays mounted, so the caller must not remove
/// the pod directory (removing it would delete the volume's content through the mount).
fn release_subpaths(pod_dir: &Path) -> bool {
    let Ok(ctrs) = std::fs::read_dir(pod_dir.join("subpaths")) else {
        return true;
    };
    let mut all = true;
    for c in ctrs.flatten() {
        for m in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
            all &= unmount_all(&m.path());
        }
    }
    all
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

    /// Unmounts the pod's secrets tmpfs and pinned subPaths (before its directory is removed). Returns
    /// `false` when a subPath stays mounted: the directory *MUST NOT* be removed then.
    pub(super) fn release_secrets(&self, pod: &Value) -> bool {
        release_secrets_fs(&self.pod_dir(pod).join("secrets"));
        release_subpaths(&self.pod_dir(pod))
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

    /// The host directory of `vol`. Names that would not be one path component are refused here too, so
    /// a pod that bypassed API validation still cannot reach outside the pod's or the claims' directory.
    fn volume_source(&self, uid: &str, vol: &Value) -> Result<PathBuf, String> {
        let p = &self.pods[uid];
        let name = vol["name"].as_str().unwrap_or("");
        if !dns_name_ok(name, false) {
            return Err(format!(
                "volume name {name:?} is not a valid DNS-1123 label"
            ));
        }
        if let Some(path) = vol["hostPath"]["path"].as_str() {
            return Ok(PathBuf::from(path));
        }
        if vol["secret"].is_object() {
            return Ok(self.pod_dir(&p.pod).join("secrets/volumes").join(name));
        }
        if !vol["persistentVolumeClaim"].is_null() {
            let claim = vol["persistentVolumeClaim"]["claimName"]
                .as_str()
                .unwrap_or("");
            let ns = p.pod["metadata"]["namespace"].as_str().unwrap_or("default");
            if !dns_name_ok(claim, true) || !dns_name_ok(ns, false) {
                return Err(format!(
                    "persistentVolumeClaim.claimName {claim:?} is not a valid DNS-1123 subdomain"
                ));
            }
            return Ok(self.data_dir.join("volumes").join(ns).join(claim));
        }
        Ok(self.pod_dir(&p.pod).join("volumes").join(name))
    }

    /// Creates volume directories and writes configMap/secret files.
    pub(super) fn prepare_volumes(&self, uid: &str) -> Result<(), String> {
        self.write_service_account(uid)?;
        let p = &self.pods[uid];
        for vol in p.pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let dir = self.volume_source(uid, vol)?;
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
        for (i, m) in container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = m["name"].as_str().unwrap_or("");
            let vol = vols
                .iter()
                .find(|v| v["name"] == name)
                .ok_or_else(|| format!("volume {name:?} not found"))?;
            // Refused rather than ignored when the API did not already refuse them.
            if m["subPathExpr"].as_str().is_some_and(|s| !s.is_empty()) {
                return Err(format!(
                    "volumeMount {name:?}: subPathExpr is not supported on this node"
                ));
            }
            if !matches!(m["mountPropagation"].as_str(), None | Some("None")) {
                return Err(format!(
                    "volumeMount {name:?}: mountPropagation {} is not supported on this node",
                    m["mountPropagation"]
                ));
            }
            let mut source = self.volume_source(uid, vol)?;
            if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
                let cname = container["name"].as_str().unwrap_or("");
                let target = self
                    .pod_dir(&p.pod)
                    .join("subpaths")
                    .join(cname)
                    .join(i.to_string());
                pin_subpath(&source, sub, &target)?;
                source = target;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_their_volume() {
        assert_eq!(local_path_error("a/b.txt"), None);
        assert_eq!(
            local_path_error("..data"),
            None,
            "only a '..' component leaves"
        );
        assert_eq!(local_path_error("../x"), Some("must not contain '..'"));
        assert_eq!(local_path_error("a/../../x"), Some("must not contain '..'"));
        assert_eq!(
            local_path_error("/etc/passwd"),
            Some("must be a relative path")
        );
        assert_eq!(local_path_error(""), Some("must not be empty"));
    }

    #[test]
    fn items_outside_the_volume_are_refused_without_writing() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let e = write_file(&vol, "../x", b"owned", 0o644).unwrap_err();
        assert!(e.contains("must not contain '..'"), "{e}");
        assert!(!d.path().join("x").exists());
        assert!(write_file(&vol, "/abs", b"owned", 0o644).is_err());
        write_file(&vol, "sub/ok", b"fine", 0o644).unwrap();
        assert_eq!(std::fs::read(vol.join("sub/ok")).unwrap(), b"fine");
    }

    #[test]
    fn subpaths_resolve_beneath_their_volume() {
        let d = tempfile::tempdir().unwrap();
        let vol = d.path().join("vol");
        std::fs::create_dir_all(vol.join("in")).unwrap();
        std::fs::create_dir(d.path().join("outside")).unwrap();
        std::os::unix::fs::symlink("/", vol.join("root")).unwrap();
        std::os::unix::fs::symlink("../outside", vol.join("up")).unwrap();
        std::os::unix::fs::symlink("in", vol.join("inner")).unwrap();
        for evil in ["root", "up", "root/etc", "up/x/y"] {
            let e = open_beneath(&vol, evil).unwrap_err();
            assert!(e.contains("outside its volume"), "{evil}: {e}");
        }
        assert!(
            !d.path().join("outside/x").exists(),
            "nothing created outside"
        );
        open_beneath(&vol, "inner").unwrap();
        open_beneath(&vol, "new/dir").unwrap();
        assert!(vol.join("new/dir").is_dir(), "missing subPaths are created");
    }

    #[test]
    fn volume_and_claim_names_are_single_components() {
        assert!(dns_name_ok("data", false));
        assert!(dns_name_ok("my.claim-1", true));
        for bad in ["..", "../etc", "a/b", "", "A", "."] {
            assert!(!dns_name_ok(bad, true), "{bad}");
        }
    }
}
