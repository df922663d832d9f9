//! The node's side of the protocol: host actions through Redis, the poller
//! that learns sales and states, the refill task that leases and returns,
//! the start-up reconcile, and what an order that finds the lease empty is
//! told.
//!
//! The order path's stock side touches none of this in the common case: after a
//! reservation the storefront handler reads the item's local remaining
//! (one load per shard) and wakes the refill task when it is under the low
//! watermark; only a reservation that finds the shards empty comes here.

use crate::clock::{now_ms, UnixMs};
use crate::cluster::limits::PendingCounts;
use crate::cluster::registry::{Registry, Restocked, Transitioned};
use crate::cluster::RedisFailure;
use crate::config::{ClusterConfig, LimitsWithoutRedis};
use crate::inventory::ConcurrentMap;
use crate::metrics as names;
use crate::sale::views::SaleView;
use crate::sale::{Engine, Sale, SaleAction, SaleError, SaleSpec, SaleStatus};
use crate::shutdown::Shutdown;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};

/// A global remaining not read yet.
const UNKNOWN: i64 = -1;
/// The subscriber's reconnect back-off.
const SUBSCRIBE_BACKOFF_MIN: Duration = Duration::from_millis(100);
const SUBSCRIBE_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Why a cluster host action or order could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Sale(#[from] SaleError),
    #[error(transparent)]
    Redis(#[from] RedisFailure),
    #[error("the change could not be made durable: {0}")]
    Journal(#[from] crate::journal::JournalError),
    /// Redis and the journal disagree on what the node holds, or Redis
    /// could not be asked: no lease or return until they agree.
    #[error("leases not reconciled with Redis: {0}")]
    Reconcile(String),
}

/// What the node knows of one item beyond its shards.
struct ItemLease {
    /// The item's global remaining as last read (a lease's answer or a
    /// poll), or [`UNKNOWN`].
    global_remaining: AtomicI64,
    /// Woken when a grant reaches the shards.
    refilled: Notify,
    /// When the last lease was asked for and how many units of the item
    /// were out of the shards then (reserved or paid): the sell rate since.
    last_lease: std::sync::Mutex<Option<(std::time::Instant, i64)>>,
}

pub struct ClusterNode {
    registry: Registry,
    engine: Arc<Engine>,
    node_id: String,
    block_units: i64,
    low_watermark_units: i64,
    refill_wait: Duration,
    poll_interval: Duration,
    /// Lease and return ids are `<node>-<boot ms>-<n>`: unique per start.
    boot_ms: UnixMs,
    next_id: AtomicU64,
    items: ConcurrentMap<String, Arc<ItemLease>>,
    refill: Notify,
    /// Woken by the subscriber: another node created a sale or moved one.
    poll_now: Notify,
    /// Serialises creating a sale here with learning one from Redis.
    learning: Mutex<()>,
    /// Serialises moving local sales to the shared state: a host action
    /// here and the poller woken by its own publication both follow it,
    /// and the second must find nothing left to do.
    following: Mutex<()>,
    /// Buyers' count changes on their way to Redis (`cluster::limits`).
    pending_counts: Arc<PendingCounts>,
    limits_without_redis: LimitsWithoutRedis,
    /// Whether Redis's record of this node's leases has been reconciled
    /// with its journal: at start-up, or, for a node that started while
    /// Redis was away, by the refill task's first pass that reaches it
    /// (no lease or return before).
    reconciled: std::sync::atomic::AtomicBool,
}

impl ClusterNode {
    pub fn new(registry: Registry, engine: Arc<Engine>, config: &ClusterConfig) -> ClusterNode {
        ClusterNode {
            registry,
            engine,
            node_id: config.node_id.clone(),
            block_units: config.lease_block_units,
            low_watermark_units: config.lease_low_watermark_units,
            refill_wait: Duration::from_millis(config.refill_wait_ms),
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            boot_ms: now_ms(),
            next_id: AtomicU64::new(1),
            items: ConcurrentMap::default(),
            refill: Notify::new(),
            poll_now: Notify::new(),
            learning: Mutex::new(()),
            following: Mutex::new(()),
            pending_counts: Arc::new(PendingCounts::default()),
            limits_without_redis: config.limits_without_redis,
            reconciled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The buyers' count changes not yet in Redis; the engine reports its
    /// releases here (`Engine::watch_buyer_counts`).
    pub fn pending_counts(&self) -> &Arc<PendingCounts> {
        &self.pending_counts
    }

    pub fn limits_without_redis(&self) -> LimitsWithoutRedis {
        self.limits_without_redis
    }

    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn fresh_id(&self, kind: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{kind}{n}", self.node_id, self.boot_ms)
    }

    fn item(&self, sale_id: &str, sku_id: &str) -> Arc<ItemLease> {
        let key = format!("{sale_id}/{sku_id}");
        if let Some(item) = self.items.get(&key) {
            return Arc::clone(&item);
        }
        let entry = self.items.entry(key).or_insert_with(|| {
            Arc::new(ItemLease {
                global_remaining: AtomicI64::new(UNKNOWN),
                refilled: Notify::new(),
                last_lease: std::sync::Mutex::new(None),
            })
        });
        Arc::clone(&entry)
    }

    // ---- host actions ------------------------------------------------------

    /// Registers the sale in Redis with its global stock, then creates it
    /// here (with no local stock). Another node's sale of that id refuses.
    pub async fn create_sale(
        &self,
        spec: SaleSpec,
        now: UnixMs,
    ) -> Result<(SaleView, crate::journal::Commit), ClusterError> {
        let _learning = self.learning.lock().await;
        self.engine.check_new_sale(&spec)?;
        if !self.registry.register_sale(&spec).await? {
            return Err(SaleError::InvalidState(format!(
                "sale `{}` already exists in the cluster",
                spec.sale_id
            ))
            .into());
        }
        Ok(self.engine.create_sale(spec, now)?)
    }

    /// The action through the shared life-cycle table, then this node's
    /// sale follows the shared state. Other nodes follow on their poll.
    pub async fn sale_action(
        &self,
        sale_id: &str,
        action: SaleAction,
        now: UnixMs,
    ) -> Result<SaleView, ClusterError> {
        self.engine.sale(sale_id)?;
        let status = match self.registry.transition(sale_id, action).await? {
            Transitioned::Moved(status) => status,
            Transitioned::Refused(status) => {
                self.follow(sale_id, status, now).await?;
                return Err(SaleError::InvalidState(format!(
                    "cannot {} a sale that is {}",
                    action.as_str(),
                    status.as_str()
                ))
                .into());
            }
        };
        self.follow(sale_id, status, now).await?;
        if status == SaleStatus::Live {
            self.refill.notify_one();
        }
        Ok(self.engine.sale_view(sale_id, now)?)
    }

    /// Adds units to the item's global stock in Redis (never to this
    /// node's lease directly): every node can lease them, told at once by
    /// pub/sub. The limit is `sale.stock_per_item_max` across the cluster.
    pub async fn restock(
        &self,
        sale_id: &str,
        sku_id: &str,
        add: i64,
        stock_max: i64,
    ) -> Result<(), ClusterError> {
        let sale = self.engine.sale(sale_id)?;
        if sale.item_index(sku_id).is_none() {
            let message = format!("item `{sku_id}` of sale `{sale_id}`");
            return Err(SaleError::NotFound(message).into());
        }
        if !(1..=stock_max).contains(&add) {
            let message =
                format!("must be at least 1 and keep the item's stock within {stock_max}");
            return Err(crate::sale::invalid("add", message).into());
        }
        match self.registry.restock(sale_id, sku_id, add, stock_max).await? {
            Restocked::Added { total } => {
                tracing::info!(sale_id, sku_id, add, total, "global stock restocked");
                self.item(sale_id, sku_id)
                    .global_remaining
                    .store(UNKNOWN, Ordering::Release);
                self.refill.notify_one();
                Ok(())
            }
            Restocked::Ended => Err(SaleError::InvalidState(format!(
                "sale `{sale_id}` has ended; it cannot be restocked"
            ))
            .into()),
            Restocked::TooMuch { total } => Err(crate::sale::invalid(
                "add",
                format!(
                    "the item's stock across the cluster is {total}: must keep it within {stock_max}"
                ),
            )
            .into()),
        }
    }

    /// Moves this node's sale to `target` by the table's actions, each
    /// journaled; waits for the last to be durable.
    async fn follow(
        &self,
        sale_id: &str,
        target: SaleStatus,
        now: UnixMs,
    ) -> Result<(), ClusterError> {
        let _following = self.following.lock().await;
        let from = self.engine.sale(sale_id)?.status();
        for action in path(from, target) {
            let (_, commit) = self.engine.sale_action(sale_id, *action, now)?;
            commit.durable().await?;
            tracing::info!(
                sale_id,
                action = action.as_str(),
                "sale follows the cluster"
            );
        }
        Ok(())
    }

    // ---- the order path's slow side ----------------------------------------

    /// After a reservation: wakes the refill task when the item's local
    /// remaining is under the low watermark.
    pub fn after_order(&self, sale: &Sale, index: usize) {
        if sale.items[index].stock.remaining() < self.low_watermark_units {
            self.refill.notify_one();
        }
    }

    /// A reservation found the local lease empty: waits at most
    /// `refill_wait_ms` for the refill in flight, unless the global stock
    /// is known to be spent. True: a lease answered (try again).
    pub async fn wait_for_refill(&self, sale_id: &str, sku_id: &str) -> bool {
        let item = self.item(sale_id, sku_id);
        if item.global_remaining.load(Ordering::Acquire) == 0 {
            return false;
        }
        let refilled = item.refilled.notified();
        self.refill.notify_one();
        tokio::time::timeout(self.refill_wait, refilled)
            .await
            .is_ok()
    }

    /// True when the item's global stock was last read as spent: what a
    /// node holds is then all that is left of it here.
    pub fn global_spent(&self, sale_id: &str, sku_id: &str) -> bool {
        self.item(sale_id, sku_id)
            .global_remaining
            .load(Ordering::Acquire)
            == 0
    }

    // ---- reads ---------------------------------------------------------------

    /// Who holds what of the sale's items, for the stats: the global
    /// remaining and every node's lease, or why Redis could not say.
    pub async fn leases_view(&self, sale_id: &str) -> serde_json::Value {
        let mut items = Vec::new();
        let read: Result<(), RedisFailure> = async {
            let mut global = self.registry.global_stock(sale_id).await?;
            global.sort();
            for (sku_id, remaining) in global {
                let leases = self.registry.leases(sale_id, &sku_id).await?;
                let leases: Vec<_> = leases
                    .into_iter()
                    .map(|(node_id, units)| serde_json::json!({"node_id": node_id, "units": units}))
                    .collect();
                items.push(serde_json::json!({
                    "sku_id": sku_id, "global_remaining": remaining, "leases": leases,
                }));
            }
            Ok(())
        }
        .await;
        match read {
            Ok(()) => serde_json::json!({"node_id": self.node_id, "items": items}),
            Err(error) => {
                serde_json::json!({"node_id": self.node_id, "redis_error": error.to_string()})
            }
        }
    }

    // ---- start-up ------------------------------------------------------------

    /// Gives back what Redis says this node holds beyond its journal: a
    /// lease granted but never journaled, or a return journaled but never
    /// applied. Neither was sold. Redis saying less than the journal means
    /// the two disagree about sold stock: the node refuses to start.
    pub async fn reconcile(&self) -> Result<(), String> {
        for sale in self.engine.sales() {
            for (index, item) in sale.spec.items.iter().enumerate() {
                let sku_id = &item.sku_id;
                let leased = self
                    .registry
                    .leased(sale.id(), sku_id, &self.node_id)
                    .await
                    .map_err(|error| error.to_string())?;
                let journaled = sale.items[index].stock.counts().stock;
                let gap = leased - journaled;
                if gap < 0 {
                    return Err(format!(
                        "sale `{}` item `{sku_id}`: the journal holds {journaled} leased units \
                         but Redis records {leased} for node `{}`",
                        sale.id(),
                        self.node_id
                    ));
                }
                if gap > 0 {
                    let return_id = self.fresh_id("reconcile");
                    self.registry
                        .give_back(sale.id(), sku_id, &self.node_id, gap, &return_id)
                        .await
                        .map_err(|error| error.to_string())?;
                    tracing::warn!(
                        sale_id = sale.id(),
                        sku_id,
                        units = gap,
                        "returned leased units the journal does not hold"
                    );
                }
                self.publish_leased(&sale, index);
            }
        }
        self.reconciled.store(true, Ordering::Release);
        Ok(())
    }

    // ---- background tasks ------------------------------------------------

    /// Learns sales and states from Redis at once when the subscriber
    /// hears of a change, and every poll interval in case it did not (a
    /// message published while it was reconnecting is lost).
    pub async fn run_poller(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut interval = tokio::time::interval(self.poll_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.poll_now.notified() => {}
                _ = shutdown.triggered() => return,
            }
            let polled = self.poll().await;
            self.note_redis();
            if let Err(error) = polled {
                tracing::warn!(%error, "cluster poll failed");
            }
        }
    }

    /// Follows the events channel, waking the poller for each message;
    /// reconnects with a back-off doubling to `SUBSCRIBE_BACKOFF_MAX`.
    pub async fn run_subscriber(self: Arc<Self>, mut shutdown: Shutdown) {
        use futures_util::StreamExt;
        let channel = self.registry.events_channel();
        let mut backoff = SUBSCRIBE_BACKOFF_MIN;
        loop {
            match self.registry.link().subscribe(&channel).await {
                Ok(mut messages) => {
                    backoff = SUBSCRIBE_BACKOFF_MIN;
                    // What happened while it was away.
                    self.poll_now.notify_one();
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(_) => self.poll_now.notify_one(),
                                None => break,
                            },
                            _ = shutdown.triggered() => return,
                        }
                    }
                    tracing::warn!("cluster subscription lost; reconnecting");
                }
                Err(error) => tracing::warn!(%error, "cluster subscription failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.triggered() => return,
            }
            backoff = (backoff * 2).min(SUBSCRIBE_BACKOFF_MAX);
        }
    }

    /// Leases for live sales whose items run low, and gives back what
    /// paused and ended sales hold; on every wake-up and poll interval.
    pub async fn run_refill(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = self.refill.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = shutdown.triggered() => break,
            }
            let refilled = self.refill_pass().await;
            self.note_redis();
            if let Err(error) = refilled {
                tracing::warn!(%error, "cluster refill failed");
            }
        }
        // Shutdown: nothing sells here any more; give the unsold units back.
        for sale in self.engine.sales() {
            if let Err(error) = self.return_sale(&sale).await {
                tracing::warn!(sale_id = sale.id(), %error, "unsold lease not returned at shutdown; \
                    it returns at the next start");
            }
        }
    }

    /// `flashgate_cluster_redis_up` after a call: what the link saw last
    /// (`RedisLink::reachable`, the same as `/readyz` reads).
    pub(super) fn note_redis(&self) {
        let reachable = self.registry.link().reachable();
        metrics::gauge!(names::CLUSTER_REDIS_UP).set(if reachable { 1.0 } else { 0.0 });
    }

    async fn poll(&self) -> Result<(), ClusterError> {
        let sale_ids = self.registry.sale_ids().await?;
        let now = now_ms();
        for sale_id in &sale_ids {
            if self.engine.sale(sale_id).is_ok() {
                continue;
            }
            let _learning = self.learning.lock().await;
            if self.engine.sale(sale_id).is_ok() {
                continue;
            }
            if let Some(spec) = self.registry.sale_spec(sale_id).await? {
                let (_, commit) = self.engine.create_sale(spec, now)?;
                commit.durable().await?;
                tracing::info!(sale_id, "sale learned from the cluster");
            }
        }
        let states = self.registry.sale_states(&sale_ids).await?;
        for (sale_id, state) in sale_ids.iter().zip(states) {
            let Some(state) = state else { continue };
            if self.engine.sale(sale_id)?.status() != state {
                self.follow(sale_id, state, now).await?;
                self.refill.notify_one();
            }
            if state == SaleStatus::Live {
                // Units other nodes gave back make a spent item leasable again.
                for (sku_id, remaining) in self.registry.global_stock(sale_id).await? {
                    let item = self.item(sale_id, &sku_id);
                    let before = item.global_remaining.swap(remaining, Ordering::AcqRel);
                    if before == 0 && remaining > 0 {
                        self.refill.notify_one();
                    }
                }
            }
        }
        Ok(())
    }

    async fn refill_pass(&self) -> Result<(), ClusterError> {
        if !self.reconciled.load(Ordering::Acquire) {
            self.reconcile().await.map_err(ClusterError::Reconcile)?;
            tracing::info!("leases reconciled with Redis after a start without it");
        }
        let now = now_ms();
        for sale in self.engine.sales() {
            if !sale.takes_orders(now) {
                self.return_sale(&sale).await?;
                continue;
            }
            for index in 0..sale.items.len() {
                let remaining = sale.items[index].stock.remaining();
                if remaining < self.low_watermark_units.max(1) {
                    self.lease(&sale, index, now).await?;
                }
            }
        }
        Ok(())
    }

    /// One lease for the item; its grant journaled before the units are
    /// reservable. A grant the engine refuses (the sale ended meanwhile)
    /// goes straight back.
    async fn lease(&self, sale: &Arc<Sale>, index: usize, now: UnixMs) -> Result<(), ClusterError> {
        let sku_id = &sale.spec.items[index].sku_id;
        let item = self.item(sale.id(), sku_id);
        if item.global_remaining.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let block = self.block_for(&item, sale, index);
        let lease_id = self.fresh_id("lease");
        let granted = self
            .registry
            .lease(sale.id(), sku_id, &self.node_id, block, &lease_id)
            .await?;
        item.global_remaining
            .store(granted.remaining, Ordering::Release);
        if granted.units > 0 {
            match self
                .engine
                .grant_lease(sale.id(), sku_id, &lease_id, granted.units, now)
            {
                Ok(commit) => {
                    item.refilled.notify_waiters();
                    commit.durable().await?;
                }
                Err(error) => {
                    tracing::info!(sale_id = sale.id(), sku_id, %error, "lease refused; returned");
                    let return_id = self.fresh_id("refused");
                    self.registry
                        .give_back(sale.id(), sku_id, &self.node_id, granted.units, &return_id)
                        .await?;
                }
            }
        } else {
            // Spent: the waiters are told so rather than left to time out.
            item.refilled.notify_waiters();
        }
        self.publish_leased(sale, index);
        Ok(())
    }

    /// Gives back every unreserved unit of a sale no longer taking orders:
    /// out of the shards, journaled, durable, then to Redis.
    /// Gives back every unreserved unit of every sale, whatever its state
    /// (`flashgate cluster reclaim`); `(sale, sku, units)` per item.
    pub async fn return_all(&self) -> Result<Vec<(String, String, i64)>, ClusterError> {
        let mut returned = Vec::new();
        for sale in self.engine.sales() {
            let held = |index: usize| sale.items[index].stock.counts().stock;
            let before: Vec<i64> = (0..sale.items.len()).map(held).collect();
            self.return_sale(&sale).await?;
            for (index, item) in sale.spec.items.iter().enumerate() {
                let units = before[index] - held(index);
                if units > 0 {
                    returned.push((sale.id().to_owned(), item.sku_id.clone(), units));
                }
            }
        }
        Ok(returned)
    }

    async fn return_sale(&self, sale: &Arc<Sale>) -> Result<(), ClusterError> {
        for (index, item) in sale.spec.items.iter().enumerate() {
            if sale.items[index].stock.remaining() == 0 {
                continue;
            }
            let return_id = self.fresh_id("return");
            let Some((units, commit)) =
                self.engine
                    .return_unsold(sale.id(), &item.sku_id, &return_id, now_ms())?
            else {
                continue;
            };
            commit.durable().await?;
            // A failure here leaves Redis counting the units as leased; the
            // next start's reconcile gives them back.
            self.registry
                .give_back(sale.id(), &item.sku_id, &self.node_id, units, &return_id)
                .await?;
            self.item(sale.id(), &item.sku_id)
                .global_remaining
                .store(UNKNOWN, Ordering::Release);
            self.publish_leased(sale, index);
        }
        Ok(())
    }

    fn publish_leased(&self, sale: &Sale, index: usize) {
        let held = sale.items[index].stock.counts().stock;
        let labels = [
            ("sale_id", sale.id().to_owned()),
            ("sku_id", sale.spec.items[index].sku_id.clone()),
        ];
        metrics::gauge!(names::CLUSTER_LEASED_UNITS, &labels).set(held as f64);
    }
}

