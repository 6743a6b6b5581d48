//! The selector tests moved with the parser from the API server.

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
    let s =
        LabelSelector::from_label_selector_json(&json!({"matchLabels": {"app": "web"}})).unwrap();
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
