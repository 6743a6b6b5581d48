//! Stopping a pod gracefully: SIGTERM to every running container (reverse spec order), SIGKILL once the
//! grace period is over, then containers, network and sandbox are removed.

use super::{PodManager, DEFAULT_GRACE};
use std::time::{Duration, SystemTime};

const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// A grace period in seconds, at most int32 seconds (68 years): `terminationGracePeriodSeconds`
/// is an int64 a client may set to i64::MAX, which would overflow the clock it is added to and kill
/// the pod manager.
pub(super) fn grace_secs(n: u64) -> Duration {
    Duration::from_secs(n.min(i32::MAX.unsigned_abs().into()))
}

impl PodManager {
    /// Grace period of a stopping pod: the deletion's, else the spec's, else 30 s.
    fn grace(&self, uid: &str) -> Duration {
        let pod = &self.pods[uid].pod;
        pod["metadata"]["deletionGracePeriodSeconds"]
            .as_u64()
            .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_u64())
            .map(grace_secs)
            .unwrap_or(DEFAULT_GRACE)
    }

    pub(super) fn stop_pod(&mut self, uid: &str, now: SystemTime) {
        if self.pods[uid].stopped {
            return;
        }
        let grace = self.grace(uid);
        let rt = self.rt.clone();
        let p = self.pods.get_mut(uid).expect("pod");
        if p.stopping_since.is_none() {
            p.stopping_since = Some(now);
            for (name, c) in p.containers.iter_mut().rev() {
                c.not_before = None;
                c.waiting = None;
                if let Some(id) = &c.current {
                    let sig = if grace.is_zero() { SIGKILL } else { SIGTERM };
                    if let Err(e) = rt.signal(id, sig) {
                        tracing::warn!(container = %name, error = %e, "stop signal failed");
                    }
                    c.kill_at = Some(now + grace);
                }
            }
        }
        let mut running = false;
        for c in p.containers.values_mut().rev() {
            if let Some(id) = &c.current {
                running = true;
                if c.kill_at.is_some_and(|t| now >= t) {
                    let _ = rt.signal(id, SIGKILL);
                    c.kill_at = None;
                }
            }
        }
        if running {
            return;
        }
        for c in p.containers.values_mut() {
            c.done = true;
        }
        if let Some(netns) = p.netns.clone() {
            if let Err(e) = self.net.teardown(uid, &netns) {
                tracing::warn!(pod = uid, error = %e, "network teardown failed");
            }
            if let Err(e) = rt.remove_sandbox(uid) {
                tracing::warn!(pod = uid, error = %e, "sandbox removal failed");
            }
        }
        let p = self.pods.get_mut(uid).expect("pod");
        p.netns = None;
        p.stopped = true;
        if p.forget {
            let dir = self.pod_dir(&self.pods[uid].pod);
            if self.release_secrets(&self.pods[uid].pod) {
                let _ = std::fs::remove_dir_all(dir);
            } else {
                tracing::error!(pod = uid, dir = %dir.display(), "a subPath stays mounted: the pod directory is kept");
            }
        }
    }
}
