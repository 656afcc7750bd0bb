use super::extension::ErrorPolicy;
use super::loaders::Loaders;
use super::mutation::Mutation;
use super::query::Query;
use crate::auth::{Tokens, Viewer};
use crate::cache::Cache;
use crate::db::Db;
use async_graphql::{EmptySubscription, Schema};
use std::sync::Arc;
use std::time::Duration;

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

/// One request's state: who is asking, and the loaders that batch and
/// memoize its reads.
pub struct Scope {
    pub viewer: Viewer,
    pub loaders: Loaders,
}

impl Scope {
    pub fn new(services: &Services, viewer: Viewer) -> Self {
        Self {
            viewer,
            loaders: Loaders::new(&services.db, &services.cache, services.loader_delay),
        }
    }
}

pub fn build_schema(services: Arc<Services>, limits: Limits) -> BiblioSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .data(services)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .extension(ErrorPolicy)
        .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}
