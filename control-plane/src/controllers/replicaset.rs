//! ReplicaSet controller: keeps `spec.replicas` active pods from the template, deletes the least useful
//! surplus first, and reports status. Pure [`reconcile`] plus the runner's pass over the caches.

use apimachinery::time::parse_rfc3339;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::action::{delete_pod, Action, Actions};
use super::context::Ctx;
use super::events::{EventRecord, EventType};
use super::object::{self, *};
use super::runner::Controller;
use crate::informer::{Cached, Caches, Informer};
use crate::store;
use apimachinery::labels::{string_map, LabelSelector};

/// Most pods one reconcile creates; the rest follow on the next pass (Kubernetes' burst limit).
pub const BURST: usize = 500;

/// Reconciles one ReplicaSet (`rs`, stored at `rs_key`) against the pods it controls.
pub fn reconcile(
    rs_key: &str,
    rs: &Value,
    pods: &[Cached],
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Actions {
    let mut out = Actions::default();
    if deleting(rs) {
        return out;
    }
    let spec: ReplicaSetSpecView = match spec_view(rs) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(replicaset = %rs_key, error = %e, "skipping replicaset whose spec does not parse");
            return out;
        }
    };
    let replicas = spec.replicas.unwrap_or(1).max(0) as usize;
    let min_ready = Duration::from_secs(
        spec.min_ready_seconds
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(0),
    );
    let active: Vec<&Cached> = pods.iter().filter(|p| pod_active(&p.value)).collect();
    let ns = namespace(rs);
    if active.len() < replicas {
        for _ in 0..(replicas - active.len()).min(BURST) {
            let pod = new_pod(rs, now, rng);
            let name = object::name(&pod).to_string();
            out.push(Action::Create {
                key: store::key("core", "pods", ns, &name),
                object: pod,
            });
            out.push(Action::Event(EventRecord::about(
                rs,
                EventType::Normal,
                "SuccessfulCreate",
                format!("Created pod: {name}"),
            )));
        }
    } else if active.len() > replicas {
        let mut ranked = active.clone();
        ranked.sort_by_key(|p| deletion_rank(&p.value, now));
        for p in ranked.into_iter().take(active.len() - replicas) {
            out.push(delete_pod(&p.key, &p.value, p.revision, now));
            out.push(Action::Event(EventRecord::about(
                rs,
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {}", object::name(&p.value)),
            )));
        }
    }
    // Status describes the pods observed now; the next pass sees the effect of the writes above.
    let template_labels: Vec<(String, String)> =
        string_map(rs.pointer("/spec/template/metadata/labels"))
            .into_iter()
            .collect();
    let fully = active
        .iter()
        .filter(|p| {
            let l = labels(&p.value);
            template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .count();
    let ready = active.iter().filter(|p| pod_ready(&p.value)).count();
    let available = active
        .iter()
        .filter(|p| pod_available(&p.value, min_ready, now))
        .count();
    if available < ready {
        out.requeue(min_ready.max(Duration::from_secs(1)));
    }
    let mut status = status_of(rs);
    status["replicas"] = json!(active.len());
    status["fullyLabeledReplicas"] = json!(fully);
    status["readyReplicas"] = json!(ready);
    status["availableReplicas"] = json!(available);
    status["observedGeneration"] = json!(generation(rs));
    out.push(status_update(rs_key, rs, status));
    out
}

/// The parts of a ReplicaSet's spec the controller decides on (k8s-openapi's `ReplicaSetSpec` whole would
/// parse the template on every pass, and strictly). i64 so a negative `minReadySeconds` reads as 0, as the
/// old unsigned read did.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ReplicaSetSpecView {
    replicas: Option<i64>,
    min_ready_seconds: Option<i64>,
}

