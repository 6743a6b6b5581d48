//! Shared helpers for berth end-to-end tests: a lab cluster guard over `berthctl lab`, command runners,
//! a tiny HTTP/1.1 client (plain for pods' ports, HTTPS with the lab's admin certificate, no credentials
//! or a bearer token for the API), and bounded polling. `linearizability` is a pure checker for
//! register histories; `lin_workload` records such histories from a lab's API under faults.
//! `autoscale` is the HPA scenario of `manifests/hpa.yaml`, shared by its test and `hpa-bench`.

pub mod autoscale;
pub mod lin_workload;
pub mod linearizability;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// The workspace root (`tests/..`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where cargo put the workspace binaries (`target/debug`, or `$CARGO_TARGET_DIR/debug`).
pub fn bin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("debug")
}

/// Why an end-to-end test cannot run here, if it cannot (not root, a binary or tool missing).
pub fn skip_reason() -> Option<String> {
    if !nix_is_root() {
        return Some("needs root (network namespaces, containers)".into());
    }
    for b in ["berthctl", "berth-server", "berth-agent"] {
        if !bin_dir().join(b).exists() {
            return Some(format!(
                "{b} not built (run `cargo build --workspace --bins`)"
            ));
        }
    }
    for tool in [
        "/usr/bin/crun",
        "/usr/sbin/nft",
        "/usr/lib/cni/bridge",
        "/usr/bin/kubectl",
    ] {
        let runc_instead = tool.ends_with("crun") && Path::new("/usr/bin/runc").exists();
        if !Path::new(tool).exists() && !runc_instead {
            let why = format!("{tool} missing (run scripts/setup.sh)");
            // In CI a missing tool is a broken setup, not a reason to pass quietly.
            assert!(std::env::var_os("CI").is_none(), "{why}");
            return Some(why);
        }
    }
    None
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command, failing with its output when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command and returns its output whatever the exit status.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("failed to run {cmd:?}"))
}

/// Polls `check` every `every` until it returns `Ok(Some(_))`, or fails after `limit` with the last
/// error or "not yet" state. Every wait in the suite is bounded this way.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    let mut last = String::from("condition never held");
    loop {
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}: {last}");
        }
        std::thread::sleep(every);
    }
}

/// An HTTP response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body (de-chunked).
    pub body: String,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// A minimal HTTP/1.1 request (one connection per request, bounded by `timeout`). Enough for tests that
/// must see exactly which member answered and when, without a client library's retries. Plain HTTP: for
/// pods' ports; the API is HTTPS ([`https`]).
pub fn http(
    method: &str,
    addr: SocketAddr,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    exchange(s, method, &addr.to_string(), path, body, None)
}

/// How an HTTPS request to the API authenticates: the trusted CA, maybe a client certificate, maybe a
/// bearer token.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
    bearer: Option<String>,
}

impl Tls {
    /// Trusts `ca_pem` and presents the client certificate `cert` (`(cert_pem, key_pem)`) if given.
    ///
    /// # Errors
    /// When the PEM does not parse.
    pub fn new(ca_pem: &str, cert: Option<(&str, &str)>) -> Result<Tls> {
        pki::install_crypto_provider();
        let source = cert
            .map(|(c, k)| pki::CertSource::from_pem(c, k))
            .transpose()?;
        Ok(Tls {
            config: pki::client_config(ca_pem, source, &[b"http/1.1"])?,
            bearer: None,
        })
    }

    /// The same, also sending `Authorization: Bearer <token>`.
    pub fn with_bearer(&self, token: &str) -> Tls {
        Tls {
            config: self.config.clone(),
            bearer: Some(token.to_string()),
        }
    }
}

/// The CA and the client certificate and key (all PEM) of a kubeconfig's current context.
///
/// # Errors
/// When the file cannot be read or lacks `certificate-authority-data`, `client-certificate-data` or
/// `client-key-data`.
pub fn kubeconfig_credentials(path: &Path) -> Result<(String, String, String)> {
    use base64::Engine as _;
    let kc: Value = serde_yaml::from_str(&std::fs::read_to_string(path)?)
        .with_context(|| format!("{} is not YAML", path.display()))?;
    let current = kc["current-context"].as_str().unwrap_or_default();
    let named = |list: &str, name: &str| -> Option<Value> {
        let items = kc[list].as_array()?;
        items
            .iter()
            .find(|i| i["name"] == name)
            .or(items.first())
            .cloned()
    };
    let ctx = named("contexts", current).unwrap_or(Value::Null);
    let cluster = named(
        "clusters",
        ctx["context"]["cluster"].as_str().unwrap_or_default(),
    )
    .context("kubeconfig has no cluster")?;
    let user = named("users", ctx["context"]["user"].as_str().unwrap_or_default())
        .context("kubeconfig has no user")?;
    let pem = |v: &Value, what: &str| -> Result<String> {
        let b64 = v
            .as_str()
            .with_context(|| format!("kubeconfig has no {what}"))?;
        Ok(String::from_utf8(
            base64::engine::general_purpose::STANDARD.decode(b64.trim())?,
        )?)
    };
    Ok((
        pem(
            &cluster["cluster"]["certificate-authority-data"],
            "certificate-authority-data",
        )?,
        pem(
            &user["user"]["client-certificate-data"],
            "client-certificate-data",
        )?,
        pem(&user["user"]["client-key-data"], "client-key-data")?,
    ))
}

