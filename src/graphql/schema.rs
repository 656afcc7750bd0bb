use super::loaders::{Cached, Loaders};
use super::mutation::Mutation;
use super::query::Query;
use crate::auth::{Tokens, Viewer};
use crate::cache::Cache;
use crate::cache::Kind;
use crate::db::users::Profile;
use crate::db::Db;
use crate::error::LoadError;
use async_graphql::dataloader::Loader;
use async_graphql::{EmptySubscription, Schema};
use entity::{author, book, borrow_record, category};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;
use uuid::Uuid;

pub type BiblioSchema = Schema<Query, Mutation, EmptySubscription>;

/// What a query may cost before it is refused.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
}

/// Process-wide state the resolvers share.
pub struct Services {
    pub db: Db,
    pub cache: Cache,
    pub tokens: Tokens,
    /// How long a borrow lasts before it is overdue.
    pub loan_period: chrono::Duration,
    /// How long a DataLoader gathers keys before dispatching a batch.
    pub loader_delay: Duration,
}

/// One request's state: who is asking, and how its reads by id are made.
///
/// A read by id first looks in L1; only misses go to the request's
/// DataLoaders, which batch them across resolvers and read through the rest
/// of the cache. The loaders are made on the first miss, so a request served
/// from L1 never builds them.
pub struct Scope {
    pub viewer: Viewer,
    services: Arc<Services>,
    loaders: OnceLock<Loaders>,
}

impl Scope {
    pub fn new(services: Arc<Services>, viewer: Viewer) -> Self {
        Self {
            viewer,
            services,
            loaders: OnceLock::new(),
        }
    }

    fn loaders(&self) -> &Loaders {
        self.loaders.get_or_init(|| {
            let services = &self.services;
            Loaders::new(&services.db, &services.cache, services.loader_delay)
        })
    }

    async fn one<T, V>(
        &self,
        kind: Kind,
        id: Uuid,
        pick: fn(&Loaders) -> &Cached<T>,
    ) -> Result<Option<Arc<V>>, LoadError>
    where
        T: Loader<Uuid, Value = Arc<V>, Error = LoadError>,
        V: Send + Sync + 'static,
    {
        if let Some(hit) = self.services.cache.peek::<V>(kind, id) {
            return Ok(hit);
        }
        pick(self.loaders()).load_one(id).await
    }

    async fn many<T, V>(
        &self,
        kind: Kind,
        ids: Vec<Uuid>,
        pick: fn(&Loaders) -> &Cached<T>,
    ) -> Result<HashMap<Uuid, Arc<V>>, LoadError>
    where
        T: Loader<Uuid, Value = Arc<V>, Error = LoadError>,
        V: Send + Sync + 'static,
    {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.services.cache.peek::<V>(kind, id) {
                Some(Some(value)) => {
                    found.insert(id, value);
                }
                Some(None) => {}
                None => missing.push(id),
            }
        }
        if !missing.is_empty() {
            found.extend(pick(self.loaders()).load_many(missing).await?);
        }
        Ok(found)
    }

    pub async fn book(&self, id: Uuid) -> Result<Option<Arc<book::Model>>, LoadError> {
        self.one(Kind::Book, id, |l| &l.books).await
    }

    pub async fn books(
        &self,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<book::Model>>, LoadError> {
        self.many(Kind::Book, ids, |l| &l.books).await
    }

    pub async fn author(&self, id: Uuid) -> Result<Option<Arc<author::Model>>, LoadError> {
        self.one(Kind::Author, id, |l| &l.authors).await
    }

    pub async fn authors(
        &self,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<author::Model>>, LoadError> {
        self.many(Kind::Author, ids, |l| &l.authors).await
    }

    pub async fn category(&self, id: Uuid) -> Result<Option<Arc<category::Model>>, LoadError> {
        self.one(Kind::Category, id, |l| &l.categories).await
    }

    pub async fn categories(
        &self,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<category::Model>>, LoadError> {
        self.many(Kind::Category, ids, |l| &l.categories).await
    }

    pub async fn borrows(
        &self,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Arc<borrow_record::Model>>, LoadError> {
        self.many(Kind::Borrow, ids, |l| &l.borrows).await
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<Arc<Profile>>, LoadError> {
        self.one(Kind::User, id, |l| &l.users).await
    }

    pub async fn author_book_count(&self, id: Uuid) -> Result<i64, LoadError> {
        Ok(self
            .one(Kind::AuthorBookCount, id, |l| &l.books_per_author)
            .await?
            .map_or(0, |n| *n))
    }

    pub async fn category_book_count(&self, id: Uuid) -> Result<i64, LoadError> {
        Ok(self
            .one(Kind::CategoryBookCount, id, |l| &l.books_per_category)
            .await?
            .map_or(0, |n| *n))
    }
}

pub fn build_schema(services: Arc<Services>, limits: Limits) -> BiblioSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(services)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}
