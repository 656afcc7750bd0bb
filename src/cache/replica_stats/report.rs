//! A deployment's stats as `biblio cache stats --json` prints them: the
//! snapshots' figures with their rates and percentiles worked out.
use super::{hit_rate, Deployment, Figures, RedisFigures};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A deployment's stats as `biblio cache stats --json` prints them: the
/// snapshots' figures with their rates and percentiles worked out, and
/// the total.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The deployment's key prefix.
    pub prefix: String,
    /// Redis's own figures, if it answered.
    pub redis: Option<RedisFigures>,
    /// Each replica, oldest first.
    pub replicas: Vec<ReplicaReport>,
    /// Every replica added up.
    pub total: FiguresReport,
}

/// One replica in a [`Report`].
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaReport {
    /// The replica's id on the bus.
    pub replica: String,
    /// The build it runs.
    pub version: String,
    /// Its cache mode.
    pub mode: String,
    /// When its cache started.
    pub started_at: DateTime<Utc>,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
    /// The last invalidation event's trip to it, in seconds.
    pub last_invalidation_lag_seconds: Option<f64>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: FiguresReport,
}

/// [`Figures`] with rates and percentiles worked out.
#[derive(Debug, Clone, Serialize)]
pub struct FiguresReport {
    /// Per tier and kind, with hit rates.
    pub tiers: Vec<TierReport>,
    /// Values loaded from the database after missing every tier.
    pub loads: u64,
    /// GraphQL requests since the start.
    pub requests: u64,
    /// GraphQL requests over the last minute.
    pub requests_last_minute: u64,
    /// Median request duration over the last minute, in seconds.
    pub latency_p50_seconds: Option<f64>,
    /// 99th percentile of the same.
    pub latency_p99_seconds: Option<f64>,
    /// Median invalidation event trip over the last minute, in seconds.
    pub invalidation_lag_p50_seconds: Option<f64>,
    /// 99th percentile of the same.
    pub invalidation_lag_p99_seconds: Option<f64>,
    /// L1's weighted size, in bytes.
    pub l1_bytes: u64,
    /// Entries in L1.
    pub l1_entries: u64,
    /// Writes' invalidations published.
    pub invalidations_published: u64,
    /// Other replicas' invalidations received.
    pub invalidations_received: u64,
}

/// One tier in a [`FiguresReport`].
#[derive(Debug, Clone, Serialize)]
pub struct TierReport {
    /// `response`, `l1` or `l2`.
    pub tier: String,
    /// Reads it answered.
    pub hits: u64,
    /// Reads it could not answer.
    pub misses: u64,
    /// hits / (hits + misses).
    pub hit_rate: Option<f64>,
    /// Per kind.
    pub kinds: Vec<KindReport>,
}

/// One kind in a [`TierReport`].
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// The kind, as `/metrics` labels it.
    pub kind: String,
    /// Reads the tier answered.
    pub hits: u64,
    /// Reads it could not answer.
    pub misses: u64,
    /// hits / (hits + misses).
    pub hit_rate: Option<f64>,
}

impl From<&Figures> for FiguresReport {
    fn from(figures: &Figures) -> Self {
        Self {
            tiers: figures
                .tiers
                .iter()
                .map(|tier| TierReport {
                    tier: tier.tier.clone(),
                    hits: tier.hits(),
                    misses: tier.misses(),
                    hit_rate: hit_rate(tier.hits(), tier.misses()),
                    kinds: tier
                        .kinds
                        .iter()
                        .map(|kind| KindReport {
                            kind: kind.kind.clone(),
                            hits: kind.hits,
                            misses: kind.misses,
                            hit_rate: hit_rate(kind.hits, kind.misses),
                        })
                        .collect(),
                })
                .collect(),
            loads: figures.loads,
            requests: figures.requests,
            requests_last_minute: figures.latency.count(),
            latency_p50_seconds: figures.latency.quantile(0.5),
            latency_p99_seconds: figures.latency.quantile(0.99),
            invalidation_lag_p50_seconds: figures.lag.quantile(0.5),
            invalidation_lag_p99_seconds: figures.lag.quantile(0.99),
            l1_bytes: figures.l1_bytes,
            l1_entries: figures.l1_entries,
            invalidations_published: figures.invalidations_published,
            invalidations_received: figures.invalidations_received,
        }
    }
}

impl Deployment {
    /// The report `--json` prints.
    pub fn report(&self) -> Report {
        Report {
            prefix: self.prefix.clone(),
            redis: self.redis.clone(),
            replicas: self
                .replicas
                .iter()
                .map(|snapshot| ReplicaReport {
                    replica: snapshot.replica.clone(),
                    version: snapshot.version.clone(),
                    mode: snapshot.mode.clone(),
                    started_at: snapshot.started_at,
                    taken_at: snapshot.taken_at,
                    last_invalidation_lag_seconds: snapshot.last_lag_seconds,
                    figures: FiguresReport::from(&snapshot.figures),
                })
                .collect(),
            total: FiguresReport::from(&self.total()),
        }
    }
}
