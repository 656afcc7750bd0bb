//! Careless or hostile values in arguments: each is refused with
//! `BAD_USER_INPUT` naming the field (never a panic, an `INTERNAL` error or
//! a value stored that cannot be read back honestly), on either database.
use crate::helpers::{catalogue, isbn, spawn_app, TestApp};
use serde_json::{json, Value};

/// Prices at or near the largest `Decimal`: multiplying them into cents
/// once overflowed and panicked.
const HUGE_PRICES: [&str; 3] = [
    "1e28",
    "79228162514264337593543950335",
    "792281625142643375935439503.35",
];

/// Characters that cannot be read (NUL, other C0/C1 controls) or that make
/// text display in another order than it is stored (bidirectional
/// embeddings, overrides and isolates).
const UNREADABLE: [&str; 6] = [
    "\u{0}", "\u{7}", "\u{9b}", "\u{202a}", "\u{202e}", "\u{2067}",
];

/// Sends `query` and returns the first error's code and message; the
/// request must not have failed with a server error.
async fn refusal(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> (String, String) {
    let (status, body) = app.post(token, query, variables).await;
    assert!(status < 500, "HTTP {status}: {body}");
    let error = &body["errors"][0];
    let code = error["extensions"]["code"].as_str();
    let message = error["message"].as_str();
    match (code, message) {
        (Some(code), Some(message)) => (code.to_owned(), message.to_owned()),
        _ => panic!("expected an error with a code: {body}"),
    }
}

#[tokio::test]
async fn a_price_filter_too_large_for_a_decimal_is_bad_input_not_a_panic() {
    let app = spawn_app().await;
    for price in HUGE_PRICES {
        for field in ["minPrice", "maxPrice"] {
            let query = format!("{{ books(filter: {{ {field}: \"{price}\" }}) {{ totalCount }} }}");
            let (code, message) = refusal(&app, None, &query, json!({})).await;
            assert_eq!(code, "BAD_USER_INPUT", "{field} {price}: {message}");
            assert!(message.contains(field), "{field} {price}: {message}");
        }
    }
}

#[tokio::test]
async fn a_book_priced_too_large_for_a_decimal_is_bad_input_and_not_written() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let create = "mutation($input: CreateBookInput!) { createBook(input: $input) { id } }";
    let update = "mutation($id: ID!, $price: Decimal!) { updateBook(id: $id, input: { price: $price }) { id } }";
    for (n, price) in HUGE_PRICES.into_iter().enumerate() {
        let input = json!({
            "title": "Too dear", "isbn": isbn(100 + n as u64), "price": price,
            "authorId": cat.authors[0], "categoryId": cat.categories[0],
        });
        let (code, message) = refusal(
            &app,
            Some(&cat.librarian),
            create,
            json!({ "input": input }),
        )
        .await;
        assert_eq!(code, "BAD_USER_INPUT", "create at {price}: {message}");
        assert!(message.contains("price"), "{message}");
        let variables = json!({ "id": cat.books[0], "price": price });
        let (code, message) = refusal(&app, Some(&cat.librarian), update, variables).await;
        assert_eq!(code, "BAD_USER_INPUT", "update to {price}: {message}");
    }
    let data = app
        .data(None, "{ books { totalCount items { price } } }", json!({}))
        .await;
    assert_eq!(data["books"]["totalCount"], 1);
    assert_eq!(data["books"]["items"][0]["price"], "10.00");
}

#[tokio::test]
async fn search_text_with_a_nul_is_bad_input_not_a_match_for_every_book() {
    let app = spawn_app().await;
    catalogue(&app, 3).await;
    let search = "query($q: String!) { searchBooks(query: $q) { totalCount } }";
    for bad in UNREADABLE {
        for q in [bad.to_owned(), format!("book{bad}")] {
            let (code, message) = refusal(&app, None, search, json!({ "q": q })).await;
            assert_eq!(code, "BAD_USER_INPUT", "{q:?}: {message}");
            assert!(message.contains("query"), "{q:?}: {message}");
        }
    }
}

