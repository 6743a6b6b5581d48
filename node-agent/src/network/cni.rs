//! Pod network through the standard CNI plugins: a generated conflist (`bridge` on `berth0` with `host-local` IPAM)
//! plus `loopback`, invoked with the CNI environment/stdin protocol (spec 1.0.0). Plugin execution sits behind
//! [`CniExec`] so the chaining, caching and error handling are unit-tested with a fake.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::netlink::IpTool;
use super::services::ServiceProxy;
use super::{Error, HostPort, Ipv4Net, PodIp, PodNetwork, Result};

/// CNI spec version of the generated configuration.
pub const CNI_VERSION: &str = "1.0.0";
/// Default directory of the Debian `containernetworking-plugins` binaries.
pub const DEFAULT_CNI_BIN_DIR: &str = "/usr/lib/cni";

/// Runs one CNI plugin. `env` carries the `CNI_*` variables; `stdin` the plugin configuration.
pub trait CniExec: Send + Sync {
    /// Executes `plugin` and returns its stdout on success.
    ///
    /// # Errors
    /// [`Error::CniFailed`] with the plugin's error message when it exits non-zero.
    fn exec(&self, plugin: &str, env: &[(&str, String)], stdin: &[u8]) -> Result<Vec<u8>>;
}

/// [`CniExec`] that runs the plugin binaries from `bin_dir`, inside the netns of `tool` (the node's netns).
#[derive(Debug, Clone)]
pub struct CniBinaries {
    bin_dir: PathBuf,
    tool: IpTool,
}

impl CniBinaries {
    /// Plugins in `bin_dir`, run in the netns `tool` targets.
    pub fn new(bin_dir: impl Into<PathBuf>, tool: IpTool) -> Self {
        CniBinaries {
            bin_dir: bin_dir.into(),
            tool,
        }
    }
}

impl CniExec for CniBinaries {
    fn exec(&self, plugin: &str, env: &[(&str, String)], stdin: &[u8]) -> Result<Vec<u8>> {
        use std::io::Write;
        let bin = self.bin_dir.join(plugin);
        let mut cmd = self.tool.command(&bin.to_string_lossy());
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_PATH", &self.bin_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let command = env
            .iter()
            .find(|(k, _)| *k == "CNI_COMMAND")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let fail = |msg: String| Error::CniFailed {
            plugin: plugin.into(),
            command: command.clone(),
            msg,
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("spawn {}: {e}", bin.display())))?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(stdin)
            .map_err(|e| fail(e.to_string()))?;
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            // Plugins report errors as JSON on stdout: {"code":N,"msg":"...","details":"..."}.
            let msg = serde_json::from_slice::<Value>(&out.stdout)
                .ok()
                .map(|v| {
                    let m = v.get("msg").and_then(Value::as_str).unwrap_or_default();
                    let d = v.get("details").and_then(Value::as_str).unwrap_or_default();
                    if d.is_empty() {
                        m.to_string()
                    } else {
                        format!("{m}: {d}")
                    }
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
            return Err(fail(msg));
        }
        Ok(out.stdout)
    }
}

/// Settings of the pod network on one node.
#[derive(Debug, Clone)]
pub struct CniConfig {
    /// Bridge name (`berth0`).
    pub bridge: String,
    /// This node's pod CIDR, e.g. `10.244.1.0/24`; the gateway is its `.1`.
    pub pod_cidr: Ipv4Net,
    /// MTU of the pod veths (underlay − 50 with the overlay).
    pub mtu: u32,
    /// Where the conflist, the host-local leases and cached results live (`{data_dir}/cni`).
    pub state_dir: PathBuf,
    /// Node IP, returned for `hostNetwork` pods.
    pub node_ip: Ipv4Addr,
}

