//! The service's settings, resolved from flags and environment by `cli`.
use crate::graphql::Limits;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    /// Standbys cache misses may read from (`--database-read-url`); empty:
    /// every read goes to `database_url`.
    pub database_read_urls: Vec<String>,
    /// Lag beyond which a standby is skipped (`--database-read-max-lag-ms`).
    pub database_read_max_lag: Duration,
    /// The most connections in the database pool, and in each standby's
    /// (`--database-max-connections`); `None`: 20 on PostgreSQL, 8 on SQLite.
    pub database_max_connections: Option<u32>,
    /// The cache tiers; `cache.redis_url` is the shared tier and the
    /// invalidation bus.
    pub cache: crate::cache::Settings,
    pub limits: Limits,
    pub body_limit: usize,
    pub loan_period: chrono::Duration,
    pub token_ttl: Duration,
    /// Signs tokens instead of the key stored in the database
    /// (`--token-signing-key`); its `Debug` prints no byte of it.
    pub token_signing_key: Option<crate::auth::SigningKey>,
    /// Sign-in throttling per e-mail and per client address.
    pub throttle: crate::auth::throttle::Policy,
    /// How many password hashes run at once (`--max-password-hashes`).
    pub password_hashes: usize,
    /// The header naming the client's address behind a load balancer (its
    /// rightmost address); `None`: the TCP peer.
    pub client_address_header: Option<String>,
    /// Origins whose browser scripts may call the API (`--cors-origin`);
    /// empty: none.
    pub cors_origins: Vec<String>,
    /// The response tier's budget in bytes; `None`: `--response-cache off`.
    pub response_cache: Option<u64>,
    /// `--http-max-age`, in seconds.
    pub http_max_age: u32,
    /// How many database calls of one request may run at once.
    pub db_connections_per_request: usize,
    pub loader_delay: Duration,
    /// Seed a small demo data set when the database is empty, so a newcomer
    /// sees data at once: only ever for the default SQLite database.
    pub demo_data_when_empty: bool,
    /// Run only trusted documents (`--persisted-only`).
    pub persisted_only: bool,
    /// Warm the cache before reporting ready (`--warm`).
    pub warm: bool,
    /// Opens `/dashboard/data` without a sign-in (`--operator-token`); its
    /// `Debug` prints no secret.
    pub operator_token: Option<crate::auth::operator::OperatorToken>,
    /// Who may read `/metrics` (`--metrics-auth`).
    pub metrics_auth: crate::http::MetricsAuth,
}
