//! HorizontalPodAutoscalers, in kubectl describe hpa's layout (autoscaling/v2, and v1's single CPU target).

use serde_json::Value;

use super::out::{conditions, metadata, s, Out};

/// `45% (45m)` from a current metric's `averageUtilization` and `averageValue`, or `<unknown>`.
fn current_utilization(current: &Value) -> String {
    match current["averageUtilization"].as_i64() {
        Some(p) => format!("{p}% ({})", s(&current["averageValue"])),
        None => "<unknown>".into(),
    }
}

/// One `Resource` or `ContainerResource` metric: `resource cpu on pods  (as a percentage of request):` and
/// its `current / target`.
fn resource_metric(o: &mut Out, source: &Value, current: &Value, container: Option<&str>) {
    let what = match container {
        Some(c) => format!(
            "resource {} of container \"{c}\" on pods",
            s(&source["name"])
        ),
        None => format!("resource {} on pods", s(&source["name"])),
    };
    let target = &source["target"];
    if !target["averageValue"].is_null() {
        let cur = current["current"]["averageValue"]
            .as_str()
            .unwrap_or("<unknown>");
        o.raw(format!("  {what}:\t{cur} / {}", s(&target["averageValue"])));
    } else {
        let want = target["averageUtilization"]
            .as_i64()
            .map_or("<auto>".to_string(), |p| format!("{p}%"));
        o.raw(format!(
            "  {what}  (as a percentage of request):\t{} / {want}",
            current_utilization(&current["current"])
        ));
    }
}

fn metrics(o: &mut Out, hpa: &Value) {
    o.kv(0, "Metrics", "( current / target )");
    let spec = &hpa["spec"];
    let st = &hpa["status"];
    if spec["metrics"].is_null() {
        // autoscaling/v1: one CPU target, and the current utilization without the average value.
        if let Some(t) = spec["targetCPUUtilizationPercentage"].as_i64() {
            let cur = st["currentCPUUtilizationPercentage"]
                .as_i64()
                .map_or("<unknown>".to_string(), |p| format!("{p}%"));
            o.raw(format!(
                "  resource cpu on pods  (as a percentage of request):\t{cur} / {t}%"
            ));
        }
        return;
    }
    let current = st["currentMetrics"].as_array().cloned().unwrap_or_default();
    for (i, m) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        let cur = current.get(i).cloned().unwrap_or(Value::Null);
        let ty = m["type"].as_str().unwrap_or_default();
        match ty {
            "Resource" => resource_metric(o, &m["resource"], &cur["resource"], None),
            "ContainerResource" => {
                let c = m["containerResource"]["container"]
                    .as_str()
                    .unwrap_or_default();
                resource_metric(
                    o,
                    &m["containerResource"],
                    &cur["containerResource"],
                    Some(c),
                );
            }
            "Pods" => {
                let p = &m["pods"];
                let now = cur["pods"]["current"]["averageValue"]
                    .as_str()
                    .unwrap_or("<unknown>");
                o.raw(format!(
                    "  \"{}\" on pods:\t{now} / {}",
                    s(&p["metric"]["name"]),
                    s(&p["target"]["averageValue"])
                ));
            }
            "Object" | "External" => {
                let (key, what) = if ty == "Object" {
                    let d = &m["object"]["describedObject"];
                    (
                        "object",
                        format!(
                            "\"{}\" on {}/{}",
                            s(&m["object"]["metric"]["name"]),
                            s(&d["kind"]),
                            s(&d["name"])
                        ),
                    )
                } else {
                    (
                        "external",
                        format!("\"{}\" (target value)", s(&m["external"]["metric"]["name"])),
                    )
                };
                let target = &m[key]["target"];
                let want = target["value"]
                    .as_str()
                    .or(target["averageValue"].as_str())
                    .unwrap_or("<unset>");
                let now = cur[key]["current"]["value"]
                    .as_str()
                    .or(cur[key]["current"]["averageValue"].as_str())
                    .unwrap_or("<unknown>");
                o.raw(format!("  {what}:\t{now} / {want}"));
            }
            other => o.raw(format!("  <unknown metric type \"{other}\">")),
        }
    }
}

fn direction(o: &mut Out, title: &str, rules: &Value) {
    if !rules.is_object() {
        return;
    }
    o.raw(format!("  {title}:"));
    if let Some(w) = rules["stabilizationWindowSeconds"].as_i64() {
        o.raw(format!("    Stabilization Window: {w} seconds"));
    }
    let policies = rules["policies"].as_array().filter(|p| !p.is_empty());
    if let Some(policies) = policies {
        let select = rules["selectPolicy"].as_str().unwrap_or("<unset>");
        o.raw(format!("    Select Policy: {select}"));
        o.raw("    Policies:");
        for p in policies {
            o.raw(format!(
                "      - Type: {}\tValue: {}\tPeriod: {} seconds",
                s(&p["type"]),
                s(&p["value"]),
                s(&p["periodSeconds"])
            ));
        }
    }
}

/// Renders a HorizontalPodAutoscaler: its target, metrics (current / target), bounds, behavior, the target's
/// current and desired pods, and conditions.
pub fn describe_hpa(hpa: &Value) -> String {
    let mut o = Out::default();
    metadata(&mut o, hpa, true);
    let spec = &hpa["spec"];
    let st = &hpa["status"];
    let target = &spec["scaleTargetRef"];
    o.kv(
        0,
        "Reference",
        format!("{}/{}", s(&target["kind"]), s(&target["name"])),
    );
    metrics(&mut o, hpa);
    let min = spec["minReplicas"]
        .as_i64()
        .map_or("<unset>".to_string(), |m| m.to_string());
    o.kv(0, "Min replicas", min);
    o.kv(0, "Max replicas", s(&spec["maxReplicas"]));
    if spec["behavior"].is_object() {
        o.head(0, "Behavior");
        direction(&mut o, "Scale Up", &spec["behavior"]["scaleUp"]);
        direction(&mut o, "Scale Down", &spec["behavior"]["scaleDown"]);
    }
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    o.kv(
        0,
        &format!("{} pods", s(&target["kind"])),
        format!(
            "{} current / {} desired",
            n(&st["currentReplicas"]),
            n(&st["desiredReplicas"])
        ),
    );
    conditions(
        &mut o,
        &st["conditions"],
        &[
            ("Type", "type"),
            ("Status", "status"),
            ("Reason", "reason"),
            ("Message", "message"),
        ],
    );
    o.finish()
}
