//! The connection-level client and the round driver.
//!
//! One `hyper::client::conn::http1` connection per load connection:
//! handshake once, then requests one after another on it (no pool, no
//! pipelining). A round's requests come from one shared cursor into the
//! pre-built stream, so a free connection takes the next request. With
//! several addresses (a cluster), connection `i` goes to address `i mod n`.
//!
//! Closed loop: each connection sends its next request as soon as the last
//! answer is read; latency is from the send to the whole response.
//! Open loop (`rate`): request `i` is due at `start + i / rate`; a connection
//! that takes it early waits for that time (tokio's timer has millisecond
//! ticks: it may send up to one tick early, and then latency counts from
//! the send), one that takes it late sends at once and latency counts from
//! the due time. So a stalled server is charged for the requests it kept
//! waiting (no coordinated omission).

use crate::cpu::{self, CpuSample, CpuUse};
use crate::outcome::{classify, Outcome, Outcomes};
use crate::stream::RequestStream;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub type Sender = SendRequest<Full<Bytes>>;

/// Longest a single request may take before it counts as a transport error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Latency histograms cover 1 µs to this, 3 significant digits.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Reconnects one load connection may make in a round after transport errors.
const RECONNECTS_MAX: u32 = 3;
/// An open-loop round stops sending this long after its schedule ends; what
/// is left is reported as not sent.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(30);
/// The granularity of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);

static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

pub async fn connect(addr: &str) -> Result<Sender, String> {
    let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake with {addr} failed: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole response, within [`REQUEST_TIMEOUT`].
pub async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let exchange = async {
        sender.ready().await.map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| error.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|error| error.to_string())?;
        Ok((parts.status, body.to_bytes()))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no response within {REQUEST_TIMEOUT:?}")))
}

/// A request with the headers every call carries.
pub fn request(
    method: Method,
    uri: Uri,
    host: &HeaderValue,
    authorization: Option<&HeaderValue>,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(HOST, host.clone());
    if let Some(authorization) = authorization {
        headers.insert(AUTHORIZATION, authorization.clone());
    }
    request
}

/// An order id of a 201, kept inline (ids are at most 32 characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderId {
    len: u8,
    bytes: [u8; 32],
}

impl OrderId {
    pub fn parse(text: &str) -> Option<OrderId> {
        let valid = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
        valid.then(|| {
            let mut bytes = [0u8; 32];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            OrderId {
                len: text.len() as u8,
                bytes,
            }
        })
    }

    /// The `order_id` of an order JSON body, found without parsing it all.
    pub fn from_order_body(body: &[u8]) -> Option<OrderId> {
        const FIELD: &[u8] = br#""order_id":""#;
        let start = body
            .windows(FIELD.len())
            .position(|window| window == FIELD)?
            + FIELD.len();
        let end = start + body[start..].iter().position(|&byte| byte == b'"')?;
        OrderId::parse(std::str::from_utf8(&body[start..end]).ok()?)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("ASCII by construction")
    }
}

/// A 201: the stream index of its request, the order it made, and the
/// node (index into the round's addresses) that made it.
#[derive(Clone, Copy, Debug)]
pub struct Created {
    pub index: u32,
    pub order_id: OrderId,
    pub node: u16,
}

/// How a round runs.
#[derive(Clone, Debug)]
pub struct RoundSpec {
    /// One gateway, or a cluster's nodes (connections round-robin over them).
    pub addrs: Vec<String>,
    pub connections: usize,
    /// Which of the stream's rounds to send.
    pub stream_round: usize,
    /// Open loop at this rate, or closed loop.
    pub rate: Option<f64>,
    /// Closed loop: stop taking requests after this long.
    pub duration_max: Option<Duration>,
    /// Keep the order ids of 201s (for the verification).
    pub keep_created: bool,
    /// Spawned gateways' pids, whose CPU is sampled (summed) around the round.
    pub gateway_pids: Vec<u32>,
}

