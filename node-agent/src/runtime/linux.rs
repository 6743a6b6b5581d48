//! The real runtime: overlayfs rootfs from shared layers, an OCI bundle, crun (runc fallback) run by a
//! supervisor process per container, and network namespaces pinned under `/run/netns` as pod sandboxes.

pub use super::oci::{find_oci_runtime, oci_command};
use super::supervisor::{read_state, write_state};
use super::{
    bundle, ContainerConfig, ContainerRuntime, ContainerStatus, Error, ExecOutput, Result, RunState,
};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Default log rotation size per container.
pub const DEFAULT_LOG_MAX: u64 = 10 << 20;

/// crun/runc based runtime. State lives under `{data-dir}/containers/{id}`.
pub struct LinuxRuntime {
    containers: PathBuf,
    oci_runtime: PathBuf,
    supervisor_exe: PathBuf,
    log_max: u64,
}

fn netns_name(pod_uid: &str) -> String {
    crate::network::netns_name(pod_uid)
}

fn run_cmd(cmd: &mut Command) -> std::result::Result<(), String> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Mount options of a container's overlay rootfs: the image layers (bottom first in `layers`) as
/// lower dirs, `dir/upper` and `dir/work` for the container's writes.
pub fn overlay_options(layers: &[PathBuf], dir: &Path) -> String {
    // overlayfs wants the top layer first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        dir.join("upper").display(),
        dir.join("work").display()
    )
}

impl LinuxRuntime {
    /// A runtime keeping state under `data_dir`, starting supervisors as `supervisor_exe supervise …`
    /// (the `berth-agent` binary).
    ///
    /// # Errors
    /// `PrepareFailed` when neither crun nor runc is installed or the state directory cannot be created.
    pub fn new(data_dir: &Path, supervisor_exe: PathBuf) -> Result<LinuxRuntime> {
        let oci_runtime = find_oci_runtime().ok_or_else(|| Error::PrepareFailed {
            id: String::new(),
            message: "neither crun nor runc found".into(),
        })?;
        let containers = data_dir.join("containers");
        fs::create_dir_all(&containers).map_err(|e| Error::PrepareFailed {
            id: String::new(),
            message: format!("{}: {e}", containers.display()),
        })?;
        Ok(LinuxRuntime {
            containers,
            oci_runtime,
            supervisor_exe,
            log_max: DEFAULT_LOG_MAX,
        })
    }

    /// Overrides the OCI runtime binary (e.g. to force runc).
    pub fn with_oci_runtime(mut self, path: PathBuf) -> Self {
        self.oci_runtime = path;
        self
    }

    /// The OCI runtime binary in use.
    pub fn oci_runtime(&self) -> &Path {
        &self.oci_runtime
    }

