//! A histogram of durations made of atomics, for the hot path.
//!
//! prometheus-client's own `Histogram` keeps its buckets behind a mutex
//! (`parking_lot::Mutex<Inner>`, taken by every `observe`): uncontended it
//! costs little, but every request of every core would take the same lock
//! for the same operation. Here an observation is two relaxed atomic adds
//! (its bucket and the sum, in nanoseconds) after a scan of the bounds.
//! A scrape reads the atomics one by one, so it may see an observation in
//! its bucket and not yet in the sum: a skew of one observation, which
//! Prometheus's rates never notice.
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bounds, in seconds, for whole requests: a response-tier hit takes a few
/// microseconds, a cold page of a hundred books tens of milliseconds.
pub const REQUEST_SECONDS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bounds, in seconds, for one SQL statement.
pub const QUERY_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// Bounds, in seconds, for an invalidation event's trip from its publisher
/// to a subscriber: well under a millisecond on one host, a few across a
/// network, and the silence limit (500 ms) is where trust is lost.
pub const LAG_SECONDS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// A histogram of durations; clones share their counts, so a clone can be
/// kept by whoever observes and another registered for export.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Upper bounds in seconds, as exported.
    bounds: &'static [f64],
    /// The same in nanoseconds, as compared.
    bounds_nanos: Box<[u64]>,
    /// Observations per bucket (not cumulative), the last one above every
    /// bound (`+Inf`).
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (seconds, increasing).
    pub fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]));
        Self(Arc::new(Inner {
            bounds,
            bounds_nanos: bounds.iter().map(|bound| (bound * 1e9) as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    /// Counts one observation.
    pub fn observe(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let inner = &*self.0;
        let bucket = inner
            .bounds_nanos
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(inner.bounds_nanos.len());
        inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of the observations, in seconds.
    pub fn sum(&self) -> f64 {
        self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// (upper bound, observations in that bucket alone) for every bound and
    /// `+Inf`: the exposition encoders accumulate them.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.0
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.0.counts.iter())
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets = self.buckets();
        let count = buckets.iter().map(|(_, count)| count).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(1000));
        histogram.observe(Duration::from_micros(1001));
        histogram.observe(Duration::from_secs(3));
        histogram.observe(Duration::ZERO);
        assert_eq!(
            histogram.buckets(),
            vec![(0.001, 2), (0.01, 1), (f64::INFINITY, 1)]
        );
        assert_eq!(histogram.count(), 4);
        assert!((histogram.sum() - 3.002_001).abs() < 1e-9);
        let clone = histogram.clone();
        clone.observe(Duration::ZERO);
        assert_eq!(histogram.count(), 5, "clones share their counts");
    }
}
