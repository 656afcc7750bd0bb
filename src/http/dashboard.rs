//! The live dashboard: `GET /dashboard`, a page carried in the binary, and
//! `GET /dashboard/data`, the JSON it polls every second.
//!
//! The page holds no data and makes no request off the server (its Content
//! Security Policy allows this origin only), so it is public; it signs a
//! librarian in with the `login` mutation and keeps the token in
//! `sessionStorage`. The data endpoint is what is protected: a librarian's
//! token, or the operator token from configuration, as `Authorization:
//! Bearer …`; 401 without either, 403 for a member. It answers every
//! replica's figures from their snapshots in Redis ([`Cache::deployment_stats`],
//! this replica's own as of now) with rates and percentiles worked out, and
//! this replica's health as `/readyz` sees it plus the database pool. It
//! sits beside `/graphql`, not behind it, so polling it moves no GraphQL
//! request counter and no cache tier; the librarian check is one
//! primary-key read of the user, straight from the database for the same
//! reason.
//!
//! [`Cache::deployment_stats`]: crate::cache::Cache::deployment_stats
use super::AppState;
use crate::error::Error;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use entity::user::Role;
use sea_orm::EntityTrait;
use serde_json::json;

const PAGE: &str = include_str!("dashboard.html");
const SCRIPT: &str = include_str!("dashboard.js");

/// The page may load its script from here and call this origin, nothing
/// else: no CDN, no font, no image from elsewhere, even if edited to try.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/dashboard`, its script and its data.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/dashboard.js", get(script))
        .route("/dashboard/data", get(data))
}

async fn page() -> Response {
    let mut response = PAGE.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    common_headers(headers);
    response
}

async fn script() -> Response {
    let mut response = SCRIPT.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    common_headers(response.headers_mut());
    response
}

/// Nothing here is for a shared cache, and a new build's page and script
/// must go together.
fn common_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// Who may read the data.
enum Reader {
    Operator,
    Librarian,
}

/// A librarian's token or the operator token; otherwise the error to send.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Reader, Error> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return Err(Error::unauthenticated(
            "sign in as a librarian, or send the operator token as a bearer token",
        ));
    }
    let bearer = super::bearer(headers);
    if let (Some(operator), Some(bearer)) = (&state.operator_token, bearer) {
        if operator.matches(bearer) {
            return Ok(Reader::Operator);
        }
    }
    let refused = || Error::unauthenticated("the access token is invalid, expired or revoked");
    let claim = bearer
        .and_then(|token| state.services.tokens.verify(token))
        .ok_or_else(refused)?;
    let user = entity::user::Entity::find_by_id(claim.user)
        .one(state.services.db.conn())
        .await
        .map_err(Error::internal)?
        .filter(|user| user.token_generation == claim.generation)
        .ok_or_else(refused)?;
    match user.role {
        Role::Librarian => Ok(Reader::Librarian),
        Role::Member => Err(Error::forbidden("only librarians may read the dashboard")),
    }
}

/// The answer to a refused or failed request: the error as GraphQL
/// answers would carry it, so one client handles both.
fn refusal(error: Error) -> Response {
    let status = match &error {
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Internal(cause) => {
            tracing::warn!(error = %cause, "dashboard: could not check the reader");
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let body = json!({ "errors": [{
        "message": error.to_string(),
        "extensions": { "code": error.code() },
    }] });
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"biblio dashboard\""),
        );
    }
    common_headers(headers);
    response
}

/// `GET /dashboard/data`: see the module docs for who may read it.
async fn data(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let reader = match authorize(&state, &headers).await {
        Ok(reader) => reader,
        Err(error) => return refusal(error),
    };
    let cache = &state.services.cache;
    let ((_, mut health), deployment) =
        tokio::join!(super::health::check(&state), cache.deployment_stats());
    health["checks"]["database"]["pool"] = json!(state.services.db.pool());
    let body = json!({
        "replica": cache.origin(),
        "reader": match reader {
            Reader::Operator => "operator",
            Reader::Librarian => "librarian",
        },
        "taken_at": chrono::Utc::now(),
        "health": health,
        "redis_up": deployment.redis.is_some(),
        "deployment": deployment.report(),
    });
    let mut response = Json(body).into_response();
    common_headers(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_script_name_nothing_outside_this_server() {
        for (name, text) in [("dashboard.html", PAGE), ("dashboard.js", SCRIPT)] {
            for scheme in ["http:", "https:", "//"] {
                // `//` starts a comment in the script; only a URL matters.
                let named = text
                    .match_indices(scheme)
                    .any(|(at, _)| scheme != "//" || text[..at].ends_with(['"', '\'', '(', '=']));
                assert!(!named, "{name} names a {scheme} address");
            }
        }
        for attribute in ["src=", "href=", "url("] {
            for value in PAGE.split(attribute).skip(1) {
                let value = value.trim_start_matches(['"', '\'']);
                assert!(
                    value.starts_with("/dashboard/") || value.starts_with('#'),
                    "dashboard.html loads {attribute}{value:.40}"
                );
            }
        }
    }
}
