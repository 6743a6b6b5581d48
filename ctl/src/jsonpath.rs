//! kubectl's JSONPath templates for `-o jsonpath=TEMPLATE`: literal text with `{...}` expressions. An expression
//! is a path (`.a.b`, `['k']`, `[0]`, `[-1]`, `[*]`, `..name`, `[?(@.type=="Ready")]`, `\.` inside a key), a
//! quoted string (`{"\n"}`), or `range PATH` ... `end`, which runs its body with `@` (and relative paths) on each
//! result. Several results of one expression are joined by spaces; missing keys print nothing, as with kubectl's
//! default `--allow-missing-template-keys`.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `$`: the whole document, also inside `range`.
    Root,
    Field(String),
    Recursive(String),
    Index(i64),
    All,
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Vec<Step>,
    /// `None`: the path exists.
    test: Option<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// Renders `template` over `data`.
///
/// # Errors
/// The template does not parse (unbalanced braces, `range` without `end`, a bad path).
pub fn render(template: &str, data: &Value) -> Result<String> {
    let nodes = parse(template)?;
    let mut out = String::new();
    run(&nodes, data, data, &mut out);
    Ok(out)
}

fn parse(template: &str) -> Result<Vec<Node>> {
    // A stack of open `range` blocks; the bottom is the template itself.
    let mut stack: Vec<(Option<Vec<Step>>, Vec<Node>)> = vec![(None, Vec::new())];
    let mut rest = template;
    while !rest.is_empty() {
        let Some(open) = rest.find('{') else {
            push_text(&mut stack, rest);
            break;
        };
        push_text(&mut stack, &rest[..open]);
        let close = closing_brace(&rest[open..])
            .ok_or_else(|| anyhow!("unclosed action in template {template:?}"))?;
        let expr = rest[open + 1..open + close].trim();
        rest = &rest[open + close + 1..];
        if let Some(path) = expr.strip_prefix("range ") {
            stack.push((Some(parse_path(path.trim())?), Vec::new()));
        } else if expr == "end" {
            let (path, body) = stack.pop().expect("the template level is never popped");
            let path = path.ok_or_else(|| anyhow!("{{end}} without {{range}} in {template:?}"))?;
            stack
                .last_mut()
                .ok_or_else(|| anyhow!("{{end}} without {{range}} in {template:?}"))?
                .1
                .push(Node::Range(path, body));
        } else if let Some(lit) = string_literal(expr)? {
            push_text(&mut stack, &lit);
        } else {
            let path = parse_path(expr)?;
            stack
                .last_mut()
                .expect("non-empty")
                .1
                .push(Node::Path(path));
        }
    }
    if stack.len() != 1 {
        bail!("{{range}} without {{end}} in {template:?}");
    }
    Ok(stack.pop().expect("one level").1)
}

fn push_text(stack: &mut [(Option<Vec<Step>>, Vec<Node>)], text: &str) {
    if !text.is_empty() {
        stack
            .last_mut()
            .expect("non-empty")
            .1
            .push(Node::Text(text.to_string()));
    }
}

/// Offset of the `}` that closes the `{` at the start of `s`, skipping quoted text.
fn closing_brace(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            _ if escaped => escaped = false,
            (_, '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

/// `"..."` or `'...'` with `\n`, `\t`, `\\` and escaped quotes.
fn string_literal(expr: &str) -> Result<Option<String>> {
    let Some(q) = expr.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(None);
    };
    if expr.len() < 2 || !expr.ends_with(q) {
        bail!("unterminated string {expr}");
    }
    let mut out = String::new();
    let mut chars = expr[1..expr.len() - 1].chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Ok(Some(out))
}

fn parse_path(expr: &str) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let s: Vec<char> = expr.chars().collect();
    let mut i = 0;
    match s.first() {
        Some('$') => {
            steps.push(Step::Root);
            i = 1;
        }
        Some('@') => i = 1,
        _ => {}
    }
    while i < s.len() {
        match s[i] {
            '.' => {
                let recursive = s.get(i + 1) == Some(&'.');
                i += if recursive { 2 } else { 1 };
                let mut name = String::new();
                while i < s.len() && s[i] != '.' && s[i] != '[' {
                    if s[i] == '\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    name.push(s[i]);
                    i += 1;
                }
                if !name.is_empty() {
                    steps.push(if recursive {
                        Step::Recursive(name)
                    } else {
                        Step::Field(name)
                    });
                }
            }
            '[' => {
                let end =
                    bracket_end(&s, i).ok_or_else(|| anyhow!("unterminated [ in {expr:?}"))?;
                let inner: String = s[i + 1..end].iter().collect();
                steps.push(bracket_step(inner.trim(), expr)?);
                i = end + 1;
            }
            c => bail!("unexpected {c:?} in path {expr:?}"),
        }
    }
    Ok(steps)
}

