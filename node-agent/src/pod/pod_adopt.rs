//! Re-adoption after an agent restart: instances recorded by supervisors are grouped by pod and attached
//! to the pod when the server names it again, without restarting anything.

use super::pod_start::{host_ports_for, pod_network_mode};
use super::{container_specs, Ctr, PodManager, PodRt};
use crate::network::NetworkMode;
use crate::runtime::{ContainerStatus, RunState};
use serde_json::Value;
use std::collections::BTreeMap;

impl PodManager {
    pub(super) fn adopt_existing(&mut self) {
        for st in self.rt.list() {
            self.adopted
                .entry(st.config.pod_uid.clone())
                .or_default()
                .push(st);
        }
        for list in self.adopted.values_mut() {
            list.sort_by_key(|s| s.config.attempt);
        }
    }

    /// Creates the runtime record of a pod, taking over `adopted` instances (latest attempt per container
    /// becomes current if still running; the one before it is `lastState`).
    pub(super) fn attach(
        &mut self,
        uid: String,
        pod: Value,
        objects: Vec<Value>,
        adopted: Vec<ContainerStatus>,
    ) {
        let mut containers: BTreeMap<String, Ctr> = BTreeMap::new();
        for c in super::init_specs(&pod)
            .into_iter()
            .chain(container_specs(&pod))
        {
            containers.insert(c["name"].as_str().unwrap_or("").to_string(), Ctr::default());
        }
        let sandbox = self.read_sandbox(&pod);
        let adopted_any = !adopted.is_empty();
        for st in adopted {
            let c = containers
                .entry(st.config.container_name.clone())
                .or_default();
            c.restart_count = c.restart_count.max(st.config.attempt);
            // The crash history is not persisted: an adopted container backs off as if it crashed each time.
            c.crashes = c.restart_count;
            match st.state {
                RunState::Running | RunState::Created => {
                    if let Some(old) = c.current.replace(st.config.id.clone()) {
                        let _ = self.rt.remove(&old);
                    }
                    c.status = Some(st);
                }
                RunState::Exited => {
                    // An exit that happened while the agent was down is handled by the next refresh.
                    if c.current.is_none()
                        || c.status
                            .as_ref()
                            .is_some_and(|s| s.config.attempt < st.config.attempt)
                    {
                        c.current = Some(st.config.id.clone());
                        c.status = Some(st);
                    }
                }
            }
        }
        let (netns, ip, start_time) = match sandbox {
            Some((n, ip, t)) if adopted_any => (Some(n), ip, t),
            _ => (None, None, None),
        };
        // A restarted agent starts with an empty nft table: publish the adopted pod's host ports again.
        let mode = pod_network_mode(&pod);
        if let (Some(ip), NetworkMode::Pod) = (ip, mode) {
            let published =
                host_ports_for(&pod, mode).and_then(|ports| self.net.publish(&uid, ip, &ports));
            if let Err(e) = published {
                tracing::warn!(pod = %uid, error = %e, "cannot publish the host ports of an adopted pod");
            }
        }
        self.pods.insert(
            uid,
            PodRt {
                pod,
                objects,
                sa_token: String::new(),
                netns,
                ip,
                start_time,
                containers,
                stopping_since: None,
                stopped: false,
                forget: false,
                sandbox_error: None,
            },
        );
    }
}
