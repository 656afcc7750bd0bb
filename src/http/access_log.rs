//! The access log and request ids: one line per request at `info`, target
//! `biblio::access`, with the method, the path (never the query string, which
//! may hold a GraphQL document and its variables), the status, the time to
//! the response's head (bodies here are in memory by then), the request id
//! and, for GraphQL requests, the operation's name and kind and which tier
//! answered it (`response` for the response tier, `executor` otherwise), from
//! the [`Answered`] the endpoint attaches.
//!
//! The request id is the client's `x-request-id` when it is usable (1 to 128
//! visible ASCII characters), so a proxy's id follows the request through;
//! otherwise a new UUID v7. It is returned in the response's `x-request-id`,
//! and every event logged while the request runs (a failed sign-in, say)
//! carries it as `request_id` (see [`crate::telemetry::in_request`]), so its
//! lines can be matched with the access line.
use super::answered::{Answered, MAX_OPERATION_LEN};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request};
use axum::response::Response;
use futures_util::future::BoxFuture;
use std::borrow::Cow;
use std::task::{Context, Poll};
use std::time::Instant;

/// The header that carries the request id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client; longer ones are replaced.
const MAX_ID_LEN: usize = 128;

/// Wraps the router so every request is logged and has an id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Layer;

impl<S> tower_layer::Layer<S> for Layer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// The service [`Layer`] makes.
#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S> tower_service::Service<Request<Body>> for AccessLog<S>
where
    S: tower_service::Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let started = Instant::now();
        let id = request_id(request.headers().get(&X_REQUEST_ID));
        // What the line needs of the request, copied only if it is written.
        let logged = tracing::enabled!(target: "biblio::access", tracing::Level::INFO)
            .then(|| (request.method().clone(), request.uri().path().to_owned()));
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response =
                crate::telemetry::in_request(id.to_str().unwrap_or_default(), future).await?;
            if let Some((method, path)) = logged {
                log(&method, &path, &response, started, &id);
            }
            response.headers_mut().insert(X_REQUEST_ID.clone(), id);
            Ok(response)
        })
    }
}

fn log(
    method: &axum::http::Method,
    path: &str,
    response: &Response,
    started: Instant,
    id: &HeaderValue,
) {
    let status = response.status().as_u16();
    // Microseconds as a decimal of milliseconds: a number in JSON.
    let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let request_id = id.to_str().unwrap_or_default();
    let answered = response.extensions().get::<Answered>();
    // The same line as below, written without the subscriber's formatting
    // (see `telemetry`): this is the one line of every request.
    let written = crate::telemetry::access_line("biblio::access", "request", |fields| {
        fields.display("method", method.as_str());
        fields.str("path", path);
        if let Some(answered) = answered {
            fields.str("operation", &operation_name(answered));
            fields.str("kind", answered.kind.as_str());
            fields.str("tier", tier(answered));
        }
        fields.u64("status", u64::from(status));
        fields.millis("duration_ms", duration_us);
        fields.str("request_id", request_id);
    });
    if written {
        return;
    }
    let duration_ms = duration_us as f64 / 1000.0;
    match answered {
        Some(answered) => tracing::info!(
            target: "biblio::access",
            %method,
            path,
            operation = &*operation_name(answered),
            kind = answered.kind.as_str(),
            tier = tier(answered),
            status,
            duration_ms,
            request_id,
            "request"
        ),
        None => tracing::info!(
            target: "biblio::access",
            %method,
            path,
            status,
            duration_ms,
            request_id,
            "request"
        ),
    }
}

/// Which tier answered, as logged.
fn tier(answered: &Answered) -> &'static str {
    if answered.by_tier {
        "response"
    } else {
        "executor"
    }
}

/// The operation's name as logged: `-` for an anonymous one (no GraphQL
/// name can be `-`). [`Answered`] only reports names the document defines,
/// already cut to [`MAX_OPERATION_LEN`]; the line is still made safe here
/// (cut, and stripped of what is not visible ASCII), so no change there
/// could let a name forge or break a line.
fn operation_name(answered: &Answered) -> Cow<'_, str> {
    let Some(name) = answered.operation.as_deref() else {
        return Cow::Borrowed("-");
    };
    if name.len() <= MAX_OPERATION_LEN && name.bytes().all(|b| b.is_ascii_graphic()) {
        return Cow::Borrowed(name);
    }
    Cow::Owned(
        name.chars()
            .take(MAX_OPERATION_LEN)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect(),
    )
}

/// The client's id when it is usable, else a new one.
fn request_id(given: Option<&HeaderValue>) -> HeaderValue {
    match given {
        Some(id) if is_usable(id.as_bytes()) => id.clone(),
        _ => generate(),
    }
}

/// 1 to 128 visible ASCII characters: nothing that could break a log line
/// or hide in one.
fn is_usable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.iter().all(u8::is_ascii_graphic)
}

/// A UUID v7: the time in milliseconds, then random bits. They come from a
/// per-thread SplitMix64 seeded once from the OS, not from `Uuid::now_v7`,
/// which asks the OS for randomness (a system call) under a lock on every
/// call; a correlation id needs to be unique, not unguessable.
fn generate() -> HeaderValue {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use rand_core::{OsRng, RngCore};
            OsRng.next_u64()
        });
    }
    let mut random = [0u8; 10];
    STATE.with(|state| {
        let next = || {
            let mut z = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(z);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        random[..8].copy_from_slice(&next().to_le_bytes());
        random[8..].copy_from_slice(&next().to_le_bytes()[..2]);
    });
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let uuid = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = uuid.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::OperationKind;
    use std::sync::Arc;

    #[test]
    fn a_usable_client_id_is_kept_and_anything_else_replaced() {
        let kept = HeaderValue::from_static("edge-7f3a:42");
        assert_eq!(request_id(Some(&kept)), kept);
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("has space"),
            HeaderValue::from_bytes(b"tab\there").unwrap(),
            HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
            HeaderValue::from_str(&"x".repeat(MAX_ID_LEN + 1)).unwrap(),
        ] {
            let replaced = request_id(Some(&bad));
            assert_ne!(replaced, bad);
            let uuid = uuid::Uuid::parse_str(replaced.to_str().unwrap()).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
        }
        let longest = HeaderValue::from_str(&"x".repeat(MAX_ID_LEN)).unwrap();
        assert_eq!(request_id(Some(&longest)), longest);
    }

    #[test]
    fn generated_ids_are_distinct_uuid_v7s_in_time_order() {
        let ids: Vec<uuid::Uuid> = (0..1000)
            .map(|_| uuid::Uuid::parse_str(generate().to_str().unwrap()).unwrap())
            .collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (seconds, nanos) = ids[0].get_timestamp().unwrap().to_unix();
        let millis = seconds * 1000 + u64::from(nanos) / 1_000_000;
        assert!(now.abs_diff(millis) < 60_000, "{millis} vs {now}");
    }

    #[test]
    fn operation_names_are_logged_safely() {
        let answered = |operation: Option<&str>| Answered {
            operation: operation.map(Arc::from),
            kind: OperationKind::Query,
            by_tier: false,
        };
        assert_eq!(operation_name(&answered(None)), "-");
        assert_eq!(operation_name(&answered(Some("Book"))), "Book");
        assert_eq!(
            operation_name(&answered(Some("a\nINFO forged line"))),
            "a?INFO?forged?line"
        );
        let long = "x".repeat(500);
        assert_eq!(
            operation_name(&answered(Some(&long))).len(),
            MAX_OPERATION_LEN
        );
    }
}
