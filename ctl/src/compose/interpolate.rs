//! Compose's `${VAR}` substitution.

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}` and
/// `$$` in every string of the document, as Compose does.
pub fn interpolate(doc: &Value, env: &dyn Fn(&str) -> Option<String>) -> Result<Value> {
    Ok(match doc {
        Value::String(s) => Value::String(interpolate_str(s, env)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| interpolate(v, env))
                .collect::<Result<_>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), interpolate(v, env)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

pub(super) fn interpolate_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| anyhow!("invalid interpolation format for {s:?}: missing '}}'"))?;
            let expr = &r[..end];
            rest = &r[end + 1..];
            let name_len = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_len);
            if name.is_empty() {
                bail!("invalid interpolation format for {s:?}: {expr:?} has no variable name");
            }
            let val = env(name);
            let set_nonempty = val.as_deref().is_some_and(|v| !v.is_empty());
            let text = match op {
                "" => val.unwrap_or_default(),
                _ if op.starts_with(":-") => {
                    if set_nonempty {
                        val.unwrap_or_default()
                    } else {
                        op[2..].to_string()
                    }
                }
                _ if op.starts_with('-') => val.unwrap_or_else(|| op[1..].to_string()),
                _ if op.starts_with(":?") => {
                    if !set_nonempty {
                        bail!("required variable {name} is missing a value: {}", &op[2..]);
                    }
                    val.unwrap_or_default()
                }
                _ if op.starts_with('?') => val.ok_or_else(|| {
                    anyhow!("required variable {name} is missing a value: {}", &op[1..])
                })?,
                _ => bail!("invalid interpolation format for {s:?}: {expr:?}"),
            };
            out.push_str(&text);
        } else {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if name_len == 0 {
                bail!("invalid interpolation format for {s:?}: a lone '$' (write $$ for a literal one)");
            }
            out.push_str(&env(&rest[..name_len]).unwrap_or_default());
            rest = &rest[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
