//! Job controller: runs pods from the template to completion, `parallelism` at a time, until `completions`
//! succeeded (or, without completions, until one succeeded and the rest finished: a work queue). Failures
//! are retried with exponential backoff until `backoffLimit`; `activeDeadlineSeconds`, `suspend` and
//! `ttlSecondsAfterFinished` as in Kubernetes. Only the NonIndexed completion mode. Pure [`reconcile`] plus
//! the runner's pass over the caches.

use apimachinery::time::{parse_rfc3339, rfc3339};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::action::{delete_pod, Action, Actions};
use super::context::Ctx;
use super::events::{EventRecord, EventType};
use super::object::{self, *};
use super::replicaset::{self, reconcile_owners};
use super::runner::Controller;
use crate::informer::{Cached, Caches, Informer};
use crate::store;

/// First retry delay after a failed pod; doubles per failure up to [`MAX_BACKOFF`] (Kubernetes' values).
pub const BASE_BACKOFF: Duration = Duration::from_secs(10);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// The parts of a Job's spec the controller decides on, read once per reconcile (the Job itself stays JSON:
/// it is written back with every field it came with). Field names and meanings are k8s-openapi's
/// `batch::v1::JobSpec`; that type is not used whole because its required pod template would be parsed on
/// every pass, and strictly (a JSON number where it expects a Quantity string fails the whole Job). The
/// counts are i64, not JobSpec's i32, so the huge values issue #13 is about still parse and are clamped below.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct JobSpecView {
    parallelism: Option<i64>,
    completions: Option<i64>,
    backoff_limit: Option<i64>,
    active_deadline_seconds: Option<i64>,
    ttl_seconds_after_finished: Option<i64>,
    suspend: Option<bool>,
    completion_mode: Option<String>,
    template: Option<TemplateView>,
}

/// `spec.template`, for its restart policy only.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TemplateView {
    spec: Option<PodSpecView>,
}

/// `spec.template.spec.restartPolicy`: with `OnFailure` container restarts count as failures.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct PodSpecView {
    restart_policy: Option<String>,
}

impl JobSpecView {
    /// Reads `job.spec`; a missing spec reads as all defaults.
    ///
    /// # Errors
    /// When a field it decides on has the wrong JSON type (`"parallelism": "2"`, `"suspend": "yes"`, a float
    /// count). The old reads took such a field as unset; the caller now skips the Job instead.
    fn of(job: &Value) -> Result<Self, serde_json::Error> {
        spec_view(job)
    }

    fn restart_policy(&self) -> Option<&str> {
        self.template
            .as_ref()?
            .spec
            .as_ref()?
            .restart_policy
            .as_deref()
    }
}

/// The container statuses of a pod, as far as the Job controller reads them. Not k8s-openapi's
/// `ContainerStatus`: it requires `image`, `imageID`, `ready` and the terminated state's `exitCode`, and a
/// status missing one of them must still count its restarts.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ContainerStatusView {
    restart_count: Option<i64>,
    state: Option<ContainerStateView>,
}

/// `state` of a container status, for when it terminated.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContainerStateView {
    terminated: Option<TerminatedView>,
}

/// `state.terminated` of a container status.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct TerminatedView {
    finished_at: Option<String>,
}

/// A pod's container statuses; an entry that does not parse is left out, as the old reads ignored it.
fn container_statuses(p: &Value) -> impl Iterator<Item = ContainerStatusView> + '_ {
    p.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| ContainerStatusView::deserialize(c).ok())
}

/// Whether a `Complete` or `Failed` condition is true: a finished job is never touched again (but for its TTL).
pub fn finished(job: &Value) -> Option<&'static str> {
    ["Complete", "Failed"].into_iter().find(|t| {
        condition(job, t)
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            == Some("True")
    })
}

/// When a pod stopped running: the latest container finish time, else its creation time.
fn finished_at(p: &Value) -> Option<SystemTime> {
    container_statuses(p)
        .filter_map(|c| c.state?.terminated?.finished_at)
        .filter_map(|t| parse_rfc3339(&t))
        .max()
        .or_else(|| parse_rfc3339(meta_str(p, "creationTimestamp")))
}

