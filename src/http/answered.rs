//! What the GraphQL endpoint tells the layers around it about a request it
//! answered: which operation, of what kind, and whether the response tier
//! answered it without executing. The endpoint inserts an [`Answered`] into
//! the response's extensions; the request metrics and the access log read
//! it there, so neither has to look at the request body again.
//!
//! A request refused before it reached the executor (bad HTTP usage, a
//! persisted query that could not be resolved) carries none.
use crate::graphql::{selected_named_operation, Documents};
use async_graphql::parser::types::OperationType;
use axum::response::Response;
use std::sync::Arc;

/// The longest operation name reported; a longer one is cut. A document
/// may define a name of any length (up to the body limit), and each name
/// becomes a metrics label and a log field.
pub const MAX_OPERATION_LEN: usize = 100;

/// How the GraphQL endpoint answered one request; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The name the document gives the operation that runs, cut to
    /// [`MAX_OPERATION_LEN`] bytes; `None` for an anonymous one, and for an
    /// `operationName` the document does not define (a client can send any
    /// string there, and metrics labels and log lines are made from this).
    /// Never the query text.
    pub operation: Option<Arc<str>>,
    /// What the operation is; `Unknown` when the document could not be read
    /// or names no operation that would run.
    pub kind: OperationKind,
    /// Whether the response tier answered (a kept answer, or a 304 from one)
    /// and nothing was executed.
    pub by_tier: bool,
}

/// What kind of operation a request ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
    /// The document did not parse or validate far enough to tell, or named
    /// no operation that would run.
    Unknown,
}

impl OperationKind {
    /// Every kind, so that per-kind tables can be indexed by [`Self::index`].
    pub const ALL: [Self; 4] = [
        Self::Query,
        Self::Mutation,
        Self::Subscription,
        Self::Unknown,
    ];

    /// The kind as a label and a log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Mutation => "mutation",
            Self::Subscription => "subscription",
            Self::Unknown => "unknown",
        }
    }

    /// Its position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl From<OperationType> for OperationKind {
    fn from(ty: OperationType) -> Self {
        match ty {
            OperationType::Query => Self::Query,
            OperationType::Mutation => Self::Mutation,
            OperationType::Subscription => Self::Subscription,
        }
    }
}

impl Answered {
    /// A request the response tier answered: only answers to queries are
    /// kept, so it is a query; its name is the one execution would report.
    pub(super) fn by_tier(documents: &Documents, request: &async_graphql::Request) -> Self {
        Self {
            kind: OperationKind::Query,
            by_tier: true,
            ..Self::executed(documents, request)
        }
    }

    /// A request sent to the executor: the operation it selects, read from
    /// the parsed document (a lookup in the documents execution keeps).
    /// Only a name the document defines is reported: `operationName` alone
    /// is whatever the client typed.
    pub(super) fn executed(documents: &Documents, request: &async_graphql::Request) -> Self {
        let given = request.operation_name.as_deref();
        let selected = documents.get(&request.query).ok().and_then(|document| {
            selected_named_operation(&document, given).map(|(name, operation)| {
                (name.map(|name| Arc::from(capped(name))), operation.node.ty)
            })
        });
        let (operation, kind) = match selected {
            Some((name, ty)) => (name, ty.into()),
            None => (None, OperationKind::Unknown),
        };
        Self {
            operation,
            kind,
            by_tier: false,
        }
    }

    /// `response`, carrying this.
    pub(super) fn attach(self, mut response: Response) -> Response {
        response.extensions_mut().insert(self);
        response
    }
}

/// `name` cut to at most [`MAX_OPERATION_LEN`] bytes, on a character
/// boundary (GraphQL names are ASCII, so this is a plain cut).
fn capped(name: &str) -> &str {
    if name.len() <= MAX_OPERATION_LEN {
        return name;
    }
    let mut end = MAX_OPERATION_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executed(query: &str, name: Option<&str>) -> Answered {
        let documents = Documents::new(1 << 20, crate::graphql::Limits::default());
        let mut request = async_graphql::Request::new(query);
        if let Some(name) = name {
            request = request.operation_name(name);
        }
        Answered::executed(&documents, &request)
    }

    #[test]
    fn an_executed_request_names_the_operation_it_selects() {
        let named = executed("query Book { book(id: \"1\") { id } }", None);
        assert_eq!(named.operation.as_deref(), Some("Book"));
        assert_eq!(named.kind, OperationKind::Query);
        assert!(!named.by_tier);

        let both = "query A { me { id } } mutation B { logout }";
        let b = executed(both, Some("B"));
        assert_eq!(
            (b.operation.as_deref(), b.kind),
            (Some("B"), OperationKind::Mutation)
        );
        let unpicked = executed(both, None);
        assert_eq!(
            (unpicked.operation, unpicked.kind),
            (None, OperationKind::Unknown)
        );

        let anonymous = executed("mutation { logout }", None);
        assert_eq!(
            (anonymous.operation, anonymous.kind),
            (None, OperationKind::Mutation)
        );
        let broken = executed("query Broken {", Some("Broken"));
        assert_eq!(
            (broken.operation, broken.kind),
            (None, OperationKind::Unknown)
        );
    }

    #[test]
    fn an_operation_name_the_document_does_not_define_is_not_reported() {
        let made_up = "x".repeat(100 * 1024);
        let undefined = executed("query A { __typename }", Some(&made_up));
        assert_eq!(
            (undefined.operation, undefined.kind),
            (None, OperationKind::Unknown)
        );
        let anonymous = executed("{ __typename }", Some("Invented"));
        assert_eq!(anonymous.operation, None);
    }

    #[test]
    fn a_long_defined_name_is_cut() {
        let long = format!("N{}", "x".repeat(100 * 1024));
        let answered = executed(&format!("query {long} {{ __typename }}"), None);
        assert_eq!(
            answered.operation.as_deref(),
            Some(&long[..MAX_OPERATION_LEN])
        );
        assert_eq!(answered.kind, OperationKind::Query);
    }

    #[test]
    fn a_tier_answer_is_a_query_named_like_its_execution() {
        let documents = Documents::new(1 << 20, crate::graphql::Limits::default());
        for (query, name) in [
            ("query Book { book(id: \"1\") { id } }", Some("Book")),
            ("{ books { totalCount } }", None),
            (
                "fragment F on Book { id } query Late { book(id: \"1\") { ...F } }",
                Some("Late"),
            ),
        ] {
            let request = async_graphql::Request::new(query);
            let answered = Answered::by_tier(&documents, &request);
            assert_eq!(answered.operation.as_deref(), name, "{query}");
            assert_eq!(answered.kind, OperationKind::Query);
            assert!(answered.by_tier);
            assert_eq!(
                answered.operation,
                Answered::executed(&documents, &request).operation
            );
        }
    }
}
