//! `/metrics`: scraped over HTTP before and after a known sequence of
//! requests, parsed as the Prometheus text format (by the parser below, which
//! refuses anything else), and checked to have moved by exactly what the
//! sequence implies.
use crate::helpers::{catalogue, spawn_app, TestApp};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A family's type, as its `# TYPE` line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

/// One scrape: every sample by name and labels.
pub struct Scrape {
    samples: HashMap<(String, BTreeMap<String, String>), f64>,
}

impl Scrape {
    /// The sample `name{labels}` (labels in any order); 0 when absent, as
    /// a counter not yet created is.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// Every label set of `name` whose labels include `filter`.
    fn series(&self, name: &str, filter: &[(&str, &str)]) -> Vec<BTreeMap<String, String>> {
        self.samples
            .keys()
            .filter(|(sample, labels)| {
                sample == name
                    && filter
                        .iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, labels)| labels.clone())
            .collect()
    }
}

fn is_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

/// `{a="x",b="y"}` at the start of `text`: the labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("no {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or("a label without =\"")?;
        if !is_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("a dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the Prometheus text format (0.0.4) strictly: every line is a
/// `# HELP`, a `# TYPE` or a sample; every sample belongs to a family
/// whose HELP and TYPE came first; a histogram's samples are its
/// `_bucket`s (with `le`), `_sum` and `_count`; no sample twice.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut helped = HashSet::new();
    let mut types: HashMap<String, Type> = HashMap::new();
    let mut samples = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let fail = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(help) = line.strip_prefix("# HELP ") {
            let (name, _) = help
                .split_once(' ')
                .ok_or_else(|| fail("HELP without text".into()))?;
            if !is_name(name, true) || !helped.insert(name.to_owned()) {
                return Err(fail("bad or repeated HELP".into()));
            }
            continue;
        }
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, ty) = declared
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without type".into()))?;
            let ty = match ty {
                "counter" => Type::Counter,
                "gauge" => Type::Gauge,
                "histogram" => Type::Histogram,
                other => return Err(fail(format!("unexpected type {other}"))),
            };
            if !helped.contains(name) || types.insert(name.to_owned(), ty).is_some() {
                return Err(fail("TYPE without HELP first, or repeated".into()));
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            return Err(fail("neither HELP, TYPE nor a sample".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| fail("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(fail("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(fail)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| fail("no space before the value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(fail)?;
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .map_err(|_| fail("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(fail("trailing fields".into()));
        }
        let family = match types.get(name) {
            Some(Type::Histogram) => return Err(fail("a histogram's bare name".into())),
            Some(_) => name,
            None => ["_bucket", "_sum", "_count"]
                .into_iter()
                .find_map(|suffix| {
                    let family = name.strip_suffix(suffix)?;
                    (types.get(family) == Some(&Type::Histogram)).then_some(family)
                })
                .ok_or_else(|| fail("a sample of no declared family".into()))?,
        };
        if name.ends_with("_bucket") && family != name && !labels.contains_key("le") {
            return Err(fail("a bucket without le".into()));
        }
        if samples.insert((name.to_owned(), labels), value).is_some() {
            return Err(fail("a sample twice".into()));
        }
    }
    Ok(Scrape { samples })
}

pub async fn scrape(app: &TestApp) -> Scrape {
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    parse(&text).unwrap_or_else(|why| panic!("not the Prometheus text format: {why}"))
}

const BOOK: &str = "query Book($id: ID!) { book(id: $id) { id title } }";
const RENAME: &str =
    "mutation Rename($id: ID!) { updateBook(id: $id, input: { title: \"Renamed\" }) { id } }";

fn requests(scrape: &Scrape, operation: &str, kind: &str, tier: &str, status: &str) -> f64 {
    scrape.value(
        "biblio_graphql_requests_total",
        &[
            ("operation", operation),
            ("kind", kind),
            ("response_tier", tier),
            ("status", status),
        ],
    )
}

fn durations(scrape: &Scrape, operation: &str, kind: &str, tier: &str, status: &str) -> f64 {
    scrape.value(
        "biblio_graphql_request_duration_seconds_count",
        &[
            ("operation", operation),
            ("kind", kind),
            ("response_tier", tier),
            ("status", status),
        ],
    )
}

#[tokio::test]
async fn a_known_sequence_of_requests_moves_the_counters_by_exactly_what_it_implies() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let id = &cat.books[0];
    let before = scrape(&app).await;
    let statements = app.statements();

    // One miss, then two hits from the response tier: the name is read
    // from the document, as no operationName is sent.
    for _ in 0..3 {
        app.data(None, BOOK, json!({ "id": id })).await;
    }
    let after_reads = app.statements();
    // One write: one invalidation published.
    app.data(Some(&cat.librarian), RENAME, json!({ "id": id }))
        .await;
    // An anonymous query, a request error, and one refused before GraphQL.
    app.data(None, "{ categories { name } }", json!({})).await;
    let (status, _) = app.post(None, "query Broken {", json!({})).await;
    assert_eq!(status, 400);
    let refused = app
        .client
        .post(app.graphql_url())
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 415);
    let after = scrape(&app).await;

    let moved = |f: fn(&Scrape, &str, &str, &str, &str) -> f64, labels: [&str; 4]| {
        let [operation, kind, tier, status] = labels;
        f(&after, operation, kind, tier, status) - f(&before, operation, kind, tier, status)
    };
    for (labels, n) in [
        (["Book", "query", "executed", "200"], 1.0),
        (["Book", "query", "hit", "200"], 2.0),
        (["Rename", "mutation", "executed", "200"], 1.0),
        (["(anonymous)", "query", "executed", "200"], 1.0),
        // Unparsable, and no operationName sent: no name to tell.
        (["(anonymous)", "unknown", "executed", "400"], 1.0),
        (["(anonymous)", "unknown", "none", "415"], 1.0),
    ] {
        assert_eq!(moved(requests, labels), n, "requests {labels:?}");
        assert_eq!(moved(durations, labels), n, "durations {labels:?}");
    }
    let total = |scrape: &Scrape| -> f64 {
        scrape
            .series("biblio_graphql_requests_total", &[])
            .iter()
            .map(|labels| {
                let labels: Vec<(&str, &str)> = labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                scrape.value("biblio_graphql_requests_total", &labels)
            })
            .sum()
    };
    assert_eq!(
        total(&after) - total(&before),
        7.0,
        "no other request counted"
    );

    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    // The response tier: Book missed once and hit twice; the anonymous
    // query and the broken one missed (they went to the executor); a
    // mutation is not a miss, and the refused request never got there.
    let response = [("tier", "response"), ("kind", "answer")];
    assert_eq!(delta("biblio_cache_hits_total", &response), 2.0);
    assert_eq!(delta("biblio_cache_misses_total", &response), 3.0);
    assert_eq!(
        delta("biblio_response_tier_events_total", &[("event", "stored")]),
        2.0,
        "Book's and the anonymous query's answers were kept"
    );
    assert_eq!(
        delta("biblio_cache_invalidations_published_total", &[]),
        1.0
    );
    assert_eq!(delta("biblio_cache_invalidations_received_total", &[]), 0.0);
    // Every statement the service ran is counted, and the hits ran none.
    assert_eq!(
        delta("biblio_db_queries_total", &[("purpose", "service")]),
        (app.statements() - statements) as f64
    );
    assert_eq!(
        after_reads - statements,
        1,
        "the miss loaded the book in one statement, the hits ran none"
    );
    // Redis round trips of requests: exactly what the cache counted.
    assert_eq!(
        after.value("biblio_redis_request_round_trips_total", &[]),
        app.cache.metrics().redis_round_trips() as f64
    );
    assert_eq!(
        after.value("biblio_cache_l1_bytes", &[]),
        app.cache.health().l1_bytes as f64
    );
    assert_eq!(
        after.value("biblio_cache_bus_subscriber_connected", &[]),
        1.0
    );
    assert_eq!(after.value("biblio_cache_bus_trusted", &[]), 1.0);
    assert_eq!(after.value("biblio_redis_breaker_open", &[]), 0.0);
    assert_eq!(after.value("biblio_cache_invalidations_pending", &[]), 0.0);
}

#[tokio::test]
async fn operation_names_beyond_the_cap_share_one_label() {
    let app = spawn_app().await;
    let extra = 5;
    for n in 0..biblio::http::MAX_OPERATIONS + extra {
        app.data(None, &format!("query Op{n} {{ __typename }}"), json!({}))
            .await;
    }
    app.data(None, "query Op0 { __typename }", json!({})).await;
    let scrape = scrape(&app).await;
    let series = scrape.series("biblio_graphql_requests_total", &[]);
    let names: HashSet<&str> = series
        .iter()
        .map(|labels| labels["operation"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        biblio::http::MAX_OPERATIONS + 1,
        "200 names and (other)"
    );
    assert!(names.contains("Op0") && !names.contains("Op200"));
    assert_eq!(
        requests(&scrape, "(other)", "query", "executed", "200"),
        extra as f64
    );
    assert_eq!(requests(&scrape, "Op0", "query", "hit", "200"), 1.0);
}

#[tokio::test]
async fn the_scrape_is_openmetrics_when_the_scraper_asks_for_it() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/metrics", app.address))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE biblio_cache_hits counter"));
}

