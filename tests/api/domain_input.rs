//! Careless or hostile values in arguments: each is refused with
//! `BAD_USER_INPUT` naming the field, never a panic or an `INTERNAL` error.
use crate::helpers::{catalogue, isbn, spawn_app, TestApp};
use serde_json::{json, Value};

/// Prices at or near the largest `Decimal`: multiplying them into cents
/// once overflowed and panicked.
const HUGE_PRICES: [&str; 3] = [
    "1e28",
    "79228162514264337593543950335",
    "792281625142643375935439503.35",
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
