//! A run, fully resolved from the command line: scenario defaults applied,
//! conflicting arguments refused with a message. Everything after this
//! reads the plan, never the raw arguments.

use crate::cli::{
    Cli, DurabilityArg, LoadArgs, OutputArgs, ScenarioCommand, TargetArgs, DEFAULT_REDIS_URL,
    PREBUILD_REQUESTS_PER_SECOND, STOCK_PER_ITEM_MAX,
};
use serde::Serialize;
use std::path::PathBuf;

const DEFAULT_SECONDS: f64 = 10.0;
const PAY_DEFAULT_REQUESTS: u64 = 20_000;
const HOLDS_DEFAULT_REQUESTS: u64 = 1_000_000;
const SOLDOUT_DEFAULT_STOCK: u64 = 1_000;
/// Hold of the `holds` scenario: the longest a sale may have, so no hold
/// expires while memory is measured.
pub const HOLDS_HOLD_SECONDS: u32 = 3600;
/// Hold of the other scenarios: outlasts any round.
pub const DEFAULT_HOLD_SECONDS: u32 = 900;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Flash,
    Spread,
    Soldout,
    Ceiling,
    Pay,
    Holds,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Flash => "flash",
            Scenario::Spread => "spread",
            Scenario::Soldout => "soldout",
            Scenario::Ceiling => "ceiling",
            Scenario::Pay => "pay",
            Scenario::Holds => "holds",
        }
    }
}

/// When a round stops: after a number of requests, or after a time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Length {
    Requests(u64),
    Seconds(f64),
}

/// The gateway under test.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetPlan {
    /// A running gateway at this `host:port`.
    Url { authority: String, sim_url: String },
    /// A gateway this tool starts; `binary` None: look for it.
    Spawn {
        binary: Option<PathBuf>,
        durability: &'static str,
        env: Vec<(String, String)>,
        data_parent: Option<PathBuf>,
    },
}

/// `--cluster N`: cluster nodes started beside the single spawned gateway.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterPlan {
    pub nodes: usize,
    pub redis_url: String,
}

/// `--conventional`: the conventional design beside the gateway, on this Redis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConventionalPlan {
    pub redis_url: String,
}

/// `[cluster]` keys the tool sets on every cluster node itself (the nodes
/// share one Redis: `redis_mode = "single"`; the tool's clean-up reads one).
pub const CLUSTER_KEYS_SET_BY_THE_TOOL: [&str; 4] = [
    "FLASHGATE__CLUSTER__REDIS_URL",
    "FLASHGATE__CLUSTER__REDIS_MODE",
    "FLASHGATE__CLUSTER__NODE_ID",
    "FLASHGATE__CLUSTER__KEY_PREFIX",
];

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub scenario: Scenario,
    /// None for the ceiling-only scenario.
    pub target: Option<TargetPlan>,
    /// `--cluster N`: the rounds also run on N cluster nodes.
    pub cluster: Option<ClusterPlan>,
    /// `--conventional`: the rounds also run against the conventional design.
    pub conventional: Option<ConventionalPlan>,
    #[serde(skip)]
    pub admin_token: String,
    #[serde(skip)]
    pub session_secret: String,
    pub connections: usize,
    pub length: Length,
    /// Open loop at this rate; None: closed loop.
    pub rate: Option<f64>,
    pub rounds: usize,
    pub compare_ceiling: bool,
    /// Requests pre-built for each round (the whole stream, before timing).
    pub requests_per_round: u64,
    pub buyers: u64,
    pub stock: u64,
    pub per_user_limit: u64,
    pub skus: usize,
    pub hold_seconds: u32,
    pub client_threads: usize,
    pub ceiling_threads: usize,
    pub read_max: usize,
    pub pay_fraction: Option<f64>,
    pub pay_connections: usize,
    pub settle_seconds: u64,
    pub json: bool,
}

