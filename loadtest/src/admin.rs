//! Talking to the gateway outside the timed rounds: the host's sale set-up
//! and stats (admin token), and reading orders back as their buyers.

use crate::client::{connect, exchange, request, Created, OrderId, Sender};
use crate::stream::RequestStream;
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, StatusCode, Uri};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections that read orders back.
const READ_CONNECTIONS: usize = 8;
/// Read failures kept for the report.
const FAILURES_KEPT: usize = 10;

/// A connection with the host's admin token.
pub struct Admin {
    addr: String,
    host: HeaderValue,
    token: HeaderValue,
    sender: Sender,
}

/// The sale a gateway round orders from.
#[derive(Clone, Debug)]
pub struct SaleSpec {
    pub sale_id: String,
    pub sku_ids: Vec<String>,
    pub stock: u64,
    pub per_user_limit: u64,
    pub hold_seconds: u32,
}

/// `GET /admin/v1/sales/{id}/stats`, summed over the sale's items.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SaleStats {
    pub stock: u64,
    pub reserved: u64,
    pub paid: u64,
    pub remaining: u64,
    pub orders_created: u64,
    pub orders_paid: u64,
}

impl Admin {
    pub async fn connect(addr: &str, admin_token: &str) -> Result<Admin, String> {
        Ok(Admin {
            addr: addr.to_owned(),
            host: HeaderValue::from_str(addr).map_err(|_| format!("bad address {addr}"))?,
            token: HeaderValue::from_str(&format!("Bearer {admin_token}"))
                .map_err(|_| "the admin token is not a valid header value".to_string())?,
            sender: connect(addr).await?,
        })
    }

    /// One call; a broken connection is replaced once.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), String> {
        let uri: Uri = path.parse().map_err(|_| format!("bad path {path}"))?;
        for attempt in 0..2 {
            let mut call = request(
                method.clone(),
                uri.clone(),
                &self.host,
                Some(&self.token),
                Bytes::from(body.clone().unwrap_or_default()),
            );
            if body.is_some() {
                call.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            match exchange(&mut self.sender, call).await {
                Ok(answer) => return Ok(answer),
                Err(error) if attempt == 1 => return Err(format!("{method} {path}: {error}")),
                Err(_) => self.sender = connect(&self.addr).await?,
            }
        }
        unreachable!("the second attempt returns")
    }

