//! Caches parsed documents by query text, and validation results by query
//! text, operation name and variables. On a cache hit the lookup is cheap;
//! parsing and validating the query are not, and async-graphql has no cache
//! of its own for either. Validation depends on the variables (their types,
//! and complexity through page sizes), hence the key; the schema and limits
//! are fixed for the life of the process.
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError, ServerResult, ValidationResult, Variables};
use moka::sync::Cache;
use std::sync::{Arc, Mutex};

pub struct DocumentCache {
    documents: Cache<String, Arc<ExecutableDocument>>,
    validations: Cache<String, ValidationResult>,
}

impl DocumentCache {
    /// Bounded by the bytes of the keys (query texts), `max_bytes` each.
    pub fn new(max_bytes: u64) -> Self {
        let weigh = |key: &String| u32::try_from(key.len() * 4 + 64).unwrap_or(u32::MAX);
        Self {
            documents: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |key: &String, _: &Arc<ExecutableDocument>| weigh(key))
                .build(),
            validations: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |key: &String, _: &ValidationResult| weigh(key))
                .build(),
        }
    }
}

pub struct DocumentCacheExtension(pub Arc<DocumentCache>);

impl ExtensionFactory for DocumentCacheExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest {
            shared: self.0.clone(),
            validation_key: Mutex::new(None),
        })
    }
}

struct PerRequest {
    shared: Arc<DocumentCache>,
    validation_key: Mutex<Option<String>>,
}

fn validation_key(request: &Request) -> Option<String> {
    let variables = serde_json::to_string(&request.variables).ok()?;
    let operation = request.operation_name.as_deref().unwrap_or("");
    let mut key =
        String::with_capacity(operation.len() + variables.len() + request.query.len() + 2);
    key.push_str(operation);
    key.push('\0');
    key.push_str(&variables);
    key.push('\0');
    key.push_str(&request.query);
    Some(key)
}

#[async_trait::async_trait]
impl Extension for PerRequest {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let mut request = next.run(ctx, request).await?;
        if let Some(document) = self.shared.documents.get(&request.query) {
            request.set_parsed_query(ExecutableDocument::clone(&document));
        }
        *self
            .validation_key
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = validation_key(&request);
        Ok(request)
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        if !self.shared.documents.contains_key(query) {
            self.shared
                .documents
                .insert(query.to_owned(), Arc::new(document.clone()));
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let key = self
            .validation_key
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(result) = key
            .as_ref()
            .and_then(|key| self.shared.validations.get(key))
        {
            return Ok(result);
        }
        let result = next.run(ctx).await?;
        if let Some(key) = key {
            self.shared.validations.insert(key, result);
        }
        Ok(result)
    }
}
