//! `rollout status|history|undo|restart` for Deployments, and `status|restart` for DaemonSets (berth keeps no
//! ControllerRevisions, so a DaemonSet has no history to show or roll back to). The status message logic and the
//! choice of the rollback revision are pure functions mirroring kubectl's.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use kube::core::WatchEvent;
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::resources::Catalog;
use crate::rest;
use crate::table::tabwrite;

/// The annotation holding a ReplicaSet's (and Deployment's) revision number.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The annotation `rollout restart` bumps.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// The annotation `rollout history` shows.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// kubectl's `DeploymentStatusViewer`: the message for the current state and whether the rollout is done.
///
/// # Errors
/// `deployment "x" exceeded its progress deadline` when the Progressing condition says so.
pub fn status_message(d: &Deployment) -> Result<(String, bool)> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    let st = d.status.clone().unwrap_or_default();
    if generation > st.observed_generation.unwrap_or(0) {
        return Ok((
            "Waiting for deployment spec update to be observed...".into(),
            false,
        ));
    }
    let progressing = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Progressing");
    if progressing.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        bail!("deployment {name:?} exceeded its progress deadline");
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let replicas = st.replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    if let Some(want) = d.spec.as_ref().and_then(|s| s.replicas) {
        if updated < want {
            return Ok((
                format!(
                    "Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."
                ),
                false,
            ));
        }
    }
    if replicas > updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
            false,
        ));
    }
    if available < updated {
        return Ok((
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            false,
        ));
    }
    Ok((format!("deployment {name:?} successfully rolled out"), true))
}

/// kubectl's `DaemonSetStatusViewer`: the message for the current state and whether the rollout is done.
///
/// # Errors
/// `rollout status is only available for RollingUpdate strategy type` for `OnDelete` DaemonSets, whose pods
/// change only when someone deletes them.
pub fn daemon_set_status_message(ds: &DaemonSet) -> Result<(String, bool)> {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let strategy = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        // The API server defaults an absent type to RollingUpdate; kubectl only ever sees it defaulted.
        .unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        bail!("rollout status is only available for RollingUpdate strategy type");
    }
    let generation = ds.metadata.generation.unwrap_or(0);
    let st = ds.status.clone().unwrap_or_default();
    if generation > st.observed_generation.unwrap_or(0) {
        return Ok((
            "Waiting for daemon set spec update to be observed...".into(),
            false,
        ));
    }
    let desired = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let available = st.number_available.unwrap_or(0);
    if updated < desired {
        return Ok((
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
            ),
            false,
        ));
    }
    if available < desired {
        return Ok((
            format!(
                "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
            ),
            false,
        ));
    }
    Ok((format!("daemon set {name:?} successfully rolled out"), true))
}

/// The revision number of an object (its revision annotation), 0 when absent or malformed.
pub fn revision_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSets the Deployment controls (owner reference with its uid), sorted by revision.
pub fn owned_replica_sets(d: &Deployment, all: Vec<ReplicaSet>) -> Vec<ReplicaSet> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut v: Vec<ReplicaSet> = all
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .collect();
    v.sort_by_key(|rs| revision_of(&rs.metadata));
    v
}

/// `rollout history` text.
pub fn history_text(kind_name: &str, owned: &[ReplicaSet]) -> String {
    let mut t = String::from("REVISION\tCHANGE-CAUSE\n");
    for rs in owned {
        let rev = revision_of(&rs.metadata);
        if rev == 0 {
            continue;
        }
        let cause = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
            .cloned()
            .unwrap_or_else(|| "<none>".into());
        t.push_str(&format!("{rev}\t{cause}\n"));
    }
    format!("{kind_name}\n{}", tabwrite(&t, 0, 2))
}

/// What `rollout undo` should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Rollback {
    /// Replace the Deployment's pod template with this one (from revision `.0`).
    To(i64, Value),
    /// The current template already equals revision `.0`.
    Skip(i64),
}

fn template_without_hash(rs: &ReplicaSet) -> Result<Value> {
    let mut t = serde_json::to_value(
        rs.spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default(),
    )?;
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    Ok(t)
}

