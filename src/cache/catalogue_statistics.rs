//! `statistics`: one cached aggregate, served stale-while-revalidate when
//! its entry has only expired (no write touched it since), so concurrent
//! readers cause one aggregate, not a stampede. After a write, the next read
//! waits for the single refresh, so a write is never hidden.
use super::read::CacheKey;
use super::{Cache, Kind, List, Mode};
use crate::db::aggregates::Statistics;
use crate::error::LoadError;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The last value loaded, and the statistics group's local counter then: a
/// write seen here moves the counter, which makes the snapshot unusable.
pub(super) struct Snapshot {
    value: Arc<Statistics>,
    local: u64,
    /// A write not seen here (the bus silent, or no bus) moves no counter:
    /// then the snapshot is served only within the cap, like an L1 entry.
    current_as_of: std::time::Instant,
}

/// Clears the "refresh running" flag however the refresh ends, a panic
/// included, so a failed refresh never stops later ones.
struct RefreshRunning<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for RefreshRunning<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Cache {
    /// Reads the catalogue statistics through the cache; `load` runs the
    /// aggregate. A value that has only expired is served while one refresh
    /// runs; after a write, the caller waits for the refresh.
    pub async fn statistics<F, Fut>(&self, load: F) -> Result<Arc<Statistics>, LoadError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Statistics, LoadError>> + Send + 'static,
    {
        let inner = &self.inner;
        if inner.mode == Mode::Off {
            // No group state to tell an expired value from a replaced one:
            // every read is a load.
            inner.metrics.loaded(Kind::Statistics, 1);
            return Ok(Arc::new(load().await?));
        }
        let (key, local) = inner.list_key(&List::Statistics).await;
        if let Some(l1) = inner.l1_entries() {
            if let Some(value) = l1
                .get(&key.l1)
                .and_then(super::read::downcast::<Statistics>)
                .flatten()
            {
                inner.metrics.l1(Kind::Statistics, 1, 0);
                return Ok(value);
            }
        }
        let previous = inner
            .statistics
            .lock()
            .as_ref()
            .filter(|snapshot| {
                snapshot.local == local
                    && inner
                        .l1
                        .as_ref()
                        .is_some_and(|l1| l1.is_current(snapshot.current_as_of))
            })
            .map(|snapshot| snapshot.value.clone());
        let load = Arc::new(load);
        if let Some(previous) = previous {
            if !inner.refreshing_statistics.swap(true, Ordering::AcqRel) {
                let cache = self.clone();
                tokio::spawn(async move {
                    let _running = RefreshRunning(&cache.inner.refreshing_statistics);
                    let _ = cache.load_statistics(key, local, move || load()).await;
                });
            }
            return Ok(previous);
        }
        self.load_statistics(key, local, move || load()).await
    }

    async fn load_statistics<F, Fut>(
        &self,
        key: CacheKey,
        local: u64,
        load: F,
    ) -> Result<Arc<Statistics>, LoadError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Statistics, LoadError>>,
    {
        let current_as_of = self.inner.sync.current_as_of();
        let value = self
            .inner
            .read_one(Kind::Statistics, key, (|_| None, |_| None), load)
            .await?;
        *self.inner.statistics.lock() = Some(Snapshot {
            value: value.clone(),
            local,
            current_as_of,
        });
        Ok(value)
    }
}
