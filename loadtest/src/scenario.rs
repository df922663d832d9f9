//! A run from plan to report: build the stream, open the gateway, run the
//! rounds in order (ceiling, gateway, ceiling, ...), verify each gateway
//! round's sale, close the gateway.
//!
//! A gateway round: a fresh sale (created and started by the host), for
//! `soldout` its stock sold first by other buyers (untimed), the timed
//! stream, for `pay` the winners paying, then the sale's stats and the
//! orders read back. A ceiling round: the same stream's bytes against the
//! in-process do-nothing endpoint.
//!
//! `--cluster N`: N cluster nodes run beside the single node, and each
//! gateway round on the single node is followed by the same round on the
//! cluster (ceiling, single, cluster, ceiling, ...): the sale created and
//! started through the first node, every node waited for until it sees it
//! live, the connections spread round-robin over the nodes, the nodes'
//! Redis call counters scraped before and after, then each node's stats,
//! Redis's view and every order read back from the node that made it.

use crate::admin::{
    metric_sample, read_orders, read_orders_on_nodes, Admin, ClusterView, ReadSummary, SaleSpec,
    SaleStats,
};
use crate::ceiling::Endpoint;
use crate::client::{run_round, Created, RoundResult, RoundSpec};
use crate::commits::{parse_commit_totals, JournalRound};
use crate::conventional::Conventional;
use crate::cpu;
use crate::pay::pay_winners;
use crate::plan::{Length, Plan, Scenario};
use crate::redis_calls::{parse_redis_calls, CallsByOp, RedisCalls};
use crate::report::{
    target_for, ClusterRound, ClusterSummary, ConventionalRound, ConventionalSummary, GatewayInfo,
    Machine, NodeRound, Ratio, Report, RoundKind, RoundReport, Rss, StoreCatchUp,
};
use crate::stream::{run_id, RequestStream, StreamSpec};
use crate::target::{Cluster, Target};
use crate::verify::{
    verify_ceiling, verify_cluster_round, verify_conventional, verify_round, Check,
    ClusterEvidence, Evidence, Expectations, Verification,
};
use flashgate::metrics::STORE_LAG_RECORDS;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long every cluster node may take to see a new sale live.
const LIVE_WAIT: Duration = Duration::from_secs(10);
/// How long Redis's view may take to settle after a cluster round (a
/// refill in flight is read half-way otherwise).
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// The streams of a run, built before anything is timed.
struct Streams {
    timed: Arc<RequestStream>,
    /// `soldout`: the requests that sell the stock before the timed round.
    fill: Option<Arc<RequestStream>>,
}

