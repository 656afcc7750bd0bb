//! What a request may cost, checked before the expensive work.
//!
//! async-graphql's parser recurses once per bracket, and its validation and
//! executor walk a fragment once per spread, so a few hundred bytes can
//! overflow a stack or cost minutes. Every check here is linear in the
//! request: the text is scanned once before parsing (nesting, tokens), and
//! the parsed document is walked once, each fragment measured once however
//! often it is spread (depth, fields once expanded, aliases, directives).
//! Only then do validation, complexity and execution run, on a document
//! whose expansion is known to be small.
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Pos, Positioned, ServerError, Value};
use std::collections::HashMap;
use text_scan::scan;

/// The limits on one request. The defaults admit every query our clients
/// and GraphiQL's introspection send, with room to spare.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest selection nesting, fragments expanded.
    pub max_depth: usize,
    /// Highest complexity: each field costs 1, a page multiplies what is
    /// inside it by its page size, scans cost more (see the resolvers).
    pub max_complexity: usize,
    /// Deepest nesting of brackets in the text and of values in variables.
    /// The parser recurses once per level; capped at [`NESTING_CEILING`].
    pub max_nesting: usize,
    /// Most lexical tokens in the query text.
    pub max_tokens: usize,
    /// Most aliased fields in the query text.
    pub max_aliases: usize,
    /// Most fragment definitions.
    pub max_fragments: usize,
    /// Most directives on one field, fragment spread or inline fragment.
    pub max_directives: usize,
    /// Most fields of the document once every fragment is expanded, all
    /// its operations together: validation walks every one of them.
    pub max_fields: usize,
    /// Largest `variables`, in bytes as JSON.
    pub max_variables_bytes: usize,
    /// Most errors in one response; the rest are summarised in one more.
    pub max_errors: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 10,
            max_complexity: 5000,
            max_nesting: 64,
            max_tokens: 4000,
            max_aliases: 30,
            max_fragments: 50,
            max_directives: 4,
            max_fields: 1000,
            max_variables_bytes: 64 * 1024,
            max_errors: 20,
        }
    }
}

/// The nesting no configuration may exceed: deeper, a debug build's worker
/// stack can overflow in the parser.
pub const NESTING_CEILING: usize = 128;

/// A request refused by a limit: which one, what was found, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub limit: &'static str,
    pub message: String,
    pub pos: Option<Pos>,
}

impl LimitExceeded {
    fn new(limit: &'static str, message: String) -> Self {
        Self {
            limit,
            message,
            pos: None,
        }
    }

    /// As a request error with `extensions.code` and the limit's name.
    pub fn into_server_error(self) -> ServerError {
        let mut error = ServerError::new(self.message, self.pos);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        extensions.set("code", "BAD_USER_INPUT");
        extensions.set("limit", self.limit);
        error
    }
}

impl Limits {
    /// The checks on the query text, before it is parsed; the count of its
    /// lexical tokens when it passes.
    pub fn check_text(&self, query: &str) -> Result<usize, LimitExceeded> {
        let scan = scan(query, self.max_nesting.min(NESTING_CEILING));
        if scan.too_deep {
            return Err(LimitExceeded::new(
                "maxNesting",
                format!(
                    "the query nests brackets deeper than {} levels",
                    self.max_nesting.min(NESTING_CEILING)
                ),
            ));
        }
        if scan.tokens > self.max_tokens {
            return Err(LimitExceeded::new(
                "maxTokens",
                format!(
                    "the query has {} tokens; at most {} are accepted",
                    scan.tokens, self.max_tokens
                ),
            ));
        }
        Ok(scan.tokens)
    }

    /// The checks on the parsed document, each fragment measured once.
    pub fn check_document(&self, document: &ExecutableDocument) -> Result<(), LimitExceeded> {
        if document.fragments.len() > self.max_fragments {
            return Err(LimitExceeded::new(
                "maxFragments",
                format!(
                    "the query defines {} fragments; at most {} are accepted",
                    document.fragments.len(),
                    self.max_fragments
                ),
            ));
        }
        let mut text = TextCounts::default();
        for fragment in document.fragments.values() {
            let introspection = fragment.node.type_condition.node.on.node.starts_with("__");
            text.count(
                &fragment.node.selection_set,
                self.max_directives,
                introspection,
            )?;
        }
        for (_, operation) in document.operations.iter() {
            check_directives(&operation.node.directives, self.max_directives)?;
            text.count(&operation.node.selection_set, self.max_directives, false)?;
        }
        if text.aliases > self.max_aliases {
            return Err(LimitExceeded::new(
                "maxAliases",
                format!(
                    "the query has {} aliases; at most {} are accepted",
                    text.aliases, self.max_aliases
                ),
            ));
        }
        let mut expansion = Expansion {
            document,
            measured: HashMap::new(),
        };
        let mut fields = 0usize;
        for (_, operation) in document.operations.iter() {
            fields = fields.saturating_add(self.check_operation(&mut expansion, &operation.node)?);
        }
        if fields > self.max_fields {
            return Err(LimitExceeded::new(
                "maxFields",
                format!(
                    "the query selects {fields} fields once its fragments are expanded; \
                     at most {} are accepted",
                    self.max_fields
                ),
            ));
        }
        Ok(())
    }

