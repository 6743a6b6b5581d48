//! Garbage collector: deletes objects whose owners are all gone (background propagation), deletes the
//! dependents of an owner in `foregroundDeletion` before the owner, and strips owner references from the
//! dependents of an owner being deleted with the `orphan` finalizer.

use apimachinery::time::{parse_rfc3339, rfc3339};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::action::delete_pod;
use super::action::{Action, Actions};
use super::context::Ctx;
use super::events::Recorder;
use super::object::*;
use super::runner::Controller;
use crate::informer::{Cached, Caches, Informer};
use crate::store::Consistency;

/// Finalizer of an owner whose dependents must go first.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer of an owner whose dependents must be kept (their owner references are removed).
pub const ORPHAN: &str = "orphan";

/// Deletes an object as the API would: bound pods gracefully, everything else at once.
fn delete(o: &Cached, now: SystemTime) -> Action {
    if o.key.starts_with("/core/pods/") {
        delete_pod(&o.key, &o.value, o.revision, now)
    } else {
        Action::Delete {
            key: o.key.clone(),
            revision: Some(o.revision),
        }
    }
}

/// Removes `finalizer` from `o`; if none remain, deletes it (a pod being deleted is left to its agent).
fn finish(o: &Cached, finalizer: &str, now: SystemTime) -> Action {
    let rest: Vec<String> = finalizers(&o.value)
        .into_iter()
        .filter(|f| f != finalizer)
        .collect();
    if rest.is_empty() && !(o.key.starts_with("/core/pods/") && pod_node(&o.value).is_some()) {
        return Action::Delete {
            key: o.key.clone(),
            revision: Some(o.revision),
        };
    }
    let _ = now;
    let mut v = (*o.value).clone();
    ensure_object(&mut v, "metadata").insert("finalizers".into(), json!(rest));
    Action::Update {
        key: o.key.clone(),
        object: v,
        revision: o.revision,
    }
}

/// What one collection pass decided.
#[derive(Debug, Default)]
pub struct Plan {
    /// Foreground and orphan work, one batch per owner.
    pub actions: Vec<Actions>,
    /// Objects none of whose owners is known to exist; the runner confirms with the store before
    /// deleting them, because caches of different kinds lag each other.
    pub orphans: Vec<Cached>,
}

/// One pass over `objects` (every cached object); `live` holds the uids known to exist.
pub fn reconcile(objects: &[Cached], live: &HashSet<String>, now: SystemTime) -> Plan {
    let mut plan = Plan::default();
    let mut dependents: HashMap<&str, Vec<&Cached>> = HashMap::new();
    for o in objects {
        for r in owner_refs(&o.value) {
            if let Some(u) = r.get("uid").and_then(Value::as_str) {
                dependents.entry(u).or_default().push(o);
            }
        }
    }
    for o in objects {
        let refs = owner_refs(&o.value);
        if !refs.is_empty()
            && !deleting(&o.value)
            && refs
                .iter()
                .all(|r| !live.contains(r.get("uid").and_then(Value::as_str).unwrap_or("")))
        {
            plan.orphans.push(o.clone());
        }
        if !deleting(&o.value) {
            continue;
        }
        let fins = finalizers(&o.value);
        let deps = dependents.get(uid(&o.value)).cloned().unwrap_or_default();
        let mut a = Actions::default();
        if fins.iter().any(|f| f == ORPHAN) {
            if deps.is_empty() {
                a.push(finish(o, ORPHAN, now));
            }
            for d in deps {
                let mut v = (*d.value).clone();
                let kept: Vec<Value> = owner_refs(&d.value)
                    .iter()
                    .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid(&o.value)))
                    .cloned()
                    .collect();
                let meta = ensure_object(&mut v, "metadata");
                if kept.is_empty() {
                    meta.remove("ownerReferences");
                } else {
                    meta.insert("ownerReferences".into(), json!(kept));
                }
                a.push(Action::Update {
                    key: d.key.clone(),
                    object: v,
                    revision: d.revision,
                });
            }
        } else if fins.iter().any(|f| f == FOREGROUND) {
            if deps.is_empty() {
                a.push(finish(o, FOREGROUND, now));
            }
            for d in deps {
                if deleting(&d.value) {
                    continue;
                }
                if dependents.contains_key(uid(&d.value)) && !d.key.starts_with("/core/pods/") {
                    // Its own dependents go first too.
                    let mut v = (*d.value).clone();
                    let meta = ensure_object(&mut v, "metadata");
                    meta.insert("deletionTimestamp".into(), json!(rfc3339(now)));
                    let mut f = finalizers(&d.value);
                    f.push(FOREGROUND.into());
                    meta.insert("finalizers".into(), json!(f));
                    a.push(Action::Update {
                        key: d.key.clone(),
                        object: v,
                        revision: d.revision,
                    });
                } else {
                    a.push(delete(d, now));
                }
            }
            a.requeue(Duration::from_secs(1));
        }
        if !a.is_empty() {
            plan.actions.push(a);
        }
    }
    plan
}