impl CniConfig {
    /// The network configuration list in CNI 1.0 form (written to `{state_dir}/berth.conflist` for operators).
    pub fn conflist(&self) -> Value {
        let subnet = self.pod_cidr.trunc();
        json!({
            "cniVersion": CNI_VERSION,
            "name": "berth",
            "plugins": [{
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": true,
                // Adds the pod's default route via the gateway (so IPAM must not list one too).
                "isDefaultGateway": true,
                // Masquerading lives in berth's own nft table; the plugin's iptables rules would bypass it.
                "ipMasq": false,
                // A pod reaching itself through a Service IP comes back in on the same bridge port.
                "hairpinMode": true,
                "mtu": self.mtu,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": subnet.to_string(), "gateway": super::nth(&subnet, 1).to_string() }]],
                    "dataDir": self.state_dir.join("networks").to_string_lossy(),
                }
            }]
        })
    }
}

/// [`PodNetwork`] built on the CNI plugins. Results are cached per pod UID in `{state_dir}/results/` so a repeated
/// `setup` (agent restart, retry) returns the same IP without a second ADD.
pub struct CniPodNetwork {
    cfg: CniConfig,
    exec: Box<dyn CniExec>,
    /// Where `hostPort`s go (the node's Service proxy); without it publishing ports fails.
    proxy: Option<Arc<Mutex<ServiceProxy>>>,
    // Serialises ADD/DEL: host-local locks its own store, but the result cache and the bridge are shared.
    lock: Mutex<()>,
}

impl std::fmt::Debug for CniPodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CniPodNetwork")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl CniPodNetwork {
    /// Creates the state directories and writes the conflist.
    ///
    /// # Errors
    /// The state directory is not writable.
    pub fn new(cfg: CniConfig, exec: Box<dyn CniExec>) -> Result<Self> {
        let results = cfg.state_dir.join("results");
        std::fs::create_dir_all(&results).map_err(|e| Error::io("create_dir", &results, e))?;
        let path = cfg.state_dir.join("berth.conflist");
        let text = serde_json::to_string_pretty(&cfg.conflist()).expect("json value serialises");
        std::fs::write(&path, text).map_err(|e| Error::io("write", &path, e))?;
        Ok(CniPodNetwork {
            cfg,
            exec,
            proxy: None,
            lock: Mutex::new(()),
        })
    }

    /// Publishes `hostPort`s through `proxy`.
    pub fn with_proxy(mut self, proxy: Arc<Mutex<ServiceProxy>>) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &CniConfig {
        &self.cfg
    }

    fn result_path(&self, uid: &str) -> PathBuf {
        let safe: String = uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        self.cfg.state_dir.join("results").join(safe)
    }

    fn env(
        command: &str,
        uid: &str,
        netns: &Path,
        ifname: &str,
        args: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", uid.to_string()),
            ("CNI_NETNS", netns.to_string_lossy().into_owned()),
            ("CNI_IFNAME", ifname.to_string()),
            ("CNI_ARGS", args.to_string()),
        ]
    }

    /// Runs every plugin of the conflist for `command` (ADD in order with `prevResult` chaining, DEL in reverse).
    fn run_list(&self, command: &str, env: &[(&str, String)]) -> Result<Value> {
        let list = self.cfg.conflist();
        let mut plugins: Vec<Value> = list["plugins"].as_array().cloned().unwrap_or_default();
        if command == "DEL" {
            plugins.reverse();
        }
        let mut prev: Option<Value> = None;
        for mut p in plugins {
            p["name"] = list["name"].clone();
            p["cniVersion"] = list["cniVersion"].clone();
            if let Some(prev) = &prev {
                p["prevResult"] = prev.clone();
            }
            let ty = p["type"].as_str().unwrap_or_default().to_string();
            let out = self.exec.exec(&ty, env, p.to_string().as_bytes())?;
            if command == "ADD" {
                prev = Some(
                    serde_json::from_slice(&out).map_err(|e| Error::ParseFailed {
                        what: format!("cni {ty} result"),
                        detail: e.to_string(),
                    })?,
                );
            }
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    fn loopback(&self, command: &str, uid: &str, netns: &Path) -> Result<()> {
        let conf = json!({ "cniVersion": CNI_VERSION, "name": "berth-lo", "type": "loopback" });
        let env = Self::env(command, uid, netns, "lo", "");
        self.exec
            .exec("loopback", &env, conf.to_string().as_bytes())
            .map(drop)
    }
}

/// First IPv4 address of a CNI result.
fn result_ip(result: &Value) -> Result<Ipv4Addr> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| super::parse_cidr(a).ok())
        .map(|c| c.addr())
        .next()
        .ok_or_else(|| Error::ParseFailed {
            what: "cni result".into(),
            detail: format!("no ipv4 address in {result}"),
        })
}

