//! The Endpoints kind: its registry entry, table columns and OpenAPI schema.

use std::time::SystemTime;

use serde_json::Value;

use super::common::columns::{arr, col, created_age, i, name, s, Col, Row, AGE, NAME};
use super::info::{ResourceInfo, ALL_VERBS};
use super::strategy::Kind;

/// The `Endpoints` strategy.
pub(crate) struct Endpoints;

static INFO: ResourceInfo = ResourceInfo {
    group: "",
    version: "v1",
    resource: "endpoints",
    singular: "endpoints",
    kind: "Endpoints",
    namespaced: true,
    short_names: &["ep"],
    categories: &[],
    verbs: ALL_VERBS,
    subresources: &[],
};

impl Kind for Endpoints {
    fn info(&self) -> &'static ResourceInfo {
        &INFO
    }

    fn columns(&self) -> &'static [Col] {
        ENDPOINTS_COLUMNS
    }

    fn row(&self, object: &Value, now: SystemTime) -> Row {
        endpoints_row(object, now)
    }

    fn openapi_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<k8s_openapi::api::core::v1::Endpoints>()
    }
}

const ENDPOINTS_COLUMNS: &[Col] = &[
    NAME,
    col("Endpoints", "string", 0, "Endpoints of the service"),
    AGE,
];

fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

fn endpoints_row(ep: &Value, now: SystemTime) -> (Vec<Value>, Option<Value>) {
    const MAX: usize = 3;
    let subsets = arr(ep, "/subsets");
    let text = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let mut list = Vec::new();
        let mut count = 0;
        let mut more = false;
        for ss in subsets {
            let addrs = arr(ss, "/addresses");
            let ports = arr(ss, "/ports");
            if ports.is_empty() {
                count += addrs.len();
                for a in addrs {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(s(a, "/ip").to_string());
                }
                continue;
            }
            for p in ports {
                count += addrs.len();
                for a in addrs {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(join_host_port(s(a, "/ip"), i(p, "/port")));
                }
            }
        }
        if more {
            format!("{} + {} more...", list.join(","), count - MAX)
        } else {
            list.join(",")
        }
    };
    (
        vec![name(ep), Value::from(text), created_age(ep, now)],
        None,
    )
}
