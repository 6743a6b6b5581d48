//! An in-memory runtime that records every call, for unit tests of the pod manager.

use super::{
    ContainerConfig, ContainerRuntime, ContainerStatus, Error, ExecOutput, Result, RunState,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// One recorded runtime call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `create_sandbox(pod_uid)`.
    CreateSandbox(String),
    /// `remove_sandbox(pod_uid)`.
    RemoveSandbox(String),
    /// `start` of a container (its name in the pod and its attempt).
    Start {
        /// Container name.
        name: String,
        /// Restart count.
        attempt: u32,
    },
    /// `signal(id, signal)` with the container name.
    Signal {
        /// Container name.
        name: String,
        /// Signal number.
        signal: i32,
    },
    /// `remove(id)` with the container name.
    Remove(String),
    /// `exec` in the named container.
    Exec(String),
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, ContainerStatus>,
    calls: Vec<Call>,
    ignore_sigterm: bool,
    exec_exit_code: i32,
    fail_start: Option<String>,
    now: String,
}

/// The fake runtime. Containers run until the test calls [`FakeRuntime::exit`] or signals them.
#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

impl FakeRuntime {
    /// An empty fake.
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("fake poisoned").calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.state.lock().expect("fake poisoned").calls.clear();
    }

    /// Makes SIGTERM ignored, so only SIGKILL stops containers.
    pub fn set_ignore_sigterm(&self, ignore: bool) {
        self.state.lock().expect("fake poisoned").ignore_sigterm = ignore;
    }

    /// Exit code of subsequent execs (probes).
    pub fn set_exec_exit_code(&self, code: i32) {
        self.state.lock().expect("fake poisoned").exec_exit_code = code;
    }

    /// Makes `start` of the named container fail (until cleared with `None`).
    pub fn set_fail_start(&self, container: Option<&str>) {
        self.state.lock().expect("fake poisoned").fail_start = container.map(String::from);
    }

    /// Timestamp recorded for subsequent starts and exits.
    pub fn set_now(&self, rfc3339: &str) {
        self.state.lock().expect("fake poisoned").now = rfc3339.to_string();
    }

    /// Makes the running instance of container `name` exit with `code`.
    ///
    /// # Panics
    /// When no running instance of `name` exists.
    pub fn exit(&self, name: &str, code: i32) {
        let mut s = self.state.lock().expect("fake poisoned");
        let now = s.now.clone();
        let c = s
            .containers
            .values_mut()
            .find(|c| c.config.container_name == name && c.state == RunState::Running)
            .unwrap_or_else(|| panic!("no running container {name}"));
        c.state = RunState::Exited;
        c.exit_code = Some(code);
        c.finished_at = Some(now);
        c.reason = Some(if code == 0 { "Completed" } else { "Error" }.into());
    }

    /// Inserts a container as if a previous agent had started it (for adoption tests).
    pub fn adopt(&self, st: ContainerStatus) {
        self.state
            .lock()
            .expect("fake poisoned")
            .containers
            .insert(st.config.id.clone(), st);
    }

    fn name_of(s: &State, id: &str) -> String {
        s.containers
            .get(id)
            .map(|c| c.config.container_name.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

impl ContainerRuntime for FakeRuntime {
    fn create_sandbox(&self, pod_uid: &str) -> Result<PathBuf> {
        self.state
            .lock()
            .expect("fake poisoned")
            .calls
            .push(Call::CreateSandbox(pod_uid.into()));
        Ok(PathBuf::from(format!("/run/netns/fake-{pod_uid}")))
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<()> {
        self.state
            .lock()
            .expect("fake poisoned")
            .calls
            .push(Call::RemoveSandbox(pod_uid.into()));
        Ok(())
    }

    fn start(&self, config: &ContainerConfig) -> Result<ContainerStatus> {
        let mut s = self.state.lock().expect("fake poisoned");
        s.calls.push(Call::Start {
            name: config.container_name.clone(),
            attempt: config.attempt,
        });
        if s.fail_start.as_deref() == Some(config.container_name.as_str()) {
            return Err(Error::StartFailed {
                id: config.id.clone(),
                message: "exec: no such file".into(),
            });
        }
        let mut st = ContainerStatus::created(config.clone());
        st.state = RunState::Running;
        st.pid = Some(1000 + s.containers.len() as i32);
        st.started_at = Some(s.now.clone());
        s.containers.insert(config.id.clone(), st.clone());
        Ok(st)
    }

    fn signal(&self, id: &str, signal: i32) -> Result<()> {
        let mut s = self.state.lock().expect("fake poisoned");
        let name = Self::name_of(&s, id);
        s.calls.push(Call::Signal { name, signal });
        let ignore = s.ignore_sigterm;
        let now = s.now.clone();
        let c = s
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.into()))?;
        if c.state == RunState::Running && (signal == 9 || !ignore) {
            c.state = RunState::Exited;
            c.exit_code = Some(128 + signal);
            c.finished_at = Some(now);
            c.reason = Some("Error".into());
        }
        Ok(())
    }

    fn status(&self, id: &str) -> Option<ContainerStatus> {
        self.state
            .lock()
            .expect("fake poisoned")
            .containers
            .get(id)
            .cloned()
    }

    fn list(&self) -> Vec<ContainerStatus> {
        self.state
            .lock()
            .expect("fake poisoned")
            .containers
            .values()
            .cloned()
            .collect()
    }

    fn remove(&self, id: &str) -> Result<()> {
        let mut s = self.state.lock().expect("fake poisoned");
        let name = Self::name_of(&s, id);
        s.calls.push(Call::Remove(name));
        s.containers.remove(id);
        Ok(())
    }

    fn exec(&self, id: &str, _cmd: &[String], _timeout: Duration) -> Result<ExecOutput> {
        let mut s = self.state.lock().expect("fake poisoned");
        let name = Self::name_of(&s, id);
        s.calls.push(Call::Exec(name));
        Ok(ExecOutput {
            exit_code: s.exec_exit_code,
            stdout: vec![],
            stderr: vec![],
        })
    }

    fn exec_command(&self, id: &str, cmd: &[String], _tty: bool) -> Result<std::process::Command> {
        let _ = self.status(id).ok_or_else(|| Error::NotFound(id.into()))?;
        let mut c = std::process::Command::new("true");
        c.args(cmd);
        Ok(c)
    }
}
