//! `serve`'s options (also `biblio`'s without a command), each read from
//! the command line or the environment, defaulting to [`Config::default`],
//! and resolved into a [`Config`].
use super::*;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BIBLIO_BIND", default_value_t = DEFAULTS.bind)]
    pub bind: SocketAddr,
    /// A PostgreSQL streaming standby of --database-url's server that cache
    /// misses may read from (repeat for more; comma-separated in the
    /// environment). A read goes to a standby only once it has replayed
    /// every write whose invalidation this replica knows of, so no fill is
    /// older than an invalidation; writes, and reads inside them, go to
    /// the primary.
    // The environment's value is not shown in --help: it may hold a password.
    #[arg(
        long = "database-read-url",
        env = "DATABASE_READ_URLS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub database_read_urls: Vec<String>,
    /// How far (in milliseconds of replay) a read replica may lag behind the
    /// primary before it is skipped and reported in /readyz and /metrics.
    #[arg(long, env = "BIBLIO_DATABASE_READ_MAX_LAG_MS", default_value_t = DEFAULTS.database_read_max_lag.as_millis() as u64)]
    pub database_read_max_lag_ms: u64,
    /// The most connections each replica keeps open to the database (and
    /// to each read replica): size it so that every replica's pool, and
    /// other programs', fit under PostgreSQL's max_connections. Default:
    /// 20 on PostgreSQL, 8 on SQLite.
    #[arg(long, env = "BIBLIO_DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub database_max_connections: Option<u32>,
    /// Redis: the shared cache tier and the invalidation bus between replicas.
    /// `redis://` is plaintext, `rediss://` TLS;
    /// `redis-sentinel://HOST:26379[,HOST:PORT...]?sentinelServiceName=NAME`
    /// (`rediss-sentinel://` for TLS) asks Sentinel for the primary and
    /// follows failovers; `redis-cluster://HOST:PORT[,HOST:PORT...]`
    /// (`rediss-cluster://` for TLS) joins a Redis Cluster; other schemes
    /// are refused.
    #[arg(
        long,
        env = "REDIS_URL",
        hide_env_values = true,
        default_value_t = DEFAULTS.cache.redis_url.clone()
    )]
    pub redis_url: String,
    /// PEM file of the CA certificates a `rediss://` server's certificate must
    /// chain to. By default, the system's trusted roots.
    #[arg(long, env = "BIBLIO_REDIS_CA_FILE")]
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// Which cache tiers serve reads.
    #[arg(long, env = "BIBLIO_CACHE_MODE", value_enum, default_value_t = DEFAULTS.cache.mode)]
    pub cache_mode: Mode,
    /// Prefix of every cache key. By default `biblio-<deployment id>`, the
    /// id generated into the database by its first migration: replicas of
    /// one database share the cache and two databases never do. Set it only
    /// to name a deployment's keys yourself (keep it unique per database).
    #[arg(long, env = "BIBLIO_CACHE_PREFIX")]
    pub cache_prefix: Option<String>,
    /// Bound on the in-process cache (L1), in bytes.
    #[arg(long, env = "BIBLIO_CACHE_L1_BYTES", default_value_t = DEFAULTS.cache.l1_max_bytes)]
    pub cache_l1_bytes: u64,
    /// TTL of entities and counts, in seconds.
    #[arg(long, env = "BIBLIO_CACHE_ENTITY_TTL", default_value_t = DEFAULTS.cache.ttls.entity.as_secs())]
    pub cache_entity_ttl: u64,
    /// TTL of pages, search results and the category list, in seconds.
    #[arg(long, env = "BIBLIO_CACHE_LIST_TTL", default_value_t = DEFAULTS.cache.ttls.list.as_secs())]
    pub cache_list_ttl: u64,
    /// TTL of a user's borrow pages, in seconds.
    #[arg(long, env = "BIBLIO_CACHE_PRIVATE_TTL", default_value_t = DEFAULTS.cache.ttls.private.as_secs())]
    pub cache_private_ttl: u64,
    /// TTL of statistics, in seconds.
    #[arg(long, env = "BIBLIO_CACHE_STATISTICS_TTL", default_value_t = DEFAULTS.cache.ttls.statistics.as_secs())]
    pub cache_statistics_ttl: u64,
    /// TTL of negative entries (absent ids), in seconds.
    #[arg(long, env = "BIBLIO_CACHE_NEGATIVE_TTL", default_value_t = DEFAULTS.cache.ttls.negative.as_secs())]
    pub cache_negative_ttl: u64,
    /// Longest any L1 entry lives, in seconds (never longer than in L2).
    #[arg(long, env = "BIBLIO_CACHE_L1_TTL", default_value_t = DEFAULTS.cache.ttls.l1_max.as_secs())]
    pub cache_l1_ttl: u64,
    /// Each TTL is cut by a random fraction up to this.
    #[arg(long, env = "BIBLIO_CACHE_TTL_JITTER", default_value_t = DEFAULTS.cache.ttls.jitter)]
    pub cache_ttl_jitter: f64,
    /// How long L1 entries are served while invalidation events are not
    /// known to arrive (Redis paused or down, subscriber disconnected), in
    /// milliseconds: the staleness bound during a Redis fault.
    #[arg(long, env = "BIBLIO_CACHE_UNTRUSTED_CAP_MS", default_value_t = DEFAULTS.cache.untrusted_cap.as_millis() as u64)]
    pub cache_untrusted_cap_ms: u64,
    /// How long the invalidation bus may be silent (this replica's own
    /// heartbeats not heard back) before L1 and L2 stop being trusted, in
    /// milliseconds; heartbeats go out five times per interval.
    #[arg(long, env = "BIBLIO_CACHE_BUS_SILENCE_MS", default_value_t = DEFAULTS.cache.bus_silence.as_millis() as u64)]
    pub cache_bus_silence_ms: u64,
    /// How old an unpublished invalidation in the outbox must be before any
    /// replica publishes it (its writer does so at once), in milliseconds.
    #[arg(long, env = "BIBLIO_CACHE_OUTBOX_DELAY_MS", default_value_t = DEFAULTS.cache.outbox_delay.as_millis() as u64)]
    pub cache_outbox_delay_ms: u64,
    /// Timeout of each Redis command, in milliseconds.
    #[arg(long, env = "BIBLIO_REDIS_TIMEOUT_MS", default_value_t = DEFAULTS.cache.command_timeout.as_millis() as u64)]
    pub redis_timeout_ms: u64,
    /// After a Redis failure, how long to leave it alone before probing, in
    /// milliseconds.
    #[arg(long, env = "BIBLIO_REDIS_BREAKER_MS", default_value_t = DEFAULTS.cache.breaker_interval.as_millis() as u64)]
    pub redis_breaker_ms: u64,
    /// How often this replica publishes its stats snapshot to Redis (for
    /// `cacheStats` and `biblio cache stats`), in milliseconds; a snapshot
    /// expires after three intervals.
    #[arg(long, env = "BIBLIO_CACHE_STATS_INTERVAL_MS", default_value_t = DEFAULTS.cache.stats_interval.as_millis() as u64)]
    pub cache_stats_interval_ms: u64,
    /// Deepest selection nesting accepted, fragments expanded (introspection
    /// is allowed the depth its standard query needs).
    #[arg(long, env = "BIBLIO_MAX_DEPTH", default_value_t = DEFAULTS.limits.max_depth)]
    pub max_depth: usize,
    /// Highest query complexity accepted (each field costs 1; a page multiplies
    /// what is inside it by its page size; scans cost more).
    #[arg(long, env = "BIBLIO_MAX_COMPLEXITY", default_value_t = DEFAULTS.limits.max_complexity)]
    pub max_complexity: usize,
    /// Deepest nesting of brackets in a query and of values in variables.
    #[arg(long, env = "BIBLIO_MAX_NESTING", default_value_t = DEFAULTS.limits.max_nesting as u64,
          value_parser = clap::value_parser!(u64).range(1..=crate::graphql::NESTING_CEILING as u64))]
    pub max_nesting: u64,
    /// Most lexical tokens in a query.
    #[arg(long, env = "BIBLIO_MAX_TOKENS", default_value_t = DEFAULTS.limits.max_tokens)]
    pub max_tokens: usize,
    /// Most aliases in a query.
    #[arg(long, env = "BIBLIO_MAX_ALIASES", default_value_t = DEFAULTS.limits.max_aliases)]
    pub max_aliases: usize,
    /// Most fragment definitions in a query.
    #[arg(long, env = "BIBLIO_MAX_FRAGMENTS", default_value_t = DEFAULTS.limits.max_fragments)]
    pub max_fragments: usize,
    /// Most directives on one field or fragment.
    #[arg(long, env = "BIBLIO_MAX_DIRECTIVES", default_value_t = DEFAULTS.limits.max_directives)]
    pub max_directives: usize,
    /// Most fields in a query once its fragments are expanded, all its
    /// operations together.
    #[arg(long, env = "BIBLIO_MAX_FIELDS", default_value_t = DEFAULTS.limits.max_fields)]
    pub max_fields: usize,
    /// Largest `variables` of a request, in bytes as JSON.
    #[arg(long, env = "BIBLIO_MAX_VARIABLES_BYTES", default_value_t = DEFAULTS.limits.max_variables_bytes)]
    pub max_variables_bytes: usize,
    /// Most errors in one response; the rest are summarised in one more.
    #[arg(long, env = "BIBLIO_MAX_ERRORS", default_value_t = DEFAULTS.limits.max_errors)]
    pub max_errors: usize,
    /// Largest request body, in bytes; larger ones get 413.
    #[arg(long, env = "BIBLIO_BODY_LIMIT", default_value_t = DEFAULTS.body_limit)]
    pub body_limit: usize,
    /// Length of a loan, in days.
    #[arg(long, env = "BIBLIO_LOAN_DAYS", default_value_t = DEFAULTS.loan_period.num_days() as u32)]
    pub loan_days: u32,
    /// Lifetime of an access token, in hours.
    #[arg(long, env = "BIBLIO_TOKEN_TTL_HOURS", default_value_t = DEFAULTS.token_ttl.as_secs() / 3600)]
    pub token_ttl_hours: u64,
    /// The key that signs access tokens, as hex, at least 32 bytes (`openssl
    /// rand -hex 32`); give every replica the same one. Unset, the key the
    /// first replica generated and stored in the database is used. Never
    /// printed: `--help` hides its environment value.
    #[arg(long, env = "BIBLIO_TOKEN_SIGNING_KEY", hide_env_values = true,
          value_parser = crate::redact::SecretParser::<crate::auth::SigningKey>::new(crate::auth::signing_key::FLAG))]
    pub token_signing_key: Option<crate::auth::SigningKey>,
    /// Failed sign-ins allowed per e-mail in a window; then that e-mail is
    /// refused (429) until the window ends, even with the right password.
    #[arg(long, env = "BIBLIO_LOGIN_FAILURES_PER_EMAIL", default_value_t = DEFAULTS.throttle.failures_per_email)]
    pub login_failures_per_email: u32,
    /// The per-e-mail window, in seconds.
    #[arg(long, env = "BIBLIO_LOGIN_EMAIL_WINDOW_SECS", default_value_t = DEFAULTS.throttle.email_window.as_secs())]
    pub login_email_window_secs: u64,
    /// Sign-in attempts (logins and registrations) allowed per client
    /// address in a window.
    #[arg(long, env = "BIBLIO_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = DEFAULTS.throttle.attempts_per_address)]
    pub login_attempts_per_address: u32,
    /// The per-address window, in seconds.
    #[arg(long, env = "BIBLIO_LOGIN_ADDRESS_WINDOW_SECS", default_value_t = DEFAULTS.throttle.address_window.as_secs())]
    pub login_address_window_secs: u64,
    /// IPv6 clients are counted per network of this many leading bits (one
    /// host or LAN usually holds a whole /64); IPv4 clients per address.
    #[arg(long, env = "BIBLIO_LOGIN_IPV6_PREFIX", default_value_t = DEFAULTS.throttle.ipv6_prefix,
          value_parser = clap::value_parser!(u8).range(1..=128))]
    pub login_ipv6_prefix: u8,
    /// How many password hashes (sign-ins, registrations) this replica runs
    /// at once; beyond it a sign-in is refused at once (429, retry after a
    /// second), never queued. Each takes 19 MiB for tens of milliseconds.
    /// By default two per core, within an eighth of the memory.
    #[arg(long, env = "BIBLIO_MAX_PASSWORD_HASHES")]
    pub max_password_hashes: Option<usize>,
    /// Behind a load balancer: the header whose rightmost address is the
    /// client's (e.g. X-Forwarded-For). Unset, the TCP peer is the client;
    /// set it only if the balancer always writes the header, or clients
    /// could pick their own address.
    #[arg(long, env = "BIBLIO_CLIENT_ADDRESS_HEADER")]
    pub client_address_header: Option<String>,
    /// An origin whose browser scripts may call the API, as browsers send
    /// it (`https://app.example.org`); repeat for more, `*` for any. None
    /// by default.
    #[arg(
        long = "cors-origin",
        env = "BIBLIO_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Keep whole answers to queries in front of the executor, each valid
    /// while nothing it read has changed (needs the bus: `--cache-mode
    /// both` or `l2`).
    #[arg(long, env = "BIBLIO_RESPONSE_CACHE", value_enum,
          default_value_t = Switch::from(DEFAULTS.response_cache.is_some()))]
    pub response_cache: Switch,
    /// The response tier's memory budget, in bytes (answers and their keys).
    #[arg(long, env = "BIBLIO_RESPONSE_CACHE_BYTES", default_value_t = DEFAULTS.response_cache.unwrap_or_default())]
    pub response_cache_bytes: u64,
    /// How many seconds browsers and CDNs may use a shared answer without
    /// asking again (and as long again while revalidating). 0, the default,
    /// makes them revalidate every time, so nothing downstream is staler
    /// than the cache's bound.
    #[arg(long, env = "BIBLIO_HTTP_MAX_AGE", default_value_t = DEFAULTS.http_max_age)]
    pub http_max_age: u32,
    /// How many database calls of one request may run at once, so that one
    /// request of many fields leaves pooled connections for the others.
    #[arg(long, env = "BIBLIO_DB_CONNECTIONS_PER_REQUEST", default_value_t = DEFAULTS.db_connections_per_request)]
    pub db_connections_per_request: usize,
    /// How long a DataLoader gathers keys before it queries, in microseconds.
    /// 0 dispatches as soon as the resolvers that asked have yielded, which
    /// still batches a whole list (they are polled together) and measured best.
    #[arg(long, env = "BIBLIO_LOADER_DELAY_US", default_value_t = DEFAULTS.loader_delay.as_micros() as u64)]
    pub loader_delay_us: u64,
    /// Do not seed a small demo data set into an empty database. Demo data
    /// only ever goes into the default database (sqlite://biblio.db), never
    /// into one named with --database-url: fill that with `biblio seed`.
    #[arg(long, env = "BIBLIO_NO_DEMO_DATA")]
    pub no_demo_data: bool,
    /// Before reporting ready on /readyz, warm the cache as `biblio cache
    /// warm` does (Redis and this replica's L1); /readyz answers 503
    /// "warming" meanwhile. Skipped if Redis cannot be reached in 10 s.
    #[arg(long, env = "BIBLIO_WARM")]
    pub warm: bool,
    /// Run only trusted documents, registered with `biblio documents add`,
    /// sent by hash or in full; refuse every other query and learn no new
    /// persisted query at request time.
    #[arg(long, env = "BIBLIO_PERSISTED_ONLY")]
    pub persisted_only: bool,
    /// A secret that opens the dashboard's data (`/dashboard/data`) as a
    /// librarian's sign-in does, for monitoring hosts and operators without
    /// an account; at least 16 characters. Never printed: `--help` hides
    /// its environment value and only its digest is kept.
    #[arg(long, env = "BIBLIO_OPERATOR_TOKEN", hide_env_values = true,
          value_parser = crate::redact::SecretParser::<crate::auth::operator::OperatorToken>::new("--operator-token"))]
    pub operator_token: Option<crate::auth::operator::OperatorToken>,
    /// Who may read `/metrics`: `open` (anyone who can reach it, the
    /// default) or `operator-token` (only with `Authorization: Bearer
    /// <operator token>`, 401 otherwise; needs --operator-token).
    #[arg(long, env = "BIBLIO_METRICS_AUTH", value_enum, default_value_t = DEFAULTS.metrics_auth)]
    pub metrics_auth: MetricsAuth,
}

