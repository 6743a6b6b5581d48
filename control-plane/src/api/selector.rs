//! Label selectors (`app=web,tier!=db,env in (a,b)` and `metav1.LabelSelector` JSON) and field selectors
//! (`spec.nodeName=node1`), parsed and matched the way the Kubernetes API server does.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

/// Operator of one label selector requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// `key=value` or `key==value`: the label exists and equals the value.
    Equals,
    /// `key!=value`: the label is absent or differs.
    NotEquals,
    /// `key in (a,b)`: the label exists and is one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or is none of the values.
    NotIn,
    /// `key`: the label exists.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>5`: the label exists and is an integer greater than the value.
    GreaterThan,
    /// `key<5`: the label exists and is an integer less than the value.
    LessThan,
}

/// One requirement of a label selector; all requirements of a selector must hold (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How the label is compared.
    pub operator: Operator,
    /// The values compared against (empty for `Exists`/`DoesNotExist`).
    pub values: BTreeSet<String>,
}

impl Requirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).map(label_str);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(&v)),
            Operator::NotEquals | Operator::NotIn => {
                !value.is_some_and(|v| self.values.contains(&v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(bound)) = (value, self.values.iter().next()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

fn label_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.iter().next().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => write!(f, "{}={}", self.key, first),
            Operator::NotEquals => write!(f, "{}!={}", self.key, first),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, first),
            Operator::LessThan => write!(f, "{}<{}", self.key, first),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::In | Operator::NotIn => {
                let op = if self.operator == Operator::In {
                    "in"
                } else {
                    "notin"
                };
                let vals: Vec<&str> = self.values.iter().map(String::as_str).collect();
                // `(,)` is how `in (,)` parsed: the set holding only the empty value. Joined, it
                // would print `()`, which does not parse (kube-apiserver prints it so too).
                let list = match vals.as_slice() {
                    [""] => ",".to_string(),
                    _ => vals.join(","),
                };
                write!(f, "{} {} ({list})", self.key, op)
            }
        }
    }
}

/// A parsed label selector. `Nothing` (from a JSON `null` selector) matches no object; an empty
/// requirement list matches every object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    /// `None` = the selector selects nothing.
    requirements: Option<Vec<Requirement>>,
}

impl LabelSelector {
    /// The selector that matches every object (an empty string or `{}`).
    pub fn everything() -> Self {
        LabelSelector {
            requirements: Some(Vec::new()),
        }
    }

    /// The selector that matches no object (a `null` `metav1.LabelSelector`).
    pub fn nothing() -> Self {
        LabelSelector { requirements: None }
    }

    /// The requirements (all must hold); `None` for [`LabelSelector::nothing`].
    pub fn requirements(&self) -> Option<&[Requirement]> {
        self.requirements.as_deref()
    }

    /// True when the selector matches every object.
    pub fn is_everything(&self) -> bool {
        self.requirements.as_ref().is_some_and(Vec::is_empty)
    }

    /// Parses a `labelSelector` query string (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
    ///
    /// # Errors
    /// A message in the API server's style when the string is malformed or a key/value is invalid.
    pub fn parse(s: &str) -> Result<Self, String> {
        let tokens = lex_labels(s)?;
        let mut p = LabelParser { tokens, pos: 0 };
        let mut reqs = Vec::new();
        if p.tokens.is_empty() {
            return Ok(Self::everything());
        }
        loop {
            reqs.push(p.requirement()?);
            match p.next() {
                None => break,
                Some(Tok::Comma) => {
                    if p.peek().is_none() {
                        return Err("found '', expected: identifier after ','".to_string());
                    }
                }
                Some(t) => {
                    return Err(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        t.text()
                    ))
                }
            }
        }
        Ok(LabelSelector {
            requirements: Some(reqs),
        })
    }

    /// Converts a `metav1.LabelSelector` JSON value (`matchLabels` + `matchExpressions`).
    /// `null` selects nothing; `{}` selects everything.
    ///
    /// # Errors
    /// An unknown operator, or values present/absent where the operator forbids/requires them.
    pub fn from_label_selector_json(sel: &Value) -> Result<Self, String> {
        let obj = match sel {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(o) => o,
            _ => return Err("label selector must be an object".to_string()),
        };
        let mut reqs = Vec::new();
        if let Some(ml) = obj.get("matchLabels").filter(|v| !v.is_null()) {
            let ml = ml.as_object().ok_or("matchLabels must be an object")?;
            for (k, v) in ml {
                validate_label_key(k)?;
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("matchLabels[{k}] must be a string"))?;
                validate_label_value(v)?;
                reqs.push(Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: BTreeSet::from([v.to_string()]),
                });
            }
        }
        if let Some(me) = obj.get("matchExpressions").filter(|v| !v.is_null()) {
            let me = me.as_array().ok_or("matchExpressions must be a list")?;
            for e in me {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or("matchExpressions[].key is required")?;
                validate_label_key(key)?;
                let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
                let values: BTreeSet<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let operator = match op {
                    "In" => Operator::In,
                    "NotIn" => Operator::NotIn,
                    "Exists" => Operator::Exists,
                    "DoesNotExist" => Operator::DoesNotExist,
                    other => {
                        return Err(format!(
                            "\"{other}\" is not a valid label selector operator"
                        ))
                    }
                };
                match operator {
                    Operator::In | Operator::NotIn if values.is_empty() => {
                        return Err(
                            "for 'in', 'notin' operators, values set can't be empty".to_string()
                        )
                    }
                    Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                        return Err(
                            "values set must be empty for exists and does not exist".to_string()
                        )
                    }
                    _ => {}
                }
                for v in &values {
                    validate_label_value(v)?;
                }
                reqs.push(Requirement {
                    key: key.to_string(),
                    operator,
                    values,
                });
            }
        }
        Ok(LabelSelector {
            requirements: Some(reqs),
        })
    }

    /// True when the labels (an object's `metadata.labels`, `None` = no labels) satisfy every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        match &self.requirements {
            None => false,
            Some(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }
}

