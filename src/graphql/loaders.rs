//! Request-scoped DataLoaders: every read of an entity by id, and every
//! per-parent count, is collected across the resolvers of one request and
//! read through the shared cache as one batch per kind: one L1 pass, one
//! Redis MGET for the L1 misses, one `WHERE id IN (...)` for the rest. Each
//! request gets fresh loaders; what is shared lives in the cache below.
//! Their database reads go through the request's [`DbGate`].
use super::scope::DbGate;
use crate::cache::{self, Cache, Item, Of};
use crate::db::users::Profile;
use crate::db::{self, Db, Keyed};
use crate::error::LoadError;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{author, book, borrow_record, category};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Loads entities of table `E` by id, through the cache.
pub struct ById<E> {
    db: Db,
    cache: Cache,
    gate: Arc<DbGate>,
    table: PhantomData<fn() -> E>,
}

impl<E> Loader<Uuid> for ById<E>
where
    E: Keyed,
    E::Model: Item,
{
    type Value = Arc<E::Model>;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<E::Model>>, LoadError> {
        self.cache
            .entities(E::Model::KIND, ids, |missing| async move {
                Ok(self.gate.run(db::by_ids::<E>(&self.db, missing)).await?)
            })
            .await
    }
}

/// Loads user profiles (never the password hash) by id, through the cache.
pub struct Profiles {
    db: Db,
    cache: Cache,
    gate: Arc<DbGate>,
}

impl Loader<Uuid> for Profiles {
    type Value = Arc<Profile>;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<Profile>>, LoadError> {
        self.cache
            .entities(cache::USER, ids, |missing| async move {
                Ok(self
                    .gate
                    .run(db::users::profiles(&self.db, missing))
                    .await?)
            })
            .await
    }
}

/// Counts books per author or per category, through the cache.
pub struct BookCounts {
    db: Db,
    cache: Cache,
    gate: Arc<DbGate>,
    kind: Of<i64>,
    per: db::books::CountPer,
}

impl Loader<Uuid> for BookCounts {
    type Value = Arc<i64>;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<i64>>, LoadError> {
        self.cache
            .entities(self.kind, ids, |missing| async move {
                Ok(self
                    .gate
                    .run(db::books::counts(&self.db, self.per, &missing))
                    .await?)
            })
            .await
    }
}

pub type Cached<T> = DataLoader<T, HashMapCache>;

/// One request's loaders.
pub struct Loaders {
    pub books: Cached<ById<book::Entity>>,
    pub authors: Cached<ById<author::Entity>>,
    pub categories: Cached<ById<category::Entity>>,
    pub borrows: Cached<ById<borrow_record::Entity>>,
    pub users: Cached<Profiles>,
    pub books_per_author: Cached<BookCounts>,
    pub books_per_category: Cached<BookCounts>,
}

impl Loaders {
    /// `delay` is how long a loader collects keys before it dispatches a batch.
    pub fn new(db: &Db, cache: &Cache, gate: Arc<DbGate>, delay: Duration) -> Self {
        fn loader<T: Loader<Uuid>>(inner: T, delay: Duration) -> Cached<T> {
            DataLoader::with_cache(inner, tokio::spawn, HashMapCache::default()).delay(delay)
        }
        fn by_id<E>(db: &Db, cache: &Cache, gate: &Arc<DbGate>) -> ById<E> {
            ById {
                db: db.clone(),
                cache: cache.clone(),
                gate: gate.clone(),
                table: PhantomData,
            }
        }
        let counts = |kind, per| BookCounts {
            db: db.clone(),
            cache: cache.clone(),
            gate: gate.clone(),
            kind,
            per,
        };
        Self {
            books: loader(by_id(db, cache, &gate), delay),
            authors: loader(by_id(db, cache, &gate), delay),
            categories: loader(by_id(db, cache, &gate), delay),
            borrows: loader(by_id(db, cache, &gate), delay),
            users: loader(
                Profiles {
                    db: db.clone(),
                    cache: cache.clone(),
                    gate: gate.clone(),
                },
                delay,
            ),
            books_per_author: loader(
                counts(cache::AUTHOR_BOOK_COUNT, db::books::CountPer::Author),
                delay,
            ),
            books_per_category: loader(
                counts(cache::CATEGORY_BOOK_COUNT, db::books::CountPer::Category),
                delay,
            ),
        }
    }
}
