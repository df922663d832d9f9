//! `flashgate cluster …`, on the cluster's Redis (the `[cluster]` of the
//! config, as a node reads it):
//! - `leases`: who holds what: per sale and item, the global remaining
//!   and every node's outstanding lease (sold units included);
//! - `reclaim --node ID --data-dir DIR`: gives back what a stopped node
//!   holds unsold, journaled in its own journal first (`app::reclaim`).
//!
//! Exit 0; 1 refused (the node is running); 2 usage (no `[cluster]
//! redis_url`); 3 Redis cannot be reached.

use crate::cli::client::Failure;
use crate::cli::{finish, with_runtime, Outcome};
use crate::cluster::{RedisLink, Registry};
use crate::config::Config;
use clap::{Args, Subcommand};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
    /// A node's TOML config (its `[cluster]` names the Redis and prefix);
    /// FLASHGATE__CLUSTER__* variables override it.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Print each sale's global remaining and every node's lease, by item.
    Leases {
        /// Only this sale.
        #[arg(long)]
        sale: Option<String>,
    },
    /// Give back to the global stock what a stopped node holds unsold;
    /// refused while the node runs. The node replays the returns when it
    /// starts again.
    Reclaim {
        /// The node's id (its `[cluster] node_id`).
        #[arg(long)]
        node: String,
        /// The node's data dir (its `[storage] data_dir`).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

pub fn run_cluster(args: ClusterArgs) -> ExitCode {
    finish(with_runtime(|| async move { cluster(args).await }))
}

async fn cluster(args: ClusterArgs) -> Outcome {
    // Reclaim acts as the node: its id and data dir over the config's.
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    if let ClusterCommand::Reclaim { node, data_dir } = &args.command {
        env.push(("FLASHGATE__CLUSTER__NODE_ID".into(), node.clone()));
        let data_dir = data_dir.display().to_string();
        env.push(("FLASHGATE__STORAGE__DATA_DIR".into(), data_dir));
    }
    let config = match Config::load_from(args.config.as_deref(), env) {
        Ok(config) => config,
        Err(error) => return Outcome::Usage(error.to_string()),
    };
    if !config.cluster.enabled() {
        return Outcome::Usage("no cluster configured: set [cluster] redis_url".into());
    }
    let link = match RedisLink::for_config(&config.cluster) {
        Ok(link) => link,
        Err(error) => return Outcome::Usage(error.to_string()),
    };
    let registry = Registry::new(link, &config.cluster.key_prefix);
    let sale = match args.command {
        ClusterCommand::Leases { sale } => sale,
        ClusterCommand::Reclaim { .. } => return reclaim(&config).await,
    };
    match leases(&registry, sale).await {
        Ok(text) => {
            print!("{text}");
            Outcome::Done
        }
        Err(failure) => Outcome::Failed(failure),
    }
}

/// The report: one block per sale, one line per item and per node.
async fn leases(registry: &Registry, only: Option<String>) -> Result<String, Failure> {
    let unreachable = |error: crate::cluster::RedisFailure| Failure::Unreachable(error.to_string());
    let mut sale_ids = match only {
        Some(sale_id) => vec![sale_id],
        None => registry.sale_ids().await.map_err(unreachable)?,
    };
    sale_ids.sort();
    let states = registry.sale_states(&sale_ids).await.map_err(unreachable)?;
    let mut text = String::new();
    for (sale_id, state) in sale_ids.iter().zip(states) {
        let Some(state) = state else {
            let _ = writeln!(text, "sale {sale_id}: not in the cluster");
            continue;
        };
        let _ = writeln!(text, "sale {sale_id} ({})", state.as_str());
        let mut global = registry.global_stock(sale_id).await.map_err(unreachable)?;
        global.sort();
        for (sku_id, remaining) in global {
            let leases = registry
                .leases(sale_id, &sku_id)
                .await
                .map_err(unreachable)?;
            let leased: i64 = leases.iter().map(|(_, units)| units).sum();
            let _ = writeln!(
                text,
                "  {sku_id}: global remaining {remaining}, leased {leased}"
            );
            for (node_id, units) in leases {
                let _ = writeln!(text, "    {node_id}: {units}");
            }
        }
    }
    Ok(text)
}

async fn reclaim(config: &Config) -> Outcome {
    match crate::app::reclaim(config).await {
        Ok(returned) => {
            for (sale_id, sku_id, units) in &returned {
                println!("sale {sale_id} {sku_id}: {units} units given back");
            }
            let total: i64 = returned.iter().map(|(_, _, units)| units).sum();
            println!("node {}: {total} units given back", config.cluster.node_id);
            Outcome::Done
        }
        Err(error) => {
            let message = error.to_string();
            if message.contains("is locked") {
                Outcome::Failed(Failure::Refused {
                    status: http::StatusCode::CONFLICT,
                    code: "NODE_RUNNING".into(),
                    message,
                })
            } else if message.contains("unreachable") {
                Outcome::Failed(Failure::Unreachable(message))
            } else {
                Outcome::Usage(message)
            }
        }
    }
}
