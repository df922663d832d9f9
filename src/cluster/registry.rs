//! What the cluster keeps in Redis, and the Lua scripts that change it.
//!
//! Key layout, every key under `<key_prefix>:`:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `sales` | set | every sale id registered |
//! | `sale:<sale>:spec` | string | the sale's spec (JSON), written once by the node that took the create |
//! | `sale:<sale>:state` | string | `scheduled`, `live`, `paused` or `ended` |
//! | `sale:<sale>:stock` | hash | sku → units not leased to any node (the global remaining) |
//! | `sale:<sale>:leased:<sku>` | hash | node → units leased and not returned (sold ones included) |
//! | `sale:<sale>:grant:<lease_id>` | string | what a lease took, so a retried lease takes nothing twice (expires after a week) |
//! | `sale:<sale>:return:<return_id>` | string | a return applied, so a retried return adds nothing twice (expires after a week) |
//! | `sale:<sale>:bought:<sku>` | hash | buyer → units of the item they hold across the nodes (reserved, paying or paid), against the per-user limit |
//! | `nodes` | hash | node id → its order-id tag (a small number, never reused) |
//! | `node_tag_seq` | string | the last tag given |
//! | `events` | pub/sub channel | a sale id, published by `register_sale`, `transition`, `restock` and `return` |
//!
//! Invariant, per item: `stock[sku] + Σ leased[sku][node] == the sale's
//! stock`. Every script keeps it: a lease moves units from `stock` to the
//! node's `leased`, a return moves them back, and nothing else writes
//! either. Nothing here expires but the idempotency records: a lease never
//! comes back on a TTL (a dead node's lease may hold sold units).

use crate::cluster::redis_link::{RedisFailure, RedisLink};
use crate::sale::{SaleAction, SaleSpec, SaleStatus};
use redis::Script;

/// How long a grant or return record is kept for retries.
const IDEMPOTENCY_SECONDS: u64 = 7 * 24 * 3600;
/// Order-id tags are three base-36 characters.
pub const NODE_TAGS_MAX: u64 = 36 * 36 * 36;

const REGISTER_SALE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[4], 'scheduled')
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
";

const LEASE: &str = r"
local done = redis.call('GET', KEYS[3])
local remaining = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if done then
  return {tonumber(done), remaining}
end
-- Near the end a block shrinks to a share of what is left, so the last
-- units are not stranded on one idle node: at most half of the remaining
-- divided by the nodes that hold leases of the item.
local holders = math.max(1, redis.call('HLEN', KEYS[2]))
local share = math.max(1, math.ceil(remaining / (2 * holders)))
local take = math.min(tonumber(ARGV[3]), remaining, share)
if take > 0 then
  redis.call('HINCRBY', KEYS[1], ARGV[1], -take)
  redis.call('HINCRBY', KEYS[2], ARGV[2], take)
end
redis.call('SET', KEYS[3], take, 'EX', ARGV[4])
return {take, remaining - take}
";

const RETURN: &str = r"
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
local give = tonumber(ARGV[3])
if give < 1 or give > held then
  return redis.error_reply('RETURN_EXCEEDS_LEASE node holds ' .. held .. ', returns ' .. give)