impl PodNetwork for CniPodNetwork {
    fn setup(
        &self,
        pod_uid: &str,
        pod_ns: &str,
        pod_name: &str,
        netns_path: &Path,
        host_network: bool,
    ) -> Result<PodIp> {
        if host_network {
            return Ok(PodIp {
                ip: self.cfg.node_ip,
            });
        }
        let _g = self.lock.lock().unwrap();
        let cache = self.result_path(pod_uid);
        if let Ok(text) = std::fs::read_to_string(&cache) {
            if let Ok(ip) = text.trim().parse() {
                return Ok(PodIp { ip });
            }
        }
        self.loopback("ADD", pod_uid, netns_path)?;
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={pod_ns};K8S_POD_NAME={pod_name};K8S_POD_INFRA_CONTAINER_ID={pod_uid}");
        let env = Self::env("ADD", pod_uid, netns_path, "eth0", &args);
        let result = match self.run_list("ADD", &env) {
            Ok(r) => r,
            Err(e) => {
                // Release whatever the failed ADD allocated; the pod manager retries setup later.
                let del = Self::env("DEL", pod_uid, netns_path, "eth0", &args);
                let _ = self.run_list("DEL", &del);
                return Err(e);
            }
        };
        let ip = result_ip(&result)?;
        std::fs::write(&cache, ip.to_string()).map_err(|e| Error::io("write", &cache, e))?;
        Ok(PodIp { ip })
    }

    fn setup_isolated(&self, pod_uid: &str, netns_path: &Path) -> Result<()> {
        self.loopback("ADD", pod_uid, netns_path)
    }

    fn publish(&self, pod_uid: &str, ip: Ipv4Addr, ports: &[HostPort]) -> Result<()> {
        match &self.proxy {
            Some(p) => p.lock().unwrap().publish(pod_uid, ip, ports),
            None if ports.is_empty() => Ok(()),
            None => Err(Error::InvalidConfig(
                "hostPort needs the node's service proxy".into(),
            )),
        }
    }

    fn teardown(&self, pod_uid: &str, netns_path: &Path) -> Result<()> {
        if let Some(p) = &self.proxy {
            p.lock()
                .unwrap()
                .publish(pod_uid, Ipv4Addr::UNSPECIFIED, &[])?;
        }
        let _g = self.lock.lock().unwrap();
        let cache = self.result_path(pod_uid);
        if !cache.exists() {
            // Never attached (host network, isolated, or already torn down): nothing was allocated.
            return Ok(());
        }
        // A netns that is already gone is passed as "" so the plugins only release the IPAM lease.
        let ns = if netns_path.exists() {
            netns_path.to_path_buf()
        } else {
            PathBuf::new()
        };
        let env = Self::env("DEL", pod_uid, &ns, "eth0", "");
        self.run_list("DEL", &env)?;
        let _ = std::fs::remove_file(&cache);
        Ok(())
    }
}

/// A [`CniExec`] that imitates bridge + host-local: hands out `.2, .3, ...` of the subnet in the config, records
/// `(plugin, CNI_COMMAND, CNI_CONTAINERID, CNI_IFNAME)` per call, and can fail a plugin on request.
#[derive(Debug, Default)]
pub struct FakeCni {
    st: Mutex<FakeCniState>,
}

#[derive(Debug, Default)]
struct FakeCniState {
    calls: Vec<(String, String, String, String)>,
    stdins: Vec<Value>,
    leases: BTreeMap<String, Ipv4Addr>,
    fail: Option<(String, String)>,
}

