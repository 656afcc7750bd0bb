//! The GraphQL endpoint, following the GraphQL-over-HTTP specification:
//! - `POST /graphql` with an `application/json` body; `GET /graphql` with
//!   `query`, `operationName` and `variables` in the URL, for queries only
//!   (a mutation over GET is 405, so GET stays safe to cache and prefetch);
//! - the response is `application/graphql-response+json` unless the client
//!   weighs `application/json` higher ([`super::media`]). With the former, a request error
//!   (unparsable, invalid, over a limit) is 400 with no `data`; with the
//!   latter, every well-formed request gets 200, as the spec asks;
//! - a browser asking for HTML at `GET /graphql` gets GraphiQL;
//! - a persisted query (`extensions.persistedQuery`, in the body or, as
//!   JSON, in the `extensions` parameter of a GET) is resolved to its text
//!   before anything else looks at the request ([`crate::graphql::persisted`]);
//! - `If-None-Match` naming the current answer is 304 on GET and HEAD and
//!   412 on POST, as RFC 9110 §13.1.2 says ([`policy::precondition`]).
use super::answered::Answered;
use super::media::{accepts_html, is_utf8_json, MediaType};
use super::AppState;
use crate::auth::Viewer;
use crate::graphql::persisted::{Extension, Refusal};
use crate::graphql::{Documents, Scope};
use crate::responses::compression::{self, Encoding};
use crate::responses::policy::{self, Policy, Precondition};
use crate::responses::{self, Lookup, Served};
use async_graphql::parser::types::OperationType;
use async_graphql::Variables;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

/// An error found before GraphQL execution (bad HTTP usage), in the
/// response format the client negotiated.
fn http_error(status: StatusCode, media: MediaType, message: &str) -> Response {
    let code = if status.is_server_error() {
        "INTERNAL"
    } else {
        "BAD_USER_INPUT"
    };
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    Policy::NoStore.apply(response.headers_mut(), None);
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    /// JSON, as Apollo Client sends `extensions.persistedQuery` over GET.
    extensions: Option<String>,
}

/// `GET /graphql`, and `HEAD` (axum routes it here and drops the body).
pub async fn get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if uri.query().is_none() && accepts_html(&headers) {
        return Html(include_str!("graphiql.html")).into_response();
    }
    let Some(media) = MediaType::negotiate(&headers) else {
        return http_error(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            "cannot produce any type in Accept",
        );
    };
    let params = match Query::<GetParams>::try_from_uri(&uri) {
        Ok(Query(params)) => params,
        Err(_) => return http_error(StatusCode::BAD_REQUEST, media, "malformed query string"),
    };
    let extensions = match params.extensions.as_deref().map(serde_json::from_str) {
        None => async_graphql::Extensions::default(),
        Some(Ok(extensions)) => extensions,
        Some(Err(_)) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                media,
                "extensions must be a JSON object",
            )
        }
    };
    let extension = match Extension::from_extensions(&extensions) {
        Ok(extension) => extension,
        Err(refusal) => return persisted_refusal(&refusal, media),
    };
    if params.query.is_none() && extension.is_none() {
        return http_error(
            StatusCode::BAD_REQUEST,
            media,
            "the query parameter is required",
        );
    }
    let operation_name = params.operation_name.as_deref();
    let mutation_refused = || {
        let mut response = http_error(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            "mutations must be sent with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        response
    };
    // Before resolving, so a GET never registers a mutation.
    if let Some(query) = &params.query {
        if is_mutation(&state.documents, query, operation_name) {
            return mutation_refused();
        }
    }
    let query = match state
        .persisted
        .resolve(
            &state.documents,
            params.query.unwrap_or_default(),
            extension,
        )
        .await
    {
        Ok(query) => query,
        Err(refusal) => return persisted_refusal(&refusal, media),
    };
    // A hash alone may name a mutation too.
    if is_mutation(&state.documents, &query, operation_name) {
        return mutation_refused();
    }
    let mut request = async_graphql::Request::new(query);
    request.extensions = extensions;
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if let Some(variables) = params.variables {
        match serde_json::from_str::<serde_json::Value>(&variables) {
            Ok(variables @ serde_json::Value::Object(_)) => {
                request = request.variables(Variables::from_json(variables))
            }
            Ok(_) | Err(_) => {
                return http_error(
                    StatusCode::BAD_REQUEST,
                    media,
                    "variables must be a JSON object",
                )
            }
        }
    }
    execute(&state, &method, &headers, peer, request, media).await
}

