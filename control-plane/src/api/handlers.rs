//! Request handlers: dispatch by route and verb; create, get, list, watch, update, patch, delete and
//! deletecollection on the store, and the `status`, `scale`, `eviction` and `finalize` subresources.
//! Every read-modify-write uses `Precondition::Revision` and retries when it lost a race.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::meta::{self, CreateContext};
use super::resources::{lookup, ResourceInfo};
use super::route::{self, Query, Route, Target};
use super::status::{json_response, success, ApiError, Result};
use super::watch::{self, Render, Selectors, WatchRequest};
use super::{alloc, authz, discovery, openapi, proxy};
use super::{patch, pod_security, protobuf, validation};
use crate::store::{self, Batch, Consistency, Object, ObjectStore, Op, Precondition};

/// Largest request body accepted (as the Kubernetes API server: 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How many times a read-modify-write is retried after losing a race before answering Conflict.
const MAX_RETRIES: usize = 10;

/// Settings of the API server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `host:port` clients are told to use (`serverAddressByClientCIDRs`).
    pub advertise_address: String,
    /// Port of the node agents' HTTP API (logs, exec), used when a Node does not report
    /// `status.daemonEndpoints.kubeletEndpoint.Port`.
    pub kubelet_port: u16,
    /// The cluster PKI: TLS on the API port, the client certificate towards agents, ServiceAccount
    /// token signing. `None` serves plain HTTP with no authentication (in-process tests only).
    pub pki: Option<Arc<crate::security::ClusterPki>>,
    /// Max-in-flight, timeouts and the watch cap.
    pub limits: super::limits::Limits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            advertise_address: "127.0.0.1:6443".into(),
            kubelet_port: 10250,
            pki: None,
            limits: super::limits::Limits::default(),
        }
    }
}

/// Shared state of the handlers.
pub struct ApiState {
    /// The object store.
    pub store: Arc<dyn ObjectStore>,
    /// Settings.
    pub config: ApiConfig,
    /// Cancelled at shutdown; ends watches and log streams.
    pub shutdown: CancellationToken,
}

