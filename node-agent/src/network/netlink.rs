//! The OS seam of the network layer: links, addresses, FDB, neighbours, routes, sysctls and nftables, behind the
//! [`Netlink`] trait. [`IpTool`] implements it with iproute2 (`ip -j`, `bridge -j`) and `nft -f`, optionally inside a
//! named netns (so one process can drive several test "nodes"); `fake::FakeNetlink` records calls.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::netns::output;
use super::{Error, Ipv4Net, Result};

/// A network device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface name.
    pub name: String,
    /// MTU in bytes.
    pub mtu: u32,
    /// MAC address, lower-case `aa:bb:..`.
    pub mac: String,
    /// VXLAN parameters when the link is a VXLAN device.
    pub vxlan: Option<VxlanParams>,
}

/// Parameters of a VXLAN device that must match for it to be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanParams {
    /// VXLAN network identifier.
    pub vni: u32,
    /// Local (underlay) address.
    pub local: Ipv4Addr,
    /// UDP destination port.
    pub port: u16,
}

/// A VXLAN device to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// Interface name.
    pub name: String,
    /// VNI, local address and port.
    pub params: VxlanParams,
    /// MAC address to set (derived from the node IP).
    pub mac: String,
    /// MTU of the device.
    pub mtu: u32,
}

/// A static forwarding entry on a VXLAN device: frames for `mac` are sent to underlay address `dst`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbEntry {
    /// Destination MAC (a peer VTEP).
    pub mac: String,
    /// Underlay address of the peer.
    pub dst: Ipv4Addr,
}

/// A permanent ARP entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Neighbour {
    /// IP address.
    pub ip: Ipv4Addr,
    /// MAC it resolves to.
    pub mac: String,
}

/// A route through a device with an on-link gateway.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// Destination network.
    pub dst: Ipv4Net,
    /// Next hop.
    pub via: Ipv4Addr,
}

/// Everything the network layer asks of the kernel. Implementations *MUST* make `*_replace` and `add_*` idempotent
/// and `*_delete` of an absent entry an error-free no-op, so callers can reconcile by diffing.
pub trait Netlink: Send + Sync {
    /// The link called `name`, or `None`.
    fn link(&self, name: &str) -> Result<Option<Link>>;
    /// Name and MTU of the device that carries `ip` (the underlay for VXLAN).
    fn link_of_addr(&self, ip: Ipv4Addr) -> Result<Option<Link>>;
    /// Creates a bridge (no-op if it exists), sets its MAC and `mtu` and brings it up.
    fn add_bridge(&self, name: &str, mac: &str, mtu: u32) -> Result<()>;
    /// Creates a VXLAN device with `nolearning`, sets its MAC and MTU and brings it up.
    fn add_vxlan(&self, spec: &VxlanSpec) -> Result<()>;
    /// Deletes a link (no-op if absent).
    fn delete_link(&self, name: &str) -> Result<()>;
    /// Sets the MAC address of a link.
    fn set_mac(&self, name: &str, mac: &str) -> Result<()>;
    /// Sets the MTU of a link.
    fn set_mtu(&self, name: &str, mtu: u32) -> Result<()>;
    /// IPv4 addresses on a link.
    fn addresses(&self, dev: &str) -> Result<Vec<Ipv4Net>>;
    /// Adds an address to a link (no-op if present).
    fn add_address(&self, dev: &str, addr: Ipv4Net) -> Result<()>;
    /// Permanent FDB entries with a remote destination on `dev`.
    fn fdb(&self, dev: &str) -> Result<Vec<FdbEntry>>;
    /// Adds or replaces an FDB entry.
    fn fdb_replace(&self, dev: &str, e: &FdbEntry) -> Result<()>;
    /// Deletes an FDB entry.
    fn fdb_delete(&self, dev: &str, e: &FdbEntry) -> Result<()>;
    /// Permanent neighbour entries on `dev`.
    fn neighbours(&self, dev: &str) -> Result<Vec<Neighbour>>;
    /// Adds or replaces a permanent neighbour entry.
    fn neigh_replace(&self, dev: &str, n: &Neighbour) -> Result<()>;
    /// Deletes a neighbour entry.
    fn neigh_delete(&self, dev: &str, n: &Neighbour) -> Result<()>;
    /// Routes with a gateway through `dev` in the main table.
    fn routes(&self, dev: &str) -> Result<Vec<Route>>;
    /// Adds or replaces an `onlink` route through `dev`.
    fn route_replace(&self, dev: &str, r: &Route) -> Result<()>;
    /// Deletes a route through `dev`.
    fn route_delete(&self, dev: &str, r: &Route) -> Result<()>;
    /// Adds or replaces a direct route `dst dev DEV` (scope link), e.g. the service CIDR onto the bridge.
    fn route_replace_dev(&self, dev: &str, dst: Ipv4Net) -> Result<()>;
    /// Writes a sysctl such as `net.ipv4.ip_forward`.
    fn sysctl(&self, key: &str, value: &str) -> Result<()>;
    /// Applies an nftables script as one atomic transaction (`nft -f -`).
    fn nft(&self, script: &str) -> Result<()>;
    /// Runs `nft` with arguments and returns its stdout (listing).
    fn nft_list(&self, args: &[&str]) -> Result<String>;
}

