//! What the GraphQL endpoint tells the layers around it about a request it
//! answered: which operation, of what kind, and whether the response tier
//! answered it without executing. The endpoint inserts an [`Answered`] into
//! the response's extensions; the request metrics and the access log read
//! it there, so neither has to look at the request body again.
//!
//! A request refused before it reached the executor (bad HTTP usage, a
//! persisted query that could not be resolved) carries none.
use crate::graphql::Documents;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use axum::response::Response;
use std::sync::Arc;

/// How the GraphQL endpoint answered one request; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The operation's name: `operationName` as sent, or else the name the
    /// document gives its operation; `None` for an anonymous one. Never the
    /// query text.
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
    /// A request the response tier answered. Only answers to queries that
    /// executed successfully are kept, so the document is known good and
    /// has one operation (or `operationName` picks it): its name is read
    /// off the front of the text, without the parsed document, unless the
    /// text starts with something other than that operation.
    pub(super) fn by_tier(documents: &Documents, request: &async_graphql::Request) -> Self {
        let operation = match &request.operation_name {
            Some(name) => Some(Arc::from(name.as_str())),
            None => match leading_operation(&request.query) {
                Some(name) => name.map(Arc::from),
                None => documents.get(&request.query).ok().and_then(|document| {
                    operation_of(&document, None).and_then(|(name, _)| name.map(Arc::from))
                }),
            },
        };
        Self {
            operation,
            kind: OperationKind::Query,
            by_tier: true,
        }
    }

    /// A request sent to the executor: the operation it selects, read from
    /// the parsed document (which execution parses anyway, and keeps).
    pub(super) fn executed(documents: &Documents, request: &async_graphql::Request) -> Self {
        let given = request.operation_name.as_deref();
        let selected = documents.get(&request.query).ok().and_then(|document| {
            operation_of(&document, given).map(|(name, ty)| (name.map(Arc::from), ty))
        });
        let (operation, kind) = match selected {
            Some((name, ty)) => (name, ty.into()),
            None => (given.map(Arc::from), OperationKind::Unknown),
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

/// The name and type of the operation `operation_name` selects, as
/// async-graphql picks it (`None` if it selects none).
fn operation_of<'a>(
    document: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(Option<&'a str>, OperationType)> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => Some((None, operation.node.ty)),
        (DocumentOperations::Multiple(operations), Some(name)) => operations
            .get_key_value(name)
            .map(|(name, operation)| (Some(name.as_str()), operation.node.ty)),
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => operations
            .iter()
            .next()
            .map(|(name, operation)| (Some(name.as_str()), operation.node.ty)),
        _ => None,
    }
}

/// The name of the operation a GraphQL text starts with: `Some(None)` for
/// an anonymous one (`{ ... }`, `query { ... }`), `None` when the text
/// starts with anything else (a fragment, say) and so cannot be read this
/// way. Skips what the GraphQL grammar ignores: white space, commas, line
/// terminators, a byte order mark and comments.
fn leading_operation(text: &str) -> Option<Option<&str>> {
    let rest = skip_ignored(text);
    if rest.starts_with('{') {
        return Some(None);
    }
    let keyword = ["query", "mutation", "subscription"]
        .into_iter()
        .find(|keyword| rest.starts_with(keyword))?;
    let after = &rest[keyword.len()..];
    if after.starts_with(is_name_char) {
        // `queryX`: a longer word, not the keyword.
        return None;
    }
    let after = skip_ignored(after);
    let name_len = after
        .find(|c: char| !is_name_char(c))
        .unwrap_or(after.len());
    match &after[..name_len] {
        "" => Some(None),
        // Not a name: leave it to the parser.
        name if name.starts_with(|c: char| c.is_ascii_digit()) => None,
        name => Some(Some(name)),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn skip_ignored(mut text: &str) -> &str {
    loop {
        let trimmed = text.trim_start_matches(['\u{feff}', ' ', '\t', '\n', '\r', ',']);
        match trimmed.strip_prefix('#') {
            Some(comment) => {
                text = comment.find(['\n', '\r']).map_or("", |end| &comment[end..]);
            }
            None => return trimmed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leading_operation_is_read_off_the_text() {
        assert_eq!(
            leading_operation("query Book($id: ID!) { book(id: $id) { id } }"),
            Some(Some("Book"))
        );
        assert_eq!(leading_operation("  { books { totalCount } }"), Some(None));
        assert_eq!(leading_operation("query { me { id } }"), Some(None));
        assert_eq!(leading_operation("query($a: Int) { a }"), Some(None));
        assert_eq!(leading_operation("query @dir { a }"), Some(None));
        assert_eq!(
            leading_operation("\u{feff}# a comment, query Not\n,mutation\tSave_2 { a }"),
            Some(Some("Save_2"))
        );
        assert_eq!(leading_operation("subscription S { a }"), Some(Some("S")));
        assert_eq!(
            leading_operation("fragment F on Book { id } query Q { a }"),
            None
        );
        assert_eq!(leading_operation("queryX { a }"), None);
        assert_eq!(leading_operation(""), None);
        assert_eq!(leading_operation("# only a comment"), None);
    }

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
            (broken.operation.as_deref(), broken.kind),
            (Some("Broken"), OperationKind::Unknown)
        );
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
