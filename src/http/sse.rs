//! Server-Sent Events of one sale: `GET /v1/sales/{id}/events` (status and
//! stock, for storefronts) and `GET /admin/v1/sales/{id}/stats/events`
//! (status and the admin stats, for the host console). One machinery, two
//! [`Feed`]s: they differ only in who may open them and in the snapshot
//! sent beside `status`.
//!
//! Coalesced by construction: each stream samples the sale at most five
//! times a second and sends only what changed, so a burst of ten thousand
//! orders costs a viewer at most five snapshot events a second and the order
//! path nothing at all. A slow reader skips samples instead of queueing them.
//! Streams (of both feeds together) are bounded by `server.sse_streams_max`
//! and end on shutdown, when the client leaves, or once the sale has ended; a
//! request for an ended sale gets 204 No Content, which tells an
//! `EventSource` to stop reconnecting.

use crate::clock::now_ms;
use crate::http::auth::Role;
use crate::http::body::ResponseBody;
use crate::http::error::ApiError;
use crate::http::storefront::check_host_id;
use crate::http::AppState;
use crate::sale::views::SaleStats;
use crate::sale::Sale;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// Chunks buffered per stream; a reader this far behind skips samples.
const STREAM_BUFFER_CHUNKS: usize = 4;

/// What a stream carries beside `status` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// `stock` events: every item's stock and remaining (storefronts).
    Stock,
    /// `stats` events: the admin stats of the sale (host console).
    Stats,
}

impl Feed {
    fn event_name(self) -> &'static str {
        match self {
            Feed::Stock => "stock",
            Feed::Stats => "stats",
        }
    }

    /// The snapshot's `data`, compared with the last one sent.
    fn snapshot(self, sale: &Sale, now: i64) -> String {
        match self {
            Feed::Stock => stock_data(sale),
            Feed::Stats => serde_json::to_string(&SaleStats::of(sale, now))
                .expect("stats serialise: strings, integers and maps with string keys"),
        }
    }
}

/// `GET /v1/sales/{id}/events`: a buyer or any admin.
pub fn stock_stream(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    sale_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    state.caller(headers)?;
    open(state, sale_id, Feed::Stock)
}

/// `GET /admin/v1/sales/{id}/stats/events`: an admin token, role ops.
pub fn stats_stream(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    sale_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    state.admin(headers, Role::Ops)?;
    open(state, sale_id, Feed::Stats)
}

/// Opens a stream of `feed` for an authenticated caller: 204 for an ended
/// sale, 503 beyond `server.sse_streams_max`.
fn open(
    state: &Arc<AppState>,
    sale_id: &str,
    feed: Feed,
) -> Result<Response<ResponseBody>, ApiError> {
    check_host_id("sale_id", sale_id)?;
    let sale = state.engine.sale(sale_id)?;
    if sale.display_status(now_ms()) == "ended" {
        // 204 tells an EventSource to stop reconnecting: nothing will change.
        let mut response = Response::new(ResponseBody::Full(None));
        *response.status_mut() = StatusCode::NO_CONTENT;
        return Ok(response);
    }
    let open = state.sse_streams.fetch_add(1, Ordering::AcqRel);
    if open >= state.config.server.sse_streams_max {
        state.sse_streams.fetch_sub(1, Ordering::AcqRel);
        let retry = state.config.server.retry_after_seconds;
        return Err(ApiError::overloaded("too many event streams open", retry));
    }
    let (sender, receiver) = mpsc::channel(STREAM_BUFFER_CHUNKS);
    tokio::spawn(run(Arc::clone(state), sale, feed, sender));
    let mut response = Response::new(ResponseBody::Stream(receiver));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Samples the sale and sends what changed until the client leaves, the
/// sale ends or the server shuts down.
async fn run(state: Arc<AppState>, sale: Arc<Sale>, feed: Feed, sender: mpsc::Sender<Bytes>) {
    let mut shutdown = state.shutdown.clone();
    let mut sample = tokio::time::interval(SAMPLE_INTERVAL);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_status = "";
    let mut last_snapshot = String::new();
    let mut last_sent = tokio::time::Instant::now();
    let _ = sender.try_send(Bytes::from_static(b"retry: 1000\n\n"));
    loop {
        tokio::select! {
            _ = sample.tick() => {}
            _ = shutdown.triggered() => break,
            _ = sender.closed() => break,
        }
        let now = now_ms();
        let status = sale.display_status(now);
        let mut chunk = String::new();
        if status != last_status {
            chunk.push_str(&status_event(&sale, status));
        }
        let snapshot = feed.snapshot(&sale, now);
        if snapshot != last_snapshot {
            let name = feed.event_name();
            chunk.push_str(&format!("event: {name}\ndata: {snapshot}\n\n"));
        }
        if chunk.is_empty() && last_sent.elapsed() >= HEARTBEAT_INTERVAL {
            chunk.push_str(": keep-alive\n\n");
        }
        if chunk.is_empty() {
            continue;
        }
        match sender.try_send(Bytes::from(chunk)) {
            Ok(()) => {
                last_status = status;
                last_snapshot = snapshot;
                last_sent = tokio::time::Instant::now();
            }
            Err(mpsc::error::TrySendError::Full(_)) => continue, // slow reader: resend later
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
        if status == "ended" {
            break;
        }
    }
    state.sse_streams.fetch_sub(1, Ordering::AcqRel);
}

fn status_event(sale: &Sale, status: &str) -> String {
    let data = serde_json::json!({ "sale_id": sale.id(), "status": status });
    format!("event: status\ndata: {data}\n\n")
}

fn stock_data(sale: &Sale) -> String {
    let items: Vec<_> = sale
        .spec
        .items
        .iter()
        .zip(sale.items.iter())
        .map(|(spec, item)| {
            let counts = item.stock.counts();
            serde_json::json!({
                "sku_id": spec.sku_id,
                "stock": counts.stock,
                "remaining": counts.remaining,
                "sold_out": counts.remaining == 0,
            })
        })
        .collect();
    serde_json::json!({ "sale_id": sale.id(), "items": items }).to_string()
}
