//! A private Docker engine for side-by-side benchmarks (`docker run`, Docker Swarm): its own data root,
//! exec root and socket in a temporary directory, no iptables changes and no bridge, so it touches
//! nothing of the host's network. Stopped and removed on drop.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};

/// A running private `dockerd`.
pub struct Dockerd {
    child: Child,
    host: String,
    root: tempfile::TempDir,
}

impl Dockerd {
    /// Starts the engine and waits (up to 30 s) until `docker info` answers.
    ///
    /// # Errors
    /// When dockerd is not installed, does not start or does not answer.
    pub fn start() -> anyhow::Result<Dockerd> {
        ensure!(
            Path::new("/usr/bin/dockerd").exists() || Path::new("/usr/sbin/dockerd").exists(),
            "dockerd not installed"
        );
        let root = tempfile::tempdir()?;
        let host = format!("unix://{}", root.path().join("docker.sock").display());
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(root.path().join("data"))
            .arg("--exec-root")
            .arg(root.path().join("exec"))
            .arg("--pidfile")
            .arg(root.path().join("docker.pid"))
            .args([
                "-H",
                &host,
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.path().join("dockerd.log"))?)
            .spawn()
            .context("failed to start dockerd")?;
        let d = Dockerd { child, host, root };
        let t0 = Instant::now();
        while !d
            .docker(&["info"])
            .map(|o| o.status.success())
            .unwrap_or(false)
        {
            ensure!(
                t0.elapsed() < Duration::from_secs(30),
                "dockerd did not answer (log: {})",
                d.root.path().join("dockerd.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(d)
    }

    /// The `-H` address of the engine.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Runs the docker CLI against this engine.
    ///
    /// # Errors
    /// When the CLI cannot be started.
    pub fn docker(&self, args: &[&str]) -> std::io::Result<Output> {
        Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .output()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
