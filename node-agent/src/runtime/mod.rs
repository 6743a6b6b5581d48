//! Containers on this node behind the [`ContainerRuntime`] trait: [`linux::LinuxRuntime`] runs them with
//! crun (runc fallback) under one supervisor process each; [`fake::FakeRuntime`] records calls for tests.

pub mod bundle;
pub mod fake;
pub mod linux;
pub mod logs;
pub mod netns_basic;
pub mod oci;
pub mod seccomp;
pub mod supervisor;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Result type of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Preparing the rootfs, bundle or state directory failed.
    #[error("failed to prepare container {id}: {message}")]
    PrepareFailed {
        /// Container ID.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// The OCI runtime or the supervisor failed to start the container.
    #[error("failed to start container {id}: {message}")]
    StartFailed {
        /// Container ID.
        id: String,
        /// What went wrong (the runtime's stderr when available).
        message: String,
    },
    /// No container with that ID exists.
    #[error("no such container {0}")]
    NotFound(String),
    /// A runtime command (`kill`, `exec`, `delete`) failed.
    #[error("{op} of container {id} failed: {message}")]
    CommandFailed {
        /// The operation.
        op: String,
        /// Container ID.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// Creating or removing a pod sandbox failed.
    #[error("sandbox of pod {uid}: {message}")]
    SandboxFailed {
        /// Pod UID.
        uid: String,
        /// What went wrong.
        message: String,
    },
}

/// A bind mount into a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the container.
    pub destination: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// Everything needed to run one container instance; built by the pod manager from the pod spec and image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContainerConfig {
    /// Unique ID of this instance (a new one per restart).
    pub id: String,
    /// UID of the pod.
    pub pod_uid: String,
    /// Namespace of the pod.
    pub pod_namespace: String,
    /// Name of the pod (also the hostname).
    pub pod_name: String,
    /// Name of the container in the pod spec.
    pub container_name: String,
    /// Restart count of this instance (0 for the first).
    pub attempt: u32,
    /// Image as written in the pod spec.
    pub image: String,
    /// Resolved image ID (`sha256:` of the config).
    pub image_id: String,
    /// Unpacked layer directories, bottom first.
    pub layers: Vec<PathBuf>,
    /// Process argv.
    pub args: Vec<String>,
    /// Environment as `K=V`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// UID of the process.
    pub uid: u32,
    /// GID of the process.
    pub gid: u32,
    /// Hostname inside the container.
    pub hostname: String,
    /// Network namespace to join; `None` shares the host's (`hostNetwork: true`).
    pub netns: Option<PathBuf>,
    /// Bind mounts (volumes, /etc/hosts, /etc/resolv.conf).
    pub mounts: Vec<MountSpec>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// CPU shares (1024 per CPU requested).
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per 100 ms period.
    pub cpu_quota: Option<i64>,
    /// Log file of this instance.
    pub log_path: PathBuf,
    /// Hash of the container spec, to notice spec changes.
    pub spec_hash: String,
    /// Privileges, seccomp and limits; state files written before it existed read as the defaults.
    #[serde(default)]
    pub security: SecurityConfig,
}

/// The pids cgroup limit of a container that asks for none: bounds a fork bomb far below the node's
/// `pid_max` while leaving room for any ordinary workload.
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;

/// What a container may do, decided by the pod manager from `securityContext` (see `pod::spec::security`).
/// The defaults are Docker's: its capability set, its seccomp profile, no new privileges, a pids limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// `privileged: true`: every capability, no seccomp, host devices, writable /sys, nothing masked.
    pub privileged: bool,
    /// Capabilities (`CAP_NET_ADMIN` form) in the bounding, effective and permitted sets.
    pub capabilities: Vec<String>,
    /// Sets the process's `no_new_privs`, so setuid binaries and file capabilities gain nothing.
    pub no_new_privileges: bool,
    /// Applies the default seccomp profile ([`seccomp::default_profile`]); `false` is `Unconfined`.
    pub seccomp: bool,
    /// Mounts the container's root filesystem read-only.
    pub read_only_rootfs: bool,
    /// Maximum number of tasks in the container's pids cgroup.
    pub pids_limit: i64,
    /// Shares the host's PID namespace (`hostPID`).
    pub host_pid: bool,
    /// Shares the host's IPC namespace (`hostIPC`).
    pub host_ipc: bool,
    /// `procMount: Unmasked`: no masked or read-only paths under /proc.
    pub unmasked_proc: bool,
    /// Supplementary groups of the process (`supplementalGroups`).
    pub supplementary_gids: Vec<u32>,
    /// Namespaced sysctls to set (`securityContext.sysctls`).
    pub sysctls: std::collections::BTreeMap<String, String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            privileged: false,
            // Docker's default set, which Kubernetes containers get unless the pod asks otherwise; the
            // API names them bare, the OCI spec wants them `CAP_`-prefixed.
            capabilities: apimachinery::security::DEFAULT_CAPABILITIES
                .iter()
                .map(|c| apimachinery::security::oci_capability(c))
                .collect(),
            no_new_privileges: true,
            seccomp: true,
            read_only_rootfs: false,
            pids_limit: DEFAULT_PIDS_LIMIT,
            host_pid: false,
            host_ipc: false,
            unmasked_proc: false,
            supplementary_gids: Vec::new(),
            sysctls: Default::default(),
        }
    }
}

