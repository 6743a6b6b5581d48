//! Request dispatch: discovery, OpenAPI and health by route; resource requests by verb and
//! subresource to [`super::verbs`], logs and exec to [`super::proxy`], `metrics.k8s.io` to
//! [`super::metrics`], the web view to [`super::ui`], the members list to [`super::members`] and the merged watch to
//! [`super::multiwatch`].

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, Request, StatusCode};
use serde_json::Value;

use super::body::read_body;
use super::route::{self, Query, Route, Target};
use super::status::{json_response, ApiError, Result};
use super::verbs::{self, Ctx, Mode};
use super::watch::Render;
use super::{authz, discovery, members, metrics, multiwatch, openapi, proxy, ui};

// The names callers used before the verbs moved out.
pub use super::body::{decode_object, MAX_BODY};
pub use super::patch::PatchType;
pub use super::state::{ApiConfig, ApiState};
pub use super::verbs::{scale_of, selector_string, DeleteOptions};

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
        Route::Metrics(t) => metrics::serve(state, t, req).await,
        Route::Ui(asset) => ui::serve(req.method(), req.uri().path(), &asset, req.headers()),
        Route::Members => members::serve(
            req.method(),
            state.store.membership(),
            &state.store.health(),
        ),
        Route::MultiWatch => multiwatch::serve(state, req).await,
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

async fn resource(state: &Arc<ApiState>, t: Target, req: Request<Body>) -> Result<Response> {
    let query = Query::parse(req.uri().query());
    let accept = header_str(&req, header::ACCEPT);
    let ctx = Ctx {
        state,
        info: super::resources::stored(t.info),
        served: t.info,
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
        (false, None) if method == Method::POST && verbs::is_review(t.info) => {
            let user = req
                .extensions()
                .get::<authz::UserInfo>()
                .cloned()
                .unwrap_or_else(authz::UserInfo::anonymous);
            let authorizer = req.extensions().get::<Arc<authz::Authorizer>>().cloned();
            let body = read_body(req.into_body()).await?;
            verbs::review(&ctx, &user, authorizer, &body).await
        }
        (false, _) => match method {
            Method::GET | Method::HEAD if !t.info.supports("list") => Err(not_allowed()),
            Method::GET | Method::HEAD => {
                if ctx.query.flag("watch") {
                    verbs::watch(&ctx)
                } else {
                    verbs::list(&ctx).await
                }
            }
            Method::POST
                if t.info.supports("create") && (t.namespace.is_some() || !t.info.namespaced) =>
            {
                let body = read_body(req.into_body()).await?;
                verbs::create(&ctx, &body).await
            }
            Method::DELETE
                if t.info.supports("deletecollection")
                    && (t.namespace.is_some() || !t.info.namespaced) =>
            {
                let body = read_body(req.into_body()).await?;
                verbs::delete_collection(&ctx, &body).await
            }
            _ => Err(not_allowed()),
        },
        (true, None) => match method {
            Method::GET | Method::HEAD => verbs::get(&ctx).await,
            Method::PUT => {
                let body = read_body(req.into_body()).await?;
                verbs::update(&ctx, &body, Mode::Main).await
            }
            Method::PATCH => {
                let body = read_body(req.into_body()).await?;
                verbs::patch(&ctx, &body, Mode::Main).await
            }
            Method::DELETE => {
                let body = read_body(req.into_body()).await?;
                verbs::delete(&ctx, &body).await
            }
            _ => Err(not_allowed()),
        },
        (true, Some("status")) => match method {
            Method::GET => verbs::get(&ctx).await,
            Method::PUT => {
                let body = read_body(req.into_body()).await?;
                verbs::update(&ctx, &body, Mode::Status).await
            }
            Method::PATCH => {
                let body = read_body(req.into_body()).await?;
                verbs::patch(&ctx, &body, Mode::Status).await
            }
            _ => Err(not_allowed()),
        },
        (true, Some("scale")) => match method {
            Method::GET => verbs::get_scale(&ctx).await,
            Method::PUT => {
                let body = read_body(req.into_body()).await?;
                verbs::update(&ctx, &body, Mode::Scale).await
            }
            Method::PATCH => {
                let body = read_body(req.into_body()).await?;
                verbs::patch(&ctx, &body, Mode::Scale).await
            }
            _ => Err(not_allowed()),
        },
        (true, Some("finalize")) if method == Method::PUT => {
            let body = read_body(req.into_body()).await?;
            verbs::update(&ctx, &body, Mode::Finalize).await
        }
        (true, Some("eviction")) if method == Method::POST => {
            let body = read_body(req.into_body()).await?;
            verbs::evict(&ctx, &body).await
        }
        (true, Some("binding")) if method == Method::POST => {
            let body = read_body(req.into_body()).await?;
            verbs::bind(&ctx, &body).await
        }
        (true, Some("token")) if method == Method::POST => {
            let body = read_body(req.into_body()).await?;
            verbs::token_request(&ctx, &body).await
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

#[cfg(test)]
mod tests;
