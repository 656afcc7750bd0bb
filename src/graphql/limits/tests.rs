use super::*;

fn parse(query: &str) -> ExecutableDocument {
    async_graphql::parser::parse_query(query).unwrap()
}

fn refused_by(query: &str, limits: &Limits) -> Option<&'static str> {
    if let Err(refusal) = limits.check_text(query) {
        return Some(refusal.limit);
    }
    limits.check_document(&parse(query)).err().map(|r| r.limit)
}

/// The query graphql-js's `getIntrospectionQuery()` builds, which
/// GraphiQL, Apollo's tools and codegen send.
pub const INTROSPECTION: &str = include_str!("../../../tests/api/fixtures/introspection.graphql");

#[test]
fn tokens_are_counted_as_the_lexer_sees_them() {
    let count = |q: &str| scan(q, 64).tokens;
    assert_eq!(count("{ a }"), 3);
    assert_eq!(count("{ a(x: -1.5e3, y: \"s, t\") }"), 11);
    assert_eq!(count("{ ...F } # a comment, with words\n"), 4);
    assert_eq!(count("query Q($v: [Int!]! = [1]) { a }"), 19);
    assert_eq!(count("{ a(s: \"\"\"block \\\"\"\" text\"\"\") }"), 8);
}

#[test]
fn nesting_is_counted_outside_strings_and_comments() {
    let deep = |n: usize| format!("{{ f(x: {}1{}) }}", "[".repeat(n), "]".repeat(n));
    assert!(!scan(&deep(10), 64).too_deep);
    assert!(scan(&deep(64), 64).too_deep);
    assert!(!scan(&deep(62), 64).too_deep);
    let quoted = format!("{{ f(x: \"{}\\\" [[\") }}", "[".repeat(500));
    assert!(!scan(&quoted, 64).too_deep);
    let block = format!("{{ f(x: \"\"\"{} \\\"\"\" [[\"\"\") }}", "{".repeat(500));
    assert!(!scan(&block, 64).too_deep);
    let comment = format!("{{ f # {}\n }}", "(".repeat(500));
    assert!(!scan(&comment, 64).too_deep);
    assert!(scan(&"{ a ".repeat(100), 64).too_deep);
}

#[test]
fn introspection_as_tools_send_it_is_within_the_defaults() {
    let limits = Limits::default();
    assert_eq!(refused_by(INTROSPECTION, &limits), None);
    let document = parse(INTROSPECTION);
    let mut expansion = Expansion {
        document: &document,
        measured: HashMap::new(),
    };
    let (_, operation) = document.operations.iter().next().unwrap();
    let size = expansion.measure(&operation.node.selection_set).unwrap();
    // Headroom: the defaults are several times what tools send.
    assert!(size.fields * 3 < limits.max_fields, "{size:?}");
    assert!(scan(INTROSPECTION, 64).tokens * 4 < limits.max_tokens);
    assert!(size.introspection_depth < INTROSPECTION_DEPTH, "{size:?}");
}

/// n fragments, each spreading the next twice: 2^n fields once
/// expanded, from a few hundred bytes.
fn fragment_ladder(n: usize) -> String {
    let mut query = String::from("{ ...F0 }\n");
    for i in 0..n {
        query.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    query.push_str(&format!("fragment F{n} on Query {{ __typename }}\n"));
    query
}

#[test]
fn an_exponential_expansion_is_measured_in_linear_work_and_refused() {
    let limits = Limits::default();
    assert_eq!(refused_by(&fragment_ladder(5), &limits), None);
    assert_eq!(refused_by(&fragment_ladder(12), &limits), Some("maxFields"));
    // 2^45 fields: measured at once because each fragment is measured once.
    let huge = Limits {
        max_fragments: 100,
        ..limits
    };
    assert_eq!(refused_by(&fragment_ladder(45), &huge), Some("maxFields"));
}

#[test]
fn each_limit_names_itself() {
    let limits = Limits {
        max_aliases: 2,
        max_fragments: 1,
        max_directives: 1,
        max_depth: 3,
        max_tokens: 40,
        ..Limits::default()
    };
    assert_eq!(
        refused_by("{ a: x b: x c: x }", &limits),
        Some("maxAliases")
    );
    assert_eq!(
        refused_by(
            "{ ...A } fragment A on Q { x } fragment B on Q { x }",
            &limits
        ),
        Some("maxFragments")
    );
    assert_eq!(refused_by("{ x @a @b }", &limits), Some("maxDirectives"));
    assert_eq!(
        refused_by("{ a { ...F } } fragment F on Q { b { c { d } } }", &limits),
        Some("maxDepth")
    );
    assert_eq!(refused_by(&"{ x }".repeat(20), &limits), Some("maxTokens"));
    assert_eq!(
        refused_by(
            "{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }",
            &Limits::default()
        ),
        Some("fragmentCycle")
    );
    assert_eq!(
        refused_by(
            "{ a: __schema { b: __typename } __schema { __typename } }",
            &Limits::default()
        ),
        Some("introspection")
    );
    assert_eq!(
        refused_by(
            "{ ...A ...A } fragment A on Query { __schema { __typename } }",
            &Limits::default()
        ),
        None
    );
}

#[test]
fn variables_nest_no_deeper_than_the_text() {
    let limits = Limits::default();
    let mut value = serde_json::json!(1);
    for _ in 0..limits.max_nesting {
        value = serde_json::json!([value]);
    }
    let deep = async_graphql::Variables::from_json(serde_json::json!({ "v": value }));
    assert!(limits.check_variables(&deep).is_err());
    let shallow = async_graphql::Variables::from_json(serde_json::json!({ "v": [[1]] }));
    assert!(limits.check_variables(&shallow).is_ok());
}

#[test]
fn errors_past_the_cap_are_summarised_in_one() {
    let limits = Limits {
        max_errors: 3,
        ..Limits::default()
    };
    let mut errors: Vec<ServerError> = (0..10)
        .map(|i| ServerError::new(format!("e{i}"), None))
        .collect();
    limits.cap_errors(&mut errors);
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[2].message, "8 more errors not shown, the first: e2");
}
