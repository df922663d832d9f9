//! What a run reports: one [`Report`] value, printed as a table for people
//! or as one JSON object (`--json`) to keep and compare.

use crate::admin::{ClusterView, ReadSummary, SaleStats};
use crate::client::RoundResult;
use crate::commits::JournalRound;
use crate::cpu::CpuUse;
use crate::outcome::Outcomes;
use crate::pay::PayReport;
use crate::plan::{Plan, Scenario};
use crate::redis_calls::{RedisCalls, STOCK_CALLS_PER_ORDER_MAX};
use crate::verify::Verification;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

pub fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
    if histogram.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50: histogram.value_at_quantile(0.50),
        p90: histogram.value_at_quantile(0.90),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        max: histogram.max(),
        mean: histogram.mean(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundKind {
    Ceiling,
    /// The single gateway.
    Flashgate,
    /// The `--cluster` nodes.
    Cluster,
    /// The `--conventional` design.
    Conventional,
}

impl RoundKind {
    pub fn name(self) -> &'static str {
        match self {
            RoundKind::Ceiling => "ceiling",
            RoundKind::Flashgate => "flashgate",
            RoundKind::Cluster => "cluster",
            RoundKind::Conventional => "conventional",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    pub kind: RoundKind,
    /// 1-based position in the run.
    pub round: usize,
    pub sent: u64,
    pub not_sent: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub latency_us: Percentiles,
    pub outcomes: Outcomes,
    /// Gateway rounds: the sale's stats (a cluster round's: the nodes'
    /// summed, `stock` = what they hold) and the read-back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<SaleStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<ReadSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay: Option<PayReport>,
    /// Closed loop with --seconds: the pre-built stream ran out first.
    pub stream_exhausted: bool,
    /// CPU of this process over the round (load generator, and the ceiling
    /// in ceiling rounds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_cpu: Option<CpuUse>,
    /// CPU of a spawned gateway over the round (a cluster round: its
    /// nodes' summed, threads of one name added up over the nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_cpu: Option<CpuUse>,
    /// Cluster rounds: each node, Redis's view and the Redis calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterRound>,
    /// Gateway rounds: how long after the round the gateway's store caught
    /// up with its journal, and what that cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_catch_up: Option<StoreCatchUp>,
    /// Single-gateway rounds: the journal's commits over the round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalRound>,
    /// Conventional rounds: what Redis holds and spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conventional: Option<ConventionalRound>,
}

/// What a conventional round left in Redis and what Redis spent on it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConventionalRound {
    /// Units taken from the stock.
    pub units_sold: u64,
    /// Units the buyers' counts add up to.
    pub buyer_units: u64,
    /// Redis's CPU over the round, user and system (`INFO cpu`).
    pub redis_cpu_seconds: f64,
    pub redis_us_per_request: f64,
}

/// `--conventional`: the conventional design beside flashgate and the
/// ceiling of the same run (means over the rounds of each kind).
#[derive(Clone, Debug, Serialize)]
pub struct ConventionalSummary {
    pub redis_url: String,
    /// The run's key prefix, every key under it deleted at the end.
    pub key_prefix: String,
    /// Keys deleted (None when the clean-up failed: see the verification).
    pub keys_deleted: Option<u64>,
    pub requests_per_second: Option<f64>,
    pub flashgate_requests_per_second: Option<f64>,
    pub ceiling_requests_per_second: Option<f64>,
    /// Conventional req/s ÷ ceiling req/s.
    pub conventional_to_ceiling: Option<f64>,
    /// flashgate req/s ÷ conventional req/s.
    pub flashgate_to_conventional: Option<f64>,
}

/// The wait after a gateway round until the store has applied every
/// journal record (`flashgate_store_lag_records` 0). The next round starts
/// only then, so work the store writer put off during the round is not
/// done during a ceiling round; its CPU is counted here.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StoreCatchUp {
    pub seconds: f64,
    /// Records behind when the round ended.
    pub lag_records: u64,
    /// The spawned gateway's CPU seconds over the wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_cpu_seconds: Option<f64>,
    /// The round's gateway CPU plus the wait's, per request of the round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub us_per_request_all_in: Option<f64>,
}

/// What a cluster round saw beyond the common counts.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterRound {
    pub nodes: Vec<NodeRound>,
    /// Redis's view after the round (from the first node's stats).
    pub view: ClusterView,
    pub redis_calls: RedisCalls,
}