pub async fn run(plan: Plan) -> Result<Report, String> {
    let machine = Machine::now();
    let streams = build_streams(&plan);
    // The cluster first: its Redis is checked before any gateway starts.
    let cluster = match (&plan.target, &plan.cluster) {
        (Some(target_plan), Some(cluster_plan)) => {
            Some(Cluster::open(target_plan, cluster_plan).await?)
        }
        _ => None,
    };
    // The conventional design's Redis, checked before any gateway starts too.
    let mut conventional = match &plan.conventional {
        Some(conventional_plan) => Some(
            Conventional::start(
                plan.ceiling_threads,
                &conventional_plan.redis_url,
                plan.per_user_limit,
            )
            .await?,
        ),
        None => None,
    };
    let target = match (&plan.target, &plan.cluster) {
        (Some(target_plan), None) => Some(Target::open(target_plan).await?),
        (Some(target_plan), Some(_)) => {
            Some(Target::open_single_beside_cluster(target_plan).await?)
        }
        (None, _) => None,
    };
    let gateway = target.as_ref().map(|target| GatewayInfo {
        addr: target.addr.clone(),
        spawned: target.spawned.is_some(),
        binary: target
            .spawned
            .as_ref()
            .map(|s| s.binary.display().to_string()),
        durability: plan.durability(),
        data_dir: target
            .spawned
            .as_ref()
            .map(|s| s.data_dir.display().to_string()),
    });
    let rss_before = target.as_ref().and_then(Target::rss_kib);
    let outcome = run_rounds(
        &plan,
        &streams,
        target.as_ref(),
        cluster.as_ref(),
        conventional.as_mut(),
    )
    .await;
    let rss_after = target.as_ref().and_then(Target::rss_kib);
    let closed = target.map_or(Ok(()), Target::close);
    let cluster_info = cluster.as_ref().map(|cluster| {
        (
            cluster.addrs(),
            cluster.redis_url.clone(),
            cluster.key_prefix.clone(),
        )
    });
    let cluster_closed = cluster.map(Cluster::close);
    let conventional_info = conventional.as_ref().map(|conventional| {
        (
            conventional.redis_url.clone(),
            conventional.key_prefix.clone(),
        )
    });
    let conventional_closed = conventional.map(Conventional::close);
    let (rounds, mut verification, holds_rss) = outcome?;
    if let Err(problem) = closed {
        verification.push([Check {
            name: "gateway stopped cleanly".into(),
            passed: false,
            detail: problem,
        }]);
    }
    let keys_deleted = deleted_keys(
        cluster_closed,
        "cluster nodes stopped and their Redis keys deleted",
        &mut verification,
    );
    let conventional_deleted = deleted_keys(
        conventional_closed,
        "conventional endpoint stopped and its Redis keys deleted",
        &mut verification,
    );
    let conventional = conventional_info.map(|(redis_url, key_prefix)| {
        conventional_summary(&rounds, redis_url, key_prefix, conventional_deleted)
    });
    let cluster = cluster_info.map(|(node_addrs, redis_url, key_prefix)| {
        cluster_summary(&rounds, node_addrs, redis_url, key_prefix, keys_deleted)
    });
    let rss = match (holds_rss, rss_before, rss_after) {
        (Some(rss), _, _) => Some(rss),
        (None, Some(before_kib), Some(after_kib)) => Some(Rss {
            before_kib,
            after_kib,
            settled_kib: None,
            bytes_per_hold: None,
            holds: None,
        }),
        _ => None,
    };
    Ok(Report {
        tool: "flashgate-loadtest",
        scenario: plan.scenario,
        ratio: ratio(&plan, &rounds),
        cluster,
        conventional,
        config: plan,
        machine,
        gateway,
        stream_build_seconds: streams.timed.build_seconds
            + streams.fill.as_ref().map_or(0.0, |fill| fill.build_seconds),
        rounds,
        rss,
        verification,
    })
}

/// The keys a clean-up deleted; a failed clean-up is a failed check.
fn deleted_keys(
    closed: Option<Result<u64, String>>,
    check_name: &str,
    verification: &mut Verification,
) -> Option<u64> {
    match closed? {
        Ok(deleted) => Some(deleted),
        Err(problem) => {
            verification.push([Check {
                name: check_name.into(),
                passed: false,
                detail: problem,
            }]);
            None
        }
    }
}

fn build_streams(plan: &Plan) -> Streams {
    let gateway_rounds = plan.rounds;
    let spec = StreamSpec {
        run_id: run_id(),
        tag: "t",
        sale_tag: "t",
        requests: plan.requests_per_round as usize,
        buyers: plan.buyers as usize,
        rounds: gateway_rounds,
        skus: plan.skus,
        session_secret: plan.session_secret.clone(),
    };
    let fill = (plan.scenario == Scenario::Soldout).then(|| {
        let requests = (plan.stock as usize) * plan.skus;
        Arc::new(RequestStream::build(&StreamSpec {
            tag: "f",
            requests,
            buyers: requests,
            ..spec.clone()
        }))
    });
    Streams {
        timed: Arc::new(RequestStream::build(&spec)),
        fill,
    }
}

/// The order of rounds: ceiling rounds around and between the gateway's;
/// with a cluster, each single-node round followed by a cluster round, with
/// `--conventional` by a round against the conventional design.
pub fn sequence(plan: &Plan) -> Vec<RoundKind> {
    let gateway: &[RoundKind] = match (&plan.cluster, &plan.conventional) {
        (Some(_), _) => &[RoundKind::Flashgate, RoundKind::Cluster],
        (None, Some(_)) => &[RoundKind::Flashgate, RoundKind::Conventional],
        (None, None) => &[RoundKind::Flashgate],
    };
    match (plan.scenario, plan.compare_ceiling) {
        (Scenario::Ceiling, _) => vec![RoundKind::Ceiling; plan.rounds],
        (_, false) => (0..plan.rounds)
            .flat_map(|_| gateway.iter().copied())
            .collect(),
        (_, true) => std::iter::once(RoundKind::Ceiling)
            .chain((0..plan.rounds).flat_map(|_| {
                gateway
                    .iter()
                    .copied()
                    .chain(std::iter::once(RoundKind::Ceiling))
            }))
            .collect(),
    }
}

