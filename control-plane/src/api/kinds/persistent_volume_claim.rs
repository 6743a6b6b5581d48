//! The PersistentVolumeClaim kind: its registry entry, table columns and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{arr, col, created_age, name, s, Col, Row, AGE, NAME};
use super::info::{status, ResourceInfo, ALL_VERBS};
use super::strategy::Kind;

/// The `PersistentVolumeClaim` strategy.
pub(crate) struct PersistentVolumeClaim;

static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    resource: "persistentvolumeclaims",
    singular: "persistentvolumeclaim",
    kind: "PersistentVolumeClaim",
    namespaced: true,
    short_names: &["pvc"],
    categories: &[],
    verbs: ALL_VERBS,
    subresources: &[status("", "PersistentVolumeClaim")],
};

impl Kind for PersistentVolumeClaim {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn columns(&self) -> &'static [Col] {
        PVC_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        pvc_row(object, now)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::core::v1::PersistentVolumeClaim>()
    }
}

const PVC_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", 0, "phase represents the current phase of PersistentVolumeClaim."),
    col("Volume", "string", 0, "volumeName is the binding reference to the PersistentVolume backing this claim."),
    col("Capacity", "string", 0, "capacity represents the actual resources of the underlying volume."),
    col("Access Modes", "string", 0, "accessModes contains the actual access modes the volume backing the PVC has."),
    col("StorageClass", "string", 0, "storageClassName is the name of the StorageClass required by the claim."),
    col("VolumeAttributesClass", "string", 0, "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim."),
    AGE,
    col("VolumeMode", "string", 1, "volumeMode defines what type of volume is required by the claim."),
];

fn pvc_row(pvc: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let deleting = pvc
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let phase = if deleting {
        "Terminating"
    } else {
        s(pvc, "/status/phase")
    };
    let volume = s(pvc, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        let modes: Vec<&str> = arr(pvc, "/status/accessModes")
            .iter()
            .filter_map(Value::as_str)
            .map(|m| match m {
                "ReadWriteOnce" => "RWO",
                "ReadOnlyMany" => "ROX",
                "ReadWriteMany" => "RWX",
                "ReadWriteOncePod" => "RWOP",
                other => other,
            })
            .collect();
        (
            s(pvc, "/status/capacity/storage").to_string(),
            modes.join(","),
        )
    };
    let class = pvc
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .or_else(|| {
            pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .and_then(Value::as_str)
        })
        .unwrap_or("");
    let unset = |p: &str| {
        let v = s(pvc, p);
        if v.is_empty() {
            "<unset>".to_string()
        } else {
            v.to_string()
        }
    };
    let cells = vec![
        name(pvc),
        Value::from(phase),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        Value::from(class),
        Value::from(unset("/spec/volumeAttributesClassName")),
        created_age(pvc, now),
        Value::from(unset("/spec/volumeMode")),
    ];
    (cells, None)
}
