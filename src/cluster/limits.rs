//! Per-user limits across the nodes.
//!
//! Each node's engine counts what a buyer holds on that node; a buyer who
//! reaches several nodes (any load balancer spreads them) must still get no
//! more than `per_user_limit` of an item in all. Redis keeps every buyer's
//! count of every item (`sale:{<sale>}:bought:<sku>`, a hash buyer → units):
//!
//! - **Before** a new order reserves, the node runs the `take_limit` script:
//!   the units are counted for the buyer if the count stays within the
//!   limit, atomically, so two nodes cannot both squeeze under it. Over the
//!   limit: 409 `LIMIT_EXCEEDED`, nothing reserved. One call per new order,
//!   on the node's one multiplexed connection: concurrent orders' calls are
//!   pipelined (written together, answered together), so they share round
//!   trips without waiting for each other. (A task gathering concurrent
//!   checks into one script call was tried: 0.2 calls per order instead of
//!   1, but 16-18 µs more gateway CPU per order instead of 7-10, from the
//!   extra hop; docs/PERFORMANCE.md, "Cluster".) A retry of an
//!   idempotency key this node knows, and a request the node refuses anyway
//!   (sale unknown or not live, stock known spent, a quantity out of range)
//!   make no call.
//! - **After**: an order that was not made (sold out, the lease empty, a
//!   race with its own key) gives its units back; so do cancels, expiries
//!   and refunds, which the engine reports as they happen
//!   ([`BuyerCountWatch`]). Those changes are gathered here and sent in one
//!   `adjust_counts` call per sale per wake-up (a sale's counts share one
//!   Redis Cluster slot), retried until Redis takes them.
//!
//! A count in Redis is never lower than what the buyer's live orders hold
//! while Redis answers: the units are counted before they are reserved and
//! given back after they are released. A crash between the count and the
//! order's journal record leaves the units counted for an order that was
//! never made (the buyer may be refused a unit they could have had, never
//! given one too many).
//!
//! **Redis away** (`cluster.limits_without_redis`): `local` decides on the
//! node's own count, and counts the units sold meanwhile in Redis once it
//! answers again, so the node keeps selling its lease (a buyer who reaches
//! several nodes during the outage may get the limit on each); `refuse`
//! answers 503 `OVERLOADED` and keeps the limit exact.

use crate::clock::UnixMs;
use crate::cluster::node::ClusterNode;
use crate::cluster::registry::{BuyerDelta, LimitTaken};
use crate::cluster::RedisFailure;
use crate::config::LimitsWithoutRedis;
use crate::inventory::OrderRequest;
use crate::sale::{BuyerCountWatch, Engine};
use crate::shutdown::Shutdown;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Changes sent in one `adjust_counts` call at most (calls are per sale).
const ADJUST_BATCH: usize = 512;

/// What the limit check decided for one order request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitTicket {
    /// Nothing counted: the engine decides alone (a known key's retry, or
    /// a request it refuses before any limit).
    Engine,
    /// The units are counted for the buyer in Redis.
    Counted,
    /// Redis did not answer; the engine checks the node's own count, and
    /// an order made is counted in Redis later.
    Unchecked,
}

/// Why the limit check refused a request.
#[derive(Debug)]
pub enum LimitRefusal {
    /// The buyer holds `held` across the nodes; the order would pass `limit`.
    Exceeded { limit: u32, held: u32 },
    /// Redis did not answer and `limits_without_redis = "refuse"`.
    RedisDown(RedisFailure),
}

/// Changes to buyers' counts not yet sent to Redis, net per buyer and item.
#[derive(Default)]
pub struct PendingCounts {
    deltas: Mutex<HashMap<(String, String, String), i64>>,
    added: Notify,
}

impl PendingCounts {
    pub fn add(&self, sale_id: &str, sku_id: &str, buyer: &str, delta: i64) {
        if delta == 0 {
            return;
        }
        let key = (sale_id.to_owned(), sku_id.to_owned(), buyer.to_owned());
        let mut deltas = self
            .deltas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *deltas.entry(key).or_insert(0) += delta;
        drop(deltas);
        self.added.notify_one();
    }

