//! Bodies in and out: bounded request reading, strict JSON parsing that names
//! the offending field, and one response body type for both whole replies
//! and the SSE stream.

use crate::http::error::ApiError;
use crate::sale::views::OrderView;
use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A whole body or a stream of chunks fed by a task (SSE).
pub enum ResponseBody {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(receiver) => receiver
                .poll_recv(context)
                .map(|chunk| chunk.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Room for a whole order view, so encoding one does not grow the buffer
/// (`serde_json::to_vec` starts at 128 bytes and doubles).
const JSON_RESPONSE_BYTES_INITIAL: usize = 512;

pub fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    let mut bytes = Vec::with_capacity(JSON_RESPONSE_BYTES_INITIAL);
    match serde_json::to_writer(&mut bytes, value) {
        Ok(()) => bytes_response(status, "application/json", bytes.into()),
        Err(error) => error_response(&ApiError::internal(error.to_string()), ""),
    }
}

/// An order's answer, written by [`OrderView::write_json`] (the bytes
/// `json_response` would write, without serde's per-token calls).
pub fn order_response(status: StatusCode, order: &OrderView) -> Response<ResponseBody> {
    let mut bytes = Vec::with_capacity(JSON_RESPONSE_BYTES_INITIAL);
    order.write_json(&mut bytes);
    bytes_response(status, "application/json", bytes.into())
}

pub fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    bytes: Bytes,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Full(Some(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// `{"error":{"code","message","request_id"}}`, borrowed: a rejection (a
/// sold-out burst is made of them) builds no JSON tree for it.
#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(serde::Serialize)]
struct ErrorFields<'a> {
    code: &'a str,
    message: &'a str,
    request_id: &'a str,
}

pub fn error_response(error: &ApiError, request_id: &str) -> Response<ResponseBody> {
    let body = ErrorBody {
        error: ErrorFields {
            code: error.code,
            message: &error.message,
            request_id,
        },
    };
    let mut bytes = Vec::with_capacity(128 + error.message.len());
    // Three strings into a `Vec`: serde_json cannot fail here.
    let _ = serde_json::to_writer(&mut bytes, &body);
    let mut response = bytes_response(error.status, "application/json", bytes.into());
    if let Some(seconds) = error.retry_after_seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    if let Some(allowed) = error.allow {
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
    }
    response
}

/// Reads a request body of at most `limit_bytes`; a larger one is a 413,
/// told by `Content-Length` before reading when the client sends it.
pub async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit_bytes: usize,
) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit_bytes as u64) {
        return Err(ApiError::payload_too_large(limit_bytes));
    }
    let limited = http_body_util::Limited::new(body, limit_bytes);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(limit_bytes))
        }
        Err(error) => Err(ApiError::invalid(format!(
            "could not read the request body: {error}"
        ))),
    }
}

/// Parses JSON strictly; the error names the field where parsing failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde's derived structs would also accept an array of the fields in order.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("request body must be a JSON object"));
    }
    // Most bodies are well formed: parse them without tracking the path,
    // which costs as much again; a body refused here is parsed once more
    // below, by the same rules, to say where it went wrong.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let category = inner.classify();
        let inner = inner.to_string();
        let detail = strip_position(&inner);
        if category != serde_json::error::Category::Data || path == "." {
            ApiError::invalid(format!("malformed JSON body: {detail}"))
        } else {
            ApiError::invalid(format!("{path}: {detail}"))
        }
    })?;
    deserializer.end().map_err(|_| {
        ApiError::invalid("malformed JSON body: trailing characters after the object")
    })?;
    Ok(value)
}

/// serde_json appends " at line 1 column 17"; the field path says more.
fn strip_position(message: &str) -> &str {
    message
        .find(" at line ")
        .map_or(message, |index| &message[..index])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        name: String,
        quantity: u32,
    }

    #[test]
    fn an_error_body_is_the_contract_s_shape_with_its_strings_escaped() {
        let error = ApiError::invalid("quantity: \"x\" is not \\ a number\n\u{1}, 数量");
        let response = error_response(&error, "fg-00000000000000ab");
        let ResponseBody::Full(Some(bytes)) = response.into_body() else {
            panic!("a whole body");
        };
        let expected = serde_json::json!({
            "error": {
                "code": "INVALID_REQUEST",
                "message": error.message,
                "request_id": "fg-00000000000000ab",
            }
        });
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected.to_string());
    }

    #[test]
    fn parse_errors_name_the_field() {
        let error = parse_json::<Probe>(br#"{"name":"a","quantity":-1}"#).unwrap_err();
        assert!(error.message.starts_with("quantity:"), "{}", error.message);
        let error = parse_json::<Probe>(br#"{"name":"a","quantity":1,"extra":2}"#).unwrap_err();
        assert!(error.message.contains("extra"), "{}", error.message);
        let error = parse_json::<Probe>(br#"{"name":"a""#).unwrap_err();
        assert!(
            error.message.contains("malformed JSON"),
            "{}",
            error.message
        );
        let error = parse_json::<Probe>(br#"["a", 1]"#).unwrap_err();
        assert!(error.message.contains("JSON object"), "{}", error.message);
        let error = parse_json::<Probe>(br#"{"quantity":1}"#).unwrap_err();
        assert!(error.message.contains("name"), "{}", error.message);
    }
}
