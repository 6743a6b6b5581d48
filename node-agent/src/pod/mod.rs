//! The pod manager: turns the desired pods of this node into sandboxes and containers, restarts them by
//! `restartPolicy` with back-off, runs probes, stops pods gracefully, and computes Kubernetes pod status.
//! One file per lifecycle verb (`pod_start`, `pod_kill`, `pod_status`, …), each an `impl PodManager` block.
//!
//! The manager is synchronous and driven by [`PodManager::sync`] with an explicit `now`, so unit tests
//! over the fake runtime need no sleeps.

mod backoff;
mod pod_adopt;
mod pod_kill;
mod pod_probe;
mod pod_start;
mod pod_status;
mod pod_sync;
mod pod_volumes;
pub mod spec;

pub use backoff::restart_delay;
pub use pod_volumes::release_secret_mounts;

use crate::images::{ImageConfig, ImageStore, PullPolicy};
use crate::runtime::netns_basic::NetworkHook;
use crate::runtime::{ContainerRuntime, ContainerStatus};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// An image ready to run: what the manager needs from the image store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// Image ID (`sha256:` of the config).
    pub image_id: String,
    /// Unpacked layers, bottom first.
    pub layers: Vec<PathBuf>,
    /// Runtime part of the image config.
    pub config: ImageConfig,
}

/// Where images come from (the image store, or a fixed table in tests).
pub trait ImageSource: Send + Sync {
    /// Makes `image` present per `policy` and returns it.
    ///
    /// # Errors
    /// A message for `ErrImagePull` / `ErrImageNeverPull`.
    fn ensure(&self, image: &str, policy: PullPolicy) -> Result<ResolvedImage, String>;
}

/// [`ImageSource`] over the real store; pulls run on the given tokio runtime.
pub struct StoreImages {
    /// The store.
    pub store: Arc<ImageStore>,
    /// Runtime to block on for registry pulls (the manager runs on a blocking thread).
    pub handle: tokio::runtime::Handle,
}

impl ImageSource for StoreImages {
    fn ensure(&self, image: &str, policy: PullPolicy) -> Result<ResolvedImage, String> {
        let rec = self
            .handle
            .block_on(self.store.ensure(image, policy))
            .map_err(|e| e.to_string())?;
        let layers = self.store.layer_dirs(&rec).map_err(|e| e.to_string())?;
        let config = self.store.config(&rec).map_err(|e| e.to_string())?;
        Ok(ResolvedImage {
            image_id: rec.config_digest,
            layers,
            config,
        })
    }
}

/// Cluster settings from `Join` that shape pods (DNS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Cluster DNS server for pods' resolv.conf.
    pub cluster_dns: String,
    /// Cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// This node's IP (`status.hostIP`).
    pub node_ip: String,
    /// The cluster CA (PEM), `ca.crt` of the ServiceAccount volume.
    pub ca_pem: String,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            cluster_dns: "10.96.0.10".into(),
            cluster_domain: "cluster.local".into(),
            node_ip: "127.0.0.1".into(),
            ca_pem: String::new(),
        }
    }
}

/// A desired pod as the server sends it: the pod JSON and the ConfigMaps/Secrets its volumes and env use.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPod {
    /// Pod JSON.
    pub pod: Value,
    /// Referenced ConfigMap and Secret objects.
    pub objects: Vec<Value>,
    /// ServiceAccount token to mount (empty: none).
    pub service_account_token: String,
}

/// Probe bookkeeping of one probe of one container.
#[derive(Debug, Clone, Default)]
struct ProbeState {
    next_at: Option<SystemTime>,
    successes: u32,
    failures: u32,
    ok: bool,
}

/// Per-container state across restarts.
#[derive(Debug, Clone, Default)]
struct Ctr {
    /// Runtime ID of the current instance.
    current: Option<String>,
    /// Last recorded status of the current instance.
    status: Option<ContainerStatus>,
    /// Last terminated instance (`lastState`).
    last: Option<ContainerStatus>,
    restart_count: u32,
    /// Crashes since the last long run: drives the back-off, reset after a 10 min run.
    crashes: u32,
    /// Do not start before this time (back-off).
    not_before: Option<SystemTime>,
    /// Waiting reason/message while not running.
    waiting: Option<(String, String)>,
    /// A started container that will not be restarted.
    done: bool,
    liveness: ProbeState,
    readiness: ProbeState,
    /// SIGKILL after this time (liveness kill or pod stop).
    kill_at: Option<SystemTime>,
}

