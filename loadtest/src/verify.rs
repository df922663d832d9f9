//! The verification after the load: a pure function from what the rounds
//! saw (outcomes, 201s), what the gateway says (the sale's stats) and what
//! reading the orders back found, to a list of named checks. Any failed
//! check makes the run exit non-zero.

use crate::admin::{ClusterView, ReadSummary, SaleStats};
use crate::cli::READ_SAMPLE_MIN;
use crate::conventional::Sold;
use crate::outcome::Outcomes;
use serde::Serialize;

/// Which outcomes a round may legitimately produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectations {
    /// 201s (false for requests that arrive after the sale sold out).
    pub reserved: bool,
    /// `SOLD_OUT` (false when the stock cannot run out within the round).
    pub sold_out: bool,
    /// `LIMIT_EXCEEDED` (only when buyers repeat).
    pub limit: bool,
}

/// Everything known about one gateway round's sale.
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    /// The timed round's outcomes.
    pub outcomes: &'a Outcomes,
    /// Every 201 this tool got for the sale (timed round, and any untimed fill).
    pub orders_made: u64,
    pub stats: &'a SaleStats,
    pub reads: &'a ReadSummary,
    /// Pay scenario: `(payments confirmed at the simulator, orders then read as paid)`.
    pub payments: Option<(u64, u64)>,
}

/// Everything known about one cluster round's sale.
#[derive(Clone, Copy, Debug)]
pub struct ClusterEvidence<'a> {
    /// The round's outcomes, summed over the nodes.
    pub outcomes: &'a Outcomes,
    /// Every 201 this tool got for the sale, from any node.
    pub orders_made: u64,
    /// The sale's stock across the cluster (all its items).
    pub stock: u64,
    /// Each node's id and its own stats (`stock` = the units it holds).
    pub nodes: &'a [(String, SaleStats)],
    /// Redis's view, from a node's stats after the round.
    pub view: &'a ClusterView,
    /// The orders read back, each from the node that made it.
    pub reads: &'a ReadSummary,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Verification {
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Verification {
    pub fn push(&mut self, checks: impl IntoIterator<Item = Check>) {
        self.checks.extend(checks);
        self.passed = self.checks.iter().all(|check| check.passed);
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|check| !check.passed)
    }
}

fn check(name: &str, passed: bool, detail: String) -> Check {
    Check {
        name: name.to_owned(),
        passed,
        detail,
    }
}

/// The checks of one gateway round, each named `<label>: <check>`.
pub fn verify_round(label: &str, evidence: &Evidence<'_>, expected: Expectations) -> Vec<Check> {
    let Evidence {
        outcomes,
        orders_made,
        stats,
        reads,
        payments,
    } = *evidence;
    let named = |what: &str| format!("{label}: {what}");
    let held = stats.reserved + stats.paid;
    let mut checks = vec![
        check(
            &named("stock not oversold"),
            held <= stats.stock,
            format!(
                "reserved {} + paid {} = {held} <= stock {}",
                stats.reserved, stats.paid, stats.stock
            ),
        ),
        check(
            &named("stats match the 201s"),
            held == orders_made,
            format!("reserved + paid = {held}; 201s answered = {orders_made}"),
        ),
        reads_check(&named("every 2xx order readable"), reads),
        errors_check(&named("no errors"), outcomes),
        outcomes_check(&named("only expected outcomes"), outcomes, expected),
    ];
    if let Some((confirmed, seen)) = payments {
        checks.push(check(
            &named("payments recorded"),
            seen == confirmed && stats.orders_paid == confirmed && stats.paid == confirmed,
            format!(
                "{confirmed} confirmed at the simulator; {seen} read as paid; stats: orders.paid {}, units paid {}",
                stats.orders_paid, stats.paid
            ),
        ));
    }
    checks
}

