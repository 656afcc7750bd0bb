//! The cache, end to end: round trips and statements counted, never timed;
//! races forced with the fill pause; replicas sharing one database and one
//! test-owned redis-server.
use crate::helpers::{catalogue, eventually, spawn_app, NewBook, TestApp, TestRedis};
use biblio::cache::{Change, Kind};
use serde_json::{json, Value};
use std::time::Instant;

const PAGE: &str =
    "{ books(pageSize: 20) { totalCount items { id title author { name } category { name } } } }";
const BOOK: &str =
    "query($id: ID!) { book(id: $id) { id title price copiesAvailable author { name } } }";
const UPDATE_TITLE: &str =
    "mutation($id: ID!, $t: String!) { updateBook(id: $id, input: { title: $t }) { title } }";

fn counts(app: &TestApp) -> (u64, u64) {
    (app.statements(), app.cache.metrics().redis_round_trips())
}

async fn title(app: &TestApp, id: &str) -> String {
    app.data(None, BOOK, json!({ "id": id })).await["book"]["title"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_cold_page_takes_three_statements_and_a_warm_one_none_and_no_redis() {
    let app = spawn_app().await;
    catalogue(&app, 25).await;
    let (sql, _) = counts(&app);
    let cold = app.data(None, PAGE, json!({})).await;
    assert!(
        app.statements() - sql <= 3,
        "cold: {} statements",
        app.statements() - sql
    );

    let (sql, redis) = counts(&app);
    let warm = app.data(None, PAGE, json!({})).await;
    assert_eq!(warm, cold);
    assert_eq!(app.statements() - sql, 0, "warm in L1: no SQL");
    assert_eq!(
        app.cache.metrics().redis_round_trips() - redis,
        0,
        "warm in L1: no Redis round trip"
    );
}

#[tokio::test]
async fn warm_in_l2_only_a_page_costs_one_mget_per_kind_and_no_sql() {
    let (replicas, _redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    catalogue(a, 25).await;
    // Warm L2 through replica A; replica B's L1 stays cold.
    let expected = a.data(None, PAGE, json!({})).await;
    a.data(None, PAGE, json!({})).await;
    // B learns the group generation first (a GET, not an MGET).
    b.cache.metrics();
    let (sql, redis) = counts(b);
    let page = b.data(None, PAGE, json!({})).await;
    assert_eq!(page, expected);
    assert_eq!(b.statements() - sql, 0, "everything came from L2");
    let trips = b.cache.metrics().redis_round_trips() - redis;
    // generation GET + one MGET each for the page, books, authors, categories
    assert!(trips <= 5, "{trips} round trips");
    assert_eq!(b.cache.metrics().kind(Kind::BookPage).l2_hits, 1);
    assert_eq!(b.cache.metrics().kind(Kind::Book).l2_hits, 20);
}

#[tokio::test]
async fn fifty_concurrent_cold_reads_of_one_book_cost_one_statement() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let body = json!({ "query": "query($id: ID!) { book(id: $id) { title } }", "variables": { "id": cat.books[0] } });
    let before = app.statements();
    for response in concurrently(&app, &body, 50).await {
        assert_eq!(response["data"]["book"]["title"], "Book 000");
    }
    assert_eq!(
        app.statements() - before,
        1,
        "single flight: one load for fifty misses"
    );
}

#[tokio::test]
async fn absent_ids_are_cached_briefly_and_a_create_clears_them() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let ghost = uuid::Uuid::now_v7();
    let query = json!({ "id": ghost });
    assert!(app.data(None, BOOK, query.clone()).await["book"].is_null());
    let before = app.statements();
    assert!(app.data(None, BOOK, query.clone()).await["book"].is_null());
    assert_eq!(app.statements() - before, 0, "the absence was cached");

    // A book with exactly that id appears, and its creation is reported.
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel};
    let existing = uuid::Uuid::parse_str(&cat.books[0]).unwrap();
    let mut book = entity::book::Entity::find_by_id(existing)
        .one(app.db.conn())
        .await
        .unwrap()
        .unwrap();
    book.id = ghost;
    book.isbn = crate::helpers::isbn(500);
    let write = app.db.begin_write().await.unwrap();
    book.clone()
        .into_active_model()
        .reset_all()
        .insert(write.conn())
        .await
        .unwrap();
    let book = biblio::cache::Listed {
        author: "the author".into(),
        book,
    };
    app.cache
        .commit(write, Change::BookCreated { book })
        .await
        .unwrap();
    assert_eq!(
        app.data(None, BOOK, query).await["book"]["title"],
        "Book 000"
    );
}

