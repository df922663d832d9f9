//! Storefront routes (`/v1`): read a sale, place, read and cancel orders.

use crate::clock::now_ms;
use crate::cluster::LimitRefusal;
use crate::http::body::{json_response, order_response, parse_json, read_body, ResponseBody};
use crate::http::error::ApiError;
use crate::http::{shard_hint, AppState};
use crate::ids::{is_valid_host_id, is_valid_idempotency_key, is_valid_order_id};
use crate::inventory::OrderRequest;
use crate::metrics as names;
use crate::sale::{PlaceOrder, RejectReason, SaleError};
use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use std::sync::Arc;

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrder {
    sale_id: String,
    sku_id: String,
    quantity: i64,
}

pub fn get_sale(
    state: &AppState,
    headers: &HeaderMap,
    sale_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    state.caller(headers)?;
    check_host_id("sale_id", sale_id)?;
    let view = state.engine.sale_view(sale_id, now_ms())?;
    Ok(json_response(StatusCode::OK, &view))
}

pub async fn create_order(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<ResponseBody>, ApiError> {
    let buyer = state.buyer(headers)?;
    let key = headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|key| is_valid_idempotency_key(key))
        .ok_or_else(|| {
            ApiError::invalid("Idempotency-Key header: required, 1-64 printable ASCII characters")
        })?;
    let bytes = read_body(headers, body, state.config.server.body_bytes_max).await?;
    let order: CreateOrder = parse_json(&bytes)?;
    check_host_id("sale_id", &order.sale_id)?;
    check_host_id("sku_id", &order.sku_id)?;
    let quantity = u32::try_from(order.quantity)
        .ok()
        .filter(|quantity| *quantity >= 1)
        .ok_or_else(|| ApiError::invalid("quantity: must be a whole number of at least 1"))?;
    let request = OrderRequest {
        sale_id: order.sale_id,
        sku_id: order.sku_id,
        quantity,
    };
    let placed = match &state.cluster {
        None => place(state, &buyer, key, request)?,
        Some(cluster) => place_leased(state, cluster, &buyer, key, request).await?,
    };
    // The 2xx waits for the order's record (a replay, for its original's).
    placed.commit.durable().await?;
    let status = if placed.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(order_response(status, &placed.order))
}

fn place(
    state: &AppState,
    buyer: &str,
    key: &str,
    request: OrderRequest,
) -> Result<crate::sale::Placed, SaleError> {
    let command = PlaceOrder {
        buyer,
        idempotency_key: key,
        request,
        shard_hint: shard_hint(),
    };
    let result = state.engine.place_order(command, now_ms());
    crate::metrics::count_reservation(outcome_label(&result));
    result
}

/// A cluster node's order: the buyer's units are counted across the nodes
/// first (`cluster::limits`), then the same reservation on the leased
/// stock. A reservation that finds the lease empty waits briefly for the
/// refill and tries once more; `SOLD_OUT` only when the global stock is
/// spent, else 503 with Retry-After (units remain on other nodes or in Redis).
async fn place_leased(
    state: &AppState,
    cluster: &crate::cluster::ClusterNode,
    buyer: &str,
    key: &str,
    request: OrderRequest,
) -> Result<crate::sale::Placed, ApiError> {
    let checked = cluster
        .check_limit(&state.engine, buyer, key, &request, now_ms())
        .await;
    let ticket = match checked {
        Ok(ticket) => ticket,
        Err(LimitRefusal::Exceeded { limit, held }) => {
            if let Ok(sale) = state.engine.sale(&request.sale_id) {
                sale.count_reject(RejectReason::Limit);
            }
            metrics::counter!(names::RESERVATIONS_TOTAL, "outcome" => "limit").increment(1);
            return Err(SaleError::LimitExceeded { limit, held }.into());
        }
        Err(LimitRefusal::RedisDown(failure)) => {
            return Err(ApiError::overloaded(
                format!("buyer limits cannot be checked across the nodes ({failure}); retry"),
                state.config.server.retry_after_seconds,
            ));
        }
    };
    let result = reserve_leased(state, cluster, buyer, key, &request).await;
    let made = matches!(&result, Ok(placed) if !placed.replayed);
    cluster.settle_limit(ticket, buyer, &request, made);
    result
}

/// The reservation on the leased stock, with one wait for the refill.
async fn reserve_leased(
    state: &AppState,
    cluster: &crate::cluster::ClusterNode,
    buyer: &str,
    key: &str,
    request: &OrderRequest,
) -> Result<crate::sale::Placed, ApiError> {
    let short = |result: &Result<_, SaleError>| {
        matches!(
            result,
            Err(SaleError::SoldOut | SaleError::InsufficientStock { .. })
        )
    };
    let (sale_id, sku_id) = (&request.sale_id, &request.sku_id);
    let mut result = place(state, buyer, key, request.clone());
    if short(&result) && cluster.wait_for_refill(sale_id, sku_id).await {
        result = place(state, buyer, key, request.clone());
    }
    if short(&result) && !cluster.global_spent(sale_id, sku_id) {
        return Err(ApiError::overloaded(
            "this node's share of the stock is spent and its refill has not arrived yet; retry",
            state.config.server.retry_after_seconds,
        ));
    }
    let placed = result?;
    if let Ok(sale) = state.engine.sale(sale_id) {
        if let Some(index) = sale.item_index(sku_id) {
            cluster.after_order(&sale, index);
        }
    }
    Ok(placed)
}

pub fn get_order(
    state: &AppState,
    headers: &HeaderMap,
    order_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let buyer = state.buyer(headers)?;
    check_order_id(order_id)?;
    let order = state.engine.order_for_buyer(&buyer, order_id)?;
    Ok(order_response(StatusCode::OK, &order))
}

pub async fn cancel_order(
    state: &AppState,
    headers: &HeaderMap,
    order_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let buyer = state.buyer(headers)?;
    check_order_id(order_id)?;
    // A paying order may be paid already, its notification still on the
    // way: close it at WeChat Pay first, and cancel only if it was not paid
    // (then the buyer gets 409 and the order is paid), as hold expiry does.
    let paying = state.engine.order_for_buyer(&buyer, order_id)?.status == "paying";
    if paying {
        state.payments.close_before_cancel(order_id).await?;
    }
    let (order, commit) = state.engine.cancel_order(&buyer, order_id, now_ms())?;
    commit.durable().await?;
    // A prepay made after the check above: close it now; a payment that
    // slipped in is applied as a late one.
    if !paying && state.payments.had_prepay(order_id) {
        state.payments.cancelled(order_id);
    }
    Ok(order_response(StatusCode::OK, &order))
}

pub fn check_host_id(field: &str, id: &str) -> Result<(), ApiError> {
    if is_valid_host_id(id) {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "{field}: must be 1-32 characters of [A-Za-z0-9_-]"
    )))
}

pub fn check_order_id(id: &str) -> Result<(), ApiError> {
    if is_valid_order_id(id) {
        return Ok(());
    }
    Err(ApiError::invalid(
        "order_id: must be 6-32 characters of [A-Za-z0-9_-]",
    ))
}

fn outcome_label(result: &Result<crate::sale::Placed, SaleError>) -> &'static str {
    match result {
        Ok(placed) if placed.replayed => "replay",
        Ok(_) => "ok",
        Err(error) => match RejectReason::of(error) {
            Some(reason) => reason.as_str(),
            None => match error {
                SaleError::NotFound(_) => "not_found",
                SaleError::Invalid { .. } => "invalid",
                SaleError::IdempotencyConflict | SaleError::IdempotencyInProgress => "idempotency",
                _ => "error",
            },
        },
    }
}
