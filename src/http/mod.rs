//! HTTP: hyper 1.x, HTTP/1.1 keep-alive. Thin adapters: each handler parses
//! and authenticates, calls the engine, maps the result. This file owns the
//! per-request frame: request id, admission (bounded in-flight requests,
//! 503 beyond), routing, the one error-to-response mapping, and metrics.

pub mod admin;
pub mod admission;
pub mod auth;
pub mod body;
pub mod console;
pub mod error;
pub mod ops;
pub mod payments;
pub mod router;
pub mod server;
pub mod sse;
pub mod storefront;

use crate::config::Config;
use crate::http::auth::{bearer_token, AdminTokens, Role, SessionKeys};
use crate::http::body::{error_response, ResponseBody};
use crate::http::error::ApiError;
use crate::http::router::Route;
use crate::journal::Journal;
use crate::metrics as names;
use crate::payments::Payments;
use crate::sale::Engine;
use crate::shutdown::Shutdown;
use crate::store::feeder::FeederStatus;
use http::{header, HeaderMap, HeaderValue, Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Instant;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Everything a handler may touch, shared by all connections.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub journal: Arc<Journal>,
    pub store: Arc<FeederStatus>,
    pub payments: Arc<Payments>,
    pub config: Config,
    pub sessions: SessionKeys,
    pub admins: AdminTokens,
    pub shutdown: Shutdown,
    pub draining: AtomicBool,
    /// Requests handled at once, up to `server.requests_in_flight_max`.
    pub admission: admission::Admission,
    pub sse_streams: AtomicUsize,
    /// A cluster node's side of the Redis protocol; `None` for a node alone.
    pub cluster: Option<Arc<crate::cluster::ClusterNode>>,
}

/// Who is calling: a buyer (from the session token) or an admin role.
pub enum Caller {
    Buyer(String),
    Admin(Role),
}

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        journal: Arc<Journal>,
        store: Arc<FeederStatus>,
        payments: Arc<Payments>,
        config: Config,
        shutdown: Shutdown,
    ) -> Result<AppState, String> {
        let admins = AdminTokens::parse(&config.auth.admin_tokens)?;
        let admission = admission::Admission::new(config.server.requests_in_flight_max);
        Ok(AppState {
            engine,
            journal,
            store,
            payments,
            sessions: SessionKeys::new(config.auth.session_secret.as_bytes()),
            admins,
            config,
            shutdown,
            draining: AtomicBool::new(false),
            admission,
            sse_streams: AtomicUsize::new(0),
            cluster: None,
        })
    }

    /// The buyer named by the session token.
    pub fn buyer(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let token = bearer_token(headers.get(header::AUTHORIZATION))?;
        Ok(self.sessions.verify(token, crate::clock::now_ms() / 1000)?)
    }

    /// An admin token whose role allows `required`: 401 unknown, 403 too weak.
    pub fn admin(&self, headers: &HeaderMap, required: Role) -> Result<Role, ApiError> {
        let token = bearer_token(headers.get(header::AUTHORIZATION))?;
        let role = self.admins.authenticate(token)?;
        if !role.allows(required) {
            return Err(ApiError::forbidden(format!(
                "the {} role cannot do this; it needs {}",
                role.as_str(),
                required.as_str()
            )));
        }
        Ok(role)
    }

    /// A buyer or any admin: read-only storefront routes accept both.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let token = bearer_token(headers.get(header::AUTHORIZATION))?;
        // A session token is a JWT (three dot-separated parts); admin tokens are opaque.
        if token.bytes().filter(|&byte| byte == b'.').count() == 2 {
            return self.buyer(headers).map(Caller::Buyer);
        }
        Ok(Caller::Admin(self.admins.authenticate(token)?))
    }

    fn request_id(&self, headers: &HeaderMap) -> HeaderValue {
        let echoed = headers.get(REQUEST_ID_HEADER).filter(|value| {
            let bytes = value.as_bytes();
            (1..=128).contains(&bytes.len()) && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
        });
        match echoed {
            Some(value) => value.clone(),
            None => HeaderValue::from_bytes(&generated_request_id(next_request_id()))
                .expect("hex is a valid header"),
        }
    }
}

/// Bits of a generated request id below the thread's slot.
const REQUEST_ID_SEQUENCE_BITS: u32 = 40;

/// A request id unique in this process without a counter every thread
/// writes (see [`crate::stripes`]): the thread's slot above its own
/// sequence, 2^40 requests a thread.
fn next_request_id() -> u64 {
    thread_local! {
        static SEQUENCE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let sequence = SEQUENCE.with(|sequence| {
        let next = sequence.get().wrapping_add(1) & ((1 << REQUEST_ID_SEQUENCE_BITS) - 1);
        sequence.set(next);
        next
    });
    ((crate::stripes::thread_slot() as u64) << REQUEST_ID_SEQUENCE_BITS) | sequence
}

/// `fg-` and the id as 16 lowercase hex digits, without `format!`: this
/// runs for every request.
fn generated_request_id(id: u64) -> [u8; 19] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = *b"fg-0000000000000000";
    for (index, byte) in text[3..].iter_mut().enumerate() {
        *byte = HEX[((id >> (60 - 4 * index)) & 0xf) as usize];
    }
    text
}

