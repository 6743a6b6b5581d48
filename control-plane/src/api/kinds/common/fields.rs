//! Protobuf field tables: the table types and the messages every kind embeds (`ObjectMeta`,
//! `LabelSelector`, references, quantities, times), numbered as upstream `generated.proto`.

/// When a decoded field appears in the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Dropped when zero/empty (Go `omitempty` on a value field).
    OmitEmpty,
    /// Kept whenever it is on the wire, even if zero (Go pointer fields).
    Present,
    /// Kept whenever it is on the wire (Go fields without `omitempty`).
    Always,
}

/// How a field's bytes become JSON.
#[derive(Clone, Copy)]
pub(crate) enum T {
    Str,
    /// `bytes` rendered as base64, as Go's JSON does for `[]byte`.
    Bytes,
    Bool,
    I32,
    I64,
    Msg(&'static [F]),
    /// An embedded struct whose fields JSON inlines into the parent (`LocalObjectReference`).
    Inline(&'static [F]),
    MapStr,
    MapBytes,
    MapQuantity,
    IntOrString,
    Quantity,
    Time,
}

pub(crate) struct F {
    pub(crate) num: u32,
    pub(crate) name: &'static str,
    pub(crate) t: T,
    pub(crate) repeated: bool,
    pub(crate) emit: Emit,
}

use T::*;

pub(crate) const fn f(num: u32, name: &'static str, t: T) -> F {
    F {
        num,
        name,
        t,
        repeated: false,
        emit: Emit::OmitEmpty,
    }
}

pub(crate) const fn p(num: u32, name: &'static str, t: T) -> F {
    F {
        num,
        name,
        t,
        repeated: false,
        emit: Emit::Present,
    }
}

pub(crate) const fn a(num: u32, name: &'static str, t: T) -> F {
    F {
        num,
        name,
        t,
        repeated: false,
        emit: Emit::Always,
    }
}

pub(crate) const fn r(num: u32, name: &'static str, t: T) -> F {
    F {
        num,
        name,
        t,
        repeated: true,
        emit: Emit::OmitEmpty,
    }
}

impl F {
    pub(crate) const fn repeated(self) -> F {
        F {
            repeated: true,
            ..self
        }
    }
}

// k8s.io/apimachinery/pkg/runtime/generated.proto: Unknown{typeMeta 1 {apiVersion 1, kind 2}, raw 2,
// contentEncoding 3, contentType 4}.
pub(crate) const TYPE_META: &[F] = &[f(1, "apiVersion", Str), f(2, "kind", Str)];

pub(crate) const UNKNOWN: &[F] = &[
    f(1, "typeMeta", Inline(TYPE_META)),
    f(2, "raw", Bytes),
    f(3, "contentEncoding", Str),
    f(4, "contentType", Str),
];

// meta/v1
pub(crate) const OWNER_REFERENCE: &[F] = &[
    a(1, "kind", Str),
    a(3, "name", Str),
    a(4, "uid", Str),
    a(5, "apiVersion", Str),
    p(6, "controller", Bool),
    p(7, "blockOwnerDeletion", Bool),
];

pub(crate) const OBJECT_META: &[F] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(4, "selfLink", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", I64),
    f(8, "creationTimestamp", Time),
    p(9, "deletionTimestamp", Time),
    p(10, "deletionGracePeriodSeconds", I64),
    f(11, "labels", MapStr),
    f(12, "annotations", MapStr),
    r(13, "ownerReferences", Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Str),
];

pub(crate) const LABEL_SELECTOR_REQUIREMENT: &[F] =
    &[a(1, "key", Str), a(2, "operator", Str), r(3, "values", Str)];

pub(crate) const LABEL_SELECTOR: &[F] = &[
    f(1, "matchLabels", MapStr),
    r(2, "matchExpressions", Msg(LABEL_SELECTOR_REQUIREMENT)),
];

pub(crate) const LOCAL_OBJECT_REFERENCE: &[F] = &[f(1, "name", Str)];

pub(crate) const OBJECT_REFERENCE: &[F] = &[
    f(1, "kind", Str),
    f(2, "namespace", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    f(6, "resourceVersion", Str),
    f(7, "fieldPath", Str),
];

pub(crate) const INT_OR_STRING: &[F] =
    &[f(1, "type", I64), f(2, "intVal", I32), f(3, "strVal", Str)];

pub(crate) const QUANTITY: &[F] = &[f(1, "string", Str)];

pub(crate) const TIME: &[F] = &[f(1, "seconds", I64), f(2, "nanos", I32)];

pub(crate) const MAP_ENTRY: &[F] = &[f(1, "key", Str), f(2, "value", Bytes)];
