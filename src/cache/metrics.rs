//! Hit and miss counters per tier and per kind, and the Redis round trips
//! made. Tests assert on them; the monitoring work will export them.
use super::keys::Kind;
use std::sync::atomic::{AtomicU64, Ordering};

const KINDS: usize = Kind::ALL.len();

/// The cache's counters, shared by every clone of the cache. Relaxed atomics:
/// each counter is read on its own, so none needs ordering with another.
#[derive(Default)]
pub struct Metrics {
    l1_hits: [AtomicU64; KINDS],
    l1_misses: [AtomicU64; KINDS],
    l2_hits: [AtomicU64; KINDS],
    l2_misses: [AtomicU64; KINDS],
    /// Values loaded from the database after missing every tier.
    loads: [AtomicU64; KINDS],
    redis_round_trips: AtomicU64,
    events_received: AtomicU64,
    /// Invalidations published late: after an outage, or from the outbox.
    replayed: AtomicU64,
    responses: [AtomicU64; 6],
    /// Entries Redis stored from fills (those the guards let through), and
    /// their encoded bytes: what `biblio cache warm` reports.
    l2_filled_entries: AtomicU64,
    l2_filled_bytes: AtomicU64,
}

/// What fills stored in Redis, as of some moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filled {
    /// Entries stored.
    pub entries: u64,
    /// Their encoded bytes (values only, not keys).
    pub bytes: u64,
}

/// What the response tier (whole answers, `http::responses`) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseCounts {
    /// Queries answered from a kept answer: executions skipped.
    pub hits: u64,
    /// Queries executed because no valid answer was kept.
    pub misses: u64,
    /// Answers kept after execution.
    pub stored: u64,
    /// Answers not kept though the query succeeded: something they read
    /// changed while they ran, the bus was not heard, or they were too large.
    pub refused: u64,
    /// Revalidations answered 304 from a kept answer, without executing.
    pub not_modified: u64,
    /// Kept answers compressed in one more coding (each at most once per
    /// coding).
    pub compressed: u64,
}

/// One event of the response tier, for [`Metrics::response`].
#[derive(Debug, Clone, Copy)]
pub enum ResponseEvent {
    /// See [`ResponseCounts::hits`].
    Hit,
    /// See [`ResponseCounts::misses`].
    Miss,
    /// See [`ResponseCounts::stored`].
    Stored,
    /// See [`ResponseCounts::refused`].
    Refused,
    /// See [`ResponseCounts::not_modified`].
    NotModified,
    /// See [`ResponseCounts::compressed`].
    Compressed,
}

/// The counters for one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// Reads answered by this process's L1.
    pub l1_hits: u64,
    /// Reads L1 could not answer (absent, expired, or not trusted).
    pub l1_misses: u64,
    /// L1 misses that Redis answered.
    pub l2_hits: u64,
    /// L1 misses that Redis could not answer.
    pub l2_misses: u64,
    /// Values loaded from the database after missing every tier.
    pub loads: u64,
}

fn add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Records one pass over L1 for a batch of `kind`.
    pub fn l1(&self, kind: Kind, hits: usize, misses: usize) {
        add(&self.l1_hits[kind.index()], hits as u64);
        add(&self.l1_misses[kind.index()], misses as u64);
    }

    /// Records one MGET's outcome for a batch of `kind`.
    pub fn l2(&self, kind: Kind, hits: usize, misses: usize) {
        add(&self.l2_hits[kind.index()], hits as u64);
        add(&self.l2_misses[kind.index()], misses as u64);
    }

    /// Records `n` values of `kind` loaded from the database.
    pub fn loaded(&self, kind: Kind, n: usize) {
        add(&self.loads[kind.index()], n as u64);
    }

    /// Records one Redis call; tests assert batching by counting these.
    pub fn redis_round_trip(&self) {
        add(&self.redis_round_trips, 1);
    }

    /// Records one invalidation event from another replica.
    pub fn event_received(&self) {
        add(&self.events_received, 1);
    }

    /// Records `n` invalidations published late (after an outage, or from the
    /// outbox).
    pub fn replayed(&self, n: u64) {
        add(&self.replayed, n);
    }

    /// Invalidations published late so far: tests of outages assert on it.
    pub fn replays(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Records one event of the response tier.
    pub fn response(&self, event: ResponseEvent) {
        add(&self.responses[event as usize], 1);
    }

    /// The response tier's counters as of now.
    pub fn responses(&self) -> ResponseCounts {
        let get = |event: ResponseEvent| self.responses[event as usize].load(Ordering::Relaxed);
        ResponseCounts {
            hits: get(ResponseEvent::Hit),
            misses: get(ResponseEvent::Miss),
            stored: get(ResponseEvent::Stored),
            refused: get(ResponseEvent::Refused),
            not_modified: get(ResponseEvent::NotModified),
            compressed: get(ResponseEvent::Compressed),
        }
    }

    /// One kind's counters as of now, for tests and export.
    pub fn kind(&self, kind: Kind) -> KindCounts {
        let i = kind.index();
        let get = |counters: &[AtomicU64; KINDS]| counters[i].load(Ordering::Relaxed);
        KindCounts {
            l1_hits: get(&self.l1_hits),
            l1_misses: get(&self.l1_misses),
            l2_hits: get(&self.l2_hits),
            l2_misses: get(&self.l2_misses),
            loads: get(&self.loads),
        }
    }

    /// Redis calls made so far: how tests prove a batch is one round trip.
    pub fn redis_round_trips(&self) -> u64 {
        self.redis_round_trips.load(Ordering::Relaxed)
    }

    /// Records one fill script's stores.
    pub fn l2_filled(&self, entries: u64, bytes: u64) {
        add(&self.l2_filled_entries, entries);
        add(&self.l2_filled_bytes, bytes);
    }

    /// What fills have stored in Redis so far.
    pub fn filled(&self) -> Filled {
        Filled {
            entries: self.l2_filled_entries.load(Ordering::Relaxed),
            bytes: self.l2_filled_bytes.load(Ordering::Relaxed),
        }
    }

    /// Events from other replicas heard so far: how tests prove an event
    /// arrived.
    pub fn events_received(&self) -> u64 {
        self.events_received.load(Ordering::Relaxed)
    }
}