/// Chooses the rollback target like kubectl: `to_revision` 0 = the newest revision before the current one.
///
/// # Errors
/// `no rollout history found` / `unable to find specified revision N in history`.
pub fn plan_rollback(d: &Deployment, owned: &[ReplicaSet], to_revision: i64) -> Result<Rollback> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let revisions: Vec<(i64, &ReplicaSet)> = owned
        .iter()
        .map(|rs| (revision_of(&rs.metadata), rs))
        .filter(|(r, _)| *r > 0)
        .collect();
    if revisions.is_empty() {
        bail!("no rollout history found for deployment {name:?}");
    }
    let current = revisions.iter().map(|(r, _)| *r).max().unwrap_or(0);
    let target = if to_revision == 0 {
        revisions
            .iter()
            .filter(|(r, _)| *r < current)
            .max_by_key(|(r, _)| *r)
            .ok_or_else(|| {
                anyhow::anyhow!("no revision found for deployment {name:?} to roll back to")
            })?
    } else {
        revisions
            .iter()
            .find(|(r, _)| *r == to_revision)
            .ok_or_else(|| {
                anyhow::anyhow!("unable to find specified revision {to_revision} in history")
            })?
    };
    let wanted = template_without_hash(target.1)?;
    let mut current_t = serde_json::to_value(
        d.spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default(),
    )?;
    if let Some(labels) = current_t["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    if wanted == current_t {
        return Ok(Rollback::Skip(target.0));
    }
    Ok(Rollback::To(target.0, wanted))
}

async fn get_deployment(
    session: &Session,
    catalog: &Catalog,
    name: &str,
) -> Result<(String, Deployment)> {
    let info = catalog.resolve("deployments.apps")?;
    let path = info.object_path(Some(&session.namespace), name);
    let v = rest::get(&session.client, &path).await?;
    Ok((
        path,
        serde_json::from_value(v).context("invalid Deployment")?,
    ))
}

async fn list_owned(
    session: &Session,
    catalog: &Catalog,
    d: &Deployment,
) -> Result<Vec<ReplicaSet>> {
    let info = catalog.resolve("replicasets.apps")?;
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let uri = rest::with_query(
        &info.collection_path(Some(&session.namespace)),
        &[("labelSelector", selector)],
    );
    let list = rest::get(&session.client, &uri).await?;
    let items: Vec<ReplicaSet> = serde_json::from_value(list["items"].clone()).unwrap_or_default();
    Ok(owned_replica_sets(d, items))
}

/// The kinds of workload `rollout` acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 DaemonSet.
    DaemonSet,
}

impl Workload {
    /// The catalog name of its resource.
    fn resource(self) -> &'static str {
        match self {
            Workload::Deployment => "deployments.apps",
            Workload::DaemonSet => "daemonsets.apps",
        }
    }

    /// The status message of one object of this kind, as the server sent it.
    fn status_message(self, obj: Value) -> Result<(String, bool)> {
        match self {
            Workload::Deployment => {
                status_message(&serde_json::from_value(obj).context("invalid Deployment")?)
            }
            Workload::DaemonSet => daemon_set_status_message(
                &serde_json::from_value(obj).context("invalid DaemonSet")?,
            ),
        }
    }
}

/// The `TYPE/NAME` argument of a rollout verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The object's kind.
    pub workload: Workload,
    /// The object's name.
    pub name: &'a str,
}

impl<'a> Target<'a> {
    /// Accepts `deploy/NAME`, `deployment/NAME`, `deployments.apps/NAME`, `ds/NAME`, `daemonset/NAME`,
    /// `daemonsets.apps/NAME` (and the other spellings of the two) or a bare name, which is a Deployment's.
    ///
    /// # Errors
    /// kubectl's `no status viewer has been implemented for KIND` for any other type.
    pub fn parse(arg: &'a str) -> Result<Self> {
        let (workload, name) = match arg.split_once('/') {
            Some((
                "deploy" | "deployment" | "deployments" | "deploy.apps" | "deployment.apps"
                | "deployments.apps",
                n,
            )) => (Workload::Deployment, n),
            Some((
                "ds" | "daemonset" | "daemonsets" | "ds.apps" | "daemonset.apps"
                | "daemonsets.apps",
                n,
            )) => (Workload::DaemonSet, n),
            Some((k, _)) => bail!("no status viewer has been implemented for {k}"),
            None => (Workload::Deployment, arg),
        };
        Ok(Target { workload, name })
    }

    /// Fails for DaemonSets, whose revisions berth does not keep (no ControllerRevisions).
    fn require_history(self, verb: &str) -> Result<()> {
        if self.workload == Workload::DaemonSet {
            bail!(
                "rollout {verb} is not available for daemon sets: berth keeps no ControllerRevisions (revision history)"
            );
        }
        Ok(())
    }
}