impl Default for ServeArgs {
    /// The defaults, with environment variables applied.
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Defaults::parse_from(["biblio"]).serve
    }
}

impl ServeArgs {
    pub fn into_config(self, database_url: String) -> Config {
        let demo_data_when_empty = !self.no_demo_data && database_url == DEFAULT_DATABASE_URL;
        Config {
            bind: self.bind,
            database_url,
            database_read_urls: self.database_read_urls,
            database_read_max_lag: Duration::from_millis(self.database_read_max_lag_ms),
            database_max_connections: self.database_max_connections,
            cache: Settings {
                mode: self.cache_mode,
                prefix: self.cache_prefix,
                redis_url: self.redis_url,
                redis_ca_file: self.redis_ca_file,
                l1_max_bytes: self.cache_l1_bytes,
                ttls: Ttls {
                    entity: Duration::from_secs(self.cache_entity_ttl),
                    list: Duration::from_secs(self.cache_list_ttl),
                    private: Duration::from_secs(self.cache_private_ttl),
                    statistics: Duration::from_secs(self.cache_statistics_ttl),
                    negative: Duration::from_secs(self.cache_negative_ttl),
                    l1_max: Duration::from_secs(self.cache_l1_ttl),
                    jitter: self.cache_ttl_jitter,
                },
                untrusted_cap: Duration::from_millis(self.cache_untrusted_cap_ms),
                bus_silence: Duration::from_millis(self.cache_bus_silence_ms),
                outbox_delay: Duration::from_millis(self.cache_outbox_delay_ms),
                command_timeout: Duration::from_millis(self.redis_timeout_ms),
                breaker_interval: Duration::from_millis(self.redis_breaker_ms),
                stats_interval: Duration::from_millis(self.cache_stats_interval_ms.max(10)),
                publishes_stats: true,
            },
            limits: Limits {
                max_depth: self.max_depth,
                max_complexity: self.max_complexity,
                max_nesting: self.max_nesting as usize,
                max_tokens: self.max_tokens,
                max_aliases: self.max_aliases,
                max_fragments: self.max_fragments,
                max_directives: self.max_directives,
                max_fields: self.max_fields,
                max_variables_bytes: self.max_variables_bytes,
                max_errors: self.max_errors,
            },
            body_limit: self.body_limit,
            loan_period: chrono::Duration::days(i64::from(self.loan_days)),
            token_ttl: Duration::from_secs(self.token_ttl_hours * 3600),
            token_signing_key: self.token_signing_key,
            throttle: crate::auth::throttle::Policy {
                failures_per_email: self.login_failures_per_email,
                email_window: Duration::from_secs(self.login_email_window_secs),
                attempts_per_address: self.login_attempts_per_address,
                address_window: Duration::from_secs(self.login_address_window_secs),
                ipv6_prefix: self.login_ipv6_prefix,
            },
            password_hashes: self
                .max_password_hashes
                .unwrap_or_else(crate::auth::hashing::default_capacity),
            client_address_header: self.client_address_header,
            cors_origins: self.cors_origins,
            response_cache: (self.response_cache == Switch::On)
                .then_some(self.response_cache_bytes),
            http_max_age: self.http_max_age,
            db_connections_per_request: self.db_connections_per_request,
            loader_delay: Duration::from_micros(self.loader_delay_us),
            demo_data_when_empty,
            persisted_only: self.persisted_only,
            warm: self.warm,
            operator_token: self.operator_token,
            metrics_auth: self.metrics_auth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_left_unset_gets_the_configuration_s_default() {
        let from_flags = ServeArgs::default().into_config(DEFAULT_DATABASE_URL.into());
        assert_eq!(
            format!("{from_flags:?}"),
            format!("{:?}", Config::default())
        );
    }
}
