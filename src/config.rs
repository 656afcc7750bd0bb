//! The service's settings, resolved from flags and environment by `cli`,
//! and every default in one place: [`Config::default`] (which takes each
//! component's own, such as `cache::Settings::default`) is what `--help`
//! shows and what a flag left unset gets, and [`budgets`] are the memory
//! bounds no flag sets.
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

/// The database used when none is named: a SQLite file in the working
/// directory, the only database demo data is ever put into unasked.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://biblio.db?mode=rwc";

/// Memory bounds of the process's smaller caches, which no flag sets (L1
/// and the response tier have flags: `--cache-l1-bytes`,
/// `--response-cache-bytes`).
pub mod budgets {
    const MIB: u64 = 1024 * 1024;
    /// Parsed and validated documents, by their text's hash.
    pub const PARSED_DOCUMENTS: u64 = 16 * MIB;
    /// This replica's copies of persisted documents.
    pub const PERSISTED_DOCUMENTS: u64 = 8 * MIB;
    /// The operations the response tier knows to be private, in bytes of
    /// their texts: forgetting one only costs its next answer a lookup
    /// under shared.
    pub const PRIVATE_OPERATIONS: u64 = 16 * MIB;
    /// The largest answer the response tier keeps: larger ones are rare
    /// (the biggest page of the schema is a few hundred KB) and would crowd
    /// out many small ones.
    pub const LARGEST_KEPT_ANSWER: usize = MIB as usize;
}

impl Default for Config {
    /// The service as `biblio` starts it with no flag and no environment.
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: DEFAULT_DATABASE_URL.into(),
            database_read_urls: Vec::new(),
            database_read_max_lag: Duration::from_secs(5),
            database_max_connections: None,
            cache: crate::cache::Settings::default(),
            limits: Limits::default(),
            body_limit: 1024 * 1024,
            loan_period: chrono::Duration::days(14),
            token_ttl: Duration::from_secs(24 * 3600),
            token_signing_key: None,
            throttle: crate::auth::throttle::Policy {
                failures_per_email: 10,
                email_window: Duration::from_secs(15 * 60),
                attempts_per_address: 30,
                address_window: Duration::from_secs(60),
                ipv6_prefix: 64,
            },
            password_hashes: crate::auth::hashing::default_capacity(),
            client_address_header: None,
            cors_origins: Vec::new(),
            response_cache: Some(64 * 1024 * 1024),
            http_max_age: 0,
            db_connections_per_request: 3,
            loader_delay: Duration::ZERO,
            demo_data_when_empty: true,
            persisted_only: false,
            warm: false,
            operator_token: None,
            metrics_auth: crate::http::MetricsAuth::Open,
        }
    }
}
