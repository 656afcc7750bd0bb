//! The cache's counters: hits, misses and loads per tier and kind, what
//! the race guards refused, single-flight joins, invalidation events and
//! their delivery lag, and Redis calls by command. Tests assert on them
//! through [`Cache::metrics`](super::Cache::metrics); `/metrics` exports
//! them ([`Export`]) and the stats snapshots publish them (`stats`).
//!
//! They live here, next to what they count, as plain relaxed atomics:
//! every read of every request bumps some, so each is one atomic add, and
//! the Prometheus families are written from them only when scraped. Gauges
//! (L1 size, the bus's state, the breaker) are read from the cache itself
//! at that moment rather than mirrored.
use super::keys::Kind;
use crate::metrics::histogram::{Histogram, LAG_SECONDS};
use crate::metrics::Window;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

const KINDS: usize = Kind::ALL.len();

/// The Redis calls counted apart, as `l2` names them (`what`), and their
/// labels; anything else is counted as `other`.
const COMMANDS: [(&str, &str); 14] = [
    ("mget", "mget"),
    ("fill", "fill"),
    ("get sequence", "get_sequence"),
    ("get generation", "get_generation"),
    ("invalidate", "invalidate"),
    ("count", "count"),
    ("heartbeat", "heartbeat"),
    ("mget values", "mget_values"),
    ("set value", "set_value"),
    ("stats", "stats"),
    ("clear", "clear"),
    ("unlink", "unlink"),
    ("primary", "primary"),
    ("other", "other"),
];

fn command_index(what: &str) -> usize {
    COMMANDS
        .iter()
        .position(|(name, _)| *name == what)
        .unwrap_or(COMMANDS.len() - 1)
}

/// How one Redis call ended, as the gateway reports it.
pub use crate::redis::Outcome;

/// A tier whose fills a race guard may refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillTier {
    /// An L1 insert or priming whose stripe epoch or invalidation count
    /// moved since its ticket was taken.
    L1,
    /// An L2 entry whose version (or the sequence) moved since it was read.
    L2,
}

/// The cache's counters, shared by every clone of the cache. Relaxed atomics:
/// each counter is read on its own, so none needs ordering with another.
pub struct Metrics {
    l1_hits: [AtomicU64; KINDS],
    l1_misses: [AtomicU64; KINDS],
    l2_hits: [AtomicU64; KINDS],
    l2_misses: [AtomicU64; KINDS],
    /// Values loaded from the database after missing every tier.
    loads: [AtomicU64; KINDS],
    /// Readers that waited for another reader's load of the same key.
    flight_joins: [AtomicU64; KINDS],
    /// Fills the race guards refused, by [`FillTier`].
    fills_refused: [AtomicU64; 2],
    redis_round_trips: AtomicU64,
    /// Every Redis call, the background ones included, by command: calls,
    /// timeouts, other failures.
    redis_calls: [[AtomicU64; COMMANDS.len()]; 3],
    /// Writes' invalidations this replica published at once.
    events_published: AtomicU64,
    events_received: AtomicU64,
    /// Invalidations published late: after an outage, or from the outbox.
    replayed: AtomicU64,
    /// Times the subscriber fell behind and messages were dropped before
    /// they were read (each a gap: L1 and the kept answers dropped), and
    /// how many messages those dropped.
    bus_lagged: AtomicU64,
    bus_dropped: AtomicU64,
    /// Times this replica found a Redis primary a failover had promoted and
    /// moved the namespace for it (Sentinel; see `redis::scripts` PRIMARY).
    failovers: AtomicU64,
    /// Rows of `cache_changes` (other programs' writes) this replica
    /// turned into invalidations.
    foreign_changes: AtomicU64,
    /// Times a backlog of other programs' writes too long to name row by
    /// row made this replica clear the whole cache instead.
    foreign_clears: AtomicU64,
    /// Invalidations of other programs' writes this replica published
    /// before taking the rows (duplicates of the taker's; see `foreign`).
    foreign_early: AtomicU64,
    /// Events' trips from their publisher to this replica.
    lag: Histogram,
    /// The same over the last minute, for the stats snapshots.
    lag_window: Window,
    /// The last trip's length, in nanoseconds, plus one (0: none yet).
    last_lag: AtomicU64,
    responses: [AtomicU64; 8],
    /// Request durations, fed by the HTTP layer, so that the stats
    /// snapshot a replica publishes can show its latency next to its hits.
    requests: Window,
    /// When the cache was built, as the stats snapshots report it.
    started_at: SystemTime,
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

impl Default for Metrics {
    fn default() -> Self {
        Self {
            l1_hits: Default::default(),
            l1_misses: Default::default(),
            l2_hits: Default::default(),
            l2_misses: Default::default(),
            loads: Default::default(),
            flight_joins: Default::default(),
            fills_refused: Default::default(),
            redis_round_trips: AtomicU64::new(0),
            redis_calls: Default::default(),
            events_published: AtomicU64::new(0),
            events_received: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            bus_lagged: AtomicU64::new(0),
            bus_dropped: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            foreign_changes: AtomicU64::new(0),
            foreign_early: AtomicU64::new(0),
            foreign_clears: AtomicU64::new(0),
            lag: Histogram::new(LAG_SECONDS),
            lag_window: Window::default(),
            last_lag: AtomicU64::new(0),
            responses: Default::default(),
            requests: Window::default(),
            started_at: SystemTime::now(),
            l2_filled_entries: AtomicU64::new(0),
            l2_filled_bytes: AtomicU64::new(0),
        }
    }
}

/// What the response tier (whole answers, `crate::responses`) did.
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
    /// Queries that missed while the same query was executing, and waited
    /// for it.
    pub waited: u64,
    /// Waiting queries answered with the answer that execution kept:
    /// executions skipped. The rest are counted as misses and executed.
    pub joined: u64,
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
    /// See [`ResponseCounts::waited`].
    Waited,
    /// See [`ResponseCounts::joined`].
    Joined,
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

