//! `get`: server-side Tables printed like kubectl, `-o yaml|json|name`, label selectors and `-w`.

use std::io::Write;

use anyhow::{bail, Result};
use futures::StreamExt;
use kube::core::WatchEvent;
use serde_json::Value;

use crate::kubeconfig::Session;
use crate::resources::{split_type_name, Catalog, ResourceInfo};
use crate::rest;
use crate::table::{self, PrintOptions, TABLE_ACCEPT};

/// `-o` formats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Output {
    /// The server's Table, priority-0 columns.
    #[default]
    Table,
    /// The Table with every column.
    Wide,
    /// YAML objects.
    Yaml,
    /// JSON objects.
    Json,
    /// `kind.group/name` lines.
    Name,
    /// `jsonpath=TEMPLATE` (see [`crate::jsonpath`]), checked when parsed.
    JsonPath(String),
}

impl std::str::FromStr for Output {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "wide" => Output::Wide,
            "yaml" => Output::Yaml,
            "json" => Output::Json,
            "name" => Output::Name,
            other => match other
                .strip_prefix("jsonpath=")
                .or_else(|| other.strip_prefix("jsonpath-as-json="))
            {
                Some(t) => {
                    // Parse now, so a bad template fails before any request, as kubectl's does.
                    crate::jsonpath::render(t, &Value::Null)
                        .map_err(|e| anyhow::anyhow!("error parsing jsonpath {t}: {e}"))?;
                    Output::JsonPath(t.to_string())
                }
                None => bail!(
                    "unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,jsonpath,name,wide,yaml"
                ),
            },
        })
    }
}

/// What to get.
#[derive(Debug, Clone, Default)]
pub struct GetRequest {
    /// Positional arguments: `TYPE[,TYPE] [NAME...]` or `TYPE/NAME...`.
    pub args: Vec<String>,
    /// Output format.
    pub output: Output,
    /// `-l` label selector.
    pub selector: Option<String>,
    /// `--field-selector`.
    pub field_selector: Option<String>,
    /// `-A`.
    pub all_namespaces: bool,
    /// `-w`.
    pub watch: bool,
}

/// One (type, names) pair to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Type as typed.
    pub kind: String,
    /// Object names; empty = list.
    pub names: Vec<String>,
}