/// One pod on this node.
#[derive(Debug, Clone)]
struct PodRt {
    pod: Value,
    objects: Vec<Value>,
    sa_token: String,
    netns: Option<PathBuf>,
    ip: Option<Ipv4Addr>,
    start_time: Option<SystemTime>,
    containers: BTreeMap<String, Ctr>,
    /// Set once the pod is being stopped: when SIGTERM was sent.
    stopping_since: Option<SystemTime>,
    /// Stop finished: containers removed, sandbox torn down.
    stopped: bool,
    /// The pod is no longer desired at all (delete everything once stopped).
    forget: bool,
    /// The sandbox could not be created; retried on the next sync.
    sandbox_error: Option<String>,
}

/// A status change to report to the server.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Pod UID.
    pub uid: String,
    /// PodStatus JSON.
    pub status: Value,
}

/// The pod manager. Not `Sync`-shared internally: callers wrap it in a `Mutex` and call [`PodManager::sync`]
/// from one thread.
pub struct PodManager {
    rt: Arc<dyn ContainerRuntime>,
    net: Arc<dyn NetworkHook>,
    images: Arc<dyn ImageSource>,
    data_dir: PathBuf,
    settings: ClusterSettings,
    pods: BTreeMap<String, PodRt>,
    /// Instances found at startup whose pod has not been seen in a desired state yet.
    adopted: BTreeMap<String, Vec<ContainerStatus>>,
    /// Last reported status JSON per pod UID, so only changes are reported.
    reported: BTreeMap<String, Value>,
    /// Services for service-link environment variables, from the network view.
    services: Vec<spec::ServiceEnv>,
    /// Mount a tmpfs per pod for its secrets (true but in unit tests over a fake runtime).
    secrets_on_tmpfs: bool,
}

/// One container in a [`Lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLookup {
    /// Container name.
    pub name: String,
    /// UID of its pod: with `current`, names the container's cgroup (the metrics sampler reads it).
    pub pod_uid: String,
    /// Runtime ID of the running instance.
    pub current: Option<String>,
    /// Log of the current (or last) instance.
    pub log: Option<PathBuf>,
    /// Log of the instance before it (`kubectl logs --previous`).
    pub previous_log: Option<PathBuf>,
}

/// Containers of every pod by (namespace, name), in spec order.
pub type Lookup = BTreeMap<(String, String), Vec<ContainerLookup>>;

/// Default grace period when neither the pod nor the deletion specifies one.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

impl PodManager {
    /// A manager over `rt`, `net` and `images`, keeping pod files under `data_dir/pods`. Running containers
    /// left by a previous agent are adopted, not restarted.
    pub fn new(
        rt: Arc<dyn ContainerRuntime>,
        net: Arc<dyn NetworkHook>,
        images: Arc<dyn ImageSource>,
        data_dir: &Path,
        settings: ClusterSettings,
    ) -> PodManager {
        let mut m = PodManager {
            rt,
            net,
            images,
            data_dir: data_dir.to_path_buf(),
            settings,
            pods: BTreeMap::new(),
            adopted: BTreeMap::new(),
            reported: BTreeMap::new(),
            services: Vec::new(),
            secrets_on_tmpfs: true,
        };
        m.adopt_existing();
        m
    }

    /// Replaces the services used for `{NAME}_SERVICE_HOST` variables of containers started from now on.
    pub fn set_services(&mut self, services: Vec<spec::ServiceEnv>) {
        self.services = services;
    }

    /// Whether pod secrets (Secret volumes, the ServiceAccount token) go on a tmpfs the manager mounts
    /// per pod (the default) or in a plain 0700 directory (unit tests that must not mount).
    pub fn set_secrets_on_tmpfs(&mut self, on: bool) {
        self.secrets_on_tmpfs = on;
    }

    /// Replaces cluster settings (after `Join`).
    pub fn set_settings(&mut self, settings: ClusterSettings) {
        self.settings = settings;
    }

