use crate::helpers::spawn_app;
use biblio::seed::{self, Plan};
use sea_orm::{ConnectionTrait, Statement};

async fn fingerprint(app: &crate::helpers::TestApp) -> Vec<String> {
    let sql = "SELECT b.isbn, b.title, a.name, b.copies_available FROM books b JOIN authors a ON a.id = b.author_id ORDER BY b.isbn";
    let rows = app
        .db
        .conn()
        .query_all(Statement::from_string(app.db.backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            let isbn: String = row.try_get_by_index(0).unwrap();
            let title: String = row.try_get_by_index(1).unwrap();
            let author: String = row.try_get_by_index(2).unwrap();
            let available: i32 = row.try_get_by_index(3).unwrap();
            format!("{isbn} {title} {author} {available}")
        })
        .collect()
}

#[tokio::test]
async fn the_same_seed_builds_the_same_data_and_a_different_seed_does_not() {
    let plan = Plan {
        authors: 30,
        books: 120,
        members: 15,
        borrows: 400,
        seed: 7,
    };
    let (first, second, other) = (spawn_app().await, spawn_app().await, spawn_app().await);
    seed::run(&first.db, &plan, false).await.unwrap();
    seed::run(&second.db, &plan, false).await.unwrap();
    seed::run(&other.db, &Plan { seed: 8, ..plan }, false)
        .await
        .unwrap();
    assert_eq!(fingerprint(&first).await.len(), 120);
    assert_eq!(fingerprint(&first).await, fingerprint(&second).await);
    assert_ne!(fingerprint(&first).await, fingerprint(&other).await);
}

#[tokio::test]
async fn seeded_data_is_consistent_and_its_credentials_work() {
    let app = spawn_app().await;
    let plan = Plan {
        authors: 20,
        books: 60,
        members: 10,
        borrows: 300,
        seed: 42,
    };
    let report = seed::run(&app.db, &plan, false).await.unwrap();
    let stats = app
        .data(
            None,
            "{ statistics { totalBooks totalMembers activeBorrows } }",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(stats["statistics"]["totalBooks"], 60);
    assert_eq!(stats["statistics"]["totalMembers"], 10);
    assert_eq!(
        stats["statistics"]["activeBorrows"],
        report.active_borrows as i64
    );
    // Availability agrees with the active loans.
    let sql = "SELECT COUNT(*) FROM books b WHERE b.copies_total - b.copies_available <> \
               (SELECT COUNT(*) FROM borrow_records r WHERE r.book_id = b.id AND r.returned_at IS NULL)";
    let row = app
        .db
        .conn()
        .query_one(Statement::from_string(app.db.backend(), sql))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 0);
    // A second seed without --reset is refused; with it, the data is replaced.
    assert!(seed::run(&app.db, &plan, false).await.is_err());
    seed::run(&app.db, &plan, true).await.unwrap();

    let login =
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { role } } }";
    let librarian = app
        .data(
            None,
            login,
            serde_json::json!({ "e": seed::LIBRARIAN_EMAIL, "p": seed::LIBRARIAN_PASSWORD }),
        )
        .await;
    assert_eq!(librarian["login"]["user"]["role"], "LIBRARIAN");
    let member = app
        .data(
            None,
            login,
            serde_json::json!({ "e": "member3@biblio.test", "p": seed::MEMBER_PASSWORD }),
        )
        .await;
    assert_eq!(member["login"]["user"]["role"], "MEMBER");
}
