//! Desired-state intake and the level-triggered sync step that drives every pod one step forward.

use super::{uid_of, DesiredPod, PodManager, PodRt, StatusReport};
use crate::runtime::RunState;
use apimachinery::time::parse_rfc3339;
use std::time::SystemTime;

impl PodManager {
    /// Replaces the whole desired state (a `full` message from the server). Pods not in it are stopped
    /// and forgotten.
    pub fn set_desired(&mut self, desired: Vec<DesiredPod>) {
        let uids: std::collections::BTreeSet<String> =
            desired.iter().map(|d| uid_of(&d.pod)).collect();
        for (uid, p) in self.pods.iter_mut() {
            if !uids.contains(uid) {
                p.forget = true;
            }
        }
        for d in desired {
            self.upsert(d);
        }
        // Adopted instances of pods the server no longer wants are stopped through a placeholder pod.
        let orphans: Vec<String> = self
            .adopted
            .keys()
            .filter(|u| !uids.contains(*u))
            .cloned()
            .collect();
        for uid in orphans {
            let list = self.adopted.remove(&uid).unwrap_or_default();
            let Some(first) = list.first() else { continue };
            let c = &first.config;
            let pod = serde_json::json!({"metadata": {"uid": uid, "namespace": c.pod_namespace, "name": c.pod_name}, "spec": {}});
            self.attach(uid.clone(), pod, vec![], list);
            if let Some(p) = self.pods.get_mut(&uid) {
                p.forget = true;
            }
        }
    }

    /// Adds or updates one desired pod (a delta).
    pub fn upsert(&mut self, d: DesiredPod) {
        let uid = uid_of(&d.pod);
        if uid.is_empty() {
            return;
        }
        if let Some(p) = self.pods.get_mut(&uid) {
            p.pod = d.pod;
            p.objects = d.objects;
            p.forget = false;
            if p.sa_token != d.service_account_token {
                p.sa_token = d.service_account_token;
                self.refresh_service_account(&uid);
            }
            return;
        }
        let adopted = self.adopted.remove(&uid).unwrap_or_default();
        self.attach(uid.clone(), d.pod, d.objects, adopted);
        if let Some(p) = self.pods.get_mut(&uid) {
            p.sa_token = d.service_account_token;
            self.refresh_service_account(&uid);
        }
    }

    /// The server no longer wants this pod: stop it and forget it.
    pub fn remove(&mut self, uid: &str) {
        if let Some(p) = self.pods.get_mut(uid) {
            p.forget = true;
        }
    }

    /// Drives every pod one step: start sandboxes and containers, refresh states, restart or back off,
    /// probe, stop deleted pods. Returns the pod statuses that changed since the last call.
    pub fn sync(&mut self, now: SystemTime) -> Vec<StatusReport> {
        let uids: Vec<String> = self.pods.keys().cloned().collect();
        for uid in &uids {
            self.refresh(uid, now);
            let p = &self.pods[uid];
            let stopping = p.forget || !p.pod["metadata"]["deletionTimestamp"].is_null();
            if stopping {
                self.stop_pod(uid, now);
            } else {
                self.start_pod(uid, now);
                self.probe_pod(uid, now);
            }
        }
        let mut reports = Vec::new();
        for uid in uids {
            let p = &self.pods[&uid];
            if p.forget && p.stopped {
                self.pods.remove(&uid);
                self.reported.remove(&uid);
                continue;
            }
            if p.forget {
                continue;
            }
            let status = self.pod_status(&uid, now);
            if self.reported.get(&uid) != Some(&status) {
                self.reported.insert(uid.clone(), status.clone());
                let md = &self.pods[&uid].pod["metadata"];
                reports.push(StatusReport {
                    namespace: md["namespace"].as_str().unwrap_or("default").to_string(),
                    name: md["name"].as_str().unwrap_or("").to_string(),
                    uid: uid.clone(),
                    status,
                });
            }
        }
        reports
    }

    /// Reads every current instance's state from the runtime and handles exits (restart decisions).
    fn refresh(&mut self, uid: &str, now: SystemTime) {
        let rt = self.rt.clone();
        let p: &mut PodRt = self.pods.get_mut(uid).expect("pod exists");
        let policy = p.pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always")
            .to_string();
        let stopping = p.forget
            || !p.pod["metadata"]["deletionTimestamp"].is_null()
            || p.stopping_since.is_some();
        for (name, c) in p.containers.iter_mut() {
            let Some(id) = c.current.clone() else {
                continue;
            };
            let Some(st) = rt.status(&id) else {
                c.current = None;
                continue;
            };
            let exited = st.state == RunState::Exited;
            c.status = Some(st.clone());
            if !exited {
                continue;
            }
            // Keep the exited instance's rootfs only until we decide; its log file stays for --previous.
            c.last = Some(st.clone());
            c.status = None;
            c.current = None;
            c.kill_at = None;
            c.readiness = Default::default();
            c.liveness = Default::default();
            if let Err(e) = rt.remove(&id) {
                tracing::warn!(container = %name, error = %e, "cannot remove exited container");
            }
            let code = st.exit_code.unwrap_or(0);
            let is_init = super::init_specs(&p.pod)
                .iter()
                .any(|c| c["name"] == name.as_str());
            let restart = !stopping
                && match policy.as_str() {
                    // A successful init container is done; a failed one is retried unless the policy is Never.
                    _ if is_init => code != 0 && policy != "Never",
                    "Never" => false,
                    "OnFailure" => code != 0,
                    _ => true,
                };
            if !restart {
                c.done = true;
                c.waiting = None;
                continue;
            }
            let ran = match (st.started_at.as_deref(), st.finished_at.as_deref()) {
                (Some(a), Some(b)) => parse_rfc3339(b)
                    .zip(parse_rfc3339(a))
                    .and_then(|(b, a)| b.duration_since(a).ok()),
                _ => None,
            };
            if ran.is_some_and(|d| d >= super::backoff::RESET_AFTER) {
                c.crashes = 0;
            }
            let delay = super::restart_delay(c.crashes);
            c.crashes += 1;
            c.not_before = Some(now + delay);
            if !delay.is_zero() {
                let pod = format!(
                    "{}_{}({})",
                    p.pod["metadata"]["name"].as_str().unwrap_or(""),
                    p.pod["metadata"]["namespace"].as_str().unwrap_or("default"),
                    uid
                );
                c.waiting = Some((
                    "CrashLoopBackOff".into(),
                    format!(
                        "back-off {}s restarting failed container={name} pod={pod}",
                        delay.as_secs()
                    ),
                ));
            }
        }
    }
}