fn bracket_end(s: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote = None;
    for (i, c) in s.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(*c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn bracket_step(inner: &str, expr: &str) -> Result<Step> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Some(lit) = string_literal(inner)? {
        return Ok(Step::Field(lit));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Ok(Step::Index(n));
    }
    let Some(f) = inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) else {
        bail!("unsupported [{inner}] in {expr:?}");
    };
    let f = f.trim();
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some((lhs, rhs)) = f.split_once(op) {
            let rhs = rhs.trim();
            let value = match string_literal(rhs)? {
                Some(s) => Value::String(s),
                None => serde_json::from_str(rhs)
                    .map_err(|_| anyhow!("bad value {rhs} in filter of {expr:?}"))?,
            };
            return Ok(Step::Filter(Filter {
                path: parse_path(lhs.trim())?,
                test: Some((op.to_string(), value)),
            }));
        }
    }
    Ok(Step::Filter(Filter {
        path: parse_path(f)?,
        test: None,
    }))
}

fn eval<'a>(steps: &[Step], root: &'a Value, current: &'a Value) -> Vec<&'a Value> {
    let mut vals = vec![current];
    for step in steps {
        let mut next = Vec::new();
        for v in vals {
            match step {
                Step::Root => next.push(root),
                Step::Field(name) => next.extend(v.get(name.as_str())),
                Step::Recursive(name) => collect_recursive(v, name, &mut next),
                Step::Index(n) => {
                    if let Some(a) = v.as_array() {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(f) => {
                    for item in v.as_array().into_iter().flatten() {
                        if filter_matches(f, item) {
                            next.push(item);
                        }
                    }
                }
            }
        }
        vals = next;
    }
    vals
}

fn collect_recursive<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            if let Some(x) = m.get(name) {
                out.push(x);
            }
            for c in m.values() {
                collect_recursive(c, name, out);
            }
        }
        Value::Array(a) => {
            for c in a {
                collect_recursive(c, name, out);
            }
        }
        _ => {}
    }
}

fn filter_matches(f: &Filter, item: &Value) -> bool {
    let found = eval(&f.path, item, item);
    let Some((op, want)) = &f.test else {
        return !found.is_empty();
    };
    found.iter().any(|got| match (op.as_str(), got, want) {
        ("==", g, w) => *g == w,
        ("!=", g, w) => *g != w,
        (op, Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap_or(0.0), w.as_f64().unwrap_or(0.0));
            match op {
                "<" => g < w,
                ">" => g > w,
                "<=" => g <= w,
                _ => g >= w,
            }
        }
        _ => false,
    })
}

fn run(nodes: &[Node], root: &Value, current: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let vals = eval(p, root, current);
                let texts: Vec<String> = vals.into_iter().map(text).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(p, body) => {
                let vals = eval(p, root, current);
                // `range .items` walks the list itself, as `range .items[*]` does.
                let items: Vec<&Value> = match vals.as_slice() {
                    [Value::Array(a)] => a.iter().collect(),
                    _ => vals,
                };
                for item in items {
                    run(body, root, item, out);
                }
            }
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "annotations": {"deployment.kubernetes.io/revision": "3"}},
             "status": {"phase": "Running", "podIP": "10.244.1.2",
                        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]},
             "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}},
            {"metadata": {"name": "b"},
             "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
             "spec": {"containers": [{"name": "c"}, {"name": "d"}]}},
        ]})
    }

    #[test]
    fn kubectl_examples() {
        let d = pods();
        for (t, want) in [
            ("{.items[*].metadata.name}", "a b"),
            ("{.items[0].metadata.name}", "a"),
            ("{.items[-1].metadata.name}", "b"),
            ("{$.kind}", "List"),
            ("{.items[*].spec.containers[*].name}", "c c d"),
            (
                "{range .items[*]}{.metadata.name}{\"\\t\"}{.status.phase}{\"\\n\"}{end}",
                "a\tRunning\nb\tPending\n",
            ),
            (
                "{range .items[*]}{.metadata.name}:{.status.conditions[?(@.type==\"Ready\")].status} {end}",
                "a:True b:False ",
            ),
            (
                "{.items[0].metadata.annotations.deployment\\.kubernetes\\.io/revision}",
                "3",
            ),
            ("{.items[0].metadata.annotations['deployment.kubernetes.io/revision']}", "3"),
            ("{..podIP}", "10.244.1.2"),
            ("{.items[?(@.status.podIP)].metadata.name}", "a"),
            ("{.items[0].spec.containers[0].ports[?(@.containerPort>79)].containerPort}", "80"),
            ("{.items[0].spec.containers[0].ports}", "[{\"containerPort\":80}]"),
            ("names: {.nope} {.items[5].x}!", "names:  !"),
            ("{range .items}{.metadata.name},{end}", "a,b,"),
            ("{range .items[*]}{$.kind}/{.metadata.name} {end}", "List/a List/b "),
            ("{'x'}{\"}\"}", "x}"),
        ] {
            assert_eq!(render(t, &d).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn bad_templates_are_errors() {
        for t in [
            "{.a",
            "{range .items[*]}x",
            "x{end}",
            "{.items[?(@.a==)]}",
            "{.items[abc]}",
        ] {
            assert!(render(t, &pods()).is_err(), "{t}");
        }
    }
}