#[test]
fn the_parser_refuses_what_is_not_the_text_format() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 2\n";
    assert!(parse(good).is_ok());
    for bad in [
        "a_total 2\n",
        "# TYPE a_total counter\na_total 2\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=1} 2\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total two\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total 2\na_total 3\n",
        "# HELP h A.\n# TYPE h histogram\nh_bucket 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\n\na_total 2\n",
    ] {
        assert!(parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test]
async fn a_fill_a_write_overtook_is_counted_as_refused_in_both_tiers() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let id = cat.books[0].clone();
    let before = scrape(&app).await;
    // The read of the cold book holds between its database read and its
    // fills while the write lands.
    let pause = app.cache.pause_next_fill(&format!("book:{id}"));
    let (client, url) = (app.client.clone(), app.graphql_url());
    let body = json!({ "query": BOOK, "variables": { "id": id } });
    let reader = tokio::spawn(async move { client.post(url).json(&body).send().await });
    pause.reached().await;
    app.data(Some(&cat.librarian), RENAME, json!({ "id": id }))
        .await;
    pause.release();
    assert_eq!(reader.await.unwrap().unwrap().status(), 200);
    let after = scrape(&app).await;
    for tier in ["l1", "l2"] {
        let labels = [("tier", tier)];
        assert_eq!(
            after.value("biblio_cache_fills_refused_total", &labels)
                - before.value("biblio_cache_fills_refused_total", &labels),
            1.0,
            "{tier}"
        );
    }
}

