//! `POST pods/{name}/binding`: assigns an unbound pod to a node, as a scheduler does.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::rmw::{self, Commit, Decision, Read};
use super::{is_terminating, without_version, Ctx};
use crate::api::body::decode_object;
use crate::api::resources::ResourceInfo;
use crate::api::status::{json_response, ApiError, Result};

/// The `201 Status Success` answer of bindings and evictions.
pub(super) fn created_status() -> Response {
    json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// The pod bound to `node`, unless it is being deleted or already bound. Pure.
///
/// # Errors
/// 409 (as `pods/binding`) when the pod is being deleted or already assigned.
pub fn plan_bind(info: &ResourceInfo, pod: &Value, name: &str, node: &str) -> Result<Value> {
    let binding_info = ResourceInfo {
        resource: "pods/binding",
        ..*info
    };
    if is_terminating(pod) {
        return Err(ApiError::conflict_because(
            &binding_info,
            name,
            &format!("pod {name} is being deleted, cannot be assigned to a host"),
        ));
    }
    if let Some(assigned) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError::conflict_because(
            &binding_info,
            name,
            &format!("pod {name} is already assigned to node \"{assigned}\""),
        ));
    }
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!(node);
    Ok(without_version(bound))
}

/// Binds the pod to the Binding's `target.name`.
///
/// # Errors
/// 400 for a bad body, 422 without a target, 404 when absent, 409 when already bound or deleting.
pub async fn bind(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let binding = decode_object(&ctx.content_type, body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                ctx.info,
                &ctx.name,
                &[(
                    "FieldValueRequired".into(),
                    "target.name".into(),
                    "Required value".into(),
                )],
            )
        })?
        .to_string();
    let read = Read::Key {
        key: ctx.key(),
        consistency: ctx.consistency(),
    };
    let exhausted = || {
        let binding_info = ResourceInfo {
            resource: "pods/binding",
            ..*ctx.info
        };
        ApiError::conflict(&binding_info, &ctx.name)
    };
    let node = &node;
    rmw::run(ctx.store(), read, exhausted, move |cur| {
        Box::pin(async move {
            let cur = cur.ok_or_else(|| ApiError::not_found(ctx.info, &ctx.name))?;
            let pod = plan_bind(ctx.info, &cur.value, &ctx.name, node)?;
            if ctx.dry_run {
                return Ok(Decision::Answer(()));
            }
            let put = crate::store::Op::Put {
                key: cur.key.clone(),
                value: pod,
                precondition: crate::store::Precondition::Revision(cur.revision),
            };
            Ok(Decision::Commit(Commit::retrying(vec![put], |_| ())))
        })
    })
    .await?;
    Ok(created_status())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::lookup;

    #[test]
    fn binding_refuses_bound_and_deleting_pods() {
        let pods = lookup("", "v1", "pods").unwrap();
        let pod = json!({"metadata": {"name": "p", "resourceVersion": "3"}, "spec": {}});
        let bound = plan_bind(pods, &pod, "p", "n1").unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n1");
        assert!(bound["metadata"].get("resourceVersion").is_none());
        let err = plan_bind(pods, &bound, "p", "n2").unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message.contains("already assigned to node \"n1\""),
            "{}",
            err.message
        );
        let deleting = json!({"metadata": {"name": "p", "deletionTimestamp": "t"}, "spec": {}});
        assert_eq!(plan_bind(pods, &deleting, "p", "n1").unwrap_err().code, 409);
    }
}
