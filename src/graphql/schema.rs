//! The schema: its root types, limits, and its SDL.
use super::mutation::Mutation;
use super::query::Query;
use async_graphql::{EmptySubscription, Schema};

pub type BiblioSchema = Schema<Query, Mutation, EmptySubscription>;

/// What a query may cost before it is refused.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
}

/// The schema; each request brings its [`super::Scope`] as data.
pub fn build_schema(limits: Limits) -> BiblioSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
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
