//! The per-container supervisor: `berth-agent supervise …` runs `crun run` in the foreground, pumps its
//! output into the CRI log and records start, exit code and timestamps in `state.json`. It lives in its own
//! session so containers outlive an agent restart; the agent re-adopts them from the state files.

use super::logs::{LogWriter, MAX_RECORD};
use super::{ContainerStatus, RunState};
use apimachinery::time::rfc3339;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Arguments of the `supervise` mode.
#[derive(Debug, Clone)]
pub struct SuperviseArgs {
    /// Container directory: `state.json`, `config.json` (the bundle), `pid`, `runtime.log`.
    pub dir: PathBuf,
    /// OCI runtime binary (crun or runc).
    pub runtime: PathBuf,
    /// Rotate the log past this many bytes.
    pub log_max: u64,
}

/// Reads a container's state file.
pub fn read_state(dir: &Path) -> Option<ContainerStatus> {
    let b = std::fs::read(dir.join("state.json")).ok()?;
    serde_json::from_slice(&b).ok()
}

/// Writes a container's state file atomically.
///
/// # Errors
/// The file cannot be written.
pub fn write_state(dir: &Path, st: &ContainerStatus) -> std::io::Result<()> {
    let tmp = dir.join(format!("state.json.{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(st).expect("status serialises"))?;
    std::fs::rename(tmp, dir.join("state.json"))
}

fn pump(reader: impl Read, stream: &'static str, log: Arc<Mutex<Option<LogWriter>>>) {
    let mut r = BufReader::with_capacity(MAX_RECORD, reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read at most MAX_RECORD bytes so a line without newline cannot grow memory without bound.
        let n = match (&mut r)
            .take(MAX_RECORD as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let full = line[n - 1] == b'\n';
        let content = if full { &line[..n - 1] } else { &line[..] };
        if let Some(w) = log.lock().expect("log poisoned").as_mut() {
            let _ = w.write_record(stream, content, !full);
        }
    }
}

/// Runs the container to completion. Returns the process exit code of the supervisor itself.
pub fn run(args: SuperviseArgs) -> i32 {
    let dir = &args.dir;
    let Some(mut st) = read_state(dir) else {
        eprintln!("supervise: no state.json in {}", dir.display());
        return 2;
    };
    st.supervisor_pid = Some(std::process::id() as i32);
    let log = Arc::new(Mutex::new(
        LogWriter::open(&st.config.log_path, args.log_max).ok(),
    ));
    let pid_file = dir.join("pid");
    let _ = std::fs::remove_file(&pid_file);
    let spawned = super::oci::oci_command(&args.runtime)
        .arg(format!("--log={}", dir.join("runtime.log").display()))
        .args(["run", "--bundle"])
        .arg(dir)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&st.config.id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            finish(
                dir,
                &mut st,
                128,
                Some("StartError".into()),
                Some(format!("cannot run {}: {e}", args.runtime.display())),
            );
            return 1;
        }
    };
    let mut pumps = vec![];
    if let Some(out) = child.stdout.take() {
        let l = log.clone();
        pumps.push(std::thread::spawn(move || pump(out, "stdout", l)));
    }
    if let Some(err) = child.stderr.take() {
        let l = log.clone();
        pumps.push(std::thread::spawn(move || pump(err, "stderr", l)));
    }
    // The pid file appears once the container process exists; poll briefly rather than parse crun's output.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut exited = None;
    while Instant::now() < deadline {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            st.pid = Some(pid);
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if st.pid.is_some() {
        st.state = RunState::Running;
        st.started_at = Some(rfc3339(SystemTime::now()));
        let _ = write_state(dir, &st);
    }
    let status = match exited {
        Some(s) => s,
        None => child
            .wait()
            .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(255 << 8)),
    };
    for p in pumps {
        let _ = p.join();
    }
    let code = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    if st.pid.is_none() {
        let msg = std::fs::read_to_string(dir.join("runtime.log")).unwrap_or_default();
        let msg = msg.lines().rev().take(3).collect::<Vec<_>>().join("; ");
        finish(
            dir,
            &mut st,
            code.max(128),
            Some("StartError".into()),
            Some(msg),
        );
        return 1;
    }
    let reason = if code == 0 {
        "Completed"
    } else if oom_killed(&st) {
        "OOMKilled"
    } else {
        "Error"
    };
    finish(dir, &mut st, code, Some(reason.into()), None);
    0
}

fn oom_killed(st: &ContainerStatus) -> bool {
    let p = format!(
        "/sys/fs/cgroup/memory{}/memory.oom_control",
        super::bundle::cgroup_path(&st.config)
    );
    std::fs::read_to_string(p)
        .map(|s| {
            s.lines().any(|l| {
                l.trim() == "oom_kill 1" || l.starts_with("oom_kill ") && l != "oom_kill 0"
            })
        })
        .unwrap_or(false)
}

fn finish(
    dir: &Path,
    st: &mut ContainerStatus,
    code: i32,
    reason: Option<String>,
    message: Option<String>,
) {
    st.state = RunState::Exited;
    st.exit_code = Some(code);
    st.finished_at = Some(rfc3339(SystemTime::now()));
    if st.started_at.is_none() {
        st.started_at = st.finished_at.clone();
    }
    st.reason = reason;
    st.message = message;
    let _ = write_state(dir, st);
}
