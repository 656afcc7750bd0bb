use crate::helpers::{catalogue, spawn_app, NewBook, TestApp};
use serde_json::json;
use uuid::Uuid;

const BOOK: &str = "query($id: ID!) { book(id: $id) { id title isbn price copiesTotal copiesAvailable publishedYear author { name } category { name } createdAt updatedAt } }";

#[tokio::test]
async fn a_book_is_read_by_id_with_its_author_and_category() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let data = app.data(None, BOOK, json!({ "id": cat.books[0] })).await;
    let book = &data["book"];
    assert_eq!(book["title"], "Book 000");
    assert_eq!(book["price"], "10.00");
    assert_eq!(book["copiesTotal"], 2);
    assert_eq!(book["copiesAvailable"], 2);
    assert_eq!(book["author"]["name"], "Ursula K. Le Guin");
    assert_eq!(book["category"]["name"], "Science Fiction");
    assert!(chrono::DateTime::parse_from_rfc3339(book["createdAt"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn an_absent_book_is_null_and_a_malformed_id_is_bad_input() {
    let app = spawn_app().await;
    let data = app.data(None, BOOK, json!({ "id": Uuid::now_v7() })).await;
    assert!(data["book"].is_null());
    assert_eq!(
        app.error_code(None, BOOK, json!({ "id": "42" })).await,
        "BAD_USER_INPUT"
    );
}

#[tokio::test]
async fn a_page_of_twenty_books_with_authors_and_categories_costs_three_statements() {
    let app = spawn_app().await;
    catalogue(&app, 25).await;
    let before = app.statements();
    let data = app
        .data(None, "{ books(pageSize: 20) { totalCount items { title author { name } category { name } } } }", json!({}))
        .await;
    let statements = app.statements() - before;
    assert_eq!(data["books"]["items"].as_array().unwrap().len(), 20);
    assert_eq!(data["books"]["totalCount"], 25);
    assert!(
        statements <= 3,
        "a page of 20 took {statements} statements, not at most 3 (page, authors, categories)"
    );
}

#[tokio::test]
async fn author_and_category_book_counts_are_batched() {
    let app = spawn_app().await;
    catalogue(&app, 6).await;
    let before = app.statements();
    let data = app
        .data(
            None,
            "{ authors { items { name bookCount } } categories { name bookCount } }",
            json!({}),
        )
        .await;
    let statements = app.statements() - before;
    let counts: Vec<i64> = data["authors"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["bookCount"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![3, 3]);
    assert_eq!(
        data["categories"][0]["bookCount"].as_i64().unwrap()
            + data["categories"][1]["bookCount"].as_i64().unwrap(),
        6
    );
    assert!(statements <= 4, "took {statements} statements");
}

#[tokio::test]
async fn pages_report_their_position_and_past_the_end_is_empty() {
    let app = spawn_app().await;
    catalogue(&app, 5).await;
    let query = "query($p: Int!) { books(page: $p, pageSize: 2) { items { title } totalCount page pageSize totalPages hasNextPage } }";
    let first = app.data(None, query, json!({ "p": 1 })).await["books"].clone();
    assert_eq!(first["totalCount"], 5);
    assert_eq!(first["totalPages"], 3);
    assert_eq!(first["hasNextPage"], true);
    assert_eq!(first["items"][0]["title"], "Book 000");
    let last = app.data(None, query, json!({ "p": 3 })).await["books"].clone();
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert_eq!(last["hasNextPage"], false);
    let beyond = app.data(None, query, json!({ "p": 9 })).await["books"].clone();
    assert_eq!(beyond["items"].as_array().unwrap().len(), 0);
    assert_eq!(beyond["totalCount"], 5);
}

#[tokio::test]
async fn out_of_range_pages_are_bad_input() {
    let app = spawn_app().await;
    for (page, size) in [(0, 20), (1, 0), (1, 101)] {
        let code = app
            .error_code(
                None,
                "query($p: Int!, $s: Int!) { books(page: $p, pageSize: $s) { totalCount } }",
                json!({ "p": page, "s": size }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "page {page} size {size}");
    }
}

#[tokio::test]
async fn books_are_filtered_and_ordered() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 6).await;
    // Price the books 10.00, 11.00, ...; give book 5 a year, and lend out book 0 entirely.
    for (i, id) in cat.books.iter().enumerate() {
        app.data(
            Some(&cat.librarian),
            "mutation($id: ID!, $input: UpdateBookInput!) { updateBook(id: $id, input: $input) { id } }",
            json!({ "id": id, "input": { "price": format!("{}.00", 10 + i), "publishedYear": 2000 + i as i32 } }),
        )
        .await;
    }
    let titles = |data: &serde_json::Value| -> Vec<String> {
        data["books"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let by_author = app
        .data(
            None,
            "query($a: ID!) { books(filter: { authorId: $a }) { items { title } } }",
            json!({ "a": cat.authors[1] }),
        )
        .await;
    assert_eq!(titles(&by_author), vec!["Book 001", "Book 003", "Book 005"]);
    let priced = app
        .data(None, r#"{ books(filter: { minPrice: "11.00", maxPrice: "13.00" }, orderBy: PRICE_DESC) { items { title } } }"#, json!({}))
        .await;
    assert_eq!(titles(&priced), vec!["Book 003", "Book 002", "Book 001"]);
    let years = app
        .data(None, "{ books(filter: { publishedFrom: 2004 }, orderBy: PUBLISHED_DESC) { items { title } } }", json!({}))
        .await;
    assert_eq!(titles(&years), vec!["Book 005", "Book 004"]);
    let desc = app
        .data(
            None,
            "{ books(orderBy: TITLE_DESC, pageSize: 2) { items { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(titles(&desc), vec!["Book 005", "Book 004"]);
    let newest = app
        .data(
            None,
            "{ books(orderBy: NEWEST, pageSize: 1) { items { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(titles(&newest), vec!["Book 005"]);

    let member = app.member("reader@example.org").await;
    let other = app.member("other@example.org").await;
    for token in [&member, &other] {
        app.data(
            Some(token),
            "mutation($b: ID!) { borrowBook(bookId: $b) { id } }",
            json!({ "b": cat.books[0] }),
        )
        .await;
    }
    let unavailable = app
        .data(
            None,
            "{ books(filter: { available: false }) { items { title } } }",
            json!({}),
        )
        .await;
    assert_eq!(titles(&unavailable), vec!["Book 000"]);
    let available = app
        .data(
            None,
            "{ books(filter: { available: true }) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(available["books"]["totalCount"], 5);
}

#[tokio::test]
async fn bad_filters_are_bad_input() {
    let app = spawn_app().await;
    for filter in [
        r#"{ minPrice: "-1" }"#,
        r#"{ minPrice: "5", maxPrice: "1" }"#,
        r#"{ authorId: "nope" }"#,
        r#"{ minPrice: "abc" }"#,
    ] {
        let query = format!("{{ books(filter: {filter}) {{ totalCount }} }}");
        assert_eq!(
            app.error_code(None, &query, json!({})).await,
            "BAD_USER_INPUT",
            "{filter}"
        );
    }
}

#[tokio::test]
async fn search_matches_title_or_author_case_insensitively() {
    let app = spawn_app().await;
    let librarian = app.librarian().await;
    let le_guin = app.create_author(&librarian, "Ursula K. Le Guin").await;
    let lem = app.create_author(&librarian, "Stanisław Lem").await;
    let sf = app.create_category(&librarian, "Science Fiction").await;
    for (title, n, author) in [
        ("The Dispossessed", 1, &le_guin),
        ("Solaris", 2, &lem),
        ("100% Pure_Fiction", 3, &lem),
    ] {
        let book = NewBook {
            title,
            n,
            author,
            category: &sf,
            copies: 1,
        };
        app.create_book(&librarian, book).await;
    }
    let search = |q: &'static str| {
        let app = &app;
        async move {
            let data = app
                .data(
                    None,
                    "query($q: String!) { searchBooks(query: $q) { totalCount items { title } } }",
                    json!({ "q": q }),
                )
                .await;
            data["searchBooks"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("  dISPOSSESSED ").await, vec!["The Dispossessed"]);
    assert_eq!(search("le guin").await, vec!["The Dispossessed"]);
    assert_eq!(search("lem").await, vec!["100% Pure_Fiction", "Solaris"]);
    assert_eq!(search("0% p").await, vec!["100% Pure_Fiction"]);
    assert!(
        search("%").await.len() == 1,
        "% matches itself, not everything"
    );
    assert!(search("nothing like this").await.is_empty());
}

#[tokio::test]
async fn empty_and_overlong_search_text_is_bad_input() {
    let app = spawn_app().await;
    let query = "query($q: String!) { searchBooks(query: $q) { totalCount } }";
    assert_eq!(
        app.error_code(None, query, json!({ "q": "   " })).await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.error_code(None, query, json!({ "q": "x".repeat(200) }))
            .await,
        "BAD_USER_INPUT"
    );
}

#[tokio::test]
async fn authors_and_categories_are_listed_and_read_by_id() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 4).await;
    let data = app
        .data(
            None,
            "query($a: ID!, $c: ID!) { author(id: $a) { name bio bookCount books(pageSize: 1) { totalCount items { title } } } category(id: $c) { name bookCount } authors { totalCount items { name } } categories { name } }",
            json!({ "a": cat.authors[0], "c": cat.categories[1] }),
        )
        .await;
    assert_eq!(data["author"]["name"], "Ursula K. Le Guin");
    assert!(data["author"]["bio"].is_null());
    assert_eq!(data["author"]["bookCount"], 2);
    assert_eq!(data["author"]["books"]["totalCount"], 2);
    assert_eq!(data["author"]["books"]["items"][0]["title"], "Book 000");
    assert_eq!(data["category"]["name"], "Philosophy");
    assert_eq!(data["category"]["bookCount"], 2);
    assert_eq!(data["authors"]["totalCount"], 2);
    assert_eq!(data["authors"]["items"][0]["name"], "Stanisław Lem");
    assert_eq!(data["categories"][0]["name"], "Philosophy");
    let missing = app
        .data(
            None,
            "query($id: ID!) { author(id: $id) { name } category(id: $id) { name } }",
            json!({ "id": Uuid::now_v7() }),
        )
        .await;
    assert!(missing["author"].is_null() && missing["category"].is_null());
}

#[tokio::test]
async fn statistics_are_library_wide_aggregates() {
    let app = spawn_app().await;
    let empty = app
        .data(
            None,
            "{ statistics { totalBooks averagePrice booksByCategory { count } } }",
            json!({}),
        )
        .await;
    assert_eq!(empty["statistics"]["totalBooks"], 0);
    assert!(empty["statistics"]["averagePrice"].is_null());

    let cat = catalogue(&app, 3).await;
    app.data(
        Some(&cat.librarian),
        "mutation($id: ID!) { updateBook(id: $id, input: { price: \"12.25\" }) { id } }",
        json!({ "id": cat.books[2] }),
    )
    .await;
    let member = app.member("stats@example.org").await;
    app.data(
        Some(&member),
        "mutation($b: ID!) { borrowBook(bookId: $b) { id } }",
        json!({ "b": cat.books[0] }),
    )
    .await;
    let before = app.statements();
    let data = app
        .data(
            None,
            "{ statistics { totalBooks totalAuthors totalCategories totalMembers activeBorrows averagePrice booksByCategory { category { name } count } } }",
            json!({}),
        )
        .await;
    let statements = app.statements() - before;
    let stats = &data["statistics"];
    assert_eq!(stats["totalBooks"], 3);
    assert_eq!(stats["totalAuthors"], 2);
    assert_eq!(stats["totalCategories"], 2);
    assert_eq!(stats["totalMembers"], 1, "librarians are not members");
    assert_eq!(stats["activeBorrows"], 1);
    // (10.00 + 10.00 + 12.25) / 3 = 10.75
    assert_eq!(stats["averagePrice"], "10.75");
    assert_eq!(
        stats["booksByCategory"],
        json!([
            { "category": { "name": "Philosophy" }, "count": 1 },
            { "category": { "name": "Science Fiction" }, "count": 2 },
        ])
    );
    // Two aggregates, and one batch for the categories (not yet cached).
    assert!(statements <= 3, "statistics took {statements} statements");
}

/// The object keys of a JSON text, in the order they are written.
fn keys_in_order(body: &str) -> Vec<&str> {
    let mut keys = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        let (token, tail) = (&after[..end], &after[end + 1..]);
        if tail.starts_with(':') {
            keys.push(token);
        }
        rest = tail;
    }
    keys
}

#[tokio::test]
async fn fields_come_back_in_selection_order_on_a_cold_cache() {
    // On a cold cache `author` and `category` wait for their loaders while
    // the plain fields are ready at once, so each query runs first thing
    // on a replica of its own with an empty L1 and an empty Redis.
    let app = spawn_app().await;
    catalogue(&app, 6).await;
    let selections: [&[&str]; 3] = [
        &["id", "title", "author", "category"],
        &["category", "author", "title"],
        &["author", "id", "category", "isbn"],
    ];
    for _ in 0..3 {
        for selection in selections {
            let fields = selection
                .iter()
                .map(|field| match *field {
                    "author" | "category" => format!("{field} {{ name }}"),
                    plain => plain.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ");
            let query = format!("{{ books {{ totalCount items {{ {fields} }} }} }}");
            let cold = TestApp::builder()
                .shared_database(&app.database_url)
                .spawn()
                .await;
            let body = cold
                .client
                .post(cold.graphql_url())
                .json(&json!({ "query": query }))
                .send()
                .await
                .expect("the request is sent")
                .text()
                .await
                .expect("a body");
            let written: Vec<&str> = keys_in_order(&body)
                .into_iter()
                .filter(|key| selection.contains(key))
                .collect();
            let expected: Vec<&str> = selection.repeat(6);
            assert_eq!(written, expected, "{query}: {body}");
        }
    }
}
