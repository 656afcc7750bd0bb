//! Stats snapshots in Redis: every replica publishes its figures (JSON,
//! written by `cache::replica_stats`) under `{prefix}:stats:{replica}`
//! with a TTL of three intervals, so a stopped replica's disappears on its
//! own; an index (`{prefix}:stats`, a sorted set of replica ids by last
//! publication) finds them without scanning the keyspace, and is pruned of
//! replicas silent for an hour. What only Redis knows (its version, memory,
//! clients, the deployment's keys) is asked when the stats are read.
use super::clients::{self, Connection};
use super::{Gateway, Keys, Topology};
use fred::clients::Client;
use fred::interfaces::{ClientLike, ClusterInterface, KeysInterface};
use fred::prelude::{Error, ErrorKind};
use fred::types::scan::Scanner;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Replicas silent this long are dropped from the index (their snapshots
/// expired long before).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// Pages of `SCAN` (1000 keys each) spent counting the deployment's keys.
const SCAN_PAGES: usize = 100;

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

impl Gateway {
    /// Stores `replica`'s snapshot (`json`) for `ttl` and indexes it, in
    /// one script call (`PUBLISH_STATS`); whether Redis took it. A
    /// background call.
    pub async fn publish_stats(&self, replica: &str, json: String, ttl: Duration) -> bool {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let args: Vec<fred::types::Value> = vec![
            json.into(),
            (ttl.as_millis().max(1) as i64).into(),
            replica.into(),
            now_ms.into(),
            (now_ms - FORGET_AFTER.as_millis() as i64).into(),
        ];
        let keys = vec![self.keys.stats(replica), self.keys.stats_index()];
        let published: Option<i64> = self
            .background_write("stats", |client| {
                self.scripts
                    .publish_stats
                    .evalsha_with_reload(client, keys, args)
            })
            .await;
        published.is_some()
    }

    /// Every replica's snapshot (JSON) in the index, and Redis's own
    /// figures; `None` if Redis did not answer. A background call.
    pub async fn stats_snapshots(&self) -> Option<(Vec<String>, RedisFigures)> {
        self.background("stats", |client| gather(client, &self.keys, self.topology))
            .await
    }
}

/// The snapshots (JSON) of every replica in the index and Redis's own
/// figures.
async fn gather(
    client: &Client,
    keys: &Keys,
    topology: Topology,
) -> Result<(Vec<String>, RedisFigures), Error> {
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
        snapshots.extend(stored.into_iter().flatten());
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

/// The snapshots (JSON) and Redis's figures of the deployment whose keys
/// are under `prefix`, read from the Redis at `connection` with a client
/// of its own: for `biblio cache stats`, which needs no replica running.
/// Errors name no URL (it may hold a password).
pub async fn read(
    connection: &Connection,
    prefix: &str,
) -> Result<(Vec<String>, RedisFigures), Error> {
    let client = clients::builder(connection)?.build()?;
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
    let keys = Keys::for_topology(prefix, clients::topology_of(connection))
        .map_err(|message| Error::new(ErrorKind::Config, message))?;
    let result = gather(&client, &keys, clients::topology_of(connection)).await;
    let _ = client.quit().await;
    result
}
