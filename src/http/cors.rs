//! Cross-origin requests from browser frontends on other origins.
//!
//! Off unless origins are configured: a browser then refuses to let
//! another site's scripts read our answers. The API authenticates with a
//! bearer token, never a cookie, so no credentials are allowed and a
//! configured origin gains nothing a script could not do with the token.
use axum::http::{header, HeaderName, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// Which origins may read our answers: exact origins, or any (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    Any,
    List(Vec<HeaderValue>),
}

impl Origins {
    /// From `--cors-origin` values: `*`, or origins as browsers send them
    /// (`https://app.example.org`, with a port if not the default; no
    /// path). An empty list is `None`: no CORS at all.
    pub fn parse(values: &[String]) -> Result<Option<Self>, String> {
        if values.is_empty() {
            return Ok(None);
        }
        if values.iter().any(|value| value == "*") {
            return Ok(Some(Self::Any));
        }
        values
            .iter()
            .map(|value| {
                let origin = value.trim_end_matches('/');
                let (scheme, host) = origin.split_once("://").ok_or_else(|| {
                    format!("--cors-origin {value:?}: expected scheme://host[:port]")
                })?;
                if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains('/') {
                    return Err(format!(
                        "--cors-origin {value:?}: expected http(s)://host[:port], with no path"
                    ));
                }
                HeaderValue::from_str(origin)
                    .map_err(|err| format!("--cors-origin {value:?}: {err}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|origins| Some(Self::List(origins)))
    }

    /// The layer answering preflights and marking answers for `self`.
    pub fn layer(&self) -> CorsLayer {
        let allow_origin = match self {
            Self::Any => AllowOrigin::any(),
            Self::List(origins) => AllowOrigin::list(origins.iter().cloned()),
        };
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::ACCEPT,
                header::IF_NONE_MATCH,
                // Apollo Client sends it to mark a request as not a simple one.
                HeaderName::from_static("apollo-require-preflight"),
                // Apollo Client's `name` and `version` options, which tools
                // use to tell clients apart.
                HeaderName::from_static("apollographql-client-name"),
                HeaderName::from_static("apollographql-client-version"),
                // A client's own request id, kept for the access log.
                super::access_log::X_REQUEST_ID.clone(),
            ])
            // The request id, so a browser client can quote it.
            .expose_headers([
                header::ETAG,
                header::RETRY_AFTER,
                super::access_log::X_REQUEST_ID.clone(),
            ])
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<Option<Origins>, String> {
        Origins::parse(&values.iter().map(|v| v.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn origins_are_checked_at_start() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&["*"]), Ok(Some(Origins::Any)));
        assert_eq!(
            parse(&["https://app.example.org/", "http://localhost:5173"]),
            Ok(Some(Origins::List(vec![
                HeaderValue::from_static("https://app.example.org"),
                HeaderValue::from_static("http://localhost:5173"),
            ])))
        );
        assert!(parse(&["app.example.org"]).is_err());
        assert!(parse(&["https://app.example.org/graphql"]).is_err());
        assert!(parse(&["ftp://app.example.org"]).is_err());
        assert!(parse(&["https://"]).is_err());
    }
}
