//! Running one GraphQL request, with two promises that hold for all of them:
//! - a panic anywhere in execution becomes an `INTERNAL` error and the
//!   process carries on;
//! - every error carries `extensions.code`. async-graphql's own errors (parse,
//!   validation, input coercion, depth and complexity limits) have none, and
//!   all of them are the client's to fix, so they get `BAD_USER_INPUT`.
//!
//! Both are done here rather than in an async-graphql extension: with any
//! extension installed, async-graphql sends every field through the
//! extension chain, a cost paid on every field of every request.
use super::limits::Limits;
use super::operation::selected_operation;
use async_graphql::parser::types::{ExecutableDocument, Type};
use async_graphql::{ObjectType, Pos, Request, Response, Schema, ServerError, SubscriptionType};
use futures_util::FutureExt;
use moka::sync::Cache;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// Parsed documents by query text, each checked against the [`Limits`].
/// Parsing costs more than a cache hit, and clients send the same few query
/// texts over and over.
pub struct Documents {
    parsed: Cache<String, Parsed, foldhash::fast::RandomState>,
    limits: Limits,
}

/// A kept document and what it weighs.
#[derive(Clone)]
struct Parsed {
    document: Arc<ExecutableDocument>,
    weight: u32,
}

/// Bytes a parsed document holds per lexical token of its text: each field
/// is a node of about 200 bytes with its name in an allocation of its own.
/// Measured: a thousand one-letter fields (`{ a a a ... }`) cost 264 KB
/// resident (`tests/api/limits.rs`), where weighing the text alone counted
/// 16 KB.
const BYTES_PER_TOKEN: usize = 272;

impl Documents {
    /// Bounded by what the parsed documents hold in memory (estimated from
    /// their tokens, about 272 bytes each) and their texts.
    pub fn new(max_bytes: u64, limits: Limits) -> Self {
        Self {
            parsed: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &String, parsed: &Parsed| parsed.weight)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The parsed document for `query`, parsing, checking and remembering
    /// it on a miss. The text is checked before it is parsed and the
    /// document before it is validated; a syntax error names its position
    /// and what was expected, without echoing the query.
    pub fn get(&self, query: &str) -> Result<Arc<ExecutableDocument>, ServerError> {
        if let Some(parsed) = self.parsed.get(query) {
            return Ok(parsed.document);
        }
        let tokens = self
            .limits
            .check_text(query)
            .map_err(|refusal| refusal.into_server_error())?;
        let document = async_graphql::parser::parse_query(query).map_err(syntax_error)?;
        self.limits
            .check_document(&document)
            .map_err(|refusal| refusal.into_server_error())?;
        let document = Arc::new(document);
        let weight = (query.len() * 2)
            .saturating_add(tokens.saturating_mul(BYTES_PER_TOKEN))
            .saturating_add(256);
        self.parsed.insert(
            query.to_owned(),
            Parsed {
                document: document.clone(),
                weight: u32::try_from(weight).unwrap_or(u32::MAX),
            },
        );
        Ok(document)
    }
}

/// pest formats a syntax error with the offending line of the query and a
/// caret under it; a client has the query already, and a long line would
/// make the answer as large as the request. Keep the position and what was
/// expected.
fn syntax_error(error: async_graphql::parser::Error) -> ServerError {
    let positions: Vec<_> = error.positions().collect();
    let message = match &error {
        async_graphql::parser::Error::Syntax { message, .. } => {
            let expected = message
                .lines()
                .find_map(|line| line.trim_start().strip_prefix("= "))
                .unwrap_or("unexpected input");
            let expected: String = expected.chars().take(200).collect();
            format!("syntax error: {expected}")
        }
        other => other.to_string(),
    };
    let mut error = ServerError::new(message, positions.first().copied());
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "BAD_USER_INPUT");
    error
}

/// A request that omits a variable its operation requires: a request error
/// (HTTP 400), as the GraphQL-over-HTTP specification asks, rather than a
/// field error once execution has begun.
fn missing_variable(document: &ExecutableDocument, request: &Request) -> Option<ServerError> {
    let operation = selected_operation(document, request.operation_name.as_deref())?;
    operation
        .node
        .variable_definitions
        .iter()
        .find(|definition| {
            let definition = &definition.node;
            matches!(
                definition.var_type.node,
                Type {
                    nullable: false,
                    ..
                }
            ) && definition.default_value.is_none()
                && !request.variables.contains_key(&definition.name.node)
        })
        .map(|definition| {
            let mut error = ServerError::new(
                format!(
                    "variable ${} of required type {} was not provided",
                    definition.node.name.node, definition.node.var_type.node
                ),
                Some(definition.pos),
            );
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "BAD_USER_INPUT");
            error
        })
}

