//! What an operator chooses about the cache ([`Settings`], [`Mode`],
//! [`Ttls`]) and what it reports back ([`Health`]).
use super::keys::Kind;
use crate::redis::keyspace::text_hash;
use std::time::Duration;

/// Which tiers serve reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Every read goes to the database.
    Off,
    /// In-process only. Without Redis there are no events, so L1 entries
    /// live at most the untrusted cap: the bound holds across replicas.
    L1,
    /// Redis only.
    L2,
    /// L1 in front of Redis, kept honest by the bus: the default.
    Both,
}

impl Mode {
    /// Whether this mode uses Redis, and so the invalidation bus.
    pub fn uses_l2(self) -> bool {
        matches!(self, Mode::L2 | Mode::Both)
    }
}

/// Time-to-live per kind of value, in L2; L1 uses the same, capped by `l1_max`.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    /// Entities and counts by id: writes evict them, so this only bounds memory.
    pub entity: Duration,
    /// Public list pages: writes move their groups, so this too is a backstop.
    pub list: Duration,
    /// A member's borrow pages, apart from `list` so private data can be kept
    /// for less time.
    pub private: Duration,
    /// The aggregate: once it expires, one refresh runs while the old value is
    /// served, so this sets how often it is recomputed.
    pub statistics: Duration,
    /// Negative entries: short, since they only absorb repeated lookups of a
    /// missing id.
    pub negative: Duration,
    /// The longest any L1 entry lives (capped at `entity` when the cache is
    /// built).
    pub l1_max: Duration,
    /// Each TTL is shortened by a random fraction up to this, so entries
    /// filled together do not expire together.
    pub jitter: f64,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            entity: Duration::from_secs(300),
            list: Duration::from_secs(60),
            private: Duration::from_secs(60),
            statistics: Duration::from_secs(30),
            negative: Duration::from_secs(5),
            l1_max: Duration::from_secs(60),
            jitter: 0.1,
        }
    }
}

impl Ttls {
    /// The L2 lifetime of a value of `kind` (`absent`: a negative entry).
    pub(super) fn l2(&self, kind: Kind, absent: bool) -> Duration {
        if absent {
            return self.negative;
        }
        match kind {
            Kind::Book
            | Kind::Author
            | Kind::Category
            | Kind::User
            | Kind::Borrow
            | Kind::AuthorBookCount
            | Kind::CategoryBookCount => self.entity,
            Kind::BookPage
            | Kind::SearchPage
            | Kind::SearchTotal
            | Kind::AuthorPage
            | Kind::AuthorBooksPage
            | Kind::CategoryList => self.list,
            Kind::BorrowPage => self.private,
            Kind::Statistics => self.statistics,
        }
    }

    /// The L1 lifetime: the L2 one, capped.
    pub(super) fn l1(&self, kind: Kind, absent: bool) -> Duration {
        self.l2(kind, absent).min(self.l1_max)
    }

    /// `ttl` cut by a pseudo-random fraction up to `jitter`.
    pub(super) fn jittered(&self, ttl: Duration, key: &str) -> Duration {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let noise = (text_hash(key) ^ u64::from(nanos)) % 10_000;
        let cut = self.jitter.clamp(0.0, 0.9) * (noise as f64 / 10_000.0);
        ttl.mul_f64(1.0 - cut).max(Duration::from_millis(1))
    }
}

/// Everything an operator chooses about the cache. The defaults are the
/// values the bounds in the [module docs](super) are stated for (1 s cap,
/// 500 ms silence and outbox delay).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which tiers serve reads.
    pub mode: Mode,
    /// Prefix of every key. `None`: `biblio-{deployment id}`, so replicas of
    /// one database share entries and two databases never do.
    pub prefix: Option<String>,
    /// The Redis of L2 and the bus. Unreachable at start is an outage the cache
    /// recovers from, not an error.
    pub redis_url: String,
    /// The CA certificates (PEM) a `rediss://` server must chain to; `None`:
    /// the system's trusted roots.
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// L1's memory budget, weighed as encoded size plus bookkeeping per entry.
    pub l1_max_bytes: u64,
    /// How long entries live, per kind.
    pub ttls: Ttls,
    /// How long L1 entries may be served while invalidation events are not
    /// known to arrive: the staleness bound during a Redis fault.
    pub untrusted_cap: Duration,
    /// How long the bus may be silent (no heartbeat of this replica's heard
    /// back) before L1 and L2 are no longer trusted. Heartbeats are sent five
    /// times per this interval.
    pub bus_silence: Duration,
    /// How old an outbox entry must be before any replica publishes it (its
    /// writer normally does so at once).
    pub outbox_delay: Duration,
    /// How long one Redis call may take before it is given up and read as a
    /// miss.
    pub command_timeout: Duration,
    /// How long Redis is left alone after a failure before one call probes it,
    /// so a dead Redis costs at most one timeout per interval.
    pub breaker_interval: Duration,
    /// How often each replica publishes its stats snapshot to Redis; a
    /// snapshot lives three intervals.
    pub stats_interval: Duration,
    /// Whether this process publishes stats snapshots at all: a replica
    /// does; an operator's command (`biblio cache warm`, `clear`) serves
    /// nobody and would show up as a replica that is not there.
    pub publishes_stats: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Both,
            prefix: None,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_ca_file: None,
            l1_max_bytes: 64 * 1024 * 1024,
            ttls: Ttls::default(),
            untrusted_cap: Duration::from_secs(1),
            bus_silence: Duration::from_millis(500),
            outbox_delay: Duration::from_millis(500),
            command_timeout: Duration::from_millis(250),
            breaker_interval: Duration::from_secs(1),
            stats_interval: Duration::from_secs(2),
            publishes_stats: true,
        }
    }
}

impl Settings {
    /// The key prefix for the deployment whose database has this id.
    pub fn key_prefix(&self, deployment_id: &str) -> String {
        self.prefix
            .clone()
            .unwrap_or_else(|| format!("biblio-{deployment_id}"))
    }
}

/// The state of the cache tiers, for `/readyz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    /// The configured [`Mode`], in lower case.
    pub mode: String,
    /// "up", "degraded" (Redis unreachable or the bus silent: serving from
    /// L1 within the cap and the database) or "disabled".
    pub status: &'static str,
    /// The key prefix, to tell which deployment's keys this replica uses.
    pub prefix: String,
    /// L1's current weighted size, to compare with `l1_max_bytes`.
    pub l1_bytes: u64,
    /// "connected", "disconnected" or "none".
    pub subscriber: &'static str,
    /// Redis's deployment: "single", "sentinel" or "cluster"; absent
    /// without Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology: Option<&'static str>,
    /// The primaries this replica writes to (`host:port`; on a Cluster,
    /// every one).
    pub primaries: Vec<String>,
    /// The node the invalidation subscriber listens on, while connected.
    pub subscriber_node: Option<String>,
    /// Whether this replica hears its own heartbeats on the bus, so that it
    /// trusts L1 and reads L2.
    pub bus_trusted: bool,
    /// Invalidations this replica committed but has not published yet.
    pub pending_invalidations: usize,
    /// The namespace this replica reads under: after `biblio cache clear`,
    /// every replica shows the new one once it has dropped its copies.
    pub namespace: u64,
}
