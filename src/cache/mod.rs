//! The read-through cache: request DataLoader -> L1 (this process, moka) ->
//! L2 (Redis, shared) -> database, and the invalidation that keeps it honest.
//!
//! # Reading
//! A batch of keys makes one pass over L1, sends all L1 misses to Redis in one
//! MGET, loads all L2 misses with one database query, fills L2 with one script
//! call, then fills L1. Concurrent misses of the same key in this process
//! share one load (single flight). Absent ids are cached briefly as negative
//! entries. Lists (pages, search results) store ids and a total, never
//! objects; their keys carry their group's generation.
//!
//! # Writing
//! A mutation commits, then calls [`Cache::invalidate`] before it answers:
//! L1 entries are evicted here, then one Redis script deletes the L2 entries,
//! bumps their version counters, moves the groups' generations and publishes
//! one event; then L1 is evicted again (a read that refilled L1 from L2 before
//! the script ran cannot survive). Every replica evicts on receipt of the
//! event.
//!
//! # Why a fill never resurrects a value a write replaced
//! A fill records, before it reads L2 or the database, the L1 stripe epoch of
//! each key and the Redis version of each entry. An invalidation bumps both.
//! The L1 insert happens under the stripe lock only if the epoch is unchanged;
//! the L2 store happens in a script only if the version is unchanged. So a
//! load that read the database before a write committed cannot store its
//! value after that write's invalidation, here or on another replica,
//! whichever of the event and the fill comes first.
//!
//! # The bound
//! With Redis up, a read that starts after a write's response has been
//! received sees the write on the writer at once, and on any other replica
//! after D, the event delivery time. With the subscriber disconnected, L1
//! entries older than the cap (default 1 s) are ignored, so D is the cap.
//! Writes that could not reach Redis are replayed when it answers again.
//! `statistics` is served stale-while-revalidate only when no write touched
//! it; after a write, the next read waits for the (single) refresh.
pub mod changes;
pub mod codec;
pub mod invalidation;
pub mod keys;
pub mod l1;
pub mod l2;
pub mod metrics;

pub use changes::{Change, Invalidation};
pub use keys::{Group, Kind};
pub use metrics::{KindCounts, Metrics};

use crate::error::LoadError;
use codec::Slot;
use keys::Keys;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Which tiers serve reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Every read goes to the database.
    Off,
    /// In-process only. Without Redis there are no events, so L1 entries
    /// live at most the untrusted cap: the bound holds across replicas.
    L1,
    /// Redis only.
    L2,
    Both,
}

/// Time-to-live per kind of value, in L2; L1 uses the same, capped by `l1_max`.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    pub entity: Duration,
    pub list: Duration,
    pub private: Duration,
    pub statistics: Duration,
    pub negative: Duration,
    pub l1_max: Duration,
    /// Each TTL is shortened by a random fraction up to this, so entries
    /// filled together do not expire together.
    pub jitter: f64,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            entity: Duration::from_secs(300),
            list: Duration::from_secs(60),
            private: Duration::from_secs(60),
            statistics: Duration::from_secs(30),
            negative: Duration::from_secs(5),
            l1_max: Duration::from_secs(60),
            jitter: 0.1,
        }
    }
}

impl Ttls {
    fn l2(&self, kind: Kind, absent: bool) -> Duration {
        if absent {
            return self.negative;
        }
        match kind {
            Kind::Book
            | Kind::Author
            | Kind::Category
            | Kind::User
            | Kind::Borrow
            | Kind::AuthorBookCount
            | Kind::CategoryBookCount => self.entity,
            Kind::BookPage
            | Kind::SearchPage
            | Kind::AuthorPage
            | Kind::AuthorBooksPage
            | Kind::CategoryList => self.list,
            Kind::BorrowPage => self.private,
            Kind::Statistics => self.statistics,
        }
    }

    fn jittered(&self, ttl: Duration, key: &str) -> Duration {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let noise = (keys::text_hash(key) ^ u64::from(nanos)) % 10_000;
        let cut = self.jitter.clamp(0.0, 0.9) * (noise as f64 / 10_000.0);
        ttl.mul_f64(1.0 - cut).max(Duration::from_millis(1))
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    pub prefix: String,
    pub redis_url: String,
    pub l1_max_bytes: u64,
    pub ttls: Ttls,
    /// How long L1 entries may be served while invalidation events are not
    /// arriving.
    pub untrusted_cap: Duration,
    pub command_timeout: Duration,
    pub breaker_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Both,
            prefix: "biblio".into(),
            redis_url: "redis://127.0.0.1:6379".into(),
            l1_max_bytes: 64 * 1024 * 1024,
            ttls: Ttls::default(),
            untrusted_cap: Duration::from_secs(1),
            command_timeout: Duration::from_millis(250),
            breaker_interval: Duration::from_secs(1),
        }
    }
}