impl fmt::Display for LabelSelector {
    /// Renders the selector in query-string syntax; `nothing()` renders as the empty string too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Gt,
    Lt,
    In,
    NotIn,
    Open,
    Close,
    Comma,
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Eq => "=".into(),
            Tok::DoubleEq => "==".into(),
            Tok::NotEq => "!=".into(),
            Tok::Bang => "!".into(),
            Tok::Gt => ">".into(),
            Tok::Lt => "<".into(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Comma => ",".into(),
        }
    }
}

fn lex_labels(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '>' => {
                out.push(Tok::Gt);
                i += 1
            }
            '<' => {
                out.push(Tok::Lt);
                i += 1
            }
            '=' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::DoubleEq);
                    i += 2
                } else {
                    out.push(Tok::Eq);
                    i += 1
                }
            }
            '!' => {
                if chars.get(i + 1) == Some(&'=') {
                    out.push(Tok::NotEq);
                    i += 2
                } else {
                    out.push(Tok::Bang);
                    i += 1
                }
            }
            _ => {
                let start = i;
                while i < chars.len() && !" \t\n\r,()<>=!".contains(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "in" => Tok::In,
                    "notin" => Tok::NotIn,
                    _ => Tok::Ident(word),
                });
            }
        }
    }
    Ok(out)
}

struct LabelParser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl LabelParser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let bang = if self.peek() == Some(&Tok::Bang) {
            self.pos += 1;
            true
        } else {
            false
        };
        let key = match self.next() {
            Some(Tok::Ident(k)) => k,
            Some(t) => return Err(format!("found '{}', expected: identifier", t.text())),
            None => return Err("found '', expected: identifier".to_string()),
        };
        validate_label_key(&key)?;
        if bang {
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
                values: BTreeSet::new(),
            });
        }
        let op = match self.peek() {
            None | Some(Tok::Comma) => {
                return Ok(Requirement {
                    key,
                    operator: Operator::Exists,
                    values: BTreeSet::new(),
                })
            }
            Some(Tok::Eq) | Some(Tok::DoubleEq) => Operator::Equals,
            Some(Tok::NotEq) => Operator::NotEquals,
            Some(Tok::Gt) => Operator::GreaterThan,
            Some(Tok::Lt) => Operator::LessThan,
            Some(Tok::In) => Operator::In,
            Some(Tok::NotIn) => Operator::NotIn,
            Some(t) => {
                return Err(format!(
                    "found '{}', expected: '=', '!=', '==', 'in', notin'",
                    t.text()
                ))
            }
        };
        self.pos += 1;
        let mut values = BTreeSet::new();
        match op {
            Operator::In | Operator::NotIn => {
                if self.next() != Some(Tok::Open) {
                    return Err("found '', expected: '('".to_string());
                }
                let mut expect_value = true;
                loop {
                    match self.next() {
                        Some(Tok::Close) => {
                            if expect_value && !values.is_empty() {
                                // `in (a,)`: the empty string is a legal value.
                                values.insert(String::new());
                            }
                            break;
                        }
                        Some(Tok::Comma) => {
                            if expect_value {
                                values.insert(String::new());
                            }
                            expect_value = true;
                        }
                        Some(Tok::Ident(v)) if expect_value => {
                            validate_label_value(&v)?;
                            values.insert(v);
                            expect_value = false;
                        }
                        Some(Tok::In) if expect_value => {
                            values.insert("in".into());
                            expect_value = false;
                        }
                        Some(Tok::NotIn) if expect_value => {
                            values.insert("notin".into());
                            expect_value = false;
                        }
                        Some(t) => {
                            return Err(format!(
                                "found '{}', expected: ',', ')' or identifier",
                                t.text()
                            ))
                        }
                        None => return Err("found '', expected: ')'".to_string()),
                    }
                }
                if values.is_empty() {
                    return Err(
                        "for 'in', 'notin' operators, values set can't be empty".to_string()
                    );
                }
            }
            _ => {
                let v = match self.peek() {
                    Some(Tok::Ident(v)) => {
                        let v = v.clone();
                        self.pos += 1;
                        v
                    }
                    Some(Tok::In) => {
                        self.pos += 1;
                        "in".into()
                    }
                    Some(Tok::NotIn) => {
                        self.pos += 1;
                        "notin".into()
                    }
                    _ => String::new(),
                };
                if matches!(op, Operator::GreaterThan | Operator::LessThan)
                    && v.parse::<i64>().is_err()
                {
                    return Err(format!(
                        "for 'Gt', 'Lt' operators, the value must be an integer: {v:?}"
                    ));
                }
                validate_label_value(&v)?;
                values.insert(v);
            }
        }
        Ok(Requirement {
            key,
            operator: op,
            values,
        })
    }
}