end
redis.call('HINCRBY', KEYS[2], ARGV[2], -give)
redis.call('HINCRBY', KEYS[1], ARGV[1], give)
redis.call('SET', KEYS[3], give, 'EX', ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
";

const TRANSITION: &str = r"
local table = {
  scheduled = {start = 'live', ['end'] = 'ended'},
  live = {pause = 'paused', ['end'] = 'ended'},
  paused = {start = 'live', ['end'] = 'ended'},
  ended = {},
}
local state = redis.call('GET', KEYS[1])
if not state then
  return redis.error_reply('NO_SALE')
end
local next = table[state] and table[state][ARGV[1]]
if not next then
  return {0, state}
end
redis.call('SET', KEYS[1], next)
redis.call('PUBLISH', ARGV[3], ARGV[2])
return {1, next}
";

const RESTOCK: &str = r"
local state = redis.call('GET', KEYS[1])
if not state then
  return redis.error_reply('NO_SALE')
end
if state == 'ended' then
  return {0, 0}
end
local remaining = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1')
if remaining < 0 then
  return redis.error_reply('NO_ITEM')
end
local total = remaining
for _, units in ipairs(redis.call('HVALS', KEYS[3])) do
  total = total + tonumber(units)
end
local add = tonumber(ARGV[2])
if total + add > tonumber(ARGV[3]) then
  return {-1, total}
end
redis.call('HINCRBY', KEYS[2], ARGV[1], add)
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {1, total + add}
";

/// Per-user limit checks of several orders in one call, in order: for the
/// i-th, KEYS[i] is the item's count hash and ARGV[3i-2..3i] the buyer,
/// the quantity and the limit. The quantity is counted if the buyer's count
/// stays within the limit. Returns, per check, `1` and the count after, or
/// `0` and the count now. Checks of one buyer in one call see each other.
const TAKE_LIMITS: &str = r"
local answers = {}
for i, key in ipairs(KEYS) do
  local buyer = ARGV[3 * i - 2]
  local quantity = tonumber(ARGV[3 * i - 1])
  -- The common case, within the limit, is one command; over it, the
  -- increment is taken back.
  local held = redis.call('HINCRBY', key, buyer, quantity)
  if held > tonumber(ARGV[3 * i]) then
    held = redis.call('HINCRBY', key, buyer, -quantity)
    if held <= 0 then
      redis.call('HDEL', key, buyer)
    end
    answers[2 * i - 1] = 0
    answers[2 * i] = held
  else
    answers[2 * i - 1] = 1
    answers[2 * i] = held
  end
end
return answers
";

/// Adds a signed delta to each named buyer's count (KEYS[i], with
/// ARGV[2i-1] the buyer and ARGV[2i] the delta); a count that reaches
/// zero or less is removed.
const ADJUST_COUNTS: &str = r"
for i, key in ipairs(KEYS) do
  local buyer = ARGV[2 * i - 1]
  local held = redis.call('HINCRBY', key, buyer, tonumber(ARGV[2 * i]))
  if held <= 0 then
    redis.call('HDEL', key, buyer)
  end
end
return #KEYS
";

const NODE_TAG: &str = r"
local tag = redis.call('HGET', KEYS[1], ARGV[1])
if tag then
  return tonumber(tag)
end
tag = redis.call('INCR', KEYS[2])
if tag > tonumber(ARGV[2]) then
  return redis.error_reply('NODE_TAGS_EXHAUSTED')
end
redis.call('HSET', KEYS[1], ARGV[1], tag)
return tag
";

/// The cluster's Redis state, through its scripts.
pub struct Registry {
    link: RedisLink,
    prefix: String,
    register_sale: Script,
    lease: Script,
    give_back: Script,
    transition: Script,
    restock: Script,
    node_tag: Script,
    take_limits: Script,
    adjust_counts: Script,
}

/// The answer of a restock of the global stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restocked {
    /// Added; the item's stock across the cluster is now `total`.
    Added { total: i64 },
    /// The sale has ended: nothing changed.
    Ended,
    /// `total + add` would pass the limit: nothing changed.
    TooMuch { total: i64 },
}

/// What one lease call took and what it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub units: i64,
    /// The item's global remaining after this lease.
    pub remaining: i64,
}

/// The answer of a per-user limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitTaken {
    /// The units are counted for the buyer.
    Counted,
    /// The buyer holds `held` and the order would pass the limit.
    Exceeded { held: u32 },
}

/// One order's per-user limit check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    pub sale_id: String,
    pub sku_id: String,
    pub buyer: String,
    pub quantity: u32,
    pub limit: u32,
}

/// A change to one buyer's count of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerDelta {
    pub sale_id: String,
    pub sku_id: String,
    pub buyer: String,
    pub delta: i64,
}

/// The answer of a host action on the shared state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transitioned {
    Moved(SaleStatus),
    /// The table refuses the action from this state; nothing changed.
    Refused(SaleStatus),
}

