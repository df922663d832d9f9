//! JSON objects written field by field, for the two every order writes:
//! its journal record ([`crate::sale::Reservation`]) and its answer
//! ([`crate::sale::OrderView`]). The bytes are serde_json's (each writer
//! is tested against its `Serialize` impl); what is left out is serde's
//! call per token and its byte-at-a-time escaping pass over text that, on
//! this path, nearly never needs escaping.

/// An object being written into `out`: `{` on creation, `}` on [`Object::end`].
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, empty: true }
    }

    /// `key` is one of our field names: plain ASCII, written as it is.
    fn key(&mut self, key: &'static str) {
        debug_assert!(!needs_escaping(key), "{key}");
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    pub fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        write_str(self.out, value);
    }

    pub fn i64(&mut self, key: &'static str, value: i64) {
        self.key(key);
        let mut digits = [0u8; 20];
        let start = crate::ids::decimal_digits(value.unsigned_abs(), &mut digits);
        if value < 0 {
            self.out.push(b'-');
        }
        self.out.extend_from_slice(&digits[start..]);
    }

    pub fn u32(&mut self, key: &'static str, value: u32) {
        self.key(key);
        let mut digits = [0u8; 20];
        let start = crate::ids::decimal_digits(u64::from(value), &mut digits);
        self.out.extend_from_slice(&digits[start..]);
    }

    /// A nested object under `key`; this one goes on once it has ended.
    pub fn object(&mut self, key: &'static str) -> Object<'_> {
        self.key(key);
        Object::new(self.out)
    }

    pub fn end(self) {
        self.out.push(b'}');
    }
}

/// What serde_json escapes: `"`, `\` and the control characters below
/// U+0020. Everything else, other UTF-8 included, goes out as it is.
fn needs_escaping(text: &str) -> bool {
    // No early exit: the compiler checks many bytes at a time.
    text.bytes()
        .map(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
        .fold(false, |found, this| found | this)
}

/// A JSON string: copied between quotes when nothing needs escaping (ids,
/// times, amounts), else escaped by serde_json itself.
fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escaping(text) {
        serde_json::to_writer(&mut *out, text).expect("a string into a Vec");
        return;
    }
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_numbers_come_out_as_serde_json_writes_them() {
        let texts = [
            "",
            "FG19ab0000000000000000001",
            "é 数量",
            "a\"b",
            "a\\b",
            "\u{1}\n\t\u{1f}",
            "\u{7f}",
        ];
        let numbers = [0, 1, -1, 9, 10, i64::MAX, i64::MIN, 1_764_000_000_000];
        for text in texts {
            for number in numbers {
                let mut out = Vec::new();
                let mut object = Object::new(&mut out);
                object.str("text", text);
                object.i64("number", number);
                object.u32("small", number as u32);
                object.object("empty").end();
                let mut inner = object.object("inner");
                inner.str("again", text);
                inner.end();
                object.end();
                let expected = serde_json::json!({
                    "text": text,
                    "number": number,
                    "small": number as u32,
                    "empty": {},
                    "inner": { "again": text },
                });
                // serde_json's map keeps keys sorted; compare as values and
                // the escaped string byte for byte.
                let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
                assert_eq!(parsed, expected);
                let escaped = serde_json::to_string(text).unwrap();
                let written = String::from_utf8(out).unwrap();
                assert!(
                    written.starts_with(&format!("{{\"text\":{escaped},")),
                    "{written}"
                );
            }
        }
    }
}