fn is_dns_label_like(s: &str, max: usize, extra: &[char]) -> bool {
    let b = s.as_bytes();
    !s.is_empty()
        && s.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// Checks a label key (an optional DNS subdomain prefix and `/`, then a qualified name).
///
/// # Errors
/// A message naming the invalid key.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.').all(|l| {
                is_dns_label_like(l, 63, &['-']) && l.chars().all(|c| !c.is_ascii_uppercase())
            })
    });
    if prefix_ok && is_dns_label_like(name, 63, &['-', '_', '.']) {
        Ok(())
    } else {
        Err(format!("invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
    }
}

/// Checks a label value (empty, or at most 63 alphanumerics, `-`, `_`, `.` starting and ending alphanumeric).
///
/// # Errors
/// A message naming the invalid value.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_dns_label_like(v, 63, &['-', '_', '.']) {
        Ok(())
    } else {
        Err(format!("invalid label value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
    }
}

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
    terms: Vec<FieldRequirement>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn label_selector_table() {
        let l = labels(json!({"app": "web", "tier": "front", "env": "prod"}));
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("app notin (web, db)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("app=web, env in (prod,stage), !canary", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(Some(&l)), want, "{sel}");
        }
        assert!(LabelSelector::parse("app=web")
            .map(|s| !s.matches(None))
            .unwrap());
        assert!(LabelSelector::parse("app!=web")
            .map(|s| s.matches(None))
            .unwrap());
    }

    #[test]
    fn label_selector_gt_lt() {
        let l = labels(json!({"n": "5"}));
        assert!(LabelSelector::parse("n>3").unwrap().matches(Some(&l)));
        assert!(!LabelSelector::parse("n<3").unwrap().matches(Some(&l)));
        assert!(LabelSelector::parse("n>x").is_err());
    }

    #[test]
    fn label_selector_errors() {
        for bad in [
            "app=web,",
            "app in ()",
            "app in (a",
            "=x",
            "a b",
            "bad key!x=1",
            "a=b c",
            "app=-x-",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn label_selector_json() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        let s = LabelSelector::from_label_selector_json(&json!({"matchLabels": {"app": "web"}}))
            .unwrap();
        assert!(s.matches(Some(&l)));
        let s = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "app", "operator": "Exists"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]}
            ]
        }))
        .unwrap();
        assert!(s.matches(Some(&l)));
        assert_eq!(
            s.to_string(),
            "app=web,tier in (back,front),!canary,app,env notin (dev)"
        );
        let s = LabelSelector::from_label_selector_json(&json!({})).unwrap();
        assert!(s.matches(None) && s.is_everything());
        let s = LabelSelector::from_label_selector_json(&Value::Null).unwrap();
        assert!(!s.matches(Some(&l)) && !s.matches(None));
        assert!(LabelSelector::from_label_selector_json(
            &json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})
        )
        .is_err());
        assert!(LabelSelector::from_label_selector_json(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
        )
        .is_err());
    }

    #[test]
    fn field_selector_table() {
        let pod = json!({"metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "node1"}, "status": {"phase": "Running"}});
        let unscheduled = json!({"metadata": {"name": "web-2"}, "spec": {}});
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        let event = json!({"involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u1"}, "type": "Normal", "reason": "Started"});
        let cases = [
            (&pod, "metadata.name=web-1", true),
            (&pod, "metadata.name==web-1", true),
            (&pod, "metadata.name!=web-1", false),
            (&pod, "metadata.name=web-1,metadata.namespace=default", true),
            (&pod, "spec.nodeName=node1,status.phase!=Running", false),
            (&pod, "spec.nodeName=", false),
            (&unscheduled, "spec.nodeName=", true),
            (&unscheduled, "spec.nodeName!=", false),
            (&node, "spec.unschedulable=true", true),
            (&node, "spec.unschedulable!=true", false),
            (
                &event,
                "involvedObject.kind=Pod,involvedObject.name=web-1,involvedObject.uid=u1",
                true,
            ),
            (&event, "type=Normal,reason=Started", true),
            (&event, "", true),
        ];
        for (obj, sel, want) in cases {
            let s = FieldSelector::parse(sel).unwrap();
            assert_eq!(s.matches(obj), want, "{sel}");
        }
        assert!(FieldSelector::parse("metadata.name").is_err());
        let s = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert!(s.matches(&json!({"metadata": {"name": "a,b"}})));
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        "([a-z]{1,5}\\.)?[a-z]{1,3}/[a-z][a-z0-9]{0,5}|[a-z][a-z0-9_.-]{0,6}[a-z0-9]"
            .prop_filter("not a keyword", |k| k != "in" && k != "notin")
    }

    fn value_strategy() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9_.-]{0,6}[a-z0-9])?"
    }

    fn requirement_strategy() -> impl Strategy<Value = Requirement> {
        (
            key_strategy(),
            0..6u8,
            proptest::collection::btree_set(value_strategy(), 1..4),
        )
            .prop_map(|(key, op, vals)| {
                let (operator, values) = match op {
                    0 => (Operator::Equals, vals.into_iter().take(1).collect()),
                    1 => (Operator::NotEquals, vals.into_iter().take(1).collect()),
                    2 => (Operator::In, vals),
                    3 => (Operator::NotIn, vals),
                    4 => (Operator::Exists, BTreeSet::new()),
                    _ => (Operator::DoesNotExist, BTreeSet::new()),
                };
                Requirement {
                    key,
                    operator,
                    values,
                }
            })
    }

    proptest! {
        #[test]
        fn rendered_label_selector_round_trips(reqs in proptest::collection::vec(requirement_strategy(), 0..5)) {
            let sel = LabelSelector { requirements: Some(reqs) };
            let parsed = LabelSelector::parse(&sel.to_string()).unwrap();
            prop_assert_eq!(parsed, sel);
        }

        #[test]
        fn not_equals_negates_equals(
            key in key_strategy(), val in value_strategy(),
            labels in proptest::collection::btree_map(key_strategy(), value_strategy(), 0..4),
            use_key in any::<bool>(),
        ) {
            let mut m: Map<String, Value> = labels.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            if use_key { m.insert(key.clone(), Value::String(val.clone())); }
            let eq = LabelSelector::parse(&format!("{key}={val}")).unwrap();
            let ne = LabelSelector::parse(&format!("{key}!={val}")).unwrap();
            prop_assert_ne!(eq.matches(Some(&m)), ne.matches(Some(&m)));
            let obj = Value::Object(m);
            let feq = FieldSelector::parse(&format!("{key}={val}")).unwrap();
            let fne = FieldSelector::parse(&format!("{key}!={val}")).unwrap();
            prop_assert_ne!(feq.matches(&obj), fne.matches(&obj));
        }

        #[test]
        fn rendered_field_selector_round_trips(
            terms in proptest::collection::vec(("[a-z]{1,4}(\\.[a-zA-Z]{1,4}){0,2}", any::<bool>(), "[ -~]{0,8}"), 0..4)
        ) {
            let sel = FieldSelector { terms: terms.into_iter().map(|(field, negate, value)| FieldRequirement { field, negate, value }).collect() };
            let parsed = FieldSelector::parse(&sel.to_string()).unwrap();
            prop_assert_eq!(parsed, sel);
        }
    }

    /// Fuzz findings (targets `label_selector`, `field_selector`): printed selectors that parsed
    /// back as different selectors.
    #[test]
    fn printed_selectors_parse_back_to_themselves() {
        let only_empty = LabelSelector::parse("a in(,)").unwrap();
        assert_eq!(only_empty.to_string(), "a in (,)");
        assert_eq!(
            LabelSelector::parse(&only_empty.to_string()).unwrap(),
            only_empty
        );
        let with_empty = LabelSelector::parse("a notin (,b)").unwrap();
        assert_eq!(
            LabelSelector::parse(&with_empty.to_string()).unwrap(),
            with_empty
        );

        let err = FieldSelector::parse("a!\t=b").unwrap_err();
        assert_eq!(err, "invalid selector: 'a!\t=b'; can't understand 'a!\t=b'");
        assert!(
            FieldSelector::parse("a=b=c").is_ok(),
            "'=' in a value stays allowed"
        );
    }
}
