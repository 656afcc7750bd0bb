//! biblio: a GraphQL service for a library's catalogue.
//!
//! A request's path through the crate, top to bottom:
//! - [`http`]: axum routes; GraphQL over HTTP, GraphiQL, health checks.
//! - [`graphql`]: the schema; resolvers validate input into [`domain`]
//!   values and read entities through L1, then request-scoped DataLoaders
//!   ([`graphql::loaders`]).
//! - [`cache`]: the tiers below the loaders, L1 (moka) and L2 (Redis), and
//!   the invalidation that keeps every replica's copies honest.
//! - [`redis`]: the Redis gateway every Redis call goes through (the
//!   cache's L2 and bus, the sign-in throttle, persisted documents, stats
//!   snapshots): connections and TLS, the topology, the breaker, the Lua
//!   scripts and every key format.
//! - [`db`]: every SQL statement, one module per table, on SQLite or
//!   PostgreSQL via sea-orm.
//!
//! Around them: [`auth`] (passwords, tokens, the viewer), [`error`] (the one
//! error type and its `extensions.code`), [`app`] (build and run),
//! [`cli`] and [`config`], [`startup`] (what stops a start, said as what to
//! fix), [`accounts`] (the operator's `user` commands), [`seed`] (demo
//! data), [`warm`] (reads made ahead of clients) and [`cache_cli`] (`biblio
//! cache`), [`progress`] (their progress bar), [`telemetry`] (logs),
//! [`redact`] (passwords out of URLs shown), and [`metrics`] (what `/metrics`
//! shows; each layer keeps its own counters).
pub mod app;
pub mod auth;
#[warn(missing_docs)]
pub mod cache;
pub mod cache_cli;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod progress;
pub mod redact;
pub mod redis;
pub mod responses;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod user_cli;
pub mod warm;