impl Plan {
    /// Parses `args` (program name first) and resolves them.
    pub fn from_args<I, T>(args: I) -> Result<Plan, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        let cli = Cli::try_parse_from(args).map_err(|error| error.to_string())?;
        Plan::from_cli(cli)
    }

    fn resolve(cli: Cli) -> Result<Plan, String> {
        let (scenario, load, target, output) = match cli.scenario {
            ScenarioCommand::Flash(a) => (Scenario::Flash, a.load, Some(a.target), a.output),
            ScenarioCommand::Spread(a) => (Scenario::Spread, a.load, Some(a.target), a.output),
            ScenarioCommand::Soldout(a) => (Scenario::Soldout, a.load, Some(a.target), a.output),
            ScenarioCommand::Ceiling(a) => (Scenario::Ceiling, a.load, None, a.output),
            ScenarioCommand::Pay(a) => (Scenario::Pay, a.load, Some(a.target), a.output),
            ScenarioCommand::Holds(a) => (Scenario::Holds, a.load, Some(a.target), a.output),
        };
        let mut plan = Plan::base(scenario, &load, &output)?;
        if let Some(target) = target {
            plan.admin_token = target.admin_token.clone();
            plan.session_secret = target.session_secret.clone();
            plan.cluster = resolve_cluster(scenario, &target)?;
            plan.conventional = resolve_conventional(scenario, &target)?;
            plan.target = Some(resolve_target(target)?);
        }
        Ok(plan)
    }

    fn base(scenario: Scenario, load: &LoadArgs, output: &OutputArgs) -> Result<Plan, String> {
        let length = match (load.requests, load.seconds, scenario) {
            (Some(requests), _, _) => Length::Requests(requests),
            (None, Some(seconds), _) => Length::Seconds(seconds),
            (None, None, Scenario::Pay) => Length::Requests(PAY_DEFAULT_REQUESTS),
            (None, None, Scenario::Holds) => Length::Requests(HOLDS_DEFAULT_REQUESTS),
            (None, None, _) => Length::Seconds(DEFAULT_SECONDS),
        };
        let requests_per_round = match (length, load.rate) {
            (Length::Requests(requests), _) => requests,
            (Length::Seconds(seconds), Some(rate)) => (seconds * rate).ceil() as u64,
            (Length::Seconds(seconds), None) => (seconds * PREBUILD_REQUESTS_PER_SECOND) as u64,
        };
        let stock = match (load.stock, scenario) {
            (Some(stock), _) => stock,
            (None, Scenario::Soldout) => SOLDOUT_DEFAULT_STOCK,
            (None, Scenario::Holds) => requests_per_round.min(STOCK_PER_ITEM_MAX),
            (None, _) => STOCK_PER_ITEM_MAX,
        };
        if scenario == Scenario::Holds {
            if !matches!(length, Length::Requests(_)) {
                return Err("holds: give --requests (the holds to open), not --seconds".into());
            }
            if stock < requests_per_round {
                return Err(format!(
                    "holds: --stock {stock} is below --requests {requests_per_round}: every request must open a hold"
                ));
            }
        }
        let buyers = load.buyers.unwrap_or(requests_per_round);
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let compare_ceiling =
            load.compare_ceiling && !matches!(scenario, Scenario::Holds | Scenario::Ceiling);
        Ok(Plan {
            scenario,
            target: None,
            cluster: None,
            conventional: None,
            admin_token: String::new(),
            session_secret: flashgate::config::DEV_SESSION_SECRET.into(),
            connections: load.connections,
            length,
            rate: load.rate,
            rounds: load.rounds,
            compare_ceiling,
            requests_per_round,
            buyers: buyers.min(requests_per_round),
            stock,
            per_user_limit: load.per_user_limit,
            skus: 1,
            hold_seconds: if scenario == Scenario::Holds {
                HOLDS_HOLD_SECONDS
            } else {
                DEFAULT_HOLD_SECONDS
            },
            client_threads: load.client_threads,
            ceiling_threads: load.ceiling_threads.unwrap_or(cpus),
            read_max: load.read_max,
            pay_fraction: None,
            pay_connections: 0,
            settle_seconds: 0,
            json: output.json,
        })
    }

    /// Resolves the command line, then the per-scenario arguments.
    pub fn from_cli(cli: Cli) -> Result<Plan, String> {
        let extras = match &cli.scenario {
            ScenarioCommand::Spread(a) => Extras::Skus(a.skus),
            ScenarioCommand::Pay(a) => Extras::Pay(a.pay_fraction, a.pay_connections),
            ScenarioCommand::Holds(a) => Extras::Settle(a.settle_seconds),
            _ => Extras::None,
        };
        let mut plan = Plan::resolve(cli)?;
        match extras {
            Extras::Skus(skus) => plan.skus = skus,
            Extras::Pay(fraction, connections) => {
                plan.pay_fraction = Some(fraction);
                plan.pay_connections = connections;
            }
            Extras::Settle(seconds) => {
                plan.settle_seconds = seconds;
                if !matches!(plan.target, Some(TargetPlan::Spawn { .. })) {
                    return Err(
                        "holds reads the gateway's memory from /proc: use --spawn, not --url"
                            .into(),
                    );
                }
            }
            Extras::None => {}
        }
        Ok(plan)
    }

    /// True when this run's gateway rounds may see `LIMIT_EXCEEDED`: only
    /// when buyers repeat.
    pub fn limit_expected(&self) -> bool {
        self.buyers < self.requests_per_round
    }

    /// The durability of the gateway, when this tool set it.
    pub fn durability(&self) -> Option<&'static str> {
        match &self.target {
            Some(TargetPlan::Spawn { durability, .. }) => Some(durability),
            _ => None,
        }
    }
}

