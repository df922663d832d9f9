//! What one order request came to, decided from its status and error code,
//! and the counts of a round.

use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;
use std::collections::BTreeMap;

/// Kinds of error kept apart in the counts (beyond it they share one bucket).
const ERROR_KINDS_MAX: usize = 32;
/// Bytes of an error's body kept as its sample.
const ERROR_SAMPLE_BYTES_MAX: usize = 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 201: an order was made.
    Reserved,
    /// 409 `SOLD_OUT`.
    SoldOut,
    /// 409 `LIMIT_EXCEEDED`.
    Limit,
    /// 503: shed by admission (or the node's order bound).
    Shed,
    /// Anything else.
    Error,
}

/// Classifies a response of `POST /v1/orders`.
pub fn classify(status: StatusCode, body: &[u8]) -> Outcome {
    match status.as_u16() {
        201 => Outcome::Reserved,
        409 if contains(body, br#""SOLD_OUT""#) => Outcome::SoldOut,
        409 if contains(body, br#""LIMIT_EXCEEDED""#) => Outcome::Limit,
        503 => Outcome::Shed,
        _ => Outcome::Error,
    }
}

/// The error code of a JSON error body, when it has one.
pub fn error_code(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find(r#""code":""#)? + r#""code":""#.len();
    let end = text[start..].find('"')?;
    Some(&text[start..start + end])
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Counts of a round (or several, merged).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Outcomes {
    pub reserved: u64,
    pub sold_out: u64,
    pub limit: u64,
    pub shed: u64,
    pub errors: u64,
    /// Errors by kind (`"HTTP 409 INVALID_STATE"`, `"transport"`), with a
    /// sample of the first one's body or message.
    pub errors_by_kind: BTreeMap<String, ErrorKind>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ErrorKind {
    pub count: u64,
    pub sample: String,
}

impl Outcomes {
    pub fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Reserved => self.reserved += 1,
            Outcome::SoldOut => self.sold_out += 1,
            Outcome::Limit => self.limit += 1,
            Outcome::Shed => self.shed += 1,
            Outcome::Error => self.errors += 1,
        }
    }

    /// Records an HTTP answer classified as an error.
    pub fn record_http_error(&mut self, status: StatusCode, body: &Bytes) {
        let kind = match error_code(body) {
            Some(code) => format!("HTTP {} {code}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        };
        let sample = String::from_utf8_lossy(&body[..body.len().min(ERROR_SAMPLE_BYTES_MAX)]);
        self.record_error(kind, &sample);
    }

    /// Records an error of `kind`; the first of a kind keeps its sample.
    pub fn record_error(&mut self, kind: String, sample: &str) {
        self.errors += 1;
        let kind = if self.errors_by_kind.len() < ERROR_KINDS_MAX
            || self.errors_by_kind.contains_key(&kind)
        {
            kind
        } else {
            "other".into()
        };
        self.errors_by_kind
            .entry(kind)
            .or_insert_with(|| ErrorKind {
                count: 0,
                sample: sample.to_owned(),
            })
            .count += 1;
    }

    pub fn merge(&mut self, other: &Outcomes) {
        self.reserved += other.reserved;
        self.sold_out += other.sold_out;
        self.limit += other.limit;
        self.shed += other.shed;
        self.errors += other.errors;
        for (kind, error) in &other.errors_by_kind {
            let entry = self
                .errors_by_kind
                .entry(kind.clone())
                .or_insert_with(|| ErrorKind {
                    count: 0,
                    sample: error.sample.clone(),
                });
            entry.count += error.count;
        }
    }

    pub fn total(&self) -> u64 {
        self.reserved + self.sold_out + self.limit + self.shed + self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_make_the_outcomes() {
        let sold_out = br#"{"error":{"code":"SOLD_OUT","message":"sold out","request_id":"x"}}"#;
        let limit = br#"{"error":{"code":"LIMIT_EXCEEDED","message":"m","request_id":"x"}}"#;
        let state = br#"{"error":{"code":"INVALID_STATE","message":"m","request_id":"x"}}"#;
        assert_eq!(classify(StatusCode::CREATED, b"{}"), Outcome::Reserved);
        assert_eq!(classify(StatusCode::CONFLICT, sold_out), Outcome::SoldOut);
        assert_eq!(classify(StatusCode::CONFLICT, limit), Outcome::Limit);
        assert_eq!(classify(StatusCode::CONFLICT, state), Outcome::Error);
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b""),
            Outcome::Shed
        );
        assert_eq!(classify(StatusCode::OK, b"{}"), Outcome::Error);
        assert_eq!(error_code(state), Some("INVALID_STATE"));
        assert_eq!(error_code(b"not json"), None);
    }

    #[test]
    fn errors_are_counted_by_kind_with_a_sample() {
        let mut outcomes = Outcomes::default();
        let body = Bytes::from_static(br#"{"error":{"code":"INTERNAL","message":"m"}}"#);
        outcomes.record_http_error(StatusCode::INTERNAL_SERVER_ERROR, &body);
        outcomes.record_http_error(StatusCode::INTERNAL_SERVER_ERROR, &body);
        outcomes.record_error("transport".into(), "connection reset");
        assert_eq!(outcomes.errors, 3);
        assert_eq!(outcomes.errors_by_kind["HTTP 500 INTERNAL"].count, 2);
        assert_eq!(
            outcomes.errors_by_kind["transport"].sample,
            "connection reset"
        );
        let mut merged = Outcomes::default();
        merged.merge(&outcomes);
        merged.merge(&outcomes);
        assert_eq!(merged.errors_by_kind["HTTP 500 INTERNAL"].count, 4);
        assert_eq!(merged.total(), 6);
    }
}
