//! `GET` on a collection: selectors, `limit` and `continue` paging, Table or `<Kind>List`.

use axum::response::Response;
use http::StatusCode;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::status::{json_response, ApiError, Result};
use crate::api::watch::{Render, Selectors};
use crate::store::Object;

/// One page of a list.
#[derive(Debug)]
pub struct Page<'a> {
    /// The objects on this page.
    pub items: Vec<&'a Object>,
    /// Key of the last item, when more match after it.
    pub continue_after: Option<&'a str>,
    /// How many matching objects follow this page.
    pub remaining: usize,
}

/// The page of `objects` (sorted by key) that follows `start`, matches `selectors`, and holds at
/// most `limit` items. Pure.
pub fn paginate<'a>(
    objects: &'a [Object],
    start: Option<&str>,
    limit: Option<usize>,
    selectors: &Selectors,
) -> Page<'a> {
    let mut matching = objects
        .iter()
        .filter(|o| start.is_none_or(|s| o.key.as_str() > s))
        .filter(|o| selectors.matches(&o.value));
    let mut items: Vec<&Object> = Vec::new();
    let mut more = false;
    for o in matching.by_ref() {
        if limit.is_some_and(|l| items.len() >= l) {
            more = true;
            break;
        }
        items.push(o);
    }
    let remaining = if more { 1 + matching.count() } else { 0 };
    let continue_after = more.then(|| items.last().map(|o| o.key.as_str()).unwrap_or(""));
    Page {
        items,
        continue_after,
        remaining,
    }
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

/// Lists the collection.
///
/// # Errors
/// 400 for bad selectors or a bad continue token.
pub async fn list(ctx: &Ctx<'_>) -> Result<Response> {
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
    let page = paginate(&objects, start.as_deref(), limit, &selectors);
    let rv = rev.to_string();
    let mut list_meta = json!({"resourceVersion": rv});
    if let Some(last) = page.continue_after {
        list_meta["continue"] = json!(encode_continue(last, rev));
        list_meta["remainingItemCount"] = json!(page.remaining);
    }
    let values: Vec<&Value> = page.items.iter().map(|o| &o.value).collect();
    if let Some(mut t) = ctx.render.table(ctx.served, &values, &rv) {
        t["metadata"] = list_meta;
        return Ok(json_response(StatusCode::OK, &t));
    }
    let items: Vec<Value> = values
        .iter()
        .map(|v| Render::object(ctx.served, v))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", ctx.info.kind),
            "apiVersion": ctx.served.api_version(),
            "metadata": list_meta,
            "items": items,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue("/core/pods/default/b", 9);
        assert_eq!(decode_continue(&t).unwrap(), "/core/pods/default/b");
        assert_eq!(decode_continue("!!").unwrap_err().code, 400);
    }

    fn obj(key: &str, app: &str) -> Object {
        Object {
            key: key.into(),
            value: json!({"metadata": {"name": key, "labels": {"app": app}}}),
            revision: 1,
        }
    }

    #[test]
    fn pages_follow_the_start_key_and_count_the_rest() {
        let objects = vec![obj("a", "x"), obj("b", "y"), obj("c", "x"), obj("d", "x")];
        let all = Selectors::parse(None, None).unwrap();
        let page = paginate(&objects, None, Some(2), &all);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.continue_after, Some("b"));
        assert_eq!(page.remaining, 2);
        let next = paginate(&objects, Some("b"), Some(2), &all);
        assert_eq!(
            next.items
                .iter()
                .map(|o| o.key.as_str())
                .collect::<Vec<_>>(),
            ["c", "d"]
        );
        assert_eq!(next.continue_after, None);
        let x = Selectors::parse(Some("app=x"), None).unwrap();
        let page = paginate(&objects, None, None, &x);
        assert_eq!(page.items.len(), 3);
        assert_eq!(page.remaining, 0);
    }
}