impl Registry {
    pub fn new(link: RedisLink, prefix: &str) -> Registry {
        Registry {
            link,
            prefix: prefix.to_owned(),
            register_sale: Script::new(REGISTER_SALE),
            lease: Script::new(LEASE),
            give_back: Script::new(RETURN),
            transition: Script::new(TRANSITION),
            restock: Script::new(RESTOCK),
            node_tag: Script::new(NODE_TAG),
            take_limits: Script::new(TAKE_LIMITS),
            adjust_counts: Script::new(ADJUST_COUNTS),
        }
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// The pub/sub channel a create or a host action is announced on (the
    /// sale id as the message): nodes poll at once instead of waiting.
    pub fn events_channel(&self) -> String {
        self.key("events")
    }

    fn sale_key(&self, sale_id: &str, rest: &str) -> String {
        format!("{}:sale:{sale_id}:{rest}", self.prefix)
    }

    /// Registers the sale with its global stock, once. `false`: a sale of
    /// that id exists already (its spec is left as it was).
    pub async fn register_sale(&self, spec: &SaleSpec) -> Result<bool, RedisFailure> {
        let json = serde_json::to_string(spec).map_err(|error| RedisFailure::Refused {
            op: "register_sale",
            message: error.to_string(),
        })?;
        let mut invocation = self.register_sale.prepare_invoke();
        invocation
            .key(self.key("sales"))
            .key(self.sale_key(&spec.sale_id, "spec"))
            .key(self.sale_key(&spec.sale_id, "stock"))
            .key(self.sale_key(&spec.sale_id, "state"))
            .arg(&spec.sale_id)
            .arg(json)
            .arg(self.events_channel());
        for item in &spec.items {
            invocation.arg(&item.sku_id).arg(item.stock);
        }
        let created: i64 = self
            .link
            .call("register_sale", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await?;
        Ok(created == 1)
    }

    /// Every registered sale id.
    pub async fn sale_ids(&self) -> Result<Vec<String>, RedisFailure> {
        let key = self.key("sales");
        self.link
            .call("poll", async |connection| {
                redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(connection)
                    .await
            })
            .await
    }

    /// The spec a sale was registered with.
    pub async fn sale_spec(&self, sale_id: &str) -> Result<Option<SaleSpec>, RedisFailure> {
        let key = self.sale_key(sale_id, "spec");
        let json: Option<String> = self
            .link
            .call("poll", async |connection| {
                redis::cmd("GET").arg(&key).query_async(connection).await
            })
            .await?;
        json.map(|json| {
            serde_json::from_str(&json).map_err(|error| RedisFailure::Refused {
                op: "poll",
                message: format!("sale `{sale_id}`'s spec does not decode: {error}"),
            })
        })
        .transpose()
    }

    /// The states of `sale_ids`, in order (`None` for a sale not registered).
    pub async fn sale_states(
        &self,
        sale_ids: &[String],
    ) -> Result<Vec<Option<SaleStatus>>, RedisFailure> {
        if sale_ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = sale_ids
            .iter()
            .map(|sale_id| self.sale_key(sale_id, "state"))
            .collect();
        let states: Vec<Option<String>> = self
            .link
            .call("poll", async |connection| {
                redis::cmd("MGET").arg(&keys).query_async(connection).await
            })
            .await?;
        Ok(states
            .iter()
            .map(|state| state.as_deref().and_then(status_of))
            .collect())
    }

    /// The host action through the shared life-cycle table.
    pub async fn transition(
        &self,
        sale_id: &str,
        action: SaleAction,
    ) -> Result<Transitioned, RedisFailure> {
        let mut invocation = self.transition.prepare_invoke();
        invocation
            .key(self.sale_key(sale_id, "state"))
            .arg(action.as_str())
            .arg(sale_id)
            .arg(self.events_channel());
        let (moved, state): (i64, String) = self
            .link
            .call("transition", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await?;
        let status = status_of(&state).ok_or_else(|| RedisFailure::Refused {
            op: "transition",
            message: format!("sale `{sale_id}` has an unknown state `{state}`"),
        })?;
        Ok(if moved == 1 {
            Transitioned::Moved(status)
        } else {
            Transitioned::Refused(status)
        })
    }

    /// Adds `add` units to the item's global stock unless the sale has
    /// ended or the item's stock across the cluster (remaining + every
    /// lease) would pass `stock_max`.
    pub async fn restock(
        &self,
        sale_id: &str,
        sku_id: &str,
        add: i64,
        stock_max: i64,
    ) -> Result<Restocked, RedisFailure> {
        debug_assert!(add > 0);
        let mut invocation = self.restock.prepare_invoke();
        invocation
            .key(self.sale_key(sale_id, "state"))
            .key(self.sale_key(sale_id, "stock"))
            .key(self.sale_key(sale_id, &format!("leased:{sku_id}")))
            .arg(sku_id)
            .arg(add)
            .arg(stock_max)
            .arg(self.events_channel())
            .arg(sale_id);
        let (outcome, total): (i64, i64) = self
            .link
            .call("restock", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await?;
        Ok(match outcome {
            1 => Restocked::Added { total },
            0 => Restocked::Ended,
            _ => Restocked::TooMuch { total },
        })
    }

    /// Takes `min(block, remaining, ⌈remaining / (2 × nodes holding
    /// leases)⌉)` units of the item for `node`: full blocks while stock is
    /// plenty, shrinking near the end. A retry with the same `lease_id`
    /// returns the first answer and takes nothing.
    pub async fn lease(
        &self,
        sale_id: &str,
        sku_id: &str,
        node_id: &str,
        block: i64,
        lease_id: &str,
    ) -> Result<Granted, RedisFailure> {
        debug_assert!(block > 0);
        let mut invocation = self.lease.prepare_invoke();
        invocation
            .key(self.sale_key(sale_id, "stock"))
            .key(self.sale_key(sale_id, &format!("leased:{sku_id}")))
            .key(self.sale_key(sale_id, &format!("grant:{lease_id}")))
            .arg(sku_id)
            .arg(node_id)
            .arg(block)
            .arg(IDEMPOTENCY_SECONDS);
        let (units, remaining): (i64, i64) = self
            .link
            .call("lease", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await?;
        Ok(Granted { units, remaining })
    }

    /// Gives `units` of the node's lease back to the global stock. `false`:
    /// this `return_id` was applied before; nothing changed.
    pub async fn give_back(
        &self,
        sale_id: &str,
        sku_id: &str,
        node_id: &str,
        units: i64,
        return_id: &str,
    ) -> Result<bool, RedisFailure> {
        let mut invocation = self.give_back.prepare_invoke();
        invocation
            .key(self.sale_key(sale_id, "stock"))
            .key(self.sale_key(sale_id, &format!("leased:{sku_id}")))
            .key(self.sale_key(sale_id, &format!("return:{return_id}")))
            .arg(sku_id)
            .arg(node_id)
            .arg(units)
            .arg(IDEMPOTENCY_SECONDS)
            .arg(self.events_channel())
            .arg(sale_id);
        let applied: i64 = self
            .link
            .call("return", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await?;
        Ok(applied == 1)
    }

    /// Counts `quantity` units of the item for `buyer` if they stay within
    /// `limit` across the nodes: `Ok(Counted)` or `Ok(Exceeded)` with what
    /// the buyer holds. One round trip.
    pub async fn take_limit(
        &self,
        sale_id: &str,
        sku_id: &str,
        buyer: &str,
        quantity: u32,
        limit: u32,
    ) -> Result<LimitTaken, RedisFailure> {
        let check = LimitCheck {
            sale_id: sale_id.to_owned(),
            sku_id: sku_id.to_owned(),
            buyer: buyer.to_owned(),
            quantity,
            limit,
        };
        let mut answers = self.take_limits(std::slice::from_ref(&check)).await?;
        Ok(answers.remove(0))
    }

    /// Several orders' limit checks in one script call, applied in order;
    /// one answer per check.
    pub async fn take_limits(
        &self,
        checks: &[LimitCheck],
    ) -> Result<Vec<LimitTaken>, RedisFailure> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.take_limits.prepare_invoke();
        for check in checks {
            invocation
                .key(self.sale_key(&check.sale_id, &format!("bought:{}", check.sku_id)))
                .arg(&check.buyer)
                .arg(check.quantity)
                .arg(check.limit);
        }
        let answers: Vec<i64> = self
            .link
            .call("limit", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await?;
        if answers.len() != 2 * checks.len() {
            return Err(RedisFailure::Refused {
                op: "limit",
                message: format!("{} answers for {} checks", answers.len() / 2, checks.len()),
            });
        }
        Ok(answers
            .chunks_exact(2)
            .map(|answer| match answer[0] {
                1 => LimitTaken::Counted,
                _ => LimitTaken::Exceeded {
                    held: u32::try_from(answer[1]).unwrap_or(u32::MAX),
                },
            })
            .collect())
    }

    /// Adds each `(sale, sku, buyer, delta)` to the buyer's count, in one
    /// call: units released by cancels, expiries and refunds (negative),
    /// and units sold while Redis was away (positive).
    pub async fn adjust_counts(&self, deltas: &[BuyerDelta]) -> Result<(), RedisFailure> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut invocation = self.adjust_counts.prepare_invoke();
        for delta in deltas {
            invocation
                .key(self.sale_key(&delta.sale_id, &format!("bought:{}", delta.sku_id)))
                .arg(&delta.buyer)
                .arg(delta.delta);
        }
        let _: i64 = self
            .link
            .call("limit_adjust", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await?;
        Ok(())
    }

    /// What the buyer holds of the item across the nodes.
    pub async fn buyer_count(
        &self,
        sale_id: &str,
        sku_id: &str,
        buyer: &str,
    ) -> Result<i64, RedisFailure> {
        let key = self.sale_key(sale_id, &format!("bought:{sku_id}"));
        let held: Option<i64> = self
            .link
            .call("limit_read", async |connection| {
                redis::cmd("HGET")
                    .arg(&key)
                    .arg(buyer)
                    .query_async(connection)
                    .await
            })
            .await?;
        Ok(held.unwrap_or(0))
    }

    /// Units of the item leased to `node` and not returned.
    pub async fn leased(
        &self,
        sale_id: &str,
        sku_id: &str,
        node_id: &str,
    ) -> Result<i64, RedisFailure> {
        let key = self.sale_key(sale_id, &format!("leased:{sku_id}"));
        let units: Option<i64> = self
            .link
            .call("leases", async |connection| {
                redis::cmd("HGET")
                    .arg(&key)
                    .arg(node_id)
                    .query_async(connection)
                    .await
            })
            .await?;
        Ok(units.unwrap_or(0))
    }

    /// Every node's outstanding lease of the item.
    pub async fn leases(
        &self,
        sale_id: &str,
        sku_id: &str,
    ) -> Result<Vec<(String, i64)>, RedisFailure> {
        let key = self.sale_key(sale_id, &format!("leased:{sku_id}"));
        let mut leases: Vec<(String, i64)> = self
            .link
            .call("leases", async |connection| {
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(connection)
                    .await
            })
            .await?;
        leases.sort();
        Ok(leases)
    }

    /// The item's global remaining (units not leased to any node).
    pub async fn global_remaining(&self, sale_id: &str, sku_id: &str) -> Result<i64, RedisFailure> {
        let key = self.sale_key(sale_id, "stock");
        let units: Option<i64> = self
            .link
            .call("leases", async |connection| {
                redis::cmd("HGET")
                    .arg(&key)
                    .arg(sku_id)
                    .query_async(connection)
                    .await
            })
            .await?;
        Ok(units.unwrap_or(0))
    }

    /// Every item's global remaining of a sale, by sku.
    pub async fn global_stock(&self, sale_id: &str) -> Result<Vec<(String, i64)>, RedisFailure> {
        let key = self.sale_key(sale_id, "stock");
        self.link
            .call("poll", async |connection| {
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(connection)
                    .await
            })
            .await
    }

    /// The node's order-id tag: given once per node id, never reused.
    pub async fn node_tag(&self, node_id: &str) -> Result<u64, RedisFailure> {
        let mut invocation = self.node_tag.prepare_invoke();
        invocation
            .key(self.key("nodes"))
            .key(self.key("node_tag_seq"))
            .arg(node_id)
            .arg(NODE_TAGS_MAX - 1);
        self.link
            .call("node_tag", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await
    }
}

fn status_of(state: &str) -> Option<SaleStatus> {
    match state {
        "scheduled" => Some(SaleStatus::Scheduled),
        "live" => Some(SaleStatus::Live),
        "paused" => Some(SaleStatus::Paused),
        "ended" => Some(SaleStatus::Ended),
        _ => None,
    }
}
