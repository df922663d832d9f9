//! Assembly: replays the journal into a fresh engine, attaches the journal,
//! binds the listener, and runs the server and the hold-expiry task until
//! shutdown, then flushes the journal. `main` and the black-box tests start
//! the gateway the same way.

use crate::clock::now_ms;
use crate::cluster::lock::DataDirLock;
use crate::cluster::{ClusterNode, RedisFailure, RedisLink, Registry};
use crate::config::Config;
use crate::http::server::{self, HttpThreads};
use crate::http::AppState;
use crate::journal::{self, Journal, JournalError, JournalOptions};
use crate::metrics as names;
use crate::pay::sim::SimHandle;
use crate::pay::PayClient;
use crate::payments::{merchant, Payments};
use crate::sale::replay::{ReplayCursor, Replayed};
use crate::sale::{Engine, EngineLimits};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::store::feeder::{Feeder, FeederOptions};
use crate::store::{StoreConfig, StoreError};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("cannot start the HTTP threads: {0}")]
    Threads(std::io::Error),
}

/// A running gateway.
pub struct Gateway {
    pub local_addr: SocketAddr,
    pub state: Arc<AppState>,
    /// The embedded WeChat Pay simulator, when `[pay]` has no merchant.
    pub simulator: Option<SimHandle>,
    journal: Arc<Journal>,
    feeder: Arc<Feeder>,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
    /// A cluster node holds its data dir's lock while it runs (reclaim).
    _cluster_lock: Option<DataDirLock>,
}

impl Gateway {
    pub async fn start(config: Config) -> Result<Gateway, StartError> {
        config
            .validate()
            .map_err(|error| StartError::Config(error.to_string()))?;
        let journal_dir = config.storage.data_dir.join("journal");
        for dir in [journal_dir.clone(), snapshot_dir(&config)] {
            std::fs::create_dir_all(&dir).map_err(|source| StartError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        crate::metrics::handle();
        // A cluster node learns its order-id tag from Redis (kept in the
        // data dir for a start while Redis is away) and reconciles what
        // Redis says it holds with its journal (below, or once Redis is back).
        let cluster_lock = match config.cluster.enabled() {
            true => {
                Some(DataDirLock::acquire(&config.storage.data_dir).map_err(StartError::Cluster)?)
            }
            false => None,
        };
        let cluster_start = match config.cluster.enabled() {
            true => Some(join_cluster(&config).await?),
            false => None,
        };
        let node_tag = cluster_start.as_ref().map(|(_, tag, _)| *tag);
        let (engine, journal) = recover(&config, &journal_dir, node_tag)?;
        let cluster = match cluster_start {
            Some((registry, _, reached)) => {
                let node = ClusterNode::new(registry, Arc::clone(&engine), &config.cluster);
                if reached {
                    node.reconcile().await.map_err(StartError::Cluster)?;
                }
                // After replay: only live releases change Redis's counts.
                engine.watch_buyer_counts(Arc::clone(node.pending_counts()) as _);
                Some(Arc::new(node))
            }
            None => None,
        };
        // The PostgreSQL client is blocking (it runs a runtime of its own):
        // open the store off this async thread.
        let (options, feeder_journal) = (feeder_options(&config), Arc::clone(&journal));
        let feeder = tokio::task::spawn_blocking(move || Feeder::start(options, feeder_journal))
            .await
            .map_err(|error| StartError::Config(format!("store start-up failed: {error}")))??;
        let feeder = Arc::new(feeder);
        let addr = config.listen_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let http_threads =
            HttpThreads::start(config.server.workers, config.server.http_thread_policy)
                .map_err(StartError::Threads)?;
        let hold_tick = Duration::from_millis(config.sale.hold_tick_ms);
        let sweep_every = Duration::from_secs(config.pay.reconcile_interval_seconds);
        let (payments, simulator) = start_payments(&config, &engine, local_addr).await?;
        let (trigger, shutdown) = shutdown::channel();
        let mut state = AppState::new(
            Arc::clone(&engine),
            Arc::clone(&journal),
            Arc::clone(&feeder.status),
            Arc::clone(&payments),
            config,
            shutdown.clone(),
        )
        .map_err(StartError::Config)?;
        state.cluster = cluster.clone();
        let state = Arc::new(state);
        let mut tasks = vec![
            tokio::spawn(server::serve(listener, http_threads, Arc::clone(&state))),
            tokio::spawn(expire_holds(
                engine,
                Arc::clone(&payments),
                hold_tick,
                shutdown.clone(),
            )),
            tokio::spawn(payments.run_sweeps(sweep_every, shutdown.clone())),
        ];
        if let Some(cluster) = cluster {
            tasks.push(tokio::spawn(
                Arc::clone(&cluster).run_poller(shutdown.clone()),
            ));
            tasks.push(tokio::spawn(
                Arc::clone(&cluster).run_subscriber(shutdown.clone()),
            ));
            tasks.push(tokio::spawn(
                Arc::clone(&cluster).run_count_flush(shutdown.clone()),
            ));
            tasks.push(tokio::spawn(cluster.run_refill(shutdown)));
        }
        tracing::info!(%local_addr, "flashgate listening");
        Ok(Gateway {
            local_addr,
            state,
            simulator,
            journal,
            feeder,
            trigger,
            tasks,
            _cluster_lock: cluster_lock,
        })
    }

    /// Stops accepting, finishes in-flight requests, stops the timers, then
    /// writes and syncs whatever the journal still holds.
    pub async fn shutdown(self) {
        self.trigger.trigger();
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a gateway task failed");
            }
        }
        if let Some(simulator) = self.simulator {
            simulator.shutdown().await;
        }
        let (journal, feeder) = (self.journal, self.feeder);
        let drained = tokio::task::spawn_blocking(move || {
            journal.shutdown();
            feeder.shutdown(); // applies what the flushed journal holds
        })
        .await;
        if let Err(error) = drained {
            tracing::error!(%error, "journal flush or store drain failed");
        }
    }
}

