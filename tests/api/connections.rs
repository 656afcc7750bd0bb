//! Relay connections: every order walked both ways equals its pages,
//! cursors survive writes, and bad arguments are refused before any
//! database work.
use crate::helpers::{isbn, spawn_app, TestApp};
use serde_json::{json, Value};

const ORDERS: [&str; 6] = [
    "TITLE_ASC",
    "TITLE_DESC",
    "PRICE_ASC",
    "PRICE_DESC",
    "PUBLISHED_DESC",
    "NEWEST",
];

const CONNECTION: &str = "query($first: Int, $after: String, $last: Int, $before: String, \
     $filter: BookFilter, $order: BookOrder) { \
     booksConnection(first: $first, after: $after, last: $last, before: $before, \
     filter: $filter, orderBy: $order) { totalCount \
     pageInfo { hasNextPage hasPreviousPage startCursor endCursor } \
     edges { cursor node { id title } } } }";

const PAGE: &str = "query($filter: BookFilter, $order: BookOrder) { \
     books(filter: $filter, orderBy: $order, page: 1, pageSize: 100) { totalCount items { id } } }";

/// A catalogue built for ties: titles, prices and years repeat (some years
/// are missing), so every order leans on its later columns and the id.
/// Returns (librarian, category ids, book ids).
async fn tied_catalogue(app: &TestApp, books: usize) -> (String, Vec<String>, Vec<String>) {
    let librarian = app.librarian().await;
    let author = app.create_author(&librarian, "Ursula K. Le Guin").await;
    let categories = vec![
        app.create_category(&librarian, "Science Fiction").await,
        app.create_category(&librarian, "Poetry").await,
    ];
    let mut ids = Vec::new();
    for i in 0..books {
        ids.push(create(app, &librarian, &author, &categories[i % 2], i as u64, i).await);
    }
    (librarian, categories, ids)
}

async fn create(
    app: &TestApp,
    librarian: &str,
    author: &str,
    category: &str,
    n: u64,
    i: usize,
) -> String {
    let titles = ["Earthsea", "Solaris", "Kindred", "Ubik"];
    let years = [Value::Null, json!(1968), json!(1972)];
    let price = ["5.00", "12.50"][(i / 2) % 2];
    let data = app
        .data(
            Some(librarian),
            "mutation($input: CreateBookInput!) { createBook(input: $input) { id } }",
            json!({ "input": {
                "title": titles[i % titles.len()], "isbn": isbn(n),
                "price": price,
                "publishedYear": years[i % years.len()],
                "copiesTotal": 1, "authorId": author, "categoryId": category,
            } }),
        )
        .await;
    data["createBook"]["id"].as_str().unwrap().to_owned()
}

/// The ids of the whole list, by `books` pages.
async fn paged_ids(app: &TestApp, filter: &Value, order: &str) -> Vec<String> {
    let data = app
        .data(None, PAGE, json!({ "filter": filter, "order": order }))
        .await;
    ids_of(&data["books"]["items"], |item| item)
}