type RoundsOutcome = (Vec<RoundReport>, Verification, Option<Rss>);

async fn run_rounds(
    plan: &Plan,
    streams: &Streams,
    target: Option<&Target>,
    cluster: Option<&Cluster>,
    mut conventional: Option<&mut Conventional>,
) -> Result<RoundsOutcome, String> {
    let kinds = sequence(plan);
    let ceiling = match kinds.contains(&RoundKind::Ceiling) {
        true => Some(Endpoint::ceiling(plan.ceiling_threads)?),
        false => None,
    };
    let mut reports = Vec::with_capacity(kinds.len());
    let mut verification = Verification::default();
    let mut holds_rss = None;
    let mut gateway_round: usize = 0;
    let mut cluster_round = 0;
    for (position, kind) in kinds.iter().enumerate() {
        let label = format!("round {} {}", position + 1, kind.name());
        if *kind == RoundKind::Cluster {
            let cluster = cluster.ok_or("internal: a cluster round without a cluster")?;
            // The same stream round as the single node's (another gateway,
            // so the same sale id and keys are fresh there).
            let (report, checks) =
                cluster_round_run(plan, streams, cluster, cluster_round, position + 1, &label)
                    .await?;
            verification.push(checks);
            reports.push(report);
            cluster_round += 1;
            continue;
        }
        if *kind == RoundKind::Conventional {
            let conventional = conventional
                .as_deref_mut()
                .ok_or("internal: a conventional round without its endpoint")?;
            // The stream of the gateway round just run.
            let stream_round = gateway_round.saturating_sub(1);
            let (report, checks) = conventional_round_run(
                plan,
                streams,
                conventional,
                stream_round,
                position + 1,
                &label,
            )
            .await?;
            verification.push(checks);
            reports.push(report);
            continue;
        }
        match (kind, &ceiling, target) {
            (RoundKind::Ceiling, Some(ceiling), _) => {
                let stream_round = gateway_round.min(streams.timed.rounds() - 1);
                let spec = round_spec(plan, ceiling.addr.to_string(), stream_round, false);
                let result = run_round(Arc::clone(&streams.timed), spec).await?;
                verification.push([verify_ceiling(&label, &result.outcomes)]);
                reports.push(RoundReport::new(
                    *kind,
                    position + 1,
                    &result,
                    exhausted(plan, &result, &streams.timed),
                ));
            }
            (RoundKind::Flashgate, _, Some(target)) => {
                let (report, checks, rss) =
                    gateway_round_run(plan, streams, target, gateway_round, position + 1, &label)
                        .await?;
                verification.push(checks);
                reports.push(report);
                holds_rss = holds_rss.or(rss);
                gateway_round += 1;
            }
            _ => return Err("internal: a round without its endpoint".into()),
        }
    }
    if let Some(ceiling) = ceiling {
        ceiling.stop();
    }
    Ok((reports, verification, holds_rss))
}

/// One round against the conventional design: the round's sale set up in
/// Redis, the stream of the gateway round before it, then Redis's counts
/// against the 201s and Redis's CPU over the round.
async fn conventional_round_run(
    plan: &Plan,
    streams: &Streams,
    conventional: &mut Conventional,
    stream_round: usize,
    position: usize,
    label: &str,
) -> Result<(RoundReport, Vec<Check>), String> {
    let sale_id = streams.timed.sale_id(stream_round).to_owned();
    let sku_ids = &streams.timed.sku_ids;
    conventional.prepare(&sale_id, sku_ids, plan.stock)?;
    let cpu_before = conventional.redis_cpu_seconds()?;
    let spec = round_spec(plan, conventional.addr.to_string(), stream_round, false);
    let result = run_round(Arc::clone(&streams.timed), spec).await?;
    let redis_cpu_seconds = (conventional.redis_cpu_seconds()? - cpu_before).max(0.0);
    let sold = conventional.sold(&sale_id, sku_ids, plan.stock)?;
    let stock = plan.stock * sku_ids.len() as u64;
    let checks = verify_conventional(label, &result.outcomes, sold, stock, expectations(plan));
    let mut report = RoundReport::new(
        RoundKind::Conventional,
        position,
        &result,
        exhausted(plan, &result, &streams.timed),
    );
    report.conventional = Some(ConventionalRound {
        units_sold: sold.units,
        buyer_units: sold.buyer_units,
        redis_cpu_seconds,
        redis_us_per_request: redis_cpu_seconds * 1e6 / result.sent.max(1) as f64,
    });
    Ok((report, checks))
}

