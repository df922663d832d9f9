//! A run from plan to report: build the stream, open the gateway, run the
//! rounds in order (ceiling, gateway, ceiling, ...), verify each gateway
//! round's sale, close the gateway.
//!
//! A gateway round: a fresh sale (created and started by the host), for
//! `soldout` its stock sold first by other buyers (untimed), the timed
//! stream, for `pay` the winners paying, then the sale's stats and the
//! orders read back. A ceiling round: the same stream's bytes against the
//! in-process do-nothing endpoint.

use crate::admin::{read_orders, Admin, ReadSummary, SaleSpec};
use crate::ceiling::Ceiling;
use crate::client::{run_round, Created, RoundResult, RoundSpec};
use crate::pay::pay_winners;
use crate::plan::{Length, Plan, Scenario};
use crate::report::{target_for, GatewayInfo, Machine, Ratio, Report, RoundKind, RoundReport, Rss};
use crate::stream::{run_id, RequestStream, StreamSpec};
use crate::target::Target;
use crate::verify::{verify_ceiling, verify_round, Check, Evidence, Expectations, Verification};
use std::sync::Arc;
use std::time::Duration;

/// The streams of a run, built before anything is timed.
struct Streams {
    timed: Arc<RequestStream>,
    /// `soldout`: the requests that sell the stock before the timed round.
    fill: Option<Arc<RequestStream>>,
}

pub async fn run(plan: Plan) -> Result<Report, String> {
    let machine = Machine::now();
    let streams = build_streams(&plan);
    let target = match &plan.target {
        Some(target_plan) => Some(Target::open(target_plan).await?),
        None => None,
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
    let outcome = run_rounds(&plan, &streams, target.as_ref()).await;
    let rss_after = target.as_ref().and_then(Target::rss_kib);
    let closed = target.map_or(Ok(()), Target::close);
    let (rounds, mut verification, holds_rss) = outcome?;
    if let Err(problem) = closed {
        verification.push([Check {
            name: "gateway stopped cleanly".into(),
            passed: false,
            detail: problem,
        }]);
    }
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

/// The order of rounds: ceiling rounds around and between the gateway's.
fn sequence(plan: &Plan) -> Vec<RoundKind> {
    match (plan.scenario, plan.compare_ceiling) {
        (Scenario::Ceiling, _) => vec![RoundKind::Ceiling; plan.rounds],
        (_, false) => vec![RoundKind::Flashgate; plan.rounds],
        (_, true) => std::iter::once(RoundKind::Ceiling)
            .chain((0..plan.rounds).flat_map(|_| [RoundKind::Flashgate, RoundKind::Ceiling]))
            .collect(),
    }
}

type RoundsOutcome = (Vec<RoundReport>, Verification, Option<Rss>);

async fn run_rounds(
    plan: &Plan,
    streams: &Streams,
    target: Option<&Target>,
) -> Result<RoundsOutcome, String> {
    let kinds = sequence(plan);
    let ceiling = match kinds.contains(&RoundKind::Ceiling) {
        true => Some(Ceiling::start(plan.ceiling_threads)?),
        false => None,
    };
    let mut reports = Vec::with_capacity(kinds.len());
    let mut verification = Verification::default();
    let mut holds_rss = None;
    let mut gateway_round = 0;
    for (position, kind) in kinds.iter().enumerate() {
        let label = format!(
            "round {} {}",
            position + 1,
            match kind {
                RoundKind::Ceiling => "ceiling",
                RoundKind::Flashgate => "flashgate",
            }
        );
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

fn round_spec(plan: &Plan, addr: String, stream_round: usize, keep_created: bool) -> RoundSpec {
    RoundSpec {
        addr,
        connections: plan.connections,
        stream_round,
        rate: plan.rate,
        duration_max: match (plan.length, plan.rate) {
            (Length::Seconds(seconds), None) => Some(Duration::from_secs_f64(seconds)),
            _ => None,
        },
        keep_created,
        gateway_pid: None,
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
        gateway_pid: target.pid(),
        ..round_spec(plan, target.addr.clone(), gateway_round, true)
    };
    let result = run_round(Arc::clone(&streams.timed), spec).await?;
    let rss_after = target.rss_kib();
    let exhausted = exhausted(plan, &result, &streams.timed);
    let mut report = RoundReport::new(RoundKind::Flashgate, position, &result, exhausted);
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

/// Gateway ÷ ceiling, mean req/s of each, against the target.
fn ratio(plan: &Plan, rounds: &[RoundReport]) -> Option<Ratio> {
    let mean = |kind: RoundKind| {
        let rates: Vec<f64> = rounds
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.requests_per_second)
            .collect();
        (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
    };
    let (flashgate, ceiling) = (mean(RoundKind::Flashgate)?, mean(RoundKind::Ceiling)?);
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