fn ids_of(items: &Value, node: impl Fn(&Value) -> &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| node(item)["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn connection(app: &TestApp, variables: Value) -> Value {
    app.data(None, CONNECTION, variables).await["booksConnection"].clone()
}

/// Walks the whole list with slices of `size`, forward from the start or
/// backward from the end; returns the ids in list order, checking every
/// slice's page info and total on the way.
async fn walk(app: &TestApp, filter: &Value, order: &str, size: i64, forward: bool) -> Vec<String> {
    let base = json!({ "filter": filter, "order": order });
    walk_connection(
        app,
        None,
        CONNECTION,
        &base,
        "/booksConnection",
        size,
        forward,
    )
    .await
}

/// Walks the connection at `path` of `query` (which takes `$first`,
/// `$after`, `$last`, `$before` and selects `totalCount`, `pageInfo` and
/// `edges { cursor node { id } }`) with `variables` besides.
async fn walk_connection(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: &Value,
    path: &str,
    size: i64,
    forward: bool,
) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), Value::Null);
    let mut slices = 0;
    loop {
        let mut variables = variables.clone();
        if forward {
            variables["first"] = json!(size);
            variables["after"] = cursor;
        } else {
            variables["last"] = json!(size);
            variables["before"] = cursor;
        }
        let data = app.data(token, query, variables).await;
        let slice = data.pointer(path).expect("the connection").clone();
        let info = &slice["pageInfo"];
        let edges = slice["edges"].as_array().unwrap();
        let mut got = ids_of(&slice["edges"], |edge| &edge["node"]);
        assert!(got.len() <= size as usize, "{slice}");
        if let (Some(first), Some(last)) = (edges.first(), edges.last()) {
            assert_eq!(info["startCursor"], first["cursor"], "{slice}");
            assert_eq!(info["endCursor"], last["cursor"], "{slice}");
        }
        let (more, behind) = if forward {
            (&info["hasNextPage"], &info["hasPreviousPage"])
        } else {
            (&info["hasPreviousPage"], &info["hasNextPage"])
        };
        assert_eq!(behind, &json!(slices > 0), "{path} slice {slices}: {slice}");
        if forward {
            ids.append(&mut got);
        } else {
            got.append(&mut ids);
            ids = got;
        }
        slices += 1;
        assert!(slices < 100, "the walk never ends: {slice}");
        if more == &json!(false) {
            assert_eq!(
                slice["totalCount"].as_u64().unwrap() as usize,
                ids.len(),
                "{slice}"
            );
            return ids;
        }
        cursor = if forward {
            info["endCursor"].clone()
        } else {
            info["startCursor"].clone()
        };
    }
}

async fn every_order_walked_both_ways_equals_its_pages(app: &TestApp, categories: &[String]) {
    let filters = [
        json!({}),
        json!({ "categoryId": categories[0] }),
        json!({ "available": true, "minPrice": "6.00" }),
        // Bounds on the leading column of PRICE_* and PUBLISHED_DESC, which
        // the slices move to the cursor's key.
        json!({ "minPrice": "5.00", "maxPrice": "12.00" }),
        json!({ "publishedFrom": 1968, "publishedTo": 1972 }),
        json!({ "publishedTo": 1970 }),
    ];
    for filter in &filters {
        for order in ORDERS {
            let expected = paged_ids(app, filter, order).await;
            assert!(!expected.is_empty(), "{filter} {order}");
            for size in [1, 2, 5] {
                let forward = walk(app, filter, order, size, true).await;
                assert_eq!(forward, expected, "{order} {filter} first: {size}");
                let backward = walk(app, filter, order, size, false).await;
                assert_eq!(backward, expected, "{order} {filter} last: {size}");
            }
        }
    }
}

#[tokio::test]
async fn every_order_walked_forward_and_backward_equals_its_pages() {
    let app = spawn_app().await;
    let (_, categories, _) = tied_catalogue(&app, 13).await;
    every_order_walked_both_ways_equals_its_pages(&app, &categories).await;
}

#[tokio::test]
async fn every_order_walked_without_the_cache_equals_its_pages() {
    let app = TestApp::builder()
        .cache_mode(biblio::cache::Mode::Off)
        .spawn()
        .await;
    let (_, categories, _) = tied_catalogue(&app, 13).await;
    every_order_walked_both_ways_equals_its_pages(&app, &categories).await;
}

