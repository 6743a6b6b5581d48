//! `delete -f FILE | TYPE NAME... | TYPE/NAME...`: background-propagation deletes printing
//! `deployment.apps "web" deleted`, optionally waiting until the objects are gone.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::errors;
use crate::kubeconfig::Session;
use crate::kubectl::apply::place;
use crate::kubectl::get::parse_targets;
use crate::manifest::Document;
use crate::resources::{Catalog, ResourceInfo};
use crate::rest;

/// Options for `delete`.
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    /// `--ignore-not-found`.
    pub ignore_not_found: bool,
    /// `--wait`: poll until each object is gone.
    pub wait: bool,
    /// Bound on the wait.
    pub timeout: Duration,
    /// `--grace-period` (seconds), when given.
    pub grace_period: Option<i64>,
}

/// The `DeleteOptions` body kubectl sends.
pub fn delete_body(grace: Option<i64>) -> serde_json::Value {
    let mut b = serde_json::json!({"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"});
    if let Some(g) = grace {
        b["gracePeriodSeconds"] = g.into();
    }
    b
}

/// kubectl's success line: `deployment.apps "web" deleted`.
pub fn deleted_line(info: &ResourceInfo, name: &str) -> String {
    format!("{} \"{name}\" deleted", info.qualified_kind())
}

async fn delete_one(
    session: &Session,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
    out: &mut dyn Write,
) -> Result<bool> {
    let path = info.object_path(ns, name);
    match rest::delete(&session.client, &path, &delete_body(opts.grace_period)).await {
        Ok(_) => {}
        Err(e) if opts.ignore_not_found && errors::is_not_found(&e) => return Ok(false),
        Err(e) => return Err(e),
    }
    writeln!(out, "{}", deleted_line(info, name))?;
    out.flush()?;
    Ok(true)
}

async fn wait_gone(session: &Session, paths: &[String], timeout: Duration) -> Result<()> {
    let start = Instant::now();
    for p in paths {
        while rest::get_opt(&session.client, p).await?.is_some() {
            if start.elapsed() > timeout {
                bail!("timed out waiting for the condition on {p}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(())
}

/// kubectl's line for a failed delete of a manifest object:
/// `Error from server (NotFound): error when deleting "web.yaml": deployments.apps "web" not found`.
pub fn failed_line(e: &anyhow::Error, source: &str, server: &str) -> String {
    match errors::api_status(e) {
        Some(s) if !s.reason.is_empty() && s.code != 401 => format!(
            "Error from server ({}): error when deleting \"{source}\": {}",
            s.reason, s.message
        ),
        _ => errors::render(e, Some(server)),
    }
}

/// Deletes the objects of manifest documents (in reverse order, so namespaces go last). Errors for single
/// objects are printed and the rest still deleted; the first one is returned at the end.
pub async fn delete_documents(
    session: &Session,
    catalog: &Catalog,
    docs: &[Document],
    opts: &DeleteOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let mut first_err = None;
    let mut waits = Vec::new();
    for d in docs.iter().rev() {
        let r = async {
            let (info, ns, _) = place(catalog, d, &session.namespace)?;
            if delete_one(session, info, ns.as_deref(), d.name(), opts, out).await? {
                waits.push(info.object_path(ns.as_deref(), d.name()));
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = r {
            eprintln!("{}", failed_line(&e, &d.source, &session.server));
            first_err.get_or_insert(e);
        }
    }
    if opts.wait {
        wait_gone(session, &waits, opts.timeout).await?;
    }
    match first_err {
        Some(e) => Err(e.context("some objects could not be deleted")),
        None => Ok(()),
    }
}

/// Deletes `TYPE NAME...` / `TYPE/NAME...` in the session namespace.
pub async fn delete_named(
    session: &Session,
    catalog: &Catalog,
    args: &[String],
    opts: &DeleteOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let targets = parse_targets(args)?;
    let mut waits = Vec::new();
    for t in &targets {
        let info = catalog.resolve(&t.kind)?;
        if t.names.is_empty() {
            bail!("resource(s) were provided, but no name was specified");
        }
        let ns = info.namespaced.then_some(session.namespace.as_str());
        for n in &t.names {
            if delete_one(session, info, ns, n, opts, out).await? {
                waits.push(info.object_path(ns, n));
            }
        }
    }
    if opts.wait {
        wait_gone(session, &waits, opts.timeout).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_body() {
        let c = crate::resources::tests::sample();
        assert_eq!(
            deleted_line(c.resolve("deploy").unwrap(), "web"),
            "deployment.apps \"web\" deleted"
        );
        assert_eq!(
            deleted_line(c.resolve("svc").unwrap(), "web"),
            "service \"web\" deleted"
        );
        assert_eq!(delete_body(None)["propagationPolicy"], "Background");
        assert_eq!(delete_body(Some(0))["gracePeriodSeconds"], 0);
        let nf = kube::core::Status::failure("deployments.apps \"web\" not found", "NotFound")
            .with_code(404);
        let e = anyhow::Error::new(kube::Error::Api(Box::new(nf)));
        assert_eq!(
            failed_line(&e, "web.yaml", "http://x"),
            "Error from server (NotFound): error when deleting \"web.yaml\": deployments.apps \"web\" not found"
        );
    }
}
