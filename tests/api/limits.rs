use crate::helpers::{spawn_app, TestApp};
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
