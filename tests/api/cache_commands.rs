//! `biblio cache clear`, `biblio cache warm` and `serve --warm`, against a
//! real Redis with replicas running: the built binary for the commands,
//! counted statements, loads and keys for what they did, the fill pause for
//! the races a clear can meet.
use crate::binary::{biblio, finish_within_10s};
use crate::helpers::{catalogue, eventually, TestApp, TestRedis};
use biblio::cache::{Cache, Change, Kind, Settings};
use biblio::redis::keyspace::SCHEMA_VERSION;
use serde_json::{json, Value};

const PAGE: &str =
    "{ books(pageSize: 20) { totalCount items { id title author { name } category { name } } } }";
const BOOK: &str =
    "query($id: ID!) { book(id: $id) { id title author { name } category { name } } }";
const CATEGORIES: &str = "{ categories { id name bookCount } }";

/// Runs `biblio cache <args>` for the deployment `prefix` on `redis` and
/// `database_url`, off the test's runtime so its replicas keep running;
/// returns its standard output.
async fn cache_command(
    database_url: &str,
    redis: &TestRedis,
    prefix: &str,
    args: &[&str],
) -> String {
    let mut command = biblio(database_url);
    command
        .arg("cache")
        .args(args)
        .env("REDIS_URL", redis.url())
        .env("BIBLIO_CACHE_PREFIX", prefix)
        .env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || finish_within_10s(&mut command))
        .await
        .expect("the command ran");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "biblio cache {args:?} failed: {}",
        stderr.chars().take(500).collect::<String>()
    );
    String::from_utf8(output.stdout).expect("text")
}

/// The number just before `word` in `text` (e.g. "removed 12 keys").
fn count_before(text: &str, word: &str) -> u64 {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == word)
        .unwrap_or_else(|| panic!("no {word:?} in the output: {text}"));
    words[at - 1].parse().expect("a count")
}

/// A replica of the deployment `of` (its database, Redis and prefix).
fn replica_of(of: &TestApp, redis: &TestRedis) -> crate::helpers::TestAppBuilder {
    let prefix = of.cache.prefix().to_owned();
    TestApp::builder()
        .shared_database(&of.database_url)
        .shared_redis(redis)
        .configure(move |config| config.cache.prefix = Some(prefix.clone()))
}

fn loads(app: &TestApp, kind: Kind) -> u64 {
    app.cache.metrics().kind(kind).loads
}

