//! The Service kind: its registry entry, name rule, validation, table columns, protobuf table and
//! OpenAPI schema.

use std::collections::HashSet;
use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{
    arr, col, created_age, format_labels, i, name, or_none, s, strings, Col, Row, AGE, NAME,
};
use super::common::errs::{int_field, Errs};
use super::common::fields::T::*;
use super::common::fields::{a, f, p, r, F, OBJECT_META};
use super::common::names::{dns1035_label, dns1123_label, port_name, validate_labels};
use super::common::pod_spec::{validate_protocol, PORT_RANGE_MSG};
use super::info::{status, ResourceInfo};
use super::strategy::{Kind, NameRule};

/// The `Service` strategy.
pub(crate) struct Service;

static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    resource: "services",
    singular: "service",
    kind: "Service",
    namespaced: true,
    short_names: &["svc"],
    categories: &["all"],
    verbs: &[
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ],
    subresources: &[status("", "Service")],
};

impl Kind for Service {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn name_rule(&self) -> NameRule {
        dns1035_label
    }

    fn validate(&self, e: &mut Errs, object: &Value) {
        validate_service(e, object.get("spec").unwrap_or(&Value::Null));
    }

    fn columns(&self) -> &'static [Col] {
        SERVICE_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        service_row(object, now)
    }

    fn protobuf_fields(&self) -> Option<&'static [F]> {
        Some(SERVICE)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::core::v1::Service>()
    }
}

fn validate_service(e: &mut Errs, spec: &Value) {
    let svc_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !types.contains(&svc_type) {
        e.not_supported("spec.type", svc_type, &types);
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if svc_type == "ExternalName" {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            e.required("spec.externalName", "");
        }
    } else if ports.is_empty() && !headless {
        e.required("spec.ports", "");
    }
    let mut names = HashSet::new();
    let mut port_protos = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pb = format!("spec.ports[{i}]");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            e.required(&format!("{pb}.name"), "");
        } else if !name.is_empty() {
            for msg in dns1123_label(name) {
                e.invalid_str(&format!("{pb}.name"), name, &msg);
            }
            if !names.insert(name.to_string()) {
                e.duplicate(&format!("{pb}.name"), &Value::from(name));
            }
        }
        let port = int_field(p, "port").unwrap_or(0);
        if !(1..=65535).contains(&port) {
            e.invalid(&format!("{pb}.port"), &Value::from(port), PORT_RANGE_MSG);
        }
        validate_protocol(e, p, &pb);
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !port_protos.insert((port, proto.to_string())) {
            e.duplicate(&pb, &Value::String(format!("{port}/{proto}")));
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(-1);
                if !(1..=65535).contains(&n) {
                    e.invalid(&format!("{pb}.targetPort"), &Value::from(n), PORT_RANGE_MSG);
                }
            }
            Some(Value::String(s)) => {
                for msg in port_name(s) {
                    e.invalid_str(&format!("{pb}.targetPort"), s, &msg);
                }
            }
            _ => {}
        }
        if let Some(np) = int_field(p, "nodePort").filter(|n| *n != 0) {
            if svc_type == "ClusterIP" || svc_type == "ExternalName" {
                e.forbidden(
                    &format!("{pb}.nodePort"),
                    &format!("may not be used when `type` is '{svc_type}'"),
                );
            } else if !(30000..=32767).contains(&np) {
                e.invalid(
                    &format!("{pb}.nodePort"),
                    &Value::from(np),
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                );
            }
        }
    }
    validate_labels(e, spec.get("selector"), "spec.selector");
}

const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", 0, "type determines how the Service is exposed."),
    col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
    col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
    col("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
    AGE,
    col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
];

fn service_external_ip(svc: &Value) -> String {
    let external_ips = strings(arr(svc, "/spec/externalIPs"));
    match s(svc, "/spec/type") {
        "" | "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".into()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut all: Vec<String> = arr(svc, "/status/loadBalancer/ingress")
                .iter()
                .map(|ing| {
                    if s(ing, "/ip").is_empty() {
                        s(ing, "/hostname")
                    } else {
                        s(ing, "/ip")
                    }
                    .to_string()
                })
                .filter(|x| !x.is_empty())
                .collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn service_row(svc: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    let cluster_ip = arr(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(svc, "/spec/clusterIP"));
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            let np = i(p, "/nodePort");
            if np > 0 {
                format!("{}:{np}/{proto}", i(p, "/port"))
            } else {
                format!("{}/{proto}", i(p, "/port"))
            }
        })
        .collect();
    let svc_type = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let cells = vec![
        name(svc),
        Value::from(svc_type),
        Value::from(or_none(cluster_ip)),
        Value::from(service_external_ip(svc)),
        Value::from(or_none(&ports.join(","))),
        created_age(svc, now),
        Value::from(format_labels(svc.pointer("/spec/selector"))),
    ];
    (cells, None)
}

const SERVICE_PORT: &[F] = &[
    f(1, "name", Str),
    f(2, "protocol", Str),
    a(3, "port", I32),
    f(4, "targetPort", IntOrString),
    f(5, "nodePort", I32),
    p(6, "appProtocol", Str),
];

const CLIENT_IP_CONFIG: &[F] = &[p(1, "timeoutSeconds", I32)];

const SESSION_AFFINITY_CONFIG: &[F] = &[p(1, "clientIP", Msg(CLIENT_IP_CONFIG))];

const SERVICE_SPEC: &[F] = &[
    r(1, "ports", Msg(SERVICE_PORT)),
    f(2, "selector", MapStr),
    f(3, "clusterIP", Str),
    f(4, "type", Str),
    r(5, "externalIPs", Str),
    f(7, "sessionAffinity", Str),
    f(8, "loadBalancerIP", Str),
    r(9, "loadBalancerSourceRanges", Str),
    f(10, "externalName", Str),
    f(11, "externalTrafficPolicy", Str),
    f(12, "healthCheckNodePort", I32),
    f(13, "publishNotReadyAddresses", Bool),
    p(14, "sessionAffinityConfig", Msg(SESSION_AFFINITY_CONFIG)),
    p(17, "ipFamilyPolicy", Str),
    r(18, "clusterIPs", Str),
    r(19, "ipFamilies", Str),
    p(20, "allocateLoadBalancerNodePorts", Bool),
    p(21, "loadBalancerClass", Str),
    p(22, "internalTrafficPolicy", Str),
    p(23, "trafficDistribution", Str),
];

const SERVICE: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(SERVICE_SPEC)),
];