impl FakeCni {
    /// A fake with no leases.
    pub fn new() -> Self {
        Self::default()
    }

    /// `(plugin, command, container id, ifname)` of every call.
    pub fn calls(&self) -> Vec<(String, String, String, String)> {
        self.st.lock().unwrap().calls.clone()
    }

    /// The configuration each call received on stdin.
    pub fn stdins(&self) -> Vec<Value> {
        self.st.lock().unwrap().stdins.clone()
    }

    /// Container IDs holding a lease.
    pub fn leases(&self) -> Vec<String> {
        self.st.lock().unwrap().leases.keys().cloned().collect()
    }

    /// Makes `plugin` fail for `command` from now on.
    pub fn fail(&self, plugin: &str, command: &str) {
        self.st.lock().unwrap().fail = Some((plugin.into(), command.into()));
    }
}

impl CniExec for FakeCni {
    fn exec(&self, plugin: &str, env: &[(&str, String)], stdin: &[u8]) -> Result<Vec<u8>> {
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let (cmd, id, ifname) = (
            get("CNI_COMMAND"),
            get("CNI_CONTAINERID"),
            get("CNI_IFNAME"),
        );
        let conf: Value = serde_json::from_slice(stdin).map_err(|e| Error::ParseFailed {
            what: "fake cni stdin".into(),
            detail: e.to_string(),
        })?;
        let mut st = self.st.lock().unwrap();
        st.calls
            .push((plugin.into(), cmd.clone(), id.clone(), ifname));
        st.stdins.push(conf.clone());
        if st.fail.as_ref() == Some(&(plugin.to_string(), cmd.clone())) {
            return Err(Error::CniFailed {
                plugin: plugin.into(),
                command: cmd,
                msg: "injected".into(),
            });
        }
        if plugin != "bridge" {
            return Ok(json!({ "cniVersion": CNI_VERSION })
                .to_string()
                .into_bytes());
        }
        match cmd.as_str() {
            "ADD" => {
                let subnet = super::parse_cidr(
                    conf["ipam"]["ranges"][0][0]["subnet"]
                        .as_str()
                        .unwrap_or("10.244.0.0/24"),
                )?;
                let used: Vec<Ipv4Addr> = st.leases.values().copied().collect();
                let ip = (2..255)
                    .map(|n| super::nth(&subnet, n))
                    .find(|ip| !used.contains(ip))
                    .expect("fake pool exhausted");
                st.leases.insert(id, ip);
                let r = json!({
                    "cniVersion": CNI_VERSION,
                    "interfaces": [{ "name": "eth0" }],
                    "ips": [{ "address": format!("{ip}/{}", subnet.prefix_len()), "gateway": super::nth(&subnet, 1).to_string(), "interface": 0 }]
                });
                Ok(r.to_string().into_bytes())
            }
            "DEL" => {
                st.leases.remove(&id);
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Shared(Arc<FakeCni>);
    impl CniExec for Shared {
        fn exec(&self, plugin: &str, env: &[(&str, String)], stdin: &[u8]) -> Result<Vec<u8>> {
            self.0.exec(plugin, env, stdin)
        }
    }

    fn net(dir: &Path) -> (CniPodNetwork, Arc<FakeCni>) {
        let fake = Arc::new(FakeCni::new());
        let cfg = CniConfig {
            bridge: "berth0".into(),
            pod_cidr: "10.244.3.0/24".parse().unwrap(),
            mtu: 1450,
            state_dir: dir.join("cni"),
            node_ip: Ipv4Addr::new(172, 31, 0, 3),
        };
        (
            CniPodNetwork::new(cfg, Box::new(Shared(fake.clone()))).unwrap(),
            fake,
        )
    }

    #[test]
    fn conflist_has_bridge_gateway_mtu_and_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (n, _) = net(dir.path());
        let c = n.config().conflist();
        let p = &c["plugins"][0];
        assert_eq!(p["type"], "bridge");
        assert_eq!(p["bridge"], "berth0");
        assert_eq!(p["mtu"], 1450);
        assert_eq!(p["ipMasq"], false);
        assert_eq!(p["ipam"]["ranges"][0][0]["gateway"], "10.244.3.1");
        assert_eq!(p["ipam"]["ranges"][0][0]["subnet"], "10.244.3.0/24");
        assert!(p["ipam"]["dataDir"]
            .as_str()
            .unwrap()
            .starts_with(dir.path().to_str().unwrap()));
        assert!(dir.path().join("cni/berth.conflist").exists());
    }

    #[test]
    fn setup_runs_loopback_then_bridge_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let (n, fake) = net(dir.path());
        let ns = Path::new("/run/netns/berth-a");
        let ip = n.setup("uid-a", "default", "a", ns, false).unwrap();
        assert_eq!(ip.ip, Ipv4Addr::new(10, 244, 3, 2));
        assert_eq!(n.setup("uid-a", "default", "a", ns, false).unwrap(), ip);
        let calls = fake.calls();
        assert_eq!(
            calls.len(),
            2,
            "second setup must come from the cache: {calls:?}"
        );
        assert_eq!(
            calls[0],
            ("loopback".into(), "ADD".into(), "uid-a".into(), "lo".into())
        );
        assert_eq!(
            calls[1],
            ("bridge".into(), "ADD".into(), "uid-a".into(), "eth0".into())
        );
        let stdin = &fake.stdins()[1];
        assert_eq!(stdin["name"], "berth");
        assert_eq!(stdin["cniVersion"], CNI_VERSION);
        let b = n.setup("uid-b", "default", "b", ns, false).unwrap();
        assert_eq!(b.ip, Ipv4Addr::new(10, 244, 3, 3));
    }

    #[test]
    fn host_network_and_isolated_allocate_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (n, fake) = net(dir.path());
        let ns = Path::new("/run/netns/berth-h");
        assert_eq!(
            n.setup("h", "default", "h", ns, true).unwrap().ip,
            Ipv4Addr::new(172, 31, 0, 3)
        );
        n.setup_isolated("i", ns).unwrap();
        assert_eq!(
            fake.calls(),
            vec![("loopback".into(), "ADD".into(), "i".into(), "lo".into())]
        );
        n.teardown("h", ns).unwrap();
        n.teardown("i", ns).unwrap();
        assert_eq!(
            fake.calls().len(),
            1,
            "teardown of unattached pods must not call plugins"
        );
        assert!(fake.leases().is_empty());
    }

