//! Fixed-window counters shared by every replica through Redis, for limits
//! that must hold across replicas (sign-in throttling). Like every gateway call,
//! a failed one is an answer of `None`, never a failed request: the caller
//! keeps its own count in process for that case.
//!
//! A limit is judged and counted in one script call ([`Gateway::reserve`]),
//! so concurrent attempts cannot all read a count below the limit before
//! any of them adds to it: Redis runs one script at a time, and the n-th
//! attempt of a window sees the n - 1 before it.
use super::Gateway;
use fred::prelude::*;
use std::time::Duration;

/// The name of the counter of an e-mail's failed sign-ins, by the e-mail's
/// hash: Redis holds no one's e-mail.
pub fn email_failures(email_hash: &str) -> String {
    format!("signin:email:{email_hash}")
}

/// The name of the counter of a client's sign-in attempts, by its address
/// (or IPv6 network) as counted.
pub fn address_attempts(client: &str) -> String {
    format!("signin:address:{client}")
}

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

impl Gateway {
    /// Judges an attempt against `counters` and counts it, in Redis, in one
    /// script call (`RESERVE`): refused if any counter has reached its
    /// limit; then every counter adds one if it was let through, and only
    /// those that count refusals if it was not. `None` when Redis did not
    /// answer.
    pub async fn reserve(&self, counters: &[Counter<'_>]) -> Option<Vec<Count>> {
        let keys: Vec<String> = counters
            .iter()
            .map(|counter| self.keys.counter(counter.name))
            .collect();
        let number = |n: u64| Value::from(i64::try_from(n).unwrap_or(i64::MAX));
        let args: Vec<Value> = counters
            .iter()
            .flat_map(|counter| {
                [
                    counter.window.as_millis().max(1) as u64,
                    counter.limit,
                    counter.floor,
                    u64::from(counter.counts_refused),
                    counter.floor_resets_in.as_millis() as u64,
                ]
            })
            .map(number)
            .collect();
        let reply: Vec<i64> = self
            .call(
                "count",
                self.scripts
                    .reserve
                    .evalsha_with_reload(&self.writes, keys, args),
            )
            .await?;
        Some(
            reply
                .chunks(3)
                .map(|triple| {
                    let at = |i: usize| triple.get(i).copied().unwrap_or(0).max(0) as u64;
                    Count {
                        n: at(0),
                        resets_in: Duration::from_millis(at(1)),
                        refused: at(2) == 1,
                    }
                })
                .collect(),
        )
    }

    /// Gives back one count of the counter `name` (`RELEASE`: a reservation
    /// the attempt turned out not to need), never below zero; `false` when
    /// Redis did not answer.
    pub async fn release(&self, name: &str) -> bool {
        self.call::<i64, _>(
            "count",
            self.scripts.release.evalsha_with_reload(
                &self.writes,
                vec![self.keys.counter(name)],
                Vec::<Value>::new(),
            ),
        )
        .await
        .is_some()
    }
}
