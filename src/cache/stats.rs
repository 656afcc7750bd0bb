//! Stats snapshots: every replica publishes its figures to Redis every few
//! seconds, so that any replica (`cacheStats`) or the CLI (`biblio cache
//! stats`, with no replica running) can show every replica at once, and
//! the deployment in total.
//!
//! A snapshot is JSON under `{prefix}:stats:{replica}` with a TTL of three
//! intervals, so a stopped replica's disappears on its own; an index
//! (`{prefix}:stats`, a sorted set of replica ids by last publication)
//! finds them without scanning the keyspace, and is pruned of replicas
//! silent for an hour. Latencies and lags travel as bucketed
//! [`Summary`]s, so the total's percentiles are those of every request of
//! every replica, not an average of percentiles. What only Redis knows
//! (its version, memory, clients, the deployment's keys) is asked when the
//! stats are read.
use super::keys::{Keys, Kind};
use super::l2::{self, Connection};
use super::topology::Topology;
use super::{Cache, Inner};
use crate::metrics::Summary;
use chrono::{DateTime, Utc};
use fred::clients::Client;
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface};
use fred::prelude::{Error, ErrorKind};
use fred::types::scan::Scanner;
use fred::types::scripts::Script;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Weak;
use std::time::{Duration, Instant};

/// Replicas silent this long are dropped from the index (their snapshots
/// expired long before).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Pages of `SCAN` (1000 keys each) spent counting the deployment's keys.
const SCAN_PAGES: usize = 100;

/// Stores one snapshot and indexes it. KEYS: the snapshot, the index.
/// ARGV: the snapshot, its TTL (ms), the replica id, the publisher's clock
/// (ms since the Unix epoch), the oldest clock kept in the index.
const PUBLISH: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
return 1
";

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

/// What Redis says of itself, and of this deployment's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedisFigures {
    /// `redis_version` from `INFO`.
    pub version: String,
    /// `used_memory` from `INFO`, in bytes.
    pub used_memory_bytes: u64,
    /// `connected_clients` from `INFO`.
    pub connected_clients: u64,
    /// Keys under this deployment's prefix, counted with `SCAN`.
    pub keys: u64,
    /// Whether the count is complete: `SCAN` stops after a bounded number
    /// of pages, so on a large keyspace it is a lower bound.
    pub keys_complete: bool,
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
        let per_kind = |pick: fn(&super::KindCounts) -> (u64, u64)| {
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
                (|k| (k.l1_hits, k.l1_misses)) as fn(&super::KindCounts) -> _,
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
        let keys = &self.inner.keys;
        let gathered = match &self.inner.l2 {
            Some(l2) => {
                l2.background("stats", |client| gather(client, keys, l2.topology()))
                    .await
            }
            None => None,
        };
        let (mut replicas, redis) = match gathered {
            Some((replicas, redis)) => (replicas, Some(redis)),
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
            prefix: keys.prefix().to_owned(),
            replicas,
            redis,
        }
    }
}

/// Publishes this replica's snapshot every `interval` until the cache is
/// dropped. A snapshot Redis does not take is skipped: the next one
/// replaces it.
pub(super) async fn publish(inner: Weak<Inner>, interval: Duration) {
    let script = Script::from_lua(PUBLISH);
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
            let keys = &inner.keys;
            let now_ms = chrono::Utc::now().timestamp_millis();
            let args: Vec<fred::types::Value> = vec![
                json.into(),
                (ttl.as_millis().max(1) as i64).into(),
                snapshot.replica.as_str().into(),
                now_ms.into(),
                (now_ms - FORGET_AFTER.as_millis() as i64).into(),
            ];
            let stats_keys = vec![keys.stats(&snapshot.replica), keys.stats_index()];
            let _: Option<i64> = l2
                .background_write("stats", |client| {
                    script.evalsha_with_reload(client, stats_keys, args)
                })
                .await;
        }
        tokio::time::sleep(interval).await;
    }
}

