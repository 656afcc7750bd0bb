//! The cache's own statistics across replicas (`cacheStats`, `biblio
//! cache stats`): every replica publishes a snapshot of its figures to
//! Redis every few seconds ([`crate::redis::stats_snapshots`] keeps them),
//! so any replica, or the CLI with no replica running, can show every
//! replica at once and the deployment in total. Latencies and lags travel
//! as bucketed [`Summary`]s, so the total's percentiles are those of every
//! request of every replica, not an average of percentiles.
//!
//! Here: the figures and how they add up, taking and publishing this
//! replica's snapshot, and reading the deployment's; `report` works out
//! rates and percentiles for `--json`, `table` renders them for people.
//! (Not to be confused with `catalogue_statistics`, the cache of
//! the catalogue's `statistics` answer.)
mod report;
mod table;

pub use crate::redis::stats_snapshots::RedisFigures;
pub use report::{FiguresReport, KindReport, ReplicaReport, Report, TierReport};
pub use table::bytes;

use super::keys::Kind;
use super::{Cache, Inner};
use crate::metrics::Summary;
use crate::redis::Connection;
use chrono::{DateTime, Utc};
use fred::prelude::Error;
use serde::{Deserialize, Serialize};
use std::sync::Weak;
use std::time::{Duration, Instant};

/// Hits and misses of one kind in one tier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindFigures {
    /// The kind, as metrics label it (`book`, `books`, … or `answer` for
    /// the response tier's whole answers).
    pub kind: String,
    /// Reads the tier answered.
    pub hits: u64,
    /// Reads it could not answer.
    pub misses: u64,
}

/// One tier's hits and misses, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierFigures {
    /// `response`, `l1` or `l2`.
    pub tier: String,
    /// Kinds with any read, in the order of [`Kind::ALL`].
    pub kinds: Vec<KindFigures>,
}

impl TierFigures {
    /// Reads the tier answered, all kinds.
    pub fn hits(&self) -> u64 {
        self.kinds.iter().map(|kind| kind.hits).sum()
    }

    /// Reads it could not answer, all kinds.
    pub fn misses(&self) -> u64 {
        self.kinds.iter().map(|kind| kind.misses).sum()
    }
}

/// hits / (hits + misses), `None` before any read.
pub fn hit_rate(hits: u64, misses: u64) -> Option<f64> {
    let reads = hits + misses;
    (reads > 0).then(|| hits as f64 / reads as f64)
}

/// What a replica counts, and what a deployment's total adds up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Per tier (`response`, `l1`, `l2`) and kind.
    pub tiers: Vec<TierFigures>,
    /// Values loaded from the database after missing every tier.
    pub loads: u64,
    /// GraphQL requests since the start.
    pub requests: u64,
    /// GraphQL request durations over the last minute.
    pub latency: Summary,
    /// Invalidation events' trips here over the last minute.
    pub lag: Summary,
    /// L1's weighted size, in bytes.
    pub l1_bytes: u64,
    /// Entries in L1.
    pub l1_entries: u64,
    /// Writes' invalidations published.
    pub invalidations_published: u64,
    /// Other replicas' invalidations heard.
    pub invalidations_received: u64,
}

impl Figures {
    /// Adds `other`'s figures to these: counts sum, durations merge.
    pub fn add(&mut self, other: &Figures) {
        for tier in &other.tiers {
            let mine = match self.tiers.iter_mut().position(|t| t.tier == tier.tier) {
                Some(index) => &mut self.tiers[index],
                None => {
                    self.tiers.push(TierFigures {
                        tier: tier.tier.clone(),
                        kinds: Vec::new(),
                    });
                    self.tiers.last_mut().expect("just pushed")
                }
            };
            for kind in &tier.kinds {
                match mine.kinds.iter_mut().find(|k| k.kind == kind.kind) {
                    Some(k) => {
                        k.hits += kind.hits;
                        k.misses += kind.misses;
                    }
                    None => mine.kinds.push(kind.clone()),
                }
            }
            // Kinds in declaration order, whichever replica read them first.
            mine.kinds
                .sort_by_key(|k| Kind::parse(&k.kind).map_or(0, |kind| kind.index() + 1));
        }
        self.tiers
            .sort_by_key(|t| ["response", "l1", "l2"].iter().position(|n| *n == t.tier));
        self.loads += other.loads;
        self.requests += other.requests;
        self.latency.merge(&other.latency);
        self.lag.merge(&other.lag);
        self.l1_bytes += other.l1_bytes;
        self.l1_entries += other.l1_entries;
        self.invalidations_published += other.invalidations_published;
        self.invalidations_received += other.invalidations_received;
    }

