use super::*;
use crate::controllers::sim::Sim;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn job(completions: Option<i64>, parallelism: i64) -> Value {
    let mut j = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "job-uid", "generation": 1, "resourceVersion": "5"},
        "spec": {"parallelism": parallelism, "backoffLimit": 2,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "job-uid"}},
                 "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "job-uid", "job-name": "pi"}},
                              "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
    });
    if let Some(c) = completions {
        j["spec"]["completions"] = json!(c);
    }
    j
}

fn now() -> SystemTime {
    parse_rfc3339("2026-01-01T01:00:00Z").unwrap()
}

fn at(secs_before_now: u64) -> String {
    rfc3339(now() - Duration::from_secs(secs_before_now))
}

fn pod(name: &str, phase: &str, finished_secs_ago: u64) -> Cached {
    let p = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}"), "resourceVersion": "3",
                     "creationTimestamp": at(600),
                     "labels": {"batch.kubernetes.io/controller-uid": "job-uid"},
                     "ownerReferences": [{"uid": "job-uid", "controller": true, "kind": "Job"}]},
        "spec": {"nodeName": "n1"},
        "status": {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": 0,
                    "state": {"terminated": {"finishedAt": at(finished_secs_ago)}}}]},
    });
    Cached {
        key: format!("/core/pods/default/{name}"),
        value: Arc::new(p),
        revision: 3,
    }
}

fn run(j: &Value, pods: &[Cached]) -> Actions {
    reconcile(
        "/batch/jobs/default/pi",
        j,
        pods,
        now(),
        &mut StdRng::seed_from_u64(3),
    )
}

fn created(a: &Actions) -> usize {
    a.actions
        .iter()
        .filter(|a| matches!(a, Action::Create { .. }))
        .count()
}

fn deleted(a: &Actions) -> usize {
    a.actions
        .iter()
        .filter(|a| match a {
            Action::Update { key, object, .. } => {
                key.starts_with("/core/pods/") && deleting(object)
            }
            Action::Delete { .. } => true,
            _ => false,
        })
        .count()
}

fn updated_job(a: &Actions) -> Value {
    a.actions
        .iter()
        .find_map(|a| match a {
            Action::Update { key, object, .. } if key.starts_with("/batch/jobs/") => {
                Some(object.clone())
            }
            _ => None,
        })
        .expect("a status update")
}

#[test]
fn starts_parallelism_pods_but_no_more_than_completions_left() {
    let a = run(&job(Some(5), 2), &[]);
    assert_eq!(created(&a), 2);
    let j = updated_job(&a);
    assert_eq!(j["status"]["active"], 2);
    assert_eq!(j["status"]["startTime"], json!(rfc3339(now())));
    let a = run(
        &job(Some(5), 3),
        &[
            pod("a", "Succeeded", 60),
            pod("b", "Succeeded", 60),
            pod("c", "Succeeded", 60),
            pod("d", "Running", 0),
        ],
    );
    assert_eq!(created(&a), 1, "2 completions left, one of them running");
    let p = a.actions.iter().find_map(|a| match a {
        Action::Create { object, .. } => Some(object.clone()),
        _ => None,
    });
    let p = p.unwrap();
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(p["spec"]["restartPolicy"], "Never");
    assert_eq!(p["metadata"]["labels"]["job-name"], "pi");
}

