//! Lists and pages: a page's ids and total are cached under its list's key;
//! its items resolve through the entity cache, so an entity update costs one
//! eviction and leaves the lists alone. On a cold read the page query has
//! already returned the rows, so they are used as they are and primed into
//! the entity cache, which keeps a cold page at one statement; the priming
//! is guarded by every write's counter, since its keys are only known from
//! the query.
use super::codec::{self, Slot};
use super::keys::{Kind, SearchTotal};
use super::matching::{Ranged, Span};
use super::read::CacheKey;
use super::stamps::ReadLog;
use super::{l1, l2, Cache, Group, Inner, List, Of, AUTHOR, BOOK, BORROW, CATEGORY};
use crate::domain::cursor::Key as SortKey;
use crate::domain::{Page, PageRequest, SearchText, Slice};
use crate::error::{LoadError, Result};
use entity::{author, book, borrow_record, category};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A cached list: the ordered ids of one page (or a connection's slice)
/// and the total it was cut from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdPage {
    /// The page's ids in order; the items are read through the entity cache.
    pub ids: Vec<Uuid>,
    /// The count of the whole list, not of this page, so paging needs no
    /// second query.
    pub total: u64,
    /// Whether the list has items before this page: a connection's
    /// `hasPreviousPage`, found by the slice's query and kept with it.
    pub has_previous: bool,
    /// Whether the list has items after this page (`hasNextPage`).
    pub has_next: bool,
    /// When the page's answer changes with time alone, in milliseconds
    /// since the epoch ([`Page::changes_at`]): no tier keeps it past then.
    pub changes_at: Option<i64>,
    /// The sort keys of its first and last books, for a page of a ranged
    /// group (see `matching`); `None` otherwise, or with no book.
    pub span: Option<Span>,
}

impl IdPage {
    fn span(&self) -> Option<Span> {
        self.span.clone()
    }
}

impl IdPage {
    /// How much longer the page may be kept, if time alone changes it;
    /// zero once that moment has passed.
    pub(super) fn lifetime(&self) -> Option<Duration> {
        let changes_at = self.changes_at?;
        let left = changes_at.saturating_sub(chrono::Utc::now().timestamp_millis());
        Some(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }
}

/// What a page can hold: an entity cached by id.
pub trait Item: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The entity cache this item is primed into and resolved from.
    const KIND: Of<Self>;
    /// The id the page stores in place of the item.
    fn id(&self) -> Uuid;
    /// Its key in a ranged order, if it is a book.
    fn sort_key(&self, _order: Ranged) -> Option<SortKey> {
        None
    }
}

macro_rules! item {
    ($($model:ty => $kind:ident),*) => {$(
        impl Item for $model {
            const KIND: Of<Self> = $kind;
            fn id(&self) -> Uuid {
                self.id
            }
        }
    )*};
}
item!(author::Model => AUTHOR, category::Model => CATEGORY, borrow_record::Model => BORROW);

impl Item for book::Model {
    const KIND: Of<Self> = BOOK;
    fn id(&self) -> Uuid {
        self.id
    }
    fn sort_key(&self, order: Ranged) -> Option<SortKey> {
        Some(order.key(self))
    }
}

/// The invalidation counters before a list query, for [`Inner::prime`].
#[derive(Debug, Clone, Default)]
struct PrimeTicket {
    l1: Option<l1::GlobalTicket>,
    l2: Option<fred::bytes::Bytes>,
}

impl Cache {
    /// Reads the page `list` through the cache. `load` runs the page query;
    /// `resolve` reads the items of a cached page by id.
    pub async fn page<M, F, Fut, R, RFut>(
        &self,
        list: &List<'_>,
        reads: &dyn ReadLog,
        request: PageRequest,
        load: F,
        resolve: R,
    ) -> Result<Page<Arc<M>>>
    where
        M: Item,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Page<M>>>,
        R: FnOnce(Vec<Uuid>) -> RFut,
        RFut: Future<Output = std::result::Result<HashMap<Uuid, Arc<M>>, LoadError>>,
    {
        let load = || {
            let page = load();
            async move { page.await.map(Slice::from) }
        };
        let slice = self.slice(list, reads, load, resolve).await?;
        Ok(slice.into_page(request))
    }

