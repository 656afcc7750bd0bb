use crate::helpers::spawn_app;
use serde_json::{json, Value};

#[tokio::test]
async fn post_answers_graphql_response_json_by_default_and_json_when_asked() {
    let app = spawn_app().await;
    let body = json!({ "query": "{ categories { name } }" });
    let response = app
        .client
        .post(app.graphql_url())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/graphql-response+json"
    );
    let response = app
        .client
        .post(app.graphql_url())
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "data": { "categories": [] } })
    );
}

#[tokio::test]
async fn request_errors_are_400_with_graphql_response_json_and_200_with_json() {
    let app = spawn_app().await;
    for query in ["{ books {", "{ noSuchField }"] {
        let body = json!({ "query": query });
        let response = app
            .client
            .post(app.graphql_url())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let json: Value = response.json().await.unwrap();
        assert!(
            json.get("data").is_none(),
            "a request error has no data: {json}"
        );
        assert_eq!(json["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
        let response = app
            .client
            .post(app.graphql_url())
            .header("accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{query}");
    }
}

#[tokio::test]
async fn malformed_bodies_and_wrong_content_types_are_refused() {
    let app = spawn_app().await;
    let post = |content_type: &'static str, body: &'static str| {
        app.client
            .post(app.graphql_url())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(
        post("application/json", "{not json")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post("application/json", "[1, 2]").await.unwrap().status(),
        400
    );
    assert_eq!(
        post("text/plain", "{ categories { name } }")
            .await
            .unwrap()
            .status(),
        415
    );
    let response = app
        .client
        .post(app.graphql_url())
        .header("accept", "text/plain")
        .json(&json!({ "query": "{ categories { name } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 406);
}

/// `Accept` is read with its weights (RFC 9110 §12.5.1): the type weighed
/// highest wins wherever it is listed, and `q=0` refuses a type.
#[tokio::test]
async fn accept_weights_choose_the_media_type_and_q_0_refuses_one() {
    let app = spawn_app().await;
    let send = |accept: &'static str| {
        app.client
            .post(app.graphql_url())
            .header("accept", accept)
            .json(&json!({ "query": "{ categories { name } }" }))
            .send()
    };
    for (accept, chosen) in [
        (
            "application/json;q=0.1, application/graphql-response+json",
            "application/graphql-response+json",
        ),
        ("*/*;q=0.5, application/json", "application/json"),
        (
            "application/graphql-response+json;q=0, application/json;q=0.2",
            "application/json",
        ),
        (
            "application/graphql-response+json, application/json",
            "application/graphql-response+json",
        ),
        ("application/json, */*", "application/json"),
    ] {
        let response = send(accept).await.unwrap();
        assert_eq!(response.status(), 200, "{accept}");
        assert_eq!(response.headers()["content-type"], chosen, "{accept}");
    }
    for refused in [
        "application/json;q=0",
        "application/*;q=0",
        "text/plain, */*;q=0",
    ] {
        assert_eq!(send(refused).await.unwrap().status(), 406, "{refused}");
    }
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.graphql_url())
        .query(&[
            (
                "query",
                "query($n: Int!) { authors(pageSize: $n) { pageSize } }",
            ),
            ("variables", r#"{"n": 3}"#),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]["authors"]["pageSize"],
        3
    );

    let response = app
        .client
        .get(app.graphql_url())
        .query(&[(
            "query",
            "mutation { createCategory(input: { name: \"X\" }) { id } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    let response = app
        .client
        .get(app.graphql_url())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "a GET without a query");
}

#[tokio::test]
async fn browsers_get_graphiql() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.graphql_url())
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(response.text().await.unwrap().contains("GraphiQL"));
}

#[tokio::test]
async fn introspection_is_on() {
    let app = spawn_app().await;
    let data = app
        .data(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn health_and_readiness_report_the_service_and_its_database() {
    let app = spawn_app().await;
    let live = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "up");
    let cache = &body["checks"]["cache"];
    assert_eq!(cache["topology"], "single", "{cache}");
    let primaries = cache["primaries"].as_array().cloned().unwrap_or_default();
    assert_eq!(primaries.len(), 1, "{cache}");
    assert!(
        primaries[0]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{cache}"
    );
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let app = spawn_app().await;
    if let Some(mode) = app.db.sqlite_journal_mode().await.unwrap() {
        assert_eq!(mode, "wal");
    }
}

/// Transport a client can get wrong: each is refused plainly, none is
/// executed as if it were a request.
#[tokio::test]
async fn malformed_transport_is_refused_not_guessed_at() {
    let app = spawn_app().await;
    let send = |content_type: &'static str, body: Vec<u8>| {
        app.client
            .post(app.graphql_url())
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    // serde would read a struct from an array by position.
    let batch = br#"["{ books { totalCount } }"]"#.to_vec();
    let response = send("application/json", batch).await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(body.get("data").is_none(), "{body}");

    let query = br#"{"query":"{ books { totalCount } }"}"#.to_vec();
    for charset in ["latin1", "utf-16", "iso-8859-1"] {
        let content_type: &'static str = match charset {
            "latin1" => "application/json; charset=latin1",
            "utf-16" => "application/json; charset=utf-16",
            _ => "application/json; charset=ISO-8859-1",
        };
        let response = send(content_type, query.clone()).await.unwrap();
        assert_eq!(response.status(), 415, "{charset}");
    }
    let response = send("application/json; charset=utf-8", query)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    for variables in ["[1]", "1", "\"x\"", "null"] {
        let response = app
            .client
            .get(app.graphql_url())
            .query(&[
                ("query", "{ books { totalCount } }"),
                ("variables", variables),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "variables={variables}");
    }
}

/// A frontend on another origin: its preflight is answered with what it
/// may send, its requests are readable, and any other origin's are not.
#[tokio::test]
async fn browsers_on_a_configured_origin_may_call_the_api() {
    let app = crate::helpers::TestApp::builder()
        .configure(|config| config.cors_origins = vec!["https://app.example.org".into()])
        .spawn()
        .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.graphql_url())
        .header("origin", "https://app.example.org")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.org"
    );
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_ascii_uppercase();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("content-type") && allowed.contains("authorization"),
        "{allowed}"
    );
    assert!(allowed.contains("x-request-id"), "{allowed}");
    assert_eq!(headers["access-control-max-age"], "3600");

    let answer = |origin: &'static str| {
        app.client
            .post(app.graphql_url())
            .header("origin", origin)
            .json(&json!({ "query": "{ books { totalCount } }" }))
            .send()
    };
    let allowed = answer("https://app.example.org").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.org"
    );
    let exposed = allowed.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(allowed.headers().get_all("vary").iter().any(|v| v
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("origin")));

    let other = answer("https://evil.example.com").await.unwrap();
    assert_eq!(
        other.status(),
        200,
        "the request is served; the browser hides it"
    );
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// With no origin configured there is no CORS at all.
#[tokio::test]
async fn without_configured_origins_no_origin_may_read_answers() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.graphql_url())
        .header("origin", "https://app.example.org")
        .json(&json!({ "query": "{ books { totalCount } }" }))
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

/// Query answers carry a strong ETag and revalidate with 304 until the data
/// changes; signed-in answers are private; mutations and errors are kept by
/// nobody.
#[tokio::test]
async fn answers_revalidate_with_etags_and_say_who_may_keep_them() {
    let app = spawn_app().await;
    let token = app.librarian().await;
    let query = json!({ "query": "{ categories { name } }" });
    let send = |etag: Option<String>, token: Option<&str>| {
        let mut request = app.client.post(app.graphql_url()).json(&query);
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let first = send(None, None).await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    assert_eq!(
        first.headers()["cache-control"],
        "public, max-age=0, must-revalidate"
    );
    assert_eq!(
        first.headers()["vary"],
        "Authorization, Accept, Accept-Encoding"
    );

    let get = app
        .client
        .get(app.graphql_url())
        .query(&[("query", "{ categories { name } }")])
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 304, "the same answer over GET");
    assert_eq!(get.headers()["etag"], etag.as_str());
    assert!(get.bytes().await.unwrap().is_empty());
    let post = send(Some(etag.clone()), None).await.unwrap();
    assert_eq!(post.status(), 412, "a POST is not revalidated but refused");

    let private = send(None, Some(&token)).await.unwrap();
    assert_eq!(private.headers()["cache-control"], "private, no-cache");
    assert!(private.headers().get("etag").is_some());

    app.create_category(&token, "A new category").await;
    let changed = send(Some(etag.clone()), None).await.unwrap();
    assert_eq!(
        changed.status(),
        200,
        "the data changed, so the old tag does not match"
    );
    assert_ne!(changed.headers()["etag"], etag.as_str());

    let mutation = app
        .client
        .post(app.graphql_url())
        .bearer_auth(&token)
        .json(
            &json!({ "query": "mutation { createCategory(input: { name: \"Another\" }) { id } }" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.headers()["cache-control"], "no-store");
    assert!(mutation.headers().get("etag").is_none());
    let error = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": "{ book(id: \"nope\") { title } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error.headers()["cache-control"], "no-store");
    assert!(error.headers().get("etag").is_none());
}

/// A document with one named mutation runs without `operationName`, so
/// GET must refuse it just the same (a login over GET would put the
/// password in every log and cache on the way).
#[tokio::test]
async fn a_named_mutation_without_its_name_is_refused_over_get() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.graphql_url())
        .query(&[(
            "query",
            "mutation SignIn { login(email: \"a@b.test\", password: \"secret-pass\") { token } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}

/// The answer's media type follows `Accept`, so `Vary` names it, and each
/// media type is its own representation with its own strong tag (RFC 9110
/// §8.8.3): a cache must not hand one client's `application/json` to
/// another that asked for graphql-response+json, nor revalidate one with
/// the other's tag.
#[tokio::test]
async fn each_media_type_is_its_own_representation_with_its_own_etag() {
    let app = spawn_app().await;
    let query = [("query", "{ categories { name } }")];
    let send = |accept: &'static str, etag: Option<&str>| {
        let mut request = app
            .client
            .get(app.graphql_url())
            .query(&query)
            .header("accept", accept);
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };
    let mut tags = Vec::new();
    // Twice each: executed, then from the response tier.
    for accept in [
        "application/graphql-response+json",
        "application/json",
        "application/graphql-response+json",
        "application/json",
    ] {
        let response = send(accept, None).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], accept);
        assert_eq!(
            response.headers()["vary"],
            "Authorization, Accept, Accept-Encoding",
            "{accept}"
        );
        tags.push(response.headers()["etag"].to_str().unwrap().to_owned());
    }
    assert_eq!(tags[0], tags[2], "graphql-response+json, executed and kept");
    assert_eq!(tags[1], tags[3], "application/json, executed and kept");
    assert_ne!(tags[0], tags[1], "one tag for two representations");

    let json = send("application/json", Some(&tags[1])).await.unwrap();
    assert_eq!(json.status(), 304);
    assert_eq!(json.headers()["etag"], tags[1].as_str());
    assert_eq!(
        json.headers()["vary"],
        "Authorization, Accept, Accept-Encoding"
    );
    let other = send("application/graphql-response+json", Some(&tags[1]))
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        200,
        "the application/json tag does not name the graphql-response+json answer"
    );
}

/// RFC 9110 §13.1.2 and §13.2.2: `If-None-Match` that matches the current
/// answer is 304 on GET and HEAD, and 412 Precondition Failed on any other
/// method; `*` matches whenever there is a current answer, and an answer
/// that is not one (an error, kept by nobody, with no tag) matches nothing.
#[tokio::test]
async fn if_none_match_is_304_on_get_and_head_and_412_on_post() {
    let app = spawn_app().await;
    let query = "{ categories { name } }";
    let first = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let request = |method: reqwest::Method, if_none_match: &str| {
        let builder = app
            .client
            .request(method.clone(), app.graphql_url())
            .header("if-none-match", if_none_match);
        if method == reqwest::Method::POST {
            builder.json(&json!({ "query": query }))
        } else {
            builder.query(&[("query", query)])
        }
        .send()
    };

    for tag in [etag.as_str(), "*", "\"other\", *"] {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let response = request(method.clone(), tag).await.unwrap();
            assert_eq!(response.status(), 304, "{method} {tag}");
            assert_eq!(response.headers()["etag"], etag.as_str(), "{method} {tag}");
        }
        // From the response tier, which kept the first answer.
        let response = request(reqwest::Method::POST, tag).await.unwrap();
        assert_eq!(response.status(), 412, "POST {tag}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "PRECONDITION_FAILED"
        );
    }
    let stale = request(reqwest::Method::POST, "\"other\"").await.unwrap();
    assert_eq!(stale.status(), 200, "a tag that names nothing current");

    // Executed rather than kept: the precondition is evaluated the same.
    let fresh = "{ categories { id } }";
    let response = app
        .client
        .post(app.graphql_url())
        .header("if-none-match", "*")
        .json(&json!({ "query": fresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 412, "an executed answer exists too");

    // No current answer: an error has no tag, so `*` matches nothing.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let builder = app
            .client
            .request(method.clone(), app.graphql_url())
            .header("if-none-match", "*");
        let broken = "{ book(id: \"nope\") { title } }";
        let builder = if method == reqwest::Method::POST {
            builder.json(&json!({ "query": broken }))
        } else {
            builder.query(&[("query", broken)])
        };
        let response = builder.send().await.unwrap();
        assert_eq!(response.status(), 200, "{method}");
        assert!(response.headers().get("etag").is_none(), "{method}");
    }
    // A mutation's answer does not exist before it runs: `*` does not stop it.
    let token = app.librarian().await;
    let created = app
        .client
        .post(app.graphql_url())
        .bearer_auth(&token)
        .header("if-none-match", "*")
        .json(&json!({ "query": "mutation { createCategory(input: { name: \"Star\" }) { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let body: Value = created.json().await.unwrap();
    assert!(body["data"]["createCategory"]["id"].is_string(), "{body}");
}