/// What a round measured.
pub struct RoundResult {
    pub tool_cpu: Option<CpuUse>,
    pub gateway_cpu: Option<CpuUse>,
    pub sent: u64,
    pub not_sent: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
    pub outcomes: Outcomes,
    /// The outcomes by address (node), in the order of `RoundSpec::addrs`.
    pub outcomes_by_node: Vec<Outcomes>,
    pub created: Vec<Created>,
}

impl RoundResult {
    pub fn requests_per_second(&self) -> f64 {
        self.outcomes.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

struct Shared {
    stream: Arc<RequestStream>,
    spec: RoundSpec,
    /// `Host` of each address.
    hosts: Vec<HeaderValue>,
    cursor: AtomicUsize,
    start: Instant,
}

/// Runs one round: opens the connections (untimed), then sends the stream.
pub async fn run_round(stream: Arc<RequestStream>, spec: RoundSpec) -> Result<RoundResult, String> {
    if spec.addrs.is_empty() || spec.addrs.len() > usize::from(u16::MAX) {
        return Err(format!("{} addresses for a round", spec.addrs.len()));
    }
    let hosts = spec
        .addrs
        .iter()
        .map(|addr| HeaderValue::from_str(addr).map_err(|_| format!("bad address {addr}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut senders = Vec::with_capacity(spec.connections);
    for connection in 0..spec.connections {
        let node = connection % spec.addrs.len();
        senders.push((node, connect(&spec.addrs[node]).await?));
    }
    let tool_before = cpu::sample(None);
    let gateway_before = cpu::sample_all(&spec.gateway_pids);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        stream,
        spec,
        hosts,
        cursor: AtomicUsize::new(0),
        start,
    });
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(node, sender)| tokio::spawn(connection_loop(Arc::clone(&shared), node, sender)))
        .collect();
    let mut finished = Vec::with_capacity(tasks.len());
    for task in tasks {
        finished.push(
            task.await
                .map_err(|error| format!("a load connection panicked: {error}"))?,
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    let answered: u64 = finished.iter().map(|tally| tally.outcomes.total()).sum();
    let tool_after = cpu::sample(None);
    let gateway_after = cpu::sample_all(&shared.spec.gateway_pids);
    let mut result = merge(finished, start, shared.spec.addrs.len());
    let use_between = |before: Option<CpuSample>, after: Option<CpuSample>| {
        Some(cpu::between(&before?, &after?, seconds, answered))
    };
    result.tool_cpu = use_between(tool_before, tool_after);
    result.gateway_cpu = use_between(gateway_before, gateway_after);
    if shared.spec.rate.is_some() {
        result.not_sent = shared.stream.len() as u64 - result.sent;
    }
    Ok(result)
}

/// The connections' tallies as one round; elapsed until the last answer.
fn merge(tallies: Vec<Tally>, start: Instant, nodes: usize) -> RoundResult {
    let mut result = RoundResult {
        tool_cpu: None,
        gateway_cpu: None,
        sent: 0,
        not_sent: 0,
        elapsed: Duration::ZERO,
        latency_us: new_histogram(),
        outcomes: Outcomes::default(),
        outcomes_by_node: vec![Outcomes::default(); nodes],
        created: Vec::new(),
    };
    let mut last_answer = start;
    for tally in tallies {
        result.sent += tally.sent;
        result
            .latency_us
            .add(&tally.latency_us)
            .expect("same bounds");
        result.outcomes.merge(&tally.outcomes);
        result.outcomes_by_node[tally.node].merge(&tally.outcomes);
        result.created.extend(tally.created);
        last_answer = last_answer.max(tally.last_answer);
    }
    result.elapsed = last_answer - start;
    result
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

struct Tally {
    /// The address this connection sends to.
    node: usize,
    sent: u64,
    latency_us: Histogram<u64>,
    outcomes: Outcomes,
    created: Vec<Created>,
    last_answer: Instant,
}

async fn connection_loop(shared: Arc<Shared>, node: usize, mut sender: Sender) -> Tally {
    let spec = &shared.spec;
    let mut tally = Tally {
        node,
        sent: 0,
        latency_us: new_histogram(),
        outcomes: Outcomes::default(),
        created: Vec::new(),
        last_answer: shared.start,
    };
    let interval = spec.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let deadline = match interval {
        Some(interval) => {
            Some(shared.start + interval.mul_f64(shared.stream.len() as f64) + OPEN_LOOP_GRACE)
        }
        None => spec.duration_max.map(|duration| shared.start + duration),
    };
    let mut reconnects = 0;
    loop {
        let index = shared.cursor.fetch_add(1, Ordering::Relaxed);
        if index >= shared.stream.len() {
            break;
        }
        let due = match interval {
            Some(interval) => {
                let due = shared.start + interval.mul_f64(index as f64);
                // tokio's timer wakes on millisecond ticks, after the instant
                // asked for: wake up to a tick early rather than late, so the
                // latency measured is the server's, not the timer's.
                if let Some(early) = due.checked_sub(TIMER_TICK) {
                    if early > Instant::now() {
                        tokio::time::sleep_until(early.into()).await;
                    }
                }
                due
            }
            None => Instant::now(),
        };
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let parts = shared.stream.parts(spec.stream_round, index);
        let mut request = request(
            Method::POST,
            Uri::from_static("/v1/orders"),
            &shared.hosts[node],
            Some(parts.authorization),
            parts.body.clone(),
        );
        let headers = request.headers_mut();
        headers.insert(IDEMPOTENCY_KEY.clone(), parts.idempotency_key.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        tally.sent += 1;
        let sent = Instant::now();
        let answer = exchange(&mut sender, request).await;
        let now = Instant::now();
        tally.last_answer = now;
        // From the due time, or from the send when it went out early.
        let micros = (now - due.min(sent))
            .as_micros()
            .min(u128::from(LATENCY_US_MAX)) as u64;
        tally.latency_us.saturating_record(micros.max(1));
        match answer {
            Ok((status, body)) => {
                record_answer(&mut tally, spec.keep_created, index, status, &body)
            }
            Err(error) => {
                tally.outcomes.record_error("transport".into(), &error);
                reconnects += 1;
                match connect(&spec.addrs[node]).await {
                    Ok(fresh) if reconnects <= RECONNECTS_MAX => sender = fresh,
                    _ => break,
                }
            }
        }
    }
    tally
}

fn record_answer(
    tally: &mut Tally,
    keep_created: bool,
    index: usize,
    status: StatusCode,
    body: &Bytes,
) {
    let outcome = classify(status, body);
    match outcome {
        Outcome::Error => tally.outcomes.record_http_error(status, body),
        Outcome::Reserved => {
            tally.outcomes.record(outcome);
            if keep_created {
                match OrderId::from_order_body(body) {
                    Some(order_id) => tally.created.push(Created {
                        index: index as u32,
                        order_id,
                        node: tally.node as u16,
                    }),
                    None => tally.outcomes.record_error(
                        "201 without an order_id".into(),
                        &String::from_utf8_lossy(body),
                    ),
                }
            }
        }
        _ => tally.outcomes.record(outcome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_come_out_of_order_bodies() {
        let body = br#"{"order_id":"FG1a20d68c62000000001042","sale_id":"s","status":"reserved"}"#;
        let id = OrderId::from_order_body(body).unwrap();
        assert_eq!(id.as_str(), "FG1a20d68c62000000001042");
        assert!(OrderId::from_order_body(br#"{"sale_id":"s"}"#).is_none());
        assert!(OrderId::parse("has space").is_none());
        assert!(OrderId::parse(&"x".repeat(33)).is_none());
    }
}