/// [`Netlink`] over the iproute2 and nftables command-line tools. With `netns = Some(name)` every command runs in
/// that named netns (`ip -n`, `ip netns exec`), which is how tests drive several nodes from one process.
#[derive(Debug, Clone, Default)]
pub struct IpTool {
    netns: Option<String>,
}

impl IpTool {
    /// Operates on the caller's own netns (the agent's normal mode).
    pub fn host() -> Self {
        IpTool { netns: None }
    }

    /// Operates inside the named netns `/run/netns/{name}`.
    pub fn in_netns(name: &str) -> Self {
        IpTool {
            netns: Some(name.to_string()),
        }
    }

    /// The named netns this tool targets, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// A command for `prog` that runs in the target netns.
    pub fn command(&self, prog: &str) -> Command {
        match &self.netns {
            None => Command::new(prog),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, prog]);
                c
            }
        }
    }

    fn ip(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ip");
        if let Some(ns) = &self.netns {
            c.args(["-n", ns]);
        }
        output(c.args(args))
    }

    fn bridge(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("bridge");
        if let Some(ns) = &self.netns {
            c.args(["-n", ns]);
        }
        output(c.args(args))
    }

    fn json(&self, what: &str, text: &str) -> Result<Vec<Value>> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(text).map_err(|e| Error::ParseFailed {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }
}

fn is_absent(e: &Error) -> bool {
    match e {
        Error::CommandFailed { stderr, .. } => {
            let s = stderr.to_ascii_lowercase();
            s.contains("cannot find device")
                || s.contains("no such")
                || s.contains("does not exist")
                || s.contains("not found")
        }
        _ => false,
    }
}

