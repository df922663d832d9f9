//! Ops routes: `/metrics`, `/healthz`, `/readyz`. Unauthenticated, as
//! scrapers and load balancers expect; they reveal no order data.

use crate::http::body::{bytes_response, json_response, ResponseBody};
use crate::http::AppState;
use crate::metrics as names;
use http::{Response, StatusCode};
use std::sync::atomic::Ordering;

pub fn metrics(state: &AppState) -> Response<ResponseBody> {
    for sale in state.engine.sales() {
        for (spec, item) in sale.spec.items.iter().zip(sale.items.iter()) {
            let counts = item.stock.counts();
            let labels = [
                ("sale_id", sale.id().to_owned()),
                ("sku_id", spec.sku_id.clone()),
            ];
            metrics::gauge!(names::STOCK_REMAINING, &labels).set(counts.remaining as f64);
            metrics::gauge!(names::STOCK_TOTAL, &labels).set(counts.stock as f64);
        }
    }
    // Scrapes are not counted in flight (they bypass admission).
    let in_flight = state.admission.in_flight();
    metrics::gauge!(names::HTTP_REQUESTS_IN_FLIGHT).set(in_flight as f64);
    metrics::gauge!(names::SSE_STREAMS).set(state.sse_streams.load(Ordering::Acquire) as f64);
    metrics::gauge!(names::HOLDS_PENDING).set(state.engine.holds_pending() as f64);
    let durable_seq = state.journal.durable_seq();
    let (lag_records, lag_seconds) = state.store.lag(durable_seq, crate::clock::now_ms());
    metrics::gauge!(names::JOURNAL_DURABLE_SEQ).set(durable_seq as f64);
    metrics::gauge!(names::STORE_APPLIED_SEQ).set(state.store.applied_seq() as f64);
    metrics::gauge!(names::STORE_LAG_RECORDS).set(lag_records as f64);
    metrics::gauge!(names::STORE_LAG_SECONDS).set(lag_seconds);
    readiness(state);
    let text = crate::metrics::render();
    bytes_response(StatusCode::OK, "text/plain; version=0.0.4", text.into())
}

pub fn healthz() -> Response<ResponseBody> {
    json_response(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// Ready unless draining, the journal cannot be written (then every change
/// would fail: a load balancer should send buyers elsewhere), the store
/// lags more than `storage.store_lag_seconds_max` behind the journal, or
/// (a cluster node) Redis is unreachable and the node has nothing left to
/// sell without it.
///
/// A cluster node whose Redis is unreachable but that still holds unsold
/// leased units of a sale taking orders (and checks buyers' limits on its
/// own meanwhile, `cluster.limits_without_redis = "local"`) stays ready
/// (200) and says so:
/// `{"status":"ready","degraded":"redis_unreachable"}`. It sells those
/// units without Redis; taking it out of rotation would strand them until
/// Redis returns. Once they are spent it can only answer 503 `OVERLOADED`,
/// so it is unready (`{"status":"redis_unreachable"}`) until a Redis call
/// succeeds again.
pub fn readyz(state: &AppState) -> Response<ResponseBody> {
    match readiness(state) {
        Some(status) => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "status": status }),
        ),
        None if redis_unreachable(state) => json_response(
            StatusCode::OK,
            &serde_json::json!({ "status": "ready", "degraded": "redis_unreachable" }),
        ),
        None => json_response(StatusCode::OK, &serde_json::json!({ "status": "ready" })),
    }
}

/// Every reason `/readyz` may fail for, each exported as a gauge.
pub const UNREADY_REASONS: [&str; 4] = [
    "draining",
    "journal_unavailable",
    "store_lagging",
    "redis_unreachable",
];

/// The one readiness decision, for `/readyz` and for the `flashgate_ready`
/// and `flashgate_unready{reason}` gauges (set on every call, so a scrape
/// sees what a probe would, even when nothing probes).
fn readiness(state: &AppState) -> Option<&'static str> {
    let unready = if state.draining.load(Ordering::Acquire) {
        Some("draining")
    } else if !state.journal.is_healthy() {
        Some("journal_unavailable")
    } else if store_lag_seconds(state) > state.config.storage.store_lag_seconds_max as f64 {
        Some("store_lagging")
    } else if redis_unreachable(state) && !sells_without_redis(state) {
        Some("redis_unreachable")
    } else {
        None
    };
    debug_assert!(unready.is_none_or(|reason| UNREADY_REASONS.contains(&reason)));
    metrics::gauge!(names::READY).set(if unready.is_none() { 1.0 } else { 0.0 });
    for reason in UNREADY_REASONS {
        let value = if unready == Some(reason) { 1.0 } else { 0.0 };
        metrics::gauge!(names::UNREADY, "reason" => reason).set(value);
    }
    unready
}

fn store_lag_seconds(state: &AppState) -> f64 {
    state
        .store
        .lag(state.journal.durable_seq(), crate::clock::now_ms())
        .1
}

/// A cluster node whose last Redis call could not reach it.
fn redis_unreachable(state: &AppState) -> bool {
    state
        .cluster
        .as_ref()
        .is_some_and(|cluster| !cluster.registry().link().reachable())
}

/// Whether some sale taking orders still has unreserved units here: what a
/// cluster node sells from its leases while Redis is away (unless its
/// buyers' limits must be checked in Redis: `limits_without_redis = "refuse"`).
fn sells_without_redis(state: &AppState) -> bool {
    let refuses = state.cluster.as_ref().is_some_and(|cluster| {
        cluster.limits_without_redis() == crate::config::LimitsWithoutRedis::Refuse
    });
    if refuses {
        return false;
    }
    let now = crate::clock::now_ms();
    state.engine.sales().iter().any(|sale| {
        sale.takes_orders(now) && sale.items.iter().any(|item| item.stock.remaining() > 0)
    })
}
