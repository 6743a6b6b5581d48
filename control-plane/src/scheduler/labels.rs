//! Label selectors (`matchLabels` + `matchExpressions`) and node selector requirements, parsed from JSON
//! once and matched against label maps. Shared by the scheduler and the controllers.

use std::collections::BTreeMap;

use serde_json::Value;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// Reads `obj[field]` as a string map (labels, annotations, nodeSelector); missing means empty.
pub fn string_map(v: Option<&Value>) -> Labels {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Operator of a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label's value, as an integer, is greater than the single value (node affinity only).
    Gt,
    /// The label's value, as an integer, is less than the single value (node affinity only).
    Lt,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// How the label is compared.
    pub operator: Operator,
    /// Values to compare with.
    pub values: Vec<String>,
}

impl Requirement {
    /// Parses `{key, operator, values}`; an unknown operator yields `None`.
    pub fn from_json(v: &Value) -> Option<Requirement> {
        let operator = match v.get("operator")?.as_str()? {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            "Gt" => Operator::Gt,
            "Lt" => Operator::Lt,
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

    /// Whether `labels` satisfy the requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Gt | Operator::Lt => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.operator == Operator::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A `metav1.LabelSelector`. The empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// `matchLabels`.
    pub match_labels: Labels,
    /// `matchExpressions`.
    pub match_expressions: Vec<Requirement>,
}

impl Selector {
    /// Parses a `LabelSelector` object. Malformed expressions make the selector match nothing, as the
    /// API server would have rejected it.
    pub fn from_json(v: &Value) -> Selector {
        let mut match_expressions = Vec::new();
        for e in v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match Requirement::from_json(e) {
                Some(r) => match_expressions.push(r),
                None => match_expressions.push(Requirement {
                    key: String::new(),
                    operator: Operator::In,
                    values: Vec::new(),
                }),
            }
        }
        Selector {
            match_labels: string_map(v.get("matchLabels")),
            match_expressions,
        }
    }

    /// A selector of exactly these labels (a Service's or ReplicationController's `selector`).
    pub fn from_map(labels: Labels) -> Selector {
        Selector {
            match_labels: labels,
            match_expressions: Vec::new(),
        }
    }

    /// Whether the selector selects nothing-in-particular, i.e. everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` are selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requirements() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let cases = [
            (
                json!({"key":"zone","operator":"In","values":["a","b"]}),
                true,
            ),
            (json!({"key":"zone","operator":"In","values":["b"]}), false),
            (
                json!({"key":"zone","operator":"NotIn","values":["b"]}),
                true,
            ),
            (json!({"key":"gpu","operator":"NotIn","values":["b"]}), true),
            (json!({"key":"zone","operator":"Exists"}), true),
            (json!({"key":"zone","operator":"DoesNotExist"}), false),
            (json!({"key":"cores","operator":"Gt","values":["4"]}), true),
            (json!({"key":"cores","operator":"Lt","values":["4"]}), false),
            (json!({"key":"zone","operator":"Gt","values":["4"]}), false),
        ];
        for (r, want) in cases {
            let req = Requirement::from_json(&r).unwrap();
            assert_eq!(req.matches(&l), want, "{r}");
        }
    }

    #[test]
    fn selectors() {
        let s = Selector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key":"tier","operator":"In","values":["fe"]}]
        }));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(Selector::default().matches(&labels(&[])));
        let bad =
            Selector::from_json(&json!({"matchExpressions": [{"key":"a","operator":"Nope"}]}));
        assert!(!bad.matches(&labels(&[("a", "b")])));
    }
}
