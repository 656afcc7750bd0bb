//! Clearing the cache (`biblio cache clear`) in O(1) for readers: the
//! **namespace**.
//!
//! Every entry of a deployment (entities, counts, list pages, the
//! statistics, their version counters, stored documents) carries the
//! namespace in its key, `{prefix}:v{SCHEMA_VERSION}:n{namespace}:…`. A
//! clear is one script: it bumps the namespace counter in Redis and
//! publishes an event carrying the new value. A replica that learns a newer
//! namespace builds its keys under it from then on and drops its L1 at
//! once, which also ends every answer the response tier keeps
//! ([`super::stamps`] compares L1's clears count). Readers delete nothing
//! and wait for nothing; the command then removes the old namespaces' keys
//! with `SCAN` and `UNLINK` and reports how many. The counters that guard
//! races (group generations, the sequence) and the sign-in windows carry no
//! namespace: a clear changes no data, so none of them has to move.
//!
//! # When a replica learns the namespace
//! - From the clear's event, as soon as it arrives.
//! - From every invalidation event and from its own heartbeats: both are
//!   published by scripts that read the namespace atomically with
//!   publishing. Hearing back its own heartbeat sent at `t` therefore
//!   proves a replica knows the namespace as of `t`, as it proves every
//!   event published before `t` heard. L2 is read only while such a
//!   heartbeat sent within the silence limit has come back, so a replica
//!   that missed the event (its subscriber lagged or reconnected) reads the
//!   old namespace no longer than it could miss any write's event: within
//!   the bound stated in [`crate::cache`]. A starting replica learns it
//!   from its first heartbeat, before it trusts L2 at all.
//! - From the invalidation script, which refuses to run under an older
//!   namespace (below).
//!
//! # Why a clear neither resurrects old entries nor leaves new ones stale
//! - A fill that read before the clear stores under the key it built, in
//!   the old namespace, where no reader that has learnt the new one looks;
//!   the removal deletes it, or, if it lands after the removal has passed,
//!   it expires with its TTL. An entry and its **version** share their
//!   namespace, so the version guard compares the counter of the very key
//!   filled, as before. Rows primed from a list query are guarded by the
//!   **sequence**, which no clear moves: a load that saw no write is still
//!   current, in whichever namespace it lands.
//! - In L1, dropping everything moves every stripe epoch, so no L1 fill in
//!   flight lands afterwards.
//! - A write deletes entries in the namespace readers use. A writer that
//!   has not learnt of the clear names its entries in the old namespace, and
//!   deleting those would leave the new namespace's copies stale until their
//!   TTL. So the invalidation script compares the namespace it is given
//!   with the counter; if it is older, the script does nothing and returns
//!   the current one, and the writer learns it and runs again.
//! - A replica that has not heard the clear yet may read, in the old
//!   namespace, an entry that a later write did not delete. But the clear's
//!   event precedes the write's on the channel, so the replica switches
//!   namespaces (and drops L1) before the write's event arrives: it sees the
//!   write within the same bound as any other read.
//! - A namespace only moves forward: a replica keeps the highest it has
//!   learnt, and every script that reads the counter restores it if Redis
//!   lost it (an eviction, a flush), so the replicas agree again within one
//!   heartbeat.
//!
//! # Removing the old entries
//! `SCAN` (on a Cluster, of every primary) matches this deployment's
//! namespaced keys only (`{prefix}:v…:n*`,
//! the prefix's glob characters escaped), so never another prefix's keys
//! nor this deployment's counters; `UNLINK` (Redis frees the memory in the
//! background) removes those of older namespaces, never the current one or
//! a newer one that a concurrent clear made. Deleting an old namespace's
//! version counters is safe: no write moves them any more, and a fill they
//! let through lands where nobody reads. Keys of other schema versions are
//! left to their TTLs: during a rolling deploy an older build still reads
//! them.
use super::{Cache, Inner};
use std::time::{Duration, Instant};

impl Cache {
    /// The namespace this replica reads and fills under.
    pub fn namespace(&self) -> u64 {
        self.inner.keys.namespace()
    }

    /// Waits until L2 may be read and filled (Redis answers and this
    /// replica hears its own heartbeats, so it knows the namespace); false
    /// if that did not happen `within`, or this cache has no Redis tier.
    pub async fn wait_until_trusted(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.inner.l2().is_some() {
                return true;
            }
            if self.inner.l2.is_none() || Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Clears this deployment's cache on every replica: moves the namespace
    /// and publishes the event, in one script call. Returns the new
    /// namespace, or `None` if there is no Redis tier or Redis did not
    /// answer. Old entries stay in Redis, unreachable, until
    /// [`Cache::remove_old_namespaces`].
    pub async fn clear(&self) -> Option<u64> {
        self.inner.clear().await
    }

    /// Removes every key of this deployment's namespaces older than the
    /// current one, with `SCAN` and `UNLINK`, calling `progress` with the
    /// count removed so far after each batch. Returns how many keys were
    /// removed, or `None` if there is no Redis tier or Redis stopped
    /// answering (what was removed stays removed; running it again
    /// finishes the job).
    pub async fn remove_old_namespaces(&self, progress: impl FnMut(u64)) -> Option<u64> {
        let l2 = self.inner.l2.as_ref()?;
        l2.redis()
            .remove_namespaces_before(self.inner.keys.namespace(), progress)
            .await
    }
}

impl Inner {
    /// See [`Cache::clear`].
    pub(super) async fn clear(&self) -> Option<u64> {
        let l2 = self.l2.as_ref()?;
        let namespace = l2
            .redis()
            .clear(&self.origin, self.keys.namespace())
            .await?;
        self.learn_namespace(namespace);
        Some(namespace)
    }

    /// Moves to `namespace` if it is newer than the one known, and then
    /// forgets everything kept in this process: L1 (and with it every kept
    /// answer) and the statistics snapshot. Nothing in them is stale, but a
    /// clear promises that every replica's next read loads afresh.
    pub(super) fn learn_namespace(&self, namespace: u64) {
        if !self.keys.advance_namespace(namespace) {
            return;
        }
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
        *self.statistics.lock() = None;
        tracing::info!(namespace, "the cache was cleared: L1 dropped");
    }
}
