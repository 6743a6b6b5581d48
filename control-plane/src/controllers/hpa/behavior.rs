//! `behavior`, as kube's `normalizeDesiredReplicasWithBehaviors`: the stabilization window over past
//! recommendations, then the scaling policies over past scale events, then min/max. Each step names the
//! `AbleToScale` / `ScalingLimited` reason kube reports for it.

use std::time::{Duration, SystemTime};

use super::spec::{Behavior, PolicyKind, Rules, Select};

/// A recommendation (the unstabilized proposal of one sync) and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// Replicas proposed.
    pub replicas: i32,
    /// When.
    pub at: SystemTime,
}

/// A rescale and when it happened (`replicaChange` is always positive, per direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// How many replicas it added or removed.
    pub change: i32,
    /// When.
    pub at: SystemTime,
}

/// What kube keeps in memory per HPA: recommendations and scale events. It starts empty on a new leader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Recommendations still inside a stabilization window.
    pub recommendations: Vec<Recommendation>,
    /// Scale-ups still inside a scale-up policy period.
    pub scale_up: Vec<ScaleEvent>,
    /// Scale-downs still inside a scale-down policy period.
    pub scale_down: Vec<ScaleEvent>,
}

/// A condition kube sets: (reason, message).
pub type Reason = (&'static str, &'static str);

/// `now - d`, or the epoch when that is before it (a huge window then covers all history).
fn cutoff(now: SystemTime, d: Duration) -> SystemTime {
    now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH)
}

impl History {
    /// kube's `recordInitialRecommendation`: the first sync of an HPA remembers the current size, so a
    /// freshly started leader does not scale down at once.
    pub fn record_initial(&mut self, current: i32, now: SystemTime) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                replicas: current,
                at: now,
            });
        }
    }

    /// kube's `stabilizeRecommendationWithBehaviors`: the current size moved towards `desired` no further
    /// than the lowest recommendation of the scale-up window and the highest of the scale-down window.
    /// Records `desired`. Returns the stabilized count and the reason kube names when it differs.
    pub fn stabilize(
        &mut self,
        behavior: &Behavior,
        current: i32,
        desired: i32,
        now: SystemTime,
    ) -> (i32, Reason) {
        let up_cut = cutoff(now, behavior.up.window);
        let down_cut = cutoff(now, behavior.down.window);
        let (mut up, mut down) = (desired, desired);
        for r in &self.recommendations {
            if r.at > up_cut {
                up = up.min(r.replicas);
            }
            if r.at > down_cut {
                down = down.max(r.replicas);
            }
        }
        let recommendation = current.max(up).min(down);
        // Samples outside both windows can never matter again.
        self.recommendations
            .retain(|r| r.at > up_cut || r.at > down_cut);
        self.recommendations.push(Recommendation {
            replicas: desired,
            at: now,
        });
        let reason = if desired >= current {
            (
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            )
        } else {
            (
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        };
        (recommendation, reason)
    }

    /// kube's `convertDesiredReplicasWithBehaviorRate`: `desired` within what the policies allow over their
    /// periods and within [min, max].
    pub fn limit(
        &self,
        behavior: &Behavior,
        min: i32,
        max: i32,
        current: i32,
        desired: i32,
        now: SystemTime,
    ) -> (i32, Reason) {
        if desired > current {
            let limit = self
                .scale_limit(&behavior.up, current, true, now)
                .max(current);
            let (allowed, reason) = if max > limit {
                (
                    limit,
                    (
                        "ScaleUpLimit",
                        "the desired replica count is increasing faster than the maximum scale rate",
                    ),
                )
            } else {
                (
                    max,
                    (
                        "TooManyReplicas",
                        "the desired replica count is more than the maximum replica count",
                    ),
                )
            };
            if desired > allowed {
                return (allowed, reason);
            }
        } else if desired < current {
            let limit = self
                .scale_limit(&behavior.down, current, false, now)
                .min(current);
            let (allowed, reason) = if min < limit {
                (
                    limit,
                    (
                        "ScaleDownLimit",
                        "the desired replica count is decreasing faster than the maximum scale rate",
                    ),
                )
            } else {
                (
                    min,
                    (
                        "TooFewReplicas",
                        "the desired replica count is less than the minimum replica count",
                    ),
                )
            };
            if desired < allowed {
                return (allowed, reason);
            }
        }
        (
            desired,
            (
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            ),
        )
    }

    fn changed_within(events: &[ScaleEvent], period_seconds: i64, now: SystemTime) -> i64 {
        let cut = cutoff(
            now,
            Duration::from_secs(period_seconds.max(0).unsigned_abs()),
        );
        events
            .iter()
            .filter(|e| e.at > cut)
            .map(|e| i64::from(e.change))
            .sum()
    }

    /// kube's `calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`.
    fn scale_limit(&self, rules: &Rules, current: i32, up: bool, now: SystemTime) -> i32 {
        // Min for scale up picks the smallest result; for scale down the largest (the smallest change).
        let pick_min = match rules.select {
            Select::Disabled => return current,
            Select::Min => up,
            Select::Max => !up,
        };
        let mut result: Option<i64> = None;
        for p in &rules.policies {
            let added = Self::changed_within(&self.scale_up, p.period_seconds, now);
            let deleted = Self::changed_within(&self.scale_down, p.period_seconds, now);
            let start = i64::from(current) - added + deleted;
            let value = i64::from(p.value);
            let proposed = match (p.kind, up) {
                (PolicyKind::Pods, true) => start + value,
                (PolicyKind::Pods, false) => start - value,
                // Rounded up: a small percentage of a few pods must still allow one more.
                (PolicyKind::Percent, true) => {
                    (start as f64 * (1.0 + value as f64 / 100.0)).ceil() as i64
                }
                (PolicyKind::Percent, false) => {
                    (start as f64 * (1.0 - value as f64 / 100.0)) as i64
                }
            };
            result = Some(match result {
                None => proposed,
                Some(r) if pick_min => r.min(proposed),
                Some(r) => r.max(proposed),
            });
        }
        // No policy at all allows nothing (kube would start from MinInt32/MaxInt32 and clamp to current).
        result
            .unwrap_or(i64::from(current))
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    /// kube's `storeScaleEvent`: remembers a rescale for the policies, forgetting events older than the
    /// longest period of their direction.
    pub fn record_scale(&mut self, behavior: &Behavior, prev: i32, new: i32, now: SystemTime) {
        let (events, rules, change) = if new > prev {
            (&mut self.scale_up, &behavior.up, new - prev)
        } else if new < prev {
            (&mut self.scale_down, &behavior.down, prev - new)
        } else {
            return;
        };
        let cut = cutoff(now, rules.longest_period());
        events.retain(|e| e.at > cut);
        events.push(ScaleEvent { change, at: now });
    }
}

/// kube's normalization with behaviors: (desired, AbleToScale reason, ScalingLimited (limited?, reason)).
pub fn normalize(
    history: &mut History,
    behavior: &Behavior,
    min: i32,
    max: i32,
    current: i32,
    desired: i32,
    now: SystemTime,
) -> (i32, Reason, (bool, Reason)) {
    let (stabilized, reason) = history.stabilize(behavior, current, desired, now);
    let able = if stabilized != desired {
        reason
    } else {
        ("ReadyForNewScale", "recommended size matches current size")
    };
    let (limited, why) = history.limit(behavior, min, max, current, stabilized, now);
    (limited, able, (limited != stabilized, why))
}
