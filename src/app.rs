//! Building and running the service: connect and migrate the database, load
//! the token key, build the schema and router, bind the listener.
use crate::auth::throttle::Throttle;
use crate::auth::Tokens;
use crate::cache::Cache;
use crate::config::Config;
use crate::db::Db;
use crate::error::BoxError;
use crate::graphql::{build_schema, persisted, Documents, Services};
use crate::http::{router, AppState, HttpCaching, Origins, RequestMetrics, Responses};
use crate::seed;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    router: Router,
    db: Db,
    cache: Cache,
    persisted: Arc<persisted::Store>,
}

impl Application {
    pub async fn build(config: &Config) -> Result<Self, BoxError> {
        let db = Db::connect(&config.database_url).await?;
        db.migrate().await?;
        if config.demo_data_when_empty && seed::is_empty(&db).await? {
            let report = seed::run(&db, &seed::Plan::demo(), false).await?;
            tracing::info!("the database was empty: seeded a demo data set");
            report.log();
        }
        let tokens = Tokens::load(&db, config.token_ttl).await?;
        let cache = Cache::connect(&config.cache, &db).await?;
        tracing::info!(mode = ?config.cache.mode, prefix = %cache.prefix(), "cache ready");
        let services = Arc::new(Services {
            db: db.clone(),
            cache: cache.clone(),
            tokens,
            throttle: Throttle::new(config.throttle, cache.clone()),
            loan_period: config.loan_period,
            loader_delay: config.loader_delay,
            db_connections_per_request: config.db_connections_per_request,
        });
        let client_address_header = config
            .client_address_header
            .as_deref()
            .map(axum::http::HeaderName::try_from)
            .transpose()
            .map_err(|err| format!("--client-address-header: {err}"))?;
        let cors = Origins::parse(&config.cors_origins)?;
        let schema = build_schema(config.limits);
        let persisted = Arc::new(persisted::Store::new(
            cache.clone(),
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
                documents: Arc::new(Documents::new(16 * 1024 * 1024, config.limits)),
                client_address_header,
                responses: config
                    .response_cache
                    .filter(|_| config.cache.mode.uses_l2())
                    .map(|bytes| Arc::new(Responses::new(cache.clone(), bytes))),
                http_caching: HttpCaching::new(config.http_max_age),
                persisted: persisted.clone(),
                registry: Arc::new(registry),
                requests,
                operator_token: config.operator_token.clone(),
            },
            cors.as_ref(),
        );
        let listener = TcpListener::bind(config.bind).await?;
        Ok(Self {
            listener,
            router,
            db,
            cache,
            persisted,
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
        // The peer's address is what sign-in throttling counts per client.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
    }
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
