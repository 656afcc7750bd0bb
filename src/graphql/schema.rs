//! The schema: its root types, limits, and its SDL.
use super::mutation::Mutation;
use super::query::Query;
use super::Limits;
use async_graphql::{EmptySubscription, Schema};

pub type BiblioSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema; each request brings its [`super::Scope`] as data. Depth
/// and the other limits on the document's shape are checked before
/// validation (see [`super::Limits`]); complexity needs the schema's
/// weights, so async-graphql checks it, on a document already known small.
pub fn build_schema(limits: Limits) -> BiblioSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_complexity(limits.max_complexity)
        .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .finish()
        .sdl()
}
