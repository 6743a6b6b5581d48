//! Deployment reconcile tests: tables over hand-built states, and a pure simulated world (deployment and
//! ReplicaSet reconciles plus a fake kubelet) that drives rollouts step by step under proptest.

use super::*;
use crate::controllers::replicaset;
use crate::controllers::sim::Sim;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn deploy(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1, "resourceVersion": "1"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}},
        },
    })
}

fn t0() -> SystemTime {
    parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
}

/// The shared simulator, driven by the deployment and ReplicaSet reconciles and a fake kubelet.
struct World {
    sim: Sim,
}

impl std::ops::Deref for World {
    type Target = Sim;
    fn deref(&self) -> &Sim {
        &self.sim
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut Sim {
        &mut self.sim
    }
}

impl World {
    fn new(d: Value, seed: u64) -> World {
        let mut w = World {
            sim: Sim::new(seed, t0()),
        };
        w.put("/apps/deployments/default/web".into(), d);
        w
    }

    fn deployment(&self) -> Value {
        self.get("/apps/deployments/default/web")
    }

    fn set_deployment(&mut self, f: impl FnOnce(&mut Value)) {
        let mut d = self.deployment();
        f(&mut d);
        d["metadata"]["generation"] = json!(generation(&d) + 1);
        self.put("/apps/deployments/default/web".into(), d);
    }

    fn deployment_pass(&mut self) {
        let d = self.deployment();
        let rss = self.cached("/apps/replicasets/");
        let mut live = HashMap::new();
        for p in self.cached("/core/pods/") {
            if let Some(u) = controller_uid(&p.value) {
                *live.entry(u.to_string()).or_default() += 1;
            }
        }
        let a = reconcile(
            "/apps/deployments/default/web",
            &d,
            &rss,
            &live,
            self.now,
            &mut self.rng,
        );
        self.apply(a);
    }

    fn rs_pass(&mut self) {
        let pods = self.cached("/core/pods/");
        let by = replicaset::pods_by_controller(&pods);
        for rs in self.cached("/apps/replicasets/") {
            let owned = by.get(uid(&rs.value)).cloned().unwrap_or_default();
            let a = replicaset::reconcile(&rs.key, &rs.value, &owned, self.now, &mut self.rng);
            self.apply(a);
        }
    }

