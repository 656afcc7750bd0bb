//! The response tier: whole answers kept in front of the executor. Executions
//! skipped are counted (the tier's hits, and no L1 read or SQL statement
//! behind them); races are forced with the fill pause, never timed.
use crate::helpers::{catalogue, eventually, spawn_app, TestApp};
use biblio::cache::{Kind, ResponseCounts};
use serde_json::{json, Value};

const BOOK: &str =
    "query Book($id: ID!) { book(id: $id) { id title author { id name } category { name } } }";
const TWO_BOOKS: &str =
    "query Two($a: ID!, $b: ID!) { a: book(id: $a) { title } b: book(id: $b) { title } }";
const UPDATE_TITLE: &str =
    "mutation($id: ID!, $t: String!) { updateBook(id: $id, input: { title: $t }) { title } }";
const MY_BORROWS: &str =
    "query Mine { me { email } myBorrows { totalCount items { book { title } } } }";
const BORROW: &str = "mutation($b: ID!) { borrowBook(bookId: $b) { id } }";
const FIRST_PAGE: &str =
    "query First { books(page: 1, pageSize: 20) { totalCount items { id title } } }";

fn responses(app: &TestApp) -> ResponseCounts {
    app.cache.metrics().responses()
}

/// Reads of books from L1, all tiers: an execution that ran any book
/// resolver moves it.
fn book_reads(app: &TestApp) -> u64 {
    let book = app.cache.metrics().kind(Kind::Book);
    book.l1_hits + book.l1_misses
}

async fn title(app: &TestApp, id: &str) -> String {
    app.data(None, BOOK, json!({ "id": id })).await["book"]["title"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_repeated_query_is_answered_from_the_kept_answer_without_executing() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let id = &cat.books[0];
    let before = responses(&app);
    let first = app.data(None, BOOK, json!({ "id": id })).await;
    let after_first = responses(&app);
    assert_eq!(after_first.misses - before.misses, 1);
    assert_eq!(after_first.stored - before.stored, 1, "the answer was kept");

    let (sql, reads) = (app.statements(), book_reads(&app));
    let second = app.data(None, BOOK, json!({ "id": id })).await;
    assert_eq!(second, first);
    let after_second = responses(&app);
    assert_eq!(after_second.hits - after_first.hits, 1, "a hit");
    assert_eq!(app.statements() - sql, 0, "no SQL");
    assert_eq!(book_reads(&app) - reads, 0, "no resolver ran");
}

#[tokio::test]
async fn a_write_is_seen_by_the_next_read_on_the_writer_at_once() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let id = &cat.books[0];
    assert_eq!(title(&app, id).await, "Book 000");
    assert_eq!(title(&app, id).await, "Book 000");
    let hits = responses(&app).hits;
    app.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": id, "t": "Renamed" }),
    )
    .await;
    assert_eq!(title(&app, id).await, "Renamed");
    assert_eq!(responses(&app).hits, hits, "the kept answer was not served");
    assert_eq!(title(&app, id).await, "Renamed");
    assert_eq!(responses(&app).hits - hits, 1, "the new answer is kept");
}

#[tokio::test]
async fn a_write_that_touches_only_a_related_entity_drops_the_answer_too() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let id = &cat.books[0];
    app.data(None, BOOK, json!({ "id": id })).await;
    app.data(
        Some(&cat.librarian),
        "mutation($id: ID!) { updateAuthor(id: $id, input: { name: \"Renamed Author\" }) { id } }",
        json!({ "id": cat.authors[0] }),
    )
    .await;
    let book = app.data(None, BOOK, json!({ "id": id })).await;
    assert_eq!(book["book"]["author"]["name"], "Renamed Author");
}

#[tokio::test]
async fn a_write_on_another_replica_drops_the_kept_answer_when_its_event_arrives() {
    let (replicas, _redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let cat = catalogue(a, 1).await;
    let id = &cat.books[0];
    // A's catalogue writes reach B as events; an answer that one overtook
    // is (rightly) not kept, so read until one is.
    eventually(|| async {
        assert_eq!(title(b, id).await, "Book 000");
        responses(b).stored > 0
    })
    .await;
    let hits = responses(b).hits;
    assert_eq!(title(b, id).await, "Book 000");
    assert_eq!(responses(b).hits - hits, 1, "B keeps its answer");
    let events = b.cache.metrics().events_received();
    a.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": id, "t": "Renamed" }),
    )
    .await;
    eventually(|| async { b.cache.metrics().events_received() != events }).await;
    assert_eq!(title(b, id).await, "Renamed");
    assert_eq!(responses(b).hits - hits, 1, "the old answer was not served");
}

