//! Fixed-window counters shared by every replica through Redis, for limits
//! that must hold across replicas (sign-in throttling). Like every L2 call,
//! a failed one is an answer of `None`, never a failed request: the caller
//! keeps its own count in process for that case.
//!
//! A limit is judged and counted in one script call ([`Cache::reserve`]),
//! so concurrent attempts cannot all read a count below the limit before
//! any of them adds to it: Redis runs one script at a time, and the n-th
//! attempt of a window sees the n - 1 before it.
use super::Cache;
use std::time::Duration;

/// One counter of an attempt.
pub struct Counter<'a> {
    /// Unique within the deployment; the key is built under its prefix.
    pub name: &'a str,
    /// The window a first count starts.
    pub window: Duration,
    /// The count at which attempts are refused.
    pub limit: u64,
    /// Whether a refused attempt counts too (attempts per address), or
    /// only one let through (failures reserved per e-mail).
    pub counts_refused: bool,
    /// The least the count can be: what this replica counted itself, which
    /// a Redis that restarted empty has forgotten.
    pub floor: u64,
    /// What is left of the window `floor` was counted in: a counter Redis
    /// lost is made again with it, so the floor does not start a window of
    /// its own (which could hold a lockout for nearly two windows).
    pub floor_resets_in: Duration,
}

/// A counter's value in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// How many were counted in this window, this attempt included when it
    /// counted.
    pub n: u64,
    /// Until the window ends and the count starts again from zero.
    pub resets_in: Duration,
    /// Whether this counter had reached its limit: the attempt was refused
    /// for it.
    pub refused: bool,
}

impl Cache {
    /// Judges an attempt against `counters` and counts it, in Redis, in one
    /// script call: refused if any counter has reached its limit; then
    /// every counter adds one if it was let through, and only those that
    /// count refusals if it was not. `None` when this cache has no Redis
    /// tier or Redis did not answer.
    pub async fn reserve(&self, counters: &[Counter<'_>]) -> Option<Vec<Count>> {
        let l2 = self.inner.l2.as_ref()?;
        let keys = counters
            .iter()
            .map(|counter| self.inner.keys.counter(counter.name))
            .collect();
        let args: Vec<[u64; 5]> = counters
            .iter()
            .map(|counter| {
                [
                    counter.window.as_millis().max(1) as u64,
                    counter.limit,
                    counter.floor,
                    u64::from(counter.counts_refused),
                    counter.floor_resets_in.as_millis() as u64,
                ]
            })
            .collect();
        let counts = l2.reserve(keys, &args).await?;
        Some(
            counts
                .into_iter()
                .map(|(n, resets_in, refused)| Count {
                    n,
                    resets_in,
                    refused,
                })
                .collect(),
        )
    }

    /// How many replicas of the deployment this one last saw alive: the
    /// subscribers its last heartbeat reached, kept while Redis is away;
    /// 1 without Redis or before the first heartbeat. While Redis cannot
    /// count for the deployment, each replica counts alone, and a limit
    /// divided by this keeps their sum within it.
    pub fn replicas_seen(&self) -> u64 {
        self.inner.sync.replicas()
    }

    /// Gives back one count of the counter `name` (a reservation the
    /// attempt turned out not to need); `false` when Redis did not answer.
    pub async fn release(&self, name: &str) -> bool {
        let Some(l2) = self.inner.l2.as_ref() else {
            return false;
        };
        l2.release(self.inner.keys.counter(name)).await
    }
}
