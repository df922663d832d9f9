//! Assembly: builds the engine and the HTTP state from the config, binds the
//! listener, and runs the server and the hold-expiry task until shutdown.
//! `main` and the black-box tests start the gateway the same way.

use crate::clock::now_ms;
use crate::config::Config;
use crate::http::{server, AppState};
use crate::metrics as names;
use crate::sale::{Engine, EngineLimits};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
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
}

/// A running gateway.
pub struct Gateway {
    pub local_addr: SocketAddr,
    pub state: Arc<AppState>,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
}

impl Gateway {
    pub async fn start(config: Config) -> Result<Gateway, StartError> {
        config
            .validate()
            .map_err(|error| StartError::Config(error.to_string()))?;
        std::fs::create_dir_all(&config.storage.data_dir).map_err(|source| {
            StartError::DataDir {
                path: config.storage.data_dir.clone(),
                source,
            }
        })?;
        let addr = config.listen_addr();
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        crate::metrics::handle();
        let limits = EngineLimits {
            shard_count: config.inventory.shards,
            sales_max: config.sale.sales_max,
            items_per_sale_max: config.sale.items_per_sale_max,
            stock_per_item_max: config.sale.stock_per_item_max,
            orders_max: config.sale.orders_max,
        };
        let engine = Arc::new(Engine::new(limits, now_ms()));
        let hold_tick = Duration::from_millis(config.sale.hold_tick_ms);
        let (trigger, shutdown) = shutdown::channel();
        let state = Arc::new(
            AppState::new(Arc::clone(&engine), config, shutdown.clone())
                .map_err(StartError::Config)?,
        );
        let tasks = vec![
            tokio::spawn(server::serve(listener, Arc::clone(&state))),
            tokio::spawn(expire_holds(engine, hold_tick, shutdown)),
        ];
        tracing::info!(%local_addr, "flashgate listening");
        Ok(Gateway {
            local_addr,
            state,
            trigger,
            tasks,
        })
    }

    /// Stops accepting, finishes in-flight requests, stops the timers.
    pub async fn shutdown(self) {
        self.trigger.trigger();
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a gateway task failed");
            }
        }
    }
}

/// Fires hold timers: every `tick`, expires the holds that are due.
async fn expire_holds(engine: Arc<Engine>, tick: Duration, mut shutdown: Shutdown) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.triggered() => return,
        }
        let expired = engine.expire_due(now_ms());
        if !expired.is_empty() {
            metrics::counter!(names::ORDERS_EXPIRED_TOTAL).increment(expired.len() as u64);
            tracing::debug!(count = expired.len(), "holds expired");
        }
    }
}