#[tokio::test]
async fn an_answer_that_a_write_overtook_between_its_reads_and_its_store_is_not_kept() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 2).await;
    let (warm, cold) = (&cat.books[0], &cat.books[1]);
    // Book A in L1 (read through a different query, so no answer to this
    // one is kept); book B cold.
    title(&app, warm).await;

    // The execution reads A from L1, then holds while loading B.
    let pause = app.cache.pause_next_fill(&format!("book:{cold}"));
    let (client, url) = (app.client.clone(), app.graphql_url());
    let body = json!({ "query": TWO_BOOKS, "variables": { "a": warm, "b": cold } });
    let reader = tokio::spawn(async move {
        let response = client.post(url).json(&body).send().await.unwrap();
        response.json::<Value>().await.unwrap()
    });
    pause.reached().await;
    let before = responses(&app);
    app.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": warm, "t": "Renamed" }),
    )
    .await;
    pause.release();
    let old = reader.await.unwrap();
    assert_eq!(
        old["data"]["a"]["title"], "Book 000",
        "the reader answered with what it read before the write"
    );
    let after = responses(&app);
    assert_eq!(after.stored, before.stored, "that answer was not kept");
    assert_eq!(after.refused - before.refused, 1);

    let again = app
        .data(None, TWO_BOOKS, json!({ "a": warm, "b": cold }))
        .await;
    assert_eq!(again["a"]["title"], "Renamed");
}

#[tokio::test]
async fn an_answer_is_kept_when_a_write_during_its_execution_changed_nothing_it_read() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 3).await;
    let (warm, cold, other) = (&cat.books[0], &cat.books[1], &cat.books[2]);
    title(&app, warm).await;

    // As above, but the write retitles a third book: under a steady stream
    // of writes, an answer that waited for no write of its own reads must
    // still be kept, or slow answers would never be.
    let pause = app.cache.pause_next_fill(&format!("book:{cold}"));
    let (client, url) = (app.client.clone(), app.graphql_url());
    let body = json!({ "query": TWO_BOOKS, "variables": { "a": warm, "b": cold } });
    let reader = tokio::spawn(async move {
        let response = client.post(url).json(&body).send().await.unwrap();
        response.json::<Value>().await.unwrap()
    });
    pause.reached().await;
    let before = responses(&app);
    app.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": other, "t": "Renamed" }),
    )
    .await;
    pause.release();
    let first = reader.await.unwrap();
    let after = responses(&app);
    assert_eq!(after.refused - before.refused, 0);
    assert_eq!(after.stored - before.stored, 1, "the answer was kept");

    let (sql, reads) = (app.statements(), book_reads(&app));
    let again = app
        .data(None, TWO_BOOKS, json!({ "a": warm, "b": cold }))
        .await;
    assert_eq!(again, first["data"]);
    assert_eq!(responses(&app).hits - after.hits, 1, "a hit");
    assert_eq!((app.statements() - sql, book_reads(&app) - reads), (0, 0));
}

#[tokio::test]
async fn a_members_answers_are_kept_for_that_member_alone() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 2).await;
    let ann = app.member("ann@biblio.test").await;
    let bob = app.member("bob@biblio.test").await;
    app.data(Some(&ann), BORROW, json!({ "b": cat.books[0] }))
        .await;
    app.data(Some(&bob), BORROW, json!({ "b": cat.books[1] }))
        .await;

    let first = app.data(Some(&ann), MY_BORROWS, json!({})).await;
    let hits = responses(&app).hits;
    let again = app.data(Some(&ann), MY_BORROWS, json!({})).await;
    assert_eq!(again, first);
    assert_eq!(
        responses(&app).hits - hits,
        1,
        "Ann's answer is kept for Ann"
    );

    let bobs = app.data(Some(&bob), MY_BORROWS, json!({})).await;
    assert_eq!(bobs["me"]["email"], "bob@biblio.test");
    assert_eq!(bobs["myBorrows"]["items"][0]["book"]["title"], "Book 001");
    assert_eq!(responses(&app).hits - hits, 1, "Bob's was executed");

    let (_, anonymous) = app.post(None, MY_BORROWS, json!({})).await;
    assert_eq!(
        anonymous["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{anonymous}"
    );
    assert_eq!(responses(&app).hits - hits, 1, "nobody else got Ann's");
}

#[tokio::test]
async fn an_answer_that_read_who_asks_is_not_shared_even_without_private_data() {
    let app = spawn_app().await;
    let ann = app.member("ann@biblio.test").await;
    let query = "{ me { id } categories { name } }";
    let signed_in = app.data(Some(&ann), query, json!({})).await;
    assert!(signed_in["me"]["id"].is_string());
    let anonymous = app.data(None, query, json!({})).await;
    assert_eq!(anonymous["me"], Value::Null);
    let again = app.data(None, query, json!({})).await;
    assert_eq!(again["me"], Value::Null);
}