/// Rebuilds the engine from the journal, then attaches the journal so new
/// changes are appended after what was replayed.
fn engine_limits(config: &Config) -> EngineLimits {
    EngineLimits {
        shard_count: config.inventory.shards,
        sales_max: config.sale.sales_max,
        items_per_sale_max: config.sale.items_per_sale_max,
        stock_per_item_max: config.sale.stock_per_item_max,
        orders_max: config.sale.orders_max,
        hold_seconds_min: config.sale.hold_seconds_min,
        stock_from_leases: config.cluster.enabled(),
    }
}

/// The store `[storage]` names: SQLite in the data dir, or PostgreSQL.
pub fn store_config(config: &Config) -> StoreConfig {
    let storage = &config.storage;
    if storage.postgres_url.is_empty() {
        StoreConfig::Sqlite {
            path: storage.data_dir.join("flashgate.sqlite3"),
        }
    } else {
        StoreConfig::Postgres {
            url: storage.postgres_url.clone(),
        }
    }
}

fn feeder_options(config: &Config) -> FeederOptions {
    let storage = &config.storage;
    FeederOptions {
        store: store_config(config),
        // Empty for a node alone (config refuses a node id without Redis).
        node_id: config.cluster.node_id.clone(),
        journal_dir: storage.data_dir.join("journal"),
        snapshot_dir: snapshot_dir(config),
        limits: engine_limits(config),
        batch_records_max: storage.store_batch_records_max,
        snapshot_every_records: storage.snapshot_every_records,
        poll: Duration::from_millis(20),
        defer: Duration::from_secs(storage.store_defer_seconds),
        defer_records_max: storage.store_defer_records_max,
    }
}