fn round_spec(plan: &Plan, addr: String, stream_round: usize, keep_created: bool) -> RoundSpec {
    RoundSpec {
        addrs: vec![addr],
        connections: plan.connections,
        stream_round,
        rate: plan.rate,
        duration_max: match (plan.length, plan.rate) {
            (Length::Seconds(seconds), None) => Some(Duration::from_secs_f64(seconds)),
            _ => None,
        },
        keep_created,
        gateway_pids: Vec::new(),
    }
}

fn exhausted(plan: &Plan, result: &RoundResult, stream: &RequestStream) -> bool {
    matches!((plan.length, plan.rate), (Length::Seconds(_), None))
        && result.sent as usize >= stream.len()
}

async fn gateway_round_run(
    plan: &Plan,
    streams: &Streams,
    target: &Target,
    gateway_round: usize,
    position: usize,
    label: &str,
) -> Result<(RoundReport, Vec<Check>, Option<Rss>), String> {
    let mut admin = Admin::connect(&target.addr, &plan.admin_token).await?;
    let sale = SaleSpec {
        sale_id: streams.timed.sale_id(gateway_round).to_owned(),
        sku_ids: streams.timed.sku_ids.clone(),
        stock: plan.stock,
        per_user_limit: plan.per_user_limit,
        hold_seconds: plan.hold_seconds,
    };
    admin.open_sale(&sale).await?;
    let mut checks = Vec::new();
    let mut filled = Vec::new();
    if let Some(fill) = &streams.fill {
        let sold = sell_out(
            plan,
            fill,
            target,
            gateway_round,
            &mut admin,
            &sale.sale_id,
            label,
        );
        let (created, check) = sold.await?;
        filled = created;
        checks.push(check);
    }
    let rss_before = target.rss_kib();
    let spec = RoundSpec {
        gateway_pids: target.pid().into_iter().collect(),
        ..round_spec(plan, target.addr.clone(), gateway_round, true)
    };
    let commits_before = parse_commit_totals(&admin.metrics().await?);
    let result = run_round(Arc::clone(&streams.timed), spec).await?;
    let rss_after = target.rss_kib();
    let commits_after = parse_commit_totals(&admin.metrics().await?);
    let exhausted = exhausted(plan, &result, &streams.timed);
    let mut report = RoundReport::new(RoundKind::Flashgate, position, &result, exhausted);
    report.journal = JournalRound::between(commits_before, commits_after, report.seconds);
    report.store_catch_up = Some(store_catch_up(&mut admin, target, &report).await?);
    let mut payments = None;
    if let Some(fraction) = plan.pay_fraction {
        let paying = pay_winners(
            &target.addr,
            &target.sim_url,
            &streams.timed,
            &result.created,
            fraction,
            plan.pay_connections,
        );
        let pay = paying.await?;
        payments = Some((pay.confirmed, pay.paid_seen));
        report.pay = Some(pay);
    }
    let holds_rss = match plan.scenario {
        Scenario::Holds => {
            let holds = result.outcomes.reserved;
            settle_rss(plan, target, rss_before, rss_after, holds).await
        }
        _ => None,
    };
    let stats = admin.stats(&sale.sale_id).await?;
    let reads = read_back(plan, streams, target, &filled, &result.created).await?;
    let evidence = Evidence {
        outcomes: &result.outcomes,
        orders_made: (filled.len() + result.created.len()) as u64,
        stats: &stats,
        reads: &reads,
        payments,
    };
    checks.extend(verify_round(label, &evidence, expectations(plan)));
    report.stats = Some(stats);
    report.reads = Some(reads);
    Ok((report, checks, holds_rss))
}

/// How long a wait for the store to catch up may take before the run fails.
const STORE_CATCH_UP_WAIT: Duration = Duration::from_secs(300);