/// Entry point of every request.
pub async fn handle(state: Arc<ApiState>, req: Request<Body>) -> Response {
    match dispatch(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn header_str(req: &Request<Body>, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `/livez` and `/healthz` fail when the Raft driver has stopped; `/readyz` also while no leader is
/// known or the storage refuses writes, so a load balancer sends nothing to a member that cannot
/// commit. Texts as kube-apiserver's.
fn health(path: &str, h: crate::store::Health) -> Response {
    let check = path
        .trim_matches('/')
        .split('/')
        .next()
        .unwrap_or("healthz");
    let failed = if h.driver_stopped {
        Some("the Raft driver stopped".to_string())
    } else if check != "readyz" {
        None
    } else if h.no_leader {
        Some("no Raft leader".to_string())
    } else {
        h.storage
            .map(|why| format!("storage refuses writes: {why}"))
    };
    match failed {
        None => (StatusCode::OK, "ok").into_response(),
        Some(why) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("[-]raft failed: {why}\n{check} check failed\n"),
        )
            .into_response(),
    }
}

fn ok_json(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

async fn dispatch(state: &Arc<ApiState>, req: Request<Body>) -> Result<Response> {
    let route = route::parse(req.uri().path()).ok_or_else(ApiError::no_route)?;
    let get_only = |m: &Method| {
        if m == Method::GET || m == Method::HEAD {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(m.as_str(), None))
        }
    };
    let accept = header_str(&req, header::ACCEPT).to_string();
    match route {
        Route::Version => {
            get_only(req.method())?;
            Ok(ok_json(&discovery::version()))
        }
        Route::Health => {
            get_only(req.method())?;
            Ok(health(req.uri().path(), state.store.health()))
        }
        Route::Api => {
            get_only(req.method())?;
            if discovery::wants_aggregated(&accept) {
                Ok(aggregated(&discovery::aggregated_core()))
            } else {
                Ok(ok_json(&discovery::api_versions(
                    &state.config.advertise_address,
                )))
            }
        }
        Route::Apis => {
            get_only(req.method())?;
            if discovery::wants_aggregated(&accept) {
                Ok(aggregated(&discovery::aggregated_groups()))
            } else {
                Ok(ok_json(&discovery::api_group_list()))
            }
        }
        Route::Group(g) => {
            get_only(req.method())?;
            discovery::group(&g)
                .map(|v| ok_json(&v))
                .ok_or_else(ApiError::no_route)
        }
        Route::GroupVersion { group, version } => {
            get_only(req.method())?;
            Ok(ok_json(&discovery::api_resource_list(&group, &version)))
        }
        Route::OpenApiIndex => {
            get_only(req.method())?;
            Ok(ok_json(&openapi::index()))
        }
        Route::OpenApiDoc(path) => {
            get_only(req.method())?;
            openapi::document(&path)
                .map(|v| ok_json(&v))
                .ok_or_else(ApiError::no_route)
        }
        Route::OpenApiV2 => Err(ApiError::no_route()),
        Route::Resource(t) => resource(state, t, req).await,
    }
}

fn aggregated(body: &Value) -> Response {
    let mut r = ok_json(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
    );
    r
}

/// One resource request, parsed.
struct Ctx<'a> {
    state: &'a Arc<ApiState>,
    info: &'static ResourceInfo,
    namespace: Option<String>,
    name: String,
    query: Query,
    render: Render,
    content_type: String,
    dry_run: bool,
    /// The authenticated caller, when the server authenticates (RBAC writes check escalation).
    user: Option<authz::UserInfo>,
    /// The server's shared authorizer, when it put one in the request's extensions.
    authorizer: Option<Arc<authz::Authorizer>>,
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

    fn consistency(&self) -> Consistency {
        match self.query.get("resourceVersion") {
            Some("0") => Consistency::Local,
            _ => Consistency::Linearizable,
        }
    }

    async fn load(&self) -> Result<Option<Object>> {
        self.store()
            .get(&self.key(), self.consistency())
            .await
            .map_err(ApiError::from_store)
    }

    async fn load_existing(&self) -> Result<Object> {
        self.load()
            .await?
            .ok_or_else(|| ApiError::not_found(self.info, &self.name))
    }

    /// The object answer, or a one-row Table.
    fn respond(&self, code: StatusCode, obj: &Value) -> Response {
        let rv = meta::resource_version_str(obj).unwrap_or("").to_string();
        match self.render.table(self.info, &[obj], &rv) {
            Some(t) => json_response(code, &t),
            None => json_response(code, obj),
        }
    }
}

async fn resource(state: &Arc<ApiState>, t: Target, req: Request<Body>) -> Result<Response> {
    let query = Query::parse(req.uri().query());
    let accept = header_str(&req, header::ACCEPT);
    let ctx = Ctx {
        state,
        info: t.info,
        namespace: t.namespace.clone(),
        name: t.name.clone().unwrap_or_default(),
        render: Render::from_request(accept, query.get("includeObject")),
        content_type: header_str(&req, header::CONTENT_TYPE).to_string(),
        dry_run: query.get("dryRun") == Some("All"),
        query,
        user: req.extensions().get::<authz::UserInfo>().cloned(),
        authorizer: req.extensions().get::<Arc<authz::Authorizer>>().cloned(),
    };
    let method = req.method().clone();
    let m = method.as_str();
    let not_allowed = || ApiError::method_not_allowed(m, Some(t.info));
    match (t.name.is_some(), t.subresource.as_deref()) {
        (false, None) if method == Method::POST && is_review(t.info) => {
            let user = req
                .extensions()
                .get::<authz::UserInfo>()
                .cloned()
                .unwrap_or_else(authz::UserInfo::anonymous);
            let authorizer = req.extensions().get::<Arc<authz::Authorizer>>().cloned();
            let body = read_body(req.into_body()).await?;
            review(&ctx, &user, authorizer, &body).await
        }
        (false, _) => match method {
            Method::GET | Method::HEAD if !t.info.supports("list") => Err(not_allowed()),
            Method::GET | Method::HEAD => {
                if ctx.query.flag("watch") {
                    watch(&ctx)
                } else {
                    list(&ctx).await
                }
            }
            Method::POST
                if t.info.supports("create") && (t.namespace.is_some() || !t.info.namespaced) =>
            {
                let body = read_body(req.into_body()).await?;
                create(&ctx, &body).await
            }
            Method::DELETE
                if t.info.supports("deletecollection")
                    && (t.namespace.is_some() || !t.info.namespaced) =>
            {
                let body = read_body(req.into_body()).await?;
                delete_collection(&ctx, &body).await
            }
            _ => Err(not_allowed()),
        },
        (true, None) => match method {
            Method::GET | Method::HEAD => {
                let obj = ctx.load_existing().await?;
                Ok(ctx.respond(StatusCode::OK, &obj.value))
            }
            Method::PUT => {
                let body = read_body(req.into_body()).await?;
                update(&ctx, &body, Mode::Main).await
            }
            Method::PATCH => {
                let body = read_body(req.into_body()).await?;
                patch(&ctx, &body, Mode::Main).await
            }
            Method::DELETE => {
                let body = read_body(req.into_body()).await?;
                delete(&ctx, &body).await
            }
            _ => Err(not_allowed()),
        },
        (true, Some("status")) => match method {
            Method::GET => {
                let obj = ctx.load_existing().await?;
                Ok(ctx.respond(StatusCode::OK, &obj.value))
            }
            Method::PUT => {
                let body = read_body(req.into_body()).await?;
                update(&ctx, &body, Mode::Status).await
            }
            Method::PATCH => {
                let body = read_body(req.into_body()).await?;
                patch(&ctx, &body, Mode::Status).await
            }
            _ => Err(not_allowed()),
        },
        (true, Some("scale")) => match method {
            Method::GET => {
                let obj = ctx.load_existing().await?;
                Ok(json_response(StatusCode::OK, &scale_of(&obj.value)))
            }
            Method::PUT => {
                let body = read_body(req.into_body()).await?;
                update(&ctx, &body, Mode::Scale).await
            }
            Method::PATCH => {
                let body = read_body(req.into_body()).await?;
                patch(&ctx, &body, Mode::Scale).await
            }
            _ => Err(not_allowed()),
        },
        (true, Some("finalize")) if method == Method::PUT => {
            let body = read_body(req.into_body()).await?;
            update(&ctx, &body, Mode::Finalize).await
        }
        (true, Some("eviction")) if method == Method::POST => {
            let body = read_body(req.into_body()).await?;
            evict(&ctx, &body).await
        }
        (true, Some("binding")) if method == Method::POST => {
            let body = read_body(req.into_body()).await?;
            bind(&ctx, &body).await
        }
        (true, Some("token")) if method == Method::POST => {
            let body = read_body(req.into_body()).await?;
            token_request(&ctx, &body).await
        }
        (true, Some("log")) if method == Method::GET => {
            let pod = ctx.load_existing().await?;
            proxy::logs(state, &pod.value, &ctx.query).await
        }
        (true, Some("exec")) if method == Method::GET || method == Method::POST => {
            let pod = ctx.load_existing().await?;
            proxy::exec(state, &pod.value, req).await
        }
        (true, Some("proxy")) if t.info.resource == "nodes" => {
            let node = ctx.load_existing().await?;
            proxy::node_proxy(state, &node.value, req).await
        }
        _ => Err(not_allowed()),
    }
}

/// Whether a kind is a review answered from the caller's identity and never stored
/// (`SelfSubjectAccessReview`, `SelfSubjectRulesReview`, `SelfSubjectReview`).
fn is_review(info: &ResourceInfo) -> bool {
    matches!(info.group, "authorization.k8s.io" | "authentication.k8s.io")
}

/// A review about the caller (`user`, from the request's extensions; anonymous when there is none).
/// Uses the request's `Arc<Authorizer>` extension when the server put one there, else reads the
/// RBAC objects from the store.
async fn review(
    ctx: &Ctx<'_>,
    user: &authz::UserInfo,
    authorizer: Option<Arc<authz::Authorizer>>,
    body: &[u8],
) -> Result<Response> {
    let obj = decode_object(&ctx.content_type, body)?;
    check_kind(ctx.info, &obj, ctx.info.kind)?;
    let authorizer = authorizer.unwrap_or_else(|| authz::Authorizer::new(ctx.state.store.clone()));
    let answer = match ctx.info.resource {
        "selfsubjectaccessreviews" => {
            authz::review::access(&authorizer, ctx.info, user, &obj).await?
        }
        "selfsubjectrulesreviews" => authz::review::rules(&authorizer, user, &obj).await?,
        _ => authz::review::whoami(user),
    };
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// A Role or ClusterRole may only grant what its author holds, and a binding only bind a role whose
/// rules its author holds (unless they may `escalate` or `bind`), when the server authenticates.
async fn check_escalation(ctx: &Ctx<'_>, obj: &Value) -> Result<()> {
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
async fn check_pod_security(ctx: &Ctx<'_>, old: Option<&Value>, obj: &Value) -> Result<()> {
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

/// `POST serviceaccounts/{name}/token`: a signed token for an existing ServiceAccount.
async fn token_request(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let request = decode_object(&ctx.content_type, body)?;
    check_kind(ctx.info, &request, "TokenRequest")?;
    let sa = ctx.load_existing().await?;
    let key = ctx.state.config.pki.as_ref().map(|p| &p.sa_key);
    let answer = authz::token::answer(key, &sa.value, &request, SystemTime::now())?;
    Ok(json_response(StatusCode::CREATED, &answer))
}

/// Reads a request body, refusing more than [`MAX_BODY`] bytes.
///
/// # Errors
/// 413 when the body is too large; 400 when it cannot be read.
pub async fn read_body(body: Body) -> Result<Bytes> {
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "failed to read the request body: {e}"
        ))),
    }
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Decodes an object body by content type: JSON (also when no type is given, as the Python client
/// sends), YAML, or Kubernetes protobuf.
///
/// # Errors
/// 400 for a malformed body, 415 for an unknown content type.
pub fn decode_object(content_type: &str, body: &[u8]) -> Result<Value> {
    let value = match media_type(content_type).as_str() {
        "" | "application/json" | "*/*" | "text/plain" => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            serde_yaml::from_slice::<Value>(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding protobuf: {e}")))?,
        _ => return Err(ApiError::unsupported_media_type(content_type)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(value)
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

/// A namespaced create needs its namespace to exist and not be terminating, as in Kubernetes.
async fn check_namespace(ctx: &Ctx<'_>, name: &str) -> Result<()> {
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
        Some(o) if is_terminating(&o.value) => Err(ApiError {
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

async fn used_allocations(store: &dyn ObjectStore) -> Result<alloc::Used> {
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

fn alloc_error(info: &ResourceInfo, name: &str, (field, message): alloc::Failure) -> ApiError {
    ApiError::invalid(info, name, &[("FieldValueInvalid".into(), field, message)])
}

fn explicit_alloc_error(info: &ResourceInfo, name: &str, text: &str) -> ApiError {
    let (field, message) = text.split_once(": ").unwrap_or(("", text));
    ApiError::invalid(
        info,
        name,
        &[("FieldValueInvalid".into(), field.into(), message.into())],
    )
}

async fn create(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let obj = decode_object(&ctx.content_type, body)?;
    check_kind(ctx.info, &obj, ctx.info.kind)?;
    check_shape(ctx.info, &obj)?;
    let created = create_object(ctx, obj).await?;
    Ok(ctx.respond(StatusCode::CREATED, &created))
}

async fn create_object(ctx: &Ctx<'_>, obj: Value) -> Result<Value> {
    let generated = meta::name_of(&obj).is_empty();
    for _ in 0..MAX_RETRIES {
        let mut o = obj.clone();
        meta::prepare_create(
            ctx.info,
            &mut o,
            ctx.namespace.as_deref(),
            &CreateContext::fresh(),
        )?;
        validate(ctx.info, &o)?;
        check_escalation(ctx, &o).await?;
        check_pod_security(ctx, None, &o).await?;
        let name = meta::name_of(&o).to_string();
        check_namespace(ctx, &name).await?;
        let key = ctx.info.key(ctx.ns(), &name);
        let mut ops = vec![];
        let mut explicit = vec![];
        if ctx.info.kind == "Service" {
            let used = used_allocations(ctx.store()).await?;
            let plan = alloc::plan(None, &mut o, &used, &mut rand::thread_rng())
                .map_err(|f| alloc_error(ctx.info, &name, f))?;
            ops = plan.ops;
            explicit = plan.explicit;
        }
        if ctx.dry_run {
            return Ok(o);
        }
        ops.insert(
            0,
            Op::Put {
                key: key.clone(),
                value: o,
                precondition: Precondition::Absent,
            },
        );
        match ctx.store().commit(Batch { ops }).await {
            Ok(c) => return Ok(c.into_first().unwrap_or_default()),
            Err(store::Error::PreconditionFailed { key: k, .. }) if k == key => {
                if generated {
                    continue;
                }
                return Err(ApiError::already_exists(ctx.info, &name));
            }
            Err(store::Error::PreconditionFailed { key: k, .. }) => {
                if let Some((_, text)) = explicit.iter().find(|(e, _)| *e == k) {
                    return Err(explicit_alloc_error(ctx.info, &name, text));
                }
                // Lost a race for a dynamically picked IP or port: pick again.
                continue;
            }
            Err(e) => return Err(ApiError::from_store(e)),
        }
    }
    Err(ApiError::internal(
        "could not create the object after repeated conflicts",
    ))
}

/// Which part of an object a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The object (not its status).
    Main,
    /// Only `status`.
    Status,
    /// Only `spec.replicas`, through an `autoscaling/v1 Scale`.
    Scale,
    /// Only a Namespace's `spec.finalizers`.
    Finalize,
}

enum WriteError {
    /// The object changed since it was read: re-read and retry.
    Stale,
    /// A final answer.
    Api(ApiError),
}

impl From<ApiError> for WriteError {
    fn from(e: ApiError) -> Self {
        WriteError::Api(e)
    }
}

fn finalizers_empty(obj: &Value) -> bool {
    let empty = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
    };
    empty("/metadata/finalizers") && empty("/spec/finalizers")
}

/// An object being deleted whose last finalizer is gone is removed, as Kubernetes does; a pod in
/// graceful termination stays until its node agent removes it.
fn should_remove(info: &ResourceInfo, obj: &Value) -> bool {
    let grace = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    is_terminating(obj) && finalizers_empty(obj) && (grace == 0 || info.kind != "Pod")
}

/// Writes `new` over `cur` (the main object, its status, or a Namespace's finalizers), with the
/// Service allocations and finalizer-driven removal. Returns the stored object.
async fn write_update(
    ctx: &Ctx<'_>,
    cur: &Object,
    mut new: Value,
    mode: Mode,
) -> Result<Value, WriteError> {
    let info = ctx.info;
    // Before the preparation below, which indexes into these fields.
    check_shape(info, &new)?;
    match mode {
        Mode::Main | Mode::Scale => meta::prepare_update(info, &cur.value, &mut new),
        Mode::Status => new = meta::prepare_status_update(&cur.value, &new),
        Mode::Finalize => {
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or_else(|| json!([]));
            new = cur.value.clone();
            new["spec"]["finalizers"] = finalizers;
            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
        }
    }
    check_shape(info, &new)?;
    if mode == Mode::Main || mode == Mode::Scale {
        validate_update(info, &cur.value, &new)?;
        check_escalation(ctx, &new).await?;
        if mode == Mode::Main {
            check_pod_security(ctx, Some(&cur.value), &new).await?;
        }
    } else {
        validate(info, &new)?;
    }
    // As Kubernetes: an update that changes nothing is not written, so resourceVersion stays and
    // watchers see no event (a re-run `apply` is a true no-op).
    if !should_remove(info, &new) && same_but_version(&new, &cur.value) {
        return Ok(cur.value.clone());
    }
    let key = cur.key.clone();
    let mut explicit = vec![];
    let mut ops = vec![];
    if should_remove(info, &new) {
        if info.kind == "Service" {
            ops.extend(alloc::release(&cur.value));
        }
        ops.insert(
            0,
            Op::Delete {
                key: key.clone(),
                precondition: Precondition::Revision(cur.revision),
            },
        );
    } else {
        if info.kind == "Service" && mode == Mode::Main {
            let used = used_allocations(ctx.store()).await?;
            let plan = alloc::plan(Some(&cur.value), &mut new, &used, &mut rand::thread_rng())
                .map_err(|f| alloc_error(info, &ctx.name, f))?;
            ops = plan.ops;
            explicit = plan.explicit;
        }
        ops.insert(
            0,
            Op::Put {
                key: key.clone(),
                value: new.clone(),
                precondition: Precondition::Revision(cur.revision),
            },
        );
    }
    if ctx.dry_run {
        new["metadata"]["resourceVersion"] = json!(cur.revision.to_string());
        return Ok(new);
    }
    match ctx.store().commit(Batch { ops }).await {
        Ok(c) => Ok(c.into_first().unwrap_or_default()),
        Err(store::Error::PreconditionFailed { key: k, .. }) => {
            if let Some((_, text)) = explicit.iter().find(|(e, _)| *e == k) {
                return Err(WriteError::Api(explicit_alloc_error(info, &ctx.name, text)));
            }
            Err(WriteError::Stale)
        }
        Err(e) => Err(WriteError::Api(ApiError::from_store(e))),
    }
}

/// Whether two versions of an object differ only in `metadata.resourceVersion`.
fn same_but_version(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

/// The `autoscaling/v1 Scale` view of a Deployment or ReplicaSet.
pub fn scale_of(obj: &Value) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({});
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            metadata[k] = v.clone();
        }
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj.pointer("/spec/selector")),
        },
    })
}

/// A label selector object rendered in the string syntax (`app=web,tier in (a,b)`).
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let part = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        parts.push(part);
    }
    parts.join(",")
}

/// `cur` with `spec.replicas` taken from a Scale.
fn with_replicas(info: &ResourceInfo, cur: &Value, scale: &Value) -> Result<Value> {
    let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
    if replicas.as_i64().is_none_or(|r| r < 0) {
        return Err(ApiError {
            message: format!(
                "Scale.autoscaling \"{}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0",
                meta::name_of(cur)
            ),
            details: Some(json!({"name": meta::name_of(cur), "group": "autoscaling", "kind": "Scale",
                "causes": [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                    "message": format!("Invalid value: {replicas}: must be greater than or equal to 0")}]})),
            ..ApiError::new(422, "Invalid", "")
        });
    }
    let _ = info;
    let mut out = cur.clone();
    out["spec"]["replicas"] = replicas;
    Ok(out)
}

