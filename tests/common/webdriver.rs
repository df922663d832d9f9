//! A small W3C WebDriver client for the browser tests: `chromedriver` started
//! on a free port, one headless Chromium session, and the handful of
//! commands the tests use (navigate, find, click, type, read text, run a
//! script, screenshot, wait until a condition holds).
//!
//! The JSON calls go over the tests' own hyper HTTP/1.1 client rather than a
//! WebDriver crate: a dozen endpoints do not justify a dependency tree on a
//! two-core build. Every call and every wait has a deadline and fails the
//! test with what it was waiting for. Chromium and chromedriver are
//! required, never skipped: scripts/install-test-deps.sh installs them.

use crate::common::{free_port, http1_sender, Scratch};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "chromedriver";
/// The key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// A command's deadline; starting the browser may take this long on a busy machine.
const COMMAND_WAIT: Duration = Duration::from_secs(30);
/// How long `wait_until` polls before it fails the test.
pub const CONDITION_WAIT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// chromedriver and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    driver_addr: SocketAddr,
    session: String,
    _profile: Scratch,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub async fn start() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: run scripts/install-test-deps.sh"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run {CHROMEDRIVER} ({error}): run scripts/install-test-deps.sh")
            });
        let profile = Scratch::new("chromium-profile");
        let mut browser = Browser {
            driver,
            driver_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            session: String::new(),
            _profile: profile,
        };
        browser.wait_for_driver().await;
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", browser._profile.0.display()),
                ],
            },
        }}});
        let answer = browser
            .call(Method::POST, "/session", Some(capabilities))
            .await;
        browser.session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in the new session's answer: {answer}"))
            .to_owned();
        browser
    }

    async fn wait_for_driver(&mut self) {
        let deadline = Instant::now() + COMMAND_WAIT;
        loop {
            if let Some(status) = self.driver.try_wait().expect("poll chromedriver") {
                panic!("chromedriver exited at start ({status}): run scripts/install-test-deps.sh");
            }
            if tokio::net::TcpStream::connect(self.driver_addr)
                .await
                .is_ok()
            {
                let status = self.call(Method::GET, "/status", None).await;
                if status["ready"] == true {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready within {COMMAND_WAIT:?}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// One WebDriver command; returns its `value`, failing on a WebDriver error.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("WebDriver {method} {path}");
        let exchange = async {
            let mut sender = http1_sender(self.driver_addr).await;
            let bytes = body.map(|body| body.to_string()).unwrap_or_default();
            let request = Request::builder()
                .method(method.clone())
                .uri(path)
                .header("host", self.driver_addr.to_string())
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(bytes)))
                .expect("a valid request");
            let response = sender
                .send_request(request)
                .await
                .unwrap_or_else(|error| panic!("{what} failed: {error}"));
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .unwrap_or_else(|error| panic!("{what}: reading the answer: {error}"))
                .to_bytes();
            (status, body)
        };
        let (status, body) = tokio::time::timeout(COMMAND_WAIT, exchange)
            .await
            .unwrap_or_else(|_| panic!("timed out after {COMMAND_WAIT:?} waiting for {what}"));
        let answer: Value = serde_json::from_slice(&body).unwrap_or_else(|error| {
            panic!(
                "{what}: answer is not JSON ({error}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "{what} failed with {status}: {}",
            value
        );
        value
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn navigate(&self, url: &str) {
        self.call(
            Method::POST,
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )
        .await;
    }

    pub async fn current_url(&self) -> String {
        let url = self
            .call(Method::GET, &self.session_path("/url"), None)
            .await;
        url.as_str().unwrap_or_default().to_owned()
    }

    /// The element matching `css`, waiting for it to exist.
    pub async fn find(&self, css: &str) -> Element<'_> {
        let found = self
            .wait_until(
                &format!("an element matching `{css}`"),
                &format!("return document.querySelector({}) !== null;", json!(css)),
            )
            .await;
        debug_assert_eq!(found, true);
        let answer = self
            .call(
                Method::POST,
                &self.session_path("/element"),
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        let id = answer[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for `{css}`: {answer}"))
            .to_owned();
        Element {
            browser: self,
            id,
            css: css.to_owned(),
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            Method::POST,
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Polls `script` until it returns something other than null, false,
    /// 0 or ""; returns that value. Fails after [`CONDITION_WAIT`] with the
    /// last value and the page's visible messages.
    pub async fn wait_until(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + CONDITION_WAIT;
        loop {
            let value = self.execute(script, json!([])).await;
            let holds = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if holds {
                return value;
            }
            if Instant::now() >= deadline {
                let page = self.execute(PAGE_MESSAGES, json!([])).await;
                panic!(
                    "timed out after {CONDITION_WAIT:?} waiting for {what}\n\
                     last value: {value}\npage: {page}"
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until the text of the element matching `css` is `expected`.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        let script = format!(
            "const e = document.querySelector({}); return e !== null && e.textContent.trim() === {};",
            json!(css),
            json!(expected)
        );
        self.wait_until(&format!("`{css}` to read {expected:?}"), &script)
            .await;
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        let data = self
            .call(Method::GET, &self.session_path("/screenshot"), None)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("a base64 screenshot"))
            .expect("valid base64")
    }

    /// Ends the session over a plain blocking socket: `Drop` cannot await,
    /// and the browser must not outlive the test.
    fn delete_session_blocking(&self) {
        if self.session.is_empty() {
            return;
        }
        let Ok(mut stream) = std::net::TcpStream::connect(self.driver_addr) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            self.session, self.driver_addr
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.delete_session_blocking();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// What a failed wait prints: the console's visible state and messages.
const PAGE_MESSAGES: &str = r#"
const text = (id) => { const e = document.getElementById(id); return e ? e.textContent.trim() : null; };
return {
  url: location.href,
  stream: text("stream-state"), stream_note: text("stream-note"), status: text("sale-status"),
  sign_in_error: text("sign-in-error"), action_error: text("action-error"),
  create_error: text("create-error"), sales_error: text("sales-error"),
};
"#;

/// A found element.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    css: String,
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        self.browser
            .session_path(&format!("/element/{}{rest}", self.id))
    }

    pub async fn click(&self) {
        self.browser
            .call(Method::POST, &self.path("/click"), Some(json!({})))
            .await;
    }

    /// Clears the field and types `text` into it.
    pub async fn type_text(&self, text: &str) {
        self.browser
            .call(Method::POST, &self.path("/clear"), Some(json!({})))
            .await;
        self.browser
            .call(
                Method::POST,
                &self.path("/value"),
                Some(json!({ "text": text })),
            )
            .await;
    }

    pub async fn text(&self) -> String {
        let text = self
            .browser
            .call(Method::GET, &self.path("/text"), None)
            .await;
        text.as_str()
            .unwrap_or_else(|| panic!("no text for `{}`: {text}", self.css))
            .to_owned()
    }

    pub async fn is_enabled(&self) -> bool {
        let enabled = self
            .browser
            .call(Method::GET, &self.path("/enabled"), None)
            .await;
        enabled
            .as_bool()
            .unwrap_or_else(|| panic!("no enabled state for `{}`: {enabled}", self.css))
    }
}
