//! The text writer every section uses, and the sections all kinds share (metadata, conditions,
//! events).

use apimachinery::labels::{string_map, LabelSelector};
use serde_json::Value;

use crate::table::{age, tabwrite};

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(x) if x.is_empty() => "<none>".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

/// Collects tab-separated lines, rendered with Go-tabwriter alignment at the end.
#[derive(Default)]
pub(super) struct Out(String);

impl Out {
    pub(super) fn kv(&mut self, indent: usize, key: &str, value: impl AsRef<str>) {
        self.0.push_str(&format!(
            "{}{key}:\t{}\n",
            " ".repeat(indent),
            value.as_ref()
        ));
    }
    pub(super) fn head(&mut self, indent: usize, key: &str) {
        self.0.push_str(&format!("{}{key}:\n", " ".repeat(indent),));
    }
    pub(super) fn raw(&mut self, line: impl AsRef<str>) {
        self.0.push_str(line.as_ref());
        self.0.push('\n');
    }
    /// A map as `k=v` lines (labels) or `k: v` (annotations), first on the key's line.
    pub(super) fn map(&mut self, indent: usize, key: &str, m: &Value, sep: &str) {
        let entries: Vec<String> = m
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| format!("{k}{sep}{}", v.as_str().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default();
        if entries.is_empty() {
            self.kv(indent, key, "<none>");
            return;
        }
        self.kv(indent, key, &entries[0]);
        for e in &entries[1..] {
            self.raw(format!("{}\t{e}", " ".repeat(indent)));
        }
    }
    pub(super) fn finish(self) -> String {
        tabwrite(&self.0, 0, 2)
    }
}

pub(super) fn timestamp(v: &Value) -> String {
    v.as_str()
        .and_then(apimachinery::time::parse_rfc3339)
        .map(apimachinery::time::rfc3339)
        .unwrap_or_else(|| s(v))
}

pub(super) fn metadata(o: &mut Out, obj: &Value, namespaced: bool) {
    let m = &obj["metadata"];
    o.kv(0, "Name", s(&m["name"]));
    if namespaced {
        o.kv(0, "Namespace", s(&m["namespace"]));
    }
    o.map(0, "Labels", &m["labels"], "=");
    o.map(0, "Annotations", &m["annotations"], ": ");
    o.kv(0, "CreationTimestamp", timestamp(&m["creationTimestamp"]));
}

/// A workload's `matchLabels`, or a Service's plain label map, in selector syntax.
pub(super) fn selector_text(sel: &Value) -> String {
    let m = if sel["matchLabels"].is_object() {
        &sel["matchLabels"]
    } else {
        sel
    };
    let text = LabelSelector::from_map(&string_map(Some(m))).to_string();
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

pub(super) fn conditions(o: &mut Out, conds: &Value, cols: &[(&str, &str)]) {
    let Some(list) = conds.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    o.head(0, "Conditions");
    o.raw(format!(
        "  {}",
        cols.iter().map(|c| c.0).collect::<Vec<_>>().join("\t")
    ));
    o.raw(format!(
        "  {}",
        cols.iter()
            .map(|c| "-".repeat(c.0.len()))
            .collect::<Vec<_>>()
            .join("\t")
    ));
    for c in list {
        o.raw(format!(
            "  {}",
            cols.iter()
                .map(|(_, f)| s(&c[*f]))
                .collect::<Vec<_>>()
                .join("\t")
        ));
    }
}

/// Renders any other object: metadata, then its other top-level fields as YAML.
pub fn describe_generic(obj: &Value, namespaced: bool) -> String {
    let mut o = Out::default();
    metadata(&mut o, obj, namespaced);
    let mut text = o.finish();
    if let Some(m) = obj.as_object() {
        for (k, v) in m {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            let mut title = k.clone();
            if let Some(f) = title.get_mut(0..1) {
                f.make_ascii_uppercase();
            }
            text.push_str(&format!("{title}:\n"));
            let yaml = serde_yaml::to_string(v).unwrap_or_default();
            for l in yaml.lines() {
                text.push_str(&format!("  {l}\n"));
            }
        }
    }
    text
}

/// Renders the Events section like kubectl (`Events:  <none>` when there are none).
pub fn events_section(events: &[Value], now: i64) -> String {
    if events.is_empty() {
        return "Events:  <none>\n".into();
    }
    let mut evs = events.to_vec();
    let when = |e: &Value| -> String {
        e["lastTimestamp"]
            .as_str()
            .or(e["eventTime"].as_str())
            .or(e["firstTimestamp"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    evs.sort_by_key(|e| when(e));
    let mut t =
        String::from("  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n");
    for e in &evs {
        let at = serde_json::json!({"metadata": {"creationTimestamp": when(e)}});
        let mut a = age(&at, now);
        let count = e["count"].as_i64().unwrap_or(1);
        if count > 1 {
            if let Some(first) = e["firstTimestamp"].as_str() {
                let f = serde_json::json!({"metadata": {"creationTimestamp": first}});
                a = format!("{a} (x{count} over {})", age(&f, now));
            }
        }
        let from = e["source"]["component"]
            .as_str()
            .or(e["reportingComponent"].as_str())
            .unwrap_or_default();
        t.push_str(&format!(
            "  {}\t{}\t{a}\t{from}\t{}\n",
            s(&e["type"]),
            s(&e["reason"]),
            e["message"].as_str().unwrap_or_default().trim()
        ));
    }
    format!("Events:\n{}", tabwrite(&t, 0, 2))
}