fn ignore_absent(r: Result<String>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_absent(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

fn parse_link(v: &Value) -> Option<Link> {
    let vxlan = v
        .get("linkinfo")
        .filter(|li| li.get("info_kind").and_then(Value::as_str) == Some("vxlan"))
        .and_then(|li| {
            let d = li.get("info_data")?;
            Some(VxlanParams {
                vni: d.get("id")?.as_u64()? as u32,
                local: d.get("local")?.as_str()?.parse().ok()?,
                port: d.get("port")?.as_u64()? as u16,
            })
        });
    Some(Link {
        name: v.get("ifname")?.as_str()?.to_string(),
        mtu: v.get("mtu")?.as_u64()? as u32,
        mac: v
            .get("address")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        vxlan,
    })
}

impl Netlink for IpTool {
    fn link(&self, name: &str) -> Result<Option<Link>> {
        match self.ip(&["-j", "-d", "link", "show", "dev", name]) {
            Ok(text) => Ok(self.json("ip link", &text)?.first().and_then(parse_link)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link_of_addr(&self, ip: Ipv4Addr) -> Result<Option<Link>> {
        let text = self.ip(&["-j", "-4", "addr", "show"])?;
        for v in self.json("ip addr", &text)? {
            let has = v
                .get("addr_info")
                .and_then(Value::as_array)
                .is_some_and(|a| {
                    a.iter().any(|ai| {
                        ai.get("local").and_then(Value::as_str) == Some(ip.to_string().as_str())
                    })
                });
            if has {
                return Ok(parse_link(&v));
            }
        }
        Ok(None)
    }

    fn add_bridge(&self, name: &str, mac: &str, mtu: u32) -> Result<()> {
        if self.link(name)?.is_none() {
            self.ip(&["link", "add", name, "type", "bridge"])?;
        }
        let mtu = mtu.to_string();
        self.ip(&["link", "set", name, "address", mac, "mtu", &mtu, "up"])?;
        Ok(())
    }

    fn add_vxlan(&self, spec: &VxlanSpec) -> Result<()> {
        let p = &spec.params;
        self.ip(&[
            "link",
            "add",
            &spec.name,
            "type",
            "vxlan",
            "id",
            &p.vni.to_string(),
            "local",
            &p.local.to_string(),
            "dstport",
            &p.port.to_string(),
            "nolearning",
            // RFC 7348: the outer UDP checksum SHOULD be zero; the inner packet carries its own.
            "noudpcsum",
        ])?;
        self.ip(&[
            "link",
            "set",
            &spec.name,
            "address",
            &spec.mac,
            "mtu",
            &spec.mtu.to_string(),
            "up",
        ])?;
        Ok(())
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        ignore_absent(self.ip(&["link", "del", name]))
    }

    fn set_mac(&self, name: &str, mac: &str) -> Result<()> {
        self.ip(&["link", "set", name, "address", mac]).map(drop)
    }

    fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        self.ip(&["link", "set", name, "mtu", &mtu.to_string()])
            .map(drop)
    }

    fn addresses(&self, dev: &str) -> Result<Vec<Ipv4Net>> {
        let text = self.ip(&["-j", "-4", "addr", "show", "dev", dev])?;
        let mut out = Vec::new();
        for v in self.json("ip addr", &text)? {
            for ai in v
                .get("addr_info")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (Some(local), Some(plen)) = (
                    ai.get("local").and_then(Value::as_str),
                    ai.get("prefixlen").and_then(Value::as_u64),
                ) else {
                    continue;
                };
                if let Ok(a) = local.parse() {
                    out.push(Ipv4Net::new_assert(a, plen as u8));
                }
            }
        }
        Ok(out)
    }

    fn add_address(&self, dev: &str, addr: Ipv4Net) -> Result<()> {
        self.ip(&["addr", "replace", &addr.to_string(), "dev", dev])
            .map(drop)
    }

    fn fdb(&self, dev: &str) -> Result<Vec<FdbEntry>> {
        let text = self.bridge(&["-j", "fdb", "show", "dev", dev])?;
        Ok(self
            .json("bridge fdb", &text)?
            .iter()
            .filter_map(|v| {
                Some(FdbEntry {
                    mac: v.get("mac")?.as_str()?.to_ascii_lowercase(),
                    dst: v.get("dst")?.as_str()?.parse().ok()?,
                })
            })
            .collect())
    }

    fn fdb_replace(&self, dev: &str, e: &FdbEntry) -> Result<()> {
        self.bridge(&[
            "fdb",
            "replace",
            &e.mac,
            "dev",
            dev,
            "dst",
            &e.dst.to_string(),
            "self",
            "permanent",
        ])
        .map(drop)
    }

    fn fdb_delete(&self, dev: &str, e: &FdbEntry) -> Result<()> {
        ignore_absent(self.bridge(&[
            "fdb",
            "del",
            &e.mac,
            "dev",
            dev,
            "dst",
            &e.dst.to_string(),
            "self",
        ]))
    }

    fn neighbours(&self, dev: &str) -> Result<Vec<Neighbour>> {
        let text = self.ip(&["-j", "-4", "neigh", "show", "dev", dev, "nud", "permanent"])?;
        Ok(self
            .json("ip neigh", &text)?
            .iter()
            .filter_map(|v| {
                Some(Neighbour {
                    ip: v.get("dst")?.as_str()?.parse().ok()?,
                    mac: v.get("lladdr")?.as_str()?.to_ascii_lowercase(),
                })
            })
            .collect())
    }

    fn neigh_replace(&self, dev: &str, n: &Neighbour) -> Result<()> {
        self.ip(&[
            "neigh",
            "replace",
            &n.ip.to_string(),
            "lladdr",
            &n.mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ])
        .map(drop)
    }

    fn neigh_delete(&self, dev: &str, n: &Neighbour) -> Result<()> {
        ignore_absent(self.ip(&["neigh", "del", &n.ip.to_string(), "dev", dev]))
    }

    fn routes(&self, dev: &str) -> Result<Vec<Route>> {
        let text = self.ip(&["-j", "-4", "route", "show", "dev", dev])?;
        Ok(self
            .json("ip route", &text)?
            .iter()
            .filter_map(|v| {
                let dst = v.get("dst")?.as_str()?;
                let dst: Ipv4Net = if dst.contains('/') {
                    dst.parse().ok()?
                } else {
                    format!("{dst}/32").parse().ok()?
                };
                Some(Route {
                    dst,
                    via: v.get("gateway")?.as_str()?.parse().ok()?,
                })
            })
            .collect())
    }

    fn route_replace(&self, dev: &str, r: &Route) -> Result<()> {
        self.ip(&[
            "route",
            "replace",
            &r.dst.to_string(),
            "via",
            &r.via.to_string(),
            "dev",
            dev,
            "onlink",
        ])
        .map(drop)
    }

    fn route_delete(&self, dev: &str, r: &Route) -> Result<()> {
        ignore_absent(self.ip(&[
            "route",
            "del",
            &r.dst.to_string(),
            "via",
            &r.via.to_string(),
            "dev",
            dev,
        ]))
    }

    fn route_replace_dev(&self, dev: &str, dst: Ipv4Net) -> Result<()> {
        self.ip(&["route", "replace", &dst.trunc().to_string(), "dev", dev])
            .map(drop)
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        // Written through /proc inside the target netns: network sysctls are per namespace.
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        output(
            self.command("sh")
                .args(["-c", &format!("echo {value} > {path}")]),
        )
        .map(drop)
    }

    fn nft(&self, script: &str) -> Result<()> {
        let mut cmd = self.command("nft");
        cmd.args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let line = format!("{cmd:?}").replace('"', "");
        let mut child = cmd.spawn().map_err(|e| Error::SpawnFailed {
            cmd: line.clone(),
            reason: e.to_string(),
        })?;
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(script.as_bytes())
            .map_err(|e| Error::SpawnFailed {
                cmd: line.clone(),
                reason: e.to_string(),
            })?;
        let out = child.wait_with_output().map_err(|e| Error::SpawnFailed {
            cmd: line.clone(),
            reason: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(Error::CommandFailed {
                cmd: line,
                stderr: format!(
                    "{}\n--- script ---\n{script}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(())
    }

    fn nft_list(&self, args: &[&str]) -> Result<String> {
        output(self.command("nft").args(args))
    }
}