#[tokio::test]
async fn unreadable_characters_in_titles_and_names_are_bad_input_naming_the_field() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let token = Some(cat.librarian.as_str());
    let create_book = "mutation($input: CreateBookInput!) { createBook(input: $input) { id } }";
    let update_book = "mutation($id: ID!, $title: String!) { updateBook(id: $id, input: { title: $title }) { id } }";
    let create_author = "mutation($name: String!) { createAuthor(input: { name: $name }) { id } }";
    let author_bio = "mutation($name: String!, $bio: String) { createAuthor(input: { name: $name, bio: $bio }) { id } }";
    let update_author = "mutation($id: ID!, $name: String!) { updateAuthor(id: $id, input: { name: $name }) { id } }";
    let create_category =
        "mutation($name: String!) { createCategory(input: { name: $name }) { id } }";
    for (n, bad) in UNREADABLE.into_iter().enumerate() {
        let text = format!("Evil{bad}Title");
        let book = json!({
            "title": text, "isbn": isbn(200 + n as u64), "price": "1.00",
            "authorId": cat.authors[0], "categoryId": cat.categories[0],
        });
        let attempts = [
            ("title", create_book, json!({ "input": book })),
            (
                "title",
                update_book,
                json!({ "id": cat.books[0], "title": text }),
            ),
            ("name", create_author, json!({ "name": text })),
            ("bio", author_bio, json!({ "name": "Fine", "bio": text })),
            (
                "name",
                update_author,
                json!({ "id": cat.authors[0], "name": text }),
            ),
            ("name", create_category, json!({ "name": text })),
        ];
        for (field, query, variables) in attempts {
            let (code, message) = refusal(&app, token, query, variables).await;
            assert_eq!(code, "BAD_USER_INPUT", "{field} with {bad:?}: {message}");
            assert!(message.contains(field), "{field} with {bad:?}: {message}");
        }
    }
    // Nothing was written: the catalogue is as `catalogue` left it.
    let data = app
        .data(
            None,
            "{ books { totalCount items { title } } authors { totalCount } categories { name } }",
            json!({}),
        )
        .await;
    assert_eq!(data["books"]["totalCount"], 1);
    assert_eq!(data["books"]["items"][0]["title"], "Book 000");
    assert_eq!(data["authors"]["totalCount"], 2);
    assert_eq!(data["categories"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_bio_keeps_its_line_breaks_and_tabs() {
    let app = spawn_app().await;
    let librarian = app.librarian().await;
    let bio = "Born 1929.\r\n\tWrote novels,\nessays and poems.";
    let data = app
        .data(
            Some(&librarian),
            "mutation($bio: String) { createAuthor(input: { name: \"Ursula\", bio: $bio }) { bio } }",
            json!({ "bio": bio }),
        )
        .await;
    assert_eq!(data["createAuthor"]["bio"], bio);
}

#[tokio::test]
async fn unreadable_characters_in_a_new_account_are_bad_input_naming_the_field() {
    let app = spawn_app().await;
    let register = "mutation($input: RegisterInput!) { register(input: $input) { token } }";
    for bad in UNREADABLE {
        let attempts = [
            (
                "name",
                json!({ "email": "ada@example.org", "name": format!("Ada{bad}"), "password": "long-enough" }),
            ),
            (
                "email",
                json!({ "email": format!("ada{bad}@example.org"), "name": "Ada", "password": "long-enough" }),
            ),
            (
                "email",
                json!({ "email": format!("ada@exa{bad}mple.org"), "name": "Ada", "password": "long-enough" }),
            ),
        ];
        for (field, input) in attempts {
            let (code, message) = refusal(&app, None, register, json!({ "input": input })).await;
            assert_eq!(code, "BAD_USER_INPUT", "{field} with {bad:?}: {message}");
            assert!(message.contains(field), "{field} with {bad:?}: {message}");
        }
    }
    // None of them made an account: the address is still free.
    app.member("ada@example.org").await;
}

#[tokio::test]
async fn a_login_with_a_nul_in_the_email_is_refused_like_any_wrong_login() {
    let app = spawn_app().await;
    app.member("ada@example.org").await;
    let login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";
    for email in ["ada\u{0}@example.org", "ada@example.org\u{0}", "\u{0}"] {
        // Sign-in gives one answer to every failed attempt, whatever the
        // reason; what matters here is that it is not INTERNAL.
        let (code, message) = refusal(
            &app,
            None,
            login,
            json!({ "e": email, "p": "member-password" }),
        )
        .await;
        assert_eq!(code, "UNAUTHENTICATED", "{email:?}: {message}");
    }
}
