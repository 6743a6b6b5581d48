//! Failure isolation: a reconcile that panics or whose writes fail is caught, logged with its
//! object's key and retried with per-key exponential back-off, so one bad object never stops the
//! others; a controller task that dies anyway is reported to its supervisor.

use std::any::Any;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

// Isolation catches panics by unwinding; with `panic = "abort"` one bad object would stop every
// controller again, silently. Refuse to build that way.
#[cfg(panic = "abort")]
compile_error!("controllers::isolation needs panic = \"unwind\" (see the workspace profiles)");

/// Per-key exponential back-off, as client-go's default item rate limiter: `base * 2^(failures-1)`,
/// never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 5 ms .. 1000 s, client-go's `DefaultItemBasedRateLimiter`.
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }
    }
}

impl Backoff {
    /// The delay before retrying a key that failed `failures` times in a row (at least once).
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(63);
        // Saturates instead of overflowing: a key may fail forever.
        let factor = 1u32.checked_shl(exp).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Keys whose last reconcile failed: how often in a row, and when they may run again.
#[derive(Debug, Default)]
pub struct Failures {
    backoff: Backoff,
    by_key: HashMap<String, (u32, SystemTime)>,
}

impl Failures {
    /// An empty record with `backoff`.
    pub fn new(backoff: Backoff) -> Failures {
        Failures {
            backoff,
            by_key: HashMap::new(),
        }
    }

    /// How long `key` must still wait at `now`; `None` when it may run.
    pub fn waiting(&self, key: &str, now: SystemTime) -> Option<Duration> {
        let (_, at) = self.by_key.get(key)?;
        at.duration_since(now).ok().filter(|d| !d.is_zero())
    }

    /// Records a failure of `key` at `now`; returns the delay before its retry.
    pub fn failed(&mut self, key: &str, now: SystemTime) -> Duration {
        let entry = self.by_key.entry(key.to_string()).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        let delay = self.backoff.delay(entry.0);
        entry.1 = now.checked_add(delay).unwrap_or(now);
        delay
    }

    /// Forgets `key`'s failures: its next failure starts from the base delay again.
    pub fn succeeded(&mut self, key: &str) {
        self.by_key.remove(key);
    }

    /// How many times in a row `key` failed.
    pub fn count(&self, key: &str) -> u32 {
        self.by_key.get(key).map_or(0, |(n, _)| *n)
    }
}

/// Locks `m` even if a panicking holder poisoned it: every state behind these locks is valid between
/// statements, so a poisoned lock only means a reconcile panicked elsewhere, never a torn write.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f`, turning a panic into `Err` with the panic's message.
///
/// # Errors
/// The panic's message when `f` panicked.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    // The closures run pure reconciles over shared, immutable snapshots; a panic leaves nothing
    // half-updated that the caller goes on to use.
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(p.as_ref()))
}

/// The text of a panic payload (`panic!` with a literal or with a format string).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".into()
    }
}

/// `<ns>/<name>` of a store key `/<group>/<resource>/<ns>/<name>`, or `<name>` when cluster-scoped.
pub fn object_ref(key: &str) -> String {
    let mut parts = key.rsplitn(3, '/');
    let name = parts.next().unwrap_or_default();
    match parts.next() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// How a supervised task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEnd {
    /// It returned after its shutdown token was cancelled: a normal stop.
    Stopped,
    /// It returned while it should still run.
    Returned,
    /// It panicked, with this message.
    Panicked(String),
    /// It was cancelled by the runtime (the runtime is shutting down).
    Cancelled,
}

impl TaskEnd {
    /// Whether the process must not go on without the task.
    pub fn is_death(&self) -> bool {
        matches!(self, TaskEnd::Returned | TaskEnd::Panicked(_))
    }
}

/// Awaits a spawned task and says how it ended; `stopping` tells whether it was asked to stop.
pub async fn watch_task(task: tokio::task::JoinHandle<()>, stopping: impl Fn() -> bool) -> TaskEnd {
    match task.await {
        Ok(()) if stopping() => TaskEnd::Stopped,
        Ok(()) => TaskEnd::Returned,
        Err(e) if e.is_panic() => TaskEnd::Panicked(panic_message(e.into_panic().as_ref())),
        Err(_) => TaskEnd::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_base_and_caps() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(5));
        assert_eq!(b.delay(2), Duration::from_millis(10));
        assert_eq!(b.delay(11), Duration::from_millis(5 * 1024));
        assert_eq!(b.delay(40), Duration::from_secs(1000));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1000));
    }

    #[test]
    fn failures_wait_then_reset_on_success() {
        let mut f = Failures::new(Backoff::default());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(f.waiting("k", t0), None);
        assert_eq!(f.failed("k", t0), Duration::from_millis(5));
        assert_eq!(f.failed("k", t0), Duration::from_millis(10));
        assert_eq!(f.waiting("k", t0), Some(Duration::from_millis(10)));
        assert_eq!(f.waiting("other", t0), None);
        assert_eq!(f.waiting("k", t0 + Duration::from_millis(10)), None);
        f.succeeded("k");
        assert_eq!(f.count("k"), 0);
        assert_eq!(f.failed("k", t0), Duration::from_millis(5));
    }

    #[test]
    fn failures_near_the_end_of_time_do_not_overflow() {
        let mut f = Failures::new(Backoff {
            base: Duration::MAX,
            max: Duration::MAX,
        });
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
        for _ in 0..3 {
            f.failed("k", now);
        }
        assert_eq!(f.count("k"), 3);
    }

    #[test]
    fn catch_reports_the_panic_message() {
        assert_eq!(catch(|| 7), Ok(7));
        assert_eq!(
            catch(|| -> u8 { panic!("bad {}", "object") }),
            Err("bad object".to_string())
        );
        assert_eq!(
            catch(|| -> u8 { panic!("literal") }),
            Err("literal".to_string())
        );
    }

    #[test]
    fn lock_recovers_a_poisoned_mutex() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }

    #[test]
    fn object_refs() {
        assert_eq!(object_ref("/apps/deployments/default/web"), "default/web");
        assert_eq!(object_ref("/core/nodes//n1"), "n1");
    }

    #[tokio::test]
    async fn a_supervised_task_panic_is_reported() {
        let t = tokio::spawn(async { panic!("controller bug") });
        assert_eq!(
            watch_task(t, || false).await,
            TaskEnd::Panicked("controller bug".into())
        );
        let t = tokio::spawn(async {});
        assert_eq!(watch_task(t, || false).await, TaskEnd::Returned);
        let t = tokio::spawn(async {});
        assert_eq!(watch_task(t, || true).await, TaskEnd::Stopped);
        assert!(TaskEnd::Panicked(String::new()).is_death());
        assert!(!TaskEnd::Stopped.is_death());
    }
}
