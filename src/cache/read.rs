//! The batch read-through engine: L1, then single flight, then one MGET,
//! then one database load, then the guarded fills of both tiers.
use super::codec::{self, Slot};
use super::flight::{self, Joined, Outcome};
use super::matching::Span;
use super::{l1, l2, Cache, FillTier, Group, Inner, Kind, Mode, Of};
use crate::error::LoadError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// A key as each tier knows it: list entries get a local counter in L1.
pub(super) struct CacheKey {
    pub(super) l1: l1::Key,
    /// `None`: do not use L2 for this key (a list whose group generation
    /// could not be read, so its L2 key is unknown).
    pub(super) l2: Option<String>,
    /// The ranged group of a watched page (see `l1`), whose fill records
    /// its span.
    pub(super) ranged: Option<Group>,
}

/// A test hook: holds fills of matching keys between the database read and
/// the cache fill, so tests can force a write into that gap.
pub struct FillPause {
    key_contains: String,
    reached: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

impl FillPause {
    /// Completes once a fill of a matching key is held.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held fill go on to its store (once per call).
    pub fn release(&self) {
        self.release.add_permits(1);
    }
}

/// What the read path asks of a value besides its bytes: how long it may
/// be kept if time alone changes it, and the span of a ranged page.
pub(super) type Shape<V> = (fn(&V) -> Option<Duration>, fn(&V) -> Option<Span>);

/// A key this call loads (it owns the key's flight).
struct Owned<V> {
    index: usize,
    sender: flight::Sender<V>,
    ticket: Option<l1::Ticket>,
    /// The L2 version read with the MGET (empty if none); `None` if L2 was
    /// not consulted, in which case L2 is not filled either.
    version: Option<fred::bytes::Bytes>,
}

impl Cache {
    /// Holds the next fill of a key containing `key_contains` (tests only).
    #[doc(hidden)]
    pub fn pause_next_fill(&self, key_contains: &str) -> Arc<FillPause> {
        let pause = Arc::new(FillPause {
            key_contains: key_contains.to_owned(),
            reached: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        });
        *self.inner.pause.lock() = Some(pause.clone());
        pause
    }

    /// An entity (or count) from L1 alone: `Some(None)` is a cached absence,
    /// `None` a miss. The warm path skips the DataLoader's batching (a task
    /// spawn and a timer) entirely.
    pub fn peek<V: Send + Sync + 'static>(&self, kind: Of<V>, id: Uuid) -> Option<Option<Arc<V>>> {
        let l1 = self.inner.l1_entries()?;
        let hit = downcast::<V>(l1.get(&l1::Key::Entity(kind.kind(), id))?)?;
        self.inner.metrics.l1(kind.kind(), 1, 0);
        Some(hit)
    }

    /// Entities (or per-id counts) by id. `load` gets the ids that missed
    /// every tier and returns those it found; the others are cached as absent.
    pub async fn entities<V, F, Fut>(
        &self,
        kind: Of<V>,
        ids: &[Uuid],
        load: F,
    ) -> Result<HashMap<Uuid, Arc<V>>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn(Vec<Uuid>) -> Fut,
        Fut: Future<Output = Result<HashMap<Uuid, V>, LoadError>>,
    {
        let kind = kind.kind();
        let keys = ids
            .iter()
            .map(|id| CacheKey {
                l1: l1::Key::Entity(kind, *id),
                l2: Some(self.inner.keys.entity(kind, *id)),
                ranged: None,
            })
            .collect();
        let values = self
            .inner
            .read_through::<V, _, _>(kind, keys, (|_| None, |_| None), |indices| {
                let wanted: Vec<Uuid> = indices.iter().map(|i| ids[*i]).collect();
                let loading = load(wanted.clone());
                async move {
                    let mut found = loading.await?;
                    Ok(wanted.iter().map(|id| found.remove(id)).collect())
                }
            })
            .await?;
        Ok(ids
            .iter()
            .zip(values)
            .filter_map(|(id, value)| Some((*id, value?)))
            .collect())
    }
}

