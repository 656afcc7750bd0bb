//! Which operation of a document a request runs, picked as async-graphql
//! picks it: the executor, the persisted-query checks, the access log and
//! the metrics all need the same answer.
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::Positioned;

/// The operation a request would run, as async-graphql picks it.
pub fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    selected_named_operation(document, operation_name).map(|(_, operation)| operation)
}

/// [`selected_operation`] with the operation's name (`None` for an
/// anonymous one), for what reports it (metrics, the access log).
pub fn selected_named_operation<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(Option<&'a str>, &'a Positioned<OperationDefinition>)> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => Some((None, operation)),
        (DocumentOperations::Multiple(operations), Some(name)) => operations
            .get_key_value(name)
            .map(|(name, operation)| (Some(name.as_str()), operation)),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .iter()
            .next()
            .map(|(name, operation)| (Some(name.as_str()), operation)),
        _ => None,
    }
}
