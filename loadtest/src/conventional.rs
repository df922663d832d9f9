//! The conventional design, measured beside flashgate (`--conventional`):
//! the order path the industry copies, as the issue that set the targets
//! describes it — hyper, and one Redis Lua script per order that checks the
//! buyer's count and the stock and takes both, with no token check and no
//! durable write.
//!
//! It runs in this process like the ceiling (its own runtime, as many
//! worker threads), on the same request stream: it reads the body, takes
//! the sale and SKU from it and the buyer from the token's payload as sent
//! (neither verified nor decoded: that is the token check it does not do),
//! runs the script on one multiplexed connection to Redis, and answers a
//! 201 with the ceiling's bytes, or 409 `SOLD_OUT` / `LIMIT_EXCEEDED`.
//! Redis runs on the same cores; its CPU over a round is read from
//! `INFO cpu` and reported beside the round's.
//!
//! Its keys live under a prefix of the run's own and are deleted at the
//! end, also when the run fails.

use crate::ceiling::{order_created, Endpoint};
use crate::target::RedisKeys;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};
use serde::Deserialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a Redis call may take before the request fails.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS[1]: the SKU's stock; KEYS[2]: its buyers (hash: buyer → units).
/// ARGV: buyer, quantity, per-user limit. Returns the stock left, or -1
/// (sold out), or -2 (the buyer's limit).
const RESERVE: &str = r"
local want = tonumber(ARGV[2])
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if held + want > tonumber(ARGV[3]) then return -2 end
local left = tonumber(redis.call('GET', KEYS[1]) or '0')
if left < want then return -1 end
redis.call('DECRBY', KEYS[1], want)
redis.call('HINCRBY', KEYS[2], ARGV[1], want)
return left - want
";

const SOLD_OUT: i64 = -1;
const LIMIT: i64 = -2;

/// The endpoint and this tool's own connection for the rounds' keys.
pub struct Conventional {
    pub addr: SocketAddr,
    pub redis_url: String,
    pub key_prefix: String,
    endpoint: Endpoint,
    keys: RedisKeys,
}

/// What the endpoint's requests share.
struct Shop {
    connection: MultiplexedConnection,
    reserve: Script,
    key_prefix: String,
    per_user_limit: u64,
}

#[derive(Deserialize)]
struct OrderBody {
    sale_id: String,
    sku_id: String,
    quantity: u64,
}

/// What Redis holds for one sale after a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sold {
    /// Units taken from the stock, over the sale's SKUs.
    pub units: u64,
    /// Units the buyers' counts add up to.
    pub buyer_units: u64,
}

impl Conventional {
    /// Checks Redis, then serves on `threads` worker threads.
    pub async fn start(
        threads: usize,
        redis_url: &str,
        per_user_limit: u64,
    ) -> Result<Conventional, String> {
        let key_prefix = format!(
            "flashgate-loadtest:{}:{}:conventional",
            crate::stream::run_id(),
            std::process::id()
        );
        let keys = RedisKeys::connect(redis_url, &key_prefix, "--conventional")?;
        let client = redis::Client::open(redis_url)
            .map_err(|error| format!("--conventional: Redis at {redis_url}: {error}"))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        // The connection is made on the endpoint's runtime, where its driver
        // then runs; until it is there the endpoint answers 503 (no request
        // comes before `start` returns).
        let waiting = Arc::new(tokio::sync::OnceCell::new());
        let cell = Arc::clone(&waiting);
        let endpoint = Endpoint::serve(threads, "conventional", move |request| {
            let cell = Arc::clone(&cell);
            async move {
                match cell.get() {
                    Some(shop) => answer(shop, request).await,
                    None => Ok(error(StatusCode::SERVICE_UNAVAILABLE, "NOT_READY")),
                }
            }
        })?;
        let prefix = key_prefix.clone();
        let connection = endpoint
            .on_runtime(async move {
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
            })
            .await?
            .map_err(|error| format!("--conventional: Redis at {redis_url}: {error}"))?;
        let shop = Shop {
            connection,
            reserve: Script::new(RESERVE),
            key_prefix: prefix,
            per_user_limit,
        };
        waiting
            .set(shop)
            .map_err(|_| "internal: the conventional endpoint was set up twice".to_owned())?;
        Ok(Conventional {
            addr: endpoint.addr,
            redis_url: redis_url.to_owned(),
            key_prefix,
            endpoint,
            keys,
        })
    }