    /// Removes terminating pods, binds new ones, and makes each not-ready pod ready with probability `p`.
    fn kubelet(&mut self, p: f64) {
        let now = rfc3339(self.now);
        for Cached {
            key: k, value: v, ..
        } in self.cached("/core/pods/")
        {
            if deleting(&v) {
                self.remove(&k);
                continue;
            }
            if !pod_ready(&v) && self.rng.gen_bool(p) {
                let mut v = (*v).clone();
                v["spec"]["nodeName"] = json!("n1");
                v["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]});
                self.put(k, v);
            }
        }
    }

    fn pods(&self) -> Vec<Value> {
        self.values("/core/pods/")
    }

    fn active(&self) -> usize {
        self.pods().iter().filter(|p| pod_active(p)).count()
    }

    fn available(&self) -> usize {
        self.pods()
            .iter()
            .filter(|p| pod_active(p) && pod_ready(p))
            .count()
    }

    fn step(&mut self, ready_p: f64, check: &mut dyn FnMut(&World)) {
        self.deployment_pass();
        check(self);
        self.rs_pass();
        check(self);
        self.kubelet(ready_p);
        check(self);
        self.rs_pass();
        check(self);
        self.now += std::time::Duration::from_secs(1);
    }

    fn converge(&mut self, max_steps: usize) -> usize {
        for i in 0..max_steps {
            self.step(1.0, &mut |_| {});
            if self.rolled_out() {
                return i;
            }
        }
        panic!("did not converge: {:#?}", self.deployment()["status"]);
    }

    /// What `kubectl rollout status` checks.
    fn rolled_out(&self) -> bool {
        let d = self.deployment();
        let st = &d["status"];
        let g = |f: &str| st.get(f).and_then(Value::as_i64).unwrap_or(0);
        g("observedGeneration") >= generation(&d)
            && g("updatedReplicas") == spec_replicas(&d)
            && g("replicas") == g("updatedReplicas")
            && g("availableReplicas") == g("updatedReplicas")
            && self.active() as i64 == spec_replicas(&d)
    }

    fn replica_sets(&self) -> Vec<Value> {
        self.values("/apps/replicasets/")
    }
}

#[test]
fn hash_is_stable_and_safe() {
    let t = deploy(1, "a")["spec"]["template"].clone();
    let h = pod_template_hash(&t, None);
    assert_eq!(h, pod_template_hash(&t, None));
    assert!(
        h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{h}"
    );
    assert!((6..=10).contains(&h.len()));
    assert_ne!(
        h,
        pod_template_hash(&deploy(1, "b")["spec"]["template"], None)
    );
    assert_ne!(h, pod_template_hash(&t, Some(1)));
    // Field order does not matter.
    let reordered: Value = serde_json::from_str(
        r#"{"spec":{"containers":[{"image":"a","name":"c"}]},"metadata":{"labels":{"app":"web"}}}"#,
    )
    .unwrap();
    assert_eq!(h, pod_template_hash(&reordered, None));
}

#[test]
fn fenceposts_round_like_kubernetes() {
    let cases = [
        (json!(null), json!(null), 10, (3, 2)),
        (json!("25%"), json!("25%"), 4, (1, 1)),
        (json!("30%"), json!("30%"), 5, (2, 1)),
        (json!(0), json!(0), 3, (0, 1)),
        (json!(2), json!(0), 3, (2, 0)),
        (json!("0%"), json!("10%"), 5, (0, 1)),
        (json!("1"), json!(1), 3, (1, 1)),
    ];
    for (surge, unavail, replicas, want) in cases {
        let mut d = deploy(replicas, "a");
        let mut ru = json!({});
        if !surge.is_null() {
            ru["maxSurge"] = surge.clone();
        }
        if !unavail.is_null() {
            ru["maxUnavailable"] = unavail.clone();
        }
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": ru});
        assert_eq!(
            resolve_fenceposts(&d, replicas),
            want,
            "{surge} {unavail} {replicas}"
        );
    }
}

#[test]
fn first_reconcile_creates_owned_replica_set() {
    let mut rng = StdRng::seed_from_u64(1);
    let d = deploy(3, "a");
    let a = reconcile(
        "/apps/deployments/default/web",
        &d,
        &[],
        &HashMap::new(),
        t0(),
        &mut rng,
    );
    let hash = pod_template_hash(&d["spec"]["template"], None);
    let rs = a.actions.iter().find_map(|x| match x {
        Action::Create { key, object } => Some((key, object)),
        _ => None,
    });
    let (key, rs) = rs.expect("creates a replica set");
    assert_eq!(key, &format!("/apps/replicasets/default/web-{hash}"));
    assert_eq!(rs["spec"]["replicas"], 3);
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"][HASH_LABEL],
        json!(hash)
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL],
        json!(hash)
    );
    assert_eq!(rs["metadata"]["labels"][HASH_LABEL], json!(hash));
    assert_eq!(rs["metadata"]["annotations"][REVISION], "1");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-uid");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    assert!(a.actions.iter().any(|x| matches!(x, Action::Event(e) if e.message == format!("Scaled up replica set web-{hash} to 3"))));
    let dep = a.actions.iter().find_map(|x| match x {
        Action::Update { object, .. } => Some(object),
        _ => None,
    });
    let dep = dep.expect("deployment status");
    assert_eq!(dep["metadata"]["annotations"][REVISION], "1");
    assert_eq!(dep["status"]["observedGeneration"], 1);
    let prog = dep["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap();
    assert_eq!(prog["reason"], "NewReplicaSetCreated");
}

#[test]
fn deployment_converges_and_reports_complete() {
    let mut w = World::new(deploy(3, "a"), 1);
    w.converge(10);
    let d = w.deployment();
    let st = &d["status"];
    assert_eq!(
        (
            st["replicas"].clone(),
            st["updatedReplicas"].clone(),
            st["readyReplicas"].clone(),
            st["availableReplicas"].clone()
        ),
        (json!(3), json!(3), json!(3), json!(3))
    );
    assert_eq!(st["unavailableReplicas"], 0);
    let conds = st["conditions"].as_array().unwrap();
    let get = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap().clone();
    assert_eq!(get("Available")["status"], "True");
    assert_eq!(get("Progressing")["reason"], "NewReplicaSetAvailable");
    // Converged: another pass writes nothing.
    let rss = w.cached("/apps/replicasets/");
    let a = reconcile(
        "/apps/deployments/default/web",
        &d,
        &rss,
        &HashMap::new(),
        w.now,
        &mut w.rng,
    );
    assert!(a.is_empty(), "{a:?}");
}

#[test]
fn scale_3_30_0_converges() {
    let mut w = World::new(deploy(3, "a"), 2);
    w.converge(10);
    w.set_deployment(|d| d["spec"]["replicas"] = json!(30));
    w.converge(10);
    assert_eq!(w.active(), 30);
    w.set_deployment(|d| d["spec"]["replicas"] = json!(0));
    w.converge(10);
    assert_eq!(w.active(), 0);
    assert_eq!(
        w.replica_sets().len(),
        1,
        "scaling makes no new replica set"
    );
}

#[test]
fn rollout_then_undo_reuses_old_replica_set() {
    let mut w = World::new(deploy(2, "a"), 3);
    w.converge(10);
    let first = w.replica_sets()[0].clone();
    w.set_deployment(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b"));
    w.converge(20);
    assert_eq!(w.replica_sets().len(), 2);
    assert_eq!(annotation(&w.deployment(), REVISION), Some("2"));
    // Undo as kubectl does: the old template without the hash label.
    let old_template = without_hash(&first["spec"]["template"]);
    w.set_deployment(|d| d["spec"]["template"] = old_template);
    w.converge(20);
    let rss = w.replica_sets();
    assert_eq!(rss.len(), 2, "undo re-uses the old replica set");
    let reused = rss.iter().find(|r| uid(r) == uid(&first)).unwrap();
    assert_eq!(annotation(reused, REVISION), Some("3"));
    assert_eq!(reused["spec"]["replicas"], 2);
    assert_eq!(annotation(&w.deployment(), REVISION), Some("3"));
    assert!(w
        .pods()
        .iter()
        .all(|p| controller_uid(p) == Some(uid(&first))));
}

#[test]
fn restarted_at_rolls_out_a_new_replica_set() {
    let mut w = World::new(deploy(2, "a"), 4);
    w.converge(10);
    w.set_deployment(|d| {
        d["spec"]["template"]["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:09Z"})
    });
    w.converge(20);
    assert_eq!(w.replica_sets().len(), 2);
}

#[test]
fn recreate_stops_old_pods_before_starting_new() {
    let mut d = deploy(3, "a");
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    let mut w = World::new(d, 5);
    w.converge(10);
    let old = uid(&w.replica_sets()[0]).to_string();
    w.set_deployment(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b"));
    let mut both = false;
    for _ in 0..20 {
        w.step(1.0, &mut |w: &World| {
            let owners: std::collections::HashSet<_> = w
                .pods()
                .iter()
                .filter(|p| pod_active(p))
                .filter_map(|p| controller_uid(p).map(str::to_string))
                .collect();
            both |= owners.len() > 1;
        });
        if w.rolled_out() {
            break;
        }
    }
    assert!(w.rolled_out());
    assert!(!both, "old and new pods ran together");
    assert!(w
        .pods()
        .iter()
        .all(|p| controller_uid(p) != Some(old.as_str())));
}

#[test]
fn paused_deployment_does_not_roll_out() {
    let mut w = World::new(deploy(2, "a"), 6);
    w.converge(10);
    w.set_deployment(|d| {
        d["spec"]["paused"] = json!(true);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
    });
    for _ in 0..5 {
        w.step(1.0, &mut |_| {});
    }
    assert_eq!(w.replica_sets().len(), 1);
    let d = w.deployment();
    let prog = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(prog["reason"], "DeploymentPaused");
    w.set_deployment(|d| d["spec"]["paused"] = json!(false));
    w.converge(20);
    assert_eq!(w.replica_sets().len(), 2);
}

#[test]
fn revision_history_limit_cleans_old_replica_sets() {
    let mut d = deploy(1, "v0");
    d["spec"]["revisionHistoryLimit"] = json!(2);
    let mut w = World::new(d, 7);
    w.converge(10);
    for i in 1..6 {
        w.set_deployment(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(format!("v{i}"))
        });
        w.converge(20);
        w.step(1.0, &mut |_| {});
    }
    let rss = w.replica_sets();
    assert_eq!(rss.len(), 3, "new + 2 old");
    let mut revs: Vec<i64> = rss.iter().map(rs_revision).collect();
    revs.sort();
    assert_eq!(revs, vec![4, 5, 6]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rolling_update_respects_surge_and_unavailable(
        replicas in 1i64..12,
        surge in prop_oneof![(0i64..4).prop_map(|n| json!(n)), (0i64..60).prop_map(|p| json!(format!("{p}%")))],
        unavail in prop_oneof![(0i64..4).prop_map(|n| json!(n)), (0i64..60).prop_map(|p| json!(format!("{p}%")))],
        ready_p in 0.2f64..1.0,
        seed in any::<u64>(),
    ) {
        let mut d = deploy(replicas, "a");
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}});
        let (max_surge, max_unavail) = resolve_fenceposts(&d, replicas);
        let mut w = World::new(d, seed);
        w.converge(20);
        w.set_deployment(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b"));
        let mut violation = None;
        for _ in 0..400 {
            w.step(ready_p, &mut |w: &World| {
                let active = w.active() as i64;
                let available = w.available() as i64;
                if active > replicas + max_surge {
                    violation.get_or_insert(format!("{active} pods > {replicas} + {max_surge}"));
                }
                if available < replicas - max_unavail {
                    violation.get_or_insert(format!("{available} available < {replicas} - {max_unavail}"));
                }
            });
            if w.rolled_out() {
                break;
            }
        }
        prop_assert!(violation.is_none(), "{:?}", violation);
        prop_assert!(w.rolled_out(), "rollout did not finish: {:#}", w.deployment()["status"]);
        let new_hash = pod_template_hash(&w.deployment()["spec"]["template"], None);
        prop_assert!(w.pods().iter().all(|p| labels(p).get(HASH_LABEL) == Some(&new_hash)));
    }
}