/// `flashgate cluster reclaim`: gives back to the global stock whatever a
/// stopped cluster node holds unsold. Under the data dir's lock (refused
/// while the node runs), it replays the node's journal, reconciles it with
/// Redis as a start would, journals a `lease_returned` per item in the
/// node's own journal, then returns the units. The node, started later,
/// replays those returns and holds exactly what it sold. Returns
/// `(sale, sku, units)` per item given back.
pub async fn reclaim(config: &Config) -> Result<Vec<(String, String, i64)>, StartError> {
    let journal_dir = config.storage.data_dir.join("journal");
    if !journal_dir.is_dir() {
        return Err(StartError::Cluster(format!(
            "{} holds no journal: not a node's data dir",
            config.storage.data_dir.display()
        )));
    }
    let _lock = DataDirLock::acquire(&config.storage.data_dir).map_err(StartError::Cluster)?;
    let (registry, tag) = connect_cluster(config).await?;
    let (engine, journal) = recover(config, &journal_dir, Some(tag))?;
    let node = ClusterNode::new(registry, Arc::clone(&engine), &config.cluster);
    let returned = async {
        node.reconcile().await.map_err(StartError::Cluster)?;
        node.return_all()
            .await
            .map_err(|error| StartError::Cluster(error.to_string()))
    }
    .await;
    let flushed = tokio::task::spawn_blocking(move || journal.shutdown()).await;
    if let Err(error) = flushed {
        return Err(StartError::Cluster(format!(
            "journal flush failed: {error}"
        )));
    }
    returned
}

/// Where a cluster node keeps the order-id tag Redis gave it, for a start
/// while Redis is away.
const NODE_TAG_FILE: &str = "cluster-node.json";

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq, Debug)]
struct KeptTag {
    node_id: String,
    key_prefix: String,
    tag: u64,
}

/// `serve`'s way in: the tag from Redis (kept in the data dir), or, when
/// Redis cannot be reached, the tag kept by an earlier start of this node
/// under the same id and key prefix. `false`: Redis was not reached, the
/// reconcile waits for it (`ClusterNode::reconciled`).
async fn join_cluster(config: &Config) -> Result<(Registry, u64, bool), StartError> {
    let cluster = &config.cluster;
    let path = config.storage.data_dir.join(NODE_TAG_FILE);
    let registry = cluster_registry(config)?;
    let kept = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<KeptTag>(&bytes).ok())
        .filter(|kept| kept.node_id == cluster.node_id && kept.key_prefix == cluster.key_prefix);
    match registry.node_tag(&cluster.node_id).await {
        Ok(tag) => {
            let fresh = KeptTag {
                node_id: cluster.node_id.clone(),
                key_prefix: cluster.key_prefix.clone(),
                tag,
            };
            if kept.as_ref() != Some(&fresh) {
                keep_tag(&path, &fresh)
                    .map_err(|error| StartError::Cluster(format!("{}: {error}", path.display())))?;
            }
            Ok((registry, tag, true))
        }
        // The link remembers the failure: `/readyz` says so from the start.
        Err(failure @ RedisFailure::Unreachable { .. }) => match kept {
            Some(kept) => {
                tracing::warn!(
                    %failure,
                    tag = kept.tag,
                    "Redis is unreachable: starting on the order-id tag kept in the data dir; \
                     the node sells what its journal holds and reconciles once Redis answers"
                );
                Ok((registry, kept.tag, false))
            }
            None => Err(StartError::Cluster(format!(
                "{failure} (a node's first start needs Redis: it keeps its order-id tag in {} \
                 for later starts)",
                path.display()
            ))),
        },
        Err(failure) => Err(StartError::Cluster(failure.to_string())),
    }
}

/// Writes the kept tag whole (a temp file renamed over it).
fn keep_tag(path: &Path, kept: &KeptTag) -> std::io::Result<()> {
    let temp = path.with_extension("json.tmp");
    let json = serde_json::to_vec(kept).map_err(std::io::Error::other)?;
    std::fs::write(&temp, json)?;
    std::fs::File::open(&temp)?.sync_all()?;
    std::fs::rename(&temp, path)
}

/// The cluster's Redis, not called yet.
fn cluster_registry(config: &Config) -> Result<Registry, StartError> {
    let cluster = &config.cluster;
    let link =
        RedisLink::for_config(cluster).map_err(|error| StartError::Cluster(error.to_string()))?;
    Ok(Registry::new(link, &cluster.key_prefix))
}

/// Reaches the cluster's Redis and learns this node's order-id tag.
async fn connect_cluster(config: &Config) -> Result<(Registry, u64), StartError> {
    let registry = cluster_registry(config)?;
    let tag = registry
        .node_tag(&config.cluster.node_id)
        .await
        .map_err(|error| StartError::Cluster(error.to_string()))?;
    Ok((registry, tag))
}

