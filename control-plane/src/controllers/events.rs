//! v1 Events: the record a controller emits ([`EventRecord`]) and the [`Recorder`] that turns records into
//! store writes under `/core/events/{ns}/{name}`, aggregating repeats into `count`/`lastTimestamp`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use rand::RngCore;
use serde_json::{json, Value};

use super::object::{name, namespace, stamp_new, uid};
use crate::store::{key, Op, Precondition};
use apimachinery::time::rfc3339;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Routine progress (`ScalingReplicaSet`, `SuccessfulCreate`, `Scheduled`).
    Normal,
    /// Something needs attention (`FailedScheduling`, `NodeNotReady`).
    Warning,
}

/// One event a controller wants recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// `involvedObject` (kind, namespace, name, uid, apiVersion, resourceVersion).
    pub involved: Value,
    /// Normal or Warning.
    pub kind: EventType,
    /// CamelCase reason (`ScalingReplicaSet`).
    pub reason: String,
    /// Human message (`Scaled up replica set web-5d4f8 to 3`).
    pub message: String,
}

impl EventRecord {
    /// An event about `object`.
    pub fn about(object: &Value, kind: EventType, reason: &str, message: String) -> EventRecord {
        EventRecord {
            involved: json!({
                "kind": object.get("kind").cloned().unwrap_or(Value::Null),
                "namespace": namespace(object),
                "name": name(object),
                "uid": uid(object),
                "apiVersion": object.get("apiVersion").cloned().unwrap_or(Value::Null),
                "resourceVersion": super::object::meta_str(object, "resourceVersion"),
            }),
            kind,
            reason: reason.to_string(),
            message,
        }
    }

    fn namespace(&self) -> &str {
        match self.involved.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() => ns,
            // Events about cluster-scoped objects live in `default`, as in Kubernetes.
            _ => "default",
        }
    }

    /// Deterministic event name, so repeats of the same (object, reason, message) aggregate.
    fn event_name(&self) -> String {
        let mut bytes = Vec::new();
        for part in [
            self.involved
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or(""),
            &self.reason,
            &self.message,
        ] {
            bytes.extend_from_slice(part.as_bytes());
            bytes.push(0);
        }
        let h = apimachinery::hash::fnv1a_64(&bytes);
        let obj = self
            .involved
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        format!("{obj}.{h:016x}")
    }
}

/// Turns event records into puts, remembering what it wrote so repeats bump `count`.
pub struct Recorder {
    component: String,
    written: Mutex<HashMap<String, Value>>,
}

impl Recorder {
    /// A recorder for `component` (`source.component`, `reportingComponent`).
    pub fn new(component: &str) -> Recorder {
        Recorder {
            component: component.to_string(),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// The put for one record. It has no precondition: a lost count increment is harmless, and the put
    /// rides in the same batch as the change it reports.
    pub fn op(&self, record: &EventRecord, now: SystemTime, rng: &mut dyn RngCore) -> Op {
        let ns = record.namespace().to_string();
        let ev_name = record.event_name();
        let k = key("core", "events", &ns, &ev_name);
        let now_s = rfc3339(now);
        let mut written = self.written.lock().expect("recorder lock");
        let value = match written.get(&k) {
            Some(prev) => {
                let mut v = prev.clone();
                v["count"] = json!(prev.get("count").and_then(Value::as_i64).unwrap_or(1) + 1);
                v["lastTimestamp"] = json!(now_s);
                v
            }
            None => {
                let mut v = json!({
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": ev_name, "namespace": ns},
                    "involvedObject": record.involved,
                    "reason": record.reason,
                    "message": record.message,
                    "source": {"component": self.component},
                    "firstTimestamp": now_s,
                    "lastTimestamp": now_s,
                    "count": 1,
                    "type": match record.kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
                    "reportingComponent": self.component,
                    "reportingInstance": "",
                });
                stamp_new(&mut v, now, rng);
                v
            }
        };
        if written.len() > 50_000 {
            written.clear();
        }
        written.insert(k.clone(), value.clone());
        Op::Put {
            key: k,
            value,
            precondition: Precondition::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn repeats_aggregate() {
        let rec = Recorder::new("deployment-controller");
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default", "uid": "u1"}});
        let r = EventRecord::about(
            &d,
            EventType::Normal,
            "ScalingReplicaSet",
            "Scaled up replica set web-abc to 3".into(),
        );
        let t0 = SystemTime::UNIX_EPOCH;
        let Op::Put {
            key: k1, value: v1, ..
        } = rec.op(&r, t0, &mut rng)
        else {
            panic!()
        };
        let Op::Put {
            key: k2, value: v2, ..
        } = rec.op(&r, t0 + std::time::Duration::from_secs(5), &mut rng)
        else {
            panic!()
        };
        assert_eq!(k1, k2);
        assert!(k1.starts_with("/core/events/default/web."));
        assert_eq!(v1["count"], 1);
        assert_eq!(v2["count"], 2);
        assert_eq!(v2["firstTimestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v2["lastTimestamp"], "1970-01-01T00:00:05Z");
        assert_eq!(v2["involvedObject"]["kind"], "Deployment");
        assert_eq!(v2["source"]["component"], "deployment-controller");
        assert_eq!(v2["type"], "Normal");
        let node = json!({"kind": "Node", "metadata": {"name": "n1", "uid": "u2"}});
        let Op::Put { key, .. } = rec.op(
            &EventRecord::about(&node, EventType::Warning, "NodeNotReady", "x".into()),
            t0,
            &mut rng,
        ) else {
            panic!()
        };
        assert!(key.starts_with("/core/events/default/n1."));
    }
}