fn progressing(w: &World) -> Value {
    condition(&w.deployment(), "Progressing").cloned().unwrap()
}

#[test]
fn a_stuck_rollout_exceeds_its_progress_deadline_and_recovers_when_pods_come_up() {
    let mut d = deploy(3, "img1");
    d["spec"]["progressDeadlineSeconds"] = json!(60);
    let mut w = World::new(d, 7);
    w.converge(50);
    w.set_deployment(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("img2"));
    // The new pods never become ready: after the first surge nothing moves.
    for _ in 0..5 {
        w.step(0.0, &mut |_| {});
    }
    let c = progressing(&w);
    assert_eq!(c["status"], "True", "{c}");
    let stuck_since = parse_rfc3339(c["lastUpdateTime"].as_str().unwrap()).unwrap();
    // Before the deadline: unchanged, and the controller asks to look again when it would pass.
    w.now = stuck_since + Duration::from_secs(30);
    let a = reconcile(
        "/apps/deployments/default/web",
        &w.deployment(),
        &w.cached("/apps/replicasets/"),
        &HashMap::new(),
        w.now,
        &mut w.rng,
    );
    assert_eq!(a.requeue_after, Some(Duration::from_secs(30)));
    w.now = stuck_since + Duration::from_secs(61);
    w.deployment_pass();
    let c = progressing(&w);
    assert_eq!(c["status"], "False", "{c}");
    assert_eq!(c["reason"], PROGRESS_DEADLINE_EXCEEDED);
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .ends_with("has timed out progressing."),
        "{c}"
    );
    // Staying stuck keeps the failure as it is.
    w.now += Duration::from_secs(100);
    w.step(0.0, &mut |_| {});
    assert_eq!(progressing(&w)["reason"], PROGRESS_DEADLINE_EXCEEDED);
    // The pods come up: the rollout progresses again and completes.
    w.converge(50);
    let c = progressing(&w);
    assert_eq!(c["status"], "True", "{c}");
    assert_eq!(c["reason"], "NewReplicaSetAvailable");
}

