//! The SelfSubjectRulesReview kind: its registry entry, protobuf table and OpenAPI schema.

use super::common::fields::T::*;
use super::common::fields::{a, f, F, OBJECT_META};
use super::info::ResourceInfo;
use super::strategy::Kind;

/// The `SelfSubjectRulesReview` strategy.
pub(crate) struct SelfSubjectRulesReview;

static INFO: ResourceInfo = ResourceInfo {
    group: "authorization.k8s.io",
    version: "v1",
    resource: "selfsubjectrulesreviews",
    singular: "selfsubjectrulesreview",
    kind: "SelfSubjectRulesReview",
    namespaced: false,
    short_names: &[],
    categories: &[],
    verbs: &["create"],
    subresources: &[],
};

impl Kind for SelfSubjectRulesReview {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(SELF_SUBJECT_RULES_REVIEW)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::authorization::v1::SelfSubjectRulesReview>()
    }
}

const SELF_SUBJECT_RULES_REVIEW_SPEC: &[F] = &[f(1, "namespace", Str)];

const SELF_SUBJECT_RULES_REVIEW: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    a(2, "spec", Msg(SELF_SUBJECT_RULES_REVIEW_SPEC)),
];
