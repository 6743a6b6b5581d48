//! Decodes `application/vnd.kubernetes.protobuf` request bodies (`k8s\0` + `runtime.Unknown`) into the
//! JSON the API uses, for the kinds `kubectl create <generator>`, `autoscale` and `drain` send.
//!
//! The decoder is driven by per-message field tables whose numbers follow upstream
//! `k8s.io/api/{core,apps,autoscaling,batch,rbac,authentication,authorization}/v1/generated.proto` and `apimachinery/.../meta/v1/generated.proto`.
//! Go marshals every non-pointer field, so zero values are dropped again the way `omitempty` would,
//! except for fields marked [`Emit::Present`] (pointers: `replicas: 0` matters) or [`Emit::Always`].

use base64::Engine as _;
use serde_json::{Map, Value};

use super::kinds::by_kind;
use super::kinds::common::fields::{
    a, f, p, r, F, INT_OR_STRING, MAP_ENTRY, OBJECT_META, QUANTITY, T, T::*, TIME, UNKNOWN,
};

pub use super::kinds::common::fields::Emit;

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Decodes a protobuf request body into the object's JSON (with `apiVersion` and `kind`).
///
/// # Errors
/// A missing magic prefix, malformed protobuf, a non-empty `contentEncoding`, or a kind this
/// decoder has no table for.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or("protobuf body does not start with the \"k8s\\x00\" magic")?;
    let unknown = decode_message(rest, UNKNOWN)?;
    let api_version = unknown
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = unknown
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(enc) = unknown.get("contentEncoding").and_then(Value::as_str) {
        return Err(format!("unsupported protobuf contentEncoding {enc:?}"));
    }
    let raw = match unknown.get("raw") {
        Some(Value::String(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| e.to_string())?,
        _ => Vec::new(),
    };
    let fields = kind_fields(&kind)
        .ok_or_else(|| format!("unsupported protobuf kind {api_version}/{kind}"))?;
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    obj.extend(decode_message(&raw, fields)?);
    Ok(Value::Object(obj))
}

/// The field table of a top-level kind: a served kind's own, or one of the request bodies that are
/// no served resource (`DeleteOptions`, `TokenRequest`, an autoscaler kubectl may send).
fn kind_fields(kind: &str) -> Option<&'static [F]> {
    if let Some(fields) = by_kind(kind).and_then(|k| k.protobuf_fields()) {
        return Some(fields);
    }
    Some(match kind {
        "DeleteOptions" => DELETE_OPTIONS,
        "HorizontalPodAutoscaler" => HPA,
        "TokenRequest" => TOKEN_REQUEST,
        _ => return None,
    })
}

// Request bodies that are no served kind.
const PRECONDITIONS: &[F] = &[p(1, "uid", Str), p(2, "resourceVersion", Str)];
const DELETE_OPTIONS: &[F] = &[
    p(1, "gracePeriodSeconds", I64),
    p(2, "preconditions", Msg(PRECONDITIONS)),
    p(3, "orphanDependents", Bool),
    p(4, "propagationPolicy", Str),
    r(5, "dryRun", Str),
    p(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
];
// autoscaling/v1
const CROSS_VERSION_OBJECT_REFERENCE: &[F] = &[
    a(1, "kind", Str),
    a(2, "name", Str),
    f(3, "apiVersion", Str),
];
const HPA_SPEC: &[F] = &[
    a(1, "scaleTargetRef", Msg(CROSS_VERSION_OBJECT_REFERENCE)),
    p(2, "minReplicas", I32),
    a(3, "maxReplicas", I32),
    p(4, "targetCPUUtilizationPercentage", I32),
];
const HPA: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "spec", Msg(HPA_SPEC)),
];
// authentication/v1
const BOUND_OBJECT_REFERENCE: &[F] = &[
    f(1, "kind", Str),
    f(2, "apiVersion", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
];
const TOKEN_REQUEST_SPEC: &[F] = &[
    r(1, "audiences", Str),
    p(3, "boundObjectRef", Msg(BOUND_OBJECT_REFERENCE)),
    p(4, "expirationSeconds", I64),
];
const TOKEN_REQUEST: &[F] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    a(2, "spec", Msg(TOKEN_REQUEST_SPEC)),
];

