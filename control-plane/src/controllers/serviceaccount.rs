//! ServiceAccount controller: every namespace that is not being deleted has a `default`
//! ServiceAccount (kube-controller-manager's `serviceaccount-controller`). A deleted one comes back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::action::Action;
use super::context::Ctx;
use super::events::Recorder;
use super::object::*;
use crate::informer::{Cached, Informer};
use crate::store;

/// The ServiceAccount every namespace gets.
pub const DEFAULT_NAME: &str = "default";

/// A new ServiceAccount object as the API server would store it.
pub fn service_account_object(
    namespace: &str,
    name: &str,
    now: SystemTime,
    rng: &mut dyn rand::RngCore,
) -> Value {
    let mut v = json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    });
    stamp_new(&mut v, now, rng);
    v
}

/// The `default` ServiceAccounts to create: one per live namespace that has none in `accounts`.
pub fn reconcile(
    namespaces: &[Cached],
    accounts: &[Cached],
    now: SystemTime,
    rng: &mut dyn rand::RngCore,
) -> Vec<Action> {
    namespaces
        .iter()
        .filter(|ns| !deleting(&ns.value))
        .filter_map(|ns| {
            let namespace = name(&ns.value);
            let key = store::key("", "serviceaccounts", namespace, DEFAULT_NAME);
            if namespace.is_empty() || accounts.iter().any(|a| a.key == key) {
                return None;
            }
            Some(Action::Create {
                key,
                object: service_account_object(namespace, DEFAULT_NAME, now, rng),
            })
        })
        .collect()
}

/// The runner: watches namespaces (the shared informer) and ServiceAccounts (its own informer),
/// and creates what [`reconcile`] asks for. A create that lost a race is simply seen on the next pass.
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let recorder = Recorder::new("serviceaccount-controller");
    let accounts = Informer::new(store::prefix("", "serviceaccounts", None));
    let task = tokio::spawn(accounts.clone().run(ctx.store.clone(), shutdown.clone()));
    let mut ns_rx = ctx.caches.namespaces.subscribe();
    let mut sa_rx = accounts.subscribe();
    while !(ctx.caches.namespaces.is_ready() && accounts.is_ready()) {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = task.await;
                return;
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    loop {
        ns_rx.mark_unchanged();
        sa_rx.mark_unchanged();
        let actions = ctx.with_rng(|rng| {
            reconcile(
                &ctx.caches.namespaces.list(),
                &accounts.list(),
                ctx.now(),
                rng,
            )
        });
        let mut wait = ctx.config.resync_interval;
        if !actions.is_empty() {
            if let Err(e) = ctx.apply(&recorder, actions).await {
                tracing::debug!(error = %e, "serviceaccount apply failed; will retry");
                wait = Duration::from_millis(200);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            _ = ns_rx.changed() => {}
            _ = sa_rx.changed() => {}
        }
    }
    let _ = task.await;
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn cached(key: String, value: Value) -> Cached {
        Cached {
            key,
            value: Arc::new(value),
            revision: 1,
        }
    }

    fn ns(name: &str, deleting: bool) -> Cached {
        let mut v = json!({"metadata": {"name": name}});
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        cached(store::key("", "namespaces", "", name), v)
    }

    fn sa(namespace: &str, name: &str) -> Cached {
        cached(
            store::key("", "serviceaccounts", namespace, name),
            json!({"metadata": {"name": name, "namespace": namespace}}),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn runner_keeps_the_default_account() {
        use crate::store::{Batch, Consistency, MemStore, ObjectStore, Op, Precondition};
        let store = Arc::new(MemStore::new());
        let ctx = Ctx::new(
            store.clone(),
            super::super::ControllerConfig {
                seed: Some(1),
                ..Default::default()
            },
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(
            ctx.caches
                .namespaces
                .clone()
                .run(store.clone(), shutdown.clone()),
        );
        let runner = tokio::spawn(run(ctx.clone(), shutdown.clone()));
        let put = |key: String, value: Value| Op::Put {
            key,
            value,
            precondition: Precondition::None,
        };
        store
            .commit(Batch::one(put(
                store::key("", "namespaces", "", "team"),
                json!({"metadata": {"name": "team"}}),
            )))
            .await
            .unwrap();
        let key = store::key("", "serviceaccounts", "team", "default");
        let exists = || async {
            for _ in 0..100 {
                if store.get(&key, Consistency::Local).await.unwrap().is_some() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        };
        assert!(exists().await, "created");
        store
            .commit(Batch::one(Op::Delete {
                key: key.clone(),
                precondition: Precondition::None,
            }))
            .await
            .unwrap();
        assert!(exists().await, "re-created");
        shutdown.cancel();
        runner.await.unwrap();
    }

    #[test]
    fn creates_the_missing_default_accounts() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut rng = StdRng::seed_from_u64(1);
        let cases: Vec<(Vec<Cached>, Vec<Cached>, Vec<&str>)> = vec![
            (vec![], vec![], vec![]),
            (vec![ns("default", false)], vec![], vec!["default"]),
            (
                vec![ns("default", false)],
                vec![sa("default", "default")],
                vec![],
            ),
            // Another account does not count; a terminating namespace gets none.
            (
                vec![ns("a", false), ns("b", true), ns("c", false)],
                vec![sa("a", "builder"), sa("c", "default")],
                vec!["a"],
            ),
        ];
        for (namespaces, accounts, want) in cases {
            let got: Vec<String> = reconcile(&namespaces, &accounts, now, &mut rng)
                .into_iter()
                .map(|a| match a {
                    Action::Create { key, object } => {
                        assert_eq!(object["kind"], "ServiceAccount");
                        assert_eq!(object["metadata"]["name"], "default");
                        assert!(object["metadata"]["uid"]
                            .as_str()
                            .is_some_and(|u| !u.is_empty()));
                        assert_eq!(
                            key,
                            store::key("", "serviceaccounts", namespace(&object), "default")
                        );
                        namespace(&object).to_string()
                    }
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(got, want);
        }
    }
}
