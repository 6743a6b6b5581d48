use super::*;
use serde_json::json;

#[test]
fn container_choice() {
    let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]}});
    assert_eq!(container(&one, None).unwrap(), "main");
    assert_eq!(container(&one, Some("main")).unwrap(), "main");
    assert_eq!(container(&one, Some("x")).unwrap_err().code, 400);
    let two =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
    assert_eq!(
        container(&two, None).unwrap_err().message,
        "a container name must be specified for pod p, choose one of: [a b]"
    );
    assert_eq!(encode_component("a b/c"), "a%20b%2Fc");
}