    /// Checks one operation's depth and introspection; its fields once
    /// expanded, which count towards the document's.
    fn check_operation<'a>(
        &self,
        expansion: &mut Expansion<'a>,
        operation: &'a OperationDefinition,
    ) -> Result<usize, LimitExceeded> {
        let size = expansion.measure(&operation.selection_set)?;
        if size.depth > self.max_depth {
            return Err(LimitExceeded::new(
                "maxDepth",
                format!(
                    "the query nests selections {} deep; at most {} is accepted",
                    size.depth, self.max_depth
                ),
            ));
        }
        if size.introspection_depth > INTROSPECTION_DEPTH {
            return Err(LimitExceeded::new(
                "maxDepth",
                format!(
                    "the query nests introspection {} deep; at most {INTROSPECTION_DEPTH} is accepted",
                    size.introspection_depth
                ),
            ));
        }
        // Each `__schema` is the whole schema: one per operation is enough.
        let mut schema_keys = Vec::new();
        expansion.root_keys_of(&operation.selection_set, "__schema", &mut schema_keys);
        schema_keys.sort_unstable();
        schema_keys.dedup();
        if schema_keys.len() > 1 {
            return Err(LimitExceeded::new(
                "introspection",
                "the query asks for __schema more than once".to_owned(),
            ));
        }
        Ok(size.fields)
    }

    /// The checks on the variables: as deep as the text may nest, and no
    /// larger than [`Limits::max_variables_bytes`] written as JSON.
    pub fn check_variables(
        &self,
        variables: &async_graphql::Variables,
    ) -> Result<(), LimitExceeded> {
        let limit = self.max_nesting.min(NESTING_CEILING);
        // `{}` and, per variable, its quoted name and a colon and comma.
        let mut bytes = 2usize;
        let mut stack: Vec<(&Value, usize)> = Vec::with_capacity(variables.len());
        for (name, value) in variables.iter() {
            bytes = bytes.saturating_add(name.len() + 4);
            stack.push((value, 1));
        }
        while let Some((value, depth)) = stack.pop() {
            if depth > limit {
                return Err(LimitExceeded::new(
                    "maxNesting",
                    format!("the variables nest deeper than {limit} levels"),
                ));
            }
            bytes = bytes.saturating_add(match value {
                Value::List(items) => {
                    stack.extend(items.iter().map(|v| (v, depth + 1)));
                    2 + items.len()
                }
                Value::Object(fields) => {
                    stack.extend(fields.values().map(|v| (v, depth + 1)));
                    2 + fields.keys().map(|key| key.len() + 4).sum::<usize>()
                }
                Value::String(text) => text.len() + 2,
                Value::Binary(data) => data.len() * 4 / 3 + 2,
                Value::Enum(name) => name.len() + 2,
                Value::Number(_) => 8,
                Value::Boolean(_) | Value::Null => 5,
            });
            if bytes > self.max_variables_bytes {
                return Err(LimitExceeded::new(
                    "maxVariablesBytes",
                    format!(
                        "the variables are larger than {} bytes",
                        self.max_variables_bytes
                    ),
                ));
            }
        }
        Ok(())
    }

    /// At most `max_errors` errors; the rest become one that says how many.
    pub fn cap_errors(&self, errors: &mut Vec<ServerError>) {
        let keep = self.max_errors.max(1);
        if errors.len() <= keep {
            return;
        }
        let omitted = errors.split_off(keep - 1);
        let code = omitted[0]
            .extensions
            .as_ref()
            .and_then(|extensions| extensions.get("code").cloned())
            .unwrap_or_else(|| Value::from("BAD_USER_INPUT"));
        let mut summary = ServerError::new(
            format!(
                "{} more errors not shown, the first: {}",
                omitted.len(),
                omitted[0].message
            ),
            omitted[0].locations.first().copied(),
        );
        summary.path.clone_from(&omitted[0].path);
        let extensions = summary.extensions.get_or_insert_with(Default::default);
        extensions.set("code", code);
        extensions.set("omitted", omitted.len());
        errors.push(summary);
    }
}

/// Counts over the text as written, each selection once.
#[derive(Default)]
struct TextCounts {
    aliases: usize,
}

