//! Compose's value syntaxes: names, lists, key-value lists, commands, durations, sizes, users and
//! healthchecks.

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Map, Value};

/// A Compose name that becomes a Kubernetes object name: a DNS-1123 label.
pub(super) fn check_name(what: &str, name: &str) -> Result<()> {
    if apimachinery::validation::dns1123_label(name).is_empty() {
        Ok(())
    } else {
        bail!(
            "{what} {name:?} is not valid: use at most 63 lowercase letters, digits and '-', starting and ending \
             with a letter or digit"
        )
    }
}

pub(super) fn str_of<'a>(v: Option<&'a Value>, what: &str) -> Result<Option<&'a str>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => bail!("{what} must be a string"),
    }
}

/// `m[key]` as a list; a missing key is an empty one.
pub(super) fn list_at<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Vec<&'a Value>> {
    m.get(key).map_or(Ok(Vec::new()), |v| list(v, key))
}

pub(super) fn list<'a>(v: &'a Value, what: &str) -> Result<Vec<&'a Value>> {
    match v {
        Value::Array(a) => Ok(a.iter().collect()),
        Value::Null => Ok(Vec::new()),
        _ => bail!("{what} must be a list"),
    }
}

/// An integer of at least `min` (0 or 1, which the message names non-negative or positive).
pub(super) fn int_at_least(v: &Value, min: i64, what: &str) -> Result<i64> {
    let kind = if min > 0 { "positive" } else { "non-negative" };
    v.as_i64()
        .filter(|n| *n >= min)
        .ok_or_else(|| anyhow!("{what} must be a {kind} integer"))
}

/// Numbers and strings as text (YAML gives `8080` and `"8080"` alike).
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `KEY=VALUE` lists and `KEY: VALUE` mappings; a key without a value gives `None`.
pub(super) fn key_values(v: &Value, what: &str) -> Result<Vec<(String, Option<String>)>> {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::Null => Ok((k.clone(), None)),
                v => scalar_text(v)
                    .map(|t| (k.clone(), Some(t)))
                    .ok_or_else(|| anyhow!("{what}.{k} must be a string, number or boolean")),
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|e| {
                let e = e
                    .as_str()
                    .ok_or_else(|| anyhow!("{what} entries must be KEY=VALUE strings"))?;
                Ok(match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (e.to_string(), None),
                })
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => bail!("{what} must be a list or a mapping"),
    }
}

/// A command as a list of words: lists as given, strings split like a POSIX shell splits them (quotes and
/// backslashes), which is what Compose does.
pub(super) fn words(v: &Value, what: &str) -> Result<Vec<String>> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|w| scalar_text(w).ok_or_else(|| anyhow!("{what} entries must be strings")))
            .collect(),
        Value::String(s) => split_words(s),
        _ => bail!("{what} must be a string or a list"),
    }
}

/// POSIX-shell word splitting without expansions.
pub fn split_words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => bail!("unterminated single quote in {s:?}"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => bail!("unterminated double quote in {s:?}"),
                        },
                        Some(c) => cur.push(c),
                        None => bail!("unterminated double quote in {s:?}"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => bail!("trailing backslash in {s:?}"),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Compose durations (`1m30s`, `10s`, `500ms`, or a number of seconds) as whole seconds, rounded up.
pub(super) fn seconds(v: &Value, what: &str) -> Result<i64> {
    let text = scalar_text(v).ok_or_else(|| anyhow!("{what} must be a duration"))?;
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    let d = humantime::parse_duration(&text)
        .map_err(|e| anyhow!("{what} {text:?} is not a duration: {e}"))?;
    Ok(d.as_millis().div_ceil(1000) as i64)
}

/// Compose memory sizes (`512m`, `1g`, `1024k`, `100b`, plain bytes) as Kubernetes quantities.
pub(super) fn memory_quantity(text: &str) -> Result<String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|s| !s.is_empty()).unwrap_or(&t);
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("memory {text:?} is not a size like 512m or 1g"))?;
    let suffix = match unit {
        "" => "",
        "k" => "Ki",
        "m" => "Mi",
        "g" => "Gi",
        _ => bail!("memory {text:?} is not a size like 512m or 1g"),
    };
    Ok(format!("{n}{suffix}"))
}

pub(super) fn user_context(v: &Value) -> Result<Value> {
    let text = scalar_text(v).ok_or_else(|| anyhow!("user must be a string"))?;
    let (u, g) = text
        .split_once(':')
        .map_or((text.as_str(), None), |(u, g)| (u, Some(g)));
    let num = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| anyhow!("user {text:?}: berth needs numeric ids (UID[:GID])"))
    };
    let mut ctx = json!({"runAsUser": num(u)?});
    if let Some(g) = g {
        ctx["runAsGroup"] = json!(num(g)?);
    }
    Ok(ctx)
}

/// A healthcheck as an exec probe; `None` when disabled.
pub(super) fn probe(h: &Value) -> Result<Option<Value>> {
    let m = h
        .as_object()
        .ok_or_else(|| anyhow!("healthcheck must be a mapping"))?;
    if m.get("disable").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let command = match m.get("test") {
        None => return Ok(None),
        Some(Value::String(s)) => vec!["/bin/sh".to_string(), "-c".into(), s.clone()],
        Some(Value::Array(a)) => {
            let w: Vec<String> = a.iter().filter_map(scalar_text).collect();
            match w.first().map(String::as_str) {
                Some("NONE") => return Ok(None),
                Some("CMD") => w[1..].to_vec(),
                Some("CMD-SHELL") => {
                    vec!["/bin/sh".to_string(), "-c".into(), w[1..].join(" ")]
                }
                _ => bail!("healthcheck test must start with CMD, CMD-SHELL or NONE"),
            }
        }
        Some(_) => bail!("healthcheck test must be a string or a list"),
    };
    if command.is_empty() {
        bail!("healthcheck test has no command");
    }
    let mut p = json!({"exec": {"command": command}});
    for (key, field) in [
        ("interval", "periodSeconds"),
        ("timeout", "timeoutSeconds"),
        ("start_period", "initialDelaySeconds"),
    ] {
        if let Some(v) = m.get(key) {
            p[field] = json!(seconds(v, &format!("healthcheck.{key}"))?.max(1));
        }
    }
    if let Some(r) = m.get("retries") {
        p["failureThreshold"] = json!(int_at_least(r, 1, "healthcheck.retries")?);
    }
    Ok(Some(p))
}

/// A Compose name as an object name: `_` becomes `-` (Compose allows it, Kubernetes names do not).
pub(super) fn object_name(name: &str) -> Result<String> {
    let n = name.replace('_', "-");
    check_name("name", &n)?;
    Ok(n)
}