#[tokio::test]
async fn a_public_answer_is_shared_by_every_viewer_and_marked_private_for_the_signed_in() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let ann = app.member("ann@biblio.test").await;
    let send = |token: Option<String>| {
        let mut request = app
            .client
            .post(app.graphql_url())
            .json(&json!({ "query": BOOK, "variables": { "id": cat.books[0] } }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let anonymous = send(None).await.unwrap();
    assert_eq!(
        anonymous.headers()["cache-control"],
        "public, max-age=0, must-revalidate"
    );
    let hits = responses(&app).hits;
    let member = send(Some(ann)).await.unwrap();
    assert_eq!(
        responses(&app).hits - hits,
        1,
        "the member got the kept answer"
    );
    assert_eq!(member.headers()["cache-control"], "private, no-cache");
    assert_eq!(
        member.headers()["vary"],
        "Authorization, Accept, Accept-Encoding"
    );
}

#[tokio::test]
async fn a_revalidation_with_a_current_etag_is_answered_304_without_executing() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let id = &cat.books[0];
    let get = |etag: Option<&str>| {
        let mut request = app.client.get(app.graphql_url()).query(&[
            ("query", BOOK),
            ("variables", &json!({ "id": id }).to_string()),
        ]);
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };
    let first = get(None).await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();

    let (sql, reads, before) = (app.statements(), book_reads(&app), responses(&app));
    let revalidated = get(Some(&etag)).await.unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"], etag.as_str());
    let after = responses(&app);
    assert_eq!(after.not_modified - before.not_modified, 1);
    assert_eq!(after.hits - before.hits, 1);
    assert_eq!(
        (app.statements(), book_reads(&app)),
        (sql, reads),
        "nothing ran"
    );

    app.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": id, "t": "Renamed" }),
    )
    .await;
    let changed = get(Some(&etag)).await.unwrap();
    assert_eq!(changed.status(), 200, "the old copy is stale");
    assert_ne!(changed.headers()["etag"], etag.as_str());
}

#[tokio::test]
async fn answers_with_errors_are_never_kept() {
    let app = spawn_app().await;
    let before = responses(&app);
    for _ in 0..2 {
        let (_, body) = app
            .post(None, "{ book(id: \"nope\") { id } }", json!({}))
            .await;
        assert!(body["errors"].is_array(), "{body}");
    }
    let after = responses(&app);
    assert_eq!(after.stored, before.stored);
    assert_eq!(after.hits, before.hits);
    assert_eq!(after.misses - before.misses, 2);
}

#[tokio::test]
async fn with_the_response_cache_off_every_query_executes() {
    let app = TestApp::builder()
        .configure(|config| config.response_cache = None)
        .spawn()
        .await;
    let cat = catalogue(&app, 1).await;
    let id = &cat.books[0];
    title(&app, id).await;
    let reads = book_reads(&app);
    title(&app, id).await;
    assert_eq!(responses(&app), ResponseCounts::default());
    assert_eq!(book_reads(&app) - reads, 1, "executed: L1 answered");
}

#[tokio::test]
async fn http_max_age_lets_shared_caches_keep_answers_for_that_long() {
    let app = TestApp::builder()
        .configure(|config| config.http_max_age = 30)
        .spawn()
        .await;
    let response = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": "{ categories { name } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=30, stale-while-revalidate=30"
    );
}

const PAGE: &str = "query Books($page: Int!) { books(page: $page, pageSize: 20) { items { id title price author { name } category { name } } totalCount } }";

fn decompress(coding: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        "br" => {
            brotli::Decompressor::new(bytes, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "gzip" => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(bytes).unwrap(),
        other => panic!("unexpected coding {other}"),
    }
    out
}

#[tokio::test]
async fn a_large_answer_is_sent_in_each_accepted_coding_and_compressed_once_per_coding() {
    let app = spawn_app().await;
    catalogue(&app, 20).await;
    let send = |accept: &'static str, etag: Option<String>| {
        let mut request = app
            .client
            .post(app.graphql_url())
            .header("accept-encoding", accept)
            .json(&json!({ "query": PAGE, "variables": { "page": 1 } }));
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };
    let plain = send("identity", None).await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 1024, "the page is worth compressing");

    let mut etags = vec![plain_etag];
    for coding in ["br", "gzip", "zstd"] {
        let before = responses(&app);
        for _ in 0..3 {
            let coded = send(coding, None).await.unwrap();
            assert_eq!(coded.headers()["content-encoding"], coding);
            assert_eq!(
                coded.headers()["vary"],
                "Authorization, Accept, Accept-Encoding"
            );
            let etag = coded.headers()["etag"].to_str().unwrap().to_owned();
            let bytes = coded.bytes().await.unwrap();
            assert!(
                bytes.len() < plain.len() / 2,
                "{coding}: {} bytes",
                bytes.len()
            );
            assert_eq!(decompress(coding, &bytes), plain, "{coding}");
            if !etags.contains(&etag) {
                etags.push(etag);
            }
        }
        let after = responses(&app);
        assert_eq!(after.hits - before.hits, 3, "{coding}: kept answers");
        assert_eq!(after.compressed - before.compressed, 1, "{coding}: once");
    }
    assert_eq!(etags.len(), 4, "each representation has its own tag");

    // Over POST a matching tag is a failed precondition (412).
    let matched = send("br", Some(etags[1].clone())).await.unwrap();
    assert_eq!(matched.status(), 412, "the br tag names the br bytes");
    let other_coding = send("gzip", Some(etags[1].clone())).await.unwrap();
    assert_eq!(
        other_coding.status(),
        200,
        "a br tag does not name the gzip bytes"
    );
}