    /// The tier named `tier`, if it has any read.
    pub fn tier(&self, tier: &str) -> Option<&TierFigures> {
        self.tiers.iter().find(|t| t.tier == tier)
    }
}

/// One replica's published figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The replica's id on the bus (a UUID v7, so ids sort by start).
    pub replica: String,
    /// The build it runs.
    pub version: String,
    /// Its cache mode.
    pub mode: String,
    /// When its cache started.
    pub started_at: DateTime<Utc>,
    /// When this snapshot was taken.
    pub taken_at: DateTime<Utc>,
    /// Its counters.
    #[serde(flatten)]
    pub figures: Figures,
    /// The last invalidation event's trip here, in seconds.
    pub last_lag_seconds: Option<f64>,
}

/// Every replica of a deployment, as their snapshots in Redis say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The deployment's key prefix.
    pub prefix: String,
    /// Its replicas, oldest first.
    pub replicas: Vec<Snapshot>,
    /// Redis's own figures; `None` when Redis did not answer (or there is
    /// no Redis tier), in which case `replicas` holds only the one asked.
    pub redis: Option<RedisFigures>,
}

impl Deployment {
    /// Every replica's figures added up.
    pub fn total(&self) -> Figures {
        let mut total = Figures::default();
        for replica in &self.replicas {
            total.add(&replica.figures);
        }
        total
    }
}

fn utc(time: std::time::SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(time)
}

impl Cache {
    /// This replica's figures as of now.
    pub fn snapshot(&self) -> Snapshot {
        let metrics = self.metrics();
        let gauges = self.gauges();
        let responses = metrics.responses();
        let per_kind = |pick: fn(&crate::cache::KindCounts) -> (u64, u64)| {
            Kind::ALL
                .into_iter()
                .filter_map(|kind| {
                    let (hits, misses) = pick(&metrics.kind(kind));
                    (hits + misses > 0).then(|| KindFigures {
                        kind: kind.as_str().to_owned(),
                        hits,
                        misses,
                    })
                })
                .collect()
        };
        let mut tiers = Vec::new();
        if responses.hits + responses.misses > 0 {
            tiers.push(TierFigures {
                tier: "response".into(),
                kinds: vec![KindFigures {
                    kind: "answer".into(),
                    hits: responses.hits,
                    misses: responses.misses,
                }],
            });
        }
        for (tier, pick) in [
            (
                "l1",
                (|k| (k.l1_hits, k.l1_misses)) as fn(&crate::cache::KindCounts) -> _,
            ),
            ("l2", |k| (k.l2_hits, k.l2_misses)),
        ] {
            let kinds: Vec<KindFigures> = per_kind(pick);
            if !kinds.is_empty() {
                tiers.push(TierFigures {
                    tier: tier.into(),
                    kinds,
                });
            }
        }
        let now = Instant::now();
        Snapshot {
            replica: self.origin().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            mode: self.mode_name().to_owned(),
            started_at: utc(metrics.started_at()),
            taken_at: Utc::now(),
            figures: Figures {
                tiers,
                loads: Kind::ALL
                    .into_iter()
                    .map(|kind| metrics.kind(kind).loads)
                    .sum(),
                requests: metrics.requests().total(),
                latency: metrics.requests().last_minute(now),
                lag: metrics.lag_window().last_minute(now),
                l1_bytes: gauges.l1_bytes,
                l1_entries: gauges.l1_entries,
                invalidations_published: metrics.events_published(),
                invalidations_received: metrics.events_received(),
            },
            last_lag_seconds: metrics.last_lag().map(|lag| lag.as_secs_f64()),
        }
    }

