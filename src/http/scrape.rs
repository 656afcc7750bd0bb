//! `GET /metrics`: every metric of this replica, for Prometheus, open to
//! anyone who can reach the port or only to the operator token
//! (`--metrics-auth`).
use crate::metrics::{OPENMETRICS_TEXT, PROMETHEUS_TEXT};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Who may read `/metrics` (`--metrics-auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Access {
    /// Anyone who can reach the port: for a network where only the
    /// scrapers can.
    #[default]
    Open,
    /// Only a request with `Authorization: Bearer <operator token>`; 401
    /// otherwise. Operation names and rates say what clients do, which
    /// is not for everyone who can reach the service.
    OperatorToken,
}

/// `GET /metrics`: every metric of this replica, in the Prometheus text
/// format, or OpenMetrics text when the scraper asks for it first; with
/// [`Access::OperatorToken`], only for the operator token.
pub async fn scrape(State(state): State<super::AppState>, headers: HeaderMap) -> Response {
    if state.metrics_auth == Access::OperatorToken {
        let allowed = match (&state.operator_token, super::bearer(&headers)) {
            (Some(operator), Some(bearer)) => operator.matches(bearer),
            _ => false,
        };
        if !allowed {
            return refused();
        }
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.starts_with("application/openmetrics-text"));
    let body = state.registry.render(openmetrics);
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A scrape without the operator token: 401, saying how to authenticate
/// and nothing of the metrics.
fn refused() -> Response {
    let mut response = (
        axum::http::StatusCode::UNAUTHORIZED,
        "/metrics needs the operator token: Authorization: Bearer <token>\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"biblio metrics\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
