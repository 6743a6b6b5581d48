//! Namespace controller: makes sure `default`, `kube-system` and `kube-public` exist, and empties a
//! namespace being deleted (every namespaced object in it) before removing it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::action::delete_pod;
use super::action::{Action, Actions};
use super::context::Ctx;
use super::events::Recorder;
use super::object::*;
use crate::informer::Cached;
use crate::store::{self, Consistency};

/// Namespaces that always exist.
pub const DEFAULT_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// A new Namespace object as the API server would store it.
pub fn namespace_object(ns: &str, now: SystemTime, rng: &mut dyn rand::RngCore) -> Value {
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    stamp_new(&mut v, now, rng);
    v
}

/// Creates the default namespaces that are missing, retrying until each exists.
pub async fn ensure_defaults(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    for ns in DEFAULT_NAMESPACES {
        let key = store::key("core", "namespaces", "", ns);
        loop {
            match ctx.store.get(&key, Consistency::Linearizable).await {
                Ok(Some(_)) => break,
                Ok(None) => {
                    let obj = ctx.with_rng(|rng| namespace_object(ns, ctx.now(), rng));
                    let r = ctx
                        .apply(
                            &Recorder::new("namespace-controller"),
                            vec![Action::Create {
                                key: key.clone(),
                                object: obj,
                            }],
                        )
                        .await;
                    if r.is_ok() {
                        break;
                    }
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }
}

/// Reconciles one namespace being deleted against every object stored in it: deletes them (bound pods
/// gracefully), and once nothing is left removes the namespace itself.
pub fn reconcile(key: &str, ns: &Value, contents: &[Cached], now: SystemTime) -> Actions {
    let mut out = Actions::default();
    if !deleting(ns) {
        return out;
    }
    if ns.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating") {
        let mut v = ns.clone();
        ensure_object(&mut v, "status").insert("phase".into(), json!("Terminating"));
        out.push(Action::Update {
            key: key.to_string(),
            object: v,
            revision: revision(ns),
        });
        return out;
    }
    if contents.is_empty() {
        out.push(Action::Delete {
            key: key.to_string(),
            revision: Some(revision(ns)),
        });
        return out;
    }
    for o in contents {
        if o.key.starts_with("/core/pods/") {
            out.push(delete_pod(&o.key, &o.value, o.revision, now));
        } else {
            out.push(Action::Delete {
                key: o.key.clone(),
                revision: None,
            });
        }
    }
    // Terminating pods leave on their own; look again soon.
    out.requeue(Duration::from_secs(1));
    out
}

/// The namespace runner: reacts to namespace changes and rechecks terminating namespaces.
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let recorder = Recorder::new("namespace-controller");
    let mut rx = ctx.caches.namespaces.subscribe();
    loop {
        rx.mark_unchanged();
        let mut wait = ctx.config.resync_interval;
        let terminating: Vec<Cached> = ctx
            .caches
            .namespaces
            .list()
            .into_iter()
            .filter(|n| deleting(&n.value))
            .collect();
        if !terminating.is_empty() {
            if let Ok((all, _)) = ctx.store.list("/", Consistency::Linearizable).await {
                for n in terminating {
                    let ns = name(&n.value);
                    let contents: Vec<Cached> = all
                        .iter()
                        .filter(|o| split_key(&o.key).is_some_and(|(_, _, ons, _)| ons == ns))
                        .map(|o| Cached {
                            key: o.key.clone(),
                            value: Arc::new(o.value.clone()),
                            revision: o.revision,
                        })
                        .collect();
                    let now = ctx.now();
                    let a = ctx.reconcile_isolated("Namespace", &n.key, |_| {
                        reconcile(&n.key, &n.value, &contents, now)
                    });
                    if let Some(r) = a.requeue_after {
                        wait = wait.min(r);
                    }
                    if let Err(e) = ctx.apply(&recorder, a.actions).await {
                        tracing::debug!(error = %e, "namespace cleanup failed; retrying");
                        wait = wait.min(Duration::from_millis(200));
                    }
                }
            } else {
                wait = wait.min(Duration::from_millis(500));
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = rx.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(phase: &str) -> Value {
        json!({"metadata": {"name": "team", "resourceVersion": "4", "deletionTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": phase}})
    }

    fn obj(key: &str, bound: bool) -> Cached {
        let mut v = json!({"metadata": {"name": "x", "namespace": "team", "resourceVersion": "2"}, "spec": {}});
        if bound {
            v["spec"]["nodeName"] = json!("n1");
        }
        Cached {
            key: key.into(),
            value: Arc::new(v),
            revision: 2,
        }
    }

    #[test]
    fn table() {
        let now = SystemTime::UNIX_EPOCH;
        let k = "/core/namespaces//team";
        let a = reconcile(k, &ns("Active"), &[], now);
        assert!(
            matches!(&a.actions[..], [Action::Update { object, .. }] if object["status"]["phase"] == "Terminating")
        );
        let a = reconcile(
            k,
            &ns("Terminating"),
            &[
                obj("/core/configmaps/team/x", false),
                obj("/core/pods/team/p", true),
            ],
            now,
        );
        assert!(
            matches!(&a.actions[0], Action::Delete { key, .. } if key == "/core/configmaps/team/x")
        );
        assert!(matches!(&a.actions[1], Action::Update { object, .. } if deleting(object)));
        let a = reconcile(k, &ns("Terminating"), &[], now);
        assert_eq!(
            a.actions,
            vec![Action::Delete {
                key: k.into(),
                revision: Some(4)
            }]
        );
        let mut live = ns("Active");
        live["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("deletionTimestamp");
        assert!(reconcile(k, &live, &[obj("/core/pods/team/p", true)], now).is_empty());
    }
}
