//! What the cluster keeps in Redis, and the Lua scripts that change it.
//!
//! Key layout, every key under `<key_prefix>:` (so `<key_prefix>:*` finds
//! them all); the part in braces is the key's Redis Cluster hash tag:
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `sales` | set | every sale id registered |
//! | `sale:{<sale>}:spec` | string | the sale's spec (JSON), written once by the node that took the create |
//! | `sale:{<sale>}:state` | string | `scheduled`, `live`, `paused` or `ended` |
//! | `sale:{<sale>}:stock` | hash | sku → units not leased to any node (the global remaining) |
//! | `sale:{<sale>}:leased:<sku>` | hash | node → units leased and not returned (sold ones included) |
//! | `sale:{<sale>}:grant:<lease_id>` | string | what a lease took, so a retried lease takes nothing twice (expires after a week) |
//! | `sale:{<sale>}:return:<return_id>` | string | a return applied, so a retried return adds nothing twice (expires after a week) |
//! | `sale:{<sale>}:bought:<sku>` | hash | buyer → units of the item they hold across the nodes (reserved, paying or paid), against the per-user limit |
//! | `{nodes}` | hash | node id → its order-id tag (a small number, never reused) |
//! | `{nodes}:tag_seq` | string | the last tag given |
//! | `events` | pub/sub channel | a sale id, published by `register_sale` (its `sales` step), `transition`, `restock` and `return` |
//!
//! **Slots.** On a Redis Cluster a script may touch only keys of one hash
//! slot, and a key's slot is that of its hash tag (the first `{…}`): every
//! key of one sale carries `{<sale>}`, so each sale's scripts run whole on
//! the one master that owns the sale, and different sales spread over the
//! masters. The two node-wide keys share `{nodes}` (`node_tag` reads one and
//! writes both). `sales` stands alone, so registering a sale is two steps:
//! the `register_sale` script on the sale's keys (spec, stock, state,
//! refused if the spec exists), then `SADD` to `sales` (with the
//! publication), which is idempotent and is also done when the create finds
//! the sale exists: a node that died between the two leaves a sale no node
//! lists, and the next create of that id (answered 409) lists it. No
//! command or pipeline here spans two slots: reads of several sales are one
//! command per sale on a Redis Cluster, and `adjust_counts` and
//! `take_limits` run once per sale. On one Redis the braces change nothing.
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

/// The sale's own keys (KEYS: spec, stock, state; one slot), refused if
/// the spec exists. The `sales` set is [`LIST_SALE`]'s, after.
const REGISTER_SALE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[3], 'scheduled')
return 1
";

