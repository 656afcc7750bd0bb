use crate::helpers::{catalogue, spawn_app};
use serde_json::json;

const BORROW: &str = "mutation($b: ID!) { borrowBook(bookId: $b) { id dueAt returnedAt book { title copiesAvailable } user { email } } }";
const RETURN: &str =
    "mutation($r: ID!) { returnBook(borrowId: $r) { id returnedAt book { copiesAvailable } } }";
const MY_BORROWS: &str = "query($s: BorrowStatus) { myBorrows(status: $s) { totalCount items { id book { title } returnedAt } } }";

#[tokio::test]
async fn a_member_borrows_and_returns_a_book() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let member = app.member("reader@example.org").await;
    let borrowed = app
        .data(Some(&member), BORROW, json!({ "b": cat.books[0] }))
        .await["borrowBook"]
        .clone();
    assert_eq!(borrowed["book"]["copiesAvailable"], 1);
    assert_eq!(borrowed["user"]["email"], "reader@example.org");
    assert!(borrowed["returnedAt"].is_null());
    let due = chrono::DateTime::parse_from_rfc3339(borrowed["dueAt"].as_str().unwrap()).unwrap();
    let days = (due.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!((13..=14).contains(&days), "due in {days} days");

    let again = app
        .error_code(Some(&member), BORROW, json!({ "b": cat.books[0] }))
        .await;
    assert_eq!(again, "CONFLICT", "one active loan of a book per member");

    let returned = app
        .data(Some(&member), RETURN, json!({ "r": borrowed["id"] }))
        .await["returnBook"]
        .clone();
    assert!(returned["returnedAt"].is_string());
    assert_eq!(returned["book"]["copiesAvailable"], 2);
    let twice = app
        .error_code(Some(&member), RETURN, json!({ "r": borrowed["id"] }))
        .await;
    assert_eq!(twice, "CONFLICT");
}

#[tokio::test]
async fn borrowing_needs_sign_in_a_real_book_and_a_free_copy() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    assert_eq!(
        app.error_code(None, BORROW, json!({ "b": cat.books[0] }))
            .await,
        "UNAUTHENTICATED"
    );
    let a = app.member("a@example.org").await;
    let b = app.member("b@example.org").await;
    let c = app.member("c@example.org").await;
    let nowhere = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        app.error_code(Some(&a), BORROW, json!({ "b": nowhere }))
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        app.error_code(Some(&a), BORROW, json!({ "b": "garbage" }))
            .await,
        "BAD_USER_INPUT"
    );
    app.data(Some(&a), BORROW, json!({ "b": cat.books[0] }))
        .await;
    app.data(Some(&b), BORROW, json!({ "b": cat.books[0] }))
        .await;
    assert_eq!(
        app.error_code(Some(&c), BORROW, json!({ "b": cat.books[0] }))
            .await,
        "CONFLICT"
    );
    let mine = app.data(Some(&c), MY_BORROWS, json!({})).await;
    assert_eq!(
        mine["myBorrows"]["totalCount"], 0,
        "the refused borrow left no record"
    );
}

#[tokio::test]
async fn concurrent_borrows_of_the_last_copies_lend_each_copy_once() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await; // two copies
    let mut tokens = Vec::new();
    for i in 0..10 {
        tokens.push(app.member(&format!("racer{i}@example.org")).await);
    }
    let attempts = tokens.iter().map(|token| {
        let client = app.client.clone();
        let url = app.graphql_url();
        let body = json!({ "query": BORROW, "variables": { "b": cat.books[0] } });
        let token = token.clone();
        tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            response.json::<serde_json::Value>().await.unwrap()
        })
    });
    let results = futures_util::future::join_all(attempts).await;
    let (mut lent, mut conflicts) = (0, 0);
    for result in results {
        let body = result.unwrap();
        match body["errors"][0]["extensions"]["code"].as_str() {
            None => lent += 1,
            Some("CONFLICT") => conflicts += 1,
            Some(other) => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((lent, conflicts), (2, 8));
    let data = app
        .data(
            None,
            "query($id: ID!) { book(id: $id) { copiesAvailable } statistics { activeBorrows } }",
            json!({ "id": cat.books[0] }),
        )
        .await;
    assert_eq!(data["book"]["copiesAvailable"], 0);
    assert_eq!(data["statistics"]["activeBorrows"], 2);
}

#[tokio::test]
async fn only_the_borrower_or_a_librarian_may_return_a_book() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 2).await;
    let owner = app.member("owner@example.org").await;
    let stranger = app.member("stranger@example.org").await;
    let first = app
        .data(Some(&owner), BORROW, json!({ "b": cat.books[0] }))
        .await["borrowBook"]["id"]
        .clone();
    let second = app
        .data(Some(&owner), BORROW, json!({ "b": cat.books[1] }))
        .await["borrowBook"]["id"]
        .clone();
    assert_eq!(
        app.error_code(Some(&stranger), RETURN, json!({ "r": first }))
            .await,
        "FORBIDDEN"
    );
    assert_eq!(
        app.error_code(None, RETURN, json!({ "r": first })).await,
        "UNAUTHENTICATED"
    );
    let nowhere = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        app.error_code(Some(&owner), RETURN, json!({ "r": nowhere }))
            .await,
        "NOT_FOUND"
    );
    app.data(Some(&cat.librarian), RETURN, json!({ "r": first }))
        .await;
    app.data(Some(&owner), RETURN, json!({ "r": second })).await;
}

