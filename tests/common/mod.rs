//! Shared helpers of the black-box HTTP tests: a gateway started in-process
//! per test, a minimal keep-alive HTTP/1.1 client on hyper, a raw TCP client
//! for requests hyper's client will not send (slow or oversized bodies), an
//! SSE reader, tokens and sale helpers.
//!
//! Every network wait is bounded by [`WAIT`]: a broken server fails the test
//! with a message naming what it waited for, it never hangs.

#![allow(dead_code)]

pub mod pg;
pub mod served;

use bytes::Bytes;
use flashgate::app::Gateway;
use flashgate::config::{Config, DEV_SESSION_SECRET};
use flashgate::http::auth::SessionKeys;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single network step may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub const ADMIN_TOKEN: &str = "dev-admin-token";
pub const HOST_TOKEN: &str = "dev-host-token";
pub const OPS_TOKEN: &str = "dev-ops-token";
/// The one item of the sales made by [`sale_body`].
pub const SKU: &str = "sku-1";

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A port nothing listens on right now (for servers whose address must be
/// known before they start; a start that loses the race retries).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A fresh directory name under the system temp dir, unique per call.
pub fn unique_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "flashgate-test-{tag}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A temp directory holding a node's data dir (and logs); removed on drop.
/// Declare it before the gateway or process so it outlives them.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = unique_dir(tag);
        std::fs::create_dir_all(&dir).expect("create the scratch dir");
        Scratch(dir)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.0.join("data")
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.data_dir().join("journal")
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.data_dir().join("snapshots")
    }

    /// Where the embedded store lives.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir().join("flashgate.sqlite3")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A keep-alive HTTP/1.1 connection to `addr`, its driver spawned.
