//! Redis calls of a cluster round, from the nodes' own counter
//! `flashgate_cluster_redis_calls_total{op="..."}` scraped from each
//! node's `/metrics` before and after the round. Every `op` label found is
//! reported, so an op the gateway adds shows up without a change here.

use serde::Serialize;
use std::collections::BTreeMap;

/// The counter the nodes keep, one series per `op`.
pub const REDIS_CALLS_METRIC: &str = "flashgate_cluster_redis_calls_total";
/// The ops that move stock between Redis and a node.
pub const STOCK_OPS: [&str; 2] = ["lease", "return"];
/// The target: stock calls per reserved order in the flash scenario.
pub const STOCK_CALLS_PER_ORDER_MAX: f64 = 0.05;

/// Calls by op of one scrape: series of the same op (other labels) summed.
pub type CallsByOp = BTreeMap<String, u64>;

/// The counter's series in a Prometheus text exposition, by `op`.
pub fn parse_redis_calls(text: &str) -> CallsByOp {
    let mut calls = CallsByOp::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(REDIS_CALLS_METRIC) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let Some(op) = label_value(labels, "op") else {
            continue;
        };
        let Some(value) = value.split_whitespace().next() else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if value.is_finite() && value >= 0.0 {
            *calls.entry(op.to_owned()).or_default() += value as u64;
        }
    }
    calls
}

/// The value of `name="..."` in a label set (values with escapes are not
/// expected of op names and are taken as written).
fn label_value<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

/// A cluster round's Redis calls, summed over the nodes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RedisCalls {
    /// Calls made during the round, by op.
    pub by_op: CallsByOp,
    pub total: u64,
    /// `lease` + `return`.
    pub stock_calls: u64,
    /// The round's 201s.
    pub reserved_orders: u64,
    /// The round's answered requests.
    pub requests: u64,
    /// `stock_calls / reserved_orders` (None without orders).
    pub stock_calls_per_reserved_order: Option<f64>,
    /// `total / requests` (None without requests).
    pub calls_per_request: Option<f64>,
    /// Calls by op divided by the reserved orders.
    pub per_reserved_order_by_op: BTreeMap<String, f64>,
    /// `stock_calls_per_reserved_order <= 0.05`.
    pub stock_target_met: Option<bool>,
}

impl RedisCalls {
    /// From each node's scrape before and after (same order), the round's
    /// reserved orders and answered requests. A counter that went down (a
    /// restarted node) counts from zero.
    pub fn between(
        before: &[CallsByOp],
        after: &[CallsByOp],
        reserved_orders: u64,
        requests: u64,
    ) -> RedisCalls {
        let mut by_op = CallsByOp::new();
        let empty = CallsByOp::new();
        for (index, after) in after.iter().enumerate() {
            let before = before.get(index).unwrap_or(&empty);
            for (op, &count) in after {
                let start = before.get(op).copied().unwrap_or(0);
                let made = if count >= start { count - start } else { count };
                *by_op.entry(op.clone()).or_default() += made;
            }
        }
        RedisCalls::of(by_op, reserved_orders, requests)
    }

    /// From calls already counted (several rounds' added up).
    pub fn of(by_op: CallsByOp, reserved_orders: u64, requests: u64) -> RedisCalls {
        let total = by_op.values().sum();
        let stock_calls = STOCK_OPS
            .iter()
            .map(|op| by_op.get(*op).copied().unwrap_or(0))
            .sum();
        let per = |count: u64, of: u64| (of > 0).then(|| count as f64 / of as f64);
        let per_reserved_order_by_op = by_op
            .iter()
            .filter_map(|(op, &count)| Some((op.clone(), per(count, reserved_orders)?)))
            .collect();
        let stock_calls_per_reserved_order = per(stock_calls, reserved_orders);
        RedisCalls {
            total,
            stock_calls,
            reserved_orders,
            requests,
            stock_calls_per_reserved_order,
            calls_per_request: per(total, requests),
            per_reserved_order_by_op,
            stock_target_met: stock_calls_per_reserved_order
                .map(|per_order| per_order <= STOCK_CALLS_PER_ORDER_MAX),
            by_op,
        }
    }

    /// Several rounds as one.
    pub fn sum<'a>(rounds: impl IntoIterator<Item = &'a RedisCalls>) -> RedisCalls {
        let (mut by_op, mut reserved, mut requests) = (CallsByOp::new(), 0, 0);
        for round in rounds {
            for (op, count) in &round.by_op {
                *by_op.entry(op.clone()).or_default() += count;
            }
            reserved += round.reserved_orders;
            requests += round.requests;
        }
        RedisCalls::of(by_op, reserved, requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# TYPE flashgate_cluster_redis_calls_total counter
flashgate_cluster_redis_calls_total{op=\"lease\"} 12
flashgate_cluster_redis_calls_total{op=\"poll\"} 300
flashgate_cluster_redis_calls_total{node=\"n1\",op=\"limit\"} 7
flashgate_cluster_redis_calls_total{op=\"limit\",node=\"n2\"} 3
flashgate_cluster_redis_calls_total_other{op=\"lease\"} 99
flashgate_cluster_leased_units{sale_id=\"s\",sku_id=\"a\"} 40
flashgate_http_requests_total{route=\"/v1/orders\",status=\"201\"} 5000
";

    #[test]
    fn every_op_label_is_read_and_other_series_are_not() {
        let calls = parse_redis_calls(SCRAPE);
        let expected: CallsByOp = [("lease", 12), ("limit", 10), ("poll", 300)]
            .into_iter()
            .map(|(op, count)| (op.to_owned(), count))
            .collect();
        assert_eq!(calls, expected);
        assert!(parse_redis_calls("# nothing\n").is_empty());
    }

    #[test]
    fn a_round_is_the_difference_summed_over_nodes() {
        let scrape = |pairs: &[(&str, u64)]| -> CallsByOp {
            pairs.iter().map(|(op, n)| ((*op).to_owned(), *n)).collect()
        };
        let before = [
            scrape(&[("lease", 2), ("poll", 10)]),
            scrape(&[("poll", 10)]),
        ];
        let after = [
            scrape(&[("lease", 12), ("poll", 110), ("return", 1)]),
            scrape(&[("lease", 9), ("poll", 110), ("limit", 5000)]),
        ];
        let calls = RedisCalls::between(&before, &after, 1000, 5000);
        assert_eq!(calls.by_op["lease"], 19);
        assert_eq!(calls.by_op["return"], 1);
        assert_eq!(calls.by_op["poll"], 200);
        assert_eq!(calls.by_op["limit"], 5000, "an op this tool never heard of");
        assert_eq!(calls.stock_calls, 20);
        assert_eq!(calls.total, 5220);
        assert_eq!(calls.stock_calls_per_reserved_order, Some(0.02));
        assert_eq!(calls.stock_target_met, Some(true));
        assert_eq!(calls.calls_per_request, Some(5220.0 / 5000.0));
        assert_eq!(calls.per_reserved_order_by_op["limit"], 5.0);

        let costly = RedisCalls::between(&before, &after, 100, 5000);
        assert_eq!(costly.stock_calls_per_reserved_order, Some(0.2));
        assert_eq!(costly.stock_target_met, Some(false));
        let none = RedisCalls::between(&before, &after, 0, 0);
        assert_eq!(
            (none.stock_calls_per_reserved_order, none.stock_target_met),
            (None, None)
        );
        let both = RedisCalls::sum([&calls, &calls]);
        assert_eq!((both.stock_calls, both.reserved_orders), (40, 2000));
        assert_eq!(both.stock_calls_per_reserved_order, Some(0.02));
    }
}