/// [`http`] over TLS, verifying the server by the address' IP and authenticating as `tls` says.
pub fn https(
    tls: &Tls,
    method: &str,
    addr: SocketAddr,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let name = pki::net::server_name(&addr.ip().to_string())?;
    let conn = rustls::ClientConnection::new(tls.config.clone(), name)?;
    let stream = rustls::StreamOwned::new(conn, s);
    exchange(
        stream,
        method,
        &addr.to_string(),
        path,
        body,
        tls.bearer.as_deref(),
    )
}

/// Sends one request on `s` and reads the response to the end of the connection.
fn exchange(
    mut s: impl Read + Write,
    method: &str,
    host: &str,
    path: &str,
    body: Option<&str>,
    bearer: Option<&str>,
) -> Result<Response> {
    let body = body.unwrap_or("");
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A TLS peer that closes without close_notify: the response is complete when it closes.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(e.into()),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("malformed response: {text}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no status line: {head}"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok(Response { status, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Whether a pod runs and its Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Builds the offline test image (`tests/images/build.sh`) and returns the path of its OCI tar.
pub fn busybox_oci_image() -> Result<String> {
    let images = run(Command::new("bash").arg(workspace().join("tests/images/build.sh")))?;
    images
        .lines()
        .find(|l| l.ends_with("busybox-oci.tar"))
        .map(str::to_string)
        .context("build.sh printed no OCI tar")
}

/// A running lab cluster made by `berthctl lab up`; dropping it runs `lab down`.
pub struct Lab {
    /// Lab name.
    pub name: String,
    /// Kubeconfig path.
    pub kubeconfig: PathBuf,
    /// Bridge gateway on the host side (the lab subnet's .1).
    pub state: Value,
    /// HTTPS with the lab's admin client certificate (`system:masters`).
    pub admin: Tls,
    /// HTTPS trusting the lab's CA, with no credentials (anonymous).
    pub anonymous: Tls,
    kubectl_cache: tempfile::TempDir,
    /// Held while the lab lives: every lab uses the same subnet, so two at once would tear each other down.
    _lock: std::fs::File,
}

/// Takes the machine-wide lab lock, or says who cannot have it.
fn lab_lock() -> Result<std::fs::File> {
    std::fs::create_dir_all("/var/lib/berth/labs")?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/var/lib/berth/labs/.test-lock")?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another test run holds a lab on this machine (/var/lib/berth/labs/.test-lock); labs share one subnet, run them one at a time"
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

impl Lab {
    /// `berthctl lab up --name NAME --servers S --agents A`, after removing any leftover of the same name.
    pub fn up(name: &str, servers: usize, agents: usize) -> Result<Lab> {
        Lab::up_with_env(name, servers, agents, &[])
    }

    /// [`Lab::up`] with extra environment for every server (`--server-env KEY=VALUE`), which the lab
    /// keeps for restarts too.
    pub fn up_with_env(
        name: &str,
        servers: usize,
        agents: usize,
        server_env: &[(&str, &str)],
    ) -> Result<Lab> {
        let lock = lab_lock()?;
        let _ =
            output(Command::new(bin_dir().join("berthctl")).args(["lab", "down", "--name", name]));
        let mut up = Command::new(bin_dir().join("berthctl"));
        up.args([
            "lab",
            "up",
            "--name",
            name,
            "--servers",
            &servers.to_string(),
            "--agents",
            &agents.to_string(),
            "--timeout",
            "120s",
        ]);
        for (k, v) in server_env {
            up.arg("--server-env").arg(format!("{k}={v}"));
        }
        run(&mut up)?;
        let dir = PathBuf::from(format!("/var/lib/berth/labs/{name}"));
        let state: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("lab.json"))?)?;
        let kubeconfig = dir.join("kubeconfig");
        let (ca, cert, key) = kubeconfig_credentials(&kubeconfig)?;
        Ok(Lab {
            name: name.to_string(),
            kubeconfig,
            state,
            admin: Tls::new(&ca, Some((&cert, &key)))?,
            anonymous: Tls::new(&ca, None)?,
            kubectl_cache: tempfile::tempdir()?,
            _lock: lock,
        })
    }

    /// Nodes of a role (`server` or `agent`) as (name, ip).
    pub fn nodes(&self, role: &str) -> Vec<(String, String)> {
        self.state["plan"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                n["role"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case(role))
            })
            .map(|n| {
                (
                    n["name"].as_str().unwrap_or_default().to_string(),
                    n["ip"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// API addresses of every server.
    pub fn api_addrs(&self) -> Vec<SocketAddr> {
        self.nodes("server")
            .into_iter()
            .filter_map(|(_, ip)| format!("{ip}:6443").parse().ok())
            .collect()
    }

    /// `berthctl ARGS` against this lab.
    pub fn berthctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new(bin_dir().join("berthctl"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args))
    }

    /// `berthctl lab VERB --name NAME [NODE]`.
    pub fn lab(&self, verb: &str, node: Option<&str>) -> Result<String> {
        let mut args = vec!["lab", verb, "--name", &self.name];
        if let Some(n) = node {
            args.push(n);
        }
        run(Command::new(bin_dir().join("berthctl")).args(&args))
    }

    /// Stock `kubectl ARGS` against this lab (fresh discovery cache per lab).
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.kubectl_cache.path())
            .arg("--request-timeout=10s")
            .args(args))
    }

    /// An HTTPS request to one server's API as the lab admin.
    pub fn api(
        &self,
        method: &str,
        addr: SocketAddr,
        path: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<Response> {
        https(&self.admin, method, addr, path, body, timeout)
    }

    /// Pods labelled `app=APP` in the default namespace that are not being deleted.
    pub fn live_pods_of(&self, app: &str) -> Result<Vec<Value>> {
        let list = self.get_json(&format!(
            "/api/v1/namespaces/default/pods?labelSelector=app%3D{app}"
        ))?;
        Ok(list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect())
    }

    /// GET a JSON document from the first server that answers (as the lab admin, over HTTPS).
    pub fn get_json(&self, path: &str) -> Result<Value> {
        let mut last = anyhow!("no servers");
        for addr in self.api_addrs() {
            match self.api("GET", addr, path, None, Duration::from_secs(3)) {
                Ok(r) if r.status == 200 => return r.json(),
                Ok(r) => last = anyhow!("{addr}: {} {}", r.status, r.body),
                Err(e) => last = anyhow!("{addr}: {e}"),
            }
        }
        Err(last)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::env::var_os("BERTH_KEEP_LAB").is_some() {
            eprintln!("BERTH_KEEP_LAB set: leaving lab {} up", self.name);
            return;
        }
        let _ = output(
            Command::new(bin_dir().join("berthctl")).args(["lab", "down", "--name", &self.name]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// A one-request-per-connection HTTPS server on 127.0.0.1 that answers with who called: `cert`,
    /// `bearer <token>` or `anonymous`.
    fn serve(ca: &pki::Ca) -> SocketAddr {
        let server = ca
            .issue(&pki::CertRequest {
                common_name: "api".into(),
                organizations: vec![],
                dns_names: vec![],
                ips: vec!["127.0.0.1".parse().unwrap()],
                usage: pki::Usage::Server,
                validity: Duration::from_secs(600),
            })
            .unwrap();
        let cfg = pki::server_config(
            ca.cert_pem(),
            pki::CertSource::from_pem(&server.cert_pem, &server.key_pem).unwrap(),
            pki::ClientAuth::Optional,
            &[b"http/1.1"],
        )
        .unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for tcp in l.incoming().flatten() {
                let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let req = String::from_utf8_lossy(&req).into_owned();
                let who = if s.conn.peer_certificates().is_some() {
                    "cert".to_string()
                } else if let Some(l) = req.lines().find(|l| l.starts_with("Authorization: ")) {
                    l.trim_start_matches("Authorization: ").to_lowercase()
                } else {
                    "anonymous".to_string()
                };
                let body = format!("{{\"who\":\"{who}\"}}");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.conn.send_close_notify();
                let _ = s.flush();
            }
        });
        addr
    }

    #[test]
    fn https_with_the_kubeconfig_certificate_anonymous_and_bearer() {
        pki::install_crypto_provider();
        let ca = pki::Ca::generate("t", Duration::from_secs(600)).unwrap();
        let admin = ca
            .issue(&pki::CertRequest::client(
                "berth-admin",
                &[pki::GROUP_MASTERS],
                Duration::from_secs(600),
            ))
            .unwrap();
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kubeconfig");
        std::fs::write(
            &kc,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: a\n  context:\n    cluster: a\n    user: u\ncurrent-context: a\n",
                b(ca.cert_pem()),
                b(&admin.cert_pem),
                b(&admin.key_pem)
            ),
        )
        .unwrap();
        let (ca_pem, cert, key) = kubeconfig_credentials(&kc).unwrap();
        let addr = serve(&ca);
        let t = Duration::from_secs(5);
        let admin = Tls::new(&ca_pem, Some((&cert, &key))).unwrap();
        let anon = Tls::new(&ca_pem, None).unwrap();
        let who = |tls: &Tls| {
            https(tls, "GET", addr, "/api/v1/secrets", None, t)
                .unwrap()
                .json()
                .unwrap()["who"]
                .clone()
        };
        assert_eq!(who(&admin), "cert");
        assert_eq!(who(&anon), "anonymous");
        assert_eq!(
            who(&anon.with_bearer("abcdef.0123456789abcdef")),
            "bearer abcdef.0123456789abcdef"
        );
        // A server from another CA is refused.
        let other = pki::Ca::generate("t", Duration::from_secs(600)).unwrap();
        let stranger = serve(&other);
        assert!(https(&anon, "GET", stranger, "/", None, t).is_err());
    }
}
