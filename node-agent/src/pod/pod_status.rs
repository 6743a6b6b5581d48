//! Kubernetes pod status from the manager's records: phase, conditions, containerStatuses, IPs, times.

use super::{container_specs, Ctr, InitState, PodManager};
use crate::runtime::{ContainerStatus, RunState};
use apimachinery::time::rfc3339;
use serde_json::{json, Value};
use std::time::SystemTime;

fn terminated(st: &ContainerStatus) -> Value {
    let mut t = json!({
        "exitCode": st.exit_code.unwrap_or(0),
        "reason": st.reason.clone().unwrap_or_else(|| if st.exit_code == Some(0) { "Completed".into() } else { "Error".into() }),
        "startedAt": st.started_at,
        "finishedAt": st.finished_at,
        "containerID": format!("berth://{}", st.config.id),
    });
    if let Some(m) = &st.message {
        if !m.is_empty() {
            t["message"] = json!(m);
        }
    }
    json!({ "terminated": t })
}

impl PodManager {
    fn container_status(&self, name: &str, image: &str, c: &Ctr) -> Value {
        let running = c.status.as_ref().filter(|s| s.state == RunState::Running);
        let state = if let Some(st) = running {
            json!({"running": {"startedAt": st.started_at}})
        } else if let Some((reason, message)) = &c.waiting {
            json!({"waiting": {"reason": reason, "message": message}})
        } else if c.done {
            c.last
                .as_ref()
                .map(terminated)
                .unwrap_or_else(|| json!({"waiting": {"reason": "ContainerCreating"}}))
        } else if let Some(st) = c.status.as_ref().filter(|s| s.state == RunState::Exited) {
            terminated(st)
        } else {
            json!({"waiting": {"reason": "ContainerCreating"}})
        };
        // lastState is the previous instance; when the current state is that instance's termination, omit it.
        let last = match (&c.last, c.done) {
            (Some(l), false) => terminated(l),
            _ => json!({}),
        };
        let cur = c.status.as_ref().or(c.last.as_ref());
        let ready = running.is_some() && c.readiness.ok;
        let mut s = json!({
            "name": name,
            "state": state,
            "lastState": last,
            "ready": ready,
            "restartCount": c.restart_count,
            "image": image,
            "imageID": cur.map(|s| s.config.image_id.clone()).unwrap_or_default(),
            "started": running.is_some(),
        });
        if let Some(st) = cur {
            s["containerID"] = json!(format!("berth://{}", st.config.id));
        }
        s
    }

    /// The PodStatus JSON of one pod.
    pub(super) fn pod_status(&self, uid: &str, now: SystemTime) -> Value {
        let p = &self.pods[uid];
        let specs = container_specs(&p.pod);
        let mut statuses = Vec::new();
        let (mut all_ready, mut any_running, mut all_done, mut any_failed, mut all_started) =
            (true, false, true, false, true);
        for cs in &specs {
            let name = cs["name"].as_str().unwrap_or("");
            let c = p.containers.get(name).cloned().unwrap_or_default();
            let s = self.container_status(name, cs["image"].as_str().unwrap_or(""), &c);
            all_ready &= s["ready"] == true;
            any_running |= s["state"]["running"].is_object();
            all_started &= c.current.is_some() || c.last.is_some();
            all_done &= c.done;
            if c.done {
                any_failed |= c.last.as_ref().and_then(|l| l.exit_code).unwrap_or(0) != 0;
            }
            statuses.push(s);
        }
        let init = p.init_state();
        let mut init_statuses = Vec::new();
        for cs in super::init_specs(&p.pod) {
            let name = cs["name"].as_str().unwrap_or("");
            let c = p.containers.get(name).cloned().unwrap_or_default();
            let mut s = self.container_status(name, cs["image"].as_str().unwrap_or(""), &c);
            s["ready"] = json!(c.done && c.last.as_ref().and_then(|l| l.exit_code) == Some(0));
            init_statuses.push(s);
        }
        if init == InitState::Running {
            for s in statuses.iter_mut() {
                if s["state"]["waiting"].is_object()
                    && s["state"]["waiting"]["reason"] == "ContainerCreating"
                {
                    s["state"] = json!({"waiting": {"reason": "PodInitializing"}});
                }
            }
        }
        let phase = if init == InitState::Failed {
            "Failed"
        } else if specs.is_empty() || init == InitState::Running {
            "Pending"
        } else if all_done {
            if any_failed {
                "Failed"
            } else {
                "Succeeded"
            }
        } else if any_running || all_started {
            "Running"
        } else {
            "Pending"
        };
        let ts = rfc3339(p.start_time.unwrap_or(now));
        let cond = |t: &str, ok: bool, reason: Option<&str>| {
            let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": ts});
            if let Some(r) = reason {
                c["reason"] = json!(r);
            }
            c
        };
        let ready = all_ready && !specs.is_empty() && phase == "Running";
        let not_ready = if ready {
            None
        } else if phase == "Succeeded" || phase == "Failed" {
            Some("PodCompleted")
        } else {
            Some("ContainersNotReady")
        };
        let mut status = json!({
            "phase": phase,
            "conditions": [
                cond("PodReadyToStartContainers", p.netns.is_some() || p.stopped, None),
                cond("Initialized", init == InitState::Done, (init != InitState::Done).then_some("ContainersNotInitialized")),
                cond("Ready", ready, not_ready),
                cond("ContainersReady", ready, not_ready),
                cond("PodScheduled", true, None),
            ],
            "hostIP": self.settings.node_ip,
            "hostIPs": [{"ip": self.settings.node_ip}],
            "containerStatuses": statuses,
            "qosClass": qos(&specs),
        });
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        if let Some(t) = p.start_time {
            status["startTime"] = json!(rfc3339(t));
        }
        let host_network = p.pod["spec"]["hostNetwork"].as_bool().unwrap_or(false);
        let ip = if host_network {
            Some(self.settings.node_ip.clone())
        } else {
            p.ip.map(|i| i.to_string())
        };
        if let Some(ip) = ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if let Some(e) = &p.sandbox_error {
            status["message"] = json!(e);
            status["reason"] = json!("SandboxError");
        }
        status
    }
}

fn qos(specs: &[Value]) -> &'static str {
    let has = |k: &str| {
        specs
            .iter()
            .any(|c| c["resources"][k].as_object().is_some_and(|m| !m.is_empty()))
    };
    let guaranteed = !specs.is_empty()
        && specs.iter().all(|c| {
            let l = &c["resources"]["limits"];
            let r = &c["resources"]["requests"];
            l["cpu"].is_string()
                && l["memory"].is_string()
                && (r["cpu"].is_null() || r["cpu"] == l["cpu"])
                && (r["memory"].is_null() || r["memory"] == l["memory"])
        });
    if guaranteed {
        "Guaranteed"
    } else if has("limits") || has("requests") {
        "Burstable"
    } else {
        "BestEffort"
    }
}