/// One wire-format field: its number and its payload.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut out = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(out);
            }
        }
        Err("varint longer than 10 bytes".to_string())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("truncated protobuf field".to_string());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>)>, String> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let num = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        if num == 0 {
            return Err("protobuf field number 0".to_string());
        }
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
                Wire::Len(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            w => return Err(format!("unsupported protobuf wire type {w}")),
        };
        Ok(Some((num, wire)))
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| "protobuf string is not UTF-8".to_string())
}

fn expect_len<'a>(w: Wire<'a>, name: &str) -> Result<&'a [u8], String> {
    match w {
        Wire::Len(b) => Ok(b),
        _ => Err(format!("field {name}: expected a length-delimited value")),
    }
}

fn expect_varint(w: Wire<'_>, name: &str) -> Result<u64, String> {
    match w {
        Wire::Varint(v) => Ok(v),
        _ => Err(format!("field {name}: expected a varint")),
    }
}

/// Formats Unix seconds as RFC 3339 UTC (`metav1.Time` has second precision in JSON).
pub fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn decode_value(t: T, w: Wire<'_>, name: &str) -> Result<Value, String> {
    Ok(match t {
        Str => Value::String(utf8(expect_len(w, name)?)?),
        Bytes => b64(expect_len(w, name)?),
        Bool => Value::Bool(expect_varint(w, name)? != 0),
        // Negative int32s are sign-extended to 64 bits on the wire.
        I32 => Value::from(expect_varint(w, name)? as i64 as i32),
        I64 => Value::from(expect_varint(w, name)? as i64),
        Msg(fields) | Inline(fields) => {
            Value::Object(decode_message(expect_len(w, name)?, fields)?)
        }
        IntOrString => {
            let m = decode_message(expect_len(w, name)?, INT_OR_STRING)?;
            if m.get("type").and_then(Value::as_i64) == Some(1) {
                m.get("strVal")
                    .cloned()
                    .unwrap_or_else(|| Value::String(String::new()))
            } else {
                m.get("intVal").cloned().unwrap_or_else(|| Value::from(0))
            }
        }
        Quantity => decode_message(expect_len(w, name)?, QUANTITY)?
            .remove("string")
            .unwrap_or_else(|| Value::String(String::new())),
        Time => {
            let m = decode_message(expect_len(w, name)?, TIME)?;
            match m.get("seconds").and_then(Value::as_i64) {
                None | Some(0) => Value::Null,
                Some(s) => Value::String(format_rfc3339(s)),
            }
        }
        MapStr | MapBytes | MapQuantity => unreachable!("maps are decoded entry by entry"),
    })
}

fn decode_map_entry(t: T, bytes: &[u8]) -> Result<(String, Value), String> {
    let entry = decode_message(bytes, MAP_ENTRY)?;
    let key = entry
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let raw = match entry.get("value").and_then(Value::as_str) {
        Some(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let value = match t {
        MapStr => Value::String(utf8(&raw)?),
        MapBytes => b64(&raw),
        _ => decode_value(Quantity, Wire::Len(&raw), &key)?,
    };
    Ok((key, value))
}

fn decode_message(buf: &[u8], fields: &[F]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut present: Vec<&str> = Vec::new();
    let mut reader = Reader { buf };
    while let Some((num, wire)) = reader.next_field()? {
        // Fields this decoder does not know (newer API fields, affinity, ...) are skipped.
        let Some(fd) = fields.iter().find(|fd| fd.num == num) else {
            continue;
        };
        present.push(fd.name);
        match fd.t {
            MapStr | MapBytes | MapQuantity => {
                let (k, v) = decode_map_entry(fd.t, expect_len(wire, fd.name)?)?;
                let m = out
                    .entry(fd.name)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = m {
                    m.insert(k, v);
                }
            }
            Inline(_) => {
                if let Value::Object(m) = decode_value(fd.t, wire, fd.name)? {
                    out.extend(m);
                }
            }
            t if fd.repeated => {
                let v = decode_value(t, wire, fd.name)?;
                let list = out
                    .entry(fd.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(l) = list {
                    l.push(v);
                }
            }
            t => {
                let v = decode_value(t, wire, fd.name)?;
                out.insert(fd.name.to_string(), v);
            }
        }
    }
    for fd in fields {
        if matches!(fd.t, Inline(_)) {
            continue;
        }
        let keep = match out.get(fd.name) {
            None => continue,
            Some(Value::Null) => false,
            Some(v) => match fd.emit {
                Emit::OmitEmpty => !is_empty(v),
                Emit::Present | Emit::Always => present.contains(&fd.name),
            },
        };
        if !keep {
            out.remove(fd.name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