#[tokio::test]
async fn a_small_answer_is_sent_as_it_is() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.graphql_url())
        .header("accept-encoding", "br, gzip, zstd")
        .json(&json!({ "query": "{ categories { name } }" }))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]["categories"],
        json!([])
    );
}

/// Starts `n` anonymous `FIRST_PAGE` requests.
fn first_pages(app: &TestApp, n: usize) -> Vec<tokio::task::JoinHandle<Value>> {
    (0..n)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.graphql_url());
            tokio::spawn(async move {
                let body = json!({ "query": FIRST_PAGE });
                let response = client.post(url).json(&body).send().await.unwrap();
                response.json::<Value>().await.unwrap()
            })
        })
        .collect()
}

#[tokio::test]
async fn concurrent_misses_of_one_query_execute_once_and_share_its_answer() {
    let app = spawn_app().await;
    catalogue(&app, 3).await;
    let before = responses(&app);
    let loads = app.cache.metrics().kind(Kind::BookPage).loads;

    // The first request holds while filling the page; five more arrive.
    let pause = app.cache.pause_next_fill("books");
    let leader = first_pages(&app, 1);
    pause.reached().await;
    let followers = first_pages(&app, 5);
    eventually(|| async { responses(&app).waited - before.waited == 5 }).await;
    pause.release();

    let mut answers = Vec::new();
    for request in leader.into_iter().chain(followers) {
        answers.push(request.await.unwrap());
    }
    assert!(
        answers[0]["data"]["books"]["totalCount"] == 3,
        "{}",
        answers[0]
    );
    assert!(answers.iter().all(|answer| *answer == answers[0]));
    let after = responses(&app);
    assert_eq!(after.misses - before.misses, 1, "one execution");
    assert_eq!(after.joined - before.joined, 5, "five answered by it");
    assert_eq!(after.stored - before.stored, 1);
    assert_eq!(
        app.cache.metrics().kind(Kind::BookPage).loads - loads,
        1,
        "the page was read from the database once"
    );
}

#[tokio::test]
async fn requests_waiting_on_an_execution_a_write_overtook_wait_for_one_of_them_to_execute_it() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 3).await;
    let before = responses(&app);

    // The leader reads the page, then holds; a write renames a book on it.
    let pause = app.cache.pause_next_fill("books");
    let leader = first_pages(&app, 1);
    pause.reached().await;
    let followers = first_pages(&app, 3);
    eventually(|| async { responses(&app).waited - before.waited == 3 }).await;
    app.data(
        Some(&cat.librarian),
        UPDATE_TITLE,
        json!({ "id": cat.books[0], "t": "Renamed" }),
    )
    .await;
    pause.release();

    leader.into_iter().next().unwrap().await.unwrap();
    for follower in followers {
        let answer = follower.await.unwrap();
        let titles: Vec<&str> = answer["data"]["books"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|book| book["title"].as_str().unwrap())
            .collect();
        assert!(titles.contains(&"Renamed"), "{answer}");
    }
    let after = responses(&app);
    // Each request counted once: a miss if it executed, a hit or a join if
    // not, and a wait at most once however many executions it waited for.
    assert_eq!(
        after.misses - before.misses,
        2,
        "the leader executed, and one follower after it (no follower was \
         served its overtaken answer): {after:?}"
    );
    // The other two were answered by what that follower kept, having
    // waited for it or found it kept.
    assert_eq!(
        (after.joined - before.joined) + (after.hits - before.hits),
        2,
        "{after:?}"
    );
    assert_eq!(after.waited - before.waited, 3, "{after:?}");
    assert_eq!(after.stored - before.stored, 1, "{after:?}");
}
