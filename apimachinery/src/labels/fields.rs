//! Field selectors: `metadata.name=web,status.phase!=Running`.

use std::fmt;

use serde_json::Value;

/// One `field=value` / `field!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted path into the object (`spec.nodeName`).
    pub field: String,
    /// True for `!=`.
    pub negate: bool,
    /// The compared value; a missing field compares as `""`.
    pub value: String,
}

/// A parsed field selector: every term must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    pub(crate) terms: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The terms of the selector.
    pub fn terms(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// Parses a `fieldSelector` query string (`metadata.name=web,status.phase!=Running`); `\,` `\=` `\!`
    /// and `\\` escape the special characters inside values.
    ///
    /// # Errors
    /// A term without an operator (`invalid selector: 'x'; can't understand 'x'`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for raw in split_unescaped(s) {
            if raw.trim().is_empty() {
                continue;
            }
            let (field, negate, value) = split_term(&raw)
                .ok_or_else(|| format!("invalid selector: '{s}'; can't understand '{raw}'"))?;
            let field = field.trim().to_string();
            // A field path never holds the operator characters, and one that did (`a!` in `a!=b`
            // written as `a! = b`) would print as a different selector.
            if field.is_empty() || field.contains(['!', '=', ',', '\\']) {
                return Err(format!("invalid selector: '{s}'; can't understand '{raw}'"));
            }
            terms.push(FieldRequirement {
                field,
                negate,
                value: unescape(&value),
            });
        }
        Ok(FieldSelector { terms })
    }

    /// True when every term holds for the object.
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = field_value(object, &t.field);
            (actual == t.value) != t.negate
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                format!(
                    "{}{}{}",
                    t.field,
                    if t.negate { "!=" } else { "=" },
                    escape(&t.value)
                )
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// Looks a dotted field path up in an object, rendering it as a field-selector string (`""` when missing).
pub fn field_value(object: &Value, path: &str) -> String {
    let mut cur = object;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn split_unescaped(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Splits `a=b`, `a==b`, `a!=b` at the first unescaped operator.
fn split_term(term: &str) -> Option<(String, bool, String)> {
    let chars: Vec<char> = term.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '!' if chars.get(i + 1) == Some(&'=') => {
                return Some((
                    chars[..i].iter().collect(),
                    true,
                    chars[i + 2..].iter().collect(),
                ))
            }
            '=' => {
                let skip = if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                return Some((
                    chars[..i].iter().collect(),
                    false,
                    chars[i + skip..].iter().collect(),
                ));
            }
            _ => i += 1,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