/// Parses `get` arguments into targets: `pods`, `pods a b`, `deploy,svc`, `deploy/web svc/web`.
pub fn parse_targets(args: &[String]) -> Result<Vec<Target>> {
    let Some(first) = args.first() else {
        bail!("you must specify the type of resource to get");
    };
    if first.contains('/') {
        let mut out: Vec<Target> = Vec::new();
        for a in args {
            let (t, n) = split_type_name(a);
            let Some(n) = n else {
                bail!("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form");
            };
            match out.iter_mut().find(|x| x.kind == t) {
                Some(x) => x.names.push(n.to_string()),
                None => out.push(Target {
                    kind: t.to_string(),
                    names: vec![n.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    Ok(first
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|k| Target {
            kind: k.to_string(),
            names: names.clone(),
        })
        .collect())
}

/// The `all` category in kubectl's order, as far as the server serves it.
const ALL: &[&str] = &[
    "pods",
    "replicationcontrollers",
    "services",
    "daemonsets",
    "deployments",
    "replicasets",
    "statefulsets",
    "horizontalpodautoscalers",
    "cronjobs",
    "jobs",
];

/// Replaces a target `all` by one target per served member of the category.
fn expand_all(targets: Vec<Target>, catalog: &Catalog) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for t in targets {
        if t.kind != "all" {
            out.push(t);
            continue;
        }
        out.extend(
            ALL.iter()
                .filter(|r| catalog.resolve(r).is_ok())
                .map(|r| Target {
                    kind: r.to_string(),
                    names: t.names.clone(),
                }),
        );
    }
    Ok(out)
}

fn list_query(req: &GetRequest) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = &req.selector {
        q.push(("labelSelector", l.clone()));
    }
    if let Some(f) = &req.field_selector {
        q.push(("fieldSelector", f.clone()));
    }
    q
}

/// Fills `apiVersion`/`kind` into a list item (servers may omit them in lists).
pub fn with_type_meta(mut obj: Value, info: &ResourceInfo) -> Value {
    if obj["apiVersion"].is_null() {
        obj["apiVersion"] = Value::String(info.ar.api_version.clone());
    }
    if obj["kind"].is_null() {
        obj["kind"] = Value::String(info.ar.kind.clone());
    }
    obj
}

/// Prints objects as YAML/JSON: one object alone, several as a `v1 List`, as kubectl does.
pub fn print_objects(
    objs: Vec<Value>,
    single: bool,
    output: &Output,
    out: &mut dyn Write,
) -> Result<()> {
    let doc = if single && objs.len() == 1 {
        objs.into_iter().next().unwrap_or_default()
    } else {
        serde_json::json!({"apiVersion":"v1","kind":"List","items":objs,"metadata":{"resourceVersion":""}})
    };
    match output {
        Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?,
        // kubectl prints a template's output as it is, with no newline added.
        Output::JsonPath(t) => write!(out, "{}", crate::jsonpath::render(t, &doc)?)?,
        _ => write!(out, "{}", serde_yaml::to_string(&doc)?)?,
    }
    Ok(())
}

/// Runs `get`, writing to `out` (the "No resources found" notice goes to stderr, as with kubectl).
pub async fn get(
    session: &Session,
    catalog: &Catalog,
    req: &GetRequest,
    out: &mut dyn Write,
) -> Result<()> {
    let targets = expand_all(parse_targets(&req.args)?, catalog)?;
    let multi = targets.len() > 1 || req.args.first().is_some_and(|a| a.contains('/'));
    let ns = if req.all_namespaces {
        None
    } else {
        Some(session.namespace.as_str())
    };
    let mut objects = Vec::new();
    let mut single = false;
    let mut printed_any = false;
    let mut watch_state: Option<(ResourceInfo, String, Vec<table::ColumnDefinition>, bool)> = None;
    for (ti, t) in targets.iter().enumerate() {
        let info = catalog.resolve(&t.kind)?.clone();
        let with_ns = req.all_namespaces && info.namespaced;
        let prefix = multi.then(|| info.qualified_kind());
        match &req.output {
            Output::Table | Output::Wide => {
                let opts = PrintOptions {
                    wide: req.output == Output::Wide,
                    with_namespace: with_ns,
                    headers: true,
                    kind_prefix: None,
                };
                let mut tables = Vec::new();
                if t.names.is_empty() {
                    let uri = rest::with_query(&info.collection_path(ns), &list_query(req));
                    tables.push(rest::get_table(&session.client, &uri, rest::now_secs()).await?);
                } else {
                    for n in &t.names {
                        let uri = info.object_path(ns, n);
                        tables
                            .push(rest::get_table(&session.client, &uri, rest::now_secs()).await?);
                    }
                }
                let mut merged = tables.first().cloned().unwrap_or_default();
                for t in tables.iter().skip(1) {
                    merged.rows.extend(t.rows.iter().cloned());
                }
                if merged.rows.is_empty() {
                    if !req.watch {
                        continue;
                    }
                } else {
                    if printed_any && ti > 0 {
                        writeln!(out)?;
                    }
                    for line in table::render(&merged, &[], &opts, prefix.as_deref()) {
                        writeln!(out, "{line}")?;
                    }
                    printed_any = true;
                }
                if req.watch {
                    let cols = merged.column_definitions.clone().unwrap_or_default();
                    let rv = merged.resource_version().unwrap_or("0").to_string();
                    watch_state = Some((info.clone(), rv, cols, with_ns));
                }
            }
            Output::Yaml | Output::Json | Output::Name | Output::JsonPath(_) => {
                if t.names.is_empty() {
                    let uri = rest::with_query(&info.collection_path(ns), &list_query(req));
                    let list = rest::get(&session.client, &uri).await?;
                    for item in list["items"].as_array().cloned().unwrap_or_default() {
                        objects.push((info.clone(), with_type_meta(item, &info)));
                    }
                } else {
                    for n in &t.names {
                        let obj = rest::get(&session.client, &info.object_path(ns, n)).await?;
                        objects.push((info.clone(), with_type_meta(obj, &info)));
                    }
                    single = targets.len() == 1 && t.names.len() == 1;
                }
            }
        }
    }
    match &req.output {
        Output::Name => {
            for (info, o) in &objects {
                writeln!(
                    out,
                    "{}/{}",
                    info.qualified_kind(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                )?;
            }
        }
        Output::Yaml | Output::Json | Output::JsonPath(_) => {
            if !objects.is_empty() || !single {
                let objs = objects.into_iter().map(|(_, o)| o).collect();
                print_objects(objs, single, &req.output, out)?;
            }
        }
        _ => {
            if !printed_any && !req.watch {
                match ns {
                    Some(ns)
                        if targets
                            .iter()
                            .any(|t| catalog.resolve(&t.kind).is_ok_and(|i| i.namespaced)) =>
                    {
                        eprintln!("No resources found in {ns} namespace.")
                    }
                    _ => eprintln!("No resources found"),
                }
            }
        }
    }
    out.flush()?;
    if let Some((info, rv, cols, with_ns)) = watch_state {
        watch_rows(session, &info, ns, req, &rv, &cols, with_ns, out).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn watch_rows(
    session: &Session,
    info: &ResourceInfo,
    ns: Option<&str>,
    req: &GetRequest,
    rv: &str,
    cols: &[table::ColumnDefinition],
    with_ns: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut q = list_query(req);
    if req.args.len() > 1 || req.args.first().is_some_and(|a| a.contains('/')) {
        let names = parse_targets(&req.args)?;
        if let Some(n) = names.first().and_then(|t| t.names.first()) {
            q.push(("fieldSelector", format!("metadata.name={n}")));
        }
    }
    q.push(("watch", "true".into()));
    q.push(("resourceVersion", rv.to_string()));
    let uri = rest::with_query(&info.collection_path(ns), &q);
    let mut cols = cols.to_vec();
    let mut stream = rest::watch(&session.client, &uri, TABLE_ACCEPT).await?;
    let opts = PrintOptions {
        wide: req.output == Output::Wide,
        with_namespace: with_ns,
        headers: cols.is_empty(),
        kind_prefix: None,
    };
    while let Some(ev) = stream.next().await {
        let obj = match ev? {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => bail!("{}", e.message),
        };
        let t = rest::to_table(obj, rest::now_secs());
        if let Some(c) = &t.column_definitions {
            if !c.is_empty() && cols.is_empty() {
                cols = c.clone();
            }
        }
        for line in table::render(
            &t,
            &cols,
            &PrintOptions {
                headers: false,
                ..opts
            },
            None,
        ) {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_targets(&s(&["po"])).unwrap(),
            [Target {
                kind: "po".into(),
                names: vec![]
            }]
        );
        assert_eq!(
            parse_targets(&s(&["deploy,svc", "web"])).unwrap(),
            [
                Target {
                    kind: "deploy".into(),
                    names: s(&["web"])
                },
                Target {
                    kind: "svc".into(),
                    names: s(&["web"])
                }
            ]
        );
        assert_eq!(
            parse_targets(&s(&["deploy/a", "svc/b", "deploy/c"])).unwrap(),
            [
                Target {
                    kind: "deploy".into(),
                    names: s(&["a", "c"])
                },
                Target {
                    kind: "svc".into(),
                    names: s(&["b"])
                }
            ]
        );
        assert!(parse_targets(&[]).is_err());
        assert!(parse_targets(&s(&["deploy/a", "b"])).is_err());
    }

    #[test]
    fn output_formats() {
        assert_eq!("wide".parse::<Output>().unwrap(), Output::Wide);
        assert!("xml".parse::<Output>().is_err());
    }

    #[test]
    fn several_objects_print_as_a_list() {
        let mut buf = Vec::new();
        print_objects(
            vec![serde_json::json!({"a":1}), serde_json::json!({"b":2})],
            false,
            &Output::Yaml,
            &mut buf,
        )
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.starts_with("apiVersion: v1\nitems:\n- a: 1\n"),
            "{text}"
        );
        assert!(text.contains("kind: List"));
        let mut buf = Vec::new();
        print_objects(
            vec![serde_json::json!({"a":1})],
            true,
            &Output::Json,
            &mut buf,
        )
        .unwrap();
        assert_eq!(String::from_utf8(buf).unwrap(), "{\n  \"a\": 1\n}\n");
    }
}