    /// Every replica of this deployment, from their snapshots in Redis,
    /// with this replica's own figures as of now. Without an answer from
    /// Redis, this replica alone.
    pub async fn deployment_stats(&self) -> Deployment {
        let own = self.snapshot();
        let gathered = match &self.inner.l2 {
            Some(l2) => l2.redis().stats_snapshots().await,
            None => None,
        };
        let (mut replicas, redis) = match gathered {
            Some((replicas, redis)) => (parse_snapshots(replicas), Some(redis)),
            None => (Vec::new(), None),
        };
        match replicas.iter_mut().find(|r| r.replica == own.replica) {
            Some(published) => *published = own,
            None => {
                replicas.push(own);
                replicas.sort_by(|a, b| a.replica.cmp(&b.replica));
            }
        }
        Deployment {
            prefix: self.prefix().to_owned(),
            replicas,
            redis,
        }
    }
}

/// Publishes this replica's snapshot every `interval` until the cache is
/// dropped. A snapshot Redis does not take is skipped: the next one
/// replaces it.
pub(in crate::cache) async fn publish(inner: Weak<Inner>, interval: Duration) {
    let ttl = interval * 3;
    loop {
        {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let Some(l2) = &inner.l2 else {
                return;
            };
            let cache = Cache {
                inner: inner.clone(),
            };
            let snapshot = cache.snapshot();
            let Ok(json) = serde_json::to_string(&snapshot) else {
                return;
            };
            l2.redis().publish_stats(&snapshot.replica, json, ttl).await;
        }
        tokio::time::sleep(interval).await;
    }
}

/// The stats of the deployment whose keys are under `prefix`, read from
/// the Redis at `connection` with a client of its own: for `biblio cache
/// stats`, which needs no replica running. Errors name no URL (it may
/// hold a password).
pub async fn read(connection: &Connection, prefix: &str) -> Result<Deployment, Error> {
    let (replicas, redis) = crate::redis::stats_snapshots::read(connection, prefix).await?;
    Ok(Deployment {
        prefix: prefix.to_owned(),
        replicas: parse_snapshots(replicas),
        redis: Some(redis),
    })
}

/// The snapshots in `stored` (JSON) that this build can read.
fn parse_snapshots(stored: Vec<String>) -> Vec<Snapshot> {
    stored
        .into_iter()
        .filter_map(|json| match serde_json::from_str::<Snapshot>(&json) {
            Ok(snapshot) => Some(snapshot),
            Err(err) => {
                tracing::warn!(error = %err, "ignoring a malformed stats snapshot");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Window;

    fn snapshot(replica: &str, l1_hits: u64, requests: u64, latency: Duration) -> Snapshot {
        let window = Window::default();
        let now = Instant::now();
        for _ in 0..requests {
            window.observe(now, latency);
        }
        Snapshot {
            replica: replica.into(),
            version: "0.1.0".into(),
            mode: "both".into(),
            started_at: Utc::now(),
            taken_at: Utc::now(),
            figures: Figures {
                tiers: vec![TierFigures {
                    tier: "l1".into(),
                    kinds: vec![KindFigures {
                        kind: "book".into(),
                        hits: l1_hits,
                        misses: 1,
                    }],
                }],
                loads: 1,
                requests,
                latency: window.last_minute(now),
                l1_bytes: 100,
                ..Figures::default()
            },
            last_lag_seconds: None,
        }
    }

    #[test]
    fn a_deployments_total_adds_its_replicas_and_merges_their_latencies() {
        let deployment = Deployment {
            prefix: "p".into(),
            replicas: vec![
                snapshot("a", 3, 99, Duration::from_micros(100)),
                snapshot("b", 5, 1, Duration::from_secs(1)),
            ],
            redis: None,
        };
        let total = deployment.total();
        let l1 = total.tier("l1").unwrap();
        assert_eq!((l1.hits(), l1.misses()), (8, 2));
        assert_eq!(hit_rate(l1.hits(), l1.misses()), Some(0.8));
        assert_eq!((total.requests, total.loads, total.l1_bytes), (100, 2, 200));
        assert_eq!(total.latency.count(), 100);
        assert!(total.latency.quantile(0.5).unwrap() < 0.001);
        assert!(total.latency.quantile(1.0).unwrap() > 0.5);

        let round_trip: Snapshot =
            serde_json::from_str(&serde_json::to_string(&deployment.replicas[0]).unwrap()).unwrap();
        assert_eq!(round_trip, deployment.replicas[0]);
        let table = deployment.to_string();
        assert!(table.contains("total (2 replicas)"), "{table}");
        assert!(table.contains("80.0%"), "{table}");
    }
}
