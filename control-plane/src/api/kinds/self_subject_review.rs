//! The SelfSubjectReview kind: its registry entry, protobuf table and OpenAPI schema.

use super::common::fields::T::*;
use super::common::fields::{f, F, OBJECT_META};
use super::info::ResourceInfo;
use super::strategy::Kind;

/// The `SelfSubjectReview` strategy.
pub(crate) struct SelfSubjectReview;

static INFO: ResourceInfo = ResourceInfo {
    group: "authentication.k8s.io",
    version: "v1",
    resource: "selfsubjectreviews",
    singular: "selfsubjectreview",
    kind: "SelfSubjectReview",
    namespaced: false,
    short_names: &[],
    categories: &[],
    verbs: &["create"],
    subresources: &[],
};

impl Kind for SelfSubjectReview {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(SELF_SUBJECT_REVIEW)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::authentication::v1::SelfSubjectReview>()
    }
}

const SELF_SUBJECT_REVIEW: &[F] = &[f(1, "metadata", Msg(OBJECT_META))];
