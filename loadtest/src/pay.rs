//! The `pay` scenario's second half: a fraction of a round's winners pay.
//!
//! Each payment is what a buyer's Mini Program does: `POST
//! /v1/orders/{id}/pay` for the `wx.requestPayment` arguments (timed: the
//! gateway journals `paying` after its signed prepay call to WeChat Pay, here
//! the simulator), then the buyer confirms, played by the simulator's
//! `POST /sim/v1/pay`. WeChat Pay (the simulator) then notifies the gateway;
//! the orders are read until they all show `paid`.

use crate::admin::order_status;
use crate::client::{connect, exchange, new_histogram, request, Created, Sender};
use crate::outcome::Outcomes;
use crate::plan::authority_of;
use crate::report::{percentiles, Percentiles};
use crate::stream::RequestStream;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode, Uri};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the notifications may take to make every paid order `paid`.
const PAID_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Default, Serialize)]
pub struct PayReport {
    /// Winners picked to pay.
    pub orders: u64,
    /// `/pay` calls answered 200 with a prepay id.
    pub prepaid: u64,
    /// Payments the simulator accepted.
    pub confirmed: u64,
    /// `/pay` calls per second over the paying phase.
    pub requests_per_second: f64,
    pub seconds: f64,
    /// Latency of `/pay` alone, µs.
    pub latency_us: Percentiles,
    /// Orders read as `paid` once the notifications landed.
    pub paid_seen: u64,
    /// From the last confirm until every confirmed order read `paid`.
    pub seconds_until_paid: f64,
    pub errors: Outcomes,
}

struct Shared {
    addr: String,
    sim_addr: String,
    host: HeaderValue,
    sim_host: HeaderValue,
    stream: Arc<RequestStream>,
    picked: Vec<Created>,
    cursor: AtomicUsize,
}

#[derive(Default)]
struct Tally {
    prepaid: u64,
    confirmed: u64,
    paid: Vec<Created>,
    errors: Outcomes,
}

/// Pays `fraction` of `created` (evenly picked) over `connections` connections.
pub async fn pay_winners(
    addr: &str,
    sim_url: &str,
    stream: &Arc<RequestStream>,
    created: &[Created],
    fraction: f64,
    connections: usize,
) -> Result<PayReport, String> {
    let count = ((created.len() as f64) * fraction).round() as usize;
    let stride = created.len().checked_div(count).unwrap_or(usize::MAX);
    let picked: Vec<Created> = created
        .iter()
        .step_by(stride.max(1))
        .take(count)
        .copied()
        .collect();
    let sim_addr = authority_of(sim_url)?;
    let shared = Arc::new(Shared {
        host: HeaderValue::from_str(addr).map_err(|_| format!("bad address {addr}"))?,
        sim_host: HeaderValue::from_str(&sim_addr)
            .map_err(|_| format!("bad address {sim_addr}"))?,
        addr: addr.to_owned(),
        sim_addr,
        stream: Arc::clone(stream),
        picked,
        cursor: AtomicUsize::new(0),
    });
    let mut tasks = Vec::new();
    for _ in 0..connections.min(shared.picked.len()) {
        let gateway = connect(&shared.addr).await?;
        let simulator = connect(&shared.sim_addr).await?;
        tasks.push(tokio::spawn(pay_loop(
            Arc::clone(&shared),
            gateway,
            simulator,
        )));
    }
    let started = Instant::now();
    let mut latency = new_histogram();
    let mut tally = Tally::default();
    for task in tasks {
        let (part, histogram) = task
            .await
            .map_err(|error| format!("a payer panicked: {error}"))?;
        latency.add(&histogram).expect("same bounds");
        tally.prepaid += part.prepaid;
        tally.confirmed += part.confirmed;
        tally.paid.extend(part.paid);
        tally.errors.merge(&part.errors);
    }
    let seconds = started.elapsed().as_secs_f64();
    let waited = Instant::now();
    let paid_seen = wait_until_paid(&shared, &tally.paid).await?;
    Ok(PayReport {
        orders: shared.picked.len() as u64,
        prepaid: tally.prepaid,
        confirmed: tally.confirmed,
        requests_per_second: tally.prepaid as f64 / seconds.max(1e-9),
        seconds,
        latency_us: percentiles(&latency),
        paid_seen,
        seconds_until_paid: waited.elapsed().as_secs_f64(),
        errors: tally.errors,
    })
}