fn stale_version(ctx: &Ctx<'_>, given: Option<&str>, cur: &Object) -> Result<()> {
    match given {
        Some(rv) if rv != cur.revision.to_string() => Err(ApiError::conflict(ctx.info, &ctx.name)),
        _ => Ok(()),
    }
}

async fn update(ctx: &Ctx<'_>, body: &[u8], mode: Mode) -> Result<Response> {
    let mut new = decode_object(&ctx.content_type, body)?;
    let expected_kind = if mode == Mode::Scale {
        "Scale"
    } else {
        ctx.info.kind
    };
    check_kind(ctx.info, &new, expected_kind)?;
    match meta::name_of(&new) {
        "" => {
            meta::metadata_mut(&mut new).insert("name".into(), json!(ctx.name));
        }
        n if n != ctx.name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({})",
                ctx.name
            )))
        }
        _ => {}
    }
    if ctx.info.namespaced {
        match meta::namespace_of(&new) {
            "" => {}
            n if n != ctx.ns() => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
            _ => {}
        }
    }
    let given = meta::resource_version_str(&new).map(str::to_string);
    for _ in 0..MAX_RETRIES {
        let cur = ctx.load_existing().await?;
        stale_version(ctx, given.as_deref(), &cur)?;
        let candidate = if mode == Mode::Scale {
            with_replicas(ctx.info, &cur.value, &new)?
        } else {
            new.clone()
        };
        match write_update(ctx, &cur, candidate, mode).await {
            Ok(stored) => return Ok(answer(ctx, mode, &stored)),
            // Without a resourceVersion the update is unconditional: re-read and write again.
            Err(WriteError::Stale) if given.is_none() => continue,
            Err(WriteError::Stale) => return Err(ApiError::conflict(ctx.info, &ctx.name)),
            Err(WriteError::Api(e)) => return Err(e),
        }
    }
    Err(ApiError::conflict(ctx.info, &ctx.name))
}

