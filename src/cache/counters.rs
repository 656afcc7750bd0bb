//! Fixed-window counters shared by every replica through Redis, for limits
//! that must hold across replicas (sign-in throttling). Like every L2 call,
//! a failed one is an answer of `None`, never a failed request: the caller
//! keeps its own count in process for that case.
use super::Cache;
use std::time::Duration;

/// One counter to read, or to bump and read.
pub struct Counter<'a> {
    /// Unique within the deployment; the key is built under its prefix.
    pub name: &'a str,
    /// The window a first count starts.
    pub window: Duration,
    /// Whether to add one before reading.
    pub bump: bool,
}

/// A counter's value in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// How many were counted in this window.
    pub n: u64,
    /// Until the window ends and the count starts again from zero.
    pub resets_in: Duration,
}

impl Cache {
    /// Reads `counters` in Redis, bumping those asked, in one round trip;
    /// `None` when this cache has no Redis tier or Redis did not answer.
    pub async fn shared_counters(&self, counters: &[Counter<'_>]) -> Option<Vec<Count>> {
        let l2 = self.inner.l2.as_ref()?;
        let keys = counters
            .iter()
            .map(|counter| self.inner.keys.counter(counter.name))
            .collect();
        let windows: Vec<(Duration, bool)> = counters
            .iter()
            .map(|counter| (counter.window, counter.bump))
            .collect();
        let counts = l2.windows(keys, &windows).await?;
        Some(
            counts
                .into_iter()
                .map(|(n, resets_in)| Count { n, resets_in })
                .collect(),
        )
    }
}