/// `rollout status`: prints each new message until done; `timeout` zero = no bound (like kubectl).
pub async fn status(
    session: &Session,
    catalog: &Catalog,
    target: Target<'_>,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<()> {
    let name = target.name;
    let info = catalog.resolve(target.workload.resource())?;
    let path = info.object_path(Some(&session.namespace), name);
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let obj = rest::get(&session.client, &path).await?;
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (msg, done) = target.workload.status_message(obj)?;
        if msg != last {
            writeln!(out, "{msg}")?;
            out.flush()?;
            last = msg;
        }
        if done {
            return Ok(());
        }
        let uri = rest::with_query(
            &info.collection_path(Some(&session.namespace)),
            &[
                ("fieldSelector", format!("metadata.name={name}")),
                ("resourceVersion", rv),
                ("watch", "true".into()),
                ("timeoutSeconds", "60".into()),
            ],
        );
        let mut stream = rest::watch(&session.client, &uri, "application/json").await?;
        loop {
            let remaining = if timeout.is_zero() {
                Duration::from_secs(3600)
            } else {
                timeout
                    .checked_sub(start.elapsed())
                    .ok_or_else(|| anyhow::anyhow!("timed out waiting for the condition"))?
            };
            let ev = match tokio::time::timeout(remaining, stream.next()).await {
                Ok(Some(ev)) => ev?,
                // The stream ended: re-read and watch again.
                Ok(None) => break,
                Err(_) if timeout.is_zero() => break,
                Err(_) => bail!("timed out waiting for the condition"),
            };
            let obj = match ev {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => o,
                WatchEvent::Deleted(_) => bail!("object has been deleted"),
                WatchEvent::Bookmark(_) => continue,
                // A too-old resourceVersion (410): start over from a fresh read.
                WatchEvent::Error(_) => break,
            };
            let (msg, done) = target.workload.status_message(obj)?;
            if msg != last {
                writeln!(out, "{msg}")?;
                out.flush()?;
                last = msg;
            }
            if done {
                return Ok(());
            }
        }
        if !timeout.is_zero() && start.elapsed() > timeout {
            bail!("timed out waiting for the condition");
        }
    }
}

/// `rollout history` (with `revision` > 0: that revision's pod template).
///
/// # Errors
/// For a DaemonSet, which has no history on berth; any API error.
pub async fn history(
    session: &Session,
    catalog: &Catalog,
    target: Target<'_>,
    revision: i64,
) -> Result<String> {
    target.require_history("history")?;
    let name = target.name;
    let (_, d) = get_deployment(session, catalog, name).await?;
    let owned = list_owned(session, catalog, &d).await?;
    let kind_name = format!("deployment.apps/{name}");
    if revision > 0 {
        let rs = owned
            .iter()
            .find(|rs| revision_of(&rs.metadata) == revision)
            .ok_or_else(|| anyhow::anyhow!("unable to find the specified revision"))?;
        let t = template_without_hash(rs)?;
        let yaml = serde_yaml::to_string(&t)?;
        let body: String = yaml.lines().map(|l| format!("  {l}\n")).collect();
        return Ok(format!(
            "{kind_name} with revision #{revision}\nPod Template:\n{body}"
        ));
    }
    Ok(history_text(&kind_name, &owned))
}

/// `rollout undo [--to-revision N]`.
///
/// # Errors
/// For a DaemonSet, which has no revision to go back to on berth; no such revision; any API error.
pub async fn undo(
    session: &Session,
    catalog: &Catalog,
    target: Target<'_>,
    to_revision: i64,
) -> Result<String> {
    target.require_history("undo")?;
    let name = target.name;
    let (path, d) = get_deployment(session, catalog, name).await?;
    let owned = list_owned(session, catalog, &d).await?;
    match plan_rollback(&d, &owned, to_revision)? {
        Rollback::Skip(r) => Ok(format!(
            "deployment.apps/{name} skipped rollback (current template already matches revision {r})"
        )),
        Rollback::To(_, template) => {
            let patch = serde_json::json!([{"op": "replace", "path": "/spec/template", "value": template}]);
            match rest::patch(&session.client, &path, &patch, "application/json-patch+json").await {
                Err(e) if rest::is_unsupported_media(&e) => {
                    let merge = serde_json::json!({"spec": {"template": template}});
                    rest::patch(&session.client, &path, &merge, "application/merge-patch+json").await?;
                }
                r => {
                    r?;
                }
            }
            Ok(format!("deployment.apps/{name} rolled back"))
        }
    }
}

/// The patch `rollout restart` sends (a new `restartedAt` makes a new pod template, hence a new rollout).
pub fn restart_patch(now_rfc3339: &str) -> Value {
    serde_json::json!({"spec":{"template":{"metadata":{"annotations":{RESTARTED_AT_ANNOTATION: now_rfc3339}}}}})
}

/// `rollout restart`: `deployment.apps/NAME restarted` or `daemonset.apps/NAME restarted`.
pub async fn restart(session: &Session, catalog: &Catalog, target: Target<'_>) -> Result<String> {
    let info = catalog.resolve(target.workload.resource())?;
    let path = info.object_path(Some(&session.namespace), target.name);
    let now = apimachinery::time::rfc3339(std::time::SystemTime::now());
    rest::patch_merge(&session.client, &path, &restart_patch(&now)).await?;
    Ok(format!(
        "{}/{} restarted",
        info.qualified_kind(),
        target.name
    ))
}

#[cfg(test)]
mod tests;
