//! A small HTTP/1.1 client for the admin API: one keep-alive connection,
//! bearer token, JSON in and out, every call bounded by a timeout.

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::fmt;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// Connect, send and read one answer within this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers larger than this are not admin answers.
const ANSWER_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Why a call did not give an answer to print.
#[derive(Debug)]
pub enum Failure {
    /// The gateway answered with an error.
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// No sensible answer: connection, timeout, or not the API's JSON.
    Unreachable(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused {
                status,
                code,
                message,
            } => write!(f, "{} {code}: {message}", status.as_u16()),
            Failure::Unreachable(message) => write!(f, "gateway unreachable: {message}"),
        }
    }
}

pub struct AdminClient {
    authority: String,
    token: String,
    connection: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl AdminClient {
    /// `url` is `http://host:port` (no path); https is not spoken here.
    pub fn new(url: &str, token: String) -> Result<AdminClient, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("--url {url}: not a URL like http://127.0.0.1:8080"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "--url {url}: only http:// is supported (put TLS in front of the gateway, not in the CLI)"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--url {url}: no host"))?
            .to_string();
        if !matches!(uri.path(), "" | "/") {
            return Err(format!("--url {url}: give the base URL without a path"));
        }
        Ok(AdminClient {
            authority,
            token,
            connection: Mutex::new(None),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        self.call(Method::POST, path, body).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let what = format!("{method} {path}");
        match tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body)).await {
            Ok(result) => result,
            Err(_) => {
                *self.connection.lock().await = None;
                Err(Failure::Unreachable(format!(
                    "no answer to {what} within {CALL_TIMEOUT:?}"
                )))
            }
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut connection = self.connection.lock().await;
        let sender = match connection.as_mut() {
            Some(sender) if sender.is_ready() => sender,
            _ => connection.insert(self.connect().await?),
        };
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(payload)))
            .map_err(|error| Failure::Unreachable(format!("bad request: {error}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| Failure::Unreachable(error.to_string()))?;
        let status = response.status();
        let bytes = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|error| Failure::Unreachable(format!("reading the answer: {error}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            Failure::Unreachable(format!(
                "{} answered {status} with a body that is not JSON: {}",
                self.authority,
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ))
        })?;
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        Err(Failure::Refused {
            status,
            code: error["code"].as_str().unwrap_or("UNKNOWN").to_owned(),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|error| Failure::Unreachable(format!("{}: {error}", self.authority)))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| Failure::Unreachable(format!("{}: {error}", self.authority)))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_base_urls_are_taken() {
        assert!(AdminClient::new("http://127.0.0.1:8080", "t".into()).is_ok());
        assert!(AdminClient::new("http://127.0.0.1:8080/", "t".into()).is_ok());
        for bad in [
            "https://x.example",
            "127.0.0.1:8080",
            "http://x/admin",
            "::",
        ] {
            assert!(AdminClient::new(bad, "t".into()).is_err(), "{bad}");
        }
    }
}