/// The collector as the generic loop drives it: its pass reads every cache; confirming orphans and
/// sweeping expired events need the store, so they run in [`Controller::settle`].
#[derive(Default)]
pub struct GarbageCollector {
    /// When expired events were last swept.
    last_sweep: Option<SystemTime>,
    /// Orphans the last pass found, confirmed with the store before deletion.
    orphans: Vec<Cached>,
}

impl Controller for GarbageCollector {
    const COMPONENT: &'static str = "garbage-collector-controller";
    // Owners and dependents of one deletion arrive through different caches: wait for both.
    const DEBOUNCE: Duration = Duration::from_millis(50);

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        caches.all().into_iter().cloned().collect()
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        let objects: Vec<Cached> = ctx.caches.all().iter().flat_map(|i| i.list()).collect();
        let live: HashSet<String> = objects.iter().map(|o| uid(&o.value).to_string()).collect();
        let plan = reconcile(&objects, &live, ctx.now());
        self.orphans = plan.orphans;
        plan.actions
    }

    fn settle<'a>(
        &'a mut self,
        ctx: &'a Ctx,
        recorder: &'a Recorder,
    ) -> BoxFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let now = ctx.now();
            if self
                .last_sweep
                .is_none_or(|t| t + Duration::from_secs(60) <= now)
            {
                self.last_sweep = Some(now);
                sweep_events(ctx, recorder, now).await;
            }
            let mut retry = None;
            for o in std::mem::take(&mut self.orphans) {
                if owners_gone(ctx, &o).await {
                    tracing::debug!(key = %o.key, "collecting object whose owners are gone");
                    if ctx.apply(recorder, vec![delete(&o, now)]).await.is_err() {
                        retry = Some(Duration::from_millis(200));
                    }
                }
            }
            retry
        })
    }
}

/// Events last seen before `now - ttl`.
pub fn expired_events(
    events: &[crate::store::Object],
    now: SystemTime,
    ttl: Duration,
) -> Vec<Action> {
    events
        .iter()
        .filter(|e| {
            let last = e
                .value
                .get("lastTimestamp")
                .and_then(Value::as_str)
                .or_else(|| {
                    e.value
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                })
                .and_then(parse_rfc3339);
            last.is_some_and(|t| t + ttl <= now)
        })
        .map(|e| Action::Delete {
            key: e.key.clone(),
            revision: Some(e.revision),
        })
        .collect()
}

/// Deletes expired events, in batches.
async fn sweep_events(ctx: &Ctx, recorder: &Recorder, now: SystemTime) {
    let Ok((events, _)) = ctx
        .store
        .list(
            &crate::store::prefix("core", "events", None),
            Consistency::Local,
        )
        .await
    else {
        return;
    };
    let expired = expired_events(&events, now, ctx.config.event_ttl);
    for chunk in expired.chunks(500) {
        let _ = ctx.apply(recorder, chunk.to_vec()).await;
    }
}

