//! Request-scoped DataLoaders: every read of an entity by id, and every
//! per-parent count, is collected across the resolvers of one request and
//! sent as one `WHERE id IN (...)` query per kind. Each request gets fresh
//! loaders, so nothing is shared between users here; the shared tiers come
//! below this layer.
use crate::db::Db;
use crate::error::LoadError;
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use entity::{author, book, borrow_record, category, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;
use uuid::Uuid;

/// An entity whose primary key is a UUID column.
pub trait KeyedById: EntityTrait {
    fn id_column() -> Self::Column;
    fn id_of(model: &Self::Model) -> Uuid;
}

macro_rules! keyed_by_id {
    ($($module:ident),*) => {$(
        impl KeyedById for $module::Entity {
            fn id_column() -> Self::Column {
                $module::Column::Id
            }
            fn id_of(model: &Self::Model) -> Uuid {
                model.id
            }
        }
    )*};
}
keyed_by_id!(author, book, borrow_record, category, user);

/// Loads entities of kind `E` by id.
pub struct ById<E> {
    db: Db,
    kind: PhantomData<fn() -> E>,
}

impl<E> Loader<Uuid> for ById<E>
where
    E: KeyedById,
    E::Model: Clone + Send + Sync + 'static,
{
    type Value = E::Model;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, E::Model>, LoadError> {
        let rows = E::find()
            .filter(E::id_column().is_in(ids.iter().copied()))
            .all(self.db.conn())
            .await?;
        Ok(rows.into_iter().map(|row| (E::id_of(&row), row)).collect())
    }
}

/// Counts books grouped by one of their foreign keys (author or category).
pub struct BookCounts {
    db: Db,
    group_by: book::Column,
}

impl Loader<Uuid> for BookCounts {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, i64>, LoadError> {
        let counts: Vec<(Uuid, i64)> = book::Entity::find()
            .select_only()
            .column(self.group_by)
            .column_as(book::Column::Id.count(), "n")
            .filter(self.group_by.is_in(ids.iter().copied()))
            .group_by(self.group_by)
            .into_tuple()
            .all(self.db.conn())
            .await?;
        let mut counts: HashMap<Uuid, i64> = counts.into_iter().collect();
        for id in ids {
            counts.entry(*id).or_insert(0);
        }
        Ok(counts)
    }
}

type Cached<T> = DataLoader<T, HashMapCache>;

/// One request's loaders.
pub struct Loaders {
    pub books: Cached<ById<book::Entity>>,
    pub authors: Cached<ById<author::Entity>>,
    pub categories: Cached<ById<category::Entity>>,
    pub users: Cached<ById<user::Entity>>,
    pub borrows: Cached<ById<borrow_record::Entity>>,
    pub books_per_author: Cached<BookCounts>,
    pub books_per_category: Cached<BookCounts>,
}

impl Loaders {
    /// `delay` is how long a loader collects keys before it dispatches a batch.
    pub fn new(db: &Db, delay: Duration) -> Self {
        fn loader<T: Loader<Uuid>>(inner: T, delay: Duration) -> Cached<T> {
            DataLoader::with_cache(inner, tokio::spawn, HashMapCache::default()).delay(delay)
        }
        fn by_id<E>(db: &Db, delay: Duration) -> Cached<ById<E>>
        where
            E: KeyedById,
            E::Model: Clone + Send + Sync + 'static,
        {
            loader(
                ById {
                    db: db.clone(),
                    kind: PhantomData,
                },
                delay,
            )
        }
        let counts = |group_by| BookCounts {
            db: db.clone(),
            group_by,
        };
        Self {
            books: by_id(db, delay),
            authors: by_id(db, delay),
            categories: by_id(db, delay),
            users: by_id(db, delay),
            borrows: by_id(db, delay),
            books_per_author: loader(counts(book::Column::AuthorId), delay),
            books_per_category: loader(counts(book::Column::CategoryId), delay),
        }
    }
}
