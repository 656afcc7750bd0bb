//! One request's state: who is asking, the process-wide services, how its
//! reads by id are made, and its share of the database pool.
//!
//! A read by id first looks in L1; only misses go to the request's
//! DataLoaders, which batch them across resolvers and read through the rest
//! of the cache. The loaders are made on the first miss, so a request served
//! from L1 never builds them.
//!
//! Every database call a request makes (its loaders' batches, its page and
//! search queries, its writes) goes through its [`DbGate`], which lets at
//! most `--db-connections-per-request` of them run at once: the fields of
//! one query run concurrently, and without it one request of many aliased
//! fields would take every pooled connection and make others wait.
use super::loaders::{Cached, Loaders};
use crate::auth::throttle::Throttle;
use crate::auth::{Hashers, Tokens, Viewer};
use crate::cache::{self, Cache, Item, List, Of, ReadLog};
use crate::db::aggregates::Statistics;
use crate::db::users::Profile;
use crate::db::Db;
use crate::domain::{Page, PageRequest, SearchText, Slice};
use crate::error::LoadError;
use crate::error::{Error, Result};
use crate::responses::Reads;
use async_graphql::dataloader::Loader;
use entity::{author, book, borrow_record, category};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use uuid::Uuid;

/// Process-wide state the resolvers share, reached through a [`Scope`].
pub struct Services {
    pub db: Db,
    pub cache: Cache,
    pub tokens: Tokens,
    pub throttle: Throttle,
    /// The places to hash passwords in, bounded per replica.
    pub hashers: Hashers,
    /// How long a borrow lasts before it is overdue.
    pub loan_period: chrono::Duration,
    /// How long a DataLoader gathers keys before dispatching a batch.
    pub loader_delay: Duration,
    /// How many database calls of one request may run at once.
    pub db_connections_per_request: usize,
}

/// One request's share of the database pool: at most `cap` of its database
/// calls run at once; the others wait for one of them to finish.
pub struct DbGate {
    permits: tokio::sync::Semaphore,
    cap: usize,
    /// Told how many calls this request holds at once, for tests.
    db: Db,
}

impl DbGate {
    pub fn new(db: Db, cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            permits: tokio::sync::Semaphore::new(cap),
            cap,
            db,
        }
    }

    /// Runs `work`, a database call, within the request's share.
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        let _permit = self.enter().await;
        work.await
    }

    /// Waits for a free place in the request's share and holds it until the
    /// permit is dropped: for a write, whose transaction holds a connection
    /// from its first statement to its commit.
    pub async fn enter(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // Only a closed semaphore refuses, and this one is never closed.
        let permit = self.permits.acquire().await.ok();
        let held = self.cap - self.permits.available_permits();
        self.db.note_connections_held_by_a_request(held);
        permit
    }
}

pub struct Scope {
    /// Who is asking; read through [`Scope::viewer`], which records that the
    /// answer depends on it.
    viewer: Viewer,
    /// Who sent the request, as far as can be told: what sign-in throttling
    /// counts per address.
    pub client: Option<IpAddr>,
    services: Arc<Services>,
    loaders: OnceLock<Loaders>,
    /// Made on the first database call, so a request served from the cache
    /// never builds it.
    db_gate: OnceLock<Arc<DbGate>>,
    /// Whether a field of this request has claimed its one password check.
    password_checked: AtomicBool,
    /// Everything this request read through the cache, so the response tier
    /// can keep its answer while none of it changes.
    reads: Arc<Reads>,
}

impl Scope {
    /// `reads` records what the request reads (see [`Reads`]).
    pub fn new(
        services: Arc<Services>,
        viewer: Viewer,
        client: Option<IpAddr>,
        reads: Arc<Reads>,
    ) -> Self {
        Self {
            viewer,
            client,
            services,
            loaders: OnceLock::new(),
            db_gate: OnceLock::new(),
            password_checked: AtomicBool::new(false),
            reads,
        }
    }