/// Confirms with the store that no owner of `o` exists (same kind, name and uid). Owners of kinds berth
/// does not store count as existing.
async fn owners_gone(ctx: &Ctx, o: &Cached) -> bool {
    for r in owner_refs(&o.value) {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        let owner_name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(key) = key_for_kind(kind, namespace(&o.value), owner_name) else {
            return false;
        };
        match ctx.store.get(&key, Consistency::Linearizable).await {
            Ok(Some(found))
                if uid(&found.value) == r.get("uid").and_then(Value::as_str).unwrap_or("") =>
            {
                return false
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, uid: &str, owners: &[&str], extra: Value) -> Cached {
        let refs: Vec<Value> = owners
            .iter()
            .map(|o| json!({"kind": "ReplicaSet", "name": "rs", "uid": o, "controller": true}))
            .collect();
        let mut v = json!({"metadata": {"name": "x", "namespace": "default", "uid": uid, "ownerReferences": refs}});
        if let Value::Object(m) = extra {
            for (k, x) in m {
                v["metadata"][k] = x;
            }
        }
        Cached {
            key: key.into(),
            value: Arc::new(v),
            revision: 5,
        }
    }

    fn live(objs: &[Cached]) -> HashSet<String> {
        objs.iter().map(|o| uid(&o.value).to_string()).collect()
    }

    #[test]
    fn events_expire_after_ttl() {
        let ev = |name: &str, last: &str| crate::store::Object {
            key: format!("/core/events/default/{name}"),
            value: json!({"metadata": {"name": name}, "lastTimestamp": last}),
            revision: 3,
        };
        let events = vec![
            ev("old", "2026-01-01T00:00:00Z"),
            ev("new", "2026-01-01T00:59:00Z"),
        ];
        let now = parse_rfc3339("2026-01-01T01:00:00Z").unwrap();
        let got = expired_events(&events, now, Duration::from_secs(3600));
        assert_eq!(
            got,
            vec![Action::Delete {
                key: "/core/events/default/old".into(),
                revision: Some(3)
            }]
        );
    }

    #[test]
    fn background_candidates() {
        let objs = vec![
            obj("/apps/replicasets/default/rs", "rs", &[], json!({})),
            obj("/core/pods/default/a", "a", &["rs"], json!({})),
            obj("/core/pods/default/b", "b", &["gone"], json!({})),
            obj("/core/pods/default/c", "c", &["gone", "rs"], json!({})),
        ];
        let plan = reconcile(&objs, &live(&objs), SystemTime::UNIX_EPOCH);
        let keys: Vec<&str> = plan.orphans.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, vec!["/core/pods/default/b"]);
        assert!(plan.actions.is_empty());
    }

    #[test]
    fn foreground_deletes_dependents_then_owner() {
        let owner = obj(
            "/apps/deployments/default/d",
            "d",
            &[],
            json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": [FOREGROUND]}),
        );
        let rs = obj("/apps/replicasets/default/rs", "rs", &["d"], json!({}));
        let pod = obj("/core/pods/default/p", "p", &["rs"], json!({}));
        let objs = vec![owner.clone(), rs.clone(), pod.clone()];
        let plan = reconcile(&objs, &live(&objs), SystemTime::UNIX_EPOCH);
        assert_eq!(plan.actions.len(), 1);
        let Action::Update { key, object, .. } = &plan.actions[0].actions[0] else {
            panic!("{plan:?}")
        };
        assert_eq!(key, "/apps/replicasets/default/rs");
        assert!(deleting(object));
        assert_eq!(finalizers(object), vec![FOREGROUND.to_string()]);
        // The replica set, now in foreground deletion, deletes its pod (unbound: at once).
        let rs2 = Cached {
            value: Arc::new(object.clone()),
            ..rs
        };
        let objs = vec![owner.clone(), rs2.clone(), pod];
        let plan = reconcile(&objs, &live(&objs), SystemTime::UNIX_EPOCH);
        assert!(plan
            .actions
            .iter()
            .any(|a| a.actions.contains(&Action::Delete {
                key: "/core/pods/default/p".into(),
                revision: Some(5)
            })));
        // With no dependents left the replica set goes, and then the owner.
        let plan = reconcile(
            &[owner.clone(), rs2.clone()],
            &live(&[owner.clone(), rs2]),
            SystemTime::UNIX_EPOCH,
        );
        assert!(plan
            .actions
            .iter()
            .any(|a| a.actions.contains(&Action::Delete {
                key: "/apps/replicasets/default/rs".into(),
                revision: Some(5)
            })));
        let plan = reconcile(
            std::slice::from_ref(&owner),
            &live(std::slice::from_ref(&owner)),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            plan.actions[0].actions,
            vec![Action::Delete {
                key: "/apps/deployments/default/d".into(),
                revision: Some(5)
            }]
        );
    }

    #[test]
    fn orphan_strips_owner_references() {
        let owner = obj(
            "/apps/replicasets/default/rs",
            "rs",
            &[],
            json!({"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": [ORPHAN]}),
        );
        let pod = obj("/core/pods/default/p", "p", &["rs"], json!({}));
        let objs = vec![owner.clone(), pod];
        let plan = reconcile(&objs, &live(&objs), SystemTime::UNIX_EPOCH);
        let Action::Update { object, .. } = &plan.actions[0].actions[0] else {
            panic!()
        };
        assert!(object["metadata"].get("ownerReferences").is_none());
        assert!(plan.orphans.is_empty());
        let plan = reconcile(
            std::slice::from_ref(&owner),
            &live(std::slice::from_ref(&owner)),
            SystemTime::UNIX_EPOCH,
        );
        assert!(matches!(&plan.actions[0].actions[0], Action::Delete { .. }));
    }
}
