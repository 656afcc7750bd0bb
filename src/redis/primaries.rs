//! Which primaries this replica's connections use, and whether a
//! failover may have changed them: the questions the cache's bus asks
//! before it trusts Redis again after a silence.
use super::{Caller, Gateway, Topology};
use fred::prelude::*;

impl Gateway {
    /// On a Cluster, the replication ids of every primary, sorted and
    /// joined: what the `PRIMARY` script records. `None` if any primary did not
    /// answer, or the slots are not known yet.
    pub async fn replication_ids(&self) -> Option<String> {
        let state = self.writes.cached_cluster_state()?;
        let asked = state.unique_primary_nodes().into_iter().map(|server| {
            let client = self.writes.with_cluster_node(server);
            async move {
                let info: String = client
                    .info(Some(fred::types::InfoKind::Replication))
                    .await?;
                info.lines()
                    .find_map(|line| line.strip_prefix("master_replid:"))
                    .map(|id| id.trim().to_owned())
                    .ok_or_else(|| {
                        Error::new(ErrorKind::Unknown, "no master_replid in INFO replication")
                    })
            }
        });
        let Some(mut ids) = self
            .run(
                Caller::Background,
                "primary",
                futures_util::future::try_join_all(asked),
            )
            .await
        else {
            // A primary that does not answer may have been replaced: ask
            // the cluster for its slots again before the next try.
            let _ = self.writes.sync_cluster().await;
            return None;
        };
        if ids.is_empty() {
            return None;
        }
        ids.sort();
        Some(ids.join(","))
    }

    /// The primaries this replica's commands go to, as `host:port`: on a
    /// Cluster every primary of the slot map it last read, elsewhere the
    /// one server (on Sentinel, the primary the sentinels named).
    pub fn primary_addresses(&self) -> Vec<String> {
        let mut servers = match (self.topology, self.writes.cached_cluster_state()) {
            (Topology::Cluster, Some(state)) => state.unique_primary_nodes(),
            _ => self.writes.active_connections(),
        };
        let mut primaries: Vec<String> = servers
            .drain(..)
            .map(|server| format!("{}:{}", server.host, server.port))
            .collect();
        primaries.sort();
        primaries.dedup();
        primaries
    }

    /// On Sentinel, whether this replica's connections disagree about the
    /// primary, among themselves (reads, writes and `subscriber`, the bus
    /// subscriber's node) or with a sentinel that answers. After a
    /// `SENTINEL FAILOVER` the old primary keeps answering until the
    /// sentinels demote it (seconds later): a replica still on it hears its
    /// own heartbeats but not the events published on the new one. Always
    /// `false` on other topologies, and when no sentinel answers (the
    /// heartbeat tells whether Redis does).
    pub async fn primary_disputed(&self, subscriber: Option<String>) -> bool {
        if self.topology != Topology::Sentinel {
            return false;
        }
        let mut ours: Vec<String> = [&self.reads, &self.writes]
            .into_iter()
            .flat_map(Client::active_connections)
            .map(|server| format!("{}:{}", server.host, server.port))
            .chain(subscriber)
            .collect();
        ours.sort();
        ours.dedup();
        if ours.len() > 1 {
            return true;
        }
        let named = self.sentinels.named(true).await;
        named.into_iter().any(|answer| match answer {
            Ok(Some(named)) => ours.first().is_some_and(|ours| *ours != named),
            _ => false,
        })
    }
}
