//! Server-side `meta.k8s.io/v1 Table` responses and printing them the way kubectl does (tab-aligned columns,
//! upper-cased headers, priority>0 columns only with `-o wide`, a NAMESPACE column with `-A`).

use serde::Deserialize;
use serde_json::Value;

/// The `Accept` header that asks the API server for a Table (with a JSON fallback).
pub const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// One column of a Table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ColumnDefinition {
    /// Column title (`Name`, `Ready` ...).
    pub name: String,
    /// Data type hint.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// 0 = always shown, >0 = only with `-o wide`.
    #[serde(default)]
    pub priority: i32,
}

/// One row of a Table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TableRow {
    /// Cell values, one per column definition.
    #[serde(default)]
    pub cells: Vec<Value>,
    /// `PartialObjectMetadata` (or the full object) the row describes.
    #[serde(default)]
    pub object: Value,
}

/// A `meta.k8s.io/v1 Table`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// `kind`; `Table` when the server honoured the Accept header.
    #[serde(default)]
    pub kind: String,
    /// Columns; watch events after the first may omit them (null).
    #[serde(default)]
    pub column_definitions: Option<Vec<ColumnDefinition>>,
    /// Rows.
    #[serde(default)]
    pub rows: Vec<TableRow>,
    /// List metadata (the `resourceVersion` a watch starts from).
    #[serde(default)]
    pub metadata: Value,
}

impl Table {
    /// The Table's `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.metadata["resourceVersion"].as_str()
    }
}

/// How to print a table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PrintOptions {
    /// `-o wide`: include priority>0 columns.
    pub wide: bool,
    /// `-A`: prefix a NAMESPACE column from each row's object.
    pub with_namespace: bool,
    /// Print the header line.
    pub headers: bool,
    /// Prefix names with `kind.group/` (several types in one `get`).
    pub kind_prefix: Option<&'static str>,
}

/// Formats a cell like kubectl: strings verbatim, numbers and bools as text, null as `<none>`.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".to_string(),
        other => other.to_string(),
    }
}

/// Renders `table` to lines (no trailing newline on each). `columns` are the column definitions to use when
/// the table carries none (later watch events).
pub fn render(
    table: &Table,
    columns: &[ColumnDefinition],
    opts: &PrintOptions,
    kind_prefix: Option<&str>,
) -> Vec<String> {
    let cols = table.column_definitions.as_deref().unwrap_or(columns);
    let shown: Vec<usize> = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| opts.wide || c.priority == 0)
        .map(|(i, _)| i)
        .collect();
    let mut grid: Vec<Vec<String>> = Vec::new();
    if opts.headers {
        let mut h = Vec::new();
        if opts.with_namespace {
            h.push("NAMESPACE".to_string());
        }
        h.extend(shown.iter().map(|&i| cols[i].name.to_uppercase()));
        grid.push(h);
    }
    for row in &table.rows {
        let mut r = Vec::new();
        if opts.with_namespace {
            r.push(
                row.object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        for (n, &i) in shown.iter().enumerate() {
            let mut t = row.cells.get(i).map(cell_text).unwrap_or_default();
            if n == 0 {
                if let Some(p) = kind_prefix {
                    t = format!("{p}/{t}");
                }
            }
            r.push(t);
        }
        grid.push(r);
    }
    align(&grid)
}

/// Aligns cells the way kubectl's tabwriter does (min width 6, padding 3, last column unpadded).
pub fn align(grid: &[Vec<String>]) -> Vec<String> {
    let ncols = grid.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in grid {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    grid.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    let w = (widths[i] + 3).max(6);
                    line.push_str(c);
                    line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// Go's `text/tabwriter` (flags 0, pad char ' '), which kubectl's `describe` and `rollout history` use: cells
/// are separated by `\t`, a column is aligned over each run of consecutive lines that have a cell in it, and the
/// text after a line's last tab is not aligned.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    tab_format(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    out
}

fn tab_format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        tab_write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        tab_format(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    tab_write_lines(lines, line0, line1, widths, out);
}

fn tab_write_lines(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &[usize],
    out: &mut String,
) {
    for line in &lines[line0..line1] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j + 1 < line.len() {
                let w = widths.get(j).copied().unwrap_or(0);
                out.extend(std::iter::repeat_n(
                    ' ',
                    w.saturating_sub(cell.chars().count()),
                ));
            }
        }
        out.push('\n');
    }
}

/// kubectl's HumanDuration of a number of seconds (`-1` reads as `0s`, clock skew).
pub fn human_duration(secs: i64) -> String {
    apimachinery::duration::human_duration_nanos(i128::from(secs) * 1_000_000_000)
}

/// Age of an object from its `creationTimestamp`, relative to `now` (seconds since the epoch).
pub fn age(obj: &Value, now: i64) -> String {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(apimachinery::time::parse_rfc3339)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|t| human_duration(now - t.as_secs() as i64))
        .unwrap_or_else(|| "<unknown>".into())
}