    /// Who is asking. The answer then depends on it, so it is kept for this
    /// viewer only.
    pub fn viewer(&self) -> Viewer {
        self.reads.viewer();
        self.viewer
    }

    /// This request reads something not through the cache (live
    /// counters): its answer is never kept by the response tier.
    pub fn uncacheable(&self) {
        self.reads.uncacheable();
    }

    /// Claims the request's one password check (`login`, `register`).
    /// Hashing is slow on purpose, so one request with many aliased sign-ins
    /// must not buy many guesses: every field after the first is refused
    /// before it reaches the throttle or the hasher.
    pub fn claim_password_check(&self) -> Result<()> {
        if self.password_checked.swap(true, Ordering::AcqRel) {
            return Err(Error::bad_input(
                "only one sign-in or registration per request",
            ));
        }
        Ok(())
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The request's share of the database pool; see [`DbGate`].
    pub fn db_gate(&self) -> &Arc<DbGate> {
        self.db_gate.get_or_init(|| {
            let services = &self.services;
            Arc::new(DbGate::new(
                services.db.clone(),
                services.db_connections_per_request,
            ))
        })
    }

    /// Runs `work`, a database call, within the request's share of the pool.
    pub async fn on_db<F: Future>(&self, work: F) -> F::Output {
        self.db_gate().run(work).await
    }

    fn loaders(&self) -> &Loaders {
        self.loaders.get_or_init(|| {
            let services = &self.services;
            Loaders::new(
                &services.db,
                &services.cache,
                self.db_gate().clone(),
                services.loader_delay,
            )
        })
    }

    async fn one<T, V>(
        &self,
        kind: Of<V>,
        id: Uuid,
        pick: fn(&Loaders) -> &Cached<T>,
    ) -> Result<Option<Arc<V>>, LoadError>
    where
        T: Loader<Uuid, Value = Arc<V>, Error = LoadError>,
        V: Send + Sync + 'static,
    {
        let found = match self.services.cache.peek(kind, id) {
            Some(hit) => hit,
            None => pick(self.loaders()).load_one(id).await?,
        };
        self.reads.entity(kind.kind(), id, found.is_some());
        Ok(found)
    }

    async fn many<T, V>(
        &self,
        kind: Of<V>,
        ids: Vec<Uuid>,
        pick: fn(&Loaders) -> &Cached<T>,
    ) -> Result<HashMap<Uuid, Arc<V>>, LoadError>
    where
        T: Loader<Uuid, Value = Arc<V>, Error = LoadError>,
        V: Send + Sync + 'static,
    {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in &ids {
            match self.services.cache.peek(kind, *id) {
                Some(Some(value)) => {
                    found.insert(*id, value);
                }
                Some(None) => {}
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            found.extend(pick(self.loaders()).load_many(missing).await?);
        }
        for id in ids {
            self.reads.entity(kind.kind(), id, found.contains_key(&id));
        }
        Ok(found)
    }

    /// A page of `list` through the cache: `load` runs its query, `resolve`
    /// reads the items of a cached page by id (through this scope, so they
    /// are recorded).
    pub async fn page<M, F, Fut, R, RFut>(
        &self,
        list: &List<'_>,
        request: PageRequest,
        load: F,
        resolve: R,
    ) -> Result<Page<Arc<M>>>
    where
        M: Item,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Page<M>>>,
        R: FnOnce(Vec<Uuid>) -> RFut,
        RFut: Future<Output = Result<HashMap<Uuid, Arc<M>>, LoadError>>,
    {
        let page = self
            .services
            .cache
            .page(list, &*self.reads, request, load, resolve)
            .await?;
        self.record(&page.items, page.changes_at);
        Ok(page)
    }

    /// A page of search results for `text` through the cache, its total
    /// kept apart from its pages ([`crate::cache::Cache::search_page`]):
    /// `load` is given the total when it is kept.
    pub async fn search_page<M, F, Fut, R, RFut>(
        &self,
        text: &SearchText,
        list: &List<'_>,
        request: PageRequest,
        load: F,
        resolve: R,
    ) -> Result<Page<Arc<M>>>
    where
        M: Item,
        F: Fn(Option<u64>) -> Fut,
        Fut: Future<Output = Result<Page<M>>>,
        R: FnOnce(Vec<Uuid>) -> RFut,
        RFut: Future<Output = Result<HashMap<Uuid, Arc<M>>, LoadError>>,
    {
        let page = self
            .services
            .cache
            .search_page(text, list, &*self.reads, request, load, resolve)
            .await?;
        self.record(&page.items, page.changes_at);
        Ok(page)
    }

    /// A connection's slice of `list` through the cache, as [`Scope::page`].
    pub async fn slice<M, F, Fut, R, RFut>(
        &self,
        list: &List<'_>,
        load: F,
        resolve: R,
    ) -> Result<Slice<Arc<M>>>
    where
        M: Item,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Slice<M>>>,
        R: FnOnce(Vec<Uuid>) -> RFut,
        RFut: Future<Output = Result<HashMap<Uuid, Arc<M>>, LoadError>>,
    {
        let slice = self
            .services
            .cache
            .slice(list, &*self.reads, load, resolve)
            .await?;
        self.record(&slice.items, slice.changes_at);
        Ok(slice)
    }

    /// Records the items of a page or slice, whose rows may have come from
    /// its query rather than through `resolve`, and when it changes alone.
    fn record<M: Item>(&self, items: &[Arc<M>], changes_at: Option<chrono::DateTime<chrono::Utc>>) {
        for item in items {
            self.reads.entity(M::KIND.kind(), item.id(), true);
        }
        if let Some(at) = changes_at {
            self.reads.changes_at(at);
        }
    }

    /// The catalogue statistics through the cache.
    pub async fn statistics(&self) -> Result<Arc<Statistics>, LoadError> {
        self.reads.list(&List::Statistics);
        let db = self.services.db.clone();
        let gate = self.db_gate().clone();
        self.services
            .cache
            .statistics(move || {
                let (db, gate) = (db.clone(), gate.clone());
                async move { Ok(gate.run(crate::db::aggregates::statistics(&db)).await?) }
            })
            .await
    }

    pub async fn book(&self, id: Uuid) -> Result<Option<Arc<book::Model>>, LoadError> {
        self.one(cache::BOOK, id, |l| &l.books).await
    }

    pub async fn books(
        &self,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<book::Model>>, LoadError> {
        self.many(cache::BOOK, ids, |l| &l.books).await
    }

    pub async fn author(&self, id: Uuid) -> Result<Option<Arc<author::Model>>, LoadError> {
        self.one(cache::AUTHOR, id, |l| &l.authors).await
    }

    pub async fn authors(
        &self,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<author::Model>>, LoadError> {
        self.many(cache::AUTHOR, ids, |l| &l.authors).await
    }

    pub async fn category(&self, id: Uuid) -> Result<Option<Arc<category::Model>>, LoadError> {
        self.one(cache::CATEGORY, id, |l| &l.categories).await
    }

    pub async fn categories(
        &self,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<category::Model>>, LoadError> {
        self.many(cache::CATEGORY, ids, |l| &l.categories).await
    }

    pub async fn borrows(
        &self,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<borrow_record::Model>>, LoadError> {
        self.many(cache::BORROW, ids, |l| &l.borrows).await
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<Arc<Profile>>, LoadError> {
        self.one(cache::USER, id, |l| &l.users).await
    }

    pub async fn author_book_count(&self, id: Uuid) -> Result<i64, LoadError> {
        Ok(self
            .one(cache::AUTHOR_BOOK_COUNT, id, |l| &l.books_per_author)
            .await?
            .map_or(0, |n| *n))
    }

    pub async fn category_book_count(&self, id: Uuid) -> Result<i64, LoadError> {
        Ok(self
            .one(cache::CATEGORY_BOOK_COUNT, id, |l| &l.books_per_category)
            .await?
            .map_or(0, |n| *n))
    }
}
