//! Persisted queries over real HTTP, with a Redis per test: automatic
//! persisted queries as Apollo Client speaks them (POST and GET), shared by
//! replicas through Redis and kept by each without it; `--persisted-only`
//! with documents registered by `biblio documents add`; and a real Apollo
//! Client (tests/client/apq.mjs) against a running replica.
use crate::binary::biblio;
use crate::helpers::{catalogue, spawn_app, TestApp, TestDatabase};
use biblio::graphql::persisted::{sha256_hex, Counts};
use serde_json::{json, Value};

const BOOKS: &str = "query Books { books(page: 1, pageSize: 5) { totalCount } }";
const STATISTICS: &str = "query Stats { statistics { totalBooks } }";
const DELETE: &str = "mutation Delete($id: ID!) { deleteBook(id: $id) }";

/// What a test looks at in an answer.
struct Reply {
    status: u16,
    cache_control: Option<String>,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("")
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let cache_control = response
        .headers()
        .get("cache-control")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.expect("a JSON body");
    Reply {
        status,
        cache_control,
        body,
    }
}

/// `extensions` naming `query` by its SHA-256, as Apollo Client writes it.
fn hashed(query: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex(query) } })
}

/// POSTs `body` as JSON, accepting what the client says (no header: the
/// specification's default, graphql-response+json).
async fn post(app: &TestApp, body: Value, accept: Option<&str>) -> Reply {
    let mut request = app.client.post(app.graphql_url()).json(&body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    reply(request.send().await.expect("the request is sent")).await
}

/// The hash of `query` alone, as Apollo Client first sends it.
async fn post_hash(app: &TestApp, query: &str) -> Reply {
    post(app, json!({ "extensions": hashed(query) }), None).await
}

/// The hash of `query` with its text, as Apollo Client sends it after a miss.
async fn post_registering(app: &TestApp, query: &str) -> Reply {
    post(
        app,
        json!({ "query": query, "extensions": hashed(query) }),
        None,
    )
    .await
}

async fn get(app: &TestApp, params: &[(&str, &str)]) -> (Reply, Option<String>) {
    let response = app
        .client
        .get(app.graphql_url())
        .query(params)
        .header("accept", "application/json")
        .send()
        .await
        .expect("the request is sent");
    let allow = response
        .headers()
        .get("allow")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    (reply(response).await, allow)
}

fn counts(app: &TestApp) -> Counts {
    app.persisted.counts()
}

async fn spawn_persisted_only() -> TestApp {
    TestApp::builder()
        .configure(|config| config.persisted_only = true)
        .spawn()
        .await
}

#[tokio::test]
async fn an_unknown_hash_alone_asks_for_the_query_in_a_200_no_cache_keeps() {
    let app = spawn_app().await;

    for accept in [None, Some("application/json")] {
        let answer = post(&app, json!({ "extensions": hashed(BOOKS) }), accept).await;

        assert_eq!(answer.status, 200, "{accept:?}");
        assert_eq!(answer.code(), "PERSISTED_QUERY_NOT_FOUND");
        assert_eq!(
            answer.body["errors"][0]["message"], "PersistedQueryNotFound",
            "the message Apollo Client matches"
        );
        assert!(answer.body.get("data").is_none());
        assert_eq!(
            answer.cache_control.as_deref(),
            Some("private, no-cache, must-revalidate")
        );
    }
    assert_eq!(
        counts(&app),
        Counts {
            misses: 2,
            ..Counts::default()
        }
    );
}

#[tokio::test]
async fn a_hash_that_is_not_the_sha256_of_its_query_is_400_and_stores_nothing() {
    let app = spawn_app().await;

    let answer = post(
        &app,
        json!({ "query": STATISTICS, "extensions": hashed(BOOKS) }),
        Some("application/json"),
    )
    .await;

    assert_eq!(answer.status, 400);
    assert_eq!(answer.code(), "BAD_USER_INPUT");
    assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
    for query in [BOOKS, STATISTICS] {
        assert_eq!(
            post_hash(&app, query).await.code(),
            "PERSISTED_QUERY_NOT_FOUND"
        );
    }
    assert_eq!(counts(&app).registered, 0);
}

#[tokio::test]
async fn a_persisted_query_version_other_than_1_is_400() {
    let app = spawn_app().await;

    for version in [json!(2), json!(0), json!("1")] {
        let extensions =
            json!({ "persistedQuery": { "version": version, "sha256Hash": sha256_hex(BOOKS) } });
        let answer = post(
            &app,
            json!({ "query": BOOKS, "extensions": extensions }),
            Some("application/json"),
        )
        .await;

        assert_eq!(answer.status, 400, "version {version}");
        assert_eq!(answer.code(), "BAD_USER_INPUT");
    }
    assert_eq!(
        counts(&app),
        Counts::default(),
        "nothing looked up or stored"
    );
}

#[tokio::test]
async fn a_query_sent_with_its_hash_is_stored_and_then_runs_by_its_hash_alone() {
    let app = spawn_app().await;

    let registered = post_registering(&app, BOOKS).await;
    let by_hash = post_hash(&app, BOOKS).await;

    assert_eq!(registered.status, 200);
    assert_eq!(
        registered.body,
        json!({ "data": { "books": { "totalCount": 0 } } })
    );
    assert_eq!(by_hash.status, 200);
    assert_eq!(by_hash.body, registered.body);
    assert_eq!(
        counts(&app),
        Counts {
            registered: 1,
            l1_hits: 1,
            ..Counts::default()
        }
    );
}

#[tokio::test]
async fn a_query_that_does_not_parse_is_not_stored_under_its_hash() {
    let app = spawn_app().await;
    let broken = "{ books(page: 1 { totalCount } }";

    let answer = post_registering(&app, broken).await;

    assert_eq!(answer.status, 400);
    assert_eq!(answer.code(), "BAD_USER_INPUT");
    assert_eq!(counts(&app).registered, 0);
    assert_eq!(
        post_hash(&app, broken).await.code(),
        "PERSISTED_QUERY_NOT_FOUND"
    );
}

#[tokio::test]
async fn a_hashed_query_runs_over_get_with_its_extensions_in_the_url() {
    let app = spawn_app().await;
    let extensions = hashed(BOOKS).to_string();

    let (miss, _) = get(&app, &[("extensions", &extensions)]).await;
    let (registered, _) = get(&app, &[("query", BOOKS), ("extensions", &extensions)]).await;
    let (hit, _) = get(
        &app,
        &[("extensions", &extensions), ("operationName", "Books")],
    )
    .await;

    assert_eq!(miss.status, 200);
    assert_eq!(miss.code(), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(registered.status, 200);
    assert_eq!(hit.status, 200);
    assert_eq!(
        hit.body,
        json!({ "data": { "books": { "totalCount": 0 } } })
    );
    // The shared answer a CDN may keep, revalidating each time.
    assert_eq!(
        hit.cache_control.as_deref(),
        Some("public, max-age=0, must-revalidate")
    );
    assert_eq!(
        counts(&app),
        Counts {
            misses: 1,
            registered: 1,
            l1_hits: 1,
            ..Counts::default()
        }
    );
}

#[tokio::test]
async fn a_mutation_stays_405_over_get_by_hash_and_is_never_registered_by_a_get() {
    let app = spawn_app().await;
    let extensions = hashed(DELETE).to_string();
    let variables = json!({ "id": "0190a0a0-0000-7000-8000-000000000001" }).to_string();

    // Sent with its text over GET: refused before anything is stored.
    let (with_text, allow) = get(
        &app,
        &[
            ("query", DELETE),
            ("extensions", &extensions),
            ("variables", &variables),
        ],
    )
    .await;
    assert_eq!(with_text.status, 405);
    assert_eq!(allow.as_deref(), Some("POST"));
    assert_eq!(counts(&app).registered, 0);

    // Registered by POST (it runs, and is refused for want of a token)...
    let posted = post(
        &app,
        json!({ "query": DELETE, "variables": { "id": "0190a0a0-0000-7000-8000-000000000001" },
                "extensions": hashed(DELETE) }),
        None,
    )
    .await;
    assert_eq!(posted.code(), "UNAUTHENTICATED");
    assert_eq!(counts(&app).registered, 1);

    // ...its hash alone over GET is still a mutation over GET.
    let (by_hash, allow) = get(
        &app,
        &[("extensions", &extensions), ("variables", &variables)],
    )
    .await;
    assert_eq!(by_hash.status, 405);
    assert_eq!(allow.as_deref(), Some("POST"));
}

#[tokio::test]
async fn malformed_extensions_over_get_are_400() {
    let app = spawn_app().await;
    let upper_case_hash =
        json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex(BOOKS).to_uppercase() } })
            .to_string();

    for extensions in ["not json", "[1]", upper_case_hash.as_str()] {
        let (answer, _) = get(&app, &[("extensions", extensions)]).await;

        assert_eq!(answer.status, 400, "{extensions}");
        assert_eq!(answer.code(), "BAD_USER_INPUT", "{extensions}");
    }
    assert_eq!(counts(&app), Counts::default());
}