#[test]
fn completes_once_enough_pods_succeeded_and_then_stays_put() {
    let pods = [pod("a", "Succeeded", 60), pod("b", "Succeeded", 30)];
    let a = run(&job(Some(2), 2), &pods);
    assert_eq!(created(&a), 0);
    let j = updated_job(&a);
    assert_eq!(finished(&j), Some("Complete"));
    assert_eq!(j["status"]["succeeded"], 2);
    assert_eq!(j["status"]["completionTime"], json!(rfc3339(now())));
    assert!(j["status"].get("active").is_none());
    let again = run(&j, &pods);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_work_queue_finishes_when_one_succeeded_and_the_rest_are_done() {
    let a = run(
        &job(None, 3),
        &[pod("a", "Succeeded", 5), pod("b", "Running", 0)],
    );
    assert_eq!(created(&a), 0, "one pod succeeded: no new ones");
    assert_eq!(finished(&updated_job(&a)), None);
    let a = run(
        &job(None, 3),
        &[pod("a", "Succeeded", 5), pod("b", "Succeeded", 1)],
    );
    assert_eq!(finished(&updated_job(&a)), Some("Complete"));
}

#[test]
fn failures_are_retried_after_a_growing_backoff() {
    assert_eq!(backoff(1), Duration::from_secs(10));
    assert_eq!(backoff(3), Duration::from_secs(40));
    assert_eq!(backoff(30), MAX_BACKOFF);
    let a = run(&job(Some(1), 1), &[pod("a", "Failed", 4)]);
    assert_eq!(created(&a), 0, "4 s after the failure, 10 s backoff");
    assert_eq!(a.requeue_after, Some(Duration::from_secs(6)));
    let a = run(&job(Some(1), 1), &[pod("a", "Failed", 11)]);
    assert_eq!(created(&a), 1);
    assert_eq!(updated_job(&a)["status"]["failed"], 1);
}

#[test]
fn the_backoff_limit_fails_the_job_and_stops_its_pods() {
    let pods = [
        pod("a", "Failed", 100),
        pod("b", "Failed", 90),
        pod("c", "Failed", 80),
        pod("d", "Running", 0),
    ];
    let a = run(&job(Some(4), 2), &pods);
    let j = updated_job(&a);
    assert_eq!(finished(&j), Some("Failed"));
    assert_eq!(
        condition(&j, "Failed").unwrap()["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!((created(&a), deleted(&a)), (0, 1));

    // With OnFailure the kubelet restarts in place; those restarts count against the limit.
    let mut j = job(Some(1), 1);
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    let mut p = pod("a", "Running", 0);
    Arc::make_mut(&mut p.value)["status"]["containerStatuses"][0]["restartCount"] = json!(3);
    assert_eq!(finished(&updated_job(&run(&j, &[p]))), Some("Failed"));
}

#[test]
fn the_active_deadline_fails_a_running_job() {
    let mut j = job(Some(1), 1);
    j["spec"]["activeDeadlineSeconds"] = json!(30);
    j["status"] = json!({"startTime": at(31)});
    let a = run(&j, &[pod("a", "Running", 0)]);
    let j2 = updated_job(&a);
    assert_eq!(
        condition(&j2, "Failed").unwrap()["reason"],
        "DeadlineExceeded"
    );
    assert_eq!(deleted(&a), 1);
    j["status"] = json!({"startTime": at(20)});
    let a = run(&j, &[pod("a", "Running", 0)]);
    assert_eq!(
        a.requeue_after,
        Some(Duration::from_secs(10)),
        "woken at the deadline"
    );
}

#[test]
fn deadlines_and_ttls_past_the_end_of_time_do_not_panic() {
    // Issue #13: activeDeadlineSeconds of i64::MAX panicked the leader's controllers on every leader.
    let mut j = job(Some(1), 1);
    j["spec"]["activeDeadlineSeconds"] = json!(i64::MAX);
    j["status"] = json!({"startTime": at(31)});
    let a = run(&j, &[pod("a", "Running", 0)]);
    assert_eq!(deleted(&a), 0, "a deadline that never comes fails nothing");
    let mut j = job(Some(1), 1);
    j["spec"]["ttlSecondsAfterFinished"] = json!(i64::MAX);
    j["status"] = json!({"completionTime": at(30),
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at(30)}]});
    let a = run(&j, &[]);
    assert!(a.is_empty());
}

#[test]
fn suspend_stops_pods_and_resume_starts_them() {
    let mut j = job(Some(3), 2);
    j["spec"]["suspend"] = json!(true);
    let a = run(&j, &[pod("a", "Running", 0)]);
    assert_eq!((created(&a), deleted(&a)), (0, 1));
    let s = updated_job(&a);
    assert_eq!(condition(&s, "Suspended").unwrap()["status"], "True");
    let mut resumed = s.clone();
    resumed["spec"]["suspend"] = json!(false);
    let a = run(&resumed, &[]);
    assert_eq!(created(&a), 2);
    assert_eq!(
        condition(&updated_job(&a), "Suspended").unwrap()["status"],
        "False"
    );
}

#[test]
fn a_finished_job_goes_after_its_ttl() {
    let mut j = job(Some(1), 1);
    j["spec"]["ttlSecondsAfterFinished"] = json!(60);
    j["status"] = json!({"completionTime": at(30),
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at(30)}]});
    let a = run(&j, &[]);
    assert!(a.is_empty());
    assert_eq!(a.requeue_after, Some(Duration::from_secs(30)));
    j["status"]["completionTime"] = json!(at(61));
    let a = run(&j, &[]);
    assert_eq!(
        a.actions,
        [Action::Delete {
            key: "/batch/jobs/default/pi".into(),
            revision: Some(5)
        }]
    );
}

