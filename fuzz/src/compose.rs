//! Compose files converted to Kubernetes objects, as `berthctl stack deploy` does.

use control_plane::api::{resources, validation};
use serde_json::Value;

fn env(name: &str) -> Option<String> {
    match name {
        "TAG" => Some("1.27".into()),
        "PORT" => Some("8080".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// The input is a Compose file (YAML). File references resolve against an empty directory, so they
/// fail cleanly instead of reading the machine's files.
///
/// Invariant: never panics; every object of a converted stack has a kind the API server serves and
/// a name.
pub fn compose(input: &[u8]) {
    let Ok(doc) = serde_yaml::from_slice::<Value>(input) else {
        return;
    };
    let base = tempfile::tempdir().expect("temp dir");
    let Ok(stack) = ctl::compose::convert(&doc, "fuzz", base.path(), &env) else {
        return;
    };
    for obj in &stack.objects {
        let kind = obj["kind"].as_str().unwrap_or("");
        let info = resources::by_kind(kind)
            .unwrap_or_else(|| panic!("stack object of unserved kind {kind:?}: {obj}"));
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        assert!(!name.is_empty(), "stack object without a name: {obj}");
        let _ = validation::validate(info.resource, obj);
    }
    let _ = stack.services();
}
