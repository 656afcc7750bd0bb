//! Building and running the service: connect and migrate the database, load
//! the token key, build the schema and router, bind the listener.
use crate::auth::throttle::Throttle;
use crate::auth::{Hashers, Tokens};
use crate::cache::Cache;
use crate::config::Config;
use crate::db::Db;
use crate::error::BoxError;
use crate::graphql::{build_schema, persisted, Documents, Services};
use crate::http::{router, AppState, MetricsAuth, Origins, RequestMetrics};
use crate::responses::{policy, Responses};
use crate::warm::Warmer;
use crate::{redact, seed, startup};
use axum::Router;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    router: Router,
    db: Db,
    cache: Cache,
    persisted: Arc<persisted::Store>,
    /// With `--warm`: the warm to run once serving, and the flag that holds
    /// `/readyz` at 503 until it is done.
    warm: Option<(Warmer, Arc<AtomicBool>)>,
}

impl Application {
    /// Builds the service from `config`. What can be checked without
    /// touching anything (the Redis URL, the header and origins given) is
    /// checked first, then the address is bound, so neither a typo in a flag
    /// nor a taken port ever gets as far as migrating a database.
    pub async fn build(config: &Config) -> Result<Self, BoxError> {
        Cache::check(&config.cache).map_err(|err| err.details().to_owned())?;
        if config.metrics_auth == MetricsAuth::OperatorToken && config.operator_token.is_none() {
            return Err(
                "--metrics-auth operator-token needs an operator token to check: set \
                        --operator-token (or BIBLIO_OPERATOR_TOKEN), or leave /metrics open"
                    .into(),
            );
        }
        let client_address_header = config
            .client_address_header
            .as_deref()
            .map(axum::http::HeaderName::try_from)
            .transpose()
            .map_err(|err| format!("--client-address-header: {err}"))?;
        let cors = Origins::parse(&config.cors_origins)?;
        crate::db::replicas::check_urls(&config.database_url, &config.database_read_urls)?;
        let listener = startup::bind(config.bind).await?;
        let db =
            startup::open_database_with_pool(&config.database_url, config.database_max_connections)
                .await?;
        db.migrate().await?;
        let db = db
            .with_read_replicas(&config.database_read_urls, config.database_read_max_lag)
            .await?;
        if seed::is_empty(&db).await? {
            if config.demo_data_when_empty {
                seed_demo_data(&db).await?;
            } else if config.database_url != crate::cli::DEFAULT_DATABASE_URL {
                tracing::info!(
                    "the database is empty. Demo data is seeded by itself only into the default \
                     SQLite database; to fill this one, run `biblio seed`"
                );
            }
        }
        let tokens = Tokens::load(&db, config.token_ttl, config.token_signing_key.clone()).await?;
        let cache = Cache::connect(&config.cache, &db).await?;
        tracing::info!(
            mode = ?config.cache.mode,
            prefix = %cache.prefix(),
            redis = %redact::url(&config.cache.redis_url),
            "cache ready"
        );
        if config.cache.mode.uses_l2() {
            report_redis_at_start(cache.clone(), &config.cache.redis_url);
        }
        let services = Arc::new(Services {
            db: db.clone(),
            cache: cache.clone(),
            tokens,
            throttle: Throttle::new(config.throttle, cache.redis(), cache.replica_counter()),
            hashers: Hashers::new(config.password_hashes),
            loan_period: config.loan_period,
            loader_delay: config.loader_delay,
            db_connections_per_request: config.db_connections_per_request,
        });
        let schema = build_schema(config.limits);
        let documents = Arc::new(Documents::new(
            crate::config::budgets::PARSED_DOCUMENTS,
            config.limits,
        ));
        let warming = Arc::new(AtomicBool::new(config.warm));
        let warm = config.warm.then(|| {
            let warmer = Warmer::new(services.clone());
            (warmer, warming.clone())
        });
        let persisted = Arc::new(persisted::Store::new(
            cache.redis(),
            db.clone(),
            config.persisted_only,
        ));
        let mut registry = crate::metrics::Registry::default();
        registry.collect(Box::new(cache.export()));
        registry.collect(Box::new(db.export()));
        let requests = Arc::new(RequestMetrics::new(&mut registry, cache.clone()));
        let router = router(
            AppState {
                schema,
                services,
                body_limit: config.body_limit,
                documents,
                client_address_header,
                responses: config
                    .response_cache
                    .filter(|_| config.cache.mode.uses_l2())
                    .map(|bytes| Arc::new(Responses::new(cache.clone(), bytes))),
                http_caching: policy::Settings::new(config.http_max_age),
                persisted: persisted.clone(),
                warming,
                triggers: Arc::default(),
                registry: Arc::new(registry),
                requests,
                operator_token: config.operator_token.clone(),
                metrics_auth: config.metrics_auth,
            },
            cors.as_ref(),
        );
        Ok(Self {
            listener,
            router,
            db,
            cache,
            persisted,
            warm,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The database handle, for tests that count statements.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The cache, for tests that read its counters or pause its fills.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The persisted-query store, for tests that read its counters.
    pub fn persisted(&self) -> &Arc<persisted::Store> {
        &self.persisted
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(address = %self.local_addr(), "listening; GraphiQL at /graphql");
        if let Some((warmer, warming)) = self.warm {
            tokio::spawn(crate::warm::at_start(warmer, warming));
        }
        // The peer's address is what sign-in throttling counts per client.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// Seeds the demo data set into the empty default database, and prints its
/// accounts' random passwords once, on standard output (logs go to
/// standard error, and are kept where passwords should not be).
async fn seed_demo_data(db: &Db) -> Result<(), BoxError> {
    let passwords = seed::Passwords::random();
    let report = match seed::run(db, &seed::Plan::demo(), seed::Existing::Refuse, &passwords).await
    {
        Ok(report) => report,
        // Another replica, started at the same time on the same empty
        // database, seeded it first: its accounts were printed there.
        Err(_) if !seed::is_empty(db).await? => {
            tracing::info!("another replica seeded the demo catalogue first");
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    report.log();
    // Written with errors ignored: whoever started us may not read stdout.
    let _ = writeln!(
        std::io::stdout().lock(),
        "The database was empty: biblio seeded a demo catalogue. Its accounts, with passwords \
         shown this once only:\n{}\nSet others with `biblio user password EMAIL`.",
        report.accounts(&passwords)
    );
    Ok(())
}

/// Says whether Redis answered shortly after start: if not, in a warning,
/// since the replica serves all the same, from L1 and the database, and
/// `/readyz` reports the cache `degraded` until Redis answers.
fn report_redis_at_start(cache: Cache, redis_url: &str) {
    let redis = redact::url(redis_url).into_owned();
    tokio::spawn(async move {
        match cache.redis_first_contact(Duration::from_secs(2)).await {
            Ok(()) => tracing::info!(%redis, "Redis answers"),
            Err(reason) => tracing::warn!(
                %redis,
                %reason,
                "Redis is unreachable: serving degraded, from the in-process cache and the \
                 database, until it answers; /readyz reports the cache \"degraded\" meanwhile"
            ),
        }
    });
}

/// Completes on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