pub async fn post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(media) = MediaType::negotiate(&headers) else {
        return http_error(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            "cannot produce any type in Accept",
        );
    };
    if !is_utf8_json(&headers) {
        return http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "the request body must be application/json in UTF-8",
        );
    }
    let declared_too_large = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|length| length > state.body_limit);
    let too_large = || {
        http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            media,
            &format!("the request body is larger than {} bytes", state.body_limit),
        )
    };
    if declared_too_large {
        return too_large();
    }
    // Reading stops at the limit; a client still connected can only fail
    // here by sending more than it.
    let Ok(bytes) = axum::body::to_bytes(body, state.body_limit).await else {
        return too_large();
    };
    // serde reads a struct from a JSON array too, by position; a batch is
    // not something we serve, so only an object is a request.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return http_error(
            StatusCode::BAD_REQUEST,
            media,
            "the body must be one JSON object with a query string; batches are not supported",
        );
    }
    let mut request: async_graphql::Request = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(_) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                media,
                "the body must be a JSON object with a query string",
            )
        }
    };
    let extension = match Extension::from_extensions(&request.extensions) {
        Ok(extension) => extension,
        Err(refusal) => return persisted_refusal(&refusal, media),
    };
    let query = std::mem::take(&mut request.query);
    request.query = match state
        .persisted
        .resolve(&state.documents, query, extension)
        .await
    {
        Ok(query) => query,
        Err(refusal) => return persisted_refusal(&refusal, media),
    };
    execute(&state, &Method::POST, &headers, peer, request, media).await
}

/// The answer to a request whose persisted query could not be resolved.
///
/// `PERSISTED_QUERY_NOT_FOUND` is a step of the protocol rather than a
/// failure: it is answered 200 whatever the media type, as Apollo Server
/// answers it (the server APQ clients were written against), and `private, no-cache,
/// must-revalidate` so that no CDN keeps it once the query is registered.
/// Bad persisted-query input is 400, as for malformed requests. A refusal
/// of `--persisted-only` is a request error like a document that does not
/// validate: 400 with graphql-response+json, 200 with application/json.
fn persisted_refusal(refusal: &Refusal, media: MediaType) -> Response {
    let status = match refusal {
        Refusal::NotFound => StatusCode::OK,
        Refusal::NotInList | Refusal::NotInSafelist => match media {
            MediaType::GraphqlResponseJson => StatusCode::BAD_REQUEST,
            MediaType::Json => StatusCode::OK,
        },
        Refusal::HashMismatch | Refusal::UnsupportedVersion(_) | Refusal::Malformed(_) => {
            StatusCode::BAD_REQUEST
        }
        Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = json!({ "errors": [{
        "message": refusal.message(),
        "extensions": { "code": refusal.code() },
    }] });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    if *refusal == Refusal::NotFound {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache, must-revalidate"),
        );
    } else {
        Policy::NoStore.apply(response.headers_mut(), None);
    }
    response
}

/// Whether the operation that would run is a mutation. An unparsable or
/// refused document is not: execution reports why.
fn is_mutation(documents: &Documents, query: &str, operation_name: Option<&str>) -> bool {
    let Ok(document) = documents.get(query) else {
        return false;
    };
    crate::graphql::selected_operation(&document, operation_name)
        .is_some_and(|operation| operation.node.ty == OperationType::Mutation)
}