/// A new pod from the ReplicaSet's template, named `{rs}-{5 random}`.
pub fn new_pod(rs: &Value, now: SystemTime, rng: &mut dyn RngCore) -> Value {
    let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let rs_name = name(rs);
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    if !meta.is_object() {
        meta = json!({});
    }
    meta["name"] = json!(format!("{rs_name}-{}", random_suffix(rng, 5)));
    meta["generateName"] = json!(format!("{rs_name}-"));
    meta["namespace"] = json!(namespace(rs));
    meta["ownerReferences"] = json!([controller_ref(rs)]);
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
        "status": {"phase": "Pending"},
    });
    // Controllers write pods straight to the store, past the API's defaults: give them the same
    // ServiceAccount default a pod created through the API gets.
    if let Some(spec) = pod["spec"].as_object_mut() {
        crate::api::meta::default_service_account(spec);
    }
    stamp_new(&mut pod, now, rng);
    // Pods carry no generation in Kubernetes' output unless set; keep it, the API does the same.
    pod
}

/// Sort key: lower is deleted first. Unscheduled < pending < not ready < ready; among ready pods the ones
/// ready for less time first; then newer pods first.
fn deletion_rank(p: &Value, now: SystemTime) -> (u8, u8, u8, i64, i64) {
    let scheduled = u8::from(pod_node(p).is_some());
    let phase = match pod_phase(p) {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    let ready = u8::from(pod_ready(p));
    let since = |t: Option<SystemTime>| {
        t.and_then(|t| now.duration_since(t).ok())
            .map_or(0, |d| d.as_secs() as i64)
    };
    let ready_for = since(
        condition(p, "Ready")
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339),
    );
    let age = since(parse_rfc3339(meta_str(p, "creationTimestamp")));
    (scheduled, phase, ready, ready_for, age)
}

/// Index of pods by the uid of their controller.
pub(crate) fn pods_by_controller(pods: &[Cached]) -> HashMap<String, Vec<Cached>> {
    let mut m: HashMap<String, Vec<Cached>> = HashMap::new();
    for p in pods {
        if let Some(u) = controller_uid(&p.value) {
            m.entry(u.to_string()).or_default().push(p.clone());
        }
    }
    m
}

/// Adopts nothing: pods are matched to ReplicaSets (and DaemonSets) only by their controller reference, which
/// is how berth's own controllers create them. The selector is still checked so a relabelled pod is released.
pub(crate) fn selected(rs: &Value, pods: Vec<Cached>) -> Vec<Cached> {
    let sel = rs
        .pointer("/spec/selector")
        .map_or_else(LabelSelector::everything, LabelSelector::from_json_lenient);
    pods.into_iter()
        .filter(|p| sel.matches_labels(&labels(&p.value)))
        .collect()
}

/// One reconcile per object of `owners` with the pods it controls (by controller reference, still
/// [`selected`]), keeping those that want writes or a timer: the pass of every pod-owning controller.
pub(crate) fn reconcile_owners(
    ctx: &Ctx,
    kind: &'static str,
    owners: &Informer,
    mut reconcile: impl FnMut(&Cached, &[Cached], &mut dyn RngCore) -> Actions,
) -> Vec<Actions> {
    let mut by_owner = pods_by_controller(&ctx.caches.pods.list());
    owners
        .list()
        .into_iter()
        .map(|o| {
            let pods = selected(&o.value, by_owner.remove(uid(&o.value)).unwrap_or_default());
            ctx.reconcile_isolated(kind, &o.key, |rng| reconcile(&o, &pods, rng))
        })
        .filter(|a| !a.is_empty() || a.requeue_after.is_some())
        .collect()
}

/// The runner's view of the ReplicaSet controller.
pub struct ReplicaSetController;