fn recover(
    config: &Config,
    journal_dir: &Path,
    node_tag: Option<u64>,
) -> Result<(Arc<Engine>, Arc<Journal>), StartError> {
    let limits = engine_limits(config);
    let started = Instant::now();
    let snapshot = journal::checkpoint::load_latest(&snapshot_dir(config))?;
    let after_seq = snapshot.as_ref().map_or(0, |snapshot| snapshot.seq);
    let mut engine = match &snapshot {
        Some(snapshot) => Engine::restore(limits, now_ms(), snapshot)
            .map_err(|error| StartError::Config(format!("snapshot cannot be restored: {error}")))?,
        None => Engine::new(limits, now_ms()),
    };
    if snapshot.is_none() {
        engine.presize(estimated_orders(journal_dir, config.sale.orders_max));
    }
    // A torn commit is at most one batch plus the record that overflowed it.
    let tail_window_bytes = config.storage.commit_batch_bytes_max
        + journal::record::HEADER_BYTES
        + journal::record::PAYLOAD_BYTES_MAX;
    let replayed = replay_into(&engine, journal_dir, after_seq, tail_window_bytes)?;
    if replayed.last_seq < after_seq {
        return Err(StartError::Config(format!(
            "the journal ends at record {} but the snapshot covers up to {after_seq}: \
             journal segments are missing",
            replayed.last_seq
        )));
    }
    engine.finish_replay(now_ms());
    if let Some(tag) = node_tag {
        engine.tag_order_ids(tag, now_ms());
    }
    tracing::info!(
        snapshot_seq = after_seq,
        records = replayed.records_applied,
        last_seq = replayed.last_seq,
        truncated_bytes = replayed.truncated_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "journal replayed"
    );
    let options = JournalOptions {
        dir: journal_dir.to_owned(),
        durability: config.storage.durability,
        segment_bytes_max: config.storage.journal_segment_bytes_max,
        commit_batch_bytes_max: config.storage.commit_batch_bytes_max,
        preallocate: config.storage.journal_preallocate,
        commit_gather_min_records: config.storage.commit_gather_min_records,
        commit_gather: Duration::from_micros(config.storage.commit_gather_us),
        writer_policy: config.storage.journal_writer_policy,
    };
    let journal = Arc::new(Journal::start(options, &replayed)?);
    engine.attach_sink(journal.clone());
    Ok((Arc::new(engine), journal))
}

/// Replays the journal after `after_seq` into `engine`, on two cores: a
/// reader thread reads, checks and decodes records, and schedules the holds
/// of reservations ([`Engine::replay_ahead`]), while
/// this thread applies them, in order, in batches (`sale::replay`). Damage
/// is reported by the reader with its segment and offset; a record the
/// engine refuses, by its seq. After an error the engine is partly
/// replayed and only fit to be dropped.
pub fn replay_into(
    engine: &Engine,
    journal_dir: &Path,
    after_seq: u64,
    tail_window_bytes: usize,
) -> Result<journal::ReplayOutcome, StartError> {
    const BATCH_RECORDS: usize = 1024;
    const BATCHES_IN_FLIGHT: usize = 16;
    // Batches go back to the reader once applied, and it drops their records
    // and reuses them: every allocation the engine does not keep is freed by
    // the thread that made it (the applier moves a reservation's shared
    // strings into the engine and leaves the rest). Freed on the applying
    // thread instead, a million events' strings went through glibc's
    // cross-arena free and each batch's release consolidated the heap; that
    // was a quarter of the replay's time.
    let (sender, receiver) =
        std::sync::mpsc::sync_channel::<Vec<(u64, Replayed)>>(BATCHES_IN_FLIGHT);
    let (recycle, recycled) =
        std::sync::mpsc::sync_channel::<Vec<(u64, Replayed)>>(BATCHES_IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let fresh_batch = || match recycled.try_recv() {
                Ok(mut used) => {
                    used.clear();
                    used
                }
                Err(_) => Vec::with_capacity(BATCH_RECORDS),
            };
            let mut batch = fresh_batch();
            let outcome =
                journal::replay(journal_dir, after_seq, tail_window_bytes, |seq, payload| {
                    let record = Replayed::decode(payload)
                        .map_err(|error| format!("undecodable event: {error}"))?;
                    engine.replay_ahead(&record);
                    batch.push((seq, record));
                    if batch.len() == BATCH_RECORDS {
                        let full = std::mem::replace(&mut batch, fresh_batch());
                        sender.send(full).map_err(|_| "replay stopped".to_owned())?;
                    }
                    Ok(())
                });
            if outcome.is_ok() && !batch.is_empty() {
                let _ = sender.send(batch);
            }
            drop(sender);
            // Drains what the applier hands back so its records are dropped here.
            while recycled.recv().is_ok() {}
            outcome
        });
        let mut refused = None;
        let mut cursor = ReplayCursor::default();
        'batches: for mut batch in receiver.iter() {
            for (seq, record) in &mut batch {
                if let Err(error) = engine.apply_replayed(record, &mut cursor, true) {
                    refused = Some(format!("journal record {seq} cannot be replayed: {error}"));
                    break 'batches;
                }
            }
            // Never blocks: at most BATCHES_IN_FLIGHT + 1 batches exist.
            let _ = recycle.try_send(batch);
        }
        // Dropping the receiver stops a reader still sending; dropping
        // `recycle` ends its drain.
        drop(recycle);
        drop(receiver);
        let outcome = reader
            .join()
            .map_err(|_| StartError::Config("the journal reader panicked".into()))?;
        match refused {
            Some(message) => Err(StartError::Config(message)),
            None => Ok(outcome?),
        }
    })
}