#[tokio::test]
async fn my_borrows_shows_only_my_own_by_status_newest_first() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 3).await;
    let me = app.member("me@example.org").await;
    let other = app.member("other@example.org").await;
    let mut ids = Vec::new();
    for book in &cat.books {
        ids.push(
            app.data(Some(&me), BORROW, json!({ "b": book })).await["borrowBook"]["id"].clone(),
        );
    }
    app.data(Some(&other), BORROW, json!({ "b": cat.books[0] }))
        .await;
    app.data(Some(&me), RETURN, json!({ "r": ids[0] })).await;

    let titles = |data: &serde_json::Value| -> Vec<String> {
        data["myBorrows"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["book"]["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.data(Some(&me), MY_BORROWS, json!({ "s": "ALL" })).await;
    assert_eq!(all["myBorrows"]["totalCount"], 3);
    assert_eq!(titles(&all), vec!["Book 002", "Book 001", "Book 000"]);
    let active = app
        .data(Some(&me), MY_BORROWS, json!({ "s": "ACTIVE" }))
        .await;
    assert_eq!(titles(&active), vec!["Book 002", "Book 001"]);
    let returned = app
        .data(Some(&me), MY_BORROWS, json!({ "s": "RETURNED" }))
        .await;
    assert_eq!(titles(&returned), vec!["Book 000"]);
    let overdue = app
        .data(Some(&me), MY_BORROWS, json!({ "s": "OVERDUE" }))
        .await;
    assert_eq!(overdue["myBorrows"]["totalCount"], 0);
    let theirs = app.data(Some(&other), MY_BORROWS, json!({})).await;
    assert_eq!(titles(&theirs), vec!["Book 000"]);
}

#[tokio::test]
async fn loans_past_their_due_date_are_overdue() {
    // A zero-day loan period makes every active loan overdue at once.
    let app = crate::helpers::TestApp::builder()
        .configure(|config| config.loan_period = chrono::Duration::zero())
        .spawn()
        .await;
    let cat = catalogue(&app, 1).await;
    let me = app.member("late@example.org").await;
    app.data(Some(&me), BORROW, json!({ "b": cat.books[0] }))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let overdue = app
        .data(Some(&me), MY_BORROWS, json!({ "s": "OVERDUE" }))
        .await;
    assert_eq!(overdue["myBorrows"]["totalCount"], 1);
}

#[tokio::test]
async fn a_loan_that_passes_its_due_date_joins_the_overdue_list_on_every_replica_with_no_write() {
    // Time alone changes this answer: no write happens when a loan falls
    // due, so nothing invalidates. Every tier that kept the empty list (L1,
    // L2, the kept answer) must stop serving it at the due date.
    let (apps, _redis) = crate::helpers::TestApp::builder()
        .replicas(2)
        .configure(|config| config.loan_period = chrono::Duration::seconds(4))
        .spawn_replicas()
        .await;
    let cat = catalogue(&apps[0], 1).await;
    let me = apps[0].member("soon-late@example.org").await;
    let borrowed = apps[0]
        .data(Some(&me), BORROW, json!({ "b": cat.books[0] }))
        .await;
    let due =
        chrono::DateTime::parse_from_rfc3339(borrowed["borrowBook"]["dueAt"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
    let overdue = json!({ "s": "OVERDUE" });

    // Before the due date: empty, and cached (a second read costs no SQL).
    for app in &apps {
        let before = app.data(Some(&me), MY_BORROWS, overdue.clone()).await;
        assert_eq!(before["myBorrows"]["totalCount"], 0);
    }
    let statements = apps[1].statements();
    let again = apps[1].data(Some(&me), MY_BORROWS, overdue.clone()).await;
    assert_eq!(again["myBorrows"]["totalCount"], 0);
    assert_eq!(apps[1].statements(), statements, "the empty list is cached");

    // Past the due date: overdue everywhere, cached or not.
    let wait = (due - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + std::time::Duration::from_millis(20)).await;
    for app in &apps {
        let after = app.data(Some(&me), MY_BORROWS, overdue.clone()).await;
        assert_eq!(
            after["myBorrows"]["totalCount"], 1,
            "{}: the loan is overdue",
            app.address
        );
        assert_eq!(after["myBorrows"]["items"][0]["book"]["title"], "Book 000");
    }
}