/// The service function: one call per request.
pub async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let request_id = state.request_id(request.headers());
    let (parts, body) = request.into_parts();
    let route = router::resolve(&parts.method, parts.uri.path());
    // Probes and scrapes bypass admission: a node at capacity is still alive,
    // and shedding its health checks would get it restarted mid-sale.
    let exempt = matches!(route, Route::Metrics | Route::Healthz | Route::Readyz);
    // Held until the answer is made.
    let permit = (!exempt).then(|| state.admission.enter());
    let admitted = permit.as_ref().is_none_or(Option::is_some);
    let label = route.label();
    let outcome = if admitted {
        dispatch(&state, route, &parts, body).await
    } else {
        metrics::counter!(names::HTTP_REQUESTS_SHED_TOTAL).increment(1);
        let retry = state.config.server.retry_after_seconds;
        Err(ApiError::overloaded(
            "too many requests in flight; retry shortly",
            retry,
        ))
    };
    let mut response = outcome
        .unwrap_or_else(|error| error_response(&error, request_id.to_str().unwrap_or_default()));
    response.headers_mut().insert(REQUEST_ID_HEADER, request_id);
    let status = response.status().as_u16();
    crate::metrics::record_request(label, status_label(status), started.elapsed().as_secs_f64());
    Ok(response)
}

async fn dispatch(
    state: &Arc<AppState>,
    route: Route<'_>,
    parts: &http::request::Parts,
    body: Incoming,
) -> Result<Response<ResponseBody>, ApiError> {
    let headers = &parts.headers;
    match route {
        Route::SaleGet(sale_id) => storefront::get_sale(state, headers, sale_id),
        Route::SaleEvents(sale_id) => sse::stock_stream(state, headers, sale_id),
        Route::OrderCreate => storefront::create_order(state, headers, body).await,
        Route::OrderGet(order_id) => storefront::get_order(state, headers, order_id),
        Route::OrderCancel(order_id) => storefront::cancel_order(state, headers, order_id).await,
        Route::OrderPay(order_id) => payments::pay_order(state, headers, order_id).await,
        Route::PaymentNotify => payments::wechat_notify(state, headers, body).await,
        Route::AdminRefund(order_id) => payments::refund_order(state, headers, order_id).await,
        Route::AdminSaleCreate => admin::create_sale(state, headers, body).await,
        Route::AdminSaleList => admin::list_sales(state, headers),
        Route::AdminSession => admin::session(state, headers),
        Route::AdminSaleAction(sale_id, action) => {
            admin::sale_action(state, headers, sale_id, action).await
        }
        Route::AdminRestock(sale_id, sku_id) => {
            admin::restock(state, headers, body, sale_id, sku_id).await
        }
        Route::AdminStats(sale_id) => admin::stats(state, headers, sale_id).await,
        Route::AdminStatsEvents(sale_id) => sse::stats_stream(state, headers, sale_id),
        Route::AdminOrderGet(order_id) => admin::get_order(state, headers, order_id),
        Route::ConsoleRedirect => Ok(console::redirect()),
        Route::ConsoleAsset(name) => console::asset(name),
        Route::Metrics => Ok(ops::metrics(state)),
        Route::Healthz => Ok(ops::healthz()),
        Route::Readyz => Ok(ops::readyz(state)),
        Route::MethodNotAllowed(_, allowed) => Err(ApiError::method_not_allowed(allowed)),
        Route::NotFound => Err(ApiError::not_found(format!(
            "no route for {} {}",
            parts.method,
            parts.uri.path()
        ))),
    }
}

/// Status codes as static labels, so recording a metric allocates nothing.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        _ => "other",
    }
}

/// Which stock shard this worker thread tries first: threads spread over
/// the shards so concurrent reservations rarely touch the same cache line.
pub fn shard_hint() -> usize {
    crate::stripes::thread_slot()
}

#[cfg(test)]
mod request_id_tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_fg_and_sixteen_hex_digits() {
        for id in [0u64, 1, 0xabc, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(
                std::str::from_utf8(&generated_request_id(id)).unwrap(),
                format!("fg-{id:016x}")
            );
        }
    }

    #[test]
    fn generated_request_ids_differ_within_and_across_threads() {
        let here: Vec<u64> = (0..3).map(|_| next_request_id()).collect();
        assert!(
            here.windows(2).all(|pair| pair[1] == pair[0] + 1),
            "{here:?}"
        );
        let there = std::thread::spawn(next_request_id).join().unwrap();
        assert_ne!(
            there >> REQUEST_ID_SEQUENCE_BITS,
            here[0] >> REQUEST_ID_SEQUENCE_BITS
        );
        assert!(!here.contains(&there));
    }
}
