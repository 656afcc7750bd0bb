//! The breaker in front of Redis: after a failed call Redis is left alone
//! for an interval, then one call is let through to probe it. A dead Redis
//! therefore costs at most one timeout per interval.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Opens after a failure; lets one probe through per interval.
pub struct Breaker {
    started: Instant,
    /// Nanoseconds since `started` until which calls are refused; 0 = closed.
    open_until: AtomicU64,
    interval: Duration,
}

impl Breaker {
    /// A closed breaker that, once opened, refuses calls for `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            started: Instant::now(),
            open_until: AtomicU64::new(0),
            interval,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go to Redis now. While open, the first caller after
    /// each interval gets through as the probe.
    pub fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now();
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now + self.interval.as_nanos() as u64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Returns whether this closed an open breaker.
    pub fn success(&self) -> bool {
        self.open_until.swap(0, Ordering::AcqRel) != 0
    }

    /// Returns whether this opened a closed breaker.
    pub fn failure(&self) -> bool {
        let until = self.now() + self.interval.as_nanos() as u64;
        self.open_until.swap(until.max(1), Ordering::AcqRel) == 0
    }

    /// Whether Redis answered the last call; part of [`super::Gateway::is_up`].
    pub fn is_closed(&self) -> bool {
        self.open_until.load(Ordering::Acquire) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_refuses_calls_until_the_interval_passes_then_lets_one_probe_through() {
        let breaker = Breaker::new(Duration::from_millis(30));
        assert!(breaker.allow());
        assert!(breaker.failure(), "the first failure opens it");
        assert!(!breaker.failure(), "already open");
        assert!(!breaker.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow(), "one probe after the interval");
        assert!(!breaker.allow(), "and only one");
        assert!(breaker.success());
        assert!(breaker.allow());
        assert!(breaker.is_closed());
    }
}