    /// A call that must answer 2xx; its body as JSON.
    async fn call_ok(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, String> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        if !status.is_success() {
            return Err(format!(
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
        serde_json::from_slice(&answer).map_err(|error| format!("{method} {path}: {error}"))
    }

    /// Creates the sale and starts it.
    pub async fn open_sale(&mut self, sale: &SaleSpec) -> Result<(), String> {
        let items: Vec<Value> = sale
            .sku_ids
            .iter()
            .map(|sku| {
                json!({"sku_id": sku, "title": format!("Load test {sku}"), "price": "99.00",
                       "stock": sale.stock, "per_user_limit": sale.per_user_limit})
            })
            .collect();
        let body = json!({"sale_id": sale.sale_id, "title": "flashgate-loadtest",
                          "hold_seconds": sale.hold_seconds, "items": items});
        self.call_ok(Method::POST, "/admin/v1/sales", Some(body.to_string()))
            .await?;
        let start = format!("/admin/v1/sales/{}/start", sale.sale_id);
        self.call_ok(Method::POST, &start, None).await?;
        Ok(())
    }

    pub async fn stats(&mut self, sale_id: &str) -> Result<SaleStats, String> {
        let stats = self.stats_value(sale_id).await?;
        parse_stats(&stats)
            .ok_or_else(|| format!("GET /admin/v1/sales/{sale_id}/stats: unexpected stats {stats}"))
    }

    /// The stats body as the gateway wrote it (a cluster node's has `cluster`).
    pub async fn stats_value(&mut self, sale_id: &str) -> Result<Value, String> {
        let path = format!("/admin/v1/sales/{sale_id}/stats");
        self.call_ok(Method::GET, &path, None).await
    }

    /// A cluster node's `cluster` field of the stats: Redis's view.
    pub async fn cluster_view(&mut self, sale_id: &str) -> Result<ClusterView, String> {
        let stats = self.stats_value(sale_id).await?;
        parse_cluster(&stats).ok_or_else(|| {
            format!("GET /admin/v1/sales/{sale_id}/stats: no readable `cluster` field in {stats}")
        })
    }

    /// Waits until `GET /v1/sales/{id}` on this node says the sale is live
    /// (a cluster node learns a sale started elsewhere from Redis).
    pub async fn wait_live(&mut self, sale_id: &str, wait: Duration) -> Result<(), String> {
        let path = format!("/v1/sales/{sale_id}");
        let deadline = Instant::now() + wait;
        loop {
            let (status, body) = self.call(Method::GET, &path, None).await?;
            let view: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status == StatusCode::OK
                && matches!(view["status"].as_str(), Some("live" | "sold_out"))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: sale {sale_id} not live within {wait:?}: {status} {}",
                    self.addr,
                    String::from_utf8_lossy(&body)
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `GET /metrics` (no token needed).
    pub async fn metrics(&mut self) -> Result<String, String> {
        let (status, body) = self.call(Method::GET, "/metrics", None).await?;
        if status != StatusCode::OK {
            return Err(format!("GET /metrics on {} answered {status}", self.addr));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// The value of the unlabelled series `name` in a Prometheus text
/// exposition (a histogram's `_sum` or `_count` included), if present.
pub fn metric_sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// What a cluster node's stats say Redis holds for the sale, summed over
/// its items.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClusterView {
    /// The node that answered.
    pub node_id: String,
    /// Units not leased to any node.
    pub global_remaining: u64,
    /// Units leased and not returned (sold ones included), by node.
    pub leases: BTreeMap<String, u64>,
}

impl ClusterView {
    pub fn leased(&self) -> u64 {
        self.leases.values().sum()
    }
}

/// The `cluster` field of a cluster node's stats; None without one, or
/// when the node could not read Redis (`redis_error`).
pub fn parse_cluster(stats: &Value) -> Option<ClusterView> {
    let cluster = &stats["cluster"];
    let mut view = ClusterView {
        node_id: cluster["node_id"].as_str()?.to_owned(),
        ..ClusterView::default()
    };
    for item in cluster["items"].as_array()? {
        view.global_remaining += item["global_remaining"].as_u64()?;
        for lease in item["leases"].as_array()? {
            let node_id = lease["node_id"].as_str()?.to_owned();
            *view.leases.entry(node_id).or_default() += lease["units"].as_u64()?;
        }
    }
    Some(view)
}

pub fn parse_stats(stats: &Value) -> Option<SaleStats> {
    let mut sum = SaleStats {
        orders_created: stats["orders"]["created"].as_u64()?,
        orders_paid: stats["orders"]["paid"].as_u64()?,
        ..SaleStats::default()
    };
    for item in stats["items"].as_array()? {
        sum.stock += item["stock"].as_u64()?;
        sum.reserved += item["reserved"].as_u64()?;
        sum.paid += item["paid"].as_u64()?;
        sum.remaining += item["remaining"].as_u64()?;
    }
    Some(sum)
}

/// What reading the 201s back found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReadSummary {
    /// Orders the round made (its 201s).
    pub orders: u64,
    /// Orders read: all of them, or an even sample.
    pub checked: u64,
    pub sampled: bool,
    /// Read with 200 and the same order id.
    pub readable: u64,
    /// Statuses the readable orders were in.
    pub statuses: BTreeMap<String, u64>,
    /// The first failures, described.
    pub failures: Vec<String>,
}

impl ReadSummary {
    /// Adds another read-back's counts (its `orders` too).
    pub fn merge(&mut self, other: ReadSummary) {
        self.orders += other.orders;
        self.checked += other.checked;
        self.readable += other.readable;
        self.sampled |= other.sampled;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        let room = FAILURES_KEPT.saturating_sub(self.failures.len());
        self.failures.extend(other.failures.into_iter().take(room));
    }
}

/// What the reading connections share.
struct Reader {
    addr: String,
    host: HeaderValue,
    stream: Arc<RequestStream>,
    picked: Vec<Created>,
    cursor: AtomicUsize,
}

/// Reads back every created order as its buyer, or an even sample of
/// `read_max` of them when there are more.
pub async fn read_orders(
    addr: &str,
    stream: &Arc<RequestStream>,
    created: &[Created],
    read_max: usize,
) -> Result<ReadSummary, String> {
    read_orders_on_nodes(&[addr.to_owned()], stream, created, read_max).await
}

/// [`read_orders`] for orders made by several nodes: the even sample is
/// taken over all of them, then each order is read from the node that
/// made it (`Created::node` indexes `addrs`; order reads are per node).
pub async fn read_orders_on_nodes(
    addrs: &[String],
    stream: &Arc<RequestStream>,
    created: &[Created],
    read_max: usize,
) -> Result<ReadSummary, String> {
    let stride = created.len().div_ceil(read_max.max(1)).max(1);
    let mut summary = ReadSummary {
        sampled: stride > 1,
        ..ReadSummary::default()
    };
    for (node, addr) in addrs.iter().enumerate() {
        let picked: Vec<Created> = created
            .iter()
            .step_by(stride)
            .filter(|order| usize::from(order.node) == node)
            .copied()
            .collect();
        summary.merge(read_picked(addr, stream, picked).await?);
    }
    let strays = created
        .iter()
        .filter(|order| usize::from(order.node) >= addrs.len())
        .count();
    if strays > 0 {
        return Err(format!(
            "internal: {strays} orders of a node beyond the {} given",
            addrs.len()
        ));
    }
    summary.orders = created.len() as u64;
    Ok(summary)
}

/// Reads every order of `picked` from `addr`; `orders` is left 0.
async fn read_picked(
    addr: &str,
    stream: &Arc<RequestStream>,
    picked: Vec<Created>,
) -> Result<ReadSummary, String> {
    let reader = Arc::new(Reader {
        addr: addr.to_owned(),
        host: HeaderValue::from_str(addr).map_err(|_| format!("bad address {addr}"))?,
        stream: Arc::clone(stream),
        picked,
        cursor: AtomicUsize::new(0),
    });
    let mut tasks = Vec::new();
    for _ in 0..READ_CONNECTIONS.min(reader.picked.len()) {
        let sender = connect(addr).await?;
        tasks.push(tokio::spawn(read_loop(Arc::clone(&reader), sender)));
    }
    let mut summary = ReadSummary::default();
    for task in tasks {
        let part = task
            .await
            .map_err(|error| format!("an order reader panicked: {error}"))?;
        summary.merge(part);
    }
    Ok(summary)
}

async fn read_loop(reader: Arc<Reader>, mut sender: Sender) -> ReadSummary {
    let mut summary = ReadSummary::default();
    loop {
        let next = reader.cursor.fetch_add(1, Ordering::Relaxed);
        let Some(order) = reader.picked.get(next) else {
            break;
        };
        let id = order.order_id.as_str();
        let uri: Uri = format!("/v1/orders/{id}")
            .parse()
            .expect("order ids are path-safe");
        let authorization = reader.stream.authorization(order.index as usize);
        let read = request(
            Method::GET,
            uri,
            &reader.host,
            Some(authorization),
            Bytes::new(),
        );
        summary.checked += 1;
        let failure = match exchange(&mut sender, read).await {
            Ok((StatusCode::OK, body)) => match order_status(&body, &order.order_id) {
                Some(status) => {
                    summary.readable += 1;
                    *summary.statuses.entry(status).or_default() += 1;
                    None
                }
                None => Some(format!(
                    "{id}: 200 with another order: {}",
                    String::from_utf8_lossy(&body)
                )),
            },
            Ok((status, body)) => {
                Some(format!("{id}: {status} {}", String::from_utf8_lossy(&body)))
            }
            Err(error) => {
                if let Ok(fresh) = connect(&reader.addr).await {
                    sender = fresh;
                }
                Some(format!("{id}: {error}"))
            }
        };
        if let Some(failure) = failure.filter(|_| summary.failures.len() < FAILURES_KEPT) {
            summary.failures.push(failure);
        }
    }
    summary
}

/// The status of an order body, when it is the order expected.
pub fn order_status(body: &[u8], expected: &OrderId) -> Option<String> {
    if OrderId::from_order_body(body)? != *expected {
        return None;
    }
    let order: Value = serde_json::from_slice(body).ok()?;
    order["status"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_summed_over_items() {
        let stats = json!({
            "sale_id": "s", "status": "live",
            "items": [
                {"sku_id": "a", "stock": 10, "reserved": 3, "paid": 1, "released": 0, "remaining": 6},
                {"sku_id": "b", "stock": 5, "reserved": 5, "paid": 0, "released": 2, "remaining": 0}
            ],
            "orders": {"created": 11, "cancelled": 0, "expired": 2, "paid": 1, "refunded": 0, "reinstated": 0, "late_refunds": 0},
            "rejects": {"insufficient_stock": 0, "limit": 0, "not_live": 0, "sold_out": 4}
        });
        let sum = parse_stats(&stats).unwrap();
        assert_eq!(
            (sum.stock, sum.reserved, sum.paid, sum.remaining),
            (15, 8, 1, 6)
        );
        assert_eq!((sum.orders_created, sum.orders_paid), (11, 1));
        assert!(parse_stats(&json!({"items": []})).is_none());
    }
}
