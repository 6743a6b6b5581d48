//! Services with their Endpoints.

use serde_json::Value;

use super::out::{metadata, s, selector_text, Out};

/// Renders a Service with its Endpoints.
pub fn describe_service(svc: &Value, endpoints: Option<&Value>) -> String {
    let mut o = Out::default();
    metadata(&mut o, svc, true);
    let spec = &svc["spec"];
    o.kv(0, "Selector", selector_text(&spec["selector"]));
    o.kv(0, "Type", spec["type"].as_str().unwrap_or("ClusterIP"));
    o.kv(0, "IP", s(&spec["clusterIP"]));
    let eps: Vec<String> = endpoints
        .and_then(|e| e["subsets"].as_array())
        .map(|subs| {
            subs.iter()
                .flat_map(|sub| {
                    let ports: Vec<String> = sub["ports"]
                        .as_array()
                        .map(|p| p.iter().map(|p| p["port"].to_string()).collect())
                        .unwrap_or_default();
                    sub["addresses"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .flat_map(move |a| {
                            let ip = s(&a["ip"]);
                            let ports = ports.clone();
                            if ports.is_empty() {
                                vec![ip]
                            } else {
                                ports.into_iter().map(|p| format!("{ip}:{p}")).collect()
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    for p in spec["ports"].as_array().cloned().unwrap_or_default() {
        let name = p["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or("<unset>");
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        o.kv(0, "Port", format!("{name}  {}/{proto}", p["port"]));
        o.kv(
            0,
            "TargetPort",
            format!(
                "{}/{proto}",
                s(if p["targetPort"].is_null() {
                    &p["port"]
                } else {
                    &p["targetPort"]
                })
            ),
        );
        if !p["nodePort"].is_null() {
            o.kv(0, "NodePort", format!("{name}  {}/{proto}", p["nodePort"]));
        }
        o.kv(
            0,
            "Endpoints",
            if eps.is_empty() {
                "<none>".into()
            } else {
                eps.join(",")
            },
        );
    }
    o.kv(
        0,
        "Session Affinity",
        spec["sessionAffinity"].as_str().unwrap_or("None"),
    );
    o.finish()
}
