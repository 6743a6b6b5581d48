//! Admission on writes that needs the store: RBAC escalation, Pod Security, the namespace's
//! existence, and the ClusterIPs and NodePorts already taken.

use serde_json::{json, Value};

use super::{namespace_info, Ctx};
use crate::api::status::{ApiError, Result};
use crate::api::{alloc, authz, meta, pod_security, validation};
use crate::store::{self, Consistency, ObjectStore};

/// A Role or ClusterRole may only grant what its author holds, and a binding only bind a role whose
/// rules its author holds (unless they may `escalate` or `bind`), when the server authenticates.
pub(super) async fn check_escalation(ctx: &Ctx<'_>, obj: &Value) -> Result<()> {
    if ctx.info.group != authz::rbac::GROUP {
        return Ok(());
    }
    let Some(user) = &ctx.user else {
        return Ok(());
    };
    let authorizer = ctx
        .authorizer
        .clone()
        .unwrap_or_else(|| authz::Authorizer::new(ctx.state.store.clone()));
    let mut role_rules = None;
    if matches!(ctx.info.resource, "rolebindings" | "clusterrolebindings") {
        let name = obj
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let key = match obj.pointer("/roleRef/kind").and_then(Value::as_str) {
            Some("Role") => store::key(authz::rbac::GROUP, "roles", meta::namespace_of(obj), name),
            _ => store::key(authz::rbac::GROUP, "clusterroles", "", name),
        };
        role_rules = ctx
            .store()
            .get(&key, Consistency::Linearizable)
            .await
            .map_err(ApiError::from_store)?
            .map(|o| authz::rbac::PolicyRule::list_from(&o.value));
    }
    authz::escalation::check(&authorizer, user, ctx.info.resource, obj, role_rules)
        .await
        .map_err(|why| {
            let name = meta::name_of(obj);
            ApiError {
                details: Some(
                    json!({"name": name, "group": ctx.info.group, "kind": ctx.info.resource}),
                ),
                ..ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: {why}",
                    ctx.info.qualified()
                ))
            }
        })
}

/// Pod Security admission: a pod, or a workload's pod template, that violates the level its namespace
/// enforces is refused (Kubernetes only warns for workloads; refusing the template spares a controller from
/// creating pods that would all be refused). An update is checked only when it changes the pod spec, so a
/// namespace made stricter does not block scaling or deleting what already runs there.
pub(super) async fn check_pod_security(
    ctx: &Ctx<'_>,
    old: Option<&Value>,
    obj: &Value,
) -> Result<()> {
    let Some((spec, _)) = validation::pod_spec_of(ctx.info.resource, obj) else {
        return Ok(());
    };
    if old
        .and_then(|o| validation::pod_spec_of(ctx.info.resource, o))
        .map(|(s, _)| s)
        == Some(spec)
    {
        return Ok(());
    }
    let ns_name = meta::namespace_of(obj);
    let ns_name = if ns_name.is_empty() {
        ctx.ns()
    } else {
        ns_name
    };
    let ns = ctx
        .store()
        .get(
            &namespace_info().key("", ns_name),
            Consistency::Linearizable,
        )
        .await
        .map_err(ApiError::from_store)?;
    let level = pod_security::enforced_level(ns_name, ns.as_ref().map(|o| &o.value));
    let violations = pod_security::violations(level, spec);
    if violations.is_empty() {
        return Ok(());
    }
    let name = meta::name_of(obj);
    Err(ApiError {
        details: Some(json!({"name": name, "group": ctx.info.group, "kind": ctx.info.resource})),
        ..ApiError::forbidden(pod_security::forbidden_message(
            &ctx.info.qualified(),
            name,
            level,
            &violations,
        ))
    })
}

/// A namespaced create needs its namespace to exist and not be terminating, as in Kubernetes.
pub(super) async fn check_namespace(ctx: &Ctx<'_>, name: &str) -> Result<()> {
    if !ctx.info.namespaced {
        return Ok(());
    }
    let ns_info = namespace_info();
    let ns = ctx
        .store()
        .get(&ns_info.key("", ctx.ns()), Consistency::Linearizable)
        .await
        .map_err(ApiError::from_store)?;
    match ns {
        None => Err(ApiError::not_found(ns_info, ctx.ns())),
        Some(o) if super::is_terminating(&o.value) => Err(ApiError {
            details: Some(json!({"name": name, "group": ctx.info.group, "kind": ctx.info.resource})),
            ..ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                ctx.info.qualified(),
                ctx.ns()
            ))
        }),
        Some(_) => Ok(()),
    }
}

/// The ClusterIPs and NodePorts already allocated.
pub(super) async fn used_allocations(store: &dyn ObjectStore) -> Result<alloc::Used> {
    let (ips, _) = store
        .list(&alloc::ip_prefix(), Consistency::Linearizable)
        .await
        .map_err(ApiError::from_store)?;
    let (ports, _) = store
        .list(&alloc::port_prefix(), Consistency::Linearizable)
        .await
        .map_err(ApiError::from_store)?;
    Ok(alloc::Used::from_keys(
        ips.iter().chain(ports.iter()).map(|o| o.key.as_str()),
    ))
}

/// The Service allocations of a create or update: the reservation ops, and the errors to answer
/// when an explicitly asked IP or port turns out taken (by key).
pub(super) async fn allocate(
    ctx: &Ctx<'_>,
    old: Option<&Value>,
    new: &mut Value,
    name: &str,
) -> Result<(Vec<store::Op>, Vec<(String, ApiError)>)> {
    let used = used_allocations(ctx.store()).await?;
    let plan =
        alloc::plan(old, new, &used, &mut rand::thread_rng()).map_err(|(field, message)| {
            ApiError::invalid(
                ctx.info,
                name,
                &[("FieldValueInvalid".into(), field, message)],
            )
        })?;
    let refuse = plan
        .explicit
        .iter()
        .map(|(key, text)| (key.clone(), explicit_alloc_error(ctx, name, text)))
        .collect();
    Ok((plan.ops, refuse))
}

fn explicit_alloc_error(ctx: &Ctx<'_>, name: &str, text: &str) -> ApiError {
    let (field, message) = text.split_once(": ").unwrap_or(("", text));
    ApiError::invalid(
        ctx.info,
        name,
        &[("FieldValueInvalid".into(), field.into(), message.into())],
    )
}
