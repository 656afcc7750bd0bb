//! `cacheStats`'s types: a deployment's stats snapshots (`cache::replica_stats`)
//! as GraphQL, with hit rates and percentiles worked out.
use crate::cache::replica_stats::{self, Deployment, Figures, KindFigures, Snapshot, TierFigures};
use async_graphql::{Object, SimpleObject};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The cache's figures, per replica and for the whole deployment, from the
/// snapshots every replica publishes to Redis every few seconds. Counts
/// are since each replica started; they are 64-bit and may exceed 2^31.
pub struct CacheStats(pub Arc<Deployment>);

#[Object]
impl CacheStats {
    /// The deployment's key prefix in Redis.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// Every replica whose snapshot has not expired (a stopped replica's
    /// expires after three publication intervals), oldest first; the
    /// replica answering gives its figures as of now.
    async fn replicas(&self) -> Vec<ReplicaCacheStats> {
        self.0
            .replicas
            .iter()
            .cloned()
            .map(ReplicaCacheStats)
            .collect()
    }

    /// Every replica's figures added up; percentiles are over every
    /// replica's requests and events, not averages of theirs.
    async fn total(&self) -> CacheFigures {
        CacheFigures(self.0.total())
    }

    /// Redis's own figures; null when it did not answer (then `replicas`
    /// holds only the replica answering).
    async fn redis(&self) -> Option<RedisStats> {
        self.0.redis.as_ref().map(|redis| RedisStats {
            version: redis.version.clone(),
            used_memory_bytes: redis.used_memory_bytes,
            connected_clients: redis.connected_clients,
            keys: redis.keys,
            keys_complete: redis.keys_complete,
        })
    }
}

/// One replica's snapshot.
pub struct ReplicaCacheStats(Snapshot);

#[Object]
impl ReplicaCacheStats {
    /// The replica's id on the invalidation bus.
    async fn replica(&self) -> &str {
        &self.0.replica
    }

    /// The version of biblio it runs.
    async fn version(&self) -> &str {
        &self.0.version
    }

    /// Its cache mode (`off`, `l1`, `l2`, `both`).
    async fn mode(&self) -> &str {
        &self.0.mode
    }

    /// When its cache started.
    async fn started_at(&self) -> DateTime<Utc> {
        self.0.started_at
    }

    /// When the snapshot was taken.
    async fn taken_at(&self) -> DateTime<Utc> {
        self.0.taken_at
    }

    /// The last invalidation event's trip to it, in seconds.
    async fn last_invalidation_lag_seconds(&self) -> Option<f64> {
        self.0.last_lag_seconds
    }

    /// Its counters.
    async fn figures(&self) -> CacheFigures {
        CacheFigures(self.0.figures.clone())
    }
}

/// Hits, misses, requests, latency, invalidation lag and L1's size.
pub struct CacheFigures(Figures);

#[Object]
impl CacheFigures {
    /// Per tier: `response` (whole answers), `l1` (in process), `l2`
    /// (Redis), each with its kinds; a tier never read is left out.
    async fn tiers(&self) -> Vec<TierStats> {
        self.0.tiers.iter().map(TierStats::from).collect()
    }

    /// Values loaded from the database after missing every tier.
    async fn loads(&self) -> u64 {
        self.0.loads
    }

    /// GraphQL requests since the start.
    async fn requests(&self) -> u64 {
        self.0.requests
    }

    /// GraphQL requests over the last minute.
    async fn requests_last_minute(&self) -> u64 {
        self.0.latency.count()
    }

    /// Median GraphQL request duration over the last minute, in seconds
    /// (within a bucket, about 19%, of the true value).
    async fn latency_p50_seconds(&self) -> Option<f64> {
        self.0.latency.quantile(0.5)
    }

    /// 99th percentile of the same.
    async fn latency_p99_seconds(&self) -> Option<f64> {
        self.0.latency.quantile(0.99)
    }

    /// Median trip of an invalidation event from its publisher, over the
    /// last minute, in seconds.
    async fn invalidation_lag_p50_seconds(&self) -> Option<f64> {
        self.0.lag.quantile(0.5)
    }

    /// 99th percentile of the same.
    async fn invalidation_lag_p99_seconds(&self) -> Option<f64> {
        self.0.lag.quantile(0.99)
    }

    /// L1's weighted size, in bytes.
    async fn l1_bytes(&self) -> u64 {
        self.0.l1_bytes
    }

    /// Entries in L1.
    async fn l1_entries(&self) -> u64 {
        self.0.l1_entries
    }

    /// Writes' invalidations published.
    async fn invalidations_published(&self) -> u64 {
        self.0.invalidations_published
    }

    /// Other replicas' invalidations received.
    async fn invalidations_received(&self) -> u64 {
        self.0.invalidations_received
    }
}

/// One tier's hits and misses.
#[derive(SimpleObject)]
pub struct TierStats {
    /// `response`, `l1` or `l2`.
    tier: String,
    /// Reads it answered.
    hits: u64,
    /// Reads it could not answer.
    misses: u64,
    /// hits / (hits + misses); null before any read.
    hit_rate: Option<f64>,
    /// Per kind of value (`answer` for the response tier).
    kinds: Vec<KindStats>,
}

impl From<&TierFigures> for TierStats {
    fn from(tier: &TierFigures) -> Self {
        let (hits, misses) = (tier.hits(), tier.misses());
        Self {
            tier: tier.tier.clone(),
            hits,
            misses,
            hit_rate: replica_stats::hit_rate(hits, misses),
            kinds: tier.kinds.iter().map(KindStats::from).collect(),
        }
    }
}

/// One kind's hits and misses in one tier.
#[derive(SimpleObject)]
pub struct KindStats {
    /// The kind, as `/metrics` labels it (`book`, `books`, `statistics`…).
    kind: String,
    /// Reads the tier answered.
    hits: u64,
    /// Reads it could not answer.
    misses: u64,
    /// hits / (hits + misses); null before any read.
    hit_rate: Option<f64>,
}

impl From<&KindFigures> for KindStats {
    fn from(kind: &KindFigures) -> Self {
        Self {
            kind: kind.kind.clone(),
            hits: kind.hits,
            misses: kind.misses,
            hit_rate: replica_stats::hit_rate(kind.hits, kind.misses),
        }
    }
}

/// What Redis says of itself and of this deployment's keys.
#[derive(SimpleObject)]
pub struct RedisStats {
    /// Its version (`redis_version` in `INFO`).
    version: String,
    /// Memory it uses, in bytes (`used_memory`).
    used_memory_bytes: u64,
    /// Clients connected to it (`connected_clients`).
    connected_clients: u64,
    /// Keys under this deployment's prefix.
    keys: u64,
    /// Whether `keys` is exact: counting stops after 100,000 keys of the
    /// keyspace have been scanned, and is then a lower bound.
    keys_complete: bool,
}
