//! One request's state: who is asking, the process-wide services, and how
//! its reads by id are made.
//!
//! A read by id first looks in L1; only misses go to the request's
//! DataLoaders, which batch them across resolvers and read through the rest
//! of the cache. The loaders are made on the first miss, so a request served
//! from L1 never builds them.
use super::loaders::{Cached, Loaders};
use crate::auth::throttle::Throttle;
use crate::auth::{Tokens, Viewer};
use crate::cache::{self, Cache, Of};
use crate::db::users::Profile;
use crate::db::Db;
use crate::error::LoadError;
use crate::error::{Error, Result};
use async_graphql::dataloader::Loader;
use entity::{author, book, borrow_record, category};
use std::collections::HashMap;
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
    /// How long a borrow lasts before it is overdue.
    pub loan_period: chrono::Duration,
    /// How long a DataLoader gathers keys before dispatching a batch.
    pub loader_delay: Duration,
}

pub struct Scope {
    pub viewer: Viewer,
    /// Who sent the request, as far as can be told: what sign-in throttling
    /// counts per address.
    pub client: Option<IpAddr>,
    services: Arc<Services>,
    loaders: OnceLock<Loaders>,
    /// Whether a field of this request has claimed its one password check.
    password_checked: AtomicBool,
}

impl Scope {
    pub fn new(services: Arc<Services>, viewer: Viewer, client: Option<IpAddr>) -> Self {
        Self {
            viewer,
            client,
            services,
            loaders: OnceLock::new(),
            password_checked: AtomicBool::new(false),
        }
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

    fn loaders(&self) -> &Loaders {
        self.loaders.get_or_init(|| {
            let services = &self.services;
            Loaders::new(&services.db, &services.cache, services.loader_delay)
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
        if let Some(hit) = self.services.cache.peek(kind, id) {
            return Ok(hit);
        }
        pick(self.loaders()).load_one(id).await
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
        for id in ids {
            match self.services.cache.peek(kind, id) {
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