/// The state of the cache tiers, for `/readyz`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub mode: String,
    /// "up", "degraded" (Redis unreachable: serving from L1 and the
    /// database) or "disabled".
    pub status: &'static str,
    pub l1_bytes: u64,
    pub subscriber: &'static str,
    pub pending_invalidations: bool,
}

/// A cached list: the ordered ids of one page and the total it was cut
/// from. Items resolve through the entity cache, so an entity update costs
/// one eviction and leaves the lists alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdPage {
    pub ids: Vec<Uuid>,
    pub total: u64,
}

/// What [`Cache::prime`] checks: the invalidation counters before the query.
#[derive(Debug, Clone, Default)]
pub struct PrimeTicket {
    l1: Option<l1::GlobalTicket>,
    l2: Option<fred::bytes::Bytes>,
}

type FlightResult<V> = Option<Result<Option<Arc<V>>, LoadError>>;

/// A key as each tier knows it: list entries get a local counter in L1.
struct CacheKey {
    l1: l1::Key,
    /// `None`: do not use L2 for this key (a list whose group generation
    /// could not be read, so its L2 key is unknown).
    l2: Option<String>,
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

    pub fn release(&self) {
        self.release.add_permits(1);
    }
}

struct StatisticsSnapshot {
    value: Arc<dyn Any + Send + Sync>,
    /// The statistics group's local counter when it was loaded.
    local: u64,
}

struct Inner {
    mode: Mode,
    keys: Keys,
    /// Present in every mode but `Off`; in `L2` mode it only tracks group
    /// generations.
    l1: Option<l1::Store>,
    l2: Option<l2::Store>,
    metrics: Arc<Metrics>,
    ttls: Ttls,
    /// Identifies this replica in events.
    origin: String,
    flights: Mutex<HashMap<l1::Key, Arc<dyn Any + Send + Sync>>>,
    statistics: Mutex<Option<StatisticsSnapshot>>,
    refreshing_statistics: AtomicBool,
    pause: Mutex<Option<Arc<FillPause>>>,
    subscriber: Mutex<Option<invalidation::Subscriber>>,
}

#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// Delivers subscriber reports to the cache without keeping it alive.
struct SinkHandle(std::sync::Weak<Inner>);

impl invalidation::Sink for SinkHandle {
    fn event(&self, event: invalidation::Event) {
        if let Some(inner) = self.0.upgrade() {
            // The writer evicted before and after its script; its own echo
            // would only disturb fills in flight.
            if event.origin == inner.origin {
                return;
            }
            inner.metrics.event_received();
            let groups: Vec<(Group, Option<u64>)> = event
                .groups
                .iter()
                .filter_map(|(name, generation)| Some((Group::parse(name)?, Some(*generation))))
                .collect();
            let entries: Vec<l1::Key> = event
                .keys
                .iter()
                .filter_map(|key| inner.keys.parse_entity(key))
                .map(|(kind, id)| l1::Key::Entity(kind, id))
                .collect();
            inner.evict_locally(&entries, &groups);
        }
    }

    fn connected(&self) {
        if let Some(inner) = self.0.upgrade() {
            if let Some(l1) = &inner.l1 {
                l1.clear();
                l1.set_trusted(true);
            }
        }
    }

    fn disconnected(&self) {
        if let Some(inner) = self.0.upgrade() {
            if let Some(l1) = &inner.l1 {
                l1.set_trusted(false);
            }
        }
    }
}