/// The snapshots of every replica in the index and Redis's own figures.
async fn gather(
    client: &Client,
    keys: &Keys,
    topology: Topology,
) -> Result<(Vec<Snapshot>, RedisFigures), Error> {
    let mut replicas: Vec<String> = client
        .custom(
            fred::cmd!("ZRANGE"),
            vec![keys.stats_index(), "0".into(), "-1".into()],
        )
        .await?;
    replicas.sort();
    let mut snapshots = Vec::new();
    if !replicas.is_empty() {
        let stored: Vec<Option<String>> = client
            .mget(
                replicas
                    .iter()
                    .map(|replica| keys.stats(replica))
                    .collect::<Vec<_>>(),
            )
            .await?;
        for json in stored.into_iter().flatten() {
            match serde_json::from_str::<Snapshot>(&json) {
                Ok(snapshot) => snapshots.push(snapshot),
                Err(err) => tracing::warn!(error = %err, "ignoring a malformed stats snapshot"),
            }
        }
    }
    let mut redis = RedisFigures::default();
    for info in infos(client, topology).await? {
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        if redis.version.is_empty() {
            redis.version = field("redis_version").unwrap_or_default().to_owned();
        }
        redis.used_memory_bytes += field("used_memory")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        redis.connected_clients += field("connected_clients")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    let pattern = keys.everything();
    if topology == Topology::Cluster {
        // Every primary's keys, within the same budget of pages per primary.
        let budget = SCAN_PAGES * client.num_primary_cluster_nodes().max(1);
        let mut pages = client.scan_cluster(pattern, Some(1000), None);
        redis.keys_complete = true;
        let mut read = 0;
        while let Some(page) = pages.next().await {
            let mut page = page?;
            redis.keys += page.take_results().map_or(0, |keys| keys.len() as u64);
            read += 1;
            if read >= budget {
                redis.keys_complete = false;
                break;
            }
            page.next();
        }
        return Ok((snapshots, redis));
    }
    let mut cursor = "0".to_owned();
    for _ in 0..SCAN_PAGES {
        let (next, page): (String, Vec<String>) = client
            .scan_page(cursor, pattern.clone(), Some(1000), None)
            .await?;
        redis.keys += page.len() as u64;
        if next == "0" {
            redis.keys_complete = true;
            break;
        }
        cursor = next;
    }
    Ok((snapshots, redis))
}

/// `INFO` of the server, or on a Cluster of every primary: the figures
/// the stats show are their sums.
async fn infos(client: &Client, topology: Topology) -> Result<Vec<String>, Error> {
    let primaries = match (topology, client.cached_cluster_state()) {
        (Topology::Cluster, Some(state)) => state.unique_primary_nodes(),
        _ => return Ok(vec![client.info(None).await?]),
    };
    futures_util::future::try_join_all(
        primaries
            .into_iter()
            .map(|server| async move { client.with_cluster_node(server).info(None).await }),
    )
    .await
}

/// The stats of the deployment whose keys are under `prefix`, read from
/// the Redis at `connection` with a client of its own: for `biblio cache
/// stats`, which needs no replica running. Errors name no URL (it may
/// hold a password).
pub async fn read(connection: &Connection, prefix: &str) -> Result<Deployment, Error> {
    let client = l2::builder(connection)?.build()?;
    let connecting = client.init();
    match tokio::time::timeout(
        connection.command_timeout.max(Duration::from_secs(5)),
        connecting,
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return Err(err),
        Err(_) => {
            return Err(Error::new(
                ErrorKind::Timeout,
                "Redis did not answer within 5 s (see --redis-url)",
            ))
        }
    }
    let keys = Keys::for_topology(prefix, l2::topology_of(connection))
        .map_err(|message| Error::new(ErrorKind::Config, message))?;
    let result = gather(&client, &keys, l2::topology_of(connection)).await;
    let _ = client.quit().await;
    let (replicas, redis) = result?;
    Ok(Deployment {
        prefix: prefix.to_owned(),
        replicas,
        redis: Some(redis),
    })
}

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

/// Seconds as a person reads them: µs, ms or s.
fn duration(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 0.001 => format!("{:.0} µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.2} ms", s * 1e3),
        Some(s) => format!("{s:.2} s"),
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KiB", n as f64 / 1024.0),
        n if n < 1024 * 1024 * 1024 => format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0)),
        n => format!("{:.2} GiB", n as f64 / (1024.0 * 1024.0 * 1024.0)),
    }
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |rate| format!("{:.1}%", rate * 100.0))
}

fn uptime(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let seconds = (to - from).num_seconds().max(0);
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Writes rows as columns: the first `left` columns aligned left, the rest
/// (numbers) right.
fn table(out: &mut std::fmt::Formatter<'_>, rows: &[Vec<String>], left: usize) -> std::fmt::Result {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            let pad = widths[c] - cell.chars().count();
            if c < left {
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad));
            } else {
                line.extend(std::iter::repeat_n(' ', pad));
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// The table `biblio cache stats` prints.
impl std::fmt::Display for Deployment {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(out, "deployment {}", self.prefix)?;
        match &self.redis {
            Some(redis) => writeln!(
                out,
                ": Redis {}, {} used, {} clients, {}{} keys",
                redis.version,
                bytes(redis.used_memory_bytes),
                redis.connected_clients,
                if redis.keys_complete { "" } else { "at least " },
                redis.keys
            )?,
            None => writeln!(out, ": Redis did not answer; this replica alone")?,
        }
        writeln!(out)?;
        let header = [
            "replica",
            "version",
            "mode",
            "up",
            "requests",
            "last min",
            "p50",
            "p99",
            "lag p50",
            "lag p99",
            "L1 entries",
            "L1 bytes",
        ];
        let figures_row = |figures: &Figures| {
            vec![
                figures.requests.to_string(),
                figures.latency.count().to_string(),
                duration(figures.latency.quantile(0.5)),
                duration(figures.latency.quantile(0.99)),
                duration(figures.lag.quantile(0.5)),
                duration(figures.lag.quantile(0.99)),
                figures.l1_entries.to_string(),
                bytes(figures.l1_bytes),
            ]
        };
        let mut rows = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
        for replica in &self.replicas {
            let mut row = vec![
                replica.replica.clone(),
                replica.version.clone(),
                replica.mode.clone(),
                uptime(replica.started_at, replica.taken_at),
            ];
            row.extend(figures_row(&replica.figures));
            rows.push(row);
        }
        let total = self.total();
        let mut row = vec![
            format!("total ({} replicas)", self.replicas.len()),
            String::new(),
            String::new(),
            String::new(),
        ];
        row.extend(figures_row(&total));
        rows.push(row);
        table(out, &rows, 3)?;
        writeln!(out)?;

        let mut rows = vec![["tier", "kind", "hits", "misses", "hit rate"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect::<Vec<_>>()];
        for tier in &total.tiers {
            rows.push(vec![
                tier.tier.clone(),
                "(all)".into(),
                tier.hits().to_string(),
                tier.misses().to_string(),
                percent(hit_rate(tier.hits(), tier.misses())),
            ]);
            for kind in &tier.kinds {
                rows.push(vec![
                    String::new(),
                    kind.kind.clone(),
                    kind.hits.to_string(),
                    kind.misses.to_string(),
                    percent(hit_rate(kind.hits, kind.misses)),
                ]);
            }
        }
        table(out, &rows, 2)?;
        writeln!(
            out,
            "\nloads from the database: {}; invalidations published: {}, received: {}",
            total.loads, total.invalidations_published, total.invalidations_received
        )
    }
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
