//! Label selectors (`app=web,tier!=db,env in (a,b)`, `metav1.LabelSelector` JSON and node selector
//! requirements) and field selectors (`spec.nodeName=node1`), parsed and matched the way the Kubernetes API
//! server does. The one parser of selectors for the API, the scheduler, the controllers and the CLI.

mod fields;

pub use fields::{field_value, FieldRequirement, FieldSelector};

use std::collections::{BTreeMap, BTreeSet};
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
        self.matches_value(value.as_deref())
    }

    /// Whether `labels` (a parsed label map) satisfy the requirement.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }

    fn matches_value(&self, value: Option<&str>) -> bool {
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => {
                !value.is_some_and(|v| self.values.contains(v))
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

    /// Reads a stored `{key, operator, values}` entry of a `matchExpressions` list or of a node
    /// selector term (`Gt`/`Lt` allowed) without validating it: the API validated it on the way in,
    /// and a decision must not fail on what it cannot change. `None` for an unknown operator or a
    /// missing key.
    pub fn from_json_lenient(v: &Value) -> Option<Requirement> {
        let operator = match v.get("operator")?.as_str()? {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::GreaterThan,
            "Lt" => Operator::LessThan,
            _ => return None,
        };
        Some(Requirement {
            key: v.get("key")?.as_str()?.to_string(),
            operator,
            values: v
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// Labels of an object (also annotations and `nodeSelector`), parsed out of JSON once.
pub type Labels = BTreeMap<String, String>;

/// Reads a string map (labels, annotations, nodeSelector); missing or malformed means empty, and
/// non-string values are skipped.
pub fn string_map(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
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

    /// A selector of exactly these labels (a Service's or ReplicationController's `selector`).
    pub fn from_map(labels: &Labels) -> Self {
        LabelSelector {
            requirements: Some(
                labels
                    .iter()
                    .map(|(k, v)| Requirement {
                        key: k.clone(),
                        operator: Operator::Equals,
                        values: BTreeSet::from([v.clone()]),
                    })
                    .collect(),
            ),
        }
    }

    /// Reads a stored `metav1.LabelSelector` without validating it, for decisions (controllers,
    /// scheduler): a missing or `null` selector, and `{}`, select everything; a selector with an
    /// expression that cannot be read selects nothing, since the API would have refused it.
    pub fn from_json_lenient(v: &Value) -> Self {
        let mut reqs: Vec<Requirement> = string_map(v.get("matchLabels"))
            .into_iter()
            .map(|(key, value)| Requirement {
                key,
                operator: Operator::Equals,
                values: BTreeSet::from([value]),
            })
            .collect();
        for e in v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match Requirement::from_json_lenient(e) {
                Some(r) => reqs.push(r),
                None => return Self::nothing(),
            }
        }
        LabelSelector {
            requirements: Some(reqs),
        }
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

    /// True when a parsed label map satisfies every requirement.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        match &self.requirements {
            None => false,
            Some(reqs) => reqs.iter().all(|r| r.matches_labels(labels)),
        }
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

/// A stored `metav1.LabelSelector` in query-string form with its requirements sorted by key, as
/// `metav1.LabelSelectorAsSelector(sel).String()` prints it (the Scale subresource's
/// `status.selector`, the SELECTOR column). `""` for a selector without requirements.
pub fn format_selector(sel: &Value) -> String {
    let selector = LabelSelector::from_json_lenient(sel);
    let mut reqs: Vec<&Requirement> = selector.requirements().unwrap_or_default().iter().collect();
    reqs.sort_by(|a, b| a.key.cmp(&b.key));
    reqs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks a label key (an optional DNS subdomain prefix and `/`, then a qualified name).
///
/// # Errors
/// A message naming the invalid key.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let errs = crate::validation::qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid label key {key:?}: {}", errs.join("; ")))
    }
}

/// Checks a label value (empty, or at most 63 alphanumerics, `-`, `_`, `.` starting and ending alphanumeric).
///
/// # Errors
/// A message naming the invalid value.
pub fn validate_label_value(v: &str) -> Result<(), String> {
    let errs = crate::validation::label_value(v);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid label value: {v:?}: {}", errs.join("; ")))
    }
}

#[cfg(test)]
mod tests;