impl Cache {
    /// Builds the tiers `settings.mode` asks for. Redis is connected in the
    /// background: if it is down, the cache starts degraded and recovers by
    /// itself.
    pub fn new(settings: &Settings) -> Result<Self, fred::error::Error> {
        let keys = Keys::new(&settings.prefix);
        let metrics = Arc::new(Metrics::default());
        let uses_l2 = matches!(settings.mode, Mode::L2 | Mode::Both);
        let connection = l2::Connection {
            url: settings.redis_url.clone(),
            command_timeout: settings.command_timeout,
            breaker_interval: settings.breaker_interval,
        };
        let l1 = (settings.mode != Mode::Off)
            .then(|| l1::Store::new(settings.l1_max_bytes, settings.untrusted_cap));
        let l2 = if uses_l2 {
            let counter_ttl = settings
                .ttls
                .entity
                .max(settings.ttls.list)
                .max(settings.ttls.statistics)
                * 2;
            Some(l2::Store::connect(
                &connection,
                keys.clone(),
                metrics.clone(),
                counter_ttl,
            )?)
        } else {
            None
        };
        let mut ttls = settings.ttls;
        ttls.l1_max = ttls.l1_max.min(ttls.entity);
        let inner = Arc::new(Inner {
            mode: settings.mode,
            keys: keys.clone(),
            l1,
            l2,
            metrics,
            ttls,
            origin: Uuid::now_v7().to_string(),
            flights: Mutex::new(HashMap::new()),
            statistics: Mutex::new(None),
            refreshing_statistics: AtomicBool::new(false),
            pause: Mutex::new(None),
            subscriber: Mutex::new(None),
        });
        if uses_l2 {
            let sink = Arc::new(SinkHandle(Arc::downgrade(&inner)));
            let subscriber =
                invalidation::Subscriber::start(&connection, keys.channel().to_owned(), sink)?;
            *lock(&inner.subscriber) = Some(subscriber);
            tokio::spawn(maintain(Arc::downgrade(&inner), settings.breaker_interval));
        }
        Ok(Self { inner })
    }

    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn health(&self) -> Health {
        let inner = &self.inner;
        let subscriber = match &*lock(&inner.subscriber) {
            Some(subscriber) if subscriber.is_connected() => "connected",
            Some(_) => "disconnected",
            None => "none",
        };
        let (status, pending) = match &inner.l2 {
            None => (
                if inner.mode == Mode::Off {
                    "disabled"
                } else {
                    "up"
                },
                false,
            ),
            Some(l2) => (if l2.is_up() { "up" } else { "degraded" }, l2.has_pending()),
        };
        Health {
            mode: format!("{:?}", inner.mode).to_lowercase(),
            status,
            l1_bytes: inner.l1.as_ref().map_or(0, l1::Store::weighted_size),
            subscriber,
            pending_invalidations: pending,
        }
    }

    /// Holds the next fill of a key containing `key_contains` (tests only).
    #[doc(hidden)]
    pub fn pause_next_fill(&self, key_contains: &str) -> Arc<FillPause> {
        let pause = Arc::new(FillPause {
            key_contains: key_contains.to_owned(),
            reached: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        });
        *lock(&self.inner.pause) = Some(pause.clone());
        pause
    }

