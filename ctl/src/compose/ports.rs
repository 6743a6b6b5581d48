//! Compose's port syntaxes, short and long.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use super::values::scalar_text;

/// The NodePort range of the API server; published ports outside it get a port allocated by the server.
pub(super) const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

/// One published or exposed port.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Port {
    pub(super) target: i64,
    pub(super) published: Option<i64>,
    pub(super) protocol: String,
    /// Swarm's `mode: host`: published on the node that runs the task only (a `hostPort`), not on every node.
    pub(super) host_mode: bool,
}

pub(super) fn split_proto(text: &str) -> Result<(&str, String)> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let proto = match proto {
        "tcp" => "TCP",
        "udp" => "UDP",
        "sctp" => "SCTP",
        p => bail!("port {text:?}: protocol {p} is not tcp, udp or sctp"),
    };
    Ok((port, proto.to_string()))
}

pub(super) fn port_number(text: &str) -> Result<i64> {
    if text.contains('-') {
        bail!("port ranges ({text}) are not supported: list each port");
    }
    text.parse::<i64>()
        .ok()
        .filter(|n| (1..=65535).contains(n))
        .ok_or_else(|| anyhow!("port {text:?} is not a number between 1 and 65535"))
}

/// Short (`[IP:][PUBLISHED:]TARGET[/PROTO]`) and long (`{target, published, protocol, mode}`) port syntax.
pub(super) fn parse_port(v: &Value) -> Result<Vec<Port>> {
    if let Some(m) = v.as_object() {
        for k in m.keys() {
            if ![
                "target",
                "published",
                "protocol",
                "mode",
                "name",
                "app_protocol",
                "host_ip",
            ]
            .contains(&k.as_str())
            {
                bail!("ports Additional property {k} is not allowed");
            }
        }
        let host_mode = match m.get("mode").and_then(Value::as_str) {
            None | Some("ingress") => false,
            Some("host") => true,
            Some(other) => bail!("ports: mode {other} is not ingress or host"),
        };
        if m.contains_key("host_ip") {
            bail!("ports: host_ip is not supported (published ports answer on every node address)");
        }
        let target = m
            .get("target")
            .and_then(scalar_text)
            .ok_or_else(|| anyhow!("ports: long syntax needs a target"))?;
        let target = port_number(&target)?;
        let published = m
            .get("published")
            .and_then(scalar_text)
            .map(|p| port_number(&p))
            .transpose()?;
        let proto = m.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
        let (_, protocol) = split_proto(&format!("{target}/{proto}"))?;
        if host_mode && published.is_none() {
            bail!("ports: mode host needs a published port");
        }
        return Ok(vec![Port {
            target,
            published,
            protocol,
            host_mode,
        }]);
    }
    let text = scalar_text(v).ok_or_else(|| anyhow!("ports entries are strings or mappings"))?;
    let (spec, protocol) = split_proto(&text)?;
    let parts: Vec<&str> = spec.split(':').collect();
    let (published, target) = match parts[..] {
        [t] => (None, t),
        [p, t] => (Some(p), t),
        [_ip, _p, _t] => {
            bail!("port {text:?}: binding to a host IP is not supported (published ports answer on every node address)")
        }
        _ => bail!("port {text:?}: expected [PUBLISHED:]TARGET[/PROTOCOL]"),
    };
    Ok(vec![Port {
        target: port_number(target)?,
        published: published.map(port_number).transpose()?,
        protocol,
        host_mode: false,
    }])
}