/// One node of a cluster round.
#[derive(Clone, Debug, Serialize)]
pub struct NodeRound {
    pub node_id: String,
    pub addr: String,
    /// Outcomes of the requests sent to this node.
    pub outcomes: Outcomes,
    /// The node's own stats (`stock` = the units it holds).
    pub stats: SaleStats,
}

/// `--cluster`: the cluster beside the single node and the ceiling of the
/// same run (means over the rounds of each kind).
#[derive(Clone, Debug, Serialize)]
pub struct ClusterSummary {
    pub nodes: usize,
    pub node_addrs: Vec<String>,
    pub redis_url: String,
    /// The run's key prefix, every key under it deleted at the end.
    pub key_prefix: String,
    /// Keys deleted (None when the clean-up failed: see the verification).
    pub keys_deleted: Option<u64>,
    pub requests_per_second: Option<f64>,
    /// 201s per second.
    pub reserved_per_second: Option<f64>,
    pub single_requests_per_second: Option<f64>,
    pub single_reserved_per_second: Option<f64>,
    pub ceiling_requests_per_second: Option<f64>,
    /// Cluster req/s ÷ single node req/s.
    pub cluster_to_single: Option<f64>,
    /// Cluster req/s ÷ ceiling req/s.
    pub cluster_to_ceiling: Option<f64>,
    /// The cluster rounds' Redis calls, added up.
    pub redis_calls: RedisCalls,
}

impl RoundReport {
    pub fn new(
        kind: RoundKind,
        round: usize,
        result: &RoundResult,
        exhausted: bool,
    ) -> RoundReport {
        RoundReport {
            kind,
            round,
            sent: result.sent,
            not_sent: result.not_sent,
            seconds: result.elapsed.as_secs_f64(),
            requests_per_second: result.requests_per_second(),
            latency_us: percentiles(&result.latency_us),
            outcomes: result.outcomes.clone(),
            stats: None,
            reads: None,
            pay: None,
            stream_exhausted: exhausted,
            tool_cpu: result.tool_cpu.clone(),
            gateway_cpu: result.gateway_cpu.clone(),
            cluster: None,
            store_catch_up: None,
            journal: None,
            conventional: None,
        }
    }
}

fn cores(cpu: Option<&CpuUse>) -> String {
    cpu.map_or("-".into(), |cpu| format!("{:.2}", cpu.cores))
}

/// The targets for a configuration, when it has one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Target {
    pub ratio_min: f64,
    pub p99_ms_max: Option<f64>,
}

/// One line of Redis calls: per op (count, and per reserved order), then
/// the stock calls against the target and all calls per request.
fn render_redis_calls(title: &str, calls: &RedisCalls, out: &mut String) {
    let ops: Vec<String> = calls
        .by_op
        .iter()
        .filter(|(_, &count)| count > 0)
        .map(|(op, count)| match calls.per_reserved_order_by_op.get(op) {
            Some(per) => format!("{op} {count} ({per:.4}/order)"),
            None => format!("{op} {count}"),
        })
        .collect();
    let idle: Vec<&str> = calls
        .by_op
        .iter()
        .filter(|(_, &count)| count == 0)
        .map(|(op, _)| op.as_str())
        .collect();
    let _ = writeln!(
        out,
        "{title}: {}; total {}{}",
        if ops.is_empty() {
            "none".into()
        } else {
            ops.join(", ")
        },
        calls.total,
        if idle.is_empty() {
            String::new()
        } else {
            format!("; none of {}", idle.join(", "))
        }
    );
    let _ = writeln!(
        out,
        "{}stock calls (lease + return) {} for {} reserved orders = {} per order (target <= {STOCK_CALLS_PER_ORDER_MAX}: {}); \
         all calls {} per request ({} requests)",
        " ".repeat(title.len() - title.trim_start().len() + 2),
        calls.stock_calls,
        calls.reserved_orders,
        calls
            .stock_calls_per_reserved_order
            .map_or("-".into(), |per| format!("{per:.4}")),
        match calls.stock_target_met {
            Some(true) => "MET",
            Some(false) => "MISSED",
            None => "-",
        },
        calls
            .calls_per_request
            .map_or("-".into(), |per| format!("{per:.4}")),
        calls.requests
    );
}