pub async fn http1_sender(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = within("a TCP connection", TcpStream::connect(addr))
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
    let _ = stream.set_nodelay(true);
    let (sender, connection) = within(
        "the HTTP/1 handshake",
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .unwrap_or_else(|error| panic!("HTTP handshake with {addr} failed: {error}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// A gauge of a `/metrics` text that holds a journal position.
pub fn gauge(text: &str, name: &str) -> u64 {
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"));
    let value: f64 = value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {value:?}"));
    assert!(
        value >= 0.0 && value.fract() == 0.0,
        "{name} is not a position: {value}"
    );
    value as u64
}

pub fn now_ms() -> i64 {
    flashgate::clock::now_ms()
}

/// Parses an RFC 3339 time of a response, failing the test if it is not one.
pub fn rfc3339_ms(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("expected an RFC 3339 string, got {value}"));
    assert!(text.ends_with('Z'), "times are UTC with a Z: {text}");
    flashgate::clock::parse_rfc3339(text).unwrap_or_else(|| panic!("not an RFC 3339 time: {text}"))
}

// ---- tokens ---------------------------------------------------------------

/// A storefront session token for `openid`, valid for an hour.
pub fn buyer_token(openid: &str) -> String {
    SessionKeys::new(DEV_SESSION_SECRET.as_bytes()).issue(openid, now_ms() / 1000 + 3600)
}

/// A storefront session token that expired a minute ago.
pub fn expired_buyer_token(openid: &str) -> String {
    SessionKeys::new(DEV_SESSION_SECRET.as_bytes()).issue(openid, now_ms() / 1000 - 60)
}

/// A well-formed token signed with a secret the gateway does not know.
pub fn forged_buyer_token(openid: &str) -> String {
    SessionKeys::new(b"not-the-gateway-secret-not-the-gateway-secret")
        .issue(openid, now_ms() / 1000 + 3600)
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---- the gateway under test ------------------------------------------------

/// A gateway on an ephemeral port with its own data directory.
pub struct TestGateway {
    pub addr: SocketAddr,
    gateway: Option<Gateway>,
    data_dir: PathBuf,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        TestGateway::start_with(|_| {}).await
    }

    /// Starts a gateway on 127.0.0.1:0 after `tweak` has adjusted the config.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestGateway {
        let data_dir = unique_dir("data");
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        // The embedded WeChat Pay simulator too: tests run side by side.
        config.pay.simulator_listen = "127.0.0.1:0".into();
        config.server.shutdown_grace_seconds = 5;
        config.storage.data_dir = data_dir.clone();
        tweak(&mut config);
        let gateway = within("the gateway to start", Gateway::start(config))
            .await
            .unwrap_or_else(|error| panic!("the gateway did not start: {error}"));
        TestGateway {
            addr: gateway.local_addr,
            gateway: Some(gateway),
            data_dir,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// The embedded WeChat Pay simulator (the config has no merchant).
    pub fn simulator(&self) -> &flashgate::pay::sim::SimHandle {
        let gateway = self.gateway.as_ref().expect("running");
        gateway.simulator.as_ref().expect("an embedded simulator")
    }

    /// Shuts the gateway down; fails the test if that does not finish.
    pub async fn stop(mut self) {
        let gateway = self.gateway.take().expect("stopped once");
        within("the gateway to shut down", gateway.shutdown()).await;
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

// ---- responses -------------------------------------------------------------

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "status {} with a body that is not JSON ({error}): {}",
                self.status,
                self.text()
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// Asserts the status and returns the JSON body.
    pub fn expect_json(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        assert!(
            self.header("x-request-id")
                .is_some_and(|id| !id.trim().is_empty()),
            "every response carries x-request-id: {:?}",
            self.headers
        );
        self.json()
    }
}

/// Asserts an API error: the status, `{"error":{"code","message","request_id"}}`
/// with the code, a message, and the request id of the `x-request-id` header.
/// Returns the message.
pub fn assert_error(reply: &Reply, status: u16, code: &str) -> String {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "unexpected status; body: {}",
        reply.text()
    );
    let content_type = reply.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "error bodies are JSON, got content-type {content_type:?}"
    );
    let request_id = reply
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id header on a {status} answer"));
    assert!(!request_id.is_empty(), "empty x-request-id");
    let body = reply.json();
    let error = body
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(
        error.get("code"),
        Some(&json!(code)),
        "error code in {body}"
    );
    assert_eq!(
        error.get("request_id"),
        Some(&json!(request_id)),
        "the body's request_id is the header's: {body}"
    );
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no error message in {body}"));
    assert!(!message.is_empty(), "empty error message in {body}");
    message.to_owned()
}

// ---- the hyper client --------------------------------------------------------

/// One keep-alive HTTP/1.1 connection.
pub struct Client {
    addr: SocketAddr,
    sender: SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let sender = http1_sender(addr).await;
        Client { addr, sender }
    }

    /// Sends a request and returns the response head with its body unread.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response<Incoming> {
        let what = format!("{method} {path}");
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .expect("a valid request");
        let map = request.headers_mut();
        map.insert(
            "host",
            HeaderValue::from_str(&self.addr.to_string()).expect("host"),
        );
        if body.is_some() {
            map.insert("content-type", HeaderValue::from_static("application/json"));
        }
        for (name, value) in headers {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        within(
            &format!("the connection to be ready for {what}"),
            self.sender.ready(),
        )
        .await
        .unwrap_or_else(|error| panic!("connection closed before {what}: {error}"));
        within(
            &format!("the response to {what}"),
            self.sender.send_request(request),
        )
        .await
        .unwrap_or_else(|error| panic!("{what} failed: {error}"))
    }

    /// Sends a request and reads the whole response.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let what = format!("{method} {path}");
        let response = self.send(method, path, headers, body).await;
        let (parts, body) = response.into_parts();
        let body = within(&format!("the body of {what}"), body.collect())
            .await
            .unwrap_or_else(|error| panic!("reading the body of {what}: {error}"))
            .to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str, token: &str) -> Reply {
        let auth = bearer(token);
        self.request(Method::GET, path, &[("authorization", &auth)], None)
            .await
    }

    pub async fn get_anonymous(&mut self, path: &str) -> Reply {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn post_json(&mut self, path: &str, token: &str, body: &Value) -> Reply {
        let auth = bearer(token);
        let body = body.to_string();
        self.request(
            Method::POST,
            path,
            &[("authorization", &auth)],
            Some(body.as_bytes()),
        )
        .await
    }

    /// A POST without a body (sale actions, cancel).
    pub async fn post_empty(&mut self, path: &str, token: &str) -> Reply {
        let auth = bearer(token);
        self.request(Method::POST, path, &[("authorization", &auth)], None)
            .await
    }

    /// `POST /v1/orders` for [`SKU`].
    pub async fn order(&mut self, token: &str, key: &str, sale_id: &str, quantity: i64) -> Reply {
        let body = json!({ "sale_id": sale_id, "sku_id": SKU, "quantity": quantity });
        self.order_body(token, key, &body.to_string()).await
    }

    /// `POST /v1/orders` with a raw body.
    pub async fn order_body(&mut self, token: &str, key: &str, body: &str) -> Reply {
        let auth = bearer(token);
        self.request(
            Method::POST,
            "/v1/orders",
            &[("authorization", &auth), ("idempotency-key", key)],
            Some(body.as_bytes()),
        )
        .await
    }

    pub async fn create_sale(&mut self, body: &Value) -> Reply {
        self.post_json("/admin/v1/sales", HOST_TOKEN, body).await
    }

    pub async fn sale_action(&mut self, sale_id: &str, action: &str) -> Reply {
        self.post_empty(&format!("/admin/v1/sales/{sale_id}/{action}"), HOST_TOKEN)
            .await
    }

    pub async fn start_sale(&mut self, sale_id: &str) -> Reply {
        self.sale_action(sale_id, "start").await
    }

    /// Creates a one-item sale (see [`sale_body`]) and starts it.
    pub async fn live_sale(&mut self, sale_id: &str, stock: i64, per_user_limit: u32) {
        self.create_sale(&sale_body(sale_id, stock, per_user_limit))
            .await
            .expect_json(201);
        let view = self.start_sale(sale_id).await.expect_json(200);
        assert_eq!(view["status"], "live", "{view}");
    }

    pub async fn stats(&mut self, sale_id: &str) -> Value {
        self.get(&format!("/admin/v1/sales/{sale_id}/stats"), OPS_TOKEN)
            .await
            .expect_json(200)
    }

    /// The `remaining` of [`SKU`] as storefronts see it.
    pub async fn remaining(&mut self, sale_id: &str, token: &str) -> i64 {
        let sale = self
            .get(&format!("/v1/sales/{sale_id}"), token)
            .await
            .expect_json(200);
        sale["items"][0]["remaining"]
            .as_i64()
            .unwrap_or_else(|| panic!("no remaining in {sale}"))
    }

    /// Opens `GET path` as an event stream; the connection is the stream's.
    pub async fn events(mut self, path: &str, token: &str) -> EventStream {
        let auth = bearer(token);
        let response = self
            .send(Method::GET, path, &[("authorization", &auth)], None)
            .await;
        let (parts, body) = response.into_parts();
        EventStream {
            status: parts.status,
            headers: parts.headers,
            body,
            buffer: String::new(),
            _client: self,
        }
    }
}

/// A one-item sale: [`SKU`] at "99.00", holds of 60 s.
pub fn sale_body(sale_id: &str, stock: i64, per_user_limit: u32) -> Value {
    json!({
        "sale_id": sale_id,
        "title": "Livestream special",
        "hold_seconds": 60,
        "items": [{
            "sku_id": SKU,
            "title": "Lipstick No. 7",
            "price": "99.00",
            "stock": stock,
            "per_user_limit": per_user_limit,
        }],
    })
}

// ---- Server-Sent Events -------------------------------------------------------

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|error| panic!("event data is not JSON ({error}): {}", self.data))
    }
}