#[tokio::test]
async fn a_cursor_stays_a_position_after_inserts_and_the_deletion_of_its_own_book() {
    let app = spawn_app().await;
    let (librarian, categories, _) = tied_catalogue(&app, 9).await;
    let author = app.create_author(&librarian, "Stanisław Lem").await;
    for order in ORDERS {
        let first = connection(&app, json!({ "first": 4, "order": order })).await;
        let cursor = first["pageInfo"]["endCursor"].clone();
        let at = first["edges"][3]["node"]["id"].as_str().unwrap().to_owned();
        let before: Vec<String> = paged_ids(&app, &json!({}), order).await;
        let position = before.iter().position(|id| *id == at).unwrap();

        // Writes on both sides of the cursor, and of the cursor's book.
        let n = 1000 + ORDERS.iter().position(|o| *o == order).unwrap() as u64 * 10;
        for i in 0..4 {
            create(
                &app,
                &librarian,
                &author,
                &categories[0],
                n + i,
                i as usize + 1,
            )
            .await;
        }
        app.data(
            Some(&librarian),
            "mutation($id: ID!) { deleteBook(id: $id) }",
            json!({ "id": at }),
        )
        .await;

        let after = paged_ids(&app, &json!({}), order).await;
        // The books now after the cursor's position: those after it in the
        // new list that were after it before, or are new and sort after it.
        let old_after: Vec<&String> = before[position + 1..].iter().collect();
        let next = connection(
            &app,
            json!({ "first": 100, "after": cursor, "order": order }),
        )
        .await;
        let got = ids_of(&next["edges"], |edge| &edge["node"]);
        // Every book after the cursor before the writes is still after it,
        // in the same relative order, and the slice is a suffix of the list.
        assert!(
            after.ends_with(&got),
            "{order}: not a suffix of the list: {got:?} of {after:?}"
        );
        for id in &old_after {
            assert!(
                got.contains(id),
                "{order}: {id} went missing after the cursor"
            );
        }
        assert!(!got.contains(&at), "{order}: the deleted book came back");
        assert_eq!(next["pageInfo"]["hasPreviousPage"], true, "{next}");
        assert_eq!(next["pageInfo"]["hasNextPage"], false, "{next}");
        // And backward from the same cursor, the rest of the list.
        let back = connection(
            &app,
            json!({ "last": 100, "before": cursor, "order": order }),
        )
        .await;
        let mut whole = ids_of(&back["edges"], |edge| &edge["node"]);
        whole.extend(got);
        assert_eq!(
            whole, after,
            "{order}: before and after the cursor make the list"
        );
        assert_eq!(back["pageInfo"]["hasNextPage"], true, "{back}");
    }
}