/// Runs `request`, or answers it from the response tier.
async fn execute(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    peer: SocketAddr,
    request: async_graphql::Request,
    media: MediaType,
) -> Response {
    let services = &state.services;
    // Before the response tier: a kept private answer is served only to a
    // token that is still the user's.
    let viewer = Viewer::authenticate(authorization(headers), &services.tokens, |user| {
        services.cache.token_generation(&services.db, user)
    })
    .await;
    let lookup = responses::lookup(
        state.responses.as_deref(),
        &state.http_caching,
        headers,
        viewer,
        &request,
        || {
            is_mutation(
                &state.documents,
                &request.query,
                request.operation_name.as_deref(),
            )
        },
    )
    .await;
    let recorder = match lookup {
        Lookup::Hit(served) => {
            let answered = Answered::by_tier(&state.documents, &request);
            return answered.attach(send(served, StatusCode::OK, method, headers, media));
        }
        Lookup::Miss(recorder) => recorder,
    };

    let client = super::client::address(peer, headers, state.client_address_header.as_ref());
    let scope = Scope::new(services.clone(), viewer, Some(client), recorder.reads());
    let answered = Answered::executed(&state.documents, &request);
    let response =
        crate::graphql::execute(&state.schema, &state.documents, request.data(scope)).await;

    // A request error: nothing executed, so there is no `data` to send.
    let request_error = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty());
    let body = if request_error {
        serde_json::to_vec(&json!({ "errors": response.errors }))
    } else {
        serde_json::to_vec(&response)
    };
    let internal = response.errors.iter().any(|error| {
        error
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code"))
            .is_some_and(|code| *code == async_graphql::Value::from("INTERNAL"))
    });
    let retry_after = refused_for_now(&response);
    let status = match (request_error, media) {
        _ if retry_after.is_some() => StatusCode::TOO_MANY_REQUESTS,
        (true, MediaType::GraphqlResponseJson) if internal => StatusCode::INTERNAL_SERVER_ERROR,
        (true, MediaType::GraphqlResponseJson) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let body = match body {
        Ok(body) => Bytes::from(body),
        Err(err) => {
            tracing::error!(error = %err, "could not serialize a GraphQL response");
            return answered.attach(http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                "internal error",
            ));
        }
    };
    let served = recorder.offer(body, status == StatusCode::OK && response.errors.is_empty());
    // A 429 has no validator, so it is always sent whole.
    let mut http = send(served, status, method, headers, media);
    if let Some(seconds) = retry_after {
        http.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    answered.attach(http)
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// `served` as `media`, answered with `status` unless the request's
/// `If-None-Match` names it (304 on GET and HEAD, 412 on POST).
fn send(
    served: Served<'_>,
    status: StatusCode,
    method: &Method,
    headers: &HeaderMap,
    media: MediaType,
) -> Response {
    let etag = served.etag.clone().map(|etag| media.etag(etag));
    if let Some(etag) = &etag {
        match policy::precondition(method, headers, etag) {
            Precondition::Holds => {}
            Precondition::NotModified => {
                served.not_modified();
                return not_modified(served.policy, etag.clone());
            }
            Precondition::Failed => return precondition_failed(media),
        }
    }
    answer_with(
        status,
        served.body,
        served.encoding,
        served.policy,
        etag,
        media,
    )
}

/// A 412: `If-None-Match` named the current answer of a POST.
fn precondition_failed(media: MediaType) -> Response {
    let body = json!({ "errors": [{
        "message": "If-None-Match names the current answer, so the request was not answered",
        "extensions": { "code": "PRECONDITION_FAILED" },
    }] });
    let mut response = (StatusCode::PRECONDITION_FAILED, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    Policy::NoStore.apply(response.headers_mut(), None);
    response
}

/// A 304: the client's copy is current.
fn not_modified(policy: Policy, etag: HeaderValue) -> Response {
    let mut http = StatusCode::NOT_MODIFIED.into_response();
    policy.apply(http.headers_mut(), Some(etag));
    compression::vary_on_accept_encoding(http.headers_mut());
    http
}

/// An answer, coded in `encoding`, with its caching headers.
fn answer_with(
    status: StatusCode,
    body: Bytes,
    encoding: Encoding,
    policy: Policy,
    etag: Option<HeaderValue>,
    media: MediaType,
) -> Response {
    let mut http = (status, body).into_response();
    policy.apply(http.headers_mut(), etag);
    encoding.set_headers(http.headers_mut());
    http.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    http
}

/// When a rate limit refused the whole request (it answered nothing, and
/// every error is `TOO_MANY_REQUESTS`), the longest `retryAfter`: the
/// request is then answered 429 with `Retry-After`.
fn refused_for_now(response: &async_graphql::Response) -> Option<u64> {
    use async_graphql::Value;
    let answered_nothing = match &response.data {
        Value::Null => true,
        Value::Object(fields) => fields.values().all(|value| *value == Value::Null),
        _ => false,
    };
    let mut longest = None;
    for error in &response.errors {
        let extensions = error.extensions.as_ref()?;
        if extensions.get("code")? != &Value::from("TOO_MANY_REQUESTS") {
            return None;
        }
        let seconds = match extensions.get("retryAfter") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(1),
            _ => 1,
        };
        longest = longest.max(Some(seconds));
    }
    longest.filter(|_| answered_nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_selected_mutation_counts_as_one() {
        let documents = Documents::new(1 << 20, crate::graphql::Limits::default());
        assert!(is_mutation(
            &documents,
            "mutation { deleteBook(id: \"x\") }",
            None
        ));
        assert!(!is_mutation(&documents, "{ books { totalCount } }", None));
        let both = "query A { me { id } } mutation B { deleteBook(id: \"x\") }";
        assert!(is_mutation(&documents, both, Some("B")));
        assert!(!is_mutation(&documents, both, Some("A")));
        assert!(!is_mutation(&documents, "not graphql", None));
        // One named operation runs without operationName: a mutation too.
        assert!(is_mutation(
            &documents,
            "mutation M { deleteBook(id: \"x\") }",
            None
        ));
    }
}
