//! Request-scoped DataLoaders: every read of an entity by id, and every
//! per-parent count, is collected across the resolvers of one request and
//! read through the shared cache as one batch per kind: one L1 pass, one
//! Redis MGET for the L1 misses, one `WHERE id IN (...)` for the rest. Each
//! request gets fresh loaders; what is shared lives in the cache below.
use crate::cache::{Cache, Kind};
use crate::db::users::Profile;
use crate::db::Db;
use crate::error::LoadError;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{author, book, borrow_record, category, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// An entity cached by id: its primary key column and cache kind.
pub trait CachedEntity: EntityTrait {
    const KIND: Kind;
    fn id_column() -> Self::Column;
    fn id_of(model: &Self::Model) -> Uuid;
}

macro_rules! cached_entity {
    ($($module:ident => $kind:ident),*) => {$(
        impl CachedEntity for $module::Entity {
            const KIND: Kind = Kind::$kind;
            fn id_column() -> Self::Column {
                $module::Column::Id
            }
            fn id_of(model: &Self::Model) -> Uuid {
                model.id
            }
        }
    )*};
}
cached_entity!(author => Author, book => Book, borrow_record => Borrow, category => Category, user => User);

/// Loads entities of kind `E` by id, through the cache.
pub struct ById<E> {
    db: Db,
    cache: Cache,
    kind: PhantomData<fn() -> E>,
}

async fn find_by_ids<E: CachedEntity>(
    db: &Db,
    ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, E::Model>, LoadError> {
    let rows = E::find()
        .filter(E::id_column().is_in(ids))
        .all(db.conn())
        .await
        .map_err(|err| LoadError(Arc::new(err)))?;
    Ok(rows.into_iter().map(|row| (E::id_of(&row), row)).collect())
}

impl<E> Loader<Uuid> for ById<E>
where
    E: CachedEntity,
    E::Model: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    type Value = Arc<E::Model>;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<E::Model>>, LoadError> {
        self.cache
            .entities(E::KIND, ids, |missing| find_by_ids::<E>(&self.db, missing))
            .await
    }
}

/// Loads user profiles (never the password hash) by id, through the cache.
pub struct Profiles {
    db: Db,
    cache: Cache,
}

impl Loader<Uuid> for Profiles {
    type Value = Arc<Profile>;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<Profile>>, LoadError> {
        self.cache
            .entities(Kind::User, ids, |missing| async move {
                let users = find_by_ids::<user::Entity>(&self.db, missing).await?;
                Ok(users
                    .into_iter()
                    .map(|(id, user)| (id, Profile::from(user)))
                    .collect())
            })
            .await
    }
}

/// Counts books grouped by one of their foreign keys (author or category).
pub struct BookCounts {
    db: Db,
    cache: Cache,
    kind: Kind,
    group_by: book::Column,
}

impl Loader<Uuid> for BookCounts {
    type Value = Arc<i64>;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Arc<i64>>, LoadError> {
        self.cache
            .entities(self.kind, ids, |missing| async move {
                let rows: Vec<(Uuid, i64)> = book::Entity::find()
                    .select_only()
                    .column(self.group_by)
                    .column_as(book::Column::Id.count(), "n")
                    .filter(self.group_by.is_in(missing.iter().copied()))
                    .group_by(self.group_by)
                    .into_tuple()
                    .all(self.db.conn())
                    .await
                    .map_err(|err| LoadError(Arc::new(err)))?;
                let mut counts: HashMap<Uuid, i64> = rows.into_iter().collect();
                for id in missing {
                    counts.entry(id).or_insert(0);
                }
                Ok(counts)
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
    pub fn new(db: &Db, cache: &Cache, delay: Duration) -> Self {
        fn loader<T: Loader<Uuid>>(inner: T, delay: Duration) -> Cached<T> {
            DataLoader::with_cache(inner, tokio::spawn, HashMapCache::default()).delay(delay)
        }
        fn by_id<E>(db: &Db, cache: &Cache) -> ById<E> {
            ById {
                db: db.clone(),
                cache: cache.clone(),
                kind: PhantomData,
            }
        }
        let counts = |kind, group_by| BookCounts {
            db: db.clone(),
            cache: cache.clone(),
            kind,
            group_by,
        };
        Self {
            books: loader(by_id(db, cache), delay),
            authors: loader(by_id(db, cache), delay),
            categories: loader(by_id(db, cache), delay),
            borrows: loader(by_id(db, cache), delay),
            users: loader(
                Profiles {
                    db: db.clone(),
                    cache: cache.clone(),
                },
                delay,
            ),
            books_per_author: loader(counts(Kind::AuthorBookCount, book::Column::AuthorId), delay),
            books_per_category: loader(
                counts(Kind::CategoryBookCount, book::Column::CategoryId),
                delay,
            ),
        }
    }
}