    #[test]
    fn teardown_releases_lease_once() {
        let dir = tempfile::tempdir().unwrap();
        let (n, fake) = net(dir.path());
        let ns = Path::new("/nonexistent/netns");
        n.setup("u", "default", "p", ns, false).unwrap();
        assert_eq!(fake.leases(), vec!["u".to_string()]);
        n.teardown("u", ns).unwrap();
        assert!(fake.leases().is_empty());
        n.teardown("u", ns).unwrap();
        let dels: Vec<_> = fake.calls().into_iter().filter(|c| c.1 == "DEL").collect();
        assert_eq!(dels.len(), 1);
        // The netns was gone, so the plugin got an empty CNI_NETNS.
        assert_eq!(fake.calls().last().unwrap().0, "bridge");
    }

    #[test]
    fn failed_add_releases_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let (n, fake) = net(dir.path());
        fake.fail("bridge", "ADD");
        let err = n
            .setup("u", "default", "p", Path::new("/x"), false)
            .unwrap_err();
        assert!(
            matches!(err, Error::CniFailed { ref plugin, .. } if plugin == "bridge"),
            "{err:?}"
        );
        assert!(fake.calls().iter().any(|c| c.1 == "DEL"));
        assert!(!dir.path().join("cni/results/u").exists());
    }

    #[test]
    fn result_ip_parses_first_ipv4() {
        let r = json!({"ips": [{"address": "10.244.1.9/24"}]});
        assert_eq!(result_ip(&r).unwrap(), Ipv4Addr::new(10, 244, 1, 9));
        assert!(result_ip(&json!({"ips": []})).is_err());
    }
}
