//! Durations over the last minute, for percentiles (the stats snapshots'
//! p50 and p99): a ring of 60 per-second histograms with fine log-linear
//! buckets, each a row of atomics.
//!
//! An observation is one relaxed atomic add to its second's bucket, after a
//! load that checks the second's slot is current. The first observer of a
//! new second takes the slot over and clears it; an observation racing that
//! clear may be lost, one in a second's worth, which a percentile over a
//! minute does not feel. A [`Summary`] holds only non-empty buckets, is what
//! a snapshot carries, and merges with other replicas' so that a total's
//! percentiles are computed from every observation rather than averaged.
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Seconds kept.
const SECONDS: usize = 60;
/// Sub-buckets per power of two: each bucket is at most 19% wide.
const SUB: u32 = 4;
/// Durations under 2^10 ns (about a microsecond) share the first bucket.
const FLOOR_LOG2: u32 = 10;
/// Durations over 2^37 ns (about 137 s) share the last.
const CEILING_LOG2: u32 = 37;
const BUCKETS: usize = 2 + ((CEILING_LOG2 - FLOOR_LOG2) * SUB) as usize;

/// The bucket of a duration in nanoseconds.
fn bucket(nanos: u64) -> usize {
    if nanos < 1 << FLOOR_LOG2 {
        return 0;
    }
    let log2 = 63 - nanos.leading_zeros();
    if log2 >= CEILING_LOG2 {
        return BUCKETS - 1;
    }
    let sub = (nanos >> (log2 - 2)) & u64::from(SUB - 1);
    1 + ((log2 - FLOOR_LOG2) * SUB) as usize + sub as usize
}

/// The range of durations, in nanoseconds, bucket `index` holds.
fn range(index: usize) -> (f64, f64) {
    if index == 0 {
        return (0.0, (1u64 << FLOOR_LOG2) as f64);
    }
    if index >= BUCKETS - 1 {
        let floor = (1u64 << CEILING_LOG2) as f64;
        return (floor, floor);
    }
    let position = (index - 1) as u32;
    let log2 = FLOOR_LOG2 + position / SUB;
    let sub = u64::from(position % SUB);
    let step = 1u64 << (log2 - 2);
    let low = (u64::from(SUB) + sub) * step;
    (low as f64, (low + step) as f64)
}

struct Slot {
    /// Which second (since the window began, plus one) the counts are of; 0
    /// before the first.
    second: AtomicU64,
    counts: Box<[AtomicU64]>,
}

/// Durations observed over the last minute, and how many since the start.
pub struct Window {
    started: Instant,
    slots: Box<[Slot]>,
    total: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            slots: (0..SECONDS)
                .map(|_| Slot {
                    second: AtomicU64::new(0),
                    counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
                })
                .collect(),
            total: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("total", &self.total())
            .finish_non_exhaustive()
    }
}

impl Window {
    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs() + 1
    }

    /// Counts `duration`, observed at `now`.
    pub fn observe(&self, now: Instant, duration: Duration) {
        let second = self.second(now);
        let slot = &self.slots[(second % SECONDS as u64) as usize];
        if slot.second.load(Ordering::Acquire) != second
            && slot.second.swap(second, Ordering::AcqRel) != second
        {
            for count in slot.counts.iter() {
                count.store(0, Ordering::Relaxed);
            }
        }
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        slot.counts[bucket(nanos)].fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations since the window was made.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The observations of the 60 seconds before `now`.
    pub fn last_minute(&self, now: Instant) -> Summary {
        let current = self.second(now);
        let oldest = current.saturating_sub(SECONDS as u64 - 1);
        let mut counts = vec![0u64; BUCKETS];
        for slot in self.slots.iter() {
            let second = slot.second.load(Ordering::Acquire);
            if second == 0 || second < oldest || second > current {
                continue;
            }
            for (sum, count) in counts.iter_mut().zip(slot.counts.iter()) {
                *sum += count.load(Ordering::Relaxed);
            }
        }
        Summary {
            buckets: counts
                .into_iter()
                .enumerate()
                .filter(|(_, count)| *count > 0)
                .map(|(index, count)| (index as u16, count))
                .collect(),
        }
    }
}

