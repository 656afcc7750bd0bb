//! Calls over many keys on a Cluster, where a command or script whose keys
//! span hash slots is refused: they are split by slot, each part sent at
//! once, and the answers put back in order. On one server or Sentinel a
//! call stays whole.
use super::{Gateway, Topology};
use fred::prelude::*;
use fred::types::scan::ScanResult;

/// The hash slot `key` is stored in on a Cluster: that of its hash tag if
/// it has one.
pub fn slot(key: &str) -> u16 {
    fred::util::redis_keyslot(key.as_bytes())
}

/// `items` in one batch, or on a Cluster in one batch per hash slot of
/// their keys (a command or script whose keys span slots is refused
/// there), each in the order given.
pub fn by_slot<T>(topology: Topology, items: Vec<T>, key: impl Fn(&T) -> &str) -> Vec<Vec<T>> {
    if topology != Topology::Cluster {
        return if items.is_empty() {
            Vec::new()
        } else {
            vec![items]
        };
    }
    let mut slots: std::collections::BTreeMap<u16, Vec<T>> = std::collections::BTreeMap::new();
    for item in items {
        slots.entry(slot(key(&item))).or_default().push(item);
    }
    slots.into_values().collect()
}

/// The values at `keys`, in their order: one MGET, or on a Cluster one per
/// slot, all sent at once.
pub async fn mget(
    topology: Topology,
    client: &Client,
    keys: Vec<String>,
) -> Result<Vec<Value>, Error> {
    if topology != Topology::Cluster {
        return client.mget(keys).await;
    }
    let indexed: Vec<(usize, String)> = keys.into_iter().enumerate().collect();
    let batches = by_slot(topology, indexed, |(_, key)| key);
    let calls = batches.iter().map(|batch| {
        let keys: Vec<String> = batch.iter().map(|(_, key)| key.clone()).collect();
        client.mget::<Vec<Value>, _>(keys)
    });
    let answers = futures_util::future::try_join_all(calls).await?;
    let mut values = vec![Value::Null; batches.iter().map(Vec::len).sum()];
    for (batch, answer) in batches.iter().zip(answers) {
        for ((index, _), value) in batch.iter().zip(answer) {
            values[*index] = value;
        }
    }
    Ok(values)
}

impl Gateway {
    /// Every key matching `pattern`, page by page: on a Cluster, of every
    /// primary.
    pub fn scan(
        &self,
        pattern: String,
        count: u32,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<ScanResult, Error>> + Send>> {
        match self.topology {
            Topology::Cluster => Box::pin(self.writes.scan_cluster(pattern, Some(count), None)),
            _ => Box::pin(self.writes.scan(pattern, Some(count), None)),
        }
    }

    /// UNLINKs `keys`, one call per slot on a Cluster (a multi-slot UNLINK
    /// is refused there); how many existed. A background call.
    pub async fn unlink(&self, keys: Vec<String>) -> Option<u64> {
        let calls = by_slot(self.topology, keys, |key| key)
            .into_iter()
            .map(|keys| self.writes.unlink::<u64, _>(keys));
        let unlinked = self
            .background_write("unlink", |_| futures_util::future::try_join_all(calls))
            .await?;
        Some(unlinked.into_iter().sum())
    }
}