#[tokio::test]
async fn a_query_learnt_on_one_replica_runs_by_hash_on_another_through_redis() {
    let (replicas, _redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);

    assert_eq!(post_registering(a, BOOKS).await.status, 200);
    let round_trips = b.cache.metrics().redis_round_trips();
    let on_b = post_hash(b, BOOKS).await;

    assert_eq!(
        on_b.body,
        json!({ "data": { "books": { "totalCount": 0 } } })
    );
    assert_eq!(
        counts(b),
        Counts {
            l2_hits: 1,
            ..Counts::default()
        }
    );
    // One MGET for the document (the query itself may read the cache too).
    assert!(b.cache.metrics().redis_round_trips() > round_trips);
    // Now in B's own L1.
    post_hash(b, BOOKS).await;
    assert_eq!(counts(b).l1_hits, 1);
}

#[tokio::test]
async fn with_redis_down_each_replica_serves_what_it_learnt_and_asks_for_the_rest() {
    let (replicas, mut redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    redis.stop();

    let registered = post_registering(a, BOOKS).await;
    let again_on_a = post_hash(a, BOOKS).await;
    let on_b = post_hash(b, BOOKS).await;
    let registered_on_b = post_registering(b, BOOKS).await;
    let again_on_b = post_hash(b, BOOKS).await;

    assert_eq!(registered.status, 200);
    assert_eq!(again_on_a.body, registered.body);
    assert_eq!(on_b.code(), "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(registered_on_b.body, registered.body);
    assert_eq!(again_on_b.body, registered.body);
    assert_eq!(
        counts(a),
        Counts {
            registered: 1,
            l1_hits: 1,
            ..Counts::default()
        }
    );
    assert_eq!(
        counts(b),
        Counts {
            misses: 1,
            registered: 1,
            l1_hits: 1,
            ..Counts::default()
        }
    );
}

#[tokio::test]
async fn persisted_only_refuses_a_query_it_does_not_know_in_full_or_by_hash_and_learns_nothing() {
    let app = spawn_persisted_only().await;

    let in_full = post(&app, json!({ "query": BOOKS }), None).await;
    let by_hash = post_hash(&app, BOOKS).await;
    let registering = post_registering(&app, BOOKS).await;
    let in_full_as_json = post(&app, json!({ "query": BOOKS }), Some("application/json")).await;

    assert_eq!(in_full.status, 400);
    assert_eq!(in_full.code(), "QUERY_NOT_IN_SAFELIST");
    assert_eq!(in_full_as_json.status, 200);
    assert_eq!(in_full_as_json.code(), "QUERY_NOT_IN_SAFELIST");
    for answer in [&by_hash, &registering] {
        assert_eq!(answer.status, 400);
        assert_eq!(answer.code(), "PERSISTED_QUERY_NOT_IN_LIST");
        assert_ne!(
            answer.body["errors"][0]["message"],
            "PersistedQueryNotFound"
        );
        assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
    }
    assert_eq!(
        counts(&app),
        Counts {
            refused: 4,
            ..Counts::default()
        }
    );
}

/// An Apollo manifest of `queries`, as `generate-persisted-query-manifest`
/// writes it.
fn apollo_manifest(queries: &[(&str, &str)]) -> String {
    let operations: Vec<Value> = queries
        .iter()
        .map(|(name, body)| {
            json!({ "id": sha256_hex(body), "name": name, "type": "query", "body": body })
        })
        .collect();
    json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": operations })
        .to_string()
}

#[tokio::test]
async fn persisted_only_serves_a_registered_document_by_hash_and_in_full() {
    let app = spawn_persisted_only().await;
    biblio::graphql::persisted::manifest::add(&app.db, &apollo_manifest(&[("Books", BOOKS)]))
        .await
        .expect("the manifest registers");
    let expected = json!({ "data": { "books": { "totalCount": 0 } } });

    let first = post_hash(&app, BOOKS).await;
    let second = post_hash(&app, BOOKS).await;
    let in_full = post(&app, json!({ "query": BOOKS }), None).await;
    let extensions = hashed(BOOKS).to_string();
    let (over_get, _) = get(&app, &[("extensions", &extensions)]).await;

    for answer in [&first, &second, &in_full, &over_get] {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, expected);
    }
    assert_eq!(
        counts(&app),
        Counts {
            db_hits: 1,
            l1_hits: 3,
            ..Counts::default()
        }
    );
}

#[tokio::test]
async fn trusted_documents_survive_a_redis_restart() {
    let (replicas, mut redis) = TestApp::builder()
        .replicas(2)
        .configure(|config| config.persisted_only = true)
        .spawn_replicas()
        .await;
    let (a, b) = (&replicas[0], &replicas[1]);
    biblio::graphql::persisted::manifest::add(&a.db, &apollo_manifest(&[("Books", BOOKS)]))
        .await
        .expect("the manifest registers");
    assert_eq!(post_hash(a, BOOKS).await.status, 200);
    assert_eq!(
        counts(a).db_hits,
        1,
        "read from the database, then copied to Redis"
    );

    // Redis keeps nothing on disk: it comes back empty.
    redis.stop();
    redis.restart();
    b.wait_for_cache().await;
    let on_b = post_hash(b, BOOKS).await;

    assert_eq!(on_b.status, 200);
    assert_eq!(
        on_b.body,
        json!({ "data": { "books": { "totalCount": 0 } } })
    );
    assert_eq!(
        counts(b),
        Counts {
            db_hits: 1,
            ..Counts::default()
        }
    );
}

#[tokio::test]
async fn a_trusted_document_runs_by_hash_without_persisted_only_too() {
    let app = spawn_app().await;
    biblio::graphql::persisted::manifest::add(&app.db, &apollo_manifest(&[("Books", BOOKS)]))
        .await
        .expect("the manifest registers");

    let answer = post_hash(&app, BOOKS).await;

    assert_eq!(
        answer.body,
        json!({ "data": { "books": { "totalCount": 0 } } })
    );
    assert_eq!(counts(&app).db_hits, 1);
    assert_eq!(counts(&app).misses, 0);
}

/// Runs `biblio documents add` on `manifest`; returns (exit code, stdout,
/// stderr).
fn documents_add(database_url: &str, manifest: &str) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!("biblio-manifest-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let file = dir.join("manifest.json");
    std::fs::write(&file, manifest).expect("the manifest is written");
    let output = biblio(database_url)
        .args(["documents", "add"])
        .arg(&file)
        .output()
        .expect("the biblio binary runs");
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn spawn_persisted_only_on(database_url: &str) -> TestApp {
    TestApp::builder()
        .shared_database(database_url)
        .configure(|config| config.persisted_only = true)
        .spawn()
        .await
}

#[tokio::test]
async fn documents_add_registers_an_apollo_manifest_and_reports_what_was_already_there() {
    let (_database, url) = TestDatabase::create().await;
    let manifest = apollo_manifest(&[("Books", BOOKS), ("Stats", STATISTICS)]);

    let (code, first, stderr) = documents_add(&url, &manifest);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(first.trim(), "Apollo manifest: 2 added, 0 already present");
    let (code, second, stderr) = documents_add(&url, &manifest);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(second.trim(), "Apollo manifest: 0 added, 2 already present");

    let app = spawn_persisted_only_on(&url).await;
    for query in [BOOKS, STATISTICS] {
        let answer = post_hash(&app, query).await;
        assert_eq!(answer.status, 200, "{query}");
        assert!(answer.body.get("errors").is_none(), "{query}");
    }
    assert_eq!(counts(&app).db_hits, 2);
}

#[tokio::test]
async fn documents_add_registers_a_guild_manifest_with_hashes_and_opaque_ids() {
    let (_database, url) = TestDatabase::create().await;
    let manifest = json!({ sha256_hex(BOOKS): BOOKS, "stats-v1": STATISTICS }).to_string();

    let (code, stdout, stderr) = documents_add(&url, &manifest);

    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "Guild manifest: 2 added, 0 already present");
    let app = spawn_persisted_only_on(&url).await;
    let by_hash = post_hash(&app, BOOKS).await;
    let by_id = post(
        &app,
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": "stats-v1" } } }),
        None,
    )
    .await;
    assert_eq!(
        by_hash.body,
        json!({ "data": { "books": { "totalCount": 0 } } })
    );
    assert_eq!(
        by_id.body,
        json!({ "data": { "statistics": { "totalBooks": 0 } } })
    );
}

#[tokio::test]
async fn documents_add_refuses_a_manifest_with_one_bad_document_and_registers_none() {
    let (_database, url) = TestDatabase::create().await;
    let bad = "query Bad { nope }";
    let wrong_id = json!({ sha256_hex(STATISTICS): BOOKS }).to_string();
    let unknown_field = apollo_manifest(&[("Books", BOOKS), ("Bad", bad)]);

    for manifest in [&unknown_field, &wrong_id, &"[1, 2]".to_owned()] {
        let (code, stdout, stderr) = documents_add(&url, manifest);
        assert_eq!(code, Some(1), "{stdout}");
        assert!(stderr.contains("error:"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (_, _, stderr) = documents_add(&url, &unknown_field);
    assert!(
        stderr.contains(&sha256_hex(bad)),
        "names the bad document: {stderr}"
    );
    assert!(stderr.contains("nope"), "says what is wrong: {stderr}");

    let app = spawn_persisted_only_on(&url).await;
    assert_eq!(
        post_hash(&app, BOOKS).await.code(),
        "PERSISTED_QUERY_NOT_IN_LIST"
    );
}

/// The first `n` characters of `text`, for failure messages.
fn head(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

#[tokio::test]
async fn apollo_client_sends_hashes_as_get_and_registers_each_query_once() {
    let app = spawn_app().await;
    catalogue(&app, 3).await;
    let client = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/client");
    assert!(
        client.join("node_modules/@apollo/client").is_dir(),
        "the test client is not installed: run `npm ci --prefix tests/client` (Node 20+)"
    );
    let before = counts(&app);

    let url = app.graphql_url();
    let script = client.join("apq.mjs");
    // On a thread of its own: the server answers on this test's runtime.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(url)
            .output()
    })
    .await
    .expect("the client's thread")
    .unwrap_or_else(|err| {
        panic!("cannot run node ({err}): install Node 20+, then run `npm ci --prefix tests/client`")
    });

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "apq.mjs failed ({}): {}",
        output.status,
        head(&stderr, 600)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("apq.mjs prints JSON");
    assert_eq!(summary["books"]["totalCount"], 3);
    assert_eq!(
        summary["books"]["titles"],
        json!(["Book 000", "Book 001", "Book 002"])
    );
    assert_eq!(summary["statistics"]["totalBooks"], 3);
    let methods: Vec<&str> = summary["requests"]
        .as_array()
        .expect("the requests")
        .iter()
        .map(|request| request["method"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(methods, ["GET", "POST", "GET", "GET", "POST"]);
    // The server's side: each query missed once and was registered once,
    // and the second run of the first was a hit.
    let after = counts(&app);
    assert_eq!(after.misses - before.misses, 2);
    assert_eq!(after.registered - before.registered, 2);
    assert_eq!(after.hits() - before.hits(), 1);
}
