//! What one request may cost: fields that scan are weighed by what they
//! cost, and one request holds at most its share of the database pool, so
//! others go on being served. Counted, never timed.
use crate::helpers::{catalogue, TestApp};
use serde_json::json;

/// `n` aliased searches for distinct terms: `n` uncached scans.
fn searches(n: usize) -> String {
    let fields: String = (0..n)
        .map(|i| {
            format!("s{i}: searchBooks(query: \"Book {i:03}\", pageSize: 1) {{ totalCount }} ")
        })
        .collect();
    format!("{{ {fields} }}")
}

#[tokio::test]
async fn a_request_of_many_uncached_searches_holds_at_most_its_share_of_the_pool_and_others_are_served(
) {
    let app = TestApp::builder()
        .configure(|config| config.db_connections_per_request = 2)
        .spawn()
        .await;
    catalogue(&app, 15).await;
    // As many scans as the default complexity limit admits.
    let heavy = searches(15);
    let (heavy, normal) = tokio::join!(
        app.post(None, &heavy, json!({})),
        app.data(
            None,
            "{ books(pageSize: 5) { items { title author { name } } } }",
            json!({})
        )
    );
    let (status, body) = heavy;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["s7"]["totalCount"], 1);
    assert_eq!(normal["books"]["items"].as_array().unwrap().len(), 5);
    let most = app.db.most_connections_held_by_a_request();
    assert!(
        (1..=2).contains(&most),
        "a request held {most} connections at once"
    );
}

#[tokio::test]
async fn a_request_of_more_scans_than_the_complexity_limit_weighs_is_refused_before_any_sql() {
    let app = TestApp::builder().spawn().await;
    catalogue(&app, 1).await;
    let before = app.statements();
    let (status, body) = app.post(None, &searches(17), json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.statements() - before, 0, "no SQL ran");
}