/// A NAME/AGE table from a plain List response, for servers that do not serve Tables.
pub fn table_from_list(list: &Value, now: i64) -> Table {
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Table {
        kind: "Table".into(),
        column_definitions: Some(vec![
            ColumnDefinition {
                name: "Name".into(),
                type_: "string".into(),
                priority: 0,
            },
            ColumnDefinition {
                name: "Age".into(),
                type_: "string".into(),
                priority: 0,
            },
        ]),
        rows: items
            .iter()
            .map(|o| TableRow {
                cells: vec![o["metadata"]["name"].clone(), Value::String(age(o, now))],
                object: o.clone(),
            })
            .collect(),
        metadata: list["metadata"].clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Table {
        serde_json::from_value(json!({
            "kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"127"},
            "columnDefinitions":[{"name":"Name","type":"string","priority":0},{"name":"Ready","type":"string","priority":0},
              {"name":"Status","type":"string","priority":0},{"name":"Restarts","type":"integer","priority":0},
              {"name":"Age","type":"string","priority":0},{"name":"IP","type":"string","priority":1},{"name":"Node","type":"string","priority":1}],
            "rows":[
              {"cells":["web-7d9c5-abcde","1/1","Running",0,"3s","10.244.0.36","a1"],"object":{"metadata":{"name":"web-7d9c5-abcde","namespace":"default"}}},
              {"cells":["x","0/1","Pending",12,"10m",null,null],"object":{"metadata":{"name":"x","namespace":"kube-system"}}}
            ]}))
        .unwrap()
    }

    #[test]
    fn default_columns_like_kubectl() {
        let t = pods();
        let lines = render(
            &t,
            &[],
            &PrintOptions {
                headers: true,
                ..Default::default()
            },
            None,
        );
        assert_eq!(
            lines,
            [
                "NAME              READY   STATUS    RESTARTS   AGE",
                "web-7d9c5-abcde   1/1     Running   0          3s",
                "x                 0/1     Pending   12         10m",
            ]
        );
        assert_eq!(t.resource_version(), Some("127"));
    }

    #[test]
    fn wide_and_all_namespaces() {
        let t = pods();
        let o = PrintOptions {
            wide: true,
            with_namespace: true,
            headers: true,
            kind_prefix: None,
        };
        let lines = render(&t, &[], &o, None);
        assert_eq!(
            lines[0],
            "NAMESPACE     NAME              READY   STATUS    RESTARTS   AGE   IP            NODE"
        );
        assert_eq!(
            lines[1],
            "default       web-7d9c5-abcde   1/1     Running   0          3s    10.244.0.36   a1"
        );
        assert_eq!(lines[2], "kube-system   x                 0/1     Pending   12         10m   <none>        <none>");
    }

    #[test]
    fn watch_rows_reuse_columns_and_kind_prefix() {
        let first = pods();
        let cols = first.column_definitions.clone().unwrap();
        let mut later = pods();
        later.column_definitions = None;
        later.rows.truncate(1);
        let lines = render(&later, &cols, &PrintOptions::default(), Some("pod"));
        assert_eq!(lines, ["pod/web-7d9c5-abcde   1/1   Running   0     3s"]);
    }

    #[test]
    fn tabwriter_aligns_runs_of_lines() {
        let text = "Name:\tweb\nNamespace:\tdefault\nPod Template:\n  Labels:\tapp=web\n  Containers:\n   web:\n    Image:\tbusybox\n    Port:\t8080/TCP\nConditions:\n  Type\tStatus\tReason\n  ----\t------\t------\n  Available\tTrue\tMinimumReplicasAvailable\n";
        assert_eq!(
            tabwrite(text, 0, 2),
            "Name:       web\nNamespace:  default\nPod Template:\n  Labels:  app=web\n  Containers:\n   web:\n    Image:  busybox\n    Port:   8080/TCP\nConditions:\n  Type       Status  Reason\n  ----       ------  ------\n  Available  True    MinimumReplicasAvailable\n"
        );
    }

    #[test]
    fn human_durations() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (185, "3m5s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (400 * 86400, "400d"),
            (3 * 365 * 86400 + 20 * 86400, "3y20d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn list_fallback_has_name_and_age() {
        let list = json!({"kind":"PodList","metadata":{"resourceVersion":"9"},"items":[
            {"metadata":{"name":"a","creationTimestamp":"2024-01-01T00:00:00Z"}}]});
        let now = 1_704_067_200 + 30; // 2024-01-01T00:00:30Z
        let t = table_from_list(&list, now);
        let lines = render(
            &t,
            &[],
            &PrintOptions {
                headers: true,
                ..Default::default()
            },
            None,
        );
        assert_eq!(lines, ["NAME   AGE", "a      30s"]);
        assert_eq!(t.resource_version(), Some("9"));
    }
}