    fn pod_dir(&self, pod: &Value) -> PathBuf {
        let md = &pod["metadata"];
        self.data_dir.join("pods").join(format!(
            "{}_{}_{}",
            md["namespace"].as_str().unwrap_or("default"),
            md["name"].as_str().unwrap_or(""),
            md["uid"].as_str().unwrap_or("")
        ))
    }

    /// Log file of `container`'s current instance, or of the previous one.
    pub fn log_path(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        previous: bool,
    ) -> Option<PathBuf> {
        let p = self.find(namespace, name)?;
        let c = p.containers.get(container)?;
        let st = if previous {
            c.last.as_ref()?
        } else {
            c.status.as_ref().or(c.last.as_ref())?
        };
        Some(st.config.log_path.clone())
    }

    /// Runtime ID of `container`'s running instance.
    pub fn container_id(
        &self,
        namespace: &str,
        name: &str,
        container: Option<&str>,
    ) -> Option<String> {
        let p = self.find(namespace, name)?;
        let c = match container {
            Some(n) if !n.is_empty() => p.containers.get(n)?,
            _ => p.containers.values().next()?,
        };
        c.current.clone()
    }

    fn find(&self, namespace: &str, name: &str) -> Option<&PodRt> {
        self.pods.values().find(|p| {
            p.pod["metadata"]["namespace"].as_str().unwrap_or("default") == namespace
                && p.pod["metadata"]["name"] == name
        })
    }

    /// A snapshot of every pod's containers for the HTTP endpoints (logs, exec), so they never wait on `sync`.
    pub fn lookup(&self) -> Lookup {
        let mut out = Lookup::new();
        for p in self.pods.values() {
            let md = &p.pod["metadata"];
            let key = (
                md["namespace"].as_str().unwrap_or("default").to_string(),
                md["name"].as_str().unwrap_or("").to_string(),
            );
            let mut cs = Vec::new();
            for cspec in init_specs(&p.pod)
                .into_iter()
                .chain(container_specs(&p.pod))
            {
                let name = cspec["name"].as_str().unwrap_or("").to_string();
                let c = p.containers.get(&name).cloned().unwrap_or_default();
                cs.push(ContainerLookup {
                    pod_uid: md["uid"].as_str().unwrap_or("").to_string(),
                    current: c.current.clone(),
                    log: c
                        .status
                        .as_ref()
                        .or(c.last.as_ref())
                        .map(|s| s.config.log_path.clone()),
                    previous_log: c
                        .last
                        .as_ref()
                        .filter(|_| c.status.is_some())
                        .map(|s| s.config.log_path.clone())
                        .or_else(|| {
                            // Between instances `last` is the one just ended; the previous one is an attempt earlier.
                            c.last.as_ref().and_then(|s| {
                                let a = s.config.attempt.checked_sub(1)?;
                                Some(s.config.log_path.with_file_name(format!("{a}.log")))
                            })
                        }),
                    name,
                });
            }
            // A pod being replaced under the same name (delete + create) must not shadow its successor.
            if !p.forget || !out.contains_key(&key) {
                out.insert(key, cs);
            }
        }
        out
    }

    /// Forgets what was reported, so the next `sync` reports every pod (after a reconnect).
    pub fn reset_reported(&mut self) {
        self.reported.clear();
    }

    /// UIDs of the pods the manager currently runs or stops.
    pub fn pod_uids(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }
}

fn uid_of(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap_or("").to_string()
}

fn init_specs(pod: &Value) -> Vec<Value> {
    pod["spec"]["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Where a pod's init containers stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitState {
    /// Every init container exited 0 (or there are none).
    Done,
    /// One is running, waiting to start, or backing off.
    Running,
    /// One failed and will not be restarted (`restartPolicy: Never`).
    Failed,
}

impl PodRt {
    fn init_state(&self) -> InitState {
        for spec in init_specs(&self.pod) {
            let c = self
                .containers
                .get(spec["name"].as_str().unwrap_or(""))
                .cloned()
                .unwrap_or_default();
            let ok = c.done && c.last.as_ref().and_then(|l| l.exit_code) == Some(0);
            if ok {
                continue;
            }
            return if c.done {
                InitState::Failed
            } else {
                InitState::Running
            };
        }
        InitState::Done
    }
}

fn container_specs(pod: &Value) -> Vec<Value> {
    pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
