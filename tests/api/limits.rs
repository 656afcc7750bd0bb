use crate::helpers::{fragment_ladder, spawn_app, TestApp};
use serde_json::json;

#[tokio::test]
async fn queries_deeper_than_the_limit_are_refused() {
    let app = TestApp::builder()
        .configure(|config| config.limits.max_depth = 4)
        .spawn()
        .await;
    let shallow = "{ books { items { author { name } } } }";
    app.data(None, shallow, json!({})).await;
    let deep = "{ books { items { author { books { items { title } } } } } }";
    let (status, body) = app.post(None, deep, json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
}

#[tokio::test]
async fn queries_over_the_complexity_limit_are_refused() {
    let app = spawn_app().await;
    let costly = "{ authors(pageSize: 100) { items { books(pageSize: 100) { items { title isbn price } } } } }";
    let (status, body) = app.post(None, costly, json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    app.data(
        None,
        "{ books(pageSize: 100) { items { title author { name } category { name } } } }",
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = TestApp::builder()
        .configure(|config| config.body_limit = 1024)
        .spawn()
        .await;
    let padding = " ".repeat(2048);
    let body = json!({ "query": format!("{{ categories {{ name }} }}{padding}") });
    let response = app
        .client
        .post(app.graphql_url())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let small = json!({ "query": "{ categories { name } }" });
    let response = app
        .client
        .post(app.graphql_url())
        .json(&small)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// About 3 KB of nested brackets in any position used to overflow a
/// worker's stack and abort the whole process. Each is refused before it
/// is parsed, over POST and GET, and the replica keeps serving.
#[tokio::test]
async fn values_nested_past_the_limit_are_refused_before_parsing() {
    let app = spawn_app().await;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let object = |depth: usize| format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth));
    let hostile = [
        format!("{{ __typename(x: {}) }}", nested(1500)),
        format!(
            "{{ books(filter: {{ authorId: {} }}) {{ totalCount }} }}",
            nested(1500)
        ),
        format!("{{ books(filter: {}) {{ totalCount }} }}", object(1500)),
        format!("query($v: [Int] = {}) {{ __typename }}", nested(1500)),
        format!("{{ __typename @include(if: {}) }}", nested(1500)),
        format!("{}{}", "{ a: __typename ".repeat(1500), "}".repeat(1500)),
    ];
    for query in &hostile {
        let (status, body) = app.post(None, query, json!({})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("nest"), "says which limit: {message}");
        let (status, body) = app.get(query).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    }
    // Brackets inside strings and comments are not nesting.
    let quoted = format!(
        "{{ searchBooks(query: \"{}\") {{ totalCount }} }} # {}",
        "[".repeat(150),
        "{".repeat(3000)
    );
    let (status, body) = app.post(None, &quoted, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["searchBooks"]["totalCount"], 0);
    app.data(None, "{ books { totalCount } }", json!({})).await;
}

fn limit_of(body: &serde_json::Value) -> &str {
    body["errors"][0]["extensions"]["limit"]
        .as_str()
        .unwrap_or_default()
}

/// n fragments, each spreading the next twice: 2^n fields once expanded
/// from under a kilobyte. async-graphql's validation walks every expansion
/// (seconds of CPU at n = 22, minutes at 30), so the size is measured first,
/// each fragment once, and the refusal names that limit and runs no SQL.
#[tokio::test]
async fn an_exponential_fragment_expansion_is_refused_by_its_size_before_validation() {
    let app = spawn_app().await;
    for n in [22, 30, 45] {
        let query = fragment_ladder(n, "books { totalCount }");
        let statements = app.statements();
        let (status, body) = app.post(None, &query, json!({})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(limit_of(&body), "maxFields", "{body}");
        assert_eq!(app.statements(), statements, "nothing executed");
    }
    app.data(None, "{ books { totalCount } }", json!({})).await;
}

/// The introspection query GraphiQL and Apollo's tools send nests type
/// references ten deep; it is answered, while data stays within the depth
/// limit.
#[tokio::test]
async fn introspection_as_graphiql_sends_it_is_answered() {
    let app = spawn_app().await;
    let query = include_str!("fixtures/introspection.graphql");
    let data = app.data(None, query, json!({})).await;
    let types = data["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Book"));
}

#[tokio::test]
async fn each_shape_limit_refuses_with_its_name() {
    let app = spawn_app().await;
    let cases = [
        (
            format!(
                "{{ {} }}",
                (0..31).map(|i| format!("a{i}: __typename")).collect::<Vec<_>>().join(" ")
            ),
            "maxAliases",
        ),
        (
            format!("{{ __typename {} }}", "@include(if: true) ".repeat(5)),
            "maxDirectives",
        ),
        (
            format!("{{ {} }}", "__typename ".repeat(4001)),
            "maxTokens",
        ),
        (
            format!(
                "{{ __typename }} {}",
                (0..51).map(|i| format!("fragment F{i} on Query {{ __typename }}")).collect::<String>()
            ),
            "maxFragments",
        ),
        (
            "{ books { items { author { books { items { author { books { items { author { books { items { title } } } } } } } } } } } }".to_owned(),
            "maxDepth",
        ),
        (
            "{ a: __schema { types { name fields { name } } } b: __schema { types { name fields { name } } } }".to_owned(),
            "introspection",
        ),
    ];
    for (query, limit) in &cases {
        let (status, body) = app.post(None, query, json!({})).await;
        assert_eq!(status, 400, "{limit}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(limit_of(&body), *limit, "{body}");
    }
}

#[tokio::test]
async fn variables_nested_past_the_limit_are_refused() {
    let app = spawn_app().await;
    let mut value = json!(1);
    for _ in 0..100 {
        value = json!([value]);
    }
    let query = "query($v: [Int]) { __typename }";
    let (status, body) = app.post(None, query, json!({ "v": value })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(limit_of(&body), "maxNesting", "{body}");
}

/// The GraphQL-over-HTTP specification: a request that omits a required
/// variable is a request error, 400 with no data.
#[tokio::test]
async fn a_missing_required_variable_is_a_request_error() {
    let app = spawn_app().await;
    let query = "query($id: ID!) { book(id: $id) { title } }";
    let (status, body) = app.post(None, query, json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(body.get("data").is_none(), "{body}");
    let (status, _) = app
        .post(
            None,
            "query($id: ID = null) { book(id: $id) { title } }",
            json!({}),
        )
        .await;
    assert_ne!(status, 500);
}

#[tokio::test]
async fn syntax_errors_do_not_echo_the_query() {
    let app = spawn_app().await;
    let query = format!(
        "{{ searchBooks(query: \"{}\") {{ totalCount }}",
        "secret".repeat(1000)
    );
    let (status, body) = app.post(None, &query, json!({})).await;
    assert_eq!(status, 400, "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("secretsecret"),
        "{}",
        &text[..text.len().min(300)]
    );
    assert!(text.len() < 1000, "{} bytes", text.len());
    assert!(
        body["errors"][0]["locations"][0]["line"].is_number(),
        "{body}"
    );
}

#[tokio::test]
async fn errors_past_the_cap_are_summarised() {
    let app = TestApp::builder()
        .configure(|config| config.limits.max_errors = 5)
        .spawn()
        .await;
    let query = format!(
        "{{ {} }}",
        (0..20)
            .map(|i| format!("b{i}: book(id: \"not-an-id-{i}\") {{ title }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (status, body) = app.post(None, &query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 5, "{body}");
    assert_eq!(errors[4]["extensions"]["omitted"], 16, "{body}");
    assert_eq!(errors[4]["extensions"]["code"], "BAD_USER_INPUT");
}

/// `Author.books` runs a query per author: it is weighed like the other
/// fields that do, so a page of authors with their books, aliased, cannot
/// fire thousands of queries at the pool.
#[tokio::test]
async fn authors_books_are_weighed_per_author() {
    let app = spawn_app().await;
    let query = format!(
        "{{ {} }}",
        (0..18)
            .map(|i| format!("a{i}: authors(pageSize: 100) {{ items {{ books(page: {}, pageSize: 1) {{ totalCount }} }} }}", i + 1))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let statements = app.statements();
    let (status, body) = app.post(None, &query, json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.statements(), statements, "nothing ran");
    app.data(
        None,
        "{ authors(pageSize: 20) { items { name books(pageSize: 5) { items { title } } } } }",
        json!({}),
    )
    .await;
}

/// Validation walks every operation of a document, not just the one that
/// runs, so the field limit is on the whole document: many operations each
/// under it cannot add up past it.
#[tokio::test]
async fn fields_are_counted_over_the_whole_document_not_each_operation() {
    let app = spawn_app().await;
    let operations: String = (0..3)
        .map(|i| format!("query Q{i} {{ {} }} ", "__typename ".repeat(400)))
        .collect();
    let response = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": operations, "operationName": "Q0" }))
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(limit_of(&body), "maxFields", "{body}");
}

/// Each alias inside `__schema` or `__type` walks the schema again: tools
/// never send one, and a client that does could multiply the largest
/// answer the service gives by the alias limit.
#[tokio::test]
async fn aliases_inside_introspection_are_refused() {
    let app = spawn_app().await;
    for query in [
        "{ __schema { a: types { name fields { name } } b: types { name fields { name } } } }",
        "{ __type(name: \"Book\") { a: fields { name } b: fields { name } } }",
        "{ __schema { ...T } } fragment T on __Schema { a: types { name } }",
    ] {
        let (status, body) = app.post(None, query, json!({})).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(limit_of(&body), "introspection", "{body}");
    }
    let data = app
        .data(None, "{ __schema { types { name } } }", json!({}))
        .await;
    assert!(data["__schema"]["types"].is_array());
}

/// `variables` are bounded on their own, not only by the body limit: they
/// are kept in every kept answer's key and walked by every check.
#[tokio::test]
async fn variables_larger_than_their_limit_are_refused_before_anything_runs() {
    let app = spawn_app().await;
    let statements = app.statements();
    let query = "query($s: String!) { searchBooks(query: $s) { totalCount } }";
    let (status, body) = app
        .post(None, query, json!({ "s": "x".repeat(100_000) }))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(limit_of(&body), "maxVariablesBytes", "{body}");
    assert_eq!(app.statements(), statements, "nothing ran");
    let (status, _) = app.post(None, query, json!({ "s": "garden" })).await;
    assert_eq!(status, 200);
}

/// The parsed documents kept to skip parsing are weighed by what they
/// cost in memory: 1,200 distinct documents, each of the densest kind the
/// limits admit (a thousand two-byte fields), leave the process within its
/// parse budget (16 MiB) and some slack. Weighed by their text, as before,
/// they grew it by 264 MiB.
#[tokio::test]
async fn kept_parsed_documents_stay_within_their_memory_budget() {
    use crate::binary::{biblio, Server};
    let database = crate::helpers::TestDatabase::create().await;
    let mut command = biblio(&database.1);
    command.env("RUST_LOG", "warn");
    let server = Server::start(command, &["--cache-mode", "off", "--response-cache", "off"]).await;
    server.query("{ __typename }").await;
    let (before, _) = crate::binary::resident_kib(server.process.id());
    use futures_util::StreamExt;
    let refused = futures_util::stream::iter(0..1200)
        .map(|i| {
            let query = format!("query D{i} {{ {} }}", "a ".repeat(1000));
            let request = server
                .client
                .post(format!("{}/graphql", server.address))
                .json(&json!({ "query": query }));
            async move { request.send().await.expect("the server answers").status() }
        })
        .buffer_unordered(4)
        .filter(|status| std::future::ready(*status == 400))
        .count()
        .await;
    assert_eq!(refused, 1200, "an unknown field is refused");
    let (after, _) = crate::binary::resident_kib(server.process.id());
    let grown_kib = after.saturating_sub(before);
    assert!(
        grown_kib < 64 << 10,
        "resident memory grew {} MiB for a 16 MiB parse budget",
        grown_kib >> 10
    );
}
