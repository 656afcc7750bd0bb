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
