//! One-line JSON output without serde: the probe prints a single object per run, so a tiny
//! builder keeps the binary std-only.

use std::fmt::Write as _;

/// A JSON object under construction; [`Obj::finish`] closes it.
#[derive(Debug, Default)]
pub struct Obj {
    buf: String,
}

impl Obj {
    /// An empty object.
    pub fn new() -> Obj {
        Obj {
            buf: String::from("{"),
        }
    }

    fn key(&mut self, k: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        push_str(&mut self.buf, k);
        self.buf.push(':');
    }

    /// Adds a string field.
    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        push_str(&mut self.buf, v);
        self
    }

    /// Adds a number field; non-finite numbers become `null` (JSON has no NaN).
    pub fn num(mut self, k: &str, v: f64) -> Obj {
        self.key(k);
        push_num(&mut self.buf, v);
        self
    }

    /// Adds a boolean field.
    pub fn bool(mut self, k: &str, v: bool) -> Obj {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    /// Adds a field whose value is already JSON (a nested object).
    pub fn raw(mut self, k: &str, json: &str) -> Obj {
        self.key(k);
        self.buf.push_str(json);
        self
    }

    /// Adds an array of numbers.
    pub fn nums(mut self, k: &str, v: &[f64]) -> Obj {
        self.key(k);
        self.buf.push('[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            push_num(&mut self.buf, *x);
        }
        self.buf.push(']');
        self
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

fn push_num(buf: &mut String, v: f64) {
    if v.is_finite() {
        // Three decimals are below every unit's resolution here (µs, ms, MiB/s) and keep lines short.
        let rounded = (v * 1000.0).round() / 1000.0;
        let _ = write!(buf, "{rounded}");
    } else {
        buf.push_str("null");
    }
}

fn push_str(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

/// The one-line error object every failure prints.
pub fn error(msg: &str) -> String {
    Obj::new().str("error", msg).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_escaped_one_line_objects() {
        let s = Obj::new()
            .str("mode", "a\"b\n")
            .num("x", 1.23456)
            .num("nan", f64::NAN)
            .bool("ok", true)
            .nums("v", &[1.0, 2.5])
            .raw("o", &Obj::new().num("n", 3.0).finish())
            .finish();
        assert_eq!(
            s,
            r#"{"mode":"a\"b\n","x":1.235,"nan":null,"ok":true,"v":[1,2.5],"o":{"n":3}}"#
        );
        assert!(!s.contains('\n'));
        assert_eq!(error("bad\u{1}"), r#"{"error":"bad\u0001"}"#);
    }
}