/// Waits until the gateway's store has applied its whole journal (the
/// store writer may put its work off during a burst), measuring the wait
/// and the gateway's CPU over it.
async fn store_catch_up(
    admin: &mut Admin,
    target: &Target,
    round: &RoundReport,
) -> Result<StoreCatchUp, String> {
    let started = Instant::now();
    let cpu_before = target.pid().and_then(|pid| cpu::sample(Some(pid)));
    let mut lag_records = None;
    loop {
        let lag = store_lag_records(&admin.metrics().await?)?;
        lag_records.get_or_insert(lag);
        if lag == 0 {
            break;
        }
        if started.elapsed() > STORE_CATCH_UP_WAIT {
            return Err(format!(
                "the gateway's store was still {lag} records behind {STORE_CATCH_UP_WAIT:?} after the round"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = target.pid().and_then(|pid| cpu::sample(Some(pid)));
    let gateway_cpu_seconds = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) => Some(after.process_seconds - before.process_seconds),
        _ => None,
    };
    let us_per_request_all_in = match (gateway_cpu_seconds, &round.gateway_cpu) {
        (Some(wait), Some(cpu)) if round.sent > 0 => {
            let round_seconds = cpu.cores * round.seconds;
            Some((round_seconds + wait) * 1e6 / round.sent as f64)
        }
        _ => None,
    };
    Ok(StoreCatchUp {
        seconds,
        lag_records: lag_records.unwrap_or(0),
        gateway_cpu_seconds,
        us_per_request_all_in,
    })
}

/// `flashgate_store_lag_records` from a `/metrics` text.
pub fn store_lag_records(metrics: &str) -> Result<u64, String> {
    metric_sample(metrics, STORE_LAG_RECORDS)
        .map(|value| value as u64)
        .ok_or_else(|| format!("the gateway's /metrics has no {STORE_LAG_RECORDS}"))
}

/// A round on the cluster: see the module's doc.
async fn cluster_round_run(
    plan: &Plan,
    streams: &Streams,
    cluster: &Cluster,
    stream_round: usize,
    position: usize,
    label: &str,
) -> Result<(RoundReport, Vec<Check>), String> {
    let addrs = cluster.addrs();
    let mut admins = Vec::with_capacity(addrs.len());
    for addr in &addrs {
        admins.push(Admin::connect(addr, &plan.admin_token).await?);
    }
    let sale = SaleSpec {
        sale_id: streams.timed.sale_id(stream_round).to_owned(),
        sku_ids: streams.timed.sku_ids.clone(),
        stock: plan.stock,
        per_user_limit: plan.per_user_limit,
        hold_seconds: plan.hold_seconds,
    };
    admins[0].open_sale(&sale).await?;
    for admin in &mut admins {
        admin.wait_live(&sale.sale_id, LIVE_WAIT).await?;
    }
    let calls_before = scrape_redis_calls(&mut admins).await?;
    let spec = RoundSpec {
        addrs: addrs.clone(),
        gateway_pids: cluster.pids(),
        ..round_spec(plan, String::new(), stream_round, true)
    };
    let result = run_round(Arc::clone(&streams.timed), spec).await?;
    let calls_after = scrape_redis_calls(&mut admins).await?;
    let redis_calls = RedisCalls::between(
        &calls_before,
        &calls_after,
        result.outcomes.reserved,
        result.outcomes.total(),
    );
    // Each node's own counts first, Redis's view after: a node's lease in
    // Redis only grows while the sale is live, so it is read at least as
    // large as what the node held when its stats were read.
    let mut nodes = Vec::with_capacity(admins.len());
    for (admin, node_id) in admins.iter_mut().zip(&cluster.node_ids) {
        nodes.push((node_id.clone(), admin.stats(&sale.sale_id).await?));
    }
    let stock = plan.stock * plan.skus as u64;
    let view = settled_view(&mut admins[0], &sale.sale_id, stock).await?;
    let reads =
        read_orders_on_nodes(&addrs, &streams.timed, &result.created, plan.read_max).await?;
    let evidence = ClusterEvidence {
        outcomes: &result.outcomes,
        orders_made: result.created.len() as u64,
        stock,
        nodes: &nodes,
        view: &view,
        reads: &reads,
    };
    let checks = verify_cluster_round(label, &evidence, expectations(plan));
    let exhausted = exhausted(plan, &result, &streams.timed);
    let mut report = RoundReport::new(RoundKind::Cluster, position, &result, exhausted);
    report.stats = Some(sum_stats(nodes.iter().map(|(_, stats)| stats)));
    report.reads = Some(reads);
    report.cluster = Some(ClusterRound {
        nodes: nodes
            .into_iter()
            .zip(&addrs)
            .zip(&result.outcomes_by_node)
            .map(|(((node_id, stats), addr), outcomes)| NodeRound {
                node_id,
                addr: addr.clone(),
                outcomes: outcomes.clone(),
                stats,
            })
            .collect(),
        view,
        redis_calls,
    });
    Ok((report, checks))
}

/// Every node's Redis calls by op, in node order.
async fn scrape_redis_calls(admins: &mut [Admin]) -> Result<Vec<CallsByOp>, String> {
    let mut scrapes = Vec::with_capacity(admins.len());
    for admin in admins {
        scrapes.push(parse_redis_calls(&admin.metrics().await?));
    }
    Ok(scrapes)
}

/// Redis's view once `global remaining + leased == stock` reads true (a
/// lease moving units between the two reads of one view reads them
/// twice), or the last view after [`SETTLE_WAIT`] for the check to judge.
async fn settled_view(admin: &mut Admin, sale_id: &str, stock: u64) -> Result<ClusterView, String> {
    let deadline = Instant::now() + SETTLE_WAIT;
    loop {
        let view = admin.cluster_view(sale_id).await;
        match view {
            Ok(view) if view.global_remaining + view.leased() == stock => return Ok(view),
            Ok(view) if Instant::now() >= deadline => return Ok(view),
            Err(problem) if Instant::now() >= deadline => return Err(problem),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn sum_stats<'a>(all: impl Iterator<Item = &'a SaleStats>) -> SaleStats {
    all.fold(SaleStats::default(), |mut sum, stats| {
        sum.stock += stats.stock;
        sum.reserved += stats.reserved;
        sum.paid += stats.paid;
        sum.remaining += stats.remaining;
        sum.orders_created += stats.orders_created;
        sum.orders_paid += stats.orders_paid;
        sum
    })
}

/// The outcomes a gateway round of this plan may produce.
fn expectations(plan: &Plan) -> Expectations {
    Expectations {
        reserved: plan.scenario != Scenario::Soldout,
        sold_out: plan.scenario == Scenario::Soldout
            || plan.stock * (plan.skus as u64) < plan.requests_per_round,
        limit: plan.limit_expected(),
    }
}

/// Reads back the timed round's orders and the fill's, each as its own
/// buyers (the fill's buyers are another stream's).
async fn read_back(
    plan: &Plan,
    streams: &Streams,
    target: &Target,
    filled: &[Created],
    created: &[Created],
) -> Result<ReadSummary, String> {
    let mut reads = read_orders(&target.addr, &streams.timed, created, plan.read_max).await?;
    if let (Some(fill), false) = (&streams.fill, filled.is_empty()) {
        reads.merge(read_orders(&target.addr, fill, filled, plan.read_max).await?);
    }
    Ok(reads)
}

/// `soldout`: other buyers take every unit first, untimed.
async fn sell_out(
    plan: &Plan,
    fill: &Arc<RequestStream>,
    target: &Target,
    gateway_round: usize,
    admin: &mut Admin,
    sale_id: &str,
    label: &str,
) -> Result<(Vec<Created>, Check), String> {
    let spec = RoundSpec {
        duration_max: None,
        rate: None,
        ..round_spec(plan, target.addr.clone(), gateway_round, true)
    };
    let result = run_round(Arc::clone(fill), spec).await?;
    let stats = admin.stats(sale_id).await?;
    let passed = stats.remaining == 0 && result.outcomes.errors == 0;
    let check = Check {
        name: format!("{label}: sold out before the timed requests"),
        passed,
        detail: format!(
            "{} fill requests: {} reserved, {} errors; remaining {}",
            result.sent, result.outcomes.reserved, result.outcomes.errors, stats.remaining
        ),
    };
    Ok((result.created, check))
}

/// `holds`: memory per open hold, after the gateway settles.
async fn settle_rss(
    plan: &Plan,
    target: &Target,
    before: Option<u64>,
    after: Option<u64>,
    holds: u64,
) -> Option<Rss> {
    tokio::time::sleep(Duration::from_secs(plan.settle_seconds)).await;
    let settled = target.rss_kib();
    let (before_kib, after_kib, settled_kib) = (before?, after?, settled?);
    Some(Rss {
        before_kib,
        after_kib,
        settled_kib: Some(settled_kib),
        bytes_per_hold: (holds > 0)
            .then(|| (settled_kib.saturating_sub(before_kib) * 1024) as f64 / holds as f64),
        holds: Some(holds),
    })
}

/// Mean req/s of the rounds of one kind.
fn mean_rate(rounds: &[RoundReport], kind: RoundKind) -> Option<f64> {
    let rates: Vec<f64> = rounds
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.requests_per_second)
        .collect();
    (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
}

/// The cluster beside the single node and the ceiling of the same run.
fn cluster_summary(
    rounds: &[RoundReport],
    node_addrs: Vec<String>,
    redis_url: String,
    key_prefix: String,
    keys_deleted: Option<u64>,
) -> ClusterSummary {
    let cluster = mean_rate(rounds, RoundKind::Cluster);
    let single = mean_rate(rounds, RoundKind::Flashgate);
    let ceiling = mean_rate(rounds, RoundKind::Ceiling);
    let mean_reserved = |kind: RoundKind| {
        let rates: Vec<f64> = rounds
            .iter()
            .filter(|r| r.kind == kind && r.seconds > 0.0)
            .map(|r| r.outcomes.reserved as f64 / r.seconds)
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    };
    ClusterSummary {
        nodes: node_addrs.len(),
        node_addrs,
        redis_url,
        key_prefix,
        keys_deleted,
        requests_per_second: cluster,
        reserved_per_second: mean_reserved(RoundKind::Cluster),
        single_requests_per_second: single,
        single_reserved_per_second: mean_reserved(RoundKind::Flashgate),
        ceiling_requests_per_second: ceiling,
        cluster_to_single: divide(cluster, single),
        cluster_to_ceiling: divide(cluster, ceiling),
        redis_calls: RedisCalls::sum(
            rounds
                .iter()
                .filter_map(|r| r.cluster.as_ref().map(|c| &c.redis_calls)),
        ),
    }
}

/// `a / b` when both are known and the quotient is a number.
fn divide(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?).filter(|r| r.is_finite())
}

/// The conventional design beside flashgate and the ceiling of the same run.
fn conventional_summary(
    rounds: &[RoundReport],
    redis_url: String,
    key_prefix: String,
    keys_deleted: Option<u64>,
) -> ConventionalSummary {
    let conventional = mean_rate(rounds, RoundKind::Conventional);
    let flashgate = mean_rate(rounds, RoundKind::Flashgate);
    let ceiling = mean_rate(rounds, RoundKind::Ceiling);
    ConventionalSummary {
        redis_url,
        key_prefix,
        keys_deleted,
        requests_per_second: conventional,
        flashgate_requests_per_second: flashgate,
        ceiling_requests_per_second: ceiling,
        conventional_to_ceiling: divide(conventional, ceiling),
        flashgate_to_conventional: divide(flashgate, conventional),
    }
}

/// Gateway ÷ ceiling, mean req/s of each, against the target.
fn ratio(plan: &Plan, rounds: &[RoundReport]) -> Option<Ratio> {
    let (flashgate, ceiling) = (
        mean_rate(rounds, RoundKind::Flashgate)?,
        mean_rate(rounds, RoundKind::Ceiling)?,
    );
    let ratio = flashgate / ceiling;
    // Open loop: both sides run at the offered rate, so the ratio says
    // nothing; the targets are for closed loop.
    let target = match plan.rate {
        Some(_) => None,
        None => target_for(plan.scenario, plan.durability(), plan.connections),
    };
    let p99_ms_worst = rounds
        .iter()
        .filter(|r| r.kind == RoundKind::Flashgate)
        .map(|r| r.latency_us.p99 as f64 / 1000.0)
        .fold(0.0, f64::max);
    let met = target.map(|target| {
        ratio >= target.ratio_min && target.p99_ms_max.is_none_or(|max| p99_ms_worst <= max)
    });
    Some(Ratio {
        ratio,
        flashgate_requests_per_second: flashgate,
        ceiling_requests_per_second: ceiling,
        target,
        met,
    })
}

#[cfg(test)]
mod tests {
    use super::store_lag_records;

    #[test]
    fn the_store_lag_is_read_from_the_metrics_text() {
        let text = "# TYPE flashgate_store_lag_records gauge\n\
                    flashgate_store_lag_records_total 9\n\
                    flashgate_store_lag_records 264105\n\
                    flashgate_store_lag_seconds 2.5\n";
        assert_eq!(store_lag_records(text), Ok(264_105));
        let missing = store_lag_records("flashgate_store_lag_seconds 0\n").unwrap_err();
        assert!(missing.contains("flashgate_store_lag_records"), "{missing}");
    }
}
