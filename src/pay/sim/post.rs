//! One notification attempt on the wire: a fresh HTTP/1.1 connection to the
//! `notify_url`, one POST, the status of the answer. The whole attempt —
//! connect, send, wait for the status line — is bounded by one timeout, as
//! WeChat waits 5 s for a merchant's answer. Plain `http://` only: the
//! simulator has no TLS client, and an `https://` URL fails as a connection
//! error (retried like any failure).

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// How much of a merchant's answer body is read before the connection is
/// dropped: the status is all that counts.
const ANSWER_BODY_BYTES_MAX: usize = 64 * 1024;

/// What became of one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostOutcome {
    Answered(u16),
    Timeout,
    ConnectionError(String),
}

/// POSTs `body` with `headers` to `url` within `timeout`.
pub async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: Bytes,
    timeout: Duration,
) -> PostOutcome {
    match tokio::time::timeout(timeout, exchange(url, headers, body)).await {
        Ok(Ok(status)) => PostOutcome::Answered(status),
        Ok(Err(message)) => PostOutcome::ConnectionError(message),
        Err(_) => PostOutcome::Timeout,
    }
}

async fn exchange(url: &str, headers: &[(&str, String)], body: Bytes) -> Result<u16, String> {
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("notify_url {url:?}: {error}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "notify_url {url:?}: the simulator delivers over http:// only"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("notify_url {url:?} has no host"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((authority.host(), port))
        .await
        .map_err(|error| format!("connect {authority}: {error}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake with {authority}: {error}"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let path_and_query = uri.path_and_query().map_or("/", |path| path.as_str());
    let mut request = Request::post(path_and_query)
        .header(HOST, authority.as_str())
        .header(CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(body))
        .map_err(|error| format!("request: {error}"))?;
    let result = match sender.send_request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let limited = http_body_util::Limited::new(response.into_body(), ANSWER_BODY_BYTES_MAX);
            let _ = limited.collect().await;
            Ok(status)
        }
        Err(error) => Err(format!("exchange with {authority}: {error}")),
    };
    driver.abort();
    result
}

#[cfg(test)]
#[path = "post_tests.rs"]
mod tests;
