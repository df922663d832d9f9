//! Metrics through the `metrics` facade, exported in Prometheus text format.
//!
//! One process-wide recorder, installed on first use. Names follow
//! Prometheus conventions: base units, `_total` for counters, `_seconds` for
//! durations. Gauges that mirror state (stock, in-flight requests) are set
//! when `/metrics` is scraped, so the order path pays nothing for them.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const HTTP_REQUESTS_TOTAL: &str = "flashgate_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "flashgate_http_request_duration_seconds";
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "flashgate_http_requests_in_flight";
pub const HTTP_REQUESTS_SHED_TOTAL: &str = "flashgate_http_requests_shed_total";
pub const HTTP_CONNECTIONS_REFUSED_TOTAL: &str = "flashgate_http_connections_refused_total";
pub const RESERVATIONS_TOTAL: &str = "flashgate_reservations_total";
pub const ORDERS_EXPIRED_TOTAL: &str = "flashgate_orders_expired_total";
pub const STOCK_REMAINING: &str = "flashgate_stock_remaining";
pub const STOCK_TOTAL: &str = "flashgate_stock";
pub const HOLDS_PENDING: &str = "flashgate_holds_pending";
pub const SSE_STREAMS: &str = "flashgate_sse_streams";
pub const JOURNAL_COMMIT_SECONDS: &str = "flashgate_journal_commit_seconds";
pub const JOURNAL_RECORDS_PER_COMMIT: &str = "flashgate_journal_records_per_commit";
pub const JOURNAL_BYTES_TOTAL: &str = "flashgate_journal_bytes_total";
pub const JOURNAL_DURABLE_SEQ: &str = "flashgate_journal_durable_seq";
pub const STORE_LAG_RECORDS: &str = "flashgate_store_lag_records";
pub const STORE_LAG_SECONDS: &str = "flashgate_store_lag_seconds";
pub const STORE_APPLIED_SEQ: &str = "flashgate_store_applied_seq";
pub const STORE_DEFERRING: &str = "flashgate_store_deferring";
pub const WECHATPAY_REQUESTS_TOTAL: &str = "flashgate_wechatpay_requests_total";
pub const WECHATPAY_REQUEST_DURATION_SECONDS: &str = "flashgate_wechatpay_request_duration_seconds";
pub const WECHATPAY_RETRIES_TOTAL: &str = "flashgate_wechatpay_retries_total";
pub const WECHATPAY_ERRORS_TOTAL: &str = "flashgate_wechatpay_errors_total";
pub const WECHATPAY_THROTTLED_TOTAL: &str = "flashgate_wechatpay_throttled_total";
pub const PAYMENTS_TOTAL: &str = "flashgate_payments_total";
pub const PAYMENT_NOTIFICATIONS_TOTAL: &str = "flashgate_payment_notifications_total";
pub const REFUNDS_TOTAL: &str = "flashgate_refunds_total";
pub const PAYMENT_SETTLEMENTS_TOTAL: &str = "flashgate_payment_settlements_total";
pub const READY: &str = "flashgate_ready";
pub const UNREADY: &str = "flashgate_unready";
/// Redis calls of a cluster node, by `op` (lease, return, poll, ...).
pub const CLUSTER_REDIS_CALLS_TOTAL: &str = "flashgate_cluster_redis_calls_total";
/// 1 while the node's last Redis call reached Redis, else 0 (as `/readyz`).
pub const CLUSTER_REDIS_UP: &str = "flashgate_cluster_redis_up";
/// Units of an item leased to this node and not returned, by sale and sku.
pub const CLUSTER_LEASED_UNITS: &str = "flashgate_cluster_leased_units";