/// Runs a job on a simulated node: each step, every running pod succeeds or fails at random. Never more than `parallelism` pods run, never more than `completions` succeed,
/// and the job ends Complete with exactly `completions` successes or Failed past its backoff limit.
fn simulate(completions: i64, parallelism: i64, fail_p: f64, seed: u64) {
    const JOB: &str = "/batch/jobs/default/pi";
    let mut sim = Sim::new(seed, now());
    sim.put(JOB.into(), job(Some(completions), parallelism));
    for step in 1..200u32 {
        let list = sim.cached("/core/pods/");
        // Each step is longer than the longest backoff, so retries are never held back.
        sim.now = now() + MAX_BACKOFF * 2 * step;
        let mut a = reconcile(JOB, &sim.get(JOB), &list, sim.now, &mut sim.rng);
        for act in &mut a.actions {
            if let Action::Create { object, .. } = act {
                object["status"] = json!({"phase": "Running"});
            }
        }
        sim.apply(a);
        // The kubelet stops a pod being deleted at once.
        for p in sim.cached("/core/pods/") {
            if deleting(&p.value) {
                sim.remove(&p.key);
            }
        }
        let pods = sim.values("/core/pods/");
        let running = pods.iter().filter(|p| pod_phase(p) == "Running").count() as i64;
        assert!(
            running <= parallelism,
            "{running} running, parallelism {parallelism}"
        );
        if finished(&sim.get(JOB)).is_some() {
            break;
        }
        for p in sim.cached("/core/pods/") {
            if pod_phase(&p.value) == "Running" {
                let phase = if rand::Rng::gen_bool(&mut sim.rng, fail_p) {
                    "Failed"
                } else {
                    "Succeeded"
                };
                let mut v = (*p.value).clone();
                v["status"]["phase"] = json!(phase);
                sim.put(p.key, v);
            }
        }
        let ok = sim
            .values("/core/pods/")
            .iter()
            .filter(|p| pod_phase(p) == "Succeeded")
            .count() as i64;
        assert!(ok <= completions, "{ok} succeeded of {completions}");
    }
    let pods = sim.values("/core/pods/");
    let ok = pods.iter().filter(|p| pod_phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| pod_phase(p) == "Failed").count() as i64;
    match finished(&sim.get(JOB)) {
        Some("Complete") => assert_eq!(ok, completions),
        Some("Failed") => assert!(failed > 2, "failed {failed} within the limit of 2"),
        other => panic!("job did not finish: {other:?}, {ok} ok, {failed} failed"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn jobs_finish_within_parallelism_and_completions(
        completions in 1i64..8,
        parallelism in 1i64..5,
        fail_p in 0.0f64..0.5,
        seed in any::<u64>(),
    ) {
        simulate(completions, parallelism, fail_p, seed);
    }
}

#[test]
fn a_job_whose_spec_does_not_parse_is_skipped() {
    // Hostile stored objects: the typed read refuses a wrong JSON type, and the Job is left alone.
    for (field, bad) in [
        ("parallelism", json!("2")),
        ("suspend", json!("yes")),
        ("completions", json!(1.5)),
        ("template", json!("x")),
    ] {
        let mut j = job(Some(1), 1);
        j["spec"][field] = bad;
        assert!(run(&j, &[pod("a", "Running", 0)]).is_empty(), "{field}");
    }
    let mut j = job(Some(1), 1);
    j["spec"] = Value::Null;
    assert_eq!(
        created(&run(&j, &[])),
        1,
        "a missing spec reads as defaults"
    );
}

#[test]
fn container_statuses_missing_fields_still_count_their_restarts() {
    let mut j = job(Some(1), 1);
    j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    let p = pod("a", "Running", 0);
    let mut v = (*p.value).clone();
    // No image, imageID, ready or exitCode: k8s-openapi's ContainerStatus would refuse it.
    v["status"]["containerStatuses"][0]["restartCount"] = json!(3);
    let p = Cached {
        value: Arc::new(v),
        ..p
    };
    assert_eq!(
        deleted(&run(&j, &[p])),
        1,
        "3 restarts exceed a backoff limit of 2"
    );
}