/// Container restarts of a pod: with `restartPolicy: OnFailure` they count against the backoff limit.
fn restarts(p: &Value) -> i64 {
    container_statuses(p).filter_map(|c| c.restart_count).sum()
}

/// The retry delay after `failures` failed pods.
pub fn backoff(failures: i64) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(10) as u32;
    (BASE_BACKOFF * 2u32.pow(shift)).min(MAX_BACKOFF)
}

/// Reconciles one Job (`job`, stored at `job_key`) against the pods it controls.
pub fn reconcile(
    job_key: &str,
    job: &Value,
    pods: &[Cached],
    now: SystemTime,
    rng: &mut dyn RngCore,
) -> Actions {
    let mut out = Actions::default();
    if deleting(job) {
        return out;
    }
    let spec = match JobSpecView::of(job) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::warn!(job = %job_key, error = %e, "skipping job whose spec does not parse");
            return out;
        }
    };
    if finished(job).is_some() {
        let ttl = spec.ttl_seconds_after_finished;
        let done = job
            .pointer("/status/completionTime")
            .or_else(|| condition(job, "Failed").and_then(|c| c.get("lastTransitionTime")))
            .and_then(Value::as_str)
            .and_then(parse_rfc3339);
        // A TTL past the end of time never expires (checked: a huge TTL must not panic the leader).
        let expires = match (ttl, done) {
            (Some(ttl), Some(done)) => {
                done.checked_add(Duration::from_secs(ttl.max(0).unsigned_abs()))
            }
            _ => None,
        };
        if let Some(expires) = expires {
            if expires <= now {
                // Background propagation: the garbage collector removes its pods.
                out.push(Action::Delete {
                    key: job_key.to_string(),
                    revision: Some(revision(job)),
                });
            } else if let Ok(left) = expires.duration_since(now) {
                out.requeue(left);
            }
        }
        return out;
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let on_failure = spec.restart_policy() == Some("OnFailure");
    let active: Vec<&Cached> = pods.iter().filter(|p| pod_active(&p.value)).collect();
    let succeeded = pods
        .iter()
        .filter(|p| pod_phase(&p.value) == "Succeeded")
        .count() as i64;
    let failed_pods: Vec<&Cached> = pods
        .iter()
        .filter(|p| pod_phase(&p.value) == "Failed")
        .collect();
    let failed = failed_pods.len() as i64;
    let ready = active.iter().filter(|p| pod_ready(&p.value)).count() as i64;
    let suspended = spec.suspend == Some(true);
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let completions = spec.completions;
    let backoff_limit = spec.backoff_limit.unwrap_or(6);

    let mut status = status_of(job);
    let start = status
        .get("startTime")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339);
    if start.is_none() && !suspended {
        status["startTime"] = json!(rfc3339(now));
    }
    let start = start.unwrap_or(now);

    let delete_all = |out: &mut Actions| {
        for p in &active {
            out.push(delete_pod(&p.key, &p.value, p.revision, now));
        }
    };
    let event = |out: &mut Actions, ty, reason: &str, msg: String| {
        out.push(Action::Event(EventRecord::about(job, ty, reason, msg)));
    };
    let retries = failed
        + if on_failure {
            active.iter().map(|p| restarts(&p.value)).sum::<i64>()
        } else {
            0
        };
    let deadline = spec
        .active_deadline_seconds
        .filter(|_| !suspended)
        // A deadline past the end of time is no deadline (checked: it must not panic the leader).
        .and_then(|s| start.checked_add(Duration::from_secs(s.max(0).unsigned_abs())));
    let failure = if indexed {
        Some((
            "UnsupportedCompletionMode",
            "berth runs only NonIndexed jobs".to_string(),
        ))
    } else if retries > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".to_string(),
        ))
    } else if deadline.is_some_and(|d| d <= now) {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline".to_string(),
        ))
    } else {
        None
    };
    let complete = failure.is_none()
        && match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };

    let mut active_after = active.len() as i64;
    let now_s = rfc3339(now);
    let set = |status: &mut Value, ty: &str, value: &str, reason: &str, message: &str| {
        if let Some(m) = status.as_object_mut() {
            set_condition(m, ty, value, reason, message, &now_s, false);
        }
    };
    if let Some((reason, message)) = &failure {
        delete_all(&mut out);
        active_after = 0;
        set(&mut status, "FailureTarget", "True", reason, message);
        set(&mut status, "Failed", "True", reason, message);
        event(&mut out, EventType::Warning, reason, message.clone());
    } else if complete {
        delete_all(&mut out);
        active_after = 0;
        set(
            &mut status,
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
        set(
            &mut status,
            "Complete",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
        status["completionTime"] = json!(rfc3339(now));
        event(
            &mut out,
            EventType::Normal,
            "Completed",
            "Job completed".into(),
        );
    } else if suspended {
        delete_all(&mut out);
        active_after = 0;
        set(
            &mut status,
            "Suspended",
            "True",
            "JobSuspended",
            "Job suspended",
        );
    } else {
        if condition(job, "Suspended").is_some() {
            set(
                &mut status,
                "Suspended",
                "False",
                "JobResumed",
                "Job resumed",
            );
        }
        let wanted = match completions {
            Some(c) => parallelism.min(c - succeeded).max(0),
            // A work queue: once one pod succeeded, the others finish their share and no new ones start.
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        let current = active.len() as i64;
        if current < wanted {
            let wait = failed_pods
                .iter()
                .filter_map(|p| finished_at(&p.value))
                .max()
                .map(|last| last + backoff(failed))
                .and_then(|until| until.duration_since(now).ok())
                .filter(|d| !d.is_zero());
            match wait {
                Some(d) => out.requeue(d),
                None => {
                    let ns = namespace(job);
                    for _ in 0..(wanted - current).min(replicaset::BURST as i64) {
                        let pod = replicaset::new_pod(job, now, rng);
                        let name = object::name(&pod).to_string();
                        out.push(Action::Create {
                            key: store::key("core", "pods", ns, &name),
                            object: pod,
                        });
                        event(
                            &mut out,
                            EventType::Normal,
                            "SuccessfulCreate",
                            format!("Created pod: {name}"),
                        );
                        active_after += 1;
                    }
                }
            }
        } else if current > wanted {
            let mut newest: Vec<&&Cached> = active.iter().collect();
            newest.sort_by_key(|p| {
                std::cmp::Reverse(meta_str(&p.value, "creationTimestamp").to_string())
            });
            for p in newest.into_iter().take((current - wanted) as usize) {
                out.push(delete_pod(&p.key, &p.value, p.revision, now));
                event(
                    &mut out,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", object::name(&p.value)),
                );
                active_after -= 1;
            }
        }
        if let Some(d) = deadline.and_then(|d| d.duration_since(now).ok()) {
            out.requeue(d);
        }
    }
    status["active"] = json!(active_after);
    status["succeeded"] = json!(succeeded);
    status["failed"] = json!(failed);
    status["ready"] = json!(if active_after == 0 { 0 } else { ready });
    omit_zero_counts(&mut status, &["active", "succeeded", "failed"]);
    out.push(status_update(job_key, job, status));
    out
}

/// The runner's view of the Job controller.
pub struct JobController;

impl Controller for JobController {
    const COMPONENT: &'static str = "job-controller";

    fn triggers(caches: &Caches) -> Vec<Arc<Informer>> {
        vec![caches.jobs.clone(), caches.pods.clone()]
    }

    fn pass(&mut self, ctx: &Ctx) -> Vec<Actions> {
        let now = ctx.now();
        reconcile_owners(ctx, "Job", &ctx.caches.jobs, |job, pods, rng| {
            reconcile(&job.key, &job.value, pods, now, rng)
        })
    }
}

#[cfg(test)]
mod tests;