    /// Records a gap in the bus: the subscriber fell behind and `dropped`
    /// messages were lost before they were read.
    pub fn bus_lagged(&self, dropped: u64) {
        add(&self.bus_lagged, 1);
        add(&self.bus_dropped, dropped);
    }

    /// Gaps from a lagging subscriber so far, and the messages they dropped.
    pub fn bus_lags(&self) -> (u64, u64) {
        (
            self.bus_lagged.load(Ordering::Relaxed),
            self.bus_dropped.load(Ordering::Relaxed),
        )
    }

    /// Records a promoted primary this replica moved the namespace for.
    pub fn failover(&self) {
        add(&self.failovers, 1);
    }

    /// Promoted primaries this replica moved the namespace for so far.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Records `n` rows of other programs' writes turned into one invalidation.
    pub fn foreign_changes(&self, n: u64) {
        add(&self.foreign_changes, n);
    }

    /// Records a backlog of other programs' writes answered by a clear.
    pub fn foreign_cleared(&self) {
        add(&self.foreign_clears, 1);
    }

    /// Rows of other programs' writes this replica turned into invalidations.
    pub fn foreign_changes_taken(&self) -> u64 {
        self.foreign_changes.load(Ordering::Relaxed)
    }

    /// Records an invalidation of other programs' writes published before
    /// they were taken.
    pub fn foreign_published_early(&self) {
        add(&self.foreign_early, 1);
    }

    /// Invalidations of other programs' writes published before they were
    /// taken (each a duplicate of the taker's publication).
    pub fn foreign_early(&self) -> u64 {
        self.foreign_early.load(Ordering::Relaxed)
    }

    /// Backlogs of other programs' writes this replica answered with a clear.
    pub fn foreign_clears(&self) -> u64 {
        self.foreign_clears.load(Ordering::Relaxed)
    }

    /// Invalidations published late so far: tests of outages assert on it.
    pub fn replays(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Records a reader that joined another's load of `kind` instead of
    /// loading it again.
    pub fn flight_joined(&self, kind: Kind) {
        add(&self.flight_joins[kind.index()], 1);
    }

    /// Records `n` fills of `tier` that a race guard refused.
    pub fn fills_refused(&self, tier: FillTier, n: usize) {
        add(&self.fills_refused[tier as usize], n as u64);
    }

    /// Records how one Redis call (`what`, as `l2` names it) ended.
    pub fn redis_call(&self, what: &str, outcome: Outcome) {
        let command = command_index(what);
        add(&self.redis_calls[0][command], 1);
        match outcome {
            Outcome::Answered => {}
            Outcome::TimedOut => add(&self.redis_calls[1][command], 1),
            Outcome::Failed => add(&self.redis_calls[2][command], 1),
        }
    }

    /// Records a write's invalidation published at once.
    pub fn event_published(&self) {
        add(&self.events_published, 1);
    }

    /// Records the trip of an event from its publisher to this replica.
    pub fn lag(&self, lag: Duration) {
        self.lag.observe(lag);
        self.lag_window.observe(Instant::now(), lag);
        let nanos = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX - 1);
        self.last_lag.store(nanos + 1, Ordering::Relaxed);
    }

    /// Records one GraphQL request's duration, observed at `now`.
    pub fn request(&self, now: Instant, duration: Duration) {
        self.requests.observe(now, duration);
    }

    /// Request durations, for the stats snapshot.
    pub fn requests(&self) -> &Window {
        &self.requests
    }

    /// Invalidation events' trips here over the last minute.
    pub fn lag_window(&self) -> &Window {
        &self.lag_window
    }

    /// The last event's trip here, if one came.
    pub fn last_lag(&self) -> Option<Duration> {
        match self.last_lag.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos - 1)),
        }
    }

    /// When the cache was built.
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Writes' invalidations this replica published at once.
    pub fn events_published(&self) -> u64 {
        self.events_published.load(Ordering::Relaxed)
    }

    /// Readers that joined another's load of `kind`.
    pub fn flight_joins(&self, kind: Kind) -> u64 {
        self.flight_joins[kind.index()].load(Ordering::Relaxed)
    }

    /// Fills of `tier` refused by a race guard.
    pub fn refused_fills(&self, tier: FillTier) -> u64 {
        self.fills_refused[tier as usize].load(Ordering::Relaxed)
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
            waited: get(ResponseEvent::Waited),
            joined: get(ResponseEvent::Joined),
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

/// What the cache is holding and how it hears the bus, read when asked
/// (see [`Cache::gauges`](super::Cache::gauges)).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gauges {
    /// Entries in L1.
    pub l1_entries: u64,
    /// L1's weighted size, in bytes.
    pub l1_bytes: u64,
    /// Invalidations this replica committed but has not yet published.
    pub pending_invalidations: u64,
    /// Since when the last heartbeat heard back was sent (since the cache
    /// started if none came back yet); `None` without a bus.
    pub heartbeat_age: Option<Duration>,
    /// Whether the bus's subscriber is connected; `None` without a bus.
    pub subscriber_connected: Option<bool>,
    /// Whether the bus is heard, so L1 is trusted and L2 read.
    pub trusted: bool,
    /// Whether Redis's breaker is open; `None` without Redis.
    pub breaker_open: Option<bool>,
}

mod export;

pub use export::Export;
