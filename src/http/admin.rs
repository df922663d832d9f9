//! Host and ops routes (`/admin/v1`): create, list and steer sales, restock,
//! read stats and any order, and tell a console which role its token has.
//! Roles: `host` acts on sales, `ops` reads. The stats event stream is in
//! `sse.rs`, beside the storefront's.

use crate::clock::{now_ms, parse_rfc3339};
use crate::http::auth::Role;
use crate::http::body::{json_response, parse_json, read_body, ResponseBody};
use crate::http::error::ApiError;
use crate::http::storefront::{check_host_id, check_order_id};
use crate::http::AppState;
use crate::money::parse_yuan;
use crate::sale::{ItemSpec, SaleAction, SaleSpec};
use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

pub const HOLD_SECONDS_DEFAULT: u32 = 900;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSale {
    sale_id: String,
    title: String,
    starts_at: Option<String>,
    ends_at: Option<String>,
    hold_seconds: Option<u32>,
    items: Vec<CreateItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateItem {
    sku_id: String,
    title: String,
    price: String,
    stock: i64,
    per_user_limit: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Restock {
    add: i64,
}

impl CreateSale {
    /// The request as a domain spec; parse errors name the field.
    fn into_spec(self) -> Result<SaleSpec, ApiError> {
        let time = |field: &str, text: Option<String>| -> Result<Option<i64>, ApiError> {
            text.map(|text| {
                parse_rfc3339(&text)
                    .ok_or_else(|| ApiError::invalid(format!("{field}: must be an RFC 3339 time")))
            })
            .transpose()
        };
        let items = self
            .items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let price = parse_yuan(&item.price)
                    .map_err(|error| ApiError::invalid(format!("items[{index}].price: {error}")))?;
                Ok(ItemSpec {
                    sku_id: item.sku_id,
                    title: item.title,
                    price,
                    stock: item.stock,
                    per_user_limit: item.per_user_limit,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(SaleSpec {
            sale_id: self.sale_id,
            title: self.title,
            starts_at: time("starts_at", self.starts_at)?,
            ends_at: time("ends_at", self.ends_at)?,
            hold_seconds: self.hold_seconds.unwrap_or(HOLD_SECONDS_DEFAULT),
            items,
        })
    }
}

pub async fn create_sale(
    state: &AppState,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<ResponseBody>, ApiError> {
    state.admin(headers, Role::Host)?;
    let bytes = read_body(headers, body, state.config.server.body_bytes_max).await?;
    let spec = parse_json::<CreateSale>(&bytes)?.into_spec()?;
    let (view, commit) = match &state.cluster {
        Some(cluster) => cluster.create_sale(spec, now_ms()).await?,
        None => state.engine.create_sale(spec, now_ms())?,
    };
    commit.durable().await?;
    tracing::info!(sale_id = %view.sale_id, "sale created");
    Ok(json_response(StatusCode::CREATED, &view))
}

pub async fn sale_action(
    state: &AppState,
    headers: &HeaderMap,
    sale_id: &str,
    action: SaleAction,
) -> Result<Response<ResponseBody>, ApiError> {
    state.admin(headers, Role::Host)?;
    check_host_id("sale_id", sale_id)?;
    let view = match &state.cluster {
        // Durable once it returns.
        Some(cluster) => cluster.sale_action(sale_id, action, now_ms()).await?,
        None => {
            let (view, commit) = state.engine.sale_action(sale_id, action, now_ms())?;
            commit.durable().await?;
            view
        }
    };
    tracing::info!(
        sale_id,
        action = action.as_str(),
        status = view.status,
        "sale action"
    );
    Ok(json_response(StatusCode::OK, &view))
}

pub async fn restock(
    state: &AppState,
    headers: &HeaderMap,
    body: Incoming,
    sale_id: &str,
    sku_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    state.admin(headers, Role::Host)?;
    check_host_id("sale_id", sale_id)?;
    check_host_id("sku_id", sku_id)?;
    let bytes = read_body(headers, body, state.config.server.body_bytes_max).await?;
    let restock: Restock = parse_json(&bytes)?;
    if let Some(cluster) = &state.cluster {
        let stock_max = state.config.sale.stock_per_item_max;
        cluster
            .restock(sale_id, sku_id, restock.add, stock_max)
            .await?;
        tracing::info!(sale_id, sku_id, add = restock.add, "restocked (global)");
        return stats_answer(state, cluster, sale_id).await;
    }
    let (stats, commit) = state
        .engine
        .restock(sale_id, sku_id, restock.add, now_ms())?;
    commit.durable().await?;
    tracing::info!(sale_id, sku_id, add = restock.add, "restocked");
    Ok(json_response(StatusCode::OK, &stats))
}

/// `GET /admin/v1/sales`: every sale of the node, newest first, bounded by
/// `sale.sales_max`.
pub fn list_sales(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Response<ResponseBody>, ApiError> {
    state.admin(headers, Role::Ops)?;
    let sales = state.engine.sale_summaries(now_ms());
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "sales": sales }),
    ))
}

/// `GET /admin/v1/session`: the role of the caller's token, so a console
/// can show what the token may do (the routes check it again anyway).
pub fn session(state: &AppState, headers: &HeaderMap) -> Result<Response<ResponseBody>, ApiError> {
    let role = state.admin(headers, Role::Ops)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "role": role.as_str() }),
    ))
}

/// The sale's stats; on a cluster node also who holds what (`cluster`).
pub async fn stats(
    state: &AppState,
    headers: &HeaderMap,
    sale_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    state.admin(headers, Role::Ops)?;
    check_host_id("sale_id", sale_id)?;
    let Some(cluster) = &state.cluster else {
        let stats = state.engine.stats(sale_id, now_ms())?;
        return Ok(json_response(StatusCode::OK, &stats));
    };
    stats_answer(state, cluster, sale_id).await
}

/// A cluster node's stats: its own counts and who holds what in Redis.
async fn stats_answer(
    state: &AppState,
    cluster: &crate::cluster::ClusterNode,
    sale_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let stats = state.engine.stats(sale_id, now_ms())?;
    let mut body = serde_json::to_value(&stats)
        .map_err(|error| ApiError::internal(format!("stats: {error}")))?;
    body["cluster"] = cluster.leases_view(sale_id).await;
    Ok(json_response(StatusCode::OK, &body))
}

pub fn get_order(
    state: &AppState,
    headers: &HeaderMap,
    order_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    state.admin(headers, Role::Ops)?;
    check_order_id(order_id)?;
    Ok(json_response(
        StatusCode::OK,
        &state.engine.order_for_admin(order_id)?,
    ))
}