#[tokio::test]
async fn private_borrows_are_never_served_to_another_user_from_a_warm_cache() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 2).await;
    let alice = app.member("alice@example.org").await;
    let bob = app.member("bob@example.org").await;
    app.data(
        Some(&alice),
        "mutation($b: ID!) { borrowBook(bookId: $b) { id } }",
        json!({ "b": cat.books[0] }),
    )
    .await;
    let query = "{ me { email } myBorrows { totalCount items { book { title } user { email } } } }";
    let hers = app.data(Some(&alice), query, json!({})).await;
    app.data(Some(&alice), query, json!({})).await;
    assert_eq!(hers["myBorrows"]["totalCount"], 1);
    let his = app.data(Some(&bob), query, json!({})).await;
    assert_eq!(his["me"]["email"], "bob@example.org");
    assert_eq!(his["myBorrows"]["totalCount"], 0);
    assert_eq!(his["myBorrows"]["items"], json!([]));
}

#[tokio::test]
async fn statistics_after_a_write_are_refreshed_once_for_many_concurrent_readers() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 2).await;
    let query = "{ statistics { totalBooks } }";
    app.data(None, query, json!({})).await;
    app.create_book(
        &cat.librarian,
        NewBook {
            title: "Another",
            n: 77,
            author: &cat.authors[0],
            category: &cat.categories[0],
            copies: 1,
        },
    )
    .await;
    let loads = app.cache.metrics().kind(Kind::Statistics).loads;
    let body = json!({ "query": query });
    for response in concurrently(&app, &body, 20).await {
        assert_eq!(
            response["data"]["statistics"]["totalBooks"], 3,
            "a write is never hidden"
        );
    }
    assert_eq!(
        app.cache.metrics().kind(Kind::Statistics).loads - loads,
        1,
        "one aggregate, not a stampede"
    );
}

#[tokio::test]
async fn a_load_that_read_before_a_write_does_not_store_its_old_value_in_either_tier() {
    let (replicas, _redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let cat = catalogue(a, 1).await;
    let id = cat.books[0].clone();

    let pause = a.cache.pause_next_fill(&format!("book:{id}"));
    let reader = read_in_background(a, &id);
    pause.reached().await; // the reader has read the old row and not filled yet
    a.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": id, "t": "Renamed" }),
    )
    .await;
    pause.release();
    let old = reader.await.unwrap();
    assert_eq!(
        old["data"]["book"]["title"], "Book 000",
        "the reader answered with what it read"
    );

    assert_eq!(
        title(a, &id).await,
        "Renamed",
        "L1 did not keep the old value"
    );
    assert_eq!(
        title(b, &id).await,
        "Renamed",
        "L2 did not keep the old value (B's L1 was cold)"
    );
    assert_eq!(
        b.cache.metrics().kind(Kind::Book).loads,
        0,
        "B read it from L2, which holds the new value"
    );
}

#[tokio::test]
async fn an_event_that_arrives_during_a_fill_keeps_the_old_value_out() {
    let (replicas, _redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let cat = catalogue(a, 1).await;
    let id = cat.books[0].clone();

    let pause = b.cache.pause_next_fill(&format!("book:{id}"));
    let reader = read_in_background(b, &id);
    pause.reached().await;
    let events = b.cache.metrics().events_received();
    a.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": id, "t": "Renamed" }),
    )
    .await;
    eventually(|| async { b.cache.metrics().events_received() != events }).await;
    pause.release();
    reader.await.unwrap();
    assert_eq!(title(b, &id).await, "Renamed");
}

#[tokio::test]
async fn a_write_on_one_replica_is_seen_on_another_within_the_delivery_time() {
    let (replicas, _redis) = TestApp::builder().replicas(3).spawn_replicas().await;
    let cat = catalogue(&replicas[0], 1).await;
    let id = cat.books[0].clone();
    for replica in &replicas {
        assert_eq!(title(replica, &id).await, "Book 000");
        assert_eq!(title(replica, &id).await, "Book 000"); // warm in L1
    }
    let before = replicas[1].statements();
    replicas[0]
        .data(
            Some(&cat.librarian),
            UPDATE_TITLE,
            json!({ "id": id, "t": "Renamed" }),
        )
        .await;
    let written = Instant::now();
    for replica in &replicas[1..] {
        let seen = eventually(|| async { title(replica, &id).await == "Renamed" }).await;
        println!("observed invalidation delivery: {:?}", seen - written);
    }
    assert!(
        replicas[1].statements() - before <= 1,
        "one reload, no more"
    );
}