impl Controller for ReplicaSetController {
    const COMPONENT: &'static str = "replicaset-controller";

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        vec![caches.replicasets.clone(), caches.pods.clone()]
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        let now = ctx.now();
        reconcile_owners(
            ctx,
            "ReplicaSet",
            &ctx.caches.replicasets,
            |rs, pods, rng| reconcile(&rs.key, &rs.value, pods, now, rng),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rs(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "rs-uid", "generation": 2, "resourceVersion": "7"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
        })
    }

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: bool, created: &str) -> Cached {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "resourceVersion": "3",
                         "creationTimestamp": created, "labels": {"app": "web"},
                         "ownerReferences": [{"uid": "rs-uid", "controller": true}]},
            "spec": {},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        });
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        Cached {
            key: format!("/core/pods/default/{name}"),
            value: Arc::new(p),
            revision: 3,
        }
    }

    fn now() -> SystemTime {
        parse_rfc3339("2026-01-01T01:00:00Z").unwrap()
    }

    fn creates(a: &Actions) -> Vec<&Value> {
        a.actions
            .iter()
            .filter_map(|a| match a {
                Action::Create { object, .. } => Some(object),
                _ => None,
            })
            .collect()
    }

    fn removed(a: &Actions) -> Vec<String> {
        let mut v: Vec<String> = a
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Delete { key, .. } => Some(key.clone()),
                Action::Update { key, object, .. } if deleting(object) => Some(key.clone()),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn table() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let running = |n: &str, created: &str| pod(n, Some("n1"), "Running", true, created);
        type Case = (&'static str, i64, Vec<Cached>, usize, Vec<&'static str>);
        let mut terminating = running("t", "2026-01-01T00:00:00Z");
        Arc::make_mut(&mut terminating.value)["metadata"]["deletionTimestamp"] =
            json!("2026-01-01T00:59:00Z");
        let cases: Vec<Case> = vec![
            ("creates from nothing", 3, vec![], 3, vec![]),
            (
                "steady",
                2,
                vec![
                    running("a", "2026-01-01T00:00:00Z"),
                    running("b", "2026-01-01T00:00:00Z"),
                ],
                0,
                vec![],
            ),
            (
                "failed pods are replaced",
                2,
                vec![
                    running("a", "2026-01-01T00:00:00Z"),
                    pod("f", Some("n1"), "Failed", false, "2026-01-01T00:00:00Z"),
                ],
                1,
                vec![],
            ),
            (
                "terminating pods do not count",
                1,
                vec![terminating.clone()],
                1,
                vec![],
            ),
            (
                "unscheduled first, then pending, then not ready",
                2,
                vec![
                    running("ready", "2026-01-01T00:00:00Z"),
                    pod("unsched", None, "Pending", false, "2026-01-01T00:00:00Z"),
                    pod(
                        "pending",
                        Some("n1"),
                        "Pending",
                        false,
                        "2026-01-01T00:00:00Z",
                    ),
                    pod(
                        "notready",
                        Some("n1"),
                        "Running",
                        false,
                        "2026-01-01T00:00:00Z",
                    ),
                ],
                0,
                vec!["/core/pods/default/pending", "/core/pods/default/unsched"],
            ),
            (
                "newer ready pod goes first",
                1,
                vec![
                    running("old", "2026-01-01T00:00:00Z"),
                    running("new", "2026-01-01T00:30:00Z"),
                ],
                0,
                vec!["/core/pods/default/new"],
            ),
            (
                "scale to zero",
                0,
                vec![running("a", "2026-01-01T00:00:00Z")],
                0,
                vec!["/core/pods/default/a"],
            ),
        ];
        for (name, replicas, pods, want_creates, want_deletes) in cases {
            let a = reconcile(
                "/apps/replicasets/default/web-abc",
                &rs(replicas),
                &pods,
                now(),
                &mut rng,
            );
            assert_eq!(creates(&a).len(), want_creates, "{name}");
            assert_eq!(removed(&a), want_deletes, "{name}");
        }
    }

    #[test]
    fn new_pods_are_owned_and_named() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = reconcile(
            "/apps/replicasets/default/web-abc",
            &rs(1),
            &[],
            now(),
            &mut rng,
        );
        let p = creates(&a)[0];
        let n = name(p);
        assert!(
            n.starts_with("web-abc-") && n.len() == "web-abc-".len() + 5,
            "{n}"
        );
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "rs-uid");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        assert_eq!(p["metadata"]["creationTimestamp"], "2026-01-01T01:00:00Z");
        assert!(a
            .actions
            .iter()
            .any(|x| matches!(x, Action::Event(e) if e.reason == "SuccessfulCreate")));
    }

    #[test]
    fn bound_pods_are_deleted_gracefully_unbound_at_once() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pods = vec![
            pod("bound", Some("n1"), "Running", true, "2026-01-01T00:00:00Z"),
            pod("free", None, "Pending", false, "2026-01-01T00:00:00Z"),
        ];
        let a = reconcile(
            "/apps/replicasets/default/web-abc",
            &rs(0),
            &pods,
            now(),
            &mut rng,
        );
        assert!(a.actions.iter().any(
            |x| matches!(x, Action::Delete { key, revision: Some(3) } if key.ends_with("/free"))
        ));
        let upd = a.actions.iter().find_map(|x| match x {
            Action::Update {
                key,
                object,
                revision: 3,
            } if key.ends_with("/bound") => Some(object),
            _ => None,
        });
        let upd = upd.expect("graceful delete");
        assert_eq!(upd["metadata"]["deletionTimestamp"], "2026-01-01T01:00:00Z");
        assert_eq!(upd["metadata"]["deletionGracePeriodSeconds"], 30);
    }

    #[test]
    fn status_reports_and_is_written_once() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pods = vec![
            pod("a", Some("n1"), "Running", true, "2026-01-01T00:00:00Z"),
            pod("b", Some("n1"), "Running", false, "2026-01-01T00:00:00Z"),
        ];
        let a = reconcile(
            "/apps/replicasets/default/web-abc",
            &rs(2),
            &pods,
            now(),
            &mut rng,
        );
        let Some(Action::Update {
            object,
            revision: 7,
            ..
        }) = a.actions.first()
        else {
            panic!("{a:?}")
        };
        assert_eq!(
            object["status"],
            json!({"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 2})
        );
        let again = reconcile(
            "/apps/replicasets/default/web-abc",
            object,
            &pods,
            now(),
            &mut rng,
        );
        assert!(again.is_empty(), "idempotent: {again:?}");
    }

    #[test]
    fn min_ready_seconds_delays_availability() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut r = rs(1);
        r["spec"]["minReadySeconds"] = json!(7200);
        let pods = vec![pod(
            "a",
            Some("n1"),
            "Running",
            true,
            "2026-01-01T00:00:00Z",
        )];
        let a = reconcile(
            "/apps/replicasets/default/web-abc",
            &r,
            &pods,
            now(),
            &mut rng,
        );
        let Some(Action::Update { object, .. }) = a.actions.first() else {
            panic!()
        };
        assert_eq!(object["status"]["availableReplicas"], 0);
        assert_eq!(object["status"]["readyReplicas"], 1);
        assert!(a.requeue_after.is_some());
    }
    #[test]
    fn min_ready_seconds_past_the_end_of_the_clock_never_make_a_pod_available() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut r = rs(1);
        r["spec"]["minReadySeconds"] = json!(i64::MAX);
        let pods = vec![pod(
            "a",
            Some("n1"),
            "Running",
            true,
            "2026-01-01T00:00:00Z",
        )];
        let a = reconcile(
            "/apps/replicasets/default/web-abc",
            &r,
            &pods,
            now(),
            &mut rng,
        );
        let Some(Action::Update { object, .. }) = a.actions.first() else {
            panic!()
        };
        assert_eq!(object["status"]["availableReplicas"], 0);
    }

    #[test]
    fn a_replica_set_whose_spec_does_not_parse_is_skipped() {
        // Hostile stored objects: the typed read refuses a wrong JSON type, and the ReplicaSet is left alone.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (field, bad) in [("replicas", json!("3")), ("minReadySeconds", json!(1.5))] {
            let mut r = rs(3);
            r["spec"][field] = bad;
            assert!(
                reconcile(
                    "/apps/replicasets/default/web-abc",
                    &r,
                    &[],
                    now(),
                    &mut rng
                )
                .is_empty(),
                "{field}"
            );
        }
    }
}