/// Durations as (bucket, count) pairs, non-empty buckets only, in bucket
/// order: compact enough to publish, and mergeable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    buckets: Vec<(u16, u64)>,
}

impl Summary {
    /// How many durations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, count)| count).sum()
    }

    /// Adds `other`'s durations to these.
    pub fn merge(&mut self, other: &Summary) {
        let mut counts = vec![0u64; BUCKETS];
        for (index, count) in self.buckets.iter().chain(&other.buckets) {
            if let Some(slot) = counts.get_mut(usize::from(*index)) {
                *slot += count;
            }
        }
        self.buckets = counts
            .into_iter()
            .enumerate()
            .filter(|(_, count)| *count > 0)
            .map(|(index, count)| (index as u16, count))
            .collect();
    }

    /// The `q`-quantile (0.5 for the median), interpolated within its
    /// bucket, in seconds; `None` without durations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        // The rank of the wanted duration, counted from 1.
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0);
        let mut below = 0u64;
        for (index, count) in &self.buckets {
            if (below + count) as f64 >= rank {
                let (low, high) = range(usize::from(*index));
                let within = (rank - below as f64) / *count as f64;
                return Some((low + (high - low) * within) / 1e9);
            }
            below += count;
        }
        self.buckets
            .last()
            .map(|(index, _)| range(usize::from(*index)).1 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_duration_in_order_and_hold_what_they_claim() {
        let mut last = 0;
        for nanos in (0..40)
            .map(|shift| 1u64 << shift)
            .flat_map(|n| [n, n + n / 3])
        {
            let index = bucket(nanos);
            assert!(index >= last, "{nanos} ns went backwards");
            last = index;
            let (low, high) = range(index);
            if index > 0 && index < BUCKETS - 1 {
                assert!(
                    low <= nanos as f64 && (nanos as f64) < high,
                    "{nanos} ns not in bucket {index}'s [{low}, {high})"
                );
                assert!(high / low <= 1.25 + 1e-9, "bucket {index} is too wide");
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_come_within_a_bucket_of_the_truth() {
        let window = Window::default();
        let now = Instant::now();
        for ms in 1..=100 {
            window.observe(now, Duration::from_millis(ms));
        }
        let minute = window.last_minute(now);
        assert_eq!(minute.count(), 100);
        let p50 = minute.quantile(0.5).unwrap();
        let p99 = minute.quantile(0.99).unwrap();
        assert!((0.045..0.056).contains(&p50), "p50 {p50}");
        assert!((0.09..0.11).contains(&p99), "p99 {p99}");
        assert_eq!(Summary::default().quantile(0.5), None);
    }

    #[test]
    fn a_minute_later_the_window_has_forgotten() {
        let window = Window::default();
        let start = Instant::now();
        window.observe(start, Duration::from_millis(5));
        window.observe(start + Duration::from_secs(30), Duration::from_millis(5));
        assert_eq!(
            window.last_minute(start + Duration::from_secs(59)).count(),
            2
        );
        assert_eq!(
            window.last_minute(start + Duration::from_secs(61)).count(),
            1
        );
        // The slot of second 0 is reused 60 s later, cleared first.
        window.observe(start + Duration::from_secs(60), Duration::from_millis(5));
        assert_eq!(
            window.last_minute(start + Duration::from_secs(60)).count(),
            2
        );
        assert_eq!(window.total(), 3);
    }

    #[test]
    fn merged_summaries_count_every_duration() {
        let (a, b) = (Window::default(), Window::default());
        let now = Instant::now();
        for _ in 0..99 {
            a.observe(now, Duration::from_micros(100));
        }
        b.observe(now, Duration::from_secs(1));
        let mut total = a.last_minute(now);
        total.merge(&b.last_minute(now));
        assert_eq!(total.count(), 100);
        assert!(total.quantile(0.5).unwrap() < 0.000_2);
        assert!(total.quantile(1.0).unwrap() > 0.9);
    }
}