#[test]
fn scaling_mid_rollout_spreads_over_old_and_new_replica_sets() {
    let mut w = World::new(deploy(10, "img1"), 11);
    w.converge(50);
    w.set_deployment(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("img2"));
    // The new pods never come up: the rollout stops at 8 old (10 - maxUnavailable 2) + 5 new (surge 3).
    for _ in 0..6 {
        w.step(0.0, &mut |_| {});
    }
    let sizes = |w: &World| -> Vec<(String, i64)> {
        let mut v: Vec<(String, i64)> = w
            .replica_sets()
            .iter()
            .map(|r| {
                let image = r["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap();
                (image.to_string(), spec_replicas(r))
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sizes(&w),
        [("img1".to_string(), 8), ("img2".to_string(), 5)]
    );
    w.set_deployment(|d| d["spec"]["replicas"] = json!(20));
    w.deployment_pass();
    // 20 + surge 5 = 25, split 8:5 -> 15 + 10: the old, working pods grow too.
    assert_eq!(
        sizes(&w),
        [("img1".to_string(), 15), ("img2".to_string(), 10)]
    );
    // And back down: 4 + surge 1 = 5 -> 3 + 2.
    w.set_deployment(|d| d["spec"]["replicas"] = json!(4));
    w.deployment_pass();
    assert_eq!(
        sizes(&w),
        [("img1".to_string(), 3), ("img2".to_string(), 2)]
    );
    // The rollout goes on from there once the new pods come up.
    w.converge(100);
    assert_eq!(
        sizes(&w),
        [("img1".to_string(), 0), ("img2".to_string(), 4)]
    );
}

#[test]
fn deadlines_and_min_ready_past_the_end_of_the_clock_do_not_panic() {
    let mut d = deploy(2, "img1");
    d["spec"]["progressDeadlineSeconds"] = json!(i64::MAX);
    d["spec"]["minReadySeconds"] = json!(i64::MAX);
    d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(i64::MAX);
    let mut w = World::new(d, 7);
    for _ in 0..10 {
        w.step(1.0, &mut |_| {});
    }
    // Ready pods are never available with such a minReadySeconds, and the rollout never times out.
    let status = &w.deployment()["status"];
    assert_eq!(status["readyReplicas"], 2, "{status}");
    assert_eq!(
        status["availableReplicas"].as_i64().unwrap_or(0),
        0,
        "{status}"
    );
    assert_eq!(progressing(&w)["status"], "True");
    w.now += Duration::from_secs(3600 * 24 * 365);
    w.set_deployment(|d| d["spec"]["replicas"] = json!(0));
    for _ in 0..10 {
        w.step(1.0, &mut |_| {});
    }
}

#[test]
fn a_deployment_whose_spec_does_not_parse_is_skipped() {
    // Hostile stored objects: the typed read refuses a wrong JSON type, and the Deployment is left alone.
    for (path, bad) in [
        ("/spec/paused", json!("yes")),
        ("/spec/revisionHistoryLimit", json!(1.5)),
        ("/spec/strategy", json!("Recreate")),
        ("/spec/strategy/rollingUpdate/maxSurge", json!(i64::MAX)),
    ] {
        let mut d = deploy(3, "a");
        d["spec"]["strategy"] = json!({"rollingUpdate": {}});
        *d.pointer_mut(path.rsplit_once('/').unwrap().0)
            .and_then(Value::as_object_mut)
            .unwrap()
            .entry(path.rsplit_once('/').unwrap().1)
            .or_insert(Value::Null) = bad;
        let a = reconcile(
            "/apps/deployments/default/web",
            &d,
            &[],
            &HashMap::new(),
            t0(),
            &mut StdRng::seed_from_u64(1),
        );
        assert!(a.is_empty(), "{path}");
        assert_eq!(resolve_fenceposts(&d, 4), (1, 1), "defaults: {path}");
    }
}