    /// Kills and removes every container recorded under the data dir, and their pod sandboxes: what
    /// `berth-agent reset` does when a node is decommissioned (containers otherwise outlive the agent).
    /// Returns the IDs removed.
    pub fn reset(&self) -> Vec<String> {
        let all = self.list();
        for st in &all {
            if st.state == RunState::Running {
                let _ = run_cmd(oci_command(&self.oci_runtime).args(["kill", &st.config.id, "9"]));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.list().iter().any(|s| s.state == RunState::Running)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut pods = std::collections::BTreeSet::new();
        let mut removed = vec![];
        for st in all {
            if self.remove(&st.config.id).is_ok() {
                removed.push(st.config.id.clone());
            }
            pods.insert(st.config.pod_uid);
        }
        for uid in pods {
            let _ = self.remove_sandbox(&uid);
        }
        removed
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.containers.join(id)
    }

    fn prepare(&self, cfg: &ContainerConfig) -> std::result::Result<PathBuf, String> {
        let dir = self.dir(&cfg.id);
        let rootfs = dir.join("rootfs");
        for d in [&rootfs, &dir.join("upper"), &dir.join("work")] {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        if cfg.layers.is_empty() {
            return Err("image has no layers".into());
        }
        let opts = overlay_options(&cfg.layers, &dir);
        if !is_mountpoint(&rootfs) {
            nix::mount::mount(
                Some("overlay"),
                &rootfs,
                Some("overlay"),
                nix::mount::MsFlags::empty(),
                Some(opts.as_str()),
            )
            .map_err(|e| format!("overlay mount on {}: {e}", rootfs.display()))?;
        }
        let spec = bundle::build_spec(cfg, &rootfs);
        spec.save(dir.join("config.json"))
            .map_err(|e| format!("config.json: {e}"))?;
        if let Some(d) = cfg.log_path.parent() {
            fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        Ok(dir)
    }
}

fn is_mountpoint(p: &Path) -> bool {
    let s = p.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some(s.as_str())))
        .unwrap_or(false)
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl ContainerRuntime for LinuxRuntime {
    fn create_sandbox(&self, pod_uid: &str) -> Result<PathBuf> {
        let name = netns_name(pod_uid);
        let path = PathBuf::from("/run/netns").join(&name);
        let fail = |message: String| Error::SandboxFailed {
            uid: pod_uid.to_string(),
            message,
        };
        if !path.exists() {
            run_cmd(Command::new("ip").args(["netns", "add", &name])).map_err(fail)?;
        }
        run_cmd(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"])).map_err(fail)?;
        Ok(path)
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        let name = netns_name(pod_uid);
        if PathBuf::from("/run/netns").join(&name).exists() {
            run_cmd(Command::new("ip").args(["netns", "del", &name])).map_err(|message| {
                Error::SandboxFailed {
                    uid: pod_uid.to_string(),
                    message,
                }
            })?;
        }
        // crun removes each container's cgroup; the per-pod parents are ours to remove.
        if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let _ = fs::remove_dir(e.path().join(format!("berth/pod{pod_uid}")));
                let _ = fs::remove_dir(e.path().join("berth"));
            }
        }
        Ok(())
    }

    fn start(&self, cfg: &ContainerConfig) -> Result<ContainerStatus> {
        let dir = self.prepare(cfg).map_err(|message| Error::PrepareFailed {
            id: cfg.id.clone(),
            message,
        })?;
        let st = ContainerStatus::created(cfg.clone());
        write_state(&dir, &st).map_err(|e| Error::PrepareFailed {
            id: cfg.id.clone(),
            message: e.to_string(),
        })?;
        let mut cmd = Command::new(&self.supervisor_exe);
        cmd.arg("supervise")
            .arg("--dir")
            .arg(&dir)
            .arg("--runtime")
            .arg(&self.oci_runtime)
            .arg("--log-max")
            .arg(self.log_max.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        match fs::File::create(dir.join("supervisor.log")) {
            Ok(f) => cmd.stderr(f),
            Err(_) => cmd.stderr(Stdio::null()),
        };
        crate::sys::setsid_pre_exec(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| Error::StartFailed {
            id: cfg.id.clone(),
            message: format!(
                "cannot spawn supervisor {}: {e}",
                self.supervisor_exe.display()
            ),
        })?;
        // Reap the supervisor if it exits while we live; after an agent restart init reaps it.
        std::thread::spawn(move || child.wait());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = read_state(&dir) {
                if st.state != RunState::Created {
                    if st.reason.as_deref() == Some("StartError") {
                        return Err(Error::StartFailed {
                            id: cfg.id.clone(),
                            message: st.message.clone().unwrap_or_default(),
                        });
                    }
                    return Ok(st);
                }
            }
            if Instant::now() > deadline {
                return Err(Error::StartFailed {
                    id: cfg.id.clone(),
                    message: "timed out waiting for the supervisor".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn signal(&self, id: &str, signal: i32) -> Result<()> {
        let st = self
            .status(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if st.state != RunState::Running {
            return Ok(());
        }
        let r = run_cmd(oci_command(&self.oci_runtime).args(["kill", id, &signal.to_string()]));
        match r {
            Ok(()) => Ok(()),
            // The process may have exited between the status read and the kill.
            Err(_) if self.status(id).is_some_and(|s| s.state == RunState::Exited) => Ok(()),
            Err(message) => Err(Error::CommandFailed {
                op: "kill".into(),
                id: id.to_string(),
                message,
            }),
        }
    }

    fn status(&self, id: &str) -> Option<ContainerStatus> {
        let mut st = read_state(&self.dir(id))?;
        // A supervisor that died (host reboot, OOM) cannot record the exit; infer it.
        if st.state == RunState::Running {
            let sup_dead = st.supervisor_pid.is_some_and(|p| !pid_alive(p));
            let ctr_dead = st.pid.is_some_and(|p| !pid_alive(p));
            if sup_dead && ctr_dead {
                st.state = RunState::Exited;
                st.exit_code = Some(137);
                st.reason = Some("Unknown".into());
                st.finished_at = Some(apimachinery::time::rfc3339(std::time::SystemTime::now()));
                let _ = write_state(&self.dir(id), &st);
            }
        }
        Some(st)
    }

    fn list(&self) -> Vec<ContainerStatus> {
        let Ok(entries) = fs::read_dir(&self.containers) else {
            return vec![];
        };
        entries
            .flatten()
            .filter_map(|e| self.status(&e.file_name().to_string_lossy()))
            .collect()
    }

    fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(());
        }
        let _ = run_cmd(oci_command(&self.oci_runtime).args(["delete", "-f", id]));
        let rootfs = dir.join("rootfs");
        if is_mountpoint(&rootfs) {
            nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
                Error::CommandFailed {
                    op: "umount".into(),
                    id: id.to_string(),
                    message: e.to_string(),
                }
            })?;
        }
        fs::remove_dir_all(&dir).map_err(|e| Error::CommandFailed {
            op: "remove".into(),
            id: id.to_string(),
            message: e.to_string(),
        })
    }

    fn exec(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        let mut c = self.exec_command(id, cmd, false)?;
        let fail = |message: String| Error::CommandFailed {
            op: "exec".into(),
            id: id.to_string(),
            message,
        };
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let t_out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            b
        });
        let t_err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().map_err(|e| fail(e.to_string()))? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("timed out after {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Ok(ExecOutput {
            exit_code: status.code().unwrap_or(128),
            stdout: t_out.join().unwrap_or_default(),
            stderr: t_err.join().unwrap_or_default(),
        })
    }

    fn exec_command(&self, id: &str, cmd: &[String], tty: bool) -> Result<Command> {
        let st = self
            .status(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let mut c = oci_command(&self.oci_runtime);
        c.arg("exec");
        if tty {
            c.arg("--tty");
        }
        for e in &st.config.env {
            c.arg("--env").arg(e);
        }
        if !st.config.cwd.is_empty() {
            c.arg("--cwd").arg(&st.config.cwd);
        }
        c.arg(id).args(cmd);
        Ok(c)
    }
}