/// Latency buckets from 100 µs to 5 s: the order path lives at the low end.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder's handle; installs it on first call.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.into()),
                LATENCY_BUCKETS_SECONDS,
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(WECHATPAY_REQUEST_DURATION_SECONDS.into()),
                LATENCY_BUCKETS_SECONDS,
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(JOURNAL_COMMIT_SECONDS.into()),
                LATENCY_BUCKETS_SECONDS,
            )
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(JOURNAL_RECORDS_PER_COMMIT.into()),
                &[
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
                ],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        describe();
        // Counters are exported at 0 from the start, so `rate()` reads 0
        // rather than nothing before their first event, and `increase()`
        // sees a rare event's first count (a series that appears at 1 has
        // no earlier sample to increase from): the refund alert needs that.
        for name in [
            HTTP_REQUESTS_SHED_TOTAL,
            HTTP_CONNECTIONS_REFUSED_TOTAL,
            ORDERS_EXPIRED_TOTAL,
            JOURNAL_BYTES_TOTAL,
        ] {
            metrics::counter!(name).increment(0);
        }
        metrics::counter!(REFUNDS_TOTAL, "outcome" => "failed").increment(0);
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests by route and status");
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "HTTP latency by route"
    );
    describe_gauge!(HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being handled");
    describe_counter!(
        HTTP_REQUESTS_SHED_TOTAL,
        "requests refused with 503 under overload"
    );
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED_TOTAL,
        "connections closed at connections_max"
    );
    describe_counter!(RESERVATIONS_TOTAL, "order attempts by outcome");
    describe_counter!(ORDERS_EXPIRED_TOTAL, "unpaid holds that ran out");
    describe_gauge!(STOCK_REMAINING, "units left to reserve per sale item");
    describe_gauge!(STOCK_TOTAL, "units ever put on sale per sale item");
    describe_gauge!(HOLDS_PENDING, "hold timers waiting to fire");
    describe_gauge!(SSE_STREAMS, "open Server-Sent Events streams");
    describe_histogram!(
        JOURNAL_COMMIT_SECONDS,
        Unit::Seconds,
        "journal write + fdatasync per commit"
    );
    describe_histogram!(
        JOURNAL_RECORDS_PER_COMMIT,
        "records sharing one journal commit"
    );
    describe_counter!(
        JOURNAL_BYTES_TOTAL,
        Unit::Bytes,
        "bytes appended to the journal"
    );
    describe_gauge!(
        JOURNAL_DURABLE_SEQ,
        "last journal record known to be on disk"
    );
    describe_gauge!(
        STORE_APPLIED_SEQ,
        "last journal record applied to the store"
    );
    describe_gauge!(STORE_LAG_RECORDS, "journal records not yet in the store");
    describe_gauge!(STORE_LAG_SECONDS, Unit::Seconds, "age of the store's lag");
    describe_gauge!(
        STORE_DEFERRING,
        "1 while the store writer lets records wait during a burst"
    );
    describe_counter!(
        WECHATPAY_REQUESTS_TOTAL,
        "WeChat Pay request attempts by endpoint and outcome"
    );
    describe_histogram!(
        WECHATPAY_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "WeChat Pay latency per attempt by endpoint"
    );
    describe_counter!(
        WECHATPAY_RETRIES_TOTAL,
        "WeChat Pay attempts repeated after a retryable failure"
    );
    describe_counter!(
        WECHATPAY_ERRORS_TOTAL,
        "WeChat Pay calls that failed after their last attempt"
    );
    describe_counter!(
        WECHATPAY_THROTTLED_TOTAL,
        "WeChat Pay attempts refused by the client's own rate limiter"
    );
    describe_counter!(
        PAYMENTS_TOTAL,
        "prepays and applied payments by outcome (paid, duplicate, reinstated, late_refund) and source"
    );
    describe_counter!(
        PAYMENT_NOTIFICATIONS_TOTAL,
        "WeChat Pay notifications by outcome (applied, or why refused: unreadable, signature, malformed, decrypt, mchid_mismatch, appid_mismatch, not_paid, no_transaction_id, unknown_order, amount_mismatch, refund_not_requested, unavailable)"
    );
    describe_counter!(
        REFUNDS_TOTAL,
        "refund calls and results by outcome (submitted, submit_failed, refunded, duplicate, failed)"
    );
    describe_counter!(
        PAYMENT_SETTLEMENTS_TOTAL,
        "paying orders settled with WeChat Pay by outcome (paid, closed, unpaid, retry)"
    );
    describe_gauge!(READY, "1 while /readyz answers 200, else 0");
    describe_gauge!(
        UNREADY,
        "1 for the reason /readyz answers 503 (draining, journal_unavailable, store_lagging, \
         redis_unreachable), else 0"
    );
}