/// Sends `body` `n` times at once; the responses, in order.
async fn concurrently(app: &TestApp, body: &Value, n: usize) -> Vec<Value> {
    let requests = (0..n).map(|_| {
        let (client, url, body) = (app.client.clone(), app.graphql_url(), body.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    });
    futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Starts a `book` read on `app` and returns its response when awaited.
fn read_in_background(app: &TestApp, id: &str) -> tokio::task::JoinHandle<Value> {
    let (client, url) = (app.client.clone(), app.graphql_url());
    let body = json!({ "query": BOOK, "variables": { "id": id } });
    tokio::spawn(async move {
        client
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    })
}

#[tokio::test]
async fn with_redis_down_reads_and_writes_go_on_fresh_after_the_cap_and_nothing_is_stale_when_it_returns(
) {
    let (replicas, mut redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let cat = catalogue(a, 1).await;
    let id = cat.books[0].clone();
    assert_eq!(title(b, &id).await, "Book 000"); // warm on B (L1 and L2)
    assert_eq!(title(a, &id).await, "Book 000");

    redis.stop();
    // Writes still succeed, reads still answer.
    a.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": id, "t": "During the outage" }),
    )
    .await;
    assert_eq!(
        title(a, &id).await,
        "During the outage",
        "the writer sees its write at once"
    );
    let stopped = Instant::now();
    eventually(|| async { title(b, &id).await == "During the outage" }).await;
    println!(
        "fresh on the other replica {:?} after the outage began (cap 1 s)",
        stopped.elapsed()
    );

    let ready: Value = b
        .client
        .get(format!("{}/readyz", b.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["cache"]["status"], "degraded", "{ready}");
    assert_eq!(ready["status"], "degraded");

    // The breaker keeps a dead Redis from costing every request a timeout.
    let trips = b.cache.metrics().redis_round_trips();
    for _ in 0..20 {
        b.data(None, PAGE, json!({})).await;
    }
    assert!(
        b.cache.metrics().redis_round_trips() - trips <= 2,
        "at most a probe per interval"
    );

    redis.restart();
    for replica in &replicas {
        replica.wait_for_cache().await;
    }
    for replica in &replicas {
        assert_eq!(title(replica, &id).await, "During the outage");
    }
    a.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": id, "t": "After" }),
    )
    .await;
    eventually(|| async { title(b, &id).await == "After" }).await;
}

/// Caches a book's title in Redis (which keeps it on disk), renames the book
/// to "Partitioned" on `writer` while Redis is down, and brings Redis back
/// with the old entry: the writer's invalidation is then pending. Returns the
/// book's id.
async fn write_while_redis_is_down(writer: &TestApp, redis: &mut TestRedis) -> String {
    let cat = catalogue(writer, 1).await;
    let id = cat.books[0].clone();
    assert_eq!(title(writer, &id).await, "Book 000"); // in L2 now, and on disk
                                                      // The catalogue's own invalidations first: on a loaded machine one may
                                                      // still be on its way, and it would be counted below.
    eventually(|| async { writer.cache.health().pending_invalidations == 0 }).await;
    redis.stop();
    writer
        .data(
            Some(&cat.librarian),
            UPDATE_TITLE,
            json!({ "id": id, "t": "Partitioned" }),
        )
        .await;
    assert_eq!(writer.cache.health().pending_invalidations, 1);
    redis.restart(); // with the old entry, read back from its append-only file
    id
}

/// The writer must not read back, from Redis or into its own L1, a value
/// its own unpublished invalidation replaced. Redis comes back with the old
/// entry but refusing writes, so the replay cannot land while reads can.
#[tokio::test]
async fn the_writer_never_serves_what_its_own_pending_invalidation_replaced() {
    let (replicas, mut redis) = TestApp::builder()
        .redis(TestRedis::start_persistent())
        .spawn_replicas()
        .await;
    let a = &replicas[0];
    let id = write_while_redis_is_down(a, &mut redis).await;
    assert_eq!(redis.command(&["CLIENT", "PAUSE", "3000", "WRITE"]), "+OK");
    // Past the breaker's interval, so a request may probe Redis, which
    // answers reads and holds the replay.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for _ in 0..20 {
        assert_eq!(
            title(a, &id).await,
            "Partitioned",
            "the writer read the value it replaced"
        );
    }
    assert_eq!(
        a.cache.health().pending_invalidations,
        1,
        "the replay is held by the pause"
    );
    assert_eq!(redis.command(&["CLIENT", "UNPAUSE"]), "+OK");
    eventually(|| async { a.cache.health().pending_invalidations == 0 }).await;
    assert_eq!(title(a, &id).await, "Partitioned", "after the replay too");
}

#[tokio::test]
async fn a_write_while_redis_was_unreachable_is_replayed_into_it_when_it_answers_again() {
    // Redis comes back with its data (a network partition, not a restart):
    // the stale L2 entry must go.
    let (replicas, mut redis) = TestApp::builder()
        .replicas(2)
        .redis(TestRedis::start_persistent())
        .spawn_replicas()
        .await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let id = write_while_redis_is_down(a, &mut redis).await;
    eventually(|| async { a.cache.health().pending_invalidations == 0 }).await;
    b.wait_for_cache().await;
    assert_eq!(
        title(b, &id).await,
        "Partitioned",
        "B's first read goes to L2, which forgot the old value"
    );
}

#[tokio::test]
async fn replicas_of_one_database_share_the_default_prefix_and_two_databases_do_not() {
    let redis = TestRedis::start();
    let default_prefix = |config: &mut biblio::config::Config| config.cache.prefix = None;
    let one = TestApp::builder()
        .shared_redis(&redis)
        .configure(default_prefix)
        .spawn()
        .await;
    let same_database = TestApp::builder()
        .shared_redis(&redis)
        .shared_database(&one.database_url)
        .configure(default_prefix)
        .spawn()
        .await;
    let other_database = TestApp::builder()
        .shared_redis(&redis)
        .configure(default_prefix)
        .spawn()
        .await;
    assert!(
        one.cache.prefix().starts_with("biblio-"),
        "{}",
        one.cache.prefix()
    );
    assert_eq!(one.cache.prefix(), same_database.cache.prefix());
    assert_ne!(one.cache.prefix(), other_database.cache.prefix());
}

/// A group's generation comes from the invalidation sequence, which never
/// expires. It used to be a counter of its own that expired with the
/// entries and restarted at 1, so a page stored under generation 1 after
/// the expiry was current again after the next write.
#[tokio::test]
async fn a_list_group_whose_counter_expired_never_serves_an_older_page() {
    let app = TestApp::builder()
        .configure(|config| {
            let second = std::time::Duration::from_secs(1);
            let ttls = &mut config.cache.ttls;
            (ttls.entity, ttls.list, ttls.private, ttls.statistics) =
                (second, second, second, second);
        })
        .spawn()
        .await;
    let cat = catalogue(&app, 2).await;
    let alice = app.member("alice@example.org").await;
    let borrow = "mutation($b: ID!) { borrowBook(bookId: $b) { id } }";
    let count = "{ myBorrows { totalCount } }";
    app.data(Some(&alice), borrow, json!({ "b": cat.books[0] }))
        .await;
    assert_eq!(
        app.data(Some(&alice), count, json!({})).await["myBorrows"]["totalCount"],
        1
    );
    // Counters live twice the longest TTL: both they and the page expire.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        app.data(Some(&alice), count, json!({})).await["myBorrows"]["totalCount"],
        1
    );
    app.data(Some(&alice), borrow, json!({ "b": cat.books[1] }))
        .await;
    assert_eq!(
        app.data(Some(&alice), count, json!({})).await["myBorrows"]["totalCount"],
        2,
        "the page stored before the write was served after it"
    );
}

/// Trust in the bus is a lease that each heartbeat heard renews, not a flag
/// that the background task clears when it notices the silence: that task
/// can be held up (here in a heartbeat call that a paused Redis never
/// answers, under a 5 s timeout; in production by a loaded machine or a slow
/// database call), and meanwhile L2 and L1 were read as if every write had
/// been heard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_stops_being_trusted_at_the_silence_limit_even_while_the_task_watching_it_is_held_up(
) {
    let redis = TestRedis::start();
    let app = TestApp::builder()
        .shared_redis(&redis)
        .configure(|config| {
            config.cache.command_timeout = std::time::Duration::from_secs(5);
        })
        .spawn()
        .await;
    app.wait_for_cache().await;
    assert!(app.cache.health().bus_trusted);

    redis.signal("STOP");
    // Past the silence limit (500 ms), well before the call's timeout.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let trusted = app.cache.health().bus_trusted;
    redis.signal("CONT");
    assert!(
        !trusted,
        "1.5 s after Redis stopped answering, the bus was still trusted"
    );
    app.wait_for_cache().await;
}