/// About how many orders a journal holds: most records are orders, and a
/// record is rarely under 256 bytes. Capped at the node's order limit.
pub fn estimated_orders(journal_dir: &Path, orders_max: u64) -> usize {
    let bytes: u64 = journal::segment::list_segments(journal_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, path)| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum();
    (bytes / 256).min(orders_max) as usize
}

pub fn snapshot_dir(config: &Config) -> std::path::PathBuf {
    config.storage.data_dir.join("snapshots")
}

/// The payment flow on the configured merchant, or on an embedded
/// simulator when there is none (said loudly: nothing is really paid).
async fn start_payments(
    config: &Config,
    engine: &Arc<Engine>,
    local_addr: SocketAddr,
) -> Result<(Arc<Payments>, Option<SimHandle>), StartError> {
    let (merchant, pay, simulator) = if config.pay.has_merchant() {
        let merchant = merchant::merchant_config(&config.pay).map_err(StartError::Config)?;
        (merchant, config.pay.clone(), None)
    } else {
        let embedded = merchant::start_embedded(&config.pay, local_addr)
            .await
            .map_err(StartError::Config)?;
        tracing::warn!(
            simulator = %embedded.simulator.base_url(),
            "NO WECHAT PAY MERCHANT CONFIGURED: payments go to the embedded WeChat Pay \
             simulator with freshly generated keys; nothing is really paid. A buyer's \
             payment is confirmed with POST {}/sim/v1/pay {{\"prepay_id\":...}}. \
             Set [pay] mchid and the rest of the merchant credentials to go live.",
            embedded.simulator.base_url()
        );
        (embedded.merchant, embedded.pay, Some(embedded.simulator))
    };
    let client = PayClient::new(&merchant)
        .map_err(|error| StartError::Config(format!("WeChat Pay client: {error}")))?;
    let payments = Arc::new(Payments::new(Arc::clone(engine), client, &pay));
    Ok((payments, simulator))
}

/// Fires hold timers: every `tick`, expires the holds that are due. A
/// paying order's hold goes to the payment flow instead, which closes it
/// at WeChat Pay before its stock comes back.
async fn expire_holds(
    engine: Arc<Engine>,
    payments: Arc<Payments>,
    tick: Duration,
    mut shutdown: Shutdown,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.triggered() => return,
        }
        let due = engine.expire_due(now_ms());
        if !due.commits.is_empty() {
            metrics::counter!(names::ORDERS_EXPIRED_TOTAL).increment(due.commits.len() as u64);
            tracing::debug!(count = due.commits.len(), "holds expired");
        }
        payments.holds_over(due.paying_due);
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
