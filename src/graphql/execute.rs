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
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ObjectType, Request, Response, Schema, ServerError, SubscriptionType};
use futures_util::FutureExt;
use moka::sync::Cache;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// Parsed documents by query text. Parsing costs more than a cache hit, and
/// clients send the same few query texts over and over.
pub struct Documents(Cache<String, Arc<ExecutableDocument>>);

impl Documents {
    /// Bounded by the bytes of the query texts.
    pub fn new(max_bytes: u64) -> Self {
        Self(
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|query: &String, _: &Arc<ExecutableDocument>| {
                    u32::try_from(query.len() * 8 + 64).unwrap_or(u32::MAX)
                })
                .build(),
        )
    }

    /// The parsed document for `query`, parsing and remembering it on a miss;
    /// `Ok(None)` if it does not parse (execution reports why). A query
    /// nested deeper than [`MAX_NESTING`] is refused before it is parsed.
    pub fn get(&self, query: &str) -> Result<Option<Arc<ExecutableDocument>>, ServerError> {
        if let Some(document) = self.0.get(query) {
            return Ok(Some(document));
        }
        if nests_deeper_than(query, MAX_NESTING) {
            return Err(ServerError::new(
                format!("the query nests brackets deeper than {MAX_NESTING} levels"),
                None,
            ));
        }
        let Ok(document) = async_graphql::parser::parse_query(query) else {
            return Ok(None);
        };
        let document = Arc::new(document);
        self.0.insert(query.to_owned(), document.clone());
        Ok(Some(document))
    }
}

/// How deeply `{`, `[` and `(` may nest in a query's text. The parser and
/// the executor recurse once per level, so a few kilobytes of brackets
/// would otherwise overflow a worker's stack and abort the process; no
/// real query comes near (selections stop at `--max-depth`).
pub const MAX_NESTING: usize = 64;

/// Whether brackets nest deeper than `limit` outside strings and comments:
/// one linear pass over the bytes, before anything recursive runs.
fn nests_deeper_than(query: &str, limit: usize) -> bool {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // An escaped triple quote does not close the block.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2; // the closing quotes, less the one the loop skips
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
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
    match documents.get(&request.query) {
        Ok(Some(document)) => request.set_parsed_query(ExecutableDocument::clone(&document)),
        Ok(None) => {}
        Err(mut refused) => {
            refused
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "BAD_USER_INPUT");
            return Response::from_errors(vec![refused]);
        }
    }
    let mut response = match AssertUnwindSafe(schema.execute(request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %message, "a resolver panicked");
            let mut error = ServerError::new("internal error", None);
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "INTERNAL");
            Response::from_errors(vec![error])
        }
    };
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
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
    fn nesting_is_counted_outside_strings_and_comments() {
        let deep = |n: usize| format!("{{ f(x: {}1{}) }}", "[".repeat(n), "]".repeat(n));
        assert!(!nests_deeper_than(&deep(10), 64));
        assert!(nests_deeper_than(&deep(64), 64));
        assert!(!nests_deeper_than(&deep(62), 64));
        let quoted = format!("{{ f(x: \"{}\\\" [[\") }}", "[".repeat(500));
        assert!(!nests_deeper_than(&quoted, 64));
        let block = format!("{{ f(x: \"\"\"{} \\\"\"\" [[\"\"\") }}", "{".repeat(500));
        assert!(!nests_deeper_than(&block, 64));
        let comment = format!("{{ f # {}\n }}", "(".repeat(500));
        assert!(!nests_deeper_than(&comment, 64));
        assert!(nests_deeper_than(&"{ a ".repeat(100), 64));
    }

    #[tokio::test]
    async fn a_panicking_resolver_becomes_an_internal_error_and_the_process_goes_on() {
        let documents = Documents::new(1 << 20);
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
        let documents = Documents::new(1 << 20);
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
        let documents = Documents::new(1 << 20);
        for _ in 0..2 {
            let response = execute(&schema(), &documents, Request::new("{ fine }")).await;
            assert_eq!(
                response.data.into_json().unwrap(),
                serde_json::json!({ "fine": 1 })
            );
        }
    }
}