#[tokio::test]
async fn bad_cursors_and_sizes_are_bad_user_input_before_any_statement() {
    let app = spawn_app().await;
    let (_, categories, _) = tied_catalogue(&app, 5).await;
    let slice = connection(&app, json!({ "first": 2, "order": "TITLE_ASC" })).await;
    let cursor = slice["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let mut versioned = base64_decode(&cursor);
    versioned[0] = versioned[0].wrapping_add(1);
    let mut flipped = base64_decode(&cursor);
    flipped[1] ^= 0x55; // in the list's fingerprint
    let cases = [
        ("garbage", json!({ "after": "not a cursor!" })),
        ("empty", json!({ "after": "" })),
        ("base64 of nothing", json!({ "after": "AAAA" })),
        ("truncated", json!({ "after": &cursor[..cursor.len() - 3] })),
        (
            "another version",
            json!({ "after": base64_encode(&versioned) }),
        ),
        (
            "a flipped byte",
            json!({ "after": base64_encode(&flipped) }),
        ),
        (
            "another order",
            json!({ "after": cursor, "order": "PRICE_ASC" }),
        ),
        (
            "another title order",
            json!({ "after": cursor, "order": "TITLE_DESC" }),
        ),
        (
            "another filter",
            json!({ "after": cursor, "filter": { "categoryId": categories[0] } }),
        ),
        ("huge", json!({ "after": "A".repeat(10_000) })),
        ("negative first", json!({ "first": -1 })),
        ("first over the page size", json!({ "first": 101 })),
        ("negative last", json!({ "last": -1 })),
        ("last over the page size", json!({ "last": 1000 })),
        ("first and last", json!({ "first": 2, "last": 2 })),
        (
            "after and before",
            json!({ "after": cursor, "before": cursor }),
        ),
        ("first with before", json!({ "first": 2, "before": cursor })),
        ("last with after", json!({ "last": 2, "after": cursor })),
    ];
    for (case, variables) in cases {
        let statements = app.statements();
        let (status, body) = app.post(None, CONNECTION, variables).await;
        assert_eq!(status, 200, "{case}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{case}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            !message.to_lowercase().contains("internal"),
            "{case}: {message}"
        );
        assert_eq!(app.statements(), statements, "{case} reached the database");
    }
    // The cursor itself still works where it belongs.
    connection(
        &app,
        json!({ "first": 2, "after": cursor, "order": "TITLE_ASC" }),
    )
    .await;
}

#[tokio::test]
async fn zero_items_still_tell_whether_more_lie_beyond() {
    let app = spawn_app().await;
    tied_catalogue(&app, 3).await;
    let none = connection(&app, json!({ "first": 0 })).await;
    assert_eq!(none["edges"], json!([]));
    assert_eq!(none["totalCount"], 3);
    assert_eq!(none["pageInfo"]["hasNextPage"], true);
    assert_eq!(none["pageInfo"]["hasPreviousPage"], false);
    assert!(none["pageInfo"]["endCursor"].is_null());
    let all = connection(&app, json!({ "first": 3 })).await;
    let end = all["pageInfo"]["endCursor"].clone();
    let past = connection(&app, json!({ "first": 5, "after": end })).await;
    assert_eq!(past["edges"], json!([]));
    assert_eq!(past["pageInfo"]["hasNextPage"], false);
    assert_eq!(past["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(past["totalCount"], 3);
}

#[tokio::test]
async fn a_cached_slice_is_read_again_without_a_statement_and_moves_with_a_write() {
    let app = spawn_app().await;
    let (librarian, categories, _) = tied_catalogue(&app, 4).await;
    let query = "{ booksConnection(first: 2) { totalCount edges { node { id title } } } }";
    let cold = app.data(None, query, json!({})).await;
    let statements = app.statements();
    let warm = app.data(None, query, json!({})).await;
    assert_eq!(warm, cold);
    assert_eq!(
        app.statements(),
        statements,
        "a warm slice read the database"
    );
    let author = app.create_author(&librarian, "Octavia E. Butler").await;
    app.data(
        Some(&librarian),
        "mutation($input: CreateBookInput!) { createBook(input: $input) { id } }",
        json!({ "input": {
            "title": "Aardvark", "isbn": isbn(77), "price": "1.00",
            "copiesTotal": 1, "authorId": author, "categoryId": categories[0],
        } }),
    )
    .await;
    let moved = app.data(None, query, json!({})).await;
    assert_eq!(moved["booksConnection"]["totalCount"], 5);
    assert_eq!(
        moved["booksConnection"]["edges"][0]["node"]["title"],
        "Aardvark"
    );
}

const SLICE: &str = "totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } \
                     edges { cursor node { id } }";

#[tokio::test]
async fn an_authors_books_search_results_and_my_borrows_walk_like_their_pages() {
    let app = spawn_app().await;
    let (_, _, books) = tied_catalogue(&app, 11).await;
    let author = app
        .data(None, "{ authors { items { id } } }", json!({}))
        .await["authors"]["items"][0]["id"]
        .clone();
    let member = app.member("reader@biblio.test").await;
    for book in books.iter().take(7) {
        app.data(
            Some(&member),
            "mutation($id: ID!) { borrowBook(bookId: $id) { id } }",
            json!({ "id": book }),
        )
        .await;
    }
    let cases = [
        (
            None,
            "query($id: ID!) { author(id: $id) { books(pageSize: 100) { items { id } } } }".to_owned(),
            format!("query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) \
                     {{ author(id: $id) {{ booksConnection(first: $first, after: $after, last: $last, \
                     before: $before) {{ {SLICE} }} }} }}"),
            json!({ "id": author }),
            "/author/books/items",
            "/author/booksConnection",
        ),
        (
            None,
            "query($q: String!) { searchBooks(query: $q, pageSize: 100) { items { id } } }".to_owned(),
            format!("query($q: String!, $first: Int, $after: String, $last: Int, $before: String) \
                     {{ searchBooksConnection(query: $q, first: $first, after: $after, last: $last, \
                     before: $before) {{ {SLICE} }} }}"),
            json!({ "q": "i" }),
            "/searchBooks/items",
            "/searchBooksConnection",
        ),
        // Three characters or more: the index's plan (FTS5, pg_trgm), here
        // matching through the author's name.
        (
            None,
            "query($q: String!) { searchBooks(query: $q, pageSize: 100) { items { id } } }".to_owned(),
            format!("query($q: String!, $first: Int, $after: String, $last: Int, $before: String) \
                     {{ searchBooksConnection(query: $q, first: $first, after: $after, last: $last, \
                     before: $before) {{ {SLICE} }} }}"),
            json!({ "q": "gui" }),
            "/searchBooks/items",
            "/searchBooksConnection",
        ),
        (
            Some(member.as_str()),
            "query($s: BorrowStatus) { myBorrows(status: $s, pageSize: 100) { items { id } } }".to_owned(),
            format!("query($s: BorrowStatus, $first: Int, $after: String, $last: Int, $before: String) \
                     {{ myBorrowsConnection(status: $s, first: $first, after: $after, last: $last, \
                     before: $before) {{ {SLICE} }} }}"),
            json!({ "s": "ACTIVE" }),
            "/myBorrows/items",
            "/myBorrowsConnection",
        ),
    ];
    for (token, page, connection, variables, items, path) in cases {
        let data = app.data(token, &page, variables.clone()).await;
        let expected = ids_of(data.pointer(items).unwrap(), |item| item);
        assert!(expected.len() > 3, "{page}: {expected:?}");
        for size in [1, 2, 4] {
            for forward in [true, false] {
                let walked =
                    walk_connection(&app, token, &connection, &variables, path, size, forward)
                        .await;
                assert_eq!(walked, expected, "{path} size {size} forward {forward}");
            }
        }
    }
}

#[tokio::test]
async fn a_cursor_of_another_member_search_or_status_is_bad_user_input() {
    let app = spawn_app().await;
    let (_, _, books) = tied_catalogue(&app, 4).await;
    let (ann, bob) = (
        app.member("ann@biblio.test").await,
        app.member("bob@biblio.test").await,
    );
    for (member, books) in [(&ann, &books[..2]), (&bob, &books[2..])] {
        for book in books {
            app.data(
                Some(member),
                "mutation($id: ID!) { borrowBook(bookId: $id) { id } }",
                json!({ "id": book }),
            )
            .await;
        }
    }
    let borrows = "query($s: BorrowStatus, $after: String) { myBorrowsConnection(status: $s, \
                   first: 1, after: $after) { pageInfo { endCursor } edges { node { id } } } }";
    let anns = app.data(Some(&ann), borrows, json!({})).await;
    let cursor = anns["myBorrowsConnection"]["pageInfo"]["endCursor"].clone();
    let next = app
        .data(Some(&ann), borrows, json!({ "after": cursor }))
        .await;
    assert_eq!(
        next["myBorrowsConnection"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for (token, variables) in [
        (&bob, json!({ "after": cursor })),
        (&ann, json!({ "after": cursor, "s": "ACTIVE" })),
    ] {
        assert_eq!(
            app.error_code(Some(token), borrows, variables).await,
            "BAD_USER_INPUT"
        );
    }
    let search = "query($q: String!, $after: String) { searchBooksConnection(query: $q, first: 1, \
                  after: $after) { pageInfo { endCursor } } }";
    let found = app.data(None, search, json!({ "q": "a" })).await;
    let cursor = found["searchBooksConnection"]["pageInfo"]["endCursor"].clone();
    app.data(None, search, json!({ "q": "A ", "after": cursor }))
        .await;
    assert_eq!(
        app.error_code(None, search, json!({ "q": "b", "after": cursor }))
            .await,
        "BAD_USER_INPUT"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("a cursor is base64url")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
