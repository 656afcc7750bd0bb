//! Clearing a deployment's cache in Redis: moving its namespace (the
//! `CLEAR` script, which publishes the clear on the bus) and removing the
//! keys of older namespaces. Why a clear keeps the cache's bound is argued
//! in `cache::namespace`.
use super::Gateway;
use fred::prelude::*;
use fred::types::scan::Scanner;
use futures_util::StreamExt;

/// Keys asked of each `SCAN` call and removed per `UNLINK`.
const SCAN_BATCH: u32 = 1000;

impl Gateway {
    /// Moves the namespace one past the newest known (the counter, or
    /// `known` if Redis lost the counter) and publishes the clear on the
    /// bus as `origin`, in one script call. The new namespace, or `None`
    /// if Redis did not answer. A background call.
    pub async fn clear(&self, origin: &str, known: u64) -> Option<u64> {
        let args: Vec<Value> = vec![
            Value::from(self.keys.channel()),
            Value::from(origin),
            Value::from(known as i64),
        ];
        let counter = vec![self.keys.namespace_counter()];
        self.background_write("clear", |client| {
            self.scripts
                .clear
                .evalsha_with_reload(client, counter, args)
        })
        .await
    }

    /// Removes every key of this deployment's namespaces older than
    /// `current`, with `SCAN` (on a Cluster, of every primary) and
    /// `UNLINK`, calling `progress` with the count removed so far after
    /// each batch. Only namespaced keys match (`{prefix}:v…:n*`), so never
    /// another prefix's keys nor this deployment's counters, and never the
    /// current namespace or a newer one a concurrent clear made. How many
    /// keys were removed, or `None` if Redis stopped answering (what was
    /// removed stays removed).
    pub async fn remove_namespaces_before(
        &self,
        current: u64,
        mut progress: impl FnMut(u64),
    ) -> Option<u64> {
        let mut pages = self.scan(self.keys.namespaced_pattern(), SCAN_BATCH);
        let mut removed = 0;
        while let Some(page) = pages.next().await {
            let mut page = match page {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "scanning for old cache entries failed");
                    return None;
                }
            };
            let old: Vec<String> = page
                .take_results()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|key| key.into_string())
                .filter(|key| {
                    self.keys
                        .namespace_of(key)
                        .is_some_and(|namespace| namespace < current)
                })
                .collect();
            if !old.is_empty() {
                removed += self.unlink(old).await?;
            }
            progress(removed);
            page.next();
        }
        Some(removed)
    }
}
