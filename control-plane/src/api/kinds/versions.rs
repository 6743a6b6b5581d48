//! Kinds served at more than one version (kube-apiserver's "one storage version, conversion at the
//! edge"): the rows of every served version, and the conversions a request and its answer go
//! through. A kind with one version passes through unchanged.

use serde_json::Value;

use super::info::ResourceInfo;
use super::strategy::AltVersion;
use super::{by_resource, KINDS};

/// The registry rows of every served version: each kind's stored row, then its other versions.
pub(crate) fn served_infos() -> impl Iterator<Item = &'static ResourceInfo> {
    KINDS
        .iter()
        .flat_map(|k| std::iter::once(k.info()).chain(k.other_versions().iter().map(|v| &v.info)))
}

fn alt_of(served: &ResourceInfo) -> Option<&'static AltVersion> {
    by_resource(served.resource)?
        .other_versions()
        .iter()
        .find(|v| v.info.version == served.version)
}

/// The stored row of a kind, from the row of any version it is served at.
pub(crate) fn stored_of(served: &'static ResourceInfo) -> &'static ResourceInfo {
    by_resource(served.resource).map_or(served, |k| k.info())
}

/// The versions of a group, preferred (stored) first: `["v2", "v1"]` for `autoscaling`.
pub(crate) fn versions_of(group: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    let stored = KINDS.iter().map(|k| k.info());
    let alts = KINDS
        .iter()
        .flat_map(|k| k.other_versions().iter().map(|v| &v.info));
    for r in stored.chain(alts).filter(|r| r.group == group) {
        if !out.contains(&r.version) {
            out.push(r.version);
        }
    }
    out
}

/// A request's object as the stored version. The body's own `apiVersion` decides when it names
/// a version of the same group (as kube-apiserver's decoder does); otherwise the URL's.
///
/// # Errors
/// The conversion's message, for a 400.
pub(crate) fn to_stored(served: &'static ResourceInfo, obj: Value) -> Result<Value, String> {
    let stored = stored_of(served);
    let body_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|av| {
            served_infos().find(|r| r.resource == stored.resource && r.api_version() == av)
        });
    let from = body_version.unwrap_or(served);
    match alt_of(from) {
        Some(alt) => (alt.to_stored)(obj),
        None => Ok(obj),
    }
}

/// A stored object as the version a request was made at.
pub(crate) fn to_served(served: &ResourceInfo, obj: Value) -> Value {
    match alt_of(served) {
        Some(alt) => (alt.from_stored)(obj),
        None => obj,
    }
}

/// The OpenAPI schema of a served row: the stored kind's, or its other version's.
pub(crate) fn schema_of(
    served: &ResourceInfo,
    generator: &mut schemars::SchemaGenerator,
) -> Option<schemars::Schema> {
    if let Some(alt) = alt_of(served) {
        return Some((alt.schema)(generator));
    }
    let kind = by_resource(served.resource)?;
    (kind.info().version == served.version).then(|| kind.openapi_schema(generator))
}