impl TextCounts {
    /// Counts `set`; `introspection` when it lies inside `__schema` or
    /// `__type` (or a fragment on an introspection type), where an alias
    /// would walk the schema once more and is refused: tools send none.
    fn count(
        &mut self,
        set: &Positioned<SelectionSet>,
        max_directives: usize,
        introspection: bool,
    ) -> Result<(), LimitExceeded> {
        for selection in &set.node.items {
            match &selection.node {
                Selection::Field(field) => {
                    if let (true, Some(alias)) = (introspection, &field.node.alias) {
                        return Err(LimitExceeded {
                            limit: "introspection",
                            message: "aliases inside __schema and __type are not accepted"
                                .to_owned(),
                            pos: Some(alias.pos),
                        });
                    }
                    self.aliases += usize::from(field.node.alias.is_some());
                    check_directives(&field.node.directives, max_directives)?;
                    let name = field.node.name.node.as_str();
                    let inside = introspection || name == "__schema" || name == "__type";
                    self.count(&field.node.selection_set, max_directives, inside)?;
                }
                Selection::FragmentSpread(spread) => {
                    check_directives(&spread.node.directives, max_directives)?;
                }
                Selection::InlineFragment(inline) => {
                    check_directives(&inline.node.directives, max_directives)?;
                    let on_introspection = inline
                        .node
                        .type_condition
                        .as_ref()
                        .is_some_and(|condition| condition.node.on.node.starts_with("__"));
                    self.count(
                        &inline.node.selection_set,
                        max_directives,
                        introspection || on_introspection,
                    )?;
                }
            }
        }
        Ok(())
    }
}

fn check_directives<T>(directives: &[Positioned<T>], max: usize) -> Result<(), LimitExceeded> {
    if directives.len() > max {
        return Err(LimitExceeded {
            limit: "maxDirectives",
            message: format!(
                "{} directives in one place; at most {max} are accepted",
                directives.len()
            ),
            pos: directives.first().map(|d| d.pos),
        });
    }
    Ok(())
}

/// The size of a selection set once its fragments are expanded. Depth
/// inside `__schema` and `__type` is counted apart: type references nest
/// ten deep in the introspection query every tool sends, deeper than any
/// data query needs.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    fields: usize,
    depth: usize,
    introspection_depth: usize,
}

/// How deep introspection may nest: enough for graphql-js's query.
const INTROSPECTION_DEPTH: usize = 20;

enum Measured {
    InProgress,
    Done(Size),
}

/// Measures selection sets, each fragment once: a fragment spread twice
/// costs one lookup the second time, so the walk is linear in the text
/// even where the expansion is exponential.
struct Expansion<'a> {
    document: &'a ExecutableDocument,
    measured: HashMap<&'a Name, Measured>,
}

impl<'a> Expansion<'a> {
    fn measure(&mut self, set: &'a Positioned<SelectionSet>) -> Result<Size, LimitExceeded> {
        let mut total = Size::default();
        for selection in &set.node.items {
            let size = match &selection.node {
                Selection::Field(field) => {
                    let inner = self.measure(&field.node.selection_set)?;
                    let fields = inner.fields.saturating_add(1);
                    if field.node.name.node.starts_with("__") {
                        Size {
                            fields,
                            depth: 0,
                            introspection_depth: 1 + inner.depth.max(inner.introspection_depth),
                        }
                    } else {
                        Size {
                            fields,
                            depth: inner.depth + 1,
                            introspection_depth: inner.introspection_depth
                                + usize::from(inner.introspection_depth > 0),
                        }
                    }
                }
                Selection::InlineFragment(inline) => self.measure(&inline.node.selection_set)?,
                Selection::FragmentSpread(spread) => {
                    self.fragment(&spread.node.fragment_name.node, spread.pos)?
                }
            };
            total.fields = total.fields.saturating_add(size.fields);
            total.depth = total.depth.max(size.depth);
            total.introspection_depth = total.introspection_depth.max(size.introspection_depth);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a Name, pos: Pos) -> Result<Size, LimitExceeded> {
        match self.measured.get(name) {
            Some(Measured::Done(size)) => return Ok(*size),
            Some(Measured::InProgress) => {
                return Err(LimitExceeded {
                    limit: "fragmentCycle",
                    message: format!("fragment {name} spreads itself"),
                    pos: Some(pos),
                })
            }
            None => {}
        }
        // An unknown fragment is left to validation, which names it.
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(Size::default());
        };
        self.measured.insert(name, Measured::InProgress);
        let size = self.measure(&fragment.node.selection_set)?;
        self.measured.insert(name, Measured::Done(size));
        Ok(size)
    }

    /// The response keys of root fields named `field`, through fragments
    /// (each fragment looked at once).
    fn root_keys_of(
        &self,
        set: &'a Positioned<SelectionSet>,
        field: &str,
        keys: &mut Vec<&'a str>,
    ) {
        let mut pending = vec![set];
        let mut seen_fragments = std::collections::HashSet::new();
        while let Some(set) = pending.pop() {
            for selection in &set.node.items {
                match &selection.node {
                    Selection::Field(f) if f.node.name.node == field => {
                        keys.push(f.node.response_key().node.as_str());
                    }
                    Selection::Field(_) => {}
                    Selection::InlineFragment(inline) => pending.push(&inline.node.selection_set),
                    Selection::FragmentSpread(spread) => {
                        let name = &spread.node.fragment_name.node;
                        if seen_fragments.insert(name) {
                            if let Some(fragment) = self.document.fragments.get(name) {
                                pending.push(&fragment.node.selection_set);
                            }
                        }
                    }
                }
            }
        }
    }
}

mod text_scan;

#[cfg(test)]
mod tests;