fn answer(ctx: &Ctx<'_>, mode: Mode, stored: &Value) -> Response {
    if mode == Mode::Scale {
        json_response(StatusCode::OK, &scale_of(stored))
    } else {
        ctx.respond(StatusCode::OK, stored)
    }
}

/// The four patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 (`application/json-patch+json`).
    Json,
    /// RFC 7386 (`application/merge-patch+json`).
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`).
    Apply,
}

impl PatchType {
    /// From the request's content type.
    ///
    /// # Errors
    /// 415 for anything else.
    pub fn from_content_type(content_type: &str) -> Result<Self> {
        match media_type(content_type).as_str() {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            _ => Err(ApiError::unsupported_media_type(content_type)),
        }
    }

    /// Parses a patch body (YAML for apply, JSON otherwise).
    ///
    /// # Errors
    /// 400 on a malformed body.
    pub fn parse_body(self, body: &[u8]) -> Result<Value> {
        let parsed = if self == PatchType::Apply {
            serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
        };
        let value =
            parsed.map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let shape_ok = match self {
            PatchType::Json => value.is_array(),
            _ => value.is_object(),
        };
        if !shape_ok {
            return Err(ApiError::bad_request(
                "the patch body has the wrong shape for its content type",
            ));
        }
        Ok(value)
    }

    /// Applies the patch to `target`.
    ///
    /// # Errors
    /// 422 when the patch cannot be applied.
    pub fn apply(self, target: &mut Value, patch_body: &Value, kind: &str) -> Result<()> {
        let result = match self {
            PatchType::Merge => {
                patch::merge_patch(target, patch_body);
                Ok(())
            }
            PatchType::Strategic => patch::strategic_merge_patch(target, patch_body, kind),
            PatchType::Json => patch::json_patch(target, patch_body),
            PatchType::Apply => patch::apply_patch(Some(target), patch_body, kind).map(|v| {
                *target = v;
            }),
        };
        result.map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the patch could not be applied: {e}"),
            )
        })
    }
}

async fn patch(ctx: &Ctx<'_>, body: &[u8], mode: Mode) -> Result<Response> {
    let ptype = PatchType::from_content_type(&ctx.content_type)?;
    let patch_body = ptype.parse_body(body)?;
    if ptype == PatchType::Apply && ctx.query.non_empty("fieldManager").is_none() {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    for _ in 0..MAX_RETRIES {
        let Some(cur) = ctx.load().await? else {
            if ptype == PatchType::Apply && mode == Mode::Main {
                // Server-side apply creates what is absent.
                let obj = patch::apply_patch(None, &patch_body, ctx.info.kind)
                    .map_err(|e| ApiError::new(422, "Invalid", e))?;
                check_kind(ctx.info, &obj, ctx.info.kind)?;
                if !meta::name_of(&obj).is_empty() && meta::name_of(&obj) != ctx.name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({})",
                        meta::name_of(&obj),
                        ctx.name
                    )));
                }
                let mut obj = obj;
                meta::metadata_mut(&mut obj).insert("name".into(), json!(ctx.name));
                match create_object(ctx, obj).await {
                    Ok(created) => return Ok(ctx.respond(StatusCode::CREATED, &created)),
                    // Someone created it meanwhile: apply onto theirs.
                    Err(e) if e.reason == "AlreadyExists" => continue,
                    Err(e) => return Err(e),
                }
            }
            return Err(ApiError::not_found(ctx.info, &ctx.name));
        };
        let (mut target, kind) = match mode {
            Mode::Scale => (scale_of(&cur.value), "Scale"),
            _ => (cur.value.clone(), ctx.info.kind),
        };
        ptype.apply(&mut target, &patch_body, kind)?;
        // A patch that names a resourceVersion is conditional on it.
        stale_version(ctx, meta::resource_version_str(&target), &cur)?;
        if meta::name_of(&target) != ctx.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({})",
                meta::name_of(&target),
                ctx.name
            )));
        }
        let candidate = if mode == Mode::Scale {
            with_replicas(ctx.info, &cur.value, &target)?
        } else {
            target
        };
        match write_update(ctx, &cur, candidate, mode).await {
            Ok(stored) => return Ok(answer(ctx, mode, &stored)),
            Err(WriteError::Stale) => continue,
            Err(WriteError::Api(e)) => return Err(e),
        }
    }
    Err(ApiError::conflict(ctx.info, &ctx.name))
}

/// `DeleteOptions`, from the body and the query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `propagationPolicy`: Background, Foreground or Orphan.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// Reads the options from a decoded `DeleteOptions` body and the query, the query winning.
    pub fn from_parts(body: Option<&Value>, query: &Query) -> Self {
        let b = |p: &str| body.and_then(|v| v.pointer(p)).cloned();
        let mut o = DeleteOptions {
            grace_period: b("/gracePeriodSeconds").and_then(|v| v.as_i64()),
            propagation: b("/propagationPolicy").and_then(|v| v.as_str().map(str::to_string)),
            uid: b("/preconditions/uid").and_then(|v| v.as_str().map(str::to_string)),
            resource_version: b("/preconditions/resourceVersion")
                .and_then(|v| v.as_str().map(str::to_string)),
        };
        if b("/orphanDependents").and_then(|v| v.as_bool()) == Some(true) {
            o.propagation.get_or_insert_with(|| "Orphan".into());
        }
        if let Some(g) = query.get("gracePeriodSeconds").and_then(|s| s.parse().ok()) {
            o.grace_period = Some(g);
        }
        if let Some(p) = query.non_empty("propagationPolicy") {
            o.propagation = Some(p.to_string());
        }
        if query.flag("orphanDependents") {
            o.propagation.get_or_insert_with(|| "Orphan".into());
        }
        o
    }
}

fn parse_delete_options(ctx: &Ctx<'_>, body: &[u8]) -> Result<DeleteOptions> {
    let decoded = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(decode_object(&ctx.content_type, body)?)
    };
    let opts = DeleteOptions::from_parts(decoded.as_ref(), &ctx.query);
    if let Some(p) = &opts.propagation {
        if !matches!(p.as_str(), "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(opts)
}

/// What a delete did.
enum Deleted {
    /// The object is gone; its last state.
    Removed(Value),
    /// The object is being deleted (grace period, finalizers, namespace teardown); its state.
    Pending(Value),
}

fn add_finalizer(obj: &mut Value, name: &str) {
    let meta = meta::metadata_mut(obj);
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let arr = list.as_array_mut().expect("array");
    if !arr.iter().any(|f| f == name) {
        arr.push(json!(name));
    }
}

fn mark_deleting(obj: &mut Value, now: SystemTime, grace: i64) {
    let meta = meta::metadata_mut(obj);
    // A grace period past the end of time ends at the far end of what a timestamp can say
    // (checked: a hostile DeleteOptions must not panic the handler, #13).
    let at = now
        .checked_add(Duration::from_secs(grace.max(0).unsigned_abs()))
        .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799));
    meta.insert("deletionTimestamp".into(), json!(meta::rfc3339(at)));
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    meta.remove("resourceVersion");
}

/// Whether a pod's deletion waits for its node agent (graceful) or happens at once.
async fn pod_is_graceful(store: &dyn ObjectStore, pod: &Value, grace: i64) -> Result<bool> {
    if grace == 0 {
        return Ok(false);
    }
    if matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return Ok(false);
    }
    let Some(node) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Ok(false);
    };
    let node_key = store::key("", "nodes", "", node);
    let exists = store
        .get(&node_key, Consistency::Local)
        .await
        .map_err(ApiError::from_store)?
        .is_some();
    Ok(exists)
}

/// Deletes one object, following Kubernetes: graceful pods, namespace teardown, foreground and
/// orphan finalizers, objects that already carry finalizers; everything else is removed at once
/// (its dependents are left to the garbage collector).
async fn delete_object(
    ctx: &Ctx<'_>,
    info: &'static ResourceInfo,
    mut cur: Object,
    opts: &DeleteOptions,
) -> Result<Deleted> {
    let name = meta::name_of(&cur.value).to_string();
    for _ in 0..MAX_RETRIES {
        if let Some(uid) = &opts.uid {
            let actual = cur
                .value
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            if uid != actual {
                return Err(ApiError::conflict_because(
                    info,
                    &name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            if *rv != cur.revision.to_string() {
                return Err(ApiError::conflict_because(
                    info,
                    &name,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", cur.revision),
                ));
            }
        }
        let now = SystemTime::now();
        let obj = &cur.value;
        let mut updated: Option<Value> = None;
        match info.kind {
            "Namespace" => {
                if matches!(name.as_str(), "default" | "kube-system" | "kube-public") {
                    return Err(ApiError {
                        details: Some(json!({"name": name, "group": "", "kind": "namespaces"})),
                        ..ApiError::forbidden(format!(
                            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                        ))
                    });
                }
                if is_terminating(obj) {
                    return Ok(Deleted::Pending(obj.clone()));
                }
                let mut n = obj.clone();
                mark_deleting(&mut n, now, 0);
                n["status"]["phase"] = json!("Terminating");
                updated = Some(n);
            }
            "Pod" => {
                let default_grace = obj
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30);
                let grace = opts.grace_period.unwrap_or(default_grace).max(0);
                let current = obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                if pod_is_graceful(ctx.store(), obj, grace).await? {
                    match current {
                        Some(c) if c <= grace => return Ok(Deleted::Pending(obj.clone())),
                        _ => {
                            let mut p = obj.clone();
                            mark_deleting(&mut p, now, grace);
                            updated = Some(p);
                        }
                    }
                }
            }
            _ => {}
        }
        if updated.is_none() && info.kind != "Namespace" {
            let has_finalizers = !finalizers_empty(obj);
            match opts.propagation.as_deref() {
                Some("Foreground") | Some("Orphan") => {
                    let finalizer = if opts.propagation.as_deref() == Some("Foreground") {
                        "foregroundDeletion"
                    } else {
                        "orphan"
                    };
                    let mut o = obj.clone();
                    add_finalizer(&mut o, finalizer);
                    if !is_terminating(&o) {
                        mark_deleting(&mut o, now, 0);
                    }
                    if o != *obj {
                        updated = Some(o);
                    } else {
                        return Ok(Deleted::Pending(obj.clone()));
                    }
                }
                _ if has_finalizers => {
                    if is_terminating(obj) {
                        return Ok(Deleted::Pending(obj.clone()));
                    }
                    let mut o = obj.clone();
                    mark_deleting(&mut o, now, 0);
                    updated = Some(o);
                }
                _ => {}
            }
        }
        let (ops, pending) = match updated {
            Some(mut o) => {
                if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                (
                    vec![Op::Put {
                        key: cur.key.clone(),
                        value: o,
                        precondition: Precondition::Revision(cur.revision),
                    }],
                    true,
                )
            }
            None => {
                let mut ops = vec![Op::Delete {
                    key: cur.key.clone(),
                    precondition: Precondition::Revision(cur.revision),
                }];
                if info.kind == "Service" {
                    ops.extend(alloc::release(obj));
                }
                (ops, false)
            }
        };
        if ctx.dry_run {
            let shown = match &ops[0] {
                Op::Put { value, .. } => value.clone(),
                Op::Merge { .. } | Op::Delete { .. } => obj.clone(),
            };
            return Ok(if pending {
                Deleted::Pending(shown)
            } else {
                Deleted::Removed(shown)
            });
        }
        match ctx.store().commit(Batch { ops }).await {
            Ok(c) => {
                let v = c.into_first().unwrap_or_default();
                return Ok(if pending {
                    Deleted::Pending(v)
                } else {
                    Deleted::Removed(v)
                });
            }
            Err(store::Error::PreconditionFailed { .. }) => {
                match ctx
                    .store()
                    .get(&cur.key, Consistency::Linearizable)
                    .await
                    .map_err(ApiError::from_store)?
                {
                    Some(o) => cur = o,
                    None => return Err(ApiError::not_found(info, &name)),
                }
            }
            Err(e) => return Err(ApiError::from_store(e)),
        }
    }
    Err(ApiError::conflict(info, &name))
}

fn deleted_answer(ctx: &Ctx<'_>, d: Deleted) -> Response {
    match d {
        Deleted::Pending(v) => ctx.respond(StatusCode::OK, &v),
        // Pods answer with the object, like the real registry; the rest with Status Success.
        Deleted::Removed(v) if ctx.info.kind == "Pod" => ctx.respond(StatusCode::OK, &v),
        Deleted::Removed(v) => json_response(
            StatusCode::OK,
            &success(
                ctx.info,
                meta::name_of(&v),
                v.pointer("/metadata/uid").and_then(Value::as_str),
            ),
        ),
    }
}

async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let opts = parse_delete_options(ctx, body)?;
    let cur = ctx.load_existing().await?;
    let d = delete_object(ctx, ctx.info, cur, &opts).await?;
    Ok(deleted_answer(ctx, d))
}

async fn evict(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let eviction = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        decode_object(&ctx.content_type, body)?
    };
    let opts = DeleteOptions::from_parts(eviction.get("deleteOptions"), &Query::default());
    let cur = ctx.load_existing().await?;
    delete_object(ctx, ctx.info, cur, &opts).await?;
    Ok(bound())
}

/// The `201 Status Success` answer of bindings and evictions.
fn bound() -> Response {
    json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// `POST pods/{name}/binding`: assigns an unbound pod to a node, as a scheduler does.
async fn bind(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
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
    let binding_info = ResourceInfo {
        resource: "pods/binding",
        ..*ctx.info
    };
    for _ in 0..MAX_RETRIES {
        let cur = ctx.load_existing().await?;
        if is_terminating(&cur.value) {
            return Err(ApiError::conflict_because(
                &binding_info,
                &ctx.name,
                &format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    ctx.name
                ),
            ));
        }
        if let Some(assigned) = cur
            .value
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict_because(
                &binding_info,
                &ctx.name,
                &format!(
                    "pod {} is already assigned to node \"{assigned}\"",
                    ctx.name
                ),
            ));
        }
        let mut pod = cur.value.clone();
        pod["spec"]["nodeName"] = json!(node);
        if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        if ctx.dry_run {
            return Ok(bound());
        }
        let put = Op::Put {
            key: cur.key.clone(),
            value: pod,
            precondition: Precondition::Revision(cur.revision),
        };
        match ctx.store().commit(Batch::one(put)).await {
            Ok(_) => return Ok(bound()),
            Err(store::Error::PreconditionFailed { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(e)),
        }
    }
    Err(ApiError::conflict(&binding_info, &ctx.name))
}

async fn delete_collection(ctx: &Ctx<'_>, body: &[u8]) -> Result<Response> {
    let opts = parse_delete_options(ctx, body)?;
    let selectors = Selectors::parse(
        ctx.query.get("labelSelector"),
        ctx.query.get("fieldSelector"),
    )?;
    let (objects, _) = ctx
        .store()
        .list(
            &ctx.info.prefix(ctx.namespace.as_deref()),
            Consistency::Linearizable,
        )
        .await
        .map_err(ApiError::from_store)?;
    let mut items = Vec::new();
    for o in objects.into_iter().filter(|o| selectors.matches(&o.value)) {
        match delete_object(ctx, ctx.info, o, &opts).await {
            Ok(Deleted::Removed(v) | Deleted::Pending(v)) => items.push(v),
            // Deleted by someone else meanwhile.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = ctx.store().revision().to_string();
    Ok(ok_json(&json!({
        "kind": format!("{}List", ctx.info.kind),
        "apiVersion": ctx.info.api_version(),
        "metadata": {"resourceVersion": rv},
        "items": items,
    })))
}

/// Continue tokens: where the previous page ended.
fn encode_continue(last_key: &str, rv: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(json!({"v": "berth/v1", "rv": rv, "start": last_key}).to_string())
}

fn decode_continue(token: &str) -> Result<String> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    v.get("start")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(bad)
}

async fn list(ctx: &Ctx<'_>) -> Result<Response> {
    let selectors = Selectors::parse(
        ctx.query.get("labelSelector"),
        ctx.query.get("fieldSelector"),
    )?;
    let start = ctx
        .query
        .non_empty("continue")
        .map(decode_continue)
        .transpose()?;
    let limit = ctx
        .query
        .non_empty("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let (objects, rev) = ctx
        .store()
        .list(
            &ctx.info.prefix(ctx.namespace.as_deref()),
            ctx.consistency(),
        )
        .await
        .map_err(ApiError::from_store)?;
    let mut matching = objects
        .iter()
        .filter(|o| start.as_deref().is_none_or(|s| o.key.as_str() > s))
        .filter(|o| selectors.matches(&o.value));
    let mut page: Vec<&Object> = Vec::new();
    let mut more = false;
    for o in matching.by_ref() {
        if limit.is_some_and(|l| page.len() >= l) {
            more = true;
            break;
        }
        page.push(o);
    }
    let remaining = if more { 1 + matching.count() } else { 0 };
    let rv = rev.to_string();
    let mut list_meta = json!({"resourceVersion": rv});
    if more {
        let last = page.last().map(|o| o.key.as_str()).unwrap_or("");
        list_meta["continue"] = json!(encode_continue(last, rev));
        list_meta["remainingItemCount"] = json!(remaining);
    }
    let values: Vec<&Value> = page.iter().map(|o| &o.value).collect();
    if let Some(mut t) = ctx.render.table(ctx.info, &values, &rv) {
        t["metadata"] = list_meta;
        return Ok(ok_json(&t));
    }
    Ok(ok_json(&json!({
        "kind": format!("{}List", ctx.info.kind),
        "apiVersion": ctx.info.api_version(),
        "metadata": list_meta,
        "items": values,
    })))
}

fn watch(ctx: &Ctx<'_>) -> Result<Response> {
    let selectors = Selectors::parse(
        ctx.query.get("labelSelector"),
        ctx.query.get("fieldSelector"),
    )?;
    let from = match ctx.query.non_empty("resourceVersion") {
        None | Some("0") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };
    // Without timeoutSeconds (or with 0) the real server picks 30-60 minutes; clients reconnect
    // either way.
    let timeout = ctx
        .query
        .non_empty("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(1800);
    let req = WatchRequest {
        info: ctx.info,
        prefix: ctx.info.prefix(ctx.namespace.as_deref()),
        from,
        selectors,
        render: ctx.render,
        timeout: Duration::from_secs(timeout),
        bookmarks: ctx.query.flag("allowWatchBookmarks"),
    };
    let stream = watch::stream(ctx.state.store.clone(), req, ctx.state.shutdown.clone());
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod deleting_tests {
    use super::*;

    #[test]
    fn a_grace_period_past_the_end_of_time_does_not_panic() {
        let mut pod = json!({"metadata": {"name": "p"}});
        mark_deleting(&mut pod, SystemTime::now(), i64::MAX);
        assert_eq!(pod["metadata"]["deletionTimestamp"], "9999-12-31T23:59:59Z");
        assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], i64::MAX);
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;
    use crate::store::Health;

    #[test]
    fn health_endpoints_report_the_raft_driver() {
        let ok = Health::default();
        let leaderless = Health {
            no_leader: true,
            ..Health::default()
        };
        let dead = Health {
            driver_stopped: true,
            no_leader: true,
            storage: None,
        };
        let full = Health {
            storage: Some("raft log append failed: No space left on device".into()),
            ..Health::default()
        };
        let code = |p: &str, h| health(p, h).status().as_u16();
        assert_eq!(code("/readyz", ok), 200);
        assert_eq!(code("/readyz", leaderless.clone()), 500);
        assert_eq!(code("/livez", leaderless), 200, "alive while electing");
        assert_eq!(code("/healthz", dead.clone()), 500);
        assert_eq!(code("/livez/ping", dead), 500);
        assert_eq!(
            code("/readyz", full.clone()),
            500,
            "a full disk is not ready"
        );
        assert_eq!(code("/livez", full), 200, "but it is alive and recovers");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_strings() {
        let sel = json!({"matchLabels": {"app": "web", "tier": "fe"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]},
                {"key": "x", "operator": "DoesNotExist"}]});
        assert_eq!(
            selector_string(Some(&sel)),
            "app=web,tier=fe,env in (a,b),!x"
        );
        assert_eq!(selector_string(None), "");
    }

    #[test]
    fn scale_view() {
        let d = json!({"metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "4", "labels": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=web"}));
        assert_eq!(s["metadata"]["resourceVersion"], "4");
        assert!(s["metadata"].get("labels").is_none());
        let info = lookup("apps", "v1", "deployments").unwrap();
        let scaled = with_replicas(info, &d, &json!({"spec": {"replicas": 5}})).unwrap();
        assert_eq!(scaled["spec"]["replicas"], 5);
        assert_eq!(
            with_replicas(info, &d, &json!({"spec": {"replicas": -1}}))
                .unwrap_err()
                .code,
            422
        );
    }

    #[test]
    fn body_decoding_and_patch_types() {
        assert!(decode_object("", b"{\"a\":1}").is_ok());
        assert!(decode_object("application/json; charset=utf-8", b"{}").is_ok());
        assert_eq!(
            decode_object("application/json", b"{").unwrap_err().code,
            400
        );
        assert_eq!(
            decode_object("application/xml", b"<a/>").unwrap_err().code,
            415
        );
        assert_eq!(
            decode_object("application/yaml", b"a: 1\n").unwrap()["a"],
            1
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml").unwrap(),
            PatchType::Apply
        );
        assert_eq!(
            PatchType::from_content_type("text/plain").unwrap_err().code,
            415
        );
        assert!(PatchType::Json.parse_body(b"{}").is_err());
        assert_eq!(
            PatchType::Apply
                .parse_body(b"metadata:\n  name: x\n")
                .unwrap()["metadata"]["name"],
            "x"
        );
    }

    #[test]
    fn delete_options_from_body_and_query() {
        let q = Query::parse(Some("gracePeriodSeconds=0"));
        let o = DeleteOptions::from_parts(
            Some(&json!({"propagationPolicy": "Foreground", "gracePeriodSeconds": 5})),
            &q,
        );
        assert_eq!(o.grace_period, Some(0));
        assert_eq!(o.propagation.as_deref(), Some("Foreground"));
        let o =
            DeleteOptions::from_parts(Some(&json!({"orphanDependents": true})), &Query::default());
        assert_eq!(o.propagation.as_deref(), Some("Orphan"));
    }

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue("/core/pods/default/b", 9);
        assert_eq!(decode_continue(&t).unwrap(), "/core/pods/default/b");
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }

    #[test]
    fn finalizer_driven_removal() {
        let pods = lookup("", "v1", "pods").unwrap();
        let cms = lookup("", "v1", "configmaps").unwrap();
        let ns = lookup("", "v1", "namespaces").unwrap();
        let dt = json!({"metadata": {"deletionTimestamp": "t", "finalizers": []}});
        assert!(should_remove(cms, &dt));
        assert!(!should_remove(
            cms,
            &json!({"metadata": {"finalizers": []}})
        ));
        assert!(!should_remove(
            cms,
            &json!({"metadata": {"deletionTimestamp": "t", "finalizers": ["x"]}})
        ));
        let graceful =
            json!({"metadata": {"deletionTimestamp": "t", "deletionGracePeriodSeconds": 30}});
        assert!(!should_remove(pods, &graceful));
        let terminating_ns =
            json!({"metadata": {"deletionTimestamp": "t"}, "spec": {"finalizers": ["kubernetes"]}});
        assert!(!should_remove(ns, &terminating_ns));
        assert!(should_remove(
            ns,
            &json!({"metadata": {"deletionTimestamp": "t"}, "spec": {"finalizers": []}})
        ));
    }
}
