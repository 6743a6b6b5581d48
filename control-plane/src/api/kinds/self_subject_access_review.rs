//! The SelfSubjectAccessReview kind: its registry entry, protobuf table and OpenAPI schema.

use super::common::fields::T::*;
use super::common::fields::{a, f, p, F, OBJECT_META};
use super::info::ResourceInfo;
use super::strategy::Kind;

/// The `SelfSubjectAccessReview` strategy.
pub(crate) struct SelfSubjectAccessReview;

static INFO: ResourceInfo = ResourceInfo {
    group: "authorization.k8s.io",
    version: "v1",
    resource: "selfsubjectaccessreviews",
    singular: "selfsubjectaccessreview",
    kind: "SelfSubjectAccessReview",
    namespaced: false,
    short_names: &[],
    categories: &[],
    verbs: &["create"],
    subresources: &[],
};

impl Kind for SelfSubjectAccessReview {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(SELF_SUBJECT_ACCESS_REVIEW)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>()
    }
}

// authorization/v1
const RESOURCE_ATTRIBUTES: &[F] = &[
    f(1, "namespace", Str),
    f(2, "verb", Str),
    f(3, "group", Str),
    f(4, "version", Str),
    f(5, "resource", Str),
    f(6, "subresource", Str),
    f(7, "name", Str),
];

const NON_RESOURCE_ATTRIBUTES: &[F] = &[f(1, "path", Str), f(2, "verb", Str)];

const SELF_SUBJECT_ACCESS_REVIEW_SPEC: &[F] = &[
    p(1, "resourceAttributes", Msg(RESOURCE_ATTRIBUTES)),
    p(2, "nonResourceAttributes", Msg(NON_RESOURCE_ATTRIBUTES)),
];

const SELF_SUBJECT_ACCESS_REVIEW: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    a(2, "spec", Msg(SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
];
