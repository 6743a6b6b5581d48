//! The API verbs on stored objects, one file each, over one read-modify-write executor ([`rmw`]).
//! Each verb splits into a pure decider (what to write, given what was read, the options and the
//! time) and a thin edge that reads, runs admission and hands the decision to the executor.

mod admission;
mod binding;
mod create;
mod delete;
mod deletecollection;
mod eviction;
mod get;
mod list;
mod patch;
mod review;
mod rmw;
mod scale;
mod update;
mod watch;

use std::sync::Arc;
use std::time::SystemTime;

use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::meta::{self, CreateContext};
use super::resources::{self, lookup, ResourceInfo};
use super::route::Query;
use super::state::ApiState;
use super::status::{json_response, ApiError, Result};
use super::watch::Render;
use super::{authz, validation};
use crate::store::{Consistency, Object, ObjectStore};

pub use binding::{bind, plan_bind};
pub use create::create;
pub use delete::{delete, plan_delete, DeleteOptions, DeletePlan};
pub use deletecollection::delete_collection;
pub use eviction::evict;
pub use get::{get, get_scale};
pub use list::{list, paginate, Page};
pub use patch::patch;
pub use review::{is_review, review, token_request};
pub use scale::{scale_of, selector_string, with_replicas};
pub use update::{plan_update, plan_write, update, WritePlan};
pub use watch::watch;

/// One resource request, parsed.
pub struct Ctx<'a> {
    /// Shared state: the store and the settings.
    pub state: &'a Arc<ApiState>,
    /// The kind the URL names, at its stored version: what keys, validation and storage use.
    pub info: &'static ResourceInfo,
    /// The kind at the version the URL names (`info` itself unless the kind is served at several
    /// versions): bodies are converted from it and answers to it, only through
    /// [`Ctx::to_stored`] and [`Ctx::respond`] / [`Render`].
    pub served: &'static ResourceInfo,
    /// The namespace on the URL, if any.
    pub namespace: Option<String>,
    /// The name on the URL ("" for collections).
    pub name: String,
    /// The query string.
    pub query: Query,
    /// How answers are rendered (object or Table).
    pub render: Render,
    /// The request's `Content-Type`.
    pub content_type: String,
    /// `dryRun=All`: decide and answer, but write nothing.
    pub dry_run: bool,
    /// The authenticated caller, when the server authenticates (RBAC writes check escalation).
    pub user: Option<authz::UserInfo>,
    /// The server's shared authorizer, when it put one in the request's extensions.
    pub authorizer: Option<Arc<authz::Authorizer>>,
}

impl Ctx<'_> {
    fn store(&self) -> &dyn ObjectStore {
        &*self.state.store
    }

    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }

    fn key(&self) -> String {
        self.info.key(self.ns(), &self.name)
    }

    /// `resourceVersion=0` may be served from this member's copy; anything else reads the latest.
    fn consistency(&self) -> Consistency {
        match self.query.get("resourceVersion") {
            Some("0") => Consistency::Local,
            _ => Consistency::Linearizable,
        }
    }

    /// The wall clock, read here only: deciders take `now` as an argument.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// A fresh uid and generated-name suffix at [`Ctx::now`]; the RNG is the thread's.
    fn create_context(&self) -> CreateContext {
        CreateContext::new(self.now(), &mut rand::thread_rng())
    }

    async fn load(&self) -> Result<Option<Object>> {
        self.store()
            .get(&self.key(), self.consistency())
            .await
            .map_err(ApiError::from_store)
    }

    /// The object the URL names.
    ///
    /// # Errors
    /// 404 when absent; the store's errors.
    pub async fn load_existing(&self) -> Result<Object> {
        self.load()
            .await?
            .ok_or_else(|| ApiError::not_found(self.info, &self.name))
    }

    /// The object answer, or a one-row Table, at the requested version.
    fn respond(&self, code: StatusCode, obj: &Value) -> Response {
        let rv = meta::resource_version_str(obj).unwrap_or("").to_string();
        match self.render.table(self.served, &[obj], &rv) {
            Some(t) => json_response(code, &t),
            None => json_response(code, &Render::object(self.served, obj)),
        }
    }

    /// A request body at the requested version as the stored version.
    ///
    /// # Errors
    /// 400 when it does not convert.
    fn to_stored(&self, obj: Value) -> Result<Value> {
        resources::to_stored(self.served, obj).map_err(ApiError::bad_request)
    }
}

/// Which part of an object a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The object (not its status).
    Main,
    /// Only `status`.
    Status,
    /// Only `spec.replicas`, through an `autoscaling/v1 Scale`.
    Scale,
    /// Only a Namespace's `spec.finalizers`.
    Finalize,
}

fn check_kind(info: &ResourceInfo, obj: &Value, expected_kind: &str) -> Result<()> {
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != expected_kind => Err(ApiError::bad_request(format!(
            "the kind in the body ({k}) does not match the kind of the resource {} ({expected_kind})",
            info.qualified()
        ))),
        _ => Ok(()),
    }
}

/// Refuses an object whose `metadata`, `spec` or `status` is not an object (`status: "x"`,
/// `spec: []`), as kube-apiserver's decoder does: every reader of these fields expects a map, and a
/// stored scalar would reach every controller and agent. `spec`/`status` are checked on kinds that
/// have a status subresource (those whose Go types declare both).
fn check_shape(info: &ResourceInfo, obj: &Value) -> Result<()> {
    let typed = info.subresource("status").is_some();
    for (field, go_type) in [
        ("metadata", "v1.ObjectMeta"),
        ("spec", "Spec"),
        ("status", "Status"),
    ] {
        if field != "metadata" && !typed {
            continue;
        }
        let json_type = match obj.get(field) {
            None | Some(Value::Null | Value::Object(_)) => continue,
            Some(Value::String(_)) => "string",
            Some(Value::Array(_)) => "array",
            Some(Value::Number(_)) => "number",
            Some(Value::Bool(_)) => "bool",
        };
        let go_type = if field == "metadata" {
            go_type.to_string()
        } else {
            format!("{}.{}{go_type}", info.version, info.kind)
        };
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: json: cannot unmarshal {json_type} into Go struct field {kind}.{field} of type {go_type}",
            kind = info.kind,
            version = info.version,
        )));
    }
    Ok(())
}

fn validate(info: &ResourceInfo, obj: &Value) -> Result<()> {
    invalid_if(info, obj, validation::validate(info.resource, obj))
}

/// The update's own rules (immutable fields) on top of [`validate`].
fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Result<()> {
    validate(info, new)?;
    invalid_if(
        info,
        new,
        validation::validate_update(info.resource, old, new),
    )
}

fn invalid_if(info: &ResourceInfo, obj: &Value, causes: Vec<validation::Cause>) -> Result<()> {
    if causes.is_empty() {
        return Ok(());
    }
    let causes: Vec<(String, String, String)> = causes
        .into_iter()
        .map(|c| (c.reason, c.field, c.message))
        .collect();
    Err(ApiError::invalid(info, meta::name_of(obj), &causes))
}

fn namespace_info() -> &'static ResourceInfo {
    lookup("", "v1", "namespaces").expect("namespaces are served")
}

fn is_terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// `obj` without `metadata.resourceVersion`: what a write hands the store, which stamps its own.
fn without_version(mut obj: Value) -> Value {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    obj
}

fn name_mismatch(body_name: &str, url_name: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
    ))
}
