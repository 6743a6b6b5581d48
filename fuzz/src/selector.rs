//! Label and field selectors as the API server reads them from `?labelSelector=` and `?fieldSelector=`.

use apimachinery::labels::{FieldSelector, LabelSelector};
use serde_json::Value;

/// `selector 0xff labels-json`: the selector is parsed; when it parses, its printed form must parse
/// back to the same selector and match the same labels.
///
/// Invariant: never panics; print/parse round-trips; `metav1.LabelSelector` JSON never panics.
pub fn label(input: &[u8]) {
    let (sel, labels) = crate::split2(input);
    let text = String::from_utf8_lossy(sel);
    let labels: Option<Value> = serde_json::from_slice(labels).ok();
    let map = labels.as_ref().and_then(Value::as_object);
    if let Some(v) = &labels {
        if let Ok(s) = LabelSelector::from_label_selector_json(v) {
            let _ = s.matches(map);
        }
    }
    let Ok(parsed) = LabelSelector::parse(&text) else {
        return;
    };
    let printed = parsed.to_string();
    let reparsed = LabelSelector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(reparsed, parsed, "{text:?} printed as {printed:?}");
    assert_eq!(reparsed.matches(map), parsed.matches(map));
}

/// `selector 0xff object-json`: as [`label`], matched against an arbitrary object.
///
/// Invariant: never panics; print/parse round-trips.
pub fn field(input: &[u8]) {
    let (sel, object) = crate::split2(input);
    let text = String::from_utf8_lossy(sel);
    let object: Value = serde_json::from_slice(object).unwrap_or(Value::Null);
    let Ok(parsed) = FieldSelector::parse(&text) else {
        return;
    };
    let printed = parsed.to_string();
    let reparsed = FieldSelector::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(reparsed, parsed, "{text:?} printed as {printed:?}");
    assert_eq!(reparsed.matches(&object), parsed.matches(&object));
}