    /// Reads the slice `list` (a page, or a connection's slice) through the
    /// cache, recording it in `reads`. `load` runs its query; `resolve`
    /// reads the items of a cached slice by id.
    pub async fn slice<M, F, Fut, R, RFut>(
        &self,
        list: &List<'_>,
        reads: &dyn ReadLog,
        load: F,
        resolve: R,
    ) -> Result<Slice<Arc<M>>>
    where
        M: Item,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Slice<M>>>,
        R: FnOnce(Vec<Uuid>) -> RFut,
        RFut: Future<Output = std::result::Result<HashMap<Uuid, Arc<M>>, LoadError>>,
    {
        self.slice_in(list, reads, load, resolve, Tiers::Both).await
    }

    /// [`Cache::slice`], through `tiers` (see [`Cache::search_page`]).
    async fn slice_in<M, F, Fut, R, RFut>(
        &self,
        list: &List<'_>,
        reads: &dyn ReadLog,
        load: F,
        resolve: R,
        tiers: Tiers,
    ) -> Result<Slice<Arc<M>>>
    where
        M: Item,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Slice<M>>>,
        R: FnOnce(Vec<Uuid>) -> RFut,
        RFut: Future<Output = std::result::Result<HashMap<Uuid, Arc<M>>, LoadError>>,
    {
        let inner = &self.inner;
        let loaded: Mutex<Option<(Vec<Arc<M>>, PrimeTicket)>> = Mutex::new(None);
        reads.list(list);
        let (mut key, _) = inner.list_key(list).await;
        if tiers == Tiers::L1 {
            key.l2 = None;
        }
        if key.ranged.is_some() {
            // Moves evict it by this key: see `l1`.
            reads.page(list.group(), &key.l1);
        }
        let ranged = list.group().ranged();
        let shape = (
            IdPage::lifetime as fn(&IdPage) -> _,
            IdPage::span as fn(&IdPage) -> _,
        );
        let read = inner.read_one(list.kind(), key, shape, || async {
            let ticket = Box::pin(inner.prime_ticket()).await;
            let slice = Box::pin(load()).await?;
            let items: Vec<Arc<M>> = slice.items.into_iter().map(Arc::new).collect();
            let ids = items.iter().map(|item| item.id()).collect();
            let span = ranged
                .and_then(|order| Span::of(items.iter().filter_map(|item| item.sort_key(order))));
            *loaded.lock() = Some((items, ticket));
            Ok(IdPage {
                ids,
                total: slice.total_count,
                has_previous: slice.has_previous,
                has_next: slice.has_next,
                changes_at: slice.changes_at.map(|at| at.timestamp_millis()),
                span,
            })
        });
        let ids: Arc<IdPage> = read.await?;
        if ids.lifetime().is_some_and(|left| left.is_zero()) {
            // Kept past the moment it changed (a TTL rounded by a tier, or
            // another replica's clock): read it afresh, keeping nothing.
            let slice = load().await?;
            inner.metrics.loaded(list.kind(), 1);
            return Ok(slice.map(Arc::new));
        }
        let loaded = loaded.lock().take();
        let items = match loaded {
            Some((items, ticket)) => {
                inner.prime(ticket, &items).await;
                items
            }
            None => {
                let mut found = resolve(ids.ids.clone()).await?;
                // An item deleted since the page was cached is left out; the
                // delete moved the group, so the next read has the new page.
                ids.ids.iter().filter_map(|id| found.remove(id)).collect()
            }
        };
        Ok(Slice {
            items,
            total_count: ids.total,
            has_previous: ids.has_previous,
            has_next: ids.has_next,
            changes_at: ids
                .changes_at
                .and_then(chrono::DateTime::from_timestamp_millis),
        })
    }
}