/// Lifecycle state of a container instance, as recorded by its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// Being prepared; not yet started.
    Created,
    /// The process runs.
    Running,
    /// The process exited.
    Exited,
}

/// What the runtime knows about one container instance (the supervisor's state file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// The configuration it was started with.
    pub config: ContainerConfig,
    /// Lifecycle state.
    pub state: RunState,
    /// Host PID of the container's init process, when running.
    pub pid: Option<i32>,
    /// Exit code (128+signal when killed by a signal).
    pub exit_code: Option<i32>,
    /// RFC3339 start time.
    pub started_at: Option<String>,
    /// RFC3339 finish time.
    pub finished_at: Option<String>,
    /// Why it could not start or how it ended (`Error`, `Completed`, `OOMKilled`).
    pub reason: Option<String>,
    /// Details, e.g. the runtime's error output.
    pub message: Option<String>,
    /// PID of the supervisor process that owns the container.
    pub supervisor_pid: Option<i32>,
}

impl ContainerStatus {
    /// A fresh status for a container about to start.
    pub fn created(config: ContainerConfig) -> ContainerStatus {
        ContainerStatus {
            config,
            state: RunState::Created,
            pid: None,
            exit_code: None,
            started_at: None,
            finished_at: None,
            reason: None,
            message: None,
            supervisor_pid: None,
        }
    }
}

/// Output of a finished exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the command.
    pub exit_code: i32,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
}

/// What the pod manager needs from a container runtime. All calls are synchronous and short, except
/// `exec` which is bounded by its timeout; callers run them off the async executor.
pub trait ContainerRuntime: Send + Sync {
    /// Creates the pod sandbox: a network namespace pinned at the returned path (no pause process).
    ///
    /// # Errors
    /// `SandboxFailed` when the namespace cannot be created.
    fn create_sandbox(&self, pod_uid: &str) -> Result<PathBuf>;
    /// Removes the pod sandbox; removing an absent sandbox succeeds.
    ///
    /// # Errors
    /// `SandboxFailed` when the namespace cannot be removed.
    fn remove_sandbox(&self, pod_uid: &str) -> Result<()>;
    /// Prepares the rootfs and bundle and starts the container under its supervisor. Returns once the
    /// process runs (or already exited).
    ///
    /// # Errors
    /// `PrepareFailed` or `StartFailed`.
    fn start(&self, config: &ContainerConfig) -> Result<ContainerStatus>;
    /// Sends `signal` to the container's init process.
    ///
    /// # Errors
    /// `NotFound`, or `CommandFailed` when the runtime refuses.
    fn signal(&self, id: &str, signal: i32) -> Result<()>;
    /// The recorded status of one instance, `None` when unknown.
    fn status(&self, id: &str) -> Option<ContainerStatus>;
    /// Every instance on this node, running or exited (what an agent restart re-adopts).
    fn list(&self) -> Vec<ContainerStatus>;
    /// Removes an exited instance: rootfs mount and state. Its log file stays until the pod is removed.
    ///
    /// # Errors
    /// `CommandFailed` when the rootfs cannot be unmounted.
    fn remove(&self, id: &str) -> Result<()>;
    /// Runs `cmd` inside the running container and waits at most `timeout`.
    ///
    /// # Errors
    /// `NotFound`, or `CommandFailed` when it cannot be started or timed out.
    fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput>;
    /// A command that runs `cmd` inside the container with inherited stdio, for streaming exec.
    ///
    /// # Errors
    /// `NotFound` when the container is unknown.
    fn exec_command(&self, id: &str, cmd: &[String], tty: bool) -> Result<std::process::Command>;
}