async fn pay_loop(
    shared: Arc<Shared>,
    mut gateway: Sender,
    mut simulator: Sender,
) -> (Tally, Histogram<u64>) {
    let mut tally = Tally::default();
    let mut latency = new_histogram();
    loop {
        let next = shared.cursor.fetch_add(1, Ordering::Relaxed);
        let Some(order) = shared.picked.get(next) else {
            break;
        };
        let id = order.order_id.as_str();
        let uri: Uri = format!("/v1/orders/{id}/pay")
            .parse()
            .expect("path-safe id");
        let authorization = shared.stream.authorization(order.index as usize);
        let call = request(
            Method::POST,
            uri,
            &shared.host,
            Some(authorization),
            Bytes::new(),
        );
        let sent = Instant::now();
        let answer = exchange(&mut gateway, call).await;
        latency.saturating_record((sent.elapsed().as_micros() as u64).max(1));
        let prepay_id = match answer {
            Ok((StatusCode::OK, body)) => prepay_id(&body),
            Ok((status, body)) => {
                tally.errors.record_http_error(status, &body);
                continue;
            }
            Err(error) => {
                tally.errors.record_error("pay transport".into(), &error);
                match connect(&shared.addr).await {
                    Ok(fresh) => gateway = fresh,
                    Err(_) => break,
                }
                continue;
            }
        };
        let Some(prepay_id) = prepay_id else {
            tally
                .errors
                .record_error("pay answer without prepay_id".into(), id);
            continue;
        };
        tally.prepaid += 1;
        let body = Bytes::from(serde_json::json!({ "prepay_id": prepay_id }).to_string());
        let mut confirm = request(
            Method::POST,
            Uri::from_static("/sim/v1/pay"),
            &shared.sim_host,
            None,
            body,
        );
        confirm
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match exchange(&mut simulator, confirm).await {
            Ok((StatusCode::OK, _)) => {
                tally.confirmed += 1;
                tally.paid.push(*order);
            }
            Ok((status, body)) => tally.errors.record_error(
                format!("simulator {status}"),
                &String::from_utf8_lossy(&body),
            ),
            Err(error) => tally
                .errors
                .record_error("simulator transport".into(), &error),
        }
    }
    (tally, latency)
}

fn prepay_id(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    answer["prepay_id"].as_str().map(str::to_owned)
}

/// Reads the paid orders until each shows `paid` or [`PAID_WAIT`] passes;
/// returns how many did.
async fn wait_until_paid(shared: &Shared, paid: &[Created]) -> Result<u64, String> {
    let deadline = Instant::now() + PAID_WAIT;
    let mut sender = connect(&shared.addr).await?;
    let mut pending: Vec<Created> = paid.to_vec();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut still = Vec::new();
        for order in pending {
            let uri: Uri = format!("/v1/orders/{}", order.order_id.as_str())
                .parse()
                .expect("path-safe id");
            let authorization = shared.stream.authorization(order.index as usize);
            let read = request(
                Method::GET,
                uri,
                &shared.host,
                Some(authorization),
                Bytes::new(),
            );
            match exchange(&mut sender, read).await {
                Ok((StatusCode::OK, body))
                    if order_status(&body, &order.order_id).as_deref() == Some("paid") => {}
                Ok(_) => still.push(order),
                Err(_) => {
                    still.push(order);
                    sender = connect(&shared.addr).await?;
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok((paid.len() - pending.len()) as u64)
}
