//! The client's request-rate limiter: one per `PayClient`, shared by all its
//! calls (WeChat's limits are per merchant, ~500 QPS for JSAPI prepay).
//!
//! Two lanes share it. A buyer's call (the prepay behind `/pay`, the close
//! and query before a buyer's cancel, an operator's refund) takes a slot of
//! the whole rate. A background call (hold expiry's close and query, the
//! reconciler, refunds of late payments) first takes a slot of its own
//! limiter, [`BACKGROUND_PERCENT`] of the rate, then one of the whole: so
//! a wave of expiring holds uses at most that share, and buyers paying
//! meanwhile keep the rest instead of waiting behind it and failing with
//! `RateLimited`.
//!
//! A token bucket written as GCRA: the state is one instant, the
//! "theoretical arrival time" of the next request. Each caller reserves its
//! own slot under a mutex held for a few instructions, then sleeps until the
//! slot outside the lock, so waiting callers are served in arrival order
//! without a timer per token. A slot further away than the wait bound is
//! refused at once, without being reserved: the wait is bounded and a
//! refused caller costs the others nothing.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The share of the rate background calls may use, in percent.
pub(crate) const BACKGROUND_PERCENT: u32 = 25;

/// Who a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A buyer or an operator waits for the answer.
    Interactive,
    /// Nobody waits: expiry, reconciliation, late refunds.
    Background,
}

/// The client's limiter: the whole rate, and the background lane's share.
#[derive(Debug)]
pub(crate) struct LaneLimiter {
    whole: RateLimiter,
    background: RateLimiter,
}

impl LaneLimiter {
    /// `wait_max` bounds an interactive call's wait; a background call may
    /// wait `background_wait_max` for its share's slot (on top of that).
    pub(crate) fn new(
        requests_per_second_max: u32,
        wait_max: Duration,
        background_wait_max: Duration,
    ) -> Self {
        let share = (requests_per_second_max * BACKGROUND_PERCENT / 100).max(1);
        Self {
            whole: RateLimiter::new(requests_per_second_max, wait_max),
            background: RateLimiter::new(share, background_wait_max),
        }
    }

    /// Waits for the call's slot; `Err(delay)` when it is beyond the bound.
    ///
    /// A background call waits for its share's slot *before* it asks the
    /// whole rate for one: reserved ahead, its slot would move the whole
    /// bucket's arrival time into the future and hold buyers behind it.
    pub(crate) async fn acquire(&self, lane: Lane) -> Result<(), Duration> {
        if lane == Lane::Background {
            wait(self.background.reserve(Instant::now())?).await;
        }
        wait(self.whole.reserve(Instant::now())?).await;
        Ok(())
    }
}

async fn wait(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// The burst allowed on top of the steady rate: a tenth of a second's
/// worth of requests (at least one).
const BURST_FRACTION_OF_SECOND: u32 = 10;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    burst_tolerance: Duration,
    wait_max: Duration,
    /// The instant at which the bucket will be empty again (GCRA's TAT).
    theoretical_arrival: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `requests_per_second_max` ≥ 1.
    pub(crate) fn new(requests_per_second_max: u32, wait_max: Duration) -> Self {
        assert!(
            requests_per_second_max >= 1,
            "a rate of zero admits nothing"
        );
        let interval = Duration::from_secs(1) / requests_per_second_max;
        let burst = (requests_per_second_max / BURST_FRACTION_OF_SECOND).max(1);
        Self {
            interval,
            burst_tolerance: interval * (burst - 1),
            wait_max,
            theoretical_arrival: Mutex::new(None),
        }
    }

    /// Reserves the next slot at or after `now`: the delay until it, or
    /// `Err(delay)` when that would exceed the wait bound (nothing reserved).
    pub(crate) fn reserve(&self, now: Instant) -> Result<Duration, Duration> {
        let mut arrival = self
            .theoretical_arrival
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = arrival.map_or(now, |at| at.max(now));
        let allowed_at = start
            .checked_sub(self.burst_tolerance)
            .unwrap_or(now)
            .max(now);
        let delay = allowed_at - now;
        if delay > self.wait_max {
            return Err(delay);
        }
        *arrival = Some(start + self.interval);
        Ok(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate_then_refusal_past_the_bound() {
        // 20 per second: one slot every 50 ms, a burst of 2.
        let limiter = RateLimiter::new(20, Duration::from_millis(200));
        let now = Instant::now();
        assert_eq!(limiter.reserve(now), Ok(Duration::ZERO));
        assert_eq!(limiter.reserve(now), Ok(Duration::ZERO));
        assert_eq!(limiter.reserve(now), Ok(Duration::from_millis(50)));
        assert_eq!(limiter.reserve(now), Ok(Duration::from_millis(100)));
        assert_eq!(limiter.reserve(now), Ok(Duration::from_millis(150)));
        assert_eq!(limiter.reserve(now), Ok(Duration::from_millis(200)));
        assert_eq!(limiter.reserve(now), Err(Duration::from_millis(250)));
        // A refusal reserved nothing: the next caller gets the same answer.
        assert_eq!(limiter.reserve(now), Err(Duration::from_millis(250)));
        // Time passing frees slots again.
        let later = now + Duration::from_secs(1);
        assert_eq!(limiter.reserve(later), Ok(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn background_calls_take_at_most_their_share_and_buyers_keep_the_rest() {
        // 400/s: buyers wait at most 100 ms for a slot, background calls 10 s.
        let lanes = std::sync::Arc::new(LaneLimiter::new(
            400,
            Duration::from_millis(100),
            Duration::from_secs(10),
        ));
        let started = Instant::now();
        // A wave of 2,000 expiring holds asks at once.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..2_000 {
            let (lanes, done) = (lanes.clone(), done.clone());
            tokio::spawn(async move {
                if lanes.acquire(Lane::Background).await.is_ok() {
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        // Meanwhile buyers pay at 250/s for 4 s: with the wave held to its
        // 100/s, the whole 400/s still has room for every one at once.
        for _ in 0..1_000 {
            tokio::time::sleep(Duration::from_millis(4)).await;
            let delay = lanes.whole.reserve(Instant::now());
            assert!(
                delay.is_ok_and(|delay| delay <= Duration::from_millis(20)),
                "a buyer at {:?} waits {delay:?}",
                started.elapsed()
            );
        }
        // The wave got its share: about 100 a second, no more.
        let served = done.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            (380..=420).contains(&served),
            "{served} background calls in 4 s"
        );
    }

    #[test]
    fn burst_is_a_tenth_of_the_rate() {
        let limiter = RateLimiter::new(400, Duration::ZERO);
        let now = Instant::now();
        let admitted = (0..100).filter(|_| limiter.reserve(now).is_ok()).count();
        assert_eq!(admitted, 40);
    }
}