pub struct EventStream {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    buffer: String,
    _client: Client,
}

impl EventStream {
    /// The next event with a name and data; `None` once the stream has ended.
    /// Comments and `retry:` lines are skipped.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if !event.is_empty() || !data.is_empty() {
                    return Some(SseEvent { event, data });
                }
            }
            let frame = within("the next server-sent event", self.body.frame()).await?;
            let frame = frame.unwrap_or_else(|error| panic!("event stream failed: {error}"));
            if let Ok(data) = frame.into_data() {
                self.buffer
                    .push_str(std::str::from_utf8(&data).expect("UTF-8 events"));
            }
        }
    }

    /// Reads until an event named `name` arrives; returns its JSON data.
    pub async fn next_named(&mut self, name: &str) -> Value {
        loop {
            let event = self
                .next_event()
                .await
                .unwrap_or_else(|| panic!("the stream ended before a `{name}` event"));
            if event.event == name {
                return event.json();
            }
        }
    }
}

// ---- raw TCP --------------------------------------------------------------

pub async fn raw_connect(addr: SocketAddr) -> TcpStream {
    let stream = within("a TCP connection", TcpStream::connect(addr))
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {addr}: {error}"));
    let _ = stream.set_nodelay(true);
    stream
}

pub async fn raw_write(stream: &mut TcpStream, bytes: &[u8]) {
    within("a raw write", stream.write_all(bytes))
        .await
        .unwrap_or_else(|error| panic!("raw write failed: {error}"));
}

/// Reads one response with a `Content-Length` body from a raw connection.
pub async fn raw_read_response(stream: &mut TcpStream) -> Reply {
    within("a raw response", async {
        let mut buffer = Vec::new();
        let head_end = loop {
            if let Some(index) = find(&buffer, b"\r\n\r\n") {
                break index;
            }
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await.expect("raw read");
            assert!(
                read > 0,
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&buffer)
            );
            buffer.extend_from_slice(&chunk[..read]);
        };
        let head = String::from_utf8(buffer[..head_end].to_vec()).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let code: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line.split_once(':').expect("header line");
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
                HeaderValue::from_str(value.trim()).expect("header value"),
            );
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("raw responses need a content-length: {head}"));
        let mut body = buffer[head_end + 4..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let read = stream.read(&mut chunk).await.expect("raw read");
            assert!(read > 0, "connection closed inside a response body");
            body.extend_from_slice(&chunk[..read]);
        }
        body.truncate(length);
        Reply {
            status: StatusCode::from_u16(code).expect("status"),
            headers,
            body: body.into(),
        }
    })
    .await
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A raw request head ending with the blank line; `extra` lines are added as is.
pub fn raw_head(method: &str, path: &str, extra: &[String]) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: flashgate.test\r\n");
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}