pub fn target_for(
    scenario: Scenario,
    durability: Option<&str>,
    connections: usize,
) -> Option<Target> {
    let target = |ratio_min, p99_ms_max| {
        Some(Target {
            ratio_min,
            p99_ms_max,
        })
    };
    match (scenario, durability, connections) {
        (Scenario::Flash, Some("none"), _) => target(0.85, None),
        (Scenario::Flash, Some("fsync"), 64) => target(0.70, Some(5.0)),
        (Scenario::Flash, Some("fsync"), 512) => target(0.80, None),
        (Scenario::Soldout, _, _) => target(0.90, None),
        _ => None,
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// Mean req/s of the gateway rounds ÷ mean req/s of the ceiling rounds.
    pub ratio: f64,
    pub flashgate_requests_per_second: f64,
    pub ceiling_requests_per_second: f64,
    pub target: Option<Target>,
    /// None when there is no target.
    pub met: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rss {
    pub before_kib: u64,
    pub after_kib: u64,
    /// Holds: after waiting --settle-seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settled_kib: Option<u64>,
    /// Holds: (settled − before) ÷ open holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_hold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holds: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub scenario: Scenario,
    pub config: Plan,
    pub machine: Machine,
    pub gateway: Option<GatewayInfo>,
    pub stream_build_seconds: f64,
    pub rounds: Vec<RoundReport>,
    pub ratio: Option<Ratio>,
    /// `--cluster`: the cluster beside the single node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterSummary>,
    /// `--conventional`: the conventional design beside flashgate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conventional: Option<ConventionalSummary>,
    pub rss: Option<Rss>,
    pub verification: Verification,
}

#[derive(Clone, Debug, Serialize)]
pub struct GatewayInfo {
    pub addr: String,
    pub spawned: bool,
    pub binary: Option<String>,
    pub durability: Option<&'static str>,
    pub data_dir: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub load_average_at_start: Option<String>,
}

impl Machine {
    pub fn now() -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load_average_at_start: std::fs::read_to_string("/proc/loadavg").ok().map(|text| {
                text.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        }
    }
}

impl Report {
    /// The table for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let plan = &self.config;
        let pace = match plan.rate {
            Some(rate) => format!("open loop at {rate:.0} req/s"),
            None => "closed loop".into(),
        };
        let _ = writeln!(
            out,
            "flashgate-loadtest {}: {} connections, {pace}, {} requests pre-built per round in {:.2} s",
            self.scenario.name(),
            plan.connections,
            plan.requests_per_round,
            self.stream_build_seconds
        );
        if let Some(gateway) = &self.gateway {
            let _ = writeln!(
                out,
                "  gateway {} ({}{})",
                gateway.addr,
                if gateway.spawned {
                    "spawned"
                } else {
                    "running"
                },
                gateway
                    .durability
                    .map(|d| format!(", durability {d}"))
                    .unwrap_or_default()
            );
        }
        if let Some(cluster) = &self.cluster {
            let _ = writeln!(
                out,
                "  cluster of {} nodes {} (Redis {}, key prefix {})",
                cluster.nodes,
                cluster.node_addrs.join(", "),
                cluster.redis_url,
                cluster.key_prefix
            );
        }
        let _ = writeln!(
            out,
            "  {} CPUs, load average at start {}; stock {} x {} SKU(s), per-user limit {}, {} distinct buyers",
            self.machine.cpus,
            self.machine.load_average_at_start.as_deref().unwrap_or("?"),
            plan.stock,
            plan.skus,
            plan.per_user_limit,
            plan.buyers
        );
        let _ = writeln!(
            out,
            "\n{:>5} {:<9} {:>9} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}  {:>9} {:>9} {:>6} {:>6} {:>6}  {:>5} {:>5} {:>6}",
            "round", "target", "sent", "secs", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
            "reserved", "sold_out", "limit", "shed", "errors", "tool", "gw", "gw us"
        );
        for round in &self.rounds {
            let ms = |us: u64| us as f64 / 1000.0;
            let l = &round.latency_us;
            let o = &round.outcomes;
            let _ = writeln!(
                out,
                "{:>5} {:<9} {:>9} {:>7.2} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {:>9} {:>9} {:>6} {:>6} {:>6}  {:>5} {:>5} {:>6}{}",
                round.round,
                round.kind.name(),
                round.sent,
                round.seconds,
                round.requests_per_second,
                ms(l.p50), ms(l.p90), ms(l.p99), ms(l.p999), ms(l.max),
                o.reserved, o.sold_out, o.limit, o.shed, o.errors,
                cores(round.tool_cpu.as_ref()),
                cores(round.gateway_cpu.as_ref()),
                round.gateway_cpu.as_ref().map_or("-".into(), |cpu| format!("{:.0}", cpu.us_per_request)),
                if round.stream_exhausted { "  (stream ran out before --seconds)" } else { "" }
            );
        }
        let _ = writeln!(
            out,
            "  tool, gw: CPU cores used by this process (load generator, + the ceiling in its rounds) and by the \
             spawned gateway; gw us: the gateway's CPU µs per request"
        );
        let mut explained = false;
        for round in &self.rounds {
            for (whose, cpu) in [("tool", &round.tool_cpu), ("gateway", &round.gateway_cpu)] {
                let Some(cpu) = cpu else { continue };
                let threads: Vec<String> = cpu
                    .threads
                    .iter()
                    .map(|(name, cores)| match cpu.per_request.get(name) {
                        Some(each) => format!(
                            "{name} {cores:.2} ({:.1}+{:.1} µs, {:.0} sleeps, {:.0} preempted)",
                            each.user_us,
                            each.system_us,
                            each.sleeps_per_1000,
                            each.preempted_per_1000
                        ),
                        None => format!("{name} {cores:.2}"),
                    })
                    .collect();
                if threads.is_empty() {
                    continue;
                }
                if !explained {
                    let _ = writeln!(
                        out,
                        "  threads: cores, then per request user+kernel CPU µs, and per 1,000 requests \
                         the times a thread slept and was preempted"
                    );
                    explained = true;
                }
                let _ = writeln!(
                    out,
                    "  round {} {whose} threads: {}",
                    round.round,
                    threads.join(", ")
                );
            }
            if let Some(journal) = &round.journal {
                let _ = writeln!(
                    out,
                    "  round {} journal: {} commits ({:.0}/s) of {:.1} records, {:.0} µs each on average, in a commit {:.0}% of the round",
                    round.round,
                    journal.commits,
                    journal.commits_per_second,
                    journal.records_per_commit,
                    journal.mean_commit_us,
                    journal.busy * 100.0
                );
            }
            if let Some(catch_up) = &round.store_catch_up {
                let cpu = match (catch_up.gateway_cpu_seconds, catch_up.us_per_request_all_in) {
                    (Some(seconds), Some(all_in)) => format!(
                        ", using {seconds:.2} CPU-s of the gateway: {all_in:.0} gw µs per request all in"
                    ),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "  round {} store: {} records behind at the end, caught up {:.2} s later{cpu}",
                    round.round, catch_up.lag_records, catch_up.seconds
                );
            }
        }
        self.render_details(&mut out);
        out
    }

    fn render_cluster(&self, cluster: &ClusterSummary, out: &mut String) {
        let rate = |value: Option<f64>| value.map_or("-".into(), |v| format!("{v:.0}"));
        let ratio = |value: Option<f64>| value.map_or("-".into(), |v| format!("{v:.3}"));
        for round in &self.rounds {
            let Some(detail) = &round.cluster else {
                continue;
            };
            let _ = writeln!(out, "\ncluster round {}:", round.round);
            for node in &detail.nodes {
                let o = &node.outcomes;
                let _ = writeln!(
                    out,
                    "  {} {}: reserved {}, sold_out {}, limit {}, shed {}, errors {}; holds {}, sold {}",
                    node.node_id, node.addr, o.reserved, o.sold_out, o.limit, o.shed, o.errors,
                    node.stats.stock, node.stats.reserved + node.stats.paid
                );
            }
            let leases: Vec<String> = detail
                .view
                .leases
                .iter()
                .map(|(node, units)| format!("{node} {units}"))
                .collect();
            let _ = writeln!(
                out,
                "  Redis after the round: global remaining {}, leased {}",
                detail.view.global_remaining,
                leases.join(", ")
            );
            render_redis_calls("  Redis calls", &detail.redis_calls, out);
        }
        let _ = writeln!(
            out,
            "\nceiling / single node / {}-node cluster = {} / {} / {} req/s (201s/s: single {}, cluster {}); \
             cluster / single = {}, cluster / ceiling = {}",
            cluster.nodes,
            rate(cluster.ceiling_requests_per_second),
            rate(cluster.single_requests_per_second),
            rate(cluster.requests_per_second),
            rate(cluster.single_reserved_per_second),
            rate(cluster.reserved_per_second),
            ratio(cluster.cluster_to_single),
            ratio(cluster.cluster_to_ceiling)
        );
        render_redis_calls("Redis calls, all cluster rounds", &cluster.redis_calls, out);
        match cluster.keys_deleted {
            Some(count) => {
                let _ = writeln!(
                    out,
                    "cluster stopped; {count} Redis keys under {} deleted",
                    cluster.key_prefix
                );
            }
            None => {
                let _ = writeln!(out, "cluster clean-up FAILED (see the verification)");
            }
        }
    }

    fn render_conventional(&self, conventional: &ConventionalSummary, out: &mut String) {
        let rate = |value: Option<f64>| value.map_or("-".into(), |v| format!("{v:.0}"));
        let ratio = |value: Option<f64>| value.map_or("-".into(), |v| format!("{v:.3}"));
        for round in &self.rounds {
            let Some(detail) = &round.conventional else {
                continue;
            };
            let _ = writeln!(
                out,
                "\nconventional round {}: Redis sold {} units, buyers hold {}; Redis CPU {:.2} s, {:.1} µs per request",
                round.round,
                detail.units_sold,
                detail.buyer_units,
                detail.redis_cpu_seconds,
                detail.redis_us_per_request
            );
        }
        let _ = writeln!(
            out,
            "\nceiling / flashgate / conventional = {} / {} / {} req/s; conventional / ceiling = {}, flashgate / conventional = {}",
            rate(conventional.ceiling_requests_per_second),
            rate(conventional.flashgate_requests_per_second),
            rate(conventional.requests_per_second),
            ratio(conventional.conventional_to_ceiling),
            ratio(conventional.flashgate_to_conventional)
        );
        match conventional.keys_deleted {
            Some(count) => {
                let _ = writeln!(
                    out,
                    "conventional endpoint stopped; {count} Redis keys under {} deleted",
                    conventional.key_prefix
                );
            }
            None => {
                let _ = writeln!(out, "conventional clean-up FAILED (see the verification)");
            }
        }
    }

    fn render_details(&self, out: &mut String) {
        for round in self.rounds.iter().filter(|r| r.not_sent > 0) {
            let _ = writeln!(
                out,
                "round {}: {} requests not sent (the schedule fell more than 30 s behind)",
                round.round, round.not_sent
            );
        }
        for round in &self.rounds {
            if let Some(pay) = &round.pay {
                let l = &pay.latency_us;
                let _ = writeln!(
                    out,
                    "\npay (round {}): {} winners paid of {} picked; /pay {:.0} req/s over {:.2} s, p50 {:.2} ms p99 {:.2} ms max {:.2} ms; \
                     {} read as paid {:.2} s after the last confirm; {} errors",
                    round.round, pay.confirmed, pay.orders, pay.requests_per_second, pay.seconds,
                    l.p50 as f64 / 1000.0, l.p99 as f64 / 1000.0, l.max as f64 / 1000.0,
                    pay.paid_seen, pay.seconds_until_paid, pay.errors.errors
                );
            }
        }
        if let Some(ratio) = &self.ratio {
            let verdict = match (ratio.target, ratio.met) {
                (Some(target), Some(met)) => format!(
                    "   target >= {:.2}{}: {}",
                    target.ratio_min,
                    target
                        .p99_ms_max
                        .map(|p| format!(" with p99 <= {p} ms"))
                        .unwrap_or_default(),
                    if met { "MET" } else { "MISSED" }
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "\nflashgate / ceiling = {:.0} / {:.0} req/s = {:.3}{verdict}",
                ratio.flashgate_requests_per_second, ratio.ceiling_requests_per_second, ratio.ratio
            );
        }
        if let Some(cluster) = &self.cluster {
            self.render_cluster(cluster, out);
        }
        if let Some(conventional) = &self.conventional {
            self.render_conventional(conventional, out);
        }
        if let Some(rss) = &self.rss {
            let _ = write!(
                out,
                "\ngateway RSS: {} KiB before, {} KiB after",
                rss.before_kib, rss.after_kib
            );
            if let (Some(settled), Some(per_hold), Some(holds)) =
                (rss.settled_kib, rss.bytes_per_hold, rss.holds)
            {
                let _ = write!(
                    out,
                    ", {settled} KiB settled; {holds} open holds: {per_hold:.0} bytes per hold (target <= 512: {})",
                    if per_hold <= 512.0 { "MET" } else { "MISSED" }
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(
            out,
            "\nverification: {}",
            if self.verification.passed {
                "PASSED"
            } else {
                "FAILED"
            }
        );
        for check in &self.verification.checks {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                if check.passed { "ok" } else { "FAIL" },
                check.name,
                check.detail
            );
        }
    }
}