#[tokio::test]
async fn a_clear_makes_both_replicas_load_afresh_and_leaves_another_deployments_keys_alone() {
    let (replicas, redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let prefix = a.cache.prefix().to_owned();
    catalogue(a, 25).await;
    let other = TestApp::builder().shared_redis(&redis).spawn().await;
    catalogue(&other, 3).await;
    other.data(None, PAGE, json!({})).await;
    let others_keys = redis.keys(&format!("{}:*", other.cache.prefix()));
    assert!(others_keys.len() > 5, "the other deployment has entries");

    let page = a.data(None, PAGE, json!({})).await;
    assert_eq!(b.data(None, PAGE, json!({})).await, page);
    let categories = b.data(None, CATEGORIES, json!({})).await;
    let book = json!({ "id": page["books"]["items"][0]["id"] });
    b.data(None, BOOK, book.clone()).await;
    // A second read on A is answered whole by the response tier.
    let kept = a.cache.metrics().responses();
    assert_eq!(a.data(None, PAGE, json!({})).await, page);
    assert_eq!(a.cache.metrics().responses().hits, kept.hits + 1);
    let old = redis.keys(&format!("{prefix}:v*:n0:*"));
    assert!(old.len() > 20, "{} entries before the clear", old.len());
    let counters = redis.keys(&format!("{prefix}:v*:sequence"));
    assert_eq!(counters.len(), 1, "writes have moved the sequence");

    let out = cache_command(&a.database_url, &redis, &prefix, &["clear"]).await;

    assert_eq!(
        count_before(&out, "keys"),
        old.len() as u64,
        "the removal reports every key of the old namespace: {out}"
    );
    assert!(redis.keys(&format!("{prefix}:v*:n0:*")).is_empty());
    assert_eq!(redis.keys(&format!("{prefix}:v*:sequence")), counters);
    assert_eq!(
        redis.keys(&format!("{}:*", other.cache.prefix())),
        others_keys,
        "another prefix's keys are untouched"
    );
    eventually(|| async { a.cache.namespace() == 1 && b.cache.namespace() == 1 }).await;
    let responses = a.cache.metrics().responses();
    let (pages, lists) = (loads(a, Kind::BookPage), loads(b, Kind::CategoryList));
    let book_misses = b.cache.metrics().kind(Kind::Book).l1_misses;
    assert_eq!(a.data(None, PAGE, json!({})).await, page);
    assert_eq!(b.data(None, CATEGORIES, json!({})).await, categories);
    b.data(None, BOOK, book).await;
    assert_eq!(
        a.cache.metrics().responses().hits,
        responses.hits,
        "the kept answer ended with the clear"
    );
    assert_eq!(a.cache.metrics().responses().misses, responses.misses + 1);
    assert_eq!(loads(a, Kind::BookPage), pages + 1, "A loaded the page");
    assert_eq!(loads(b, Kind::CategoryList), lists + 1, "B loaded the list");
    assert_eq!(
        b.cache.metrics().kind(Kind::Book).l1_misses,
        book_misses + 1,
        "B's L1 forgot the book"
    );
}

#[tokio::test]
async fn a_fill_that_read_the_database_before_a_clear_lands_where_no_reader_looks() {
    let (replicas, redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let prefix = a.cache.prefix().to_owned();
    let id = catalogue(a, 1).await.books[0].clone();
    let pause = a.cache.pause_next_fill(&format!("book:{id}"));
    let reader = {
        let (client, url) = (a.client.clone(), a.graphql_url());
        let body = json!({ "query": BOOK, "variables": { "id": id } });
        tokio::spawn(async move {
            let response = client.post(url).json(&body).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        })
    };
    pause.reached().await;

    assert_eq!(b.cache.clear().await, Some(1));
    eventually(|| async { a.cache.namespace() == 1 }).await;
    pause.release();
    assert_eq!(reader.await.unwrap()["data"]["book"]["title"], "Book 000");

    assert_eq!(redis.keys(&format!("{prefix}:v*:n0:book:{id}")).len(), 1);
    assert!(
        redis.keys(&format!("{prefix}:v*:n1:book:{id}")).is_empty(),
        "the fill landed in the old namespace only"
    );
    let before = loads(b, Kind::Book);
    b.data(None, BOOK, json!({ "id": id })).await;
    assert_eq!(loads(b, Kind::Book), before + 1, "B did not find it");
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    assert!(
        a.cache.peek(biblio::cache::BOOK, uuid).is_none(),
        "nor did A's L1 keep it"
    );
    let old = redis.keys(&format!("{prefix}:v*:n0:*")).len() as u64;
    assert_eq!(b.cache.remove_old_namespaces(|_| {}).await, Some(old));
    assert!(redis.keys(&format!("{prefix}:v*:n0:*")).is_empty());
}

#[tokio::test]
async fn a_replica_that_never_hears_the_clear_event_learns_the_namespace_from_its_heartbeat() {
    let (replicas, redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let prefix = a.cache.prefix().to_owned();
    catalogue(a, 3).await;
    let page = b.data(None, PAGE, json!({})).await;
    b.data(None, PAGE, json!({})).await;

    // A clear whose event is lost: the counter moves, nothing is published.
    assert_eq!(
        redis.command(&["INCR", &format!("{prefix}:v{SCHEMA_VERSION}:namespace")]),
        ":1"
    );

    eventually(|| async { b.cache.namespace() == 1 }).await;
    let pages = loads(b, Kind::BookPage);
    assert_eq!(b.data(None, PAGE, json!({})).await, page);
    assert_eq!(loads(b, Kind::BookPage), pages + 1, "its L1 was dropped");
}

#[tokio::test]
async fn a_writer_that_has_not_learnt_of_a_clear_deletes_in_the_namespace_readers_use() {
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    let (mut apps, redis) = TestApp::builder().spawn_replicas().await;
    let b = apps.pop().expect("one app");
    let prefix = b.cache.prefix().to_owned();
    let cat = catalogue(&b, 1).await;
    let id = cat.books[0].clone();
    let counter = format!("{prefix}:v{SCHEMA_VERSION}:namespace");
    assert_eq!(redis.command(&["SET", &counter, "5"]), "+OK");
    eventually(|| async { b.cache.namespace() == 5 }).await;
    // The writer: a cache of the same deployment that hears its own
    // heartbeat only every two minutes, so that once it has learnt
    // namespace 5 (from B's next write's event), it can learn of a later
    // clear from nothing but the invalidation script.
    let writer = Cache::new(
        &Settings {
            redis_url: redis.url(),
            bus_silence: std::time::Duration::from_secs(600),
            ..Settings::default()
        },
        &prefix,
        None,
    )
    .expect("a cache");
    eventually(|| async { writer.health().subscriber == "connected" }).await;
    b.create_author(&cat.librarian, "Someone").await;
    eventually(|| async { writer.namespace() == 5 }).await;
    // A clear whose event the writer misses: nothing is published. Under
    // load B may still publish something late (an outbox row swept after
    // 500 ms) that teaches the writer the new namespace; then clear again.
    let mut cleared = 5;
    for _ in 0..5 {
        cleared += 1;
        assert_eq!(redis.command(&["INCR", &counter]), format!(":{cleared}"));
        eventually(|| async { b.cache.namespace() == cleared }).await;
        if writer.namespace() < cleared {
            break;
        }
    }
    assert!(
        writer.namespace() < cleared,
        "the writer has not heard of it"
    );
    // B fills the new namespace.
    b.data(None, BOOK, json!({ "id": id })).await;

    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let before = entity::book::Entity::find_by_id(uuid)
        .one(b.db.conn())
        .await
        .unwrap()
        .unwrap();
    let write = b.db.begin_write().await.unwrap();
    let mut renamed = before.clone().into_active_model();
    renamed.title = Set("Renamed".into());
    let after = renamed.update(write.conn()).await.unwrap();
    let listed = |book| biblio::cache::Listed {
        book,
        author: "the author".into(),
    };
    let change = Change::BookUpdated {
        before: listed(before),
        after: listed(after),
    };
    writer.commit(write, change).await.unwrap();

    assert_eq!(writer.namespace(), cleared, "the script told the writer");
    eventually(|| async {
        b.data(None, BOOK, json!({ "id": id })).await["book"]["title"] == "Renamed"
    })
    .await;
}

#[tokio::test]
async fn a_warm_cache_serves_a_cold_replicas_first_reads_without_sql() {
    let (mut apps, redis) = TestApp::builder().spawn_replicas().await;
    let a = apps.pop().expect("one app");
    let prefix = a.cache.prefix().to_owned();
    let cat = catalogue(&a, 30).await;
    let member = a.member("reader@biblio.test").await;
    for book in &cat.books[3..5] {
        a.data(
            Some(&member),
            "mutation($b: ID!) { borrowBook(bookId: $b) { id } }",
            json!({ "b": book }),
        )
        .await;
    }
    // Nothing the writes or earlier reads left counts.
    cache_command(&a.database_url, &redis, &prefix, &["clear"]).await;

    let out = cache_command(&a.database_url, &redis, &prefix, &["warm"]).await;
    assert!(count_before(&out, "entries") > 30, "{out}");

    let b = replica_of(&a, &redis).spawn().await;
    let reads = [
        ("{ categories { id name bookCount } }", json!({})),
        (
            "{ statistics { totalBooks averagePrice booksByCategory { category { name } count } } }",
            json!({}),
        ),
        (PAGE, json!({})),
        ("{ books(page: 2) { items { title } } }", json!({})),
        ("{ authors { items { name bookCount } } }", json!({})),
        (BOOK, json!({ "id": cat.books[3] })),
    ];
    let sql = b.statements();
    let mut answers = Vec::new();
    for (query, variables) in &reads {
        answers.push(b.data(None, query, variables.clone()).await);
    }
    assert_eq!(b.statements() - sql, 0, "every first read came from Redis");
    let loaded: u64 = Kind::ALL.into_iter().map(|kind| loads(&b, kind)).sum();
    assert_eq!(loaded, 0);
    for ((query, variables), answer) in reads.iter().zip(answers) {
        assert_eq!(a.data(None, query, variables.clone()).await, answer);
    }
}

#[tokio::test]
async fn serve_warm_reports_ready_only_once_the_cache_is_warm() {
    let (mut apps, redis) = TestApp::builder().spawn_replicas().await;
    let a = apps.pop().expect("one app");
    catalogue(&a, 5).await;
    let pause = std::sync::Arc::new(std::sync::Mutex::new(None));
    let b = {
        let pause = pause.clone();
        replica_of(&a, &redis)
            .configure({
                let prefix = a.cache.prefix().to_owned();
                move |config| {
                    config.cache.prefix = Some(prefix.clone());
                    config.warm = true;
                }
            })
            .prepare(move |app| {
                *pause.lock().unwrap() = Some(app.cache().pause_next_fill("statistics"));
            })
            .spawn()
            .await
    };
    let pause = pause.lock().unwrap().take().expect("the pause is set");
    let ready = || async {
        let response = b
            .client
            .get(format!("{}/readyz", b.address))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap()["status"].clone(),
        )
    };
    pause.reached().await;
    assert_eq!(ready().await, (503, json!("warming")));

    pause.release();
    eventually(|| async { ready().await.0 == 200 }).await;
    assert_eq!(ready().await, (200, json!("ready")));
    let sql = b.statements();
    b.data(
        None,
        "{ statistics { totalBooks } categories { name } }",
        json!({}),
    )
    .await;
    b.data(None, PAGE, json!({})).await;
    assert_eq!(b.statements() - sql, 0, "warm before it said ready");
}

#[tokio::test]
async fn the_cache_commands_publish_no_stats_so_they_are_never_shown_as_replicas() {
    let (mut apps, redis) = TestApp::builder().spawn_replicas().await;
    let a = apps.pop().expect("one app");
    let prefix = a.cache.prefix().to_owned();
    catalogue(&a, 3).await;
    cache_command(&a.database_url, &redis, &prefix, &["warm"]).await;
    cache_command(&a.database_url, &redis, &prefix, &["clear"]).await;

    let ours = format!("{prefix}:stats:{}", a.cache.origin());
    let snapshots = redis.keys(&format!("{prefix}:stats:*"));
    assert!(
        snapshots.iter().all(|key| *key == ours),
        "only the serving replica publishes stats: {snapshots:?}"
    );
    let indexed = redis.command(&["ZCARD", &format!("{prefix}:stats")]);
    assert!(
        [":0", ":1"].contains(&indexed.as_str()),
        "the replicas' index holds the serving replica at most: {indexed}"
    );
}

#[tokio::test]
async fn a_warm_works_under_the_tightest_limits_a_deployment_may_set_for_clients() {
    // The warm's queries are the service's own, run in process: the limits
    // on clients' documents are not theirs to meet.
    let (mut apps, redis) = TestApp::builder().spawn_replicas().await;
    let a = apps.pop().expect("one app");
    let cat = catalogue(&a, 5).await;
    let member = a.member("reader@biblio.test").await;
    a.data(
        Some(&member),
        "mutation($b: ID!) { borrowBook(bookId: $b) { id } }",
        json!({ "b": cat.books[0] }),
    )
    .await;
    let mut command = biblio(&a.database_url);
    command
        .args(["cache", "warm"])
        .env("REDIS_URL", redis.url())
        .env("BIBLIO_CACHE_PREFIX", a.cache.prefix())
        .env("RUST_LOG", "warn");
    for limit in [
        "BIBLIO_MAX_ALIASES",
        "BIBLIO_MAX_FIELDS",
        "BIBLIO_MAX_DEPTH",
        "BIBLIO_MAX_COMPLEXITY",
        "BIBLIO_MAX_FRAGMENTS",
        "BIBLIO_MAX_TOKENS",
        "BIBLIO_MAX_DIRECTIVES",
    ] {
        command.env(limit, "1");
    }
    let output = tokio::task::spawn_blocking(move || finish_within_10s(&mut command))
        .await
        .expect("the command ran");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "the warm failed: {stderr}");
    assert!(count_before(&stdout, "entries") > 5, "{stdout}");
}