    /// An entity (or count) from L1 alone: `Some(None)` is a cached absence,
    /// `None` a miss. The warm path skips the DataLoader's batching (a task
    /// spawn and a timer) entirely.
    pub fn peek<V: Send + Sync + 'static>(&self, kind: Kind, id: Uuid) -> Option<Option<Arc<V>>> {
        let l1 = self.inner.l1_entries()?;
        let hit = downcast::<V>(l1.get(&l1::Key::Entity(kind, id))?)?;
        self.inner.metrics.l1(kind, 1, 0);
        Some(hit)
    }

    /// Entities (or per-id counts) by id. `load` gets the ids that missed
    /// every tier and returns those it found; the others are cached as absent.
    pub async fn entities<V, F, Fut>(
        &self,
        kind: Kind,
        ids: &[Uuid],
        load: F,
    ) -> Result<HashMap<Uuid, Arc<V>>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn(Vec<Uuid>) -> Fut,
        Fut: Future<Output = Result<HashMap<Uuid, V>, LoadError>>,
    {
        let keys = ids
            .iter()
            .map(|id| CacheKey {
                l1: l1::Key::Entity(kind, *id),
                l2: Some(self.inner.keys.entity(kind, *id)),
            })
            .collect();
        let values = self
            .inner
            .read_through::<V, _, _>(kind, keys, |indices| {
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

    /// A list entry of `group`, keyed by `params` under the group's current
    /// generation.
    pub async fn list<V, F, Fut>(
        &self,
        kind: Kind,
        group: Group,
        params: &str,
        load: F,
    ) -> Result<Arc<V>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, LoadError>>,
    {
        let (key, _) = self.inner.list_key(kind, &group, params).await;
        self.inner.read_one(kind, key, load).await
    }

    /// `statistics`: like [`Cache::list`], but when its entry has only expired
    /// (no write touched it since), the previous value is served while one
    /// request refreshes it in the background. After a write, the next read
    /// waits for the single refresh, so a write is never hidden.
    pub async fn statistics<V, F, Fut>(&self, load: F) -> Result<Arc<V>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V, LoadError>> + Send + 'static,
    {
        let inner = &self.inner;
        let (key, local) = inner
            .list_key(Kind::Statistics, &Group::Statistics, "all")
            .await;
        if let Some(l1) = inner.l1_entries() {
            if let Some(Some(value)) = l1.get(&key.l1) {
                inner.metrics.l1(Kind::Statistics, 1, 0);
                if let Ok(value) = value.downcast::<V>() {
                    return Ok(value);
                }
            }
        }
        let previous = lock(&inner.statistics)
            .as_ref()
            .filter(|snapshot| snapshot.local == local)
            .and_then(|snapshot| snapshot.value.clone().downcast::<V>().ok());
        let load = Arc::new(load);
        if let Some(previous) = previous {
            if !inner.refreshing_statistics.swap(true, Ordering::AcqRel) {
                let cache = self.clone();
                tokio::spawn(async move {
                    let _ = cache.load_statistics(key, local, move || load()).await;
                    cache
                        .inner
                        .refreshing_statistics
                        .store(false, Ordering::Release);
                });
            }
            return Ok(previous);
        }
        self.load_statistics(key, local, move || load()).await
    }

    async fn load_statistics<V, F, Fut>(
        &self,
        key: CacheKey,
        local: u64,
        load: F,
    ) -> Result<Arc<V>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, LoadError>>,
    {
        let value = self.inner.read_one(Kind::Statistics, key, load).await?;
        *lock(&self.inner.statistics) = Some(StatisticsSnapshot {
            value: value.clone(),
            local,
        });
        Ok(value)
    }

    /// Stores rows a list query returned as entities, in both tiers, unless
    /// any invalidation happened since `ticket` was taken (before the query
    /// ran): per-key guards are impossible here, since the keys are only
    /// known from the query, so the guard is every write's counter.
    pub async fn prime<V>(&self, kind: Kind, ticket: PrimeTicket, values: &[(Uuid, Arc<V>)])
    where
        V: Serialize + Send + Sync + 'static,
    {
        let inner = &self.inner;
        let mut fills = Vec::new();
        for (id, value) in values {
            let key = inner.keys.entity(kind, *id);
            let bytes = codec::encode(&Slot::Present(value.as_ref())).unwrap_or_default();
            if let (Some(l1), Some(global)) = (inner.l1_entries(), ticket.l1) {
                let ttl = inner
                    .ttls
                    .jittered(inner.ttls.l2(kind, false).min(inner.ttls.l1_max), &key);
                let value: l1::Value = Some(value.clone() as Arc<dyn Any + Send + Sync>);
                let entry = l1::Entry::new(value, bytes.len(), ttl);
                if !l1.prime(l1::Key::Entity(kind, *id), global, entry) {
                    return;
                }
            }
            if let Some(sequence) = &ticket.l2 {
                fills.push(l2::Fill {
                    guard: inner.keys.sequence(),
                    expected: sequence.clone(),
                    ttl: inner.ttls.jittered(inner.ttls.l2(kind, false), &key),
                    key,
                    bytes,
                });
            }
        }
        if let Some(l2) = inner.l2() {
            l2.fill(fills).await;
        }
    }

    /// A ticket for [`Cache::prime`], taken before the query whose rows it
    /// primes. Costs a round trip with L2, so it is taken on cold loads only.
    pub async fn prime_ticket(&self) -> PrimeTicket {
        let inner = &self.inner;
        let l1 = inner.l1_entries().map(l1::Store::global_ticket);
        let l2 = match inner.l2() {
            Some(l2) => l2.sequence().await,
            None => None,
        };
        PrimeTicket { l1, l2 }
    }

    /// Makes every replica forget what `change` made stale; see the module
    /// documentation for the order of steps.
    pub async fn invalidate(&self, change: &Change) {
        let inner = &self.inner;
        if inner.mode == Mode::Off {
            return;
        }
        let Invalidation { entries, groups } = change.invalidation();
        let local: Vec<l1::Key> = entries
            .iter()
            .map(|(kind, id)| l1::Key::Entity(*kind, *id))
            .collect();
        let unknown: Vec<(Group, Option<u64>)> =
            groups.iter().map(|group| (*group, None)).collect();
        inner.evict_locally(&local, &unknown);
        if let Some(l2) = &inner.l2 {
            let keys: Vec<String> = entries
                .iter()
                .map(|(kind, id)| inner.keys.entity(*kind, *id))
                .collect();
            if let Some(generations) = l2.invalidate(&inner.origin, &keys, &groups).await {
                let known: Vec<(Group, Option<u64>)> = generations
                    .into_iter()
                    .map(|(group, generation)| (group, Some(generation)))
                    .collect();
                inner.evict_locally(&local, &known);
            } else {
                inner.evict_locally(&local, &unknown);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Keeps a replica's L2 honest after an outage: probes Redis while the
/// breaker is open and replays the invalidations it could not send.
async fn maintain(inner: std::sync::Weak<Inner>, interval: Duration) {
    let tick = (interval / 4).max(Duration::from_millis(25));
    loop {
        tokio::time::sleep(tick).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let Some(l2) = &inner.l2 else {
            return;
        };
        if !l2.has_pending() && l2.is_up() {
            continue;
        }
        if l2.probe().await && l2.has_pending() {
            if let Some(generations) = l2.replay_pending(&inner.origin).await {
                for (group, generation) in generations {
                    if let Some(l1) = &inner.l1 {
                        l1.learn_generation(group, generation);
                    }
                }
            }
        }
    }
}

impl Inner {
    /// L1 when it holds entries (not in `L2` mode, where it only tracks
    /// generations).
    fn l1_entries(&self) -> Option<&l1::Store> {
        match self.mode {
            Mode::L1 | Mode::Both => self.l1.as_ref(),
            Mode::Off | Mode::L2 => None,
        }
    }

    fn l2(&self) -> Option<&l2::Store> {
        self.l2.as_ref()
    }

    /// The keys of a list entry, and the group's local counter.
    async fn list_key(&self, kind: Kind, group: &Group, params: &str) -> (CacheKey, u64) {
        let (local, mut remote) = self.l1.as_ref().map_or((0, None), |l1| l1.group(group));
        if remote.is_none() {
            if let Some(l2) = self.l2() {
                remote = l2.generation(group).await;
                if let (Some(l1), Some(generation)) = (&self.l1, remote) {
                    l1.learn_generation(*group, generation);
                }
            }
        }
        let shared = self.keys.list(kind, remote.unwrap_or(0), params);
        let l1_key = l1::Key::List(format!("{shared}#{local}").into_boxed_str());
        (
            CacheKey {
                l1: l1_key,
                l2: remote.map(|_| shared),
            },
            local,
        )
    }

    /// Evicts keys from L1, cancels their flights so no later reader joins a
    /// load that began before the write, and moves groups locally.
    fn evict_locally(&self, keys: &[l1::Key], groups: &[(Group, Option<u64>)]) {
        if let Some(l1) = &self.l1 {
            for key in keys {
                l1.invalidate(key);
            }
            for (group, generation) in groups {
                l1.bump_group(*group, *generation);
            }
        }
        let mut flights = lock(&self.flights);
        for key in keys {
            flights.remove(key);
        }
    }

    /// The read path for one key that always has a value (a list entry).
    async fn read_one<V, F, Fut>(
        &self,
        kind: Kind,
        key: CacheKey,
        load: F,
    ) -> Result<Arc<V>, LoadError>
    where
        V: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, LoadError>>,
    {
        self.read_through::<V, _, _>(kind, vec![key], |_| {
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
                if let Some(value) = l1.get(&key.l1) {
                    if let Some(value) = downcast::<V>(value) {
                        *slot = Some(value);
                        hits += 1;
                    }
                }
            }
            self.metrics.l1(kind, hits, n - hits);
        }
        let missing: Vec<usize> = (0..n).filter(|i| out[*i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out.into_iter().map(Option::flatten).collect());
        }

        // 2. Single flight: join loads in progress, own the rest.
        let mut owned: Vec<Owned<V>> = Vec::new();
        let mut waiting: Vec<(usize, watch::Receiver<FlightResult<V>>)> = Vec::new();
        {
            let mut flights = lock(&self.flights);
            for i in missing {
                let key = &keys[i].l1;
                let joined = flights.get(key).and_then(|flight| {
                    flight
                        .clone()
                        .downcast::<watch::Sender<FlightResult<V>>>()
                        .ok()
                });
                match joined {
                    Some(sender) => waiting.push((i, sender.subscribe())),
                    None => {
                        let (sender, _) = watch::channel(None);
                        let sender = Arc::new(sender);
                        flights.insert(key.clone(), sender.clone());
                        owned.push(Owned {
                            index: i,
                            sender,
                            ticket: self.l1.as_ref().map(|l1| l1.ticket(key)),
                            version: None,
                        });
                    }
                }
            }
        }
        let guard = FlightGuard {
            flights: &self.flights,
            keys: owned
                .iter()
                .map(|o| (keys[o.index].l1.clone(), o.sender.clone()))
                .collect(),
        };

        let result = self
            .load_owned::<V, _, _>(kind, &keys, &mut owned, &load)
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
        load: &F,
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
                let Some(o) = owned.iter().find(|o| o.index == index) else {
                    continue;
                };
                let Some(ticket) = o.ticket else {
                    continue;
                };
                let ttl = self.ttls.l2(kind, value.is_none()).min(self.ttls.l1_max);
                let ttl = self
                    .ttls
                    .jittered(ttl, keys[index].l2.as_deref().unwrap_or_default());
                let value: l1::Value = value.map(|v| v as Arc<dyn Any + Send + Sync>);
                l1.insert(
                    keys[index].l1.clone(),
                    ticket,
                    l1::Entry::new(value, len, ttl),
                );
            }
        }
        Ok(values)
    }

    async fn hold_if_paused(&self, keys: &[CacheKey], indices: &[usize]) {
        let pause = {
            let mut slot = lock(&self.pause);
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

struct Owned<V> {
    index: usize,
    sender: Arc<watch::Sender<FlightResult<V>>>,
    ticket: Option<l1::Ticket>,
    /// The L2 version read with the MGET (empty if none); `None` if L2 was
    /// not consulted, in which case L2 is not filled either.
    version: Option<fred::bytes::Bytes>,
}

/// Removes this call's flights when it ends, even if it is cancelled, so
/// later readers start a load of their own instead of waiting forever.
struct FlightGuard<'a, V> {
    flights: &'a Mutex<HashMap<l1::Key, Arc<dyn Any + Send + Sync>>>,
    keys: Vec<(l1::Key, Arc<watch::Sender<FlightResult<V>>>)>,
}

impl<V> Drop for FlightGuard<'_, V> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        for (key, sender) in &self.keys {
            let ours = flights.get(key).is_some_and(|flight| {
                std::ptr::eq(
                    Arc::as_ptr(flight) as *const u8,
                    Arc::as_ptr(sender) as *const u8,
                )
            });
            if ours {
                flights.remove(key);
            }
        }
    }
}

fn downcast<V: Send + Sync + 'static>(value: l1::Value) -> Option<Option<Arc<V>>> {
    match value {
        None => Some(None),
        Some(value) => value.downcast::<V>().ok().map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l1_only() -> Cache {
        Cache::new(&Settings {
            mode: Mode::L1,
            ..Settings::default()
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_loaded_value_is_then_an_l1_hit_and_absent_ids_are_remembered() {
        let cache = l1_only();
        let (present, absent) = (Uuid::now_v7(), Uuid::now_v7());
        let loads = std::sync::atomic::AtomicUsize::new(0);
        let load = |wanted: Vec<Uuid>| {
            loads.fetch_add(1, Ordering::SeqCst);
            let found: HashMap<Uuid, u64> = wanted
                .into_iter()
                .filter(|id| *id == present)
                .map(|id| (id, 7))
                .collect();
            async move { Ok(found) }
        };
        let first = cache
            .entities(Kind::Book, &[present, absent], load)
            .await
            .unwrap();
        assert_eq!(first.get(&present).map(|v| **v), Some(7));
        assert!(!first.contains_key(&absent));
        assert_eq!(
            cache
                .peek::<u64>(Kind::Book, present)
                .map(|v| v.map(|v| *v)),
            Some(Some(7))
        );
        assert_eq!(
            cache.peek::<u64>(Kind::Book, absent).map(|v| v.is_none()),
            Some(true)
        );
        cache
            .entities(Kind::Book, &[present, absent], load)
            .await
            .unwrap();
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "the second read was served from L1"
        );
    }
}