/// Every request counts itself by route and status and times itself by
/// route, and every order attempt counts its outcome. `counter!` with
/// labels finds its series in the recorder's registry on each call (the
/// name and labels hashed, a shard's lock taken, the handle cloned); the
/// handles are the same every time, so each thread keeps those it has
/// used, keyed by the addresses of the `'static` label values.
///
/// Nor does a thread add to the recorder's atomics on each request: they
/// are words every HTTP thread writes, and each such write moves a cache
/// line between the cores (three a request; docs/PERFORMANCE.md, run N).
/// Each thread keeps a tally of its own, under a lock only it takes but
/// for a scrape, and hands it to the recorder every
/// [`hot::TALLY_EVENTS_MAX`] events; [`render`] first collects every
/// thread's tally, so a scrape counts every request answered before it.
pub(crate) mod hot {
    use ahash::RandomState;
    use metrics::{Counter, Histogram};
    use parking_lot::Mutex;
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock};

    /// Events a thread keeps before handing them to the recorder.
    pub const TALLY_EVENTS_MAX: usize = 64;

    type Series<T, V, const N: usize> = HashMap<[usize; N], (T, V), RandomState>;

    /// One thread's handles and what it has counted since it last handed
    /// its counts over.
    #[derive(Default)]
    struct Tally {
        requests: Series<Counter, u64, 2>,
        durations: Series<Histogram, Vec<f64>, 1>,
        reservations: Series<Counter, u64, 1>,
        events: usize,
    }

    impl Tally {
        fn hand_over(&mut self) {
            for (counter, count) in self
                .requests
                .values_mut()
                .chain(self.reservations.values_mut())
            {
                if *count > 0 {
                    counter.increment(std::mem::take(count));
                }
            }
            for (histogram, seconds) in self.durations.values_mut() {
                for value in seconds.drain(..) {
                    histogram.record(value);
                }
            }
            self.events = 0;
        }
    }

    /// Every thread's tally, for [`collect`]; a tally whose thread has
    /// ended is dropped once collected.
    fn tallies() -> &'static Mutex<Vec<Arc<Mutex<Tally>>>> {
        static TALLIES: OnceLock<Mutex<Vec<Arc<Mutex<Tally>>>>> = OnceLock::new();
        TALLIES.get_or_init(Mutex::default)
    }

    thread_local! {
        static TALLY: Arc<Mutex<Tally>> = {
            let tally = Arc::new(Mutex::new(Tally::default()));
            tallies().lock().push(Arc::clone(&tally));
            tally
        };
    }

    /// Hands every thread's tally to the recorder.
    pub fn collect() {
        tallies().lock().retain(|tally| {
            tally.lock().hand_over();
            // Only the list holds it: its thread has ended.
            Arc::strong_count(tally) > 1
        });
    }

    /// The address of a `'static` string: two pointers to equal text may
    /// differ, which only costs a second entry for the same series.
    fn at(text: &'static str) -> usize {
        text.as_ptr() as usize
    }

    fn tally(count: impl Fn(&mut Tally)) {
        // A thread being torn down counts straight into the recorder's
        // registry (`try_with` fails), which is what its tally would do.
        let counted = TALLY.try_with(|tally| {
            let mut tally = tally.lock();
            count(&mut tally);
            tally.events += 1;
            if tally.events >= TALLY_EVENTS_MAX {
                tally.hand_over();
            }
        });
        if counted.is_err() {
            let mut alone = Tally::default();
            count(&mut alone);
            alone.hand_over();
        }
    }

    /// The series' handle, made once per thread: the recorder first, or
    /// a handle made before it would count nowhere, forever.
    fn series<T, V: Default, const N: usize>(
        series: &mut Series<T, V, N>,
        key: [usize; N],
        make: impl FnOnce() -> T,
    ) -> &mut V {
        &mut series
            .entry(key)
            .or_insert_with(|| {
                super::handle();
                (make(), V::default())
            })
            .1
    }

    /// A request answered: counted by route and status, timed by route.
    pub fn record_request(route: &'static str, status: &'static str, seconds: f64) {
        tally(|tally| {
            *series(
                &mut tally.requests,
                [at(route), at(status)],
                || metrics::counter!(super::HTTP_REQUESTS_TOTAL, "route" => route, "status" => status),
            ) += 1;
            series(
                &mut tally.durations,
                [at(route)],
                || metrics::histogram!(super::HTTP_REQUEST_DURATION_SECONDS, "route" => route),
            )
            .push(seconds);
        });
    }

    pub fn count_reservation(outcome: &'static str) {
        tally(|tally| {
            *series(
                &mut tally.reservations,
                [at(outcome)],
                || metrics::counter!(super::RESERVATIONS_TOTAL, "outcome" => outcome),
            ) += 1;
        });
    }
}

/// The Prometheus text of every metric, every thread's counts of requests
/// and reservations included.
pub fn render() -> String {
    hot::collect();
    handle().render()
}

pub use hot::{count_reservation, record_request};

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