impl ClusterNode {
    /// The block to ask for: what the item sold per second since the last
    /// lease, times [`LEASE_HORIZON`], within the low watermark + 1 and
    /// `lease_block_units`; the ceiling for the first lease.
    fn block_for(&self, item: &ItemLease, sale: &Sale, index: usize) -> i64 {
        let counts = sale.items[index].stock.counts();
        let out_now = counts.reserved + counts.paid;
        let now = std::time::Instant::now();
        let mut last = item
            .last_lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let rate = last.map(|(at, out_then)| {
            let seconds = now.duration_since(at).as_secs_f64().max(0.001);
            (out_now - out_then).max(0) as f64 / seconds
        });
        *last = Some((now, out_now));
        block_size(rate, self.low_watermark_units, self.block_units)
    }
}

/// How long one lease should last at the item's sell rate: long enough
/// that Redis sees a few calls a second per item at most, short enough
/// that a node that slows down does not sit on a large block.
const LEASE_HORIZON: Duration = Duration::from_secs(2);

/// A lease's size for a sell rate (units per second; `None` before the
/// first lease): rate × [`LEASE_HORIZON`], at least one more than the low
/// watermark (a refill must lift the item above it), at most `ceiling`.
fn block_size(rate_per_second: Option<f64>, low_watermark_units: i64, ceiling: i64) -> i64 {
    let floor = (low_watermark_units + 1).min(ceiling);
    match rate_per_second {
        None => ceiling,
        Some(rate) => {
            let wanted = (rate * LEASE_HORIZON.as_secs_f64()).ceil();
            (wanted.min(ceiling as f64) as i64).clamp(floor, ceiling)
        }
    }
}

/// The life-cycle actions that take a sale from `from` to `to`; none when
/// the table has no way (a sale never goes back to scheduled, nor leaves
/// ended).
fn path(from: SaleStatus, to: SaleStatus) -> &'static [SaleAction] {
    use SaleAction::*;
    use SaleStatus::*;
    match (from, to) {
        (Scheduled, Live) | (Paused, Live) => &[Start],
        (Scheduled, Paused) => &[Start, Pause],
        (Live, Paused) => &[Pause],
        (Scheduled | Live | Paused, Ended) => &[End],
        (_, Scheduled) | (Ended, _) | (Live, Live) | (Paused, Paused) => &[],
    }
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