impl Cache {
    /// Reads a page of search results (`list`) as [`Cache::page`] does,
    /// with the total of its results kept in L1 apart from its pages, for
    /// the plans that count in a statement of their own: `load` is given
    /// the total when it is kept, and then cuts the page without counting.
    /// A book that moves within the results' title order (a retitle that
    /// only its author's name makes match) evicts the pages it passes but
    /// changes no total: at a million books a surname's 34,000 matches take
    /// SQLite 5-11 ms to count and 1-7 ms to page.
    ///
    /// The total is kept under the pages' group's local counter, which
    /// only a change of which books match advances ([`SearchTotal`]), and
    /// only while the bus is trusted: then every change heard of has
    /// advanced it, and one not yet heard of is within the bound, as for
    /// any L1 entry. (Untrusted, an entry is served for the cap after it
    /// was filled, and a page cut now with an older total would outlive
    /// it.) A page cut with a kept total is never stored in Redis: another
    /// replica's write may have moved the group's generation there before
    /// its event moved the counter here, and the page would then outlive
    /// the event under the new generation.
    pub async fn search_page<M, F, Fut, R, RFut>(
        &self,
        text: &SearchText,
        list: &List<'_>,
        reads: &dyn ReadLog,
        request: PageRequest,
        load: F,
        resolve: R,
    ) -> Result<Page<Arc<M>>>
    where
        M: Item,
        F: Fn(Option<u64>) -> Fut,
        Fut: Future<Output = Result<Page<M>>>,
        R: FnOnce(Vec<Uuid>) -> RFut,
        RFut: Future<Output = std::result::Result<HashMap<Uuid, Arc<M>>, LoadError>>,
    {
        let inner = &self.inner;
        let counting = || {
            inner.metrics.loaded(Kind::SearchTotal, 1);
            load(None)
        };
        let Some(l1) = inner.l1_entries().filter(|l1| l1.is_trusted()) else {
            return self.page(list, reads, request, counting, resolve).await;
        };
        let total = SearchTotal(text);
        // Read before the page: a change of the matches after it advances
        // the counter, and the total filled below lands where no one reads.
        let (local, _) = l1.group(&total.group());
        let shared = inner.keys.list(&total, 0);
        let key = l1::Key::List(format!("{shared}#{local}").into_boxed_str());
        if let Some(Some(kept)) = l1.get(&key).and_then(super::read::downcast::<u64>) {
            let cut = || {
                let page = load(Some(*kept));
                async move { page.await.map(Slice::from) }
            };
            let slice = self.slice_in(list, reads, cut, resolve, Tiers::L1).await?;
            return Ok(slice.into_page(request));
        }
        let ticket = l1.ticket(&key);
        let current_as_of = inner.sync.current_as_of();
        let page = self.page(list, reads, request, counting, resolve).await?;
        let ttl = inner
            .ttls
            .jittered(inner.ttls.l1(Kind::SearchTotal, false), &shared);
        let value: l1::Value = Some(Arc::new(page.total_count) as Arc<dyn Any + Send + Sync>);
        l1.insert(key, ticket, l1::Entry::new(value, 8, ttl, current_as_of));
        Ok(page)
    }
}

/// The tiers a list read may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tiers {
    /// L1 and L2, as every read does.
    Both,
    /// L1 alone: the value is kept in this process only.
    L1,
}

