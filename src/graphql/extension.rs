//! Two promises about errors that hold for every request:
//! - a panic in a resolver becomes an `INTERNAL` error on that field, and the
//!   rest of the request and the process carry on;
//! - every error carries `extensions.code`. async-graphql's own errors (parse,
//!   validation, input coercion, depth and complexity limits) have none, and
//!   all of them are the client's to fix, so they get `BAD_USER_INPUT`.
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextRequest, NextResolve, ResolveInfo,
};
use async_graphql::{Response, ServerError, ServerResult, Value};
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

pub struct ErrorPolicy;

impl ExtensionFactory for ErrorPolicy {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorPolicy)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorPolicy {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        for error in &mut response.errors {
            let extensions = error.extensions.get_or_insert_with(Default::default);
            if extensions.get("code").is_none() {
                extensions.set("code", "BAD_USER_INPUT");
            }
        }
        response
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let path_node = info.path_node;
        match AssertUnwindSafe(next.run(ctx, info)).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(field = %path_node, panic = %message, "resolver panicked");
                let mut error = ServerError::new("internal error", None);
                error.path = serde_json::to_value(path_node)
                    .and_then(serde_json::from_value)
                    .unwrap_or_default();
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "INTERNAL");
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

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
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(ErrorPolicy)
            .finish()
    }

    #[tokio::test]
    async fn a_panicking_resolver_becomes_an_internal_error_and_the_rest_resolves() {
        let response = schema().execute("{ fine boom(explode: true) }").await;
        let data = response.data.clone().into_json().unwrap();
        assert_eq!(data["fine"], 1, "the other field still resolves");
        assert!(data["boom"].is_null());
        assert_eq!(response.errors.len(), 1);
        let code = response.errors[0].extensions.as_ref().unwrap().get("code");
        assert_eq!(code, Some(&Value::from("INTERNAL")));
        assert_eq!(response.errors[0].message, "internal error");
    }

    #[tokio::test]
    async fn validation_errors_get_bad_user_input() {
        let response = schema().execute("{ nope }").await;
        let code = response.errors[0].extensions.as_ref().unwrap().get("code");
        assert_eq!(code, Some(&Value::from("BAD_USER_INPUT")));
    }
}
