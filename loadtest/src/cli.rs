//! The command line: one subcommand per scenario, resolved into a [`Plan`]
//! that says everything a run will do. Resolution is where scenario
//! defaults and cross-argument rules live, so tests can check them without
//! a network.

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use flashgate::config::DEV_SESSION_SECRET;
use std::path::PathBuf;

/// Requests pre-built per second of a `--seconds` closed-loop round: above
/// what this machine can serve, so the stream outlasts the round.
pub const PREBUILD_REQUESTS_PER_SECOND: f64 = 100_000.0;
/// Orders read back by the verification; beyond it an even sample.
pub const READ_ORDERS_MAX: usize = 20_000;
/// The fewest orders a sampled read-back may check.
pub const READ_SAMPLE_MIN: usize = 10_000;
/// Items of one sale (the gateway's `sale.items_per_sale_max` default).
pub const SKUS_MAX: usize = 100;
/// Stock of one item (the gateway's `sale.stock_per_item_max` default).
pub const STOCK_PER_ITEM_MAX: u64 = 10_000_000;
/// Most nodes `--cluster` starts.
pub const CLUSTER_NODES_MAX: usize = 16;
/// The Redis of `--cluster` when `--redis-url` is not given.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

#[derive(Parser, Debug)]
#[command(
    name = "flashgate-loadtest",
    version,
    about = "Flash-sale load generator for flashgate; reports throughput as a ratio of a \
             do-nothing HTTP ceiling driven with the same request stream in the same run"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: ScenarioCommand,
}

#[derive(Subcommand, Debug)]
pub enum ScenarioCommand {
    /// One hot SKU: distinct buyers burst orders on it.
    Flash(FlashArgs),
    /// The same burst spread over many SKUs of one sale.
    Spread(SpreadArgs),
    /// Orders that arrive after the sale sold out (the stock is sold first, untimed).
    Soldout(SoldoutArgs),
    /// The request stream against the in-process do-nothing endpoint only.
    Ceiling(CeilingArgs),
    /// A flash round, then a fraction of the winners pay through the simulator.
    Pay(PayArgs),
    /// Memory per open hold: N buyers reserve with a one-hour hold (needs --spawn).
    Holds(HoldsArgs),
}

#[derive(Args, Debug)]
pub struct FlashArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct SpreadArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// SKUs of the sale; request i orders SKU i mod N.
    #[arg(long, default_value_t = SKUS_MAX, value_parser = clap::value_parser!(u64).range(2..=SKUS_MAX as u64).map(|n| n as usize))]
    pub skus: usize,
}

#[derive(Args, Debug)]
pub struct SoldoutArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct PayArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Fraction of the round's winners that pay.
    #[arg(long, default_value_t = 0.1, value_parser = parse_fraction)]
    pub pay_fraction: f64,
    /// Connections paying at once (each payment: /pay, then the simulator's confirm).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024).map(|n| n as usize))]
    pub pay_connections: usize,
}

#[derive(Args, Debug)]
pub struct HoldsArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seconds to wait after the last reservation before the second RSS reading.
    #[arg(long, default_value_t = 5)]
    pub settle_seconds: u64,
}

/// How much load, how it is paced, and what the sale looks like.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Keep-alive HTTP/1.1 connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=16384).map(|n| n as usize))]
    pub connections: usize,
    /// Requests per round (default: rounds of --seconds; pay: 20000, holds: 1000000).
    #[arg(long, conflicts_with = "seconds", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Seconds per round (default 10 when --requests is not given).
    #[arg(long, value_parser = parse_seconds)]
    pub seconds: Option<f64>,
    /// Open loop at this many requests/s (latency from each request's scheduled
    /// send time); without it, closed loop.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Gateway rounds; ceiling rounds go before, between and after them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=20).map(|n| n as usize))]
    pub rounds: usize,
    /// Interleave ceiling rounds (ceiling, gateway, ceiling) and report the ratio.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub compare_ceiling: bool,
    /// Distinct buyers (default: one per request; fewer makes buyers repeat).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub buyers: Option<u64>,
    /// Stock of each SKU (default 10000000; soldout: 1000; holds: --requests).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=STOCK_PER_ITEM_MAX))]
    pub stock: Option<u64>,
    /// Per-buyer limit of each SKU.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub per_user_limit: u64,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64).map(|n| n as usize))]
    pub client_threads: usize,
    /// Tokio worker threads of the ceiling endpoint (default: one per CPU, like the gateway).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64).map(|n| n as usize))]
    pub ceiling_threads: Option<usize>,
    /// Orders read back by the verification; more are sampled evenly (at least 10000).
    #[arg(long, default_value_t = READ_ORDERS_MAX, value_parser = clap::value_parser!(u64).range(READ_SAMPLE_MIN as u64..).map(|n| n as usize))]
    pub read_max: usize,
}

/// Which gateway: a running one (`--url`) or one this tool starts (`--spawn`).
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// A running gateway, e.g. http://127.0.0.1:8080.
    #[arg(long, conflicts_with = "spawn")]
    pub url: Option<String>,
    /// Start `PATH serve` on a free port and a temp data dir (the default; PATH
    /// defaults to the flashgate binary beside this one, then target/release/flashgate).
    #[arg(long, num_args = 0..=1, value_name = "PATH")]
    pub spawn: Option<Option<PathBuf>>,
    /// Durability of a spawned gateway (default fsync).
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityArg>,
    /// Extra environment of a spawned gateway, e.g. FLASHGATE__SERVER__WORKERS=2.
    #[arg(long = "gateway-env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub gateway_env: Vec<(String, String)>,
    /// Where a spawned gateway's data dir goes (default: the system temp dir).
    #[arg(long)]
    pub data_parent: Option<PathBuf>,
    /// Also start N cluster nodes (`flashgate serve` with `[cluster]`, their
    /// own data dirs, one Redis key prefix for the run, deleted at the end):
    /// each round then runs on the single node and on the cluster, the
    /// connections spread round-robin over the nodes (flash and spread only).
    #[arg(long, value_name = "N", conflicts_with = "url", value_parser = clap::value_parser!(u64).range(1..=CLUSTER_NODES_MAX as u64).map(|n| n as usize))]
    pub cluster: Option<usize>,
    /// Also run each round against the conventional design, in this
    /// process beside the ceiling: hyper and one Redis Lua reservation per
    /// order, no token check, no durable write (flash and spread only; its
    /// keys under one prefix of the run, deleted at the end).
    #[arg(long, conflicts_with = "cluster")]
    pub conventional: bool,
    /// The Redis of the --cluster nodes or of --conventional [default: redis://127.0.0.1:6379/].
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// The WeChat Pay simulator of a --url gateway (pay scenario).
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    pub sim_url: String,
    /// Admin token with the host role (creates, starts and reads sales).
    #[arg(long, default_value = "dev-host-token")]
    pub admin_token: String,
    /// The gateway's auth.session_secret (signs buyer tokens).
    #[arg(long, default_value = DEV_SESSION_SECRET)]
    pub session_secret: String,
}

#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Print one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurabilityArg {
    Fsync,
    None,
}

impl DurabilityArg {
    pub fn name(self) -> &'static str {
        match self {
            DurabilityArg::Fsync => "fsync",
            DurabilityArg::None => "none",
        }
    }
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err("must be within (0, 1]".into())
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if value > 0.0 && value <= 3600.0 {
        Ok(value)
    } else {
        Err("must be within (0, 3600]".into())
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (1.0..=10_000_000.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be within 1..=10000000 requests/s".into())
    }
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE".into()),
    }
}
