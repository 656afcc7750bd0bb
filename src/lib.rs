//! biblio: a GraphQL service for a library's catalogue.
//!
//! A query, top to bottom:
//! - [`http`]: axum routes; `http::graphql` speaks GraphQL over HTTP
//!   (methods, media types, persisted queries via [`graphql::persisted`]),
//!   authenticates the token ([`auth`]) and asks the response tier.
//! - [`responses`]: whole answers kept per replica; one whose reads have
//!   not changed is sent as kept (or 304) and nothing below runs;
//!   concurrent misses of one query execute once.
//! - [`graphql`]: limits measured before and after parsing, then execution;
//!   resolvers validate input into [`domain`] values and read by id through
//!   L1, then the request's DataLoaders ([`graphql::loaders`]), recording
//!   every read for the response tier.
//! - [`cache`]: L1 (moka), single flight, one Redis MGET, one database
//!   load, fills guarded against concurrent invalidation; lists cache ids
//!   and totals under their group's generation.
//! - [`redis`]: the Redis gateway every Redis call goes through (the
//!   cache's L2 and bus, the sign-in throttle, persisted documents, stats
//!   snapshots): connections and TLS, the topology, the breaker, the Lua
//!   scripts and every key format.
//! - [`db`]: every SQL statement, one module per table, on SQLite or
//!   PostgreSQL via sea-orm; pages walk an index, totals read tallies,
//!   standbys serve only what they have replayed.
//!
//! Back up: the answer is kept with a stamp of what it read, given its ETag
//! and Cache-Control, compressed and sent.
//!
//! A mutation: a resolver in `graphql::mutation` validates, opens a [`db`]
//! write and hands it with a `cache::Change` to `Cache::commit`, which runs
//! to its end even if the client goes away: the statements and an outbox
//! row naming what they invalidate commit together (`cache::changes` maps
//! every change), then L1 is evicted, one script deletes the Redis entries,
//! moves versions and generations and publishes the event every other
//! replica evicts on, L1 is evicted again, and the outbox row goes. If
//! Redis does not take it, it stays pending, and any replica publishes
//! outbox rows a writer left. Other programs' writes reach the outbox
//! through triggers (`cache::foreign`).
//!
//! Around them: [`error`] (the one error type and its `extensions.code`),
//! [`app`] (build and run), [`cli`] and [`config`] (every default in one
//! place), [`startup`] (what stops a start, said as what to fix),
//! [`user_cli`] (the operator's `user` commands), [`seed`] (demo data),
//! [`warm`] (reads made ahead of clients) and [`cache_cli`] (`biblio
//! cache`), [`progress`] (their progress bar), [`telemetry`] (logs),
//! [`redact`] (passwords out of URLs shown), and [`metrics`] (what
//! `/metrics` shows; each layer keeps its own counters).
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