/// The checks of one cluster round. Outcomes are the nodes' summed; a node
/// whose lease ran dry answers 503 `OVERLOADED` while its refill comes,
/// counted as `shed`, allowed and reported.
pub fn verify_cluster_round(
    label: &str,
    evidence: &ClusterEvidence<'_>,
    expected: Expectations,
) -> Vec<Check> {
    let ClusterEvidence {
        outcomes,
        orders_made,
        stock,
        nodes,
        view,
        reads,
    } = *evidence;
    let named = |what: &str| format!("{label}: {what}");
    let sold: u64 = nodes.iter().map(|(_, s)| s.reserved + s.paid).sum();
    let per_node: Vec<String> = nodes
        .iter()
        .map(|(node_id, stats)| {
            format!(
                "{node_id} sold {} of the {} it holds (Redis: {} leased)",
                stats.reserved + stats.paid,
                stats.stock,
                view.leases.get(node_id).copied().unwrap_or(0)
            )
        })
        .collect();
    let beyond_lease = nodes.iter().any(|(node_id, stats)| {
        stats.reserved + stats.paid > stats.stock
            || stats.stock > view.leases.get(node_id).copied().unwrap_or(0)
    });
    let strangers: Vec<&String> = view
        .leases
        .iter()
        .filter(|(node_id, &units)| units > 0 && !nodes.iter().any(|(id, _)| id == *node_id))
        .map(|(node_id, _)| node_id)
        .collect();
    let leased = view.leased();
    vec![
        check(
            &named("stock not oversold across the cluster"),
            sold <= stock,
            format!("sold (reserved + paid, summed over the nodes) {sold} <= global stock {stock}"),
        ),
        check(
            &named("no node sold beyond its lease"),
            !beyond_lease && strangers.is_empty(),
            if strangers.is_empty() {
                per_node.join("; ")
            } else {
                format!(
                    "{}; Redis holds leases of unknown nodes {strangers:?}",
                    per_node.join("; ")
                )
            },
        ),
        check(
            &named("every unit accounted for in Redis"),
            view.global_remaining + leased == stock,
            format!(
                "global remaining {} + leased {leased} = {} (global stock {stock})",
                view.global_remaining,
                view.global_remaining + leased
            ),
        ),
        check(
            &named("stats match the 201s"),
            sold == orders_made,
            format!("reserved + paid over the nodes = {sold}; 201s answered = {orders_made}"),
        ),
        reads_check(&named("every 2xx order readable (from its node)"), reads),
        errors_check(&named("no errors"), outcomes),
        outcomes_check(&named("only expected outcomes"), outcomes, expected),
    ]
}

fn errors_check(name: &str, outcomes: &Outcomes) -> Check {
    check(
        name,
        outcomes.errors == 0,
        if outcomes.errors == 0 {
            format!("0 errors; {} shed (allowed, reported)", outcomes.shed)
        } else {
            let kinds: Vec<String> = outcomes
                .errors_by_kind
                .iter()
                .map(|(kind, error)| format!("{} x {kind} (first: {})", error.count, error.sample))
                .collect();
            format!("{} errors: {}", outcomes.errors, kinds.join("; "))
        },
    )
}

fn reads_check(name: &str, reads: &ReadSummary) -> Check {
    let enough = if reads.sampled {
        reads.checked >= (READ_SAMPLE_MIN as u64).min(reads.orders)
    } else {
        reads.checked == reads.orders
    };
    let what = if reads.sampled {
        format!(
            "an even sample of {} of the {} orders",
            reads.checked, reads.orders
        )
    } else {
        format!("all {} of the {} orders", reads.checked, reads.orders)
    };
    let mut detail = format!("{} readable, of {what}", reads.readable);
    if !reads.failures.is_empty() {
        detail.push_str(&format!("; first failures: {}", reads.failures.join("; ")));
    }
    check(name, enough && reads.readable == reads.checked, detail)
}

fn outcomes_check(name: &str, outcomes: &Outcomes, expected: Expectations) -> Check {
    let mut unexpected = Vec::new();
    if !expected.reserved && outcomes.reserved > 0 {
        unexpected.push(format!(
            "{} reserved after the sale sold out",
            outcomes.reserved
        ));
    }
    if !expected.sold_out && outcomes.sold_out > 0 {
        unexpected.push(format!(
            "{} SOLD_OUT with stock that cannot run out",
            outcomes.sold_out
        ));
    }
    if !expected.limit && outcomes.limit > 0 {
        unexpected.push(format!(
            "{} LIMIT_EXCEEDED with every buyer distinct",
            outcomes.limit
        ));
    }
    let detail = if unexpected.is_empty() {
        format!(
            "reserved {}, sold_out {}, limit {}, shed {}",
            outcomes.reserved, outcomes.sold_out, outcomes.limit, outcomes.shed
        )
    } else {
        unexpected.join("; ")
    };
    check(name, unexpected.is_empty(), detail)
}