    /// Every change gathered so far, netted; changes that cancel out are dropped.
    fn take(&self) -> Vec<BuyerDelta> {
        let mut deltas = self
            .deltas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        deltas
            .drain()
            .filter(|(_, delta)| *delta != 0)
            .map(|((sale_id, sku_id, buyer), delta)| BuyerDelta {
                sale_id,
                sku_id,
                buyer,
                delta,
            })
            .collect()
    }

    /// Changes not sent go back, merged with any gathered meanwhile.
    fn put_back(&self, unsent: Vec<BuyerDelta>) {
        let mut deltas = self
            .deltas
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for delta in unsent {
            let key = (delta.sale_id, delta.sku_id, delta.buyer);
            *deltas.entry(key).or_insert(0) += delta.delta;
        }
    }

    pub fn len(&self) -> usize {
        self.deltas.lock().map_or(0, |deltas| deltas.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl BuyerCountWatch for PendingCounts {
    fn changed(&self, sale_id: &str, sku_id: &str, buyer: &str, delta: i64) {
        self.add(sale_id, sku_id, buyer, delta);
    }
}

impl ClusterNode {
    /// Counts the order's units for the buyer across the nodes before it
    /// reserves; see the module doc for when no call is made.
    pub async fn check_limit(
        &self,
        engine: &Engine,
        buyer: &str,
        idempotency_key: &str,
        request: &OrderRequest,
        now: UnixMs,
    ) -> Result<LimitTicket, LimitRefusal> {
        if engine.knows_key(buyer, idempotency_key) {
            return Ok(LimitTicket::Engine);
        }
        let Ok(sale) = engine.sale(&request.sale_id) else {
            return Ok(LimitTicket::Engine);
        };
        let Some(index) = sale.item_index(&request.sku_id) else {
            return Ok(LimitTicket::Engine);
        };
        let limit = sale.spec.items[index].per_user_limit;
        let refused_anyway = !(1..=limit).contains(&request.quantity)
            || !sale.takes_orders(now)
            || self.global_spent(&request.sale_id, &request.sku_id);
        if refused_anyway {
            return Ok(LimitTicket::Engine);
        }
        let taken = self
            .registry()
            .take_limit(
                &request.sale_id,
                &request.sku_id,
                buyer,
                request.quantity,
                limit,
            )
            .await;
        self.note_redis();
        match taken {
            Ok(LimitTaken::Counted) => Ok(LimitTicket::Counted),
            Ok(LimitTaken::Exceeded { held }) => Err(LimitRefusal::Exceeded { limit, held }),
            Err(failure) => match self.limits_without_redis() {
                LimitsWithoutRedis::Local => Ok(LimitTicket::Unchecked),
                LimitsWithoutRedis::Refuse => Err(LimitRefusal::RedisDown(failure)),
            },
        }
    }

    /// After the engine's answer: units counted for an order that was not
    /// made go back; an order made while Redis was away is counted now.
    /// `made`: a new order was made (not a replay, not a refusal).
    pub fn settle_limit(
        &self,
        ticket: LimitTicket,
        buyer: &str,
        request: &OrderRequest,
        made: bool,
    ) {
        let quantity = i64::from(request.quantity);
        let delta = match (ticket, made) {
            (LimitTicket::Counted, false) => -quantity,
            (LimitTicket::Unchecked, true) => quantity,
            _ => return,
        };
        self.pending_counts()
            .add(&request.sale_id, &request.sku_id, buyer, delta);
    }

    /// Sends the gathered count changes to Redis whenever there are some,
    /// and once more at shutdown.
    pub async fn run_count_flush(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = self.pending_counts().added.notified() => {}
                _ = tokio::time::sleep(self.poll_interval()) => {}
                _ = shutdown.triggered() => break,
            }
            self.flush_counts().await;
        }
        self.flush_counts().await;
        let unsent = self.pending_counts().len();
        if unsent > 0 {
            tracing::warn!(
                unsent,
                "buyer counts not sent to Redis at shutdown; those buyers' limits are off by them"
            );
        }
    }

    /// One pass: everything gathered, one sale at a time (a sale's counts
    /// share its Redis Cluster slot; one call never spans two sales), in
    /// batches; what Redis does not take is kept for the next pass.
    pub async fn flush_counts(&self) {
        let mut batches = per_sale_batches(self.pending_counts().take()).into_iter();
        while let Some(batch) = batches.next() {
            let sent = self.registry().adjust_counts(&batch).await;
            self.note_redis();
            if let Err(error) = sent {
                let mut unsent = batch;
                unsent.extend(batches.flatten());
                tracing::warn!(%error, pending = unsent.len(),
                    "buyer counts not sent to Redis; retrying");
                self.pending_counts().put_back(unsent);
                return;
            }
        }
    }
}

/// The deltas split into `adjust_counts` calls: one sale each, at most
/// [`ADJUST_BATCH`] deltas.
fn per_sale_batches(mut deltas: Vec<BuyerDelta>) -> Vec<Vec<BuyerDelta>> {
    deltas.sort_by(|a, b| a.sale_id.cmp(&b.sale_id));
    let mut batches: Vec<Vec<BuyerDelta>> = Vec::new();
    for delta in deltas {
        match batches.last_mut() {
            Some(batch) if batch[0].sale_id == delta.sale_id && batch.len() < ADJUST_BATCH => {
                batch.push(delta);
            }
            _ => batches.push(vec![delta]),
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_changes_go_out_one_sale_per_call_in_bounded_batches() {
        let delta = |sale: &str, buyer: usize| BuyerDelta {
            sale_id: sale.to_owned(),
            sku_id: "k".to_owned(),
            buyer: format!("b{buyer}"),
            delta: -1,
        };
        let mut deltas: Vec<BuyerDelta> = (0..ADJUST_BATCH + 3).map(|i| delta("s2", i)).collect();
        deltas.extend((0..5).map(|i| delta("s1", i)));
        deltas.push(delta("s3", 0));
        let batches = per_sale_batches(deltas);
        let shape: Vec<(&str, usize)> = batches
            .iter()
            .map(|batch| (batch[0].sale_id.as_str(), batch.len()))
            .collect();
        assert_eq!(
            shape,
            [("s1", 5), ("s2", ADJUST_BATCH), ("s2", 3), ("s3", 1)]
        );
        for batch in &batches {
            assert!(batch.iter().all(|delta| delta.sale_id == batch[0].sale_id));
        }
        assert!(per_sale_batches(Vec::new()).is_empty());
    }

    #[test]
    fn pending_changes_are_netted_per_buyer_and_unsent_ones_merge_back() {
        let pending = PendingCounts::default();
        pending.add("s1", "k1", "alice", -2);
        pending.add("s1", "k1", "alice", 1);
        pending.add("s1", "k1", "bob", 1);
        pending.add("s1", "k1", "bob", -1);
        pending.add("s1", "k2", "alice", 3);
        pending.add("s1", "k2", "carol", 0);
        let mut taken = pending.take();
        taken.sort_by(|a, b| (&a.sku_id, &a.buyer).cmp(&(&b.sku_id, &b.buyer)));
        let net: Vec<(&str, &str, i64)> = taken
            .iter()
            .map(|delta| (delta.sku_id.as_str(), delta.buyer.as_str(), delta.delta))
            .collect();
        assert_eq!(net, vec![("k1", "alice", -1), ("k2", "alice", 3)]);
        assert!(pending.is_empty());
        pending.add("s1", "k1", "alice", -1);
        pending.put_back(taken);
        let mut again = pending.take();
        again.sort_by(|a, b| a.sku_id.cmp(&b.sku_id));
        assert_eq!(again.len(), 2);
        assert_eq!((again[0].delta, again[1].delta), (-2, 3));
    }
}
