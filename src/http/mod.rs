//! HTTP: the GraphQL endpoint (GraphQL over HTTP), GraphiQL and its
//! assets, compression, health, metrics, the live dashboard, and the access
//! log with request ids.
mod access_log;
mod answered;
mod assets;
mod client;
mod cors;
mod dashboard;
mod graphql;
mod health;
mod media;
mod requests;
mod scrape;

use crate::graphql::{BiblioSchema, Documents, Services};
use crate::responses::{policy, Responses};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub use answered::{Answered, OperationKind};
pub use cors::Origins;
pub use requests::{Requests as RequestMetrics, MAX_OPERATIONS, MAX_SERIES};
pub use scrape::Access as MetricsAuth;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub schema: BiblioSchema,
    pub services: Arc<Services>,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub body_limit: usize,
    pub documents: Arc<Documents>,
    /// The header naming the client's address behind a load balancer.
    pub client_address_header: Option<axum::http::HeaderName>,
    /// Whole answers kept in front of the executor; `None` with
    /// `--response-cache off`.
    pub responses: Option<Arc<Responses>>,
    /// What `Cache-Control` lets shared caches do.
    pub http_caching: policy::Settings,
    /// Persisted queries: learnt ones and trusted documents.
    pub persisted: Arc<crate::graphql::persisted::Store>,
    /// Set while `serve --warm` warms the cache: `/readyz` answers 503
    /// "warming" until it is done.
    pub warming: Arc<std::sync::atomic::AtomicBool>,
    /// The outbox triggers' state, read at most every few seconds however
    /// often `/readyz` is probed.
    pub triggers: Arc<health::Triggers>,
    /// Every metric of this replica, as `/metrics` shows them.
    pub registry: Arc<crate::metrics::Registry>,
    /// GraphQL requests' counters (registered in `registry`).
    pub requests: Arc<RequestMetrics>,
    /// The secret that opens `/dashboard/data` without a sign-in, and
    /// `/metrics` when `metrics_auth` asks for it.
    pub operator_token: Option<crate::auth::operator::OperatorToken>,
    /// Who may read `/metrics`.
    pub metrics_auth: MetricsAuth,
}

/// The token of the request's `Authorization: Bearer <token>`, if it has
/// one (the scheme in any case, as RFC 9110 §11.1 has it).
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    authorization
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The routes; with `cors`, browsers on those origins may call them. The
/// access log is outermost, so it sees every request, preflights included.
pub fn router(state: AppState, cors: Option<&Origins>) -> Router {
    let router = Router::new()
        .route(
            "/graphql",
            get(graphql::get)
                .post(graphql::post)
                .layer(requests::Layer(state.requests.clone())),
        )
        .route("/metrics", get(scrape::scrape))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .merge(assets::routes())
        .merge(dashboard::routes())
        .with_state(state);
    let router = match cors {
        Some(origins) => router.layer(origins.layer()),
        None => router,
    };
    router.layer(access_log::Layer)
}