    /// A fresh sale: each SKU's stock set, no buyer counted.
    pub fn prepare(&mut self, sale_id: &str, sku_ids: &[String], stock: u64) -> Result<(), String> {
        for sku_id in sku_ids {
            let (stock_key, buyers_key) = sale_keys(&self.key_prefix, sale_id, sku_id);
            redis::pipe()
                .set(&stock_key, stock)
                .ignore()
                .del(&buyers_key)
                .ignore()
                .query::<()>(&mut self.keys.connection)
                .map_err(|error| format!("--conventional: setting up {stock_key}: {error}"))?;
        }
        Ok(())
    }

    /// What the sale's keys say was sold, against the `stock` each SKU had.
    pub fn sold(&mut self, sale_id: &str, sku_ids: &[String], stock: u64) -> Result<Sold, String> {
        let mut sold = Sold {
            units: 0,
            buyer_units: 0,
        };
        for sku_id in sku_ids {
            let (stock_key, buyers_key) = sale_keys(&self.key_prefix, sale_id, sku_id);
            let (left, counts): (i64, Vec<u64>) = redis::pipe()
                .get(&stock_key)
                .hvals(&buyers_key)
                .query(&mut self.keys.connection)
                .map_err(|error| format!("--conventional: reading {stock_key}: {error}"))?;
            // A negative stock would be an oversell: counted as more than stock.
            sold.units += (stock as i64 - left).max(0) as u64;
            sold.buyer_units += counts.iter().sum::<u64>();
        }
        Ok(sold)
    }

    /// Redis's CPU so far, user and system, in seconds (`INFO cpu`).
    pub fn redis_cpu_seconds(&mut self) -> Result<f64, String> {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query(&mut self.keys.connection)
            .map_err(|error| format!("--conventional: INFO cpu: {error}"))?;
        parse_cpu_seconds(&info).ok_or_else(|| {
            format!("--conventional: INFO cpu without used_cpu_user and used_cpu_sys: {info:?}")
        })
    }

    /// Stops the endpoint and deletes the run's keys: how many.
    pub fn close(mut self) -> Result<u64, String> {
        self.endpoint.stop();
        self.keys.delete()
    }
}

fn sale_keys(prefix: &str, sale_id: &str, sku_id: &str) -> (String, String) {
    (
        format!("{prefix}:{sale_id}:{sku_id}:stock"),
        format!("{prefix}:{sale_id}:{sku_id}:buyers"),
    )
}

/// `used_cpu_user` + `used_cpu_sys` of an `INFO cpu` answer.
pub fn parse_cpu_seconds(info: &str) -> Option<f64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<f64>().ok())
    };
    Some(field("used_cpu_user")? + field("used_cpu_sys")?)
}

async fn answer(
    shop: &Shop,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // The buyer: the token's payload as sent, not verified.
    let buyer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|token| token.split('.').nth(1))
        .map(str::to_owned);
    let Ok(body) = request.into_body().collect().await else {
        return Ok(error(StatusCode::BAD_REQUEST, "INVALID_REQUEST"));
    };
    let Some(buyer) = buyer else {
        return Ok(error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
    };
    let order = match serde_json::from_slice::<OrderBody>(&body.to_bytes()) {
        Ok(order) if order.quantity >= 1 => order,
        _ => return Ok(error(StatusCode::BAD_REQUEST, "INVALID_REQUEST")),
    };
    let (stock_key, buyers_key) = sale_keys(&shop.key_prefix, &order.sale_id, &order.sku_id);
    let mut connection = shop.connection.clone();
    let reserved: redis::RedisResult<i64> = shop
        .reserve
        .key(stock_key)
        .key(buyers_key)
        .arg(buyer)
        .arg(order.quantity)
        .arg(shop.per_user_limit)
        .invoke_async(&mut connection)
        .await;
    Ok(match reserved {
        Ok(left) if left >= 0 => order_created(),
        Ok(SOLD_OUT) => error(StatusCode::CONFLICT, "SOLD_OUT"),
        Ok(LIMIT) => error(StatusCode::CONFLICT, "LIMIT_EXCEEDED"),
        Ok(_) | Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "REDIS"),
    })
}

fn error(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"error":{{"code":"{code}","message":"conventional endpoint"}}}}"#);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_user_and_system_added() {
        let info = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:2.500000\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(parse_cpu_seconds(info), Some(3.75));
        assert_eq!(parse_cpu_seconds("# CPU\r\nused_cpu_sys:1.0\r\n"), None);
    }
}
