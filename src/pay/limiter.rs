//! The client's request-rate limiter: one per `PayClient`, shared by all its
//! calls (WeChat's limits are per merchant, ~500 QPS for JSAPI prepay).
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

    /// Waits for a slot; `Err(delay)` when the slot is beyond the bound.
    pub(crate) async fn acquire(&self) -> Result<(), Duration> {
        let delay = self.reserve(Instant::now())?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
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

    #[test]
    fn burst_is_a_tenth_of_the_rate() {
        let limiter = RateLimiter::new(400, Duration::ZERO);
        let now = Instant::now();
        let admitted = (0..100).filter(|_| limiter.reserve(now).is_ok()).count();
        assert_eq!(admitted, 40);
    }
}