/// Adds the sale id to `sales` (KEYS[1]) and, when it was not there yet,
/// announces it: idempotent, so it runs after every `register_sale`,
/// whether it created the sale or found it.
const LIST_SALE: &str = r"
local added = redis.call('SADD', KEYS[1], ARGV[1])
if added == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[1])
end
return added
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
    list_sale: Script,
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
            list_sale: Script::new(LIST_SALE),
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
        sale_key(&self.prefix, sale_id, rest)
    }

    /// Registers the sale with its global stock, once. `false`: a sale of
    /// that id exists already (its spec is left as it was). Two calls: the
    /// sale's keys, then its entry in `sales` (see the module doc, "Slots").
    pub async fn register_sale(&self, spec: &SaleSpec) -> Result<bool, RedisFailure> {
        let json = serde_json::to_string(spec).map_err(|error| RedisFailure::Refused {
            op: "register_sale",
            message: error.to_string(),
        })?;
        let mut invocation = self.register_sale.prepare_invoke();
        invocation
            .key(self.sale_key(&spec.sale_id, "spec"))
            .key(self.sale_key(&spec.sale_id, "stock"))
            .key(self.sale_key(&spec.sale_id, "state"))
            .arg(json);
        for item in &spec.items {
            invocation.arg(&item.sku_id).arg(item.stock);
        }
        let created: i64 = self
            .link
            .call("register_sale", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await?;
        // Also when the sale was found: a create that died before this step
        // left it unlisted.
        let mut listing = self.list_sale.prepare_invoke();
        listing
            .key(self.key("sales"))
            .arg(&spec.sale_id)
            .arg(self.events_channel());
        let _: i64 = self
            .link
            .call("register_sale", async |connection| {
                listing.invoke_async(connection).await
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
        // One MGET on one Redis; on a Redis Cluster the sales' states are in
        // different slots, so one GET each (in one call, one after another).
        let cluster = self.link.is_cluster();
        let states: Vec<Option<String>> = self
            .link
            .call("poll", async |connection| {
                if !cluster {
                    return redis::cmd("MGET").arg(&keys).query_async(connection).await;
                }
                let mut states = Vec::with_capacity(keys.len());
                for key in &keys {
                    states.push(redis::cmd("GET").arg(key).query_async(connection).await?);
                }
                Ok(states)
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

    /// Several orders' limit checks, one script call per sale (a sale's
    /// counts share its slot), applied in order within a sale; one answer
    /// per check, in the order of `checks`. Calls made before one that
    /// fails stay counted.
    pub async fn take_limits(
        &self,
        checks: &[LimitCheck],
    ) -> Result<Vec<LimitTaken>, RedisFailure> {
        let mut answers: Vec<Option<LimitTaken>> = vec![None; checks.len()];
        for group in by_sale(checks, |check| &check.sale_id) {
            let group_checks: Vec<LimitCheck> =
                group.iter().map(|&index| checks[index].clone()).collect();
            let taken = self.take_sale_limits(&group_checks).await?;
            for (index, answer) in group.into_iter().zip(taken) {
                answers[index] = Some(answer);
            }
        }
        Ok(answers.into_iter().flatten().collect())
    }

    /// [`Self::take_limits`] for checks of one sale: one script call.
    async fn take_sale_limits(
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

    /// Adds each `(sale, sku, buyer, delta)` of **one sale** to the buyer's
    /// count, in one call (the sale's counts share its slot): units
    /// released by cancels, expiries and refunds (negative), and units sold
    /// while Redis was away (positive). Deltas of several sales are refused
    /// (group them per sale: `cluster::limits` does).
    pub async fn adjust_counts(&self, deltas: &[BuyerDelta]) -> Result<(), RedisFailure> {
        let Some(first) = deltas.first() else {
            return Ok(());
        };
        if deltas.iter().any(|delta| delta.sale_id != first.sale_id) {
            return Err(RedisFailure::Refused {
                op: "limit_adjust",
                message: "one adjust_counts call takes the deltas of one sale".into(),
            });
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
            .key(self.key(NODES_KEY))
            .key(self.key(NODE_TAG_SEQ_KEY))
            .arg(node_id)
            .arg(NODE_TAGS_MAX - 1);
        self.link
            .call("node_tag", async |connection| {
                invocation.invoke_async(connection).await
            })
            .await
    }
}

/// The node-wide keys, under the prefix; one hash tag, so `node_tag`'s
/// two keys share a slot.
pub const NODES_KEY: &str = "{nodes}";
pub const NODE_TAG_SEQ_KEY: &str = "{nodes}:tag_seq";

/// A key of one sale: `<prefix>:sale:{<sale>}:<rest>`. The sale id is the
/// hash tag (sale ids are `[A-Za-z0-9_-]`, never a brace), so every key of
/// the sale is in one Redis Cluster slot; the prefix stays first, so
/// `<prefix>:*` still finds every key.
pub fn sale_key(prefix: &str, sale_id: &str, rest: &str) -> String {
    format!("{prefix}:sale:{{{sale_id}}}:{rest}")
}

/// The indices of `items` grouped by sale, in the order each sale first
/// appears, each group in the items' order.
fn by_sale<T>(items: &[T], sale_of: impl Fn(&T) -> &String) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&String, Vec<usize>)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let sale_id = sale_of(item);
        match groups.iter_mut().find(|(sale, _)| *sale == sale_id) {
            Some((_, group)) => group.push(index),
            None => groups.push((sale_id, vec![index])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    /// Every key one sale's scripts and reads name, for `sale`.
    fn keys_of_sale(prefix: &str, sale: &str) -> Vec<String> {
        [
            "spec",
            "state",
            "stock",
            "leased:k1",
            "leased:k-2",
            "bought:k1",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain(["grant:n1-1700000000000-lease7".to_owned()])
        .chain(["return:n2-1700000000000-return3".to_owned()])
        .map(|rest| sale_key(prefix, sale, &rest))
        .collect()
    }

    #[test]
    fn every_key_of_one_sale_is_in_one_slot_and_sales_spread() {
        for prefix in ["flashgate", "shop:eu-1", "flashgate-test:burst:42:7"] {
            let mut slots = std::collections::HashSet::new();
            for sale in ["s1", "s2", "cluster-1", "A_very-long_sale-id_0123456789ab"] {
                let keys = keys_of_sale(prefix, sale);
                let slot = Slot::for_key(&keys[0]);
                for key in &keys {
                    assert!(key.starts_with(&format!("{prefix}:")), "{key}");
                    assert_eq!(Slot::for_key(key), slot, "{key} and {}", keys[0]);
                    assert_eq!(
                        Slot::for_key(key),
                        Slot::for_key(sale),
                        "the sale id is the hash tag: {key}"
                    );
                }
                slots.insert(format!("{slot:?}"));
            }
            assert_eq!(slots.len(), 4, "four sales, four slots ({prefix})");
        }
        assert_eq!(sale_key("p", "s1", "stock"), "p:sale:{s1}:stock");
    }

    #[test]
    fn the_node_wide_keys_share_a_slot() {
        let registry_keys =
            |prefix: &str| [NODES_KEY, NODE_TAG_SEQ_KEY].map(|key| format!("{prefix}:{key}"));
        for prefix in ["flashgate", "other:prefix"] {
            let [nodes, seq] = registry_keys(prefix);
            assert_eq!(Slot::for_key(&nodes), Slot::for_key(&seq), "{nodes} {seq}");
        }
    }

    #[test]
    fn checks_and_deltas_are_grouped_per_sale_in_order() {
        let sales: Vec<String> = ["a", "b", "a", "c", "b", "a"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            by_sale(&sales, |sale| sale),
            vec![vec![0, 2, 5], vec![1, 4], vec![3]]
        );
        assert!(by_sale(&Vec::<String>::new(), |sale| sale).is_empty());
    }
}