impl Inner {
    /// The keys of a list entry, and the group's local counter.
    pub(super) async fn list_key(&self, list: &List<'_>) -> (CacheKey, u64) {
        let group = list.group();
        // Watched only where L1 holds pages: see `evict_locally`.
        if let (Some(l1), Some(_)) = (self.l1_entries(), group.ranged()) {
            return self.ranged_key(l1, list, group).await;
        }
        let (local, mut remote) = self.l1.as_ref().map_or((0, None), |l1| l1.group(&group));
        if remote.is_none() {
            if let Some(l2) = self.l2() {
                remote = l2.generation(&group).await;
                if let (Some(l1), Some(generation)) = (&self.l1, remote) {
                    l1.learn_generation(group, generation);
                }
            }
        }
        let shared = self.keys.list(list, remote.unwrap_or(0));
        let l1_key = l1::Key::List(format!("{shared}#{local}").into_boxed_str());
        (
            CacheKey {
                l1: l1_key,
                l2: remote.map(|_| shared),
                ranged: None,
            },
            local,
        )
    }

    /// The key of a page of a ranged group, watched (see `l1`). Its L1 key
    /// names the group's local counter alone: a move changes the Redis
    /// generation without touching the pages it cannot reach. The
    /// generation is read after the watch began: a move evicts the watched
    /// page, or was seen before the watch, generation included.
    async fn ranged_key(&self, l1: &l1::Store, list: &List<'_>, group: Group) -> (CacheKey, u64) {
        let (local, _) = l1.group(&group);
        let l1_key = l1::Key::List(format!("{}#{local}", self.keys.list(list, 0)).into_boxed_str());
        l1.watch(group, &l1_key);
        let (_, mut remote) = l1.group(&group);
        if remote.is_none() {
            if let Some(l2) = self.l2() {
                remote = l2.generation(&group).await;
                if let Some(generation) = remote {
                    l1.learn_generation(group, generation);
                }
            }
        }
        (
            CacheKey {
                l1: l1_key,
                l2: remote.map(|generation| self.keys.list(list, generation)),
                ranged: Some(group),
            },
            local,
        )
    }

    /// A ticket for [`Inner::prime`], taken before the query whose rows it
    /// primes. Costs a round trip with L2, so it is taken on cold loads only.
    async fn prime_ticket(&self) -> PrimeTicket {
        let l1 = self.l1_entries().map(l1::Store::global_ticket);
        let l2 = match self.l2() {
            Some(l2) => l2.sequence().await,
            None => None,
        };
        PrimeTicket { l1, l2 }
    }

    /// Stores rows a list query returned as entities, in both tiers, unless
    /// any invalidation happened since `ticket` was taken (before the query
    /// ran): per-key guards are impossible here, since the keys are only
    /// known from the query, so the guard is every write's counter.
    async fn prime<M: Item>(&self, ticket: PrimeTicket, items: &[Arc<M>]) {
        let kind = M::KIND.kind();
        let current_as_of = self.sync.current_as_of();
        let mut fills = Vec::new();
        for (primed, item) in items.iter().enumerate() {
            let key = self.keys.entity(kind, item.id());
            let bytes = codec::encode(&Slot::Present(item.as_ref())).unwrap_or_default();
            if let (Some(l1), Some(global)) = (self.l1_entries(), ticket.l1) {
                let ttl = self.ttls.jittered(self.ttls.l1(kind, false), &key);
                let value: l1::Value = Some(item.clone() as Arc<dyn Any + Send + Sync>);
                let entry = l1::Entry::new(value, bytes.len(), ttl, current_as_of);
                if !l1.prime(l1::Key::Entity(kind, item.id()), global, entry) {
                    // The guard is every write's counter: the rest would
                    // be refused too.
                    self.metrics
                        .fills_refused(super::FillTier::L1, items.len() - primed);
                    return;
                }
            }
            if let Some(sequence) = &ticket.l2 {
                fills.push(l2::Fill {
                    guard: self.keys.sequence(),
                    expected: sequence.clone(),
                    ttl: self.ttls.jittered(self.ttls.l2(kind, false), &key),
                    key,
                    bytes,
                });
            }
        }
        if let Some(l2) = self.l2() {
            l2.fill(fills).await;
        }
    }
}
