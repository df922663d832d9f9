//! `flashgate cluster leases`: who holds what, read from the cluster's
//! Redis (the `[cluster]` of the config, as a node reads it): per sale and
//! item, the global remaining and every node's outstanding lease (sold
//! units included). Exit 0; 2 without a `[cluster] redis_url`; 3 when
//! Redis cannot be reached.

use crate::cli::client::Failure;
use crate::cli::{finish, with_runtime, Outcome};
use crate::cluster::{RedisLink, Registry};
use crate::config::Config;
use clap::{Args, Subcommand};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
}

pub fn run_cluster(args: ClusterArgs) -> ExitCode {
    finish(with_runtime(|| async move { cluster(args).await }))
}

async fn cluster(args: ClusterArgs) -> Outcome {
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => return Outcome::Usage(error.to_string()),
    };
    if !config.cluster.enabled() {
        return Outcome::Usage("no cluster configured: set [cluster] redis_url".into());
    }
    let timeout = Duration::from_millis(config.cluster.redis_timeout_ms);
    let link = match RedisLink::new(&config.cluster.redis_url, timeout) {
        Ok(link) => link,
        Err(error) => return Outcome::Usage(error.to_string()),
    };
    let registry = Registry::new(link, &config.cluster.key_prefix);
    let ClusterCommand::Leases { sale } = args.command;
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
