//! Names and label keys and values as `k8s.io/apimachinery/pkg/util/validation` checks them, with its
//! message texts: object names (DNS-1123/1035), qualified names, label values, port names. The API
//! server refuses with these texts; the CLI and the agents check the same rules.

/// The message of a DNS-1123 subdomain violation.
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// The message of a DNS-1123 label violation.
pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// The message of a DNS-1035 label violation (Service names).
pub const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// The message of a qualified name (label or annotation key name part) violation.
pub const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// The message of a label value violation.
pub const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Names of RBAC objects need only be valid path segments (`system:node` is fine).
pub fn path_segment_name(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|c| s.contains(*c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns_label_ok(s: &str, first_alpha: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let last = s.chars().last().unwrap_or(first);
    (if first_alpha {
        first.is_ascii_lowercase()
    } else {
        is_alnum_lower(first)
    }) && is_alnum_lower(last)
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
}

/// `IsDNS1123Subdomain`: the violation messages (empty when valid).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(|l| dns_label_ok(l, false)) {
        out.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

/// `IsDNS1123Label`: the violation messages (empty when valid).
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !dns_label_ok(s, false) {
        out.push(DNS1123_LABEL_MSG.to_string());
    }
    out
}

/// `IsDNS1035Label`: the violation messages (empty when valid).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !dns_label_ok(s, true) {
        out.push(DNS1035_LABEL_MSG.to_string());
    }
    out
}

fn qualified_name_part_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let last = s.chars().last().unwrap_or(first);
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `IsQualifiedName` (label and annotation keys): the violation messages (empty when valid).
pub fn qualified_name(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_string());
            } else {
                out.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            out.push(format!("{QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
            return out;
        }
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_string());
    }
    if !name.is_empty() && !qualified_name_part_ok(name) {
        out.push(QUALIFIED_NAME_MSG.to_string());
    }
    out
}

/// `IsValidLabelValue`: the violation messages (empty when valid).
pub fn label_value(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !qualified_name_part_ok(v) {
        out.push(LABEL_VALUE_MSG.to_string());
    }
    out
}

/// `IsValidPortName` (IANA_SVC_NAME): the violation messages (empty when valid).
pub fn port_name(n: &str) -> Vec<String> {
    let mut out = Vec::new();
    if n.len() > 15 {
        out.push("must be no more than 15 characters".to_string());
    }
    if !n.chars().all(|c| is_alnum_lower(c) || c == '-') {
        out.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    }
    if n.contains("--") {
        out.push("must not contain consecutive hyphens".to_string());
    }
    if !n.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".to_string());
    }
    if n.starts_with('-') || n.ends_with('-') {
        out.push("must not begin or end with a hyphen".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes_rules_and_words() {
        assert!(dns1123_subdomain("web.example-1").is_empty());
        assert_eq!(dns1123_subdomain("Web"), [DNS1123_SUBDOMAIN_MSG]);
        assert_eq!(dns1123_label("a.b"), [DNS1123_LABEL_MSG]);
        assert_eq!(
            dns1123_label(&"a".repeat(64)),
            ["must be no more than 63 characters"]
        );
        assert_eq!(dns1035_label("1abc"), [DNS1035_LABEL_MSG]);
        assert!(qualified_name("example.com/My_Name").is_empty());
        assert_eq!(qualified_name("/x"), ["prefix part must be non-empty"]);
        assert_eq!(label_value("-x"), [LABEL_VALUE_MSG]);
        assert!(label_value("").is_empty());
        assert!(path_segment_name("system:node").is_empty());
        assert_eq!(path_segment_name(".."), ["may not be '..'"]);
        assert!(port_name("http-alt").is_empty());
        assert_eq!(port_name("a--b"), ["must not contain consecutive hyphens"]);
    }
}