#[tokio::test]
async fn a_reader_that_waits_for_anothers_load_is_counted_as_a_flight_join() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let id = cat.books[0].clone();
    let before = scrape(&app).await;
    let pause = app.cache.pause_next_fill(&format!("book:{id}"));
    // Two documents, so the second is not held at the response tier
    // waiting for the first's answer, but joins its load of the book.
    let read = |query: &'static str| {
        let (client, url) = (app.client.clone(), app.graphql_url());
        let body = json!({ "query": query, "variables": { "id": id } });
        tokio::spawn(async move { client.post(url).json(&body).send().await })
    };
    let first = read(BOOK);
    pause.reached().await;
    let second = read("query Again($id: ID!) { book(id: $id) { id title } }");
    let joins =
        |scrape: &Scrape| scrape.value("biblio_cache_flight_joins_total", &[("kind", "book")]);
    crate::helpers::eventually(|| async {
        app.cache.metrics().flight_joins(biblio::cache::Kind::Book) > 0
    })
    .await;
    pause.release();
    for reader in [first, second] {
        assert_eq!(reader.await.unwrap().unwrap().status(), 200);
    }
    let after = scrape(&app).await;
    assert_eq!(joins(&after) - joins(&before), 1.0);
    assert_eq!(
        after.value("biblio_cache_loads_total", &[("kind", "book")])
            - before.value("biblio_cache_loads_total", &[("kind", "book")]),
        1.0,
        "one load for both readers"
    );
}