/// A ceiling round must answer every request 201, or its rate means nothing.
/// The checks of one round against the conventional design: Redis's
/// counts against the 201s (every request of the stream asks for one unit).
pub fn verify_conventional(
    label: &str,
    outcomes: &Outcomes,
    sold: Sold,
    stock: u64,
    expected: Expectations,
) -> Vec<Check> {
    let named = |what: &str| format!("{label}: {what}");
    vec![
        check(
            &named("stock not oversold"),
            sold.units <= stock,
            format!("Redis sold {} <= stock {stock}", sold.units),
        ),
        check(
            &named("Redis matches the 201s"),
            sold.units == outcomes.reserved && sold.buyer_units == outcomes.reserved,
            format!(
                "units sold {}, buyers hold {}; 201s answered = {}",
                sold.units, sold.buyer_units, outcomes.reserved
            ),
        ),
        errors_check(&named("no errors"), outcomes),
        outcomes_check(&named("only expected outcomes"), outcomes, expected),
    ]
}

pub fn verify_ceiling(label: &str, outcomes: &Outcomes) -> Check {
    let clean = outcomes.errors == 0 && outcomes.reserved == outcomes.total();
    check(
        &format!("{label}: every request answered"),
        clean,
        format!(
            "{} answered 201, {} errors",
            outcomes.reserved, outcomes.errors
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLASH: Expectations = Expectations {
        reserved: true,
        sold_out: true,
        limit: false,
    };

    fn outcomes(reserved: u64, sold_out: u64) -> Outcomes {
        Outcomes {
            reserved,
            sold_out,
            ..Outcomes::default()
        }
    }

    fn failed_names(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|check| !check.passed)
            .map(|check| check.name.as_str())
            .collect()
    }

    #[test]
    fn a_conventional_round_passes_only_when_redis_counts_every_201_once() {
        let sold = |units, buyer_units| Sold { units, buyer_units };
        let clean = verify_conventional("c", &outcomes(90, 10), sold(90, 90), 90, FLASH);
        assert!(failed_names(&clean).is_empty(), "{clean:#?}");
        // Units sold the tool never heard of, a buyer's count lost, an oversell.
        let extra = verify_conventional("c", &outcomes(90, 10), sold(91, 91), 100, FLASH);
        assert_eq!(failed_names(&extra), ["c: Redis matches the 201s"]);
        let lost = verify_conventional("c", &outcomes(90, 10), sold(90, 89), 100, FLASH);
        assert_eq!(failed_names(&lost), ["c: Redis matches the 201s"]);
        let oversold = verify_conventional("c", &outcomes(91, 0), sold(91, 91), 90, FLASH);
        assert_eq!(failed_names(&oversold), ["c: stock not oversold"]);
        let errors = Outcomes {
            errors: 1,
            ..outcomes(90, 0)
        };
        let failed = verify_conventional("c", &errors, sold(90, 90), 100, FLASH);
        assert_eq!(failed_names(&failed), ["c: no errors"]);
    }

    fn stats(stock: u64, reserved: u64, paid: u64) -> SaleStats {
        SaleStats {
            stock,
            reserved,
            paid,
            remaining: stock.saturating_sub(reserved + paid),
            orders_created: reserved + paid,
            orders_paid: paid,
        }
    }

    fn all_read(orders: u64) -> ReadSummary {
        ReadSummary {
            orders,
            checked: orders,
            readable: orders,
            ..ReadSummary::default()
        }
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect()
    }

    fn run(outcomes: &Outcomes, made: u64, stats: &SaleStats, reads: &ReadSummary) -> Vec<Check> {
        let evidence = Evidence {
            outcomes,
            orders_made: made,
            stats,
            reads,
            payments: None,
        };
        verify_round("flash", &evidence, FLASH)
    }

    #[test]
    fn a_clean_sell_out_passes() {
        let checks = run(
            &outcomes(100, 900),
            100,
            &stats(100, 100, 0),
            &all_read(100),
        );
        assert_eq!(failed(&checks), Vec::<&str>::new(), "{checks:#?}");
    }

    #[test]
    fn oversold_stats_fail() {
        let checks = run(
            &outcomes(101, 899),
            101,
            &stats(100, 101, 0),
            &all_read(101),
        );
        assert_eq!(failed(&checks), ["flash: stock not oversold"]);
    }

    #[test]
    fn a_201_the_stats_do_not_hold_fails() {
        let checks = run(&outcomes(100, 900), 100, &stats(100, 99, 0), &all_read(100));
        assert_eq!(failed(&checks), ["flash: stats match the 201s"]);
    }

    #[test]
    fn a_missing_order_fails() {
        let mut reads = all_read(100);
        reads.readable = 99;
        reads.failures.push("FG1: 404 not found".into());
        let checks = run(&outcomes(100, 900), 100, &stats(100, 100, 0), &reads);
        assert_eq!(failed(&checks), ["flash: every 2xx order readable"]);
        let unread = ReadSummary {
            checked: 50,
            readable: 50,
            ..all_read(100)
        };
        let checks = run(&outcomes(100, 900), 100, &stats(100, 100, 0), &unread);
        assert_eq!(failed(&checks), ["flash: every 2xx order readable"]);
    }

    #[test]
    fn a_small_sample_fails_and_a_large_one_passes() {
        let sample = |checked| ReadSummary {
            orders: 200_000,
            checked,
            readable: checked,
            sampled: true,
            ..ReadSummary::default()
        };
        let made = stats(10_000_000, 200_000, 0);
        let checks = run(&outcomes(200_000, 0), 200_000, &made, &sample(5_000));
        assert_eq!(failed(&checks), ["flash: every 2xx order readable"]);
        let checks = run(&outcomes(200_000, 0), 200_000, &made, &sample(20_000));
        assert!(failed(&checks).is_empty());
    }

    #[test]
    fn an_error_outcome_fails_and_shed_does_not() {
        let mut seen = outcomes(100, 900);
        seen.shed = 7;
        let checks = run(&seen, 100, &stats(100, 100, 0), &all_read(100));
        assert!(failed(&checks).is_empty());
        seen.record_error("HTTP 500 INTERNAL".into(), "journal");
        let checks = run(&seen, 100, &stats(100, 100, 0), &all_read(100));
        assert_eq!(failed(&checks), ["flash: no errors"]);
    }

    #[test]
    fn outcomes_the_scenario_rules_out_fail() {
        let soldout = Expectations {
            reserved: false,
            sold_out: true,
            limit: false,
        };
        let evidence = Evidence {
            outcomes: &outcomes(1, 999),
            orders_made: 1001,
            stats: &stats(1000, 1001, 0),
            reads: &all_read(1001),
            payments: None,
        };
        let failures: Vec<String> = verify_round("soldout", &evidence, soldout)
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect();
        assert_eq!(
            failures,
            [
                "soldout: stock not oversold",
                "soldout: only expected outcomes"
            ]
        );
        let mut limited = outcomes(10, 0);
        limited.limit = 3;
        let checks = run(&limited, 10, &stats(100, 10, 0), &all_read(10));
        assert_eq!(failed(&checks), ["flash: only expected outcomes"]);
    }

    #[test]
    fn payments_must_show_in_the_stats_and_the_orders() {
        let seen = outcomes(100, 0);
        let reads = all_read(100);
        let verify = |paid_stats: u64, confirmed: u64, read_paid: u64| {
            let stats = stats(1000, 100 - paid_stats, paid_stats);
            let evidence = Evidence {
                outcomes: &seen,
                orders_made: 100,
                stats: &stats,
                reads: &reads,
                payments: Some((confirmed, read_paid)),
            };
            verify_round("pay", &evidence, FLASH)
                .into_iter()
                .filter(|c| !c.passed)
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert!(verify(10, 10, 10).is_empty());
        assert_eq!(verify(9, 10, 10), ["pay: payments recorded"]);
        assert_eq!(verify(10, 10, 9), ["pay: payments recorded"]);
    }

    /// Three nodes that sold 30 + 25 + 20 of a 100-unit sale, holding
    /// 40 + 30 + 20, Redis agreeing, 10 units not leased.
    fn cluster_nodes() -> Vec<(String, SaleStats)> {
        [("n1", 40, 30), ("n2", 30, 25), ("n3", 20, 20)]
            .into_iter()
            .map(|(node, held, sold)| {
                let mut node_stats = stats(held, sold, 0);
                node_stats.remaining = held - sold;
                (node.to_owned(), node_stats)
            })
            .collect()
    }

    fn redis_view(remaining: u64, leases: &[(&str, u64)]) -> ClusterView {
        ClusterView {
            node_id: "n1".into(),
            global_remaining: remaining,
            leases: leases
                .iter()
                .map(|(node, units)| ((*node).to_owned(), *units))
                .collect(),
        }
    }

    fn cluster_failures(
        outcomes: &Outcomes,
        made: u64,
        nodes: &[(String, SaleStats)],
        view: &ClusterView,
        reads: &ReadSummary,
    ) -> Vec<String> {
        let evidence = ClusterEvidence {
            outcomes,
            orders_made: made,
            stock: 100,
            nodes,
            view,
            reads,
        };
        verify_cluster_round("cluster", &evidence, FLASH)
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    const LEASES: [(&str, u64); 3] = [("n1", 40), ("n2", 30), ("n3", 20)];

    #[test]
    fn a_clean_cluster_round_passes_with_shed_requests() {
        let mut seen = outcomes(75, 0);
        seen.shed = 40;
        let failures = cluster_failures(
            &seen,
            75,
            &cluster_nodes(),
            &redis_view(10, &LEASES),
            &all_read(75),
        );
        assert!(failures.is_empty(), "{failures:?}");
    }

    #[test]
    fn a_cluster_oversold_across_the_nodes_fails() {
        let mut nodes = cluster_nodes();
        nodes[0].1 = stats(60, 60, 0);
        let leases = [("n1", 60), ("n2", 30), ("n3", 20)];
        let failures = cluster_failures(
            &outcomes(105, 0),
            105,
            &nodes,
            &redis_view(0, &leases),
            &all_read(105),
        );
        assert_eq!(
            failures,
            [
                "cluster: stock not oversold across the cluster",
                "cluster: every unit accounted for in Redis"
            ]
        );
    }

    #[test]
    fn a_node_selling_beyond_its_lease_fails() {
        // n2 sold more than it holds.
        let mut nodes = cluster_nodes();
        nodes[1].1 = stats(30, 31, 0);
        let failures = cluster_failures(
            &outcomes(81, 0),
            81,
            &nodes,
            &redis_view(10, &LEASES),
            &all_read(81),
        );
        assert_eq!(failures, ["cluster: no node sold beyond its lease"]);
        // n3 holds more than Redis says it leased.
        let leases = [("n1", 40), ("n2", 30), ("n3", 15)];
        let failures = cluster_failures(
            &outcomes(75, 0),
            75,
            &cluster_nodes(),
            &redis_view(15, &leases),
            &all_read(75),
        );
        assert_eq!(failures, ["cluster: no node sold beyond its lease"]);
        // Redis holds a lease for a node the run never started.
        let leases = [("n1", 40), ("n2", 30), ("n3", 20), ("n9", 5)];
        let failures = cluster_failures(
            &outcomes(75, 0),
            75,
            &cluster_nodes(),
            &redis_view(5, &leases),
            &all_read(75),
        );
        assert_eq!(failures, ["cluster: no node sold beyond its lease"]);
    }

    #[test]
    fn units_lost_in_redis_fail() {
        let failures = cluster_failures(
            &outcomes(75, 0),
            75,
            &cluster_nodes(),
            &redis_view(3, &LEASES),
            &all_read(75),
        );
        assert_eq!(failures, ["cluster: every unit accounted for in Redis"]);
    }

    #[test]
    fn cluster_201s_missing_from_the_stats_or_unreadable_fail() {
        let failures = cluster_failures(
            &outcomes(76, 0),
            76,
            &cluster_nodes(),
            &redis_view(10, &LEASES),
            &all_read(76),
        );
        assert_eq!(failures, ["cluster: stats match the 201s"]);
        let mut reads = all_read(75);
        reads.readable = 74;
        let mut seen = outcomes(75, 0);
        seen.record_error("HTTP 500 INTERNAL".into(), "journal");
        let failures = cluster_failures(
            &seen,
            75,
            &cluster_nodes(),
            &redis_view(10, &LEASES),
            &reads,
        );
        assert_eq!(
            failures,
            [
                "cluster: every 2xx order readable (from its node)",
                "cluster: no errors"
            ]
        );
    }

    #[test]
    fn a_ceiling_round_with_errors_fails() {
        assert!(verify_ceiling("ceiling 1", &outcomes(10, 0)).passed);
        let mut broken = outcomes(10, 0);
        broken.record_error("transport".into(), "reset");
        assert!(!verify_ceiling("ceiling 1", &broken).passed);
    }

    #[test]
    fn the_verification_fails_when_any_check_does() {
        let mut verification = Verification::default();
        verification.push(run(
            &outcomes(100, 0),
            100,
            &stats(100, 100, 0),
            &all_read(100),
        ));
        assert!(verification.passed);
        verification.push([verify_ceiling(
            "ceiling",
            &Outcomes {
                errors: 1,
                ..Outcomes::default()
            },
        )]);
        assert!(!verification.passed);
        assert_eq!(verification.failures().count(), 1);
    }
}
