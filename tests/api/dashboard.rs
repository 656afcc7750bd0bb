//! The dashboard over plain HTTP: the page is public and loads nothing from
//! elsewhere; its data is for librarians and the operator token only, shows
//! every replica on the Redis, and polling it counts no GraphQL request.
//! (tests/api/browser.rs drives the page itself in Chromium.)
use crate::helpers::{catalogue, eventually, TestApp, TestRedis};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

const OPERATOR_TOKEN: &str = "operator-token-for-tests-0123456789";

async fn replicas() -> (Vec<TestApp>, TestRedis) {
    TestApp::builder()
        .replicas(2)
        .configure(|config| {
            config.cache.stats_interval = Duration::from_millis(100);
            config.operator_token = Some(OPERATOR_TOKEN.parse().unwrap());
        })
        .spawn_replicas()
        .await
}

/// `GET /dashboard/data` with `authorization` (if any): status, the
/// `Cache-Control` header and the JSON body.
async fn data(app: &TestApp, authorization: Option<&str>) -> (u16, String, Value) {
    let mut request = app.client.get(format!("{}/dashboard/data", app.address));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let cache_control = response
        .headers()
        .get("cache-control")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cache_control, response.json().await.unwrap())
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("(none)")
}

fn replica_ids(body: &Value) -> HashSet<String> {
    body["deployment"]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|replica| replica["replica"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn dashboard_data_is_refused_anonymously_forbidden_to_members_and_open_to_librarians_and_the_operator(
) {
    let (apps, _redis) = replicas().await;
    let app = &apps[0];
    let member = app.member("reader@biblio.test").await;
    let librarian = app.librarian().await;

    let (status, cache_control, body) = data(app, None).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"));
    assert_eq!(cache_control, "no-store");
    for wrong in [
        "Bearer not-a-token".to_owned(),
        format!("Bearer {OPERATOR_TOKEN}x"),
        format!("Basic {OPERATOR_TOKEN}"),
        OPERATOR_TOKEN.to_owned(),
    ] {
        let (status, _, body) = data(app, Some(&wrong)).await;
        assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"));
    }
    let (status, cache_control, body) = data(app, Some(&format!("Bearer {member}"))).await;
    assert_eq!((status, code(&body)), (403, "FORBIDDEN"));
    assert_eq!(cache_control, "no-store");

    for (authorization, reader) in [
        (format!("Bearer {librarian}"), "librarian"),
        (format!("bearer {OPERATOR_TOKEN}"), "operator"),
    ] {
        let (status, cache_control, body) = data(app, Some(&authorization)).await;
        assert_eq!(status, 200, "{reader}: {}", code(&body));
        assert_eq!(cache_control, "no-store");
        assert_eq!(body["reader"], reader);
        assert_eq!(body["replica"], app.cache.origin());
        assert_eq!(body["health"]["status"], "ready");
        assert_eq!(body["health"]["checks"]["database"]["status"], "up");
        assert!(body["health"]["checks"]["database"]["pool"]["max"].as_u64() > Some(0));
        assert_eq!(body["redis_up"], true);
        assert!(body["deployment"]["redis"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()));
    }
}

#[tokio::test]
async fn dashboard_data_shows_every_replica_on_the_redis_and_their_total() {
    let (apps, _redis) = replicas().await;
    let (a, b) = (&apps[0], &apps[1]);
    let cat = catalogue(a, 2).await;
    let book = "query Book($id: ID!) { book(id: $id) { title } }";
    for _ in 0..3 {
        b.data(None, book, json!({ "id": cat.books[0] })).await;
    }
    let operator = format!("Bearer {OPERATOR_TOKEN}");
    let expected: HashSet<String> = apps
        .iter()
        .map(|app| app.cache.origin().to_owned())
        .collect();

    // B's snapshot reaches A's answer within its interval.
    let b_id = b.cache.origin().to_owned();
    eventually(|| async {
        let (_, _, body) = data(a, Some(&operator)).await;
        replica_ids(&body) == expected
            && body["deployment"]["replicas"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["replica"] == b_id.as_str() && r["requests"] == 3)
    })
    .await;

    let (_, _, body) = data(a, Some(&operator)).await;
    let replicas = body["deployment"]["replicas"].as_array().unwrap();
    let sum: u64 = replicas
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(body["deployment"]["total"]["requests"], sum);
    // The response tier answered B's later reads (its first may be
    // overtaken by A's catalogue events and not kept), and the total is
    // what the replicas themselves counted.
    let response_hits = |figures: &Value| {
        figures["tiers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|tier| tier["tier"] == "response")
            .map_or(0, |tier| tier["hits"].as_u64().unwrap())
    };
    let counted: u64 = apps
        .iter()
        .map(|app| app.cache.metrics().responses().hits)
        .sum();
    assert!(counted >= 1, "the response tier answered none of B's reads");
    assert_eq!(response_hits(&body["deployment"]["total"]), counted);
}

#[tokio::test]
async fn polling_the_dashboard_counts_no_graphql_request() {
    let (apps, _redis) = replicas().await;
    let app = &apps[0];
    let librarian = app.librarian().await;
    let before = app.cache.snapshot().figures.requests;

    for _ in 0..5 {
        let (status, _, _) = data(app, Some(&format!("Bearer {librarian}"))).await;
        assert_eq!(status, 200);
    }

    assert_eq!(app.cache.snapshot().figures.requests, before);
}

#[tokio::test]
async fn the_page_is_public_and_may_load_nothing_from_elsewhere() {
    let (apps, _redis) = replicas().await;
    let app = &apps[0];

    let page = app
        .client
        .get(format!("{}/dashboard", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(headers["cache-control"], "no-store");
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} missing");
    }
    let html = page.text().await.unwrap();
    assert!(html.contains("src=\"/dashboard/dashboard.js\""));

    let script = app
        .client
        .get(format!("{}/dashboard/dashboard.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("/dashboard/data"));
}

/// The real binary: a refused token is not echoed (clap's own error would
/// repeat it), nor is a configured one in `--help`.
#[test]
fn the_binary_never_prints_the_operator_token() {
    use crate::binary::biblio;
    let refused = "secret shorter";
    let output = biblio("sqlite::memory:")
        .args(["serve", "--operator-token", refused])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--operator-token"), "{stderr}");
    assert!(!stderr.contains(refused), "the refused token was printed");

    let output = biblio("sqlite::memory:")
        .args(["serve", "--help"])
        .env("BIBLIO_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--operator-token"));
    assert!(!help.contains(OPERATOR_TOKEN), "--help showed the token");
}
