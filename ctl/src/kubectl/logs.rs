//! `logs POD|deploy/NAME [-c C] [-f] [--previous] [--tail N]` through the `pods/{name}/log` subresource.

use std::io::Write;

use anyhow::{bail, Result};
use apimachinery::labels::{string_map, LabelSelector};
use futures::AsyncBufReadExt;
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::resources::{split_type_name, Catalog};
use crate::rest;

/// Options of `logs`.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// `-c`.
    pub container: Option<String>,
    /// `-f`.
    pub follow: bool,
    /// `--previous`.
    pub previous: bool,
    /// `--tail`.
    pub tail: Option<i64>,
    /// `--timestamps`.
    pub timestamps: bool,
}

/// The log query string for `opts` and the chosen container.
pub fn log_query(opts: &LogOptions, container: &str) -> Vec<(&'static str, String)> {
    let mut q = vec![("container", container.to_string())];
    if opts.follow {
        q.push(("follow", "true".into()));
    }
    if opts.previous {
        q.push(("previous", "true".into()));
    }
    if let Some(t) = opts.tail {
        q.push(("tailLines", t.to_string()));
    }
    if opts.timestamps {
        q.push(("timestamps", "true".into()));
    }
    q
}

/// Picks the container like kubectl: `-c`, else the `kubectl.kubernetes.io/default-container` annotation,
/// else the first one (with a notice when there are several).
pub fn pick_container(pod: &Value, wanted: Option<&str>) -> Result<(String, Option<String>)> {
    let names: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or_default();
    if let Some(w) = wanted {
        if !names.iter().any(|n| n == w) {
            bail!("container {w} is not valid for pod {pod_name}");
        }
        return Ok((w.to_string(), None));
    }
    if let Some(d) =
        pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"].as_str()
    {
        if names.iter().any(|n| n == d) {
            return Ok((d.to_string(), None));
        }
    }
    let Some(first) = names.first() else {
        bail!("pod {pod_name} has no containers");
    };
    let notice = (names.len() > 1).then(|| {
        format!(
            "Defaulted container \"{first}\" out of: {}",
            names.join(", ")
        )
    });
    Ok((first.clone(), notice))
}

/// Resolves `POD` or `TYPE/NAME` (deployments, replica sets: their first pod by selector) to a pod.
async fn resolve_pod(session: &Session, catalog: &Catalog, target: &str) -> Result<Value> {
    let ns = session.namespace.as_str();
    let (kind, name) = match split_type_name(target) {
        (k, Some(n)) => (k, n),
        (n, None) => ("pods", n),
    };
    let info = catalog.resolve(kind)?;
    let obj = rest::get(&session.client, &info.object_path(Some(ns), name)).await?;
    if info.ar.kind == "Pod" {
        return Ok(obj);
    }
    let labels = string_map(Some(&obj["spec"]["selector"]["matchLabels"]));
    let sel = LabelSelector::from_map(&labels).to_string();
    if sel.is_empty() {
        bail!("cannot get logs of {target}: it has no pod selector");
    }
    let pods = catalog.resolve("pods")?;
    let uri = rest::with_query(&pods.collection_path(Some(ns)), &[("labelSelector", sel)]);
    let list = rest::get(&session.client, &uri).await?;
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.sort_by_key(|p| {
        p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    items
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no pods found for {target}"))
}

/// Streams (or prints) the logs to `out`; notices go to stderr.
pub async fn logs(
    session: &Session,
    catalog: &Catalog,
    target: &str,
    opts: &LogOptions,
    out: &mut (dyn Write + Send),
) -> Result<()> {
    let pod = resolve_pod(session, catalog, target).await?;
    let (container, notice) = pick_container(&pod, opts.container.as_deref())?;
    if let Some(n) = notice {
        eprintln!("{n}");
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let path = format!("/api/v1/namespaces/{}/pods/{name}/log", session.namespace);
    let uri = rest::with_query(&path, &log_query(opts, &container));
    if !opts.follow {
        let text = rest::get_text(&session.client, &uri).await?;
        out.write_all(text.as_bytes())?;
        return Ok(());
    }
    let mut reader = rest::get_stream(&session.client, &uri).await?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        out.write_all(line.as_bytes())?;
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_choice() {
        let one = json!({"metadata":{"name":"p"},"spec":{"containers":[{"name":"web"}]}});
        assert_eq!(pick_container(&one, None).unwrap(), ("web".into(), None));
        let two =
            json!({"metadata":{"name":"p"},"spec":{"containers":[{"name":"web"},{"name":"side"}]}});
        let (c, n) = pick_container(&two, None).unwrap();
        assert_eq!(c, "web");
        assert_eq!(n.unwrap(), "Defaulted container \"web\" out of: web, side");
        assert_eq!(pick_container(&two, Some("side")).unwrap().0, "side");
        assert_eq!(
            pick_container(&two, Some("x")).unwrap_err().to_string(),
            "container x is not valid for pod p"
        );
        let ann = json!({"metadata":{"name":"p","annotations":{"kubectl.kubernetes.io/default-container":"side"}},
            "spec":{"containers":[{"name":"web"},{"name":"side"}]}});
        assert_eq!(pick_container(&ann, None).unwrap(), ("side".into(), None));
    }

    #[test]
    fn query() {
        let q = log_query(
            &LogOptions {
                follow: true,
                previous: true,
                tail: Some(5),
                ..Default::default()
            },
            "web",
        );
        assert_eq!(
            crate::rest::with_query("/l", &q),
            "/l?container=web&follow=true&previous=true&tailLines=5"
        );
    }
}