impl Inner {
    /// The read path for one key that always has a value (a list entry).
    /// `shape.0` caps how long a value may be kept in either tier, for
    /// values that change with time alone; `shape.1` is the span of a
    /// ranged page (see `l1`).
    pub(super) async fn read_one<V, F, Fut>(
        &self,
        kind: Kind,
        key: CacheKey,
        shape: Shape<V>,
        load: F,
    ) -> Result<Arc<V>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, LoadError>>,
    {
        self.read_through::<V, _, _>(kind, vec![key], shape, |_| {
            let loading = load();
            async move { Ok(vec![Some(loading.await?)]) }
        })
        .await?
        .pop()
        .flatten()
        .ok_or_else(|| LoadError::message("a list load returned nothing"))
    }

    /// The read path for a batch; see the module documentation.
    async fn read_through<V, F, Fut>(
        &self,
        kind: Kind,
        keys: Vec<CacheKey>,
        shape: Shape<V>,
        load: F,
    ) -> Result<Vec<Option<Arc<V>>>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Option<V>>, LoadError>>,
    {
        let n = keys.len();
        if self.mode == Mode::Off {
            let loaded = load((0..n).collect()).await?;
            self.metrics.loaded(kind, n);
            return Ok(loaded
                .into_iter()
                .map(|value| value.map(Arc::new))
                .collect());
        }
        let mut out: Vec<Option<Option<Arc<V>>>> = vec![None; n];

        // 1. L1.
        if let Some(l1) = self.l1_entries() {
            let mut hits = 0;
            for (slot, key) in out.iter_mut().zip(&keys) {
                if let Some(value) = l1.get(&key.l1).and_then(downcast::<V>) {
                    *slot = Some(value);
                    hits += 1;
                }
            }
            self.metrics.l1(kind, hits, n - hits);
        }
        let missing: Vec<usize> = (0..n).filter(|i| out[*i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out.into_iter().map(Option::flatten).collect());
        }

        // 2. Single flight: join loads in progress, own the rest.
        let missing_keys: Vec<&l1::Key> = missing.iter().map(|i| &keys[*i].l1).collect();
        let mut owned: Vec<Owned<V>> = Vec::new();
        let mut waiting: Vec<(usize, watch::Receiver<Outcome<V>>)> = Vec::new();
        for (index, joined) in missing.iter().zip(self.flights.join::<V>(&missing_keys)) {
            match joined {
                Joined::Wait(receiver) => {
                    self.metrics.flight_joined(kind);
                    waiting.push((*index, receiver));
                }
                Joined::Own(sender) => owned.push(Owned {
                    index: *index,
                    sender,
                    ticket: self.l1.as_ref().map(|l1| l1.ticket(&keys[*index].l1)),
                    version: None,
                }),
            }
        }
        let guard = flight::Guard {
            flights: &self.flights,
            owned: owned
                .iter()
                .map(|o| (keys[o.index].l1.clone(), o.sender.clone()))
                .collect(),
        };
        let current_as_of = self.sync.current_as_of();

        // Boxed: the miss path's state is large, and async-graphql nests one
        // per level of the query; on the stack it could overflow a worker's.
        let result = Box::pin(self.load_owned::<V, _, _>(
            kind,
            &keys,
            &mut owned,
            (&load, shape),
            current_as_of,
        ))
        .await;
        for o in &owned {
            let value = match &result {
                Ok(values) => Ok(values.get(&o.index).cloned().flatten()),
                Err(err) => Err(err.clone()),
            };
            o.sender.send_replace(Some(value));
        }
        drop(guard);
        let values = result?;
        for (index, value) in values {
            out[index] = Some(value);
        }

        // 3. Wait for loads owned by other requests.
        let mut orphaned = Vec::new();
        for (index, mut receiver) in waiting {
            match receiver.wait_for(Option::is_some).await {
                Ok(result) => match result.clone() {
                    Some(Ok(value)) => out[index] = Some(value),
                    Some(Err(err)) => return Err(err),
                    None => orphaned.push(index),
                },
                Err(_) => orphaned.push(index),
            }
        }
        // Their owner went away (its request was cancelled): load directly.
        if !orphaned.is_empty() {
            let loaded = load(orphaned.clone()).await?;
            self.metrics.loaded(kind, orphaned.len());
            for (index, value) in orphaned.into_iter().zip(loaded) {
                out[index] = Some(value.map(Arc::new));
            }
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    /// L2 then the database for the keys this call owns; fills both tiers.
    async fn load_owned<V, F, Fut>(
        &self,
        kind: Kind,
        keys: &[CacheKey],
        owned: &mut [Owned<V>],
        (load, (lifetime, span)): (&F, Shape<V>),
        current_as_of: std::time::Instant,
    ) -> Result<HashMap<usize, Option<Arc<V>>>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Option<V>>, LoadError>>,
    {
        let mut values: HashMap<usize, Option<Arc<V>>> = HashMap::with_capacity(owned.len());
        if owned.is_empty() {
            return Ok(values);
        }
        let mut l1_fills: Vec<(usize, Option<Arc<V>>, usize)> = Vec::new();

        // L2, one MGET.
        let mut from_db: Vec<usize> = Vec::with_capacity(owned.len());
        match self.l2() {
            Some(l2) => {
                let (shared, local_only): (Vec<&mut Owned<V>>, Vec<&mut Owned<V>>) =
                    owned.iter_mut().partition(|o| keys[o.index].l2.is_some());
                from_db.extend(local_only.iter().map(|o| o.index));
                let wanted: Vec<&str> = shared
                    .iter()
                    .filter_map(|o| keys[o.index].l2.as_deref())
                    .collect();
                let asked = shared.len();
                match l2.get_many(&wanted).await {
                    Some(found) => {
                        let mut hits = 0;
                        for (o, found) in shared.into_iter().zip(found) {
                            let decoded = found.bytes.as_deref().and_then(|bytes| {
                                codec::decode::<V>(bytes)
                                    .ok()
                                    .map(|slot| (slot, bytes.len()))
                            });
                            match decoded {
                                Some((slot, len)) => {
                                    hits += 1;
                                    let value = match slot {
                                        Slot::Present(value) => Some(Arc::new(value)),
                                        Slot::Absent => None,
                                    };
                                    values.insert(o.index, value.clone());
                                    l1_fills.push((o.index, value, len));
                                }
                                None => {
                                    o.version = Some(found.version.unwrap_or_default());
                                    from_db.push(o.index);
                                }
                            }
                        }
                        self.metrics.l2(kind, hits, asked - hits);
                    }
                    None => from_db.extend(shared.iter().map(|o| o.index)),
                }
            }
            None => from_db.extend(owned.iter().map(|o| o.index)),
        }

        // The database, one query.
        if !from_db.is_empty() {
            let loaded = load(from_db.clone()).await?;
            self.metrics.loaded(kind, from_db.len());
            self.hold_if_paused(keys, &from_db).await;
            let mut l2_fills = Vec::with_capacity(from_db.len());
            for (index, value) in from_db.iter().zip(loaded) {
                let slot = match &value {
                    Some(value) => Slot::Present(value),
                    None => Slot::Absent,
                };
                let bytes = codec::encode(&slot).unwrap_or_default();
                let value = value.map(Arc::new);
                values.insert(*index, value.clone());
                l1_fills.push((*index, value.clone(), bytes.len()));
                if let Some(o) = owned.iter().find(|o| o.index == *index) {
                    if let (Some(version), Some(key)) = (&o.version, &keys[*index].l2) {
                        let ttl = self.ttls.jittered(self.ttls.l2(kind, value.is_none()), key);
                        let ttl = capped(ttl, value.as_deref(), lifetime);
                        l2_fills.push(l2::Fill {
                            key: key.clone(),
                            guard: self.keys.version(key),
                            expected: version.clone(),
                            ttl,
                            bytes,
                        });
                    }
                }
            }
            if let Some(l2) = self.l2() {
                l2.fill(l2_fills).await;
            }
        }

        // L1, each insert guarded by the ticket taken before any read.
        if let Some(l1) = self.l1_entries() {
            for (index, value, len) in l1_fills {
                let Some(ticket) = owned
                    .iter()
                    .find(|o| o.index == index)
                    .and_then(|o| o.ticket)
                else {
                    continue;
                };
                let ttl = self.ttls.jittered(
                    self.ttls.l1(kind, value.is_none()),
                    keys[index].l2.as_deref().unwrap_or_default(),
                );
                let ttl = capped(ttl, value.as_deref(), lifetime);
                let spanned = value.as_deref().and_then(span);
                let value: l1::Value = value.map(|v| v as Arc<dyn Any + Send + Sync>);
                let entry = l1::Entry::new(value, len, ttl, current_as_of);
                let key = keys[index].l1.clone();
                let inserted = match keys[index].ranged {
                    Some(group) => l1.insert_ranged(key, ticket, entry, group, spanned),
                    None => l1.insert(key, ticket, entry),
                };
                if !inserted {
                    self.metrics.fills_refused(FillTier::L1, 1);
                }
            }
        }
        Ok(values)
    }

    async fn hold_if_paused(&self, keys: &[CacheKey], indices: &[usize]) {
        let pause = {
            let mut slot = self.pause.lock();
            let matches = slot.as_ref().is_some_and(|pause| {
                indices.iter().any(|i| {
                    keys[*i]
                        .l2
                        .as_deref()
                        .is_some_and(|key| key.contains(&pause.key_contains))
                })
            });
            if matches {
                slot.take()
            } else {
                None
            }
        };
        if let Some(pause) = pause {
            pause.reached.notify_one();
            if let Ok(permit) = pause.release.acquire().await {
                permit.forget();
            }
        }
    }
}

/// `ttl`, or less if `value` changes with time sooner. A value with no
/// time left is not kept at all (a zero TTL).
fn capped<V>(ttl: Duration, value: Option<&V>, lifetime: fn(&V) -> Option<Duration>) -> Duration {
    match value.and_then(lifetime) {
        Some(left) => ttl.min(left),
        None => ttl,
    }
}

pub(super) fn downcast<V: Send + Sync + 'static>(value: l1::Value) -> Option<Option<Arc<V>>> {
    match value {
        None => Some(None),
        Some(value) => value.downcast::<V>().ok().map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Settings, BOOK};
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn l1_only() -> Cache {
        Cache::new(
            &Settings {
                mode: Mode::L1,
                ..Settings::default()
            },
            "test",
            None,
        )
        .expect("an L1-only cache needs no Redis")
    }

    #[tokio::test]
    async fn a_loaded_value_is_then_an_l1_hit_and_absent_ids_are_remembered() {
        let cache = l1_only();
        let (present, absent) = (Uuid::now_v7(), Uuid::now_v7());
        let loads = AtomicUsize::new(0);
        let book = |id| entity::book::Model {
            id,
            title: "t".into(),
            isbn: "9780000000002".into(),
            price_cents: 100,
            published_year: None,
            copies_total: 1,
            copies_available: 1,
            author_id: id,
            category_id: id,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let load = |wanted: Vec<Uuid>| {
            loads.fetch_add(1, Ordering::SeqCst);
            let found: HashMap<Uuid, entity::book::Model> = wanted
                .into_iter()
                .filter(|id| *id == present)
                .map(|id| (id, book(id)))
                .collect();
            async move { Ok(found) }
        };
        let first = cache
            .entities(BOOK, &[present, absent], load)
            .await
            .unwrap();
        assert_eq!(first.get(&present).map(|v| v.id), Some(present));
        assert!(!first.contains_key(&absent));
        assert_eq!(
            cache.peek(BOOK, present).map(|v| v.map(|v| v.id)),
            Some(Some(present))
        );
        assert_eq!(cache.peek(BOOK, absent).map(|v| v.is_none()), Some(true));
        cache
            .entities(BOOK, &[present, absent], load)
            .await
            .unwrap();
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "the second read was served from L1"
        );
    }
}