/// The answer for a panic caught at `pos`: `INTERNAL`, with the panic's
/// message logged and never sent.
pub(crate) fn internal_error(panic: &(dyn std::any::Any + Send), pos: Option<Pos>) -> ServerError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a resolver panicked");
    let mut error = ServerError::new("internal error", pos);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "INTERNAL");
    error
}

pub async fn execute<Query, Mutation, Subscription>(
    schema: &Schema<Query, Mutation, Subscription>,
    documents: &Documents,
    mut request: Request,
) -> Response
where
    Query: ObjectType + 'static,
    Mutation: ObjectType + 'static,
    Subscription: SubscriptionType + 'static,
{
    let document = match documents.get(&request.query) {
        Ok(document) => document,
        Err(refused) => return Response::from_errors(vec![refused]),
    };
    if let Err(refused) = documents.limits().check_variables(&request.variables) {
        return Response::from_errors(vec![refused.into_server_error()]);
    }
    if let Some(missing) = missing_variable(&document, &request) {
        return Response::from_errors(vec![missing]);
    }
    let operation_name = request.operation_name.clone();
    let variables = request.variables.clone();
    request.set_parsed_query(ExecutableDocument::clone(&document));
    let mut response = match AssertUnwindSafe(schema.execute(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => Response::from_errors(vec![internal_error(&*panic, None)]),
    };
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
    documents.limits().cap_errors(&mut response.errors);
    super::order::restore(
        &mut response.data,
        &document,
        operation_name.as_deref(),
        &variables,
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Value};

    struct Query;

    #[Object]
    impl Query {
        async fn fine(&self) -> i32 {
            1
        }
        async fn boom(&self, explode: bool) -> Option<i32> {
            if explode {
                panic!("resolver bug");
            }
            Some(2)
        }
    }

    fn schema() -> Schema<Query, EmptyMutation, EmptySubscription> {
        Schema::build(Query, EmptyMutation, EmptySubscription).finish()
    }

    fn code(response: &Response) -> Option<Value> {
        response.errors[0].extensions.as_ref()?.get("code").cloned()
    }

    #[test]
    fn a_syntax_error_names_its_place_without_echoing_the_query() {
        let documents = Documents::new(1 << 20, Limits::default());
        let long = format!("{{ fine(x: \"{}\") ", "y".repeat(5000));
        let error = documents.get(&long).unwrap_err();
        assert!(
            error.message.starts_with("syntax error: expected"),
            "{}",
            error.message
        );
        assert!(!error.message.contains("yyyy"), "{}", error.message);
        assert_eq!(error.locations[0].line, 1);
    }

    #[tokio::test]
    async fn a_panicking_resolver_becomes_an_internal_error_and_the_process_goes_on() {
        let documents = Documents::new(1 << 20, Limits::default());
        let response = execute(
            &schema(),
            &documents,
            Request::new("{ fine boom(explode: true) }"),
        )
        .await;
        assert_eq!(response.errors.len(), 1);
        assert_eq!(code(&response), Some(Value::from("INTERNAL")));
        assert_eq!(response.errors[0].message, "internal error");
        let after = execute(
            &schema(),
            &documents,
            Request::new("{ fine boom(explode: false) }"),
        )
        .await;
        assert_eq!(
            after.data.into_json().unwrap(),
            serde_json::json!({ "fine": 1, "boom": 2 })
        );
    }

    #[tokio::test]
    async fn parse_and_validation_errors_get_bad_user_input() {
        let documents = Documents::new(1 << 20, Limits::default());
        for query in ["{ nope }", "{ fine"] {
            let response = execute(&schema(), &documents, Request::new(query)).await;
            assert_eq!(
                code(&response),
                Some(Value::from("BAD_USER_INPUT")),
                "{query}"
            );
        }
    }

    #[tokio::test]
    async fn a_cached_document_answers_like_a_fresh_parse() {
        let documents = Documents::new(1 << 20, Limits::default());
        for _ in 0..2 {
            let response = execute(&schema(), &documents, Request::new("{ fine }")).await;
            assert_eq!(
                response.data.into_json().unwrap(),
                serde_json::json!({ "fine": 1 })
            );
        }
    }
}