/// A client can send any `operationName`, and a document can define a name
/// of any length: the label is only ever a name the executed document
/// defines, cut like the access log's, and `(anonymous)` otherwise.
#[tokio::test]
async fn the_operation_label_is_a_name_the_document_defines_cut_to_length() {
    let app = spawn_app().await;
    let made_up = format!("Invented{}", "x".repeat(10_000));
    let undefined = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": "query A { __typename }", "operationName": made_up }))
        .send()
        .await
        .unwrap();
    assert_eq!(undefined.status(), 400);
    let long = format!("Long{}", "y".repeat(10_000));
    app.data(None, &format!("query {long} {{ __typename }}"), json!({}))
        .await;

    let scrape = scrape(&app).await;
    let names: HashSet<String> = scrape
        .series("biblio_graphql_requests_total", &[])
        .into_iter()
        .map(|labels| labels["operation"].clone())
        .collect();
    assert!(
        names.iter().all(|name| !name.starts_with("Invented")),
        "a name the document does not define became a label"
    );
    assert!(names.iter().all(|name| name.len() <= 100), "{names:?}");
    assert_eq!(
        requests(&scrape, "(anonymous)", "unknown", "executed", "400"),
        1.0
    );
    assert_eq!(
        requests(&scrape, &long[..100], "query", "executed", "200"),
        1.0
    );
}

const OPERATOR_TOKEN: &str = "operator-token-for-metrics-0123456789";

/// With `--metrics-auth operator-token`, a scrape must carry the operator
/// token as a bearer token; without it or with another it is 401, and
/// `/graphql` is as open as before.
#[tokio::test]
async fn with_metrics_auth_a_scrape_needs_the_operator_token() {
    use crate::binary::{biblio, Server};
    let (_database, url) = crate::helpers::TestDatabase::create().await;
    let redis = crate::helpers::TestRedis::start();
    let mut command = biblio(&url);
    command.stderr(std::process::Stdio::null());
    let server = Server::start(
        command,
        &[
            "--redis-url",
            &redis.url(),
            "--operator-token",
            OPERATOR_TOKEN,
            "--metrics-auth",
            "operator-token",
        ],
    )
    .await;
    let metrics = format!("{}/metrics", server.address);
    let scrape = |authorization: Option<String>| {
        let mut request = server.client.get(&metrics);
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.send()
    };

    for refused in [
        None,
        Some("Bearer not-the-operator-token-at-all".to_owned()),
        Some(format!("Basic {OPERATOR_TOKEN}")),
        Some(OPERATOR_TOKEN.to_owned()),
    ] {
        let response = scrape(refused.clone()).await.unwrap();
        assert_eq!(response.status(), 401, "{refused:?}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{refused:?}"
        );
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("biblio_"),
            "{refused:?} read metrics: {body}"
        );
    }
    let allowed = scrape(Some(format!("Bearer {OPERATOR_TOKEN}")))
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let text = allowed.text().await.unwrap();
    parse(&text).unwrap_or_else(|why| panic!("not the Prometheus text format: {why}"));
    assert!(text.contains("biblio_build_info"));

    let answer = server.query("{ books { totalCount } }").await;
    assert_eq!(answer["data"]["books"]["totalCount"], 0);
}

/// Asking for the token with no token to ask for is a mistake at start,
/// not an endpoint nobody can read.
#[test]
fn metrics_auth_without_an_operator_token_is_refused_at_start() {
    use crate::binary::{biblio, finish_within_10s};
    let output = finish_within_10s(
        biblio("sqlite::memory:")
            .env_remove("BIBLIO_OPERATOR_TOKEN")
            .args(["serve", "--metrics-auth", "operator-token"]),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(
        stderr.contains("--metrics-auth") && stderr.contains("--operator-token"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