enum Extras {
    None,
    Skus(usize),
    Pay(f64, usize),
    Settle(u64),
}

fn resolve_cluster(scenario: Scenario, target: &TargetArgs) -> Result<Option<ClusterPlan>, String> {
    let Some(nodes) = target.cluster else {
        if target.redis_url.is_some() && !target.conventional {
            return Err("--redis-url is for the nodes of --cluster N or for --conventional".into());
        }
        return Ok(None);
    };
    let redis_url = redis_url(scenario, target, "--cluster")?;
    if let Some((key, _)) = target
        .gateway_env
        .iter()
        .find(|(key, _)| CLUSTER_KEYS_SET_BY_THE_TOOL.contains(&key.as_str()))
    {
        return Err(format!(
            "--gateway-env {key}: --cluster sets it on each node (use --redis-url for the Redis)"
        ));
    }
    Ok(Some(ClusterPlan { nodes, redis_url }))
}

fn resolve_conventional(
    scenario: Scenario,
    target: &TargetArgs,
) -> Result<Option<ConventionalPlan>, String> {
    if !target.conventional {
        return Ok(None);
    }
    let redis_url = redis_url(scenario, target, "--conventional")?;
    Ok(Some(ConventionalPlan { redis_url }))
}

/// The Redis of `flag` (`--cluster`, `--conventional`): `--redis-url`, or
/// the default; one Redis, by a `redis://` URL. Both run the flash and
/// spread scenarios only.
fn redis_url(scenario: Scenario, target: &TargetArgs, flag: &str) -> Result<String, String> {
    if !matches!(scenario, Scenario::Flash | Scenario::Spread) {
        return Err(format!(
            "{flag} runs the flash and spread scenarios, not {}",
            scenario.name()
        ));
    }
    let redis_url = target
        .redis_url
        .clone()
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
    if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
        return Err(format!(
            "--redis-url {redis_url}: expected redis://HOST:PORT[/DB]"
        ));
    }
    if redis_url.contains(',') {
        return Err(format!(
            "--redis-url {redis_url}: one Redis ({flag} does not run on a Redis Cluster)"
        ));
    }
    Ok(redis_url)
}

fn resolve_target(target: TargetArgs) -> Result<TargetPlan, String> {
    if let Some(url) = target.url {
        if target.durability.is_some() {
            return Err("--durability sets a spawned gateway's journal; with --url the running gateway's config decides".into());
        }
        if !target.gateway_env.is_empty() {
            return Err("--gateway-env applies to a spawned gateway, not to --url".into());
        }
        return Ok(TargetPlan::Url {
            authority: authority_of(&url)?,
            sim_url: target.sim_url,
        });
    }
    for (key, _) in &target.gateway_env {
        if !key.starts_with(flashgate::config::ENV_PREFIX) {
            return Err(format!(
                "--gateway-env {key}: expected a {}SECTION__KEY variable",
                flashgate::config::ENV_PREFIX
            ));
        }
    }
    Ok(TargetPlan::Spawn {
        binary: target.spawn.flatten(),
        durability: target.durability.unwrap_or(DurabilityArg::Fsync).name(),
        env: target.gateway_env,
        data_parent: target.data_parent,
    })
}

/// `http://host:port[/]` → `host:port` (plain HTTP only; the port is required).
pub fn authority_of(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url {url}: expected http://HOST:PORT"))?;
    let authority = rest.trim_end_matches('/');
    match authority.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !authority.contains('/') && port.parse::<u16>().is_ok() =>
        {
            Ok(authority.to_owned())
        }
        _ => Err(format!("--url {url}: expected http://HOST:PORT")),
    }
}
