//! API request bodies and patches, through the functions the API server's handlers call.

use std::time::{Duration, UNIX_EPOCH};

use control_plane::api::handlers::{decode_object, PatchType};
use control_plane::api::meta::{self, CreateContext};
use control_plane::api::resources::{self, ResourceInfo};
use control_plane::api::status::ApiError;
use control_plane::api::{patch, validation};
use serde_json::Value;

/// An error the API server answers with must be a client error of one of the expected codes, and its
/// `Status` body must say so.
fn check_status(e: &ApiError, allowed: &[u16]) {
    assert!(
        allowed.contains(&e.code),
        "unexpected status {} ({}): {}",
        e.code,
        e.reason,
        e.message
    );
    let status = e.to_status();
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["code"], e.code, "{status}");
    assert!(!e.message.is_empty());
}

/// The registry entry the server would route the body's kind to (Pods for an unknown kind, as a
/// `POST .../pods` with a kind-less body).
fn info_for(obj: &Value) -> &'static ResourceInfo {
    obj.get("kind")
        .and_then(Value::as_str)
        .and_then(resources::by_kind)
        .or_else(|| resources::by_kind("Pod"))
        .expect("Pods are registered")
}

/// A fixed create context so a failing input replays exactly.
fn create_context() -> CreateContext {
    CreateContext {
        now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        uid: "00000000-0000-4000-8000-000000000000".into(),
        name_suffix: "bcdfg".into(),
    }
}

/// A create request: decode by content type, then prepare and validate as `create` does, then an
/// update of the stored object back to the body as `update` does.
///
/// Invariant: never panics; every refusal is a 400, 415 or 422 `Status`; what would be stored
/// serialises.
pub fn body(content_type: &str, bytes: &[u8]) {
    let obj = match decode_object(content_type, bytes) {
        Ok(v) => v,
        Err(e) => return check_status(&e, &[400, 415]),
    };
    assert!(obj.is_object(), "decode_object returned a non-object");
    let info = info_for(&obj);
    let mut created = obj.clone();
    let ns = info.namespaced.then_some("default");
    if let Err(e) = meta::prepare_create(info, &mut created, ns, &create_context()) {
        return check_status(&e, &[400, 422]);
    }
    let causes = validation::validate(info.resource, &created);
    for c in &causes {
        assert!(!c.to_line().is_empty());
    }
    serde_json::to_vec(&created).expect("a prepared object serialises");
    let mut updated = obj;
    meta::prepare_update(info, &created, &mut updated);
    let _ = validation::validate_update(info.resource, &created, &updated);
    serde_json::to_vec(&updated).expect("an updated object serialises");
}

/// A JSON body (`kubectl create -f x.json`, client libraries).
pub fn json_body(bytes: &[u8]) {
    body("application/json", bytes);
}

/// A YAML body.
pub fn yaml_body(bytes: &[u8]) {
    body("application/yaml", bytes);
}

/// A Kubernetes protobuf body (`k8s\0` + `runtime.Unknown`), as `kubectl create job` sends.
pub fn protobuf_body(bytes: &[u8]) {
    body("application/vnd.kubernetes.protobuf", bytes);
}

/// A patch: the first byte picks the type (JSON, merge, strategic, apply); the rest is
/// `live-object-json 0xff patch-body`.
///
/// Invariant: never panics; a malformed body is a 400, a patch that does not apply a 422; a merge
/// patch is idempotent (RFC 7386); the patched object serialises.
pub fn patch(input: &[u8]) {
    let Some((&selector, rest)) = input.split_first() else {
        return;
    };
    let ptype = match selector % 4 {
        0 => PatchType::Json,
        1 => PatchType::Merge,
        2 => PatchType::Strategic,
        _ => PatchType::Apply,
    };
    let (live, body) = crate::split2(rest);
    // The store only ever holds objects.
    let Ok(live @ Value::Object(_)) = serde_json::from_slice::<Value>(live) else {
        return;
    };
    let kind = info_for(&live).kind;
    let patch_body = match ptype.parse_body(body) {
        Ok(p) => p,
        Err(e) => return check_status(&e, &[400]),
    };
    if ptype == PatchType::Apply {
        // Server-side apply onto nothing creates the object.
        let _ = patch::apply_patch(None, &patch_body, kind);
    }
    let mut target = live.clone();
    if let Err(e) = ptype.apply(&mut target, &patch_body, kind) {
        return check_status(&e, &[422]);
    }
    serde_json::to_vec(&target).expect("a patched object serialises");
    if ptype == PatchType::Merge {
        let mut again = target.clone();
        ptype
            .apply(&mut again, &patch_body, kind)
            .expect("a merge patch that applied once applies again");
        assert_eq!(again, target, "merge patch is not idempotent");
    }
}
