use crate::helpers::spawn_app;
use biblio::seed::{self, Existing, Passwords, Plan};
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
    let passwords = Passwords::random();
    seed::run(&first.db, &plan, Existing::Refuse, &passwords)
        .await
        .unwrap();
    seed::run(&second.db, &plan, Existing::Refuse, &passwords)
        .await
        .unwrap();
    seed::run(
        &other.db,
        &Plan { seed: 8, ..plan },
        Existing::Refuse,
        &passwords,
    )
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
    let passwords = Passwords::same("same-for-all");
    let report = seed::run(&app.db, &plan, Existing::Refuse, &passwords)
        .await
        .unwrap();
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
    assert!(seed::run(&app.db, &plan, Existing::Refuse, &passwords)
        .await
        .is_err());
    seed::run(&app.db, &plan, Existing::Replace, &passwords)
        .await
        .unwrap();

    let login =
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { role } } }";
    let librarian = app
        .data(
            None,
            login,
            serde_json::json!({ "e": seed::LIBRARIAN_EMAIL, "p": "same-for-all" }),
        )
        .await;
    assert_eq!(librarian["login"]["user"]["role"], "LIBRARIAN");
    let member = app
        .data(
            None,
            login,
            serde_json::json!({ "e": "member3@biblio.test", "p": "same-for-all" }),
        )
        .await;
    assert_eq!(member["login"]["user"]["role"], "MEMBER");
}

const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { role } } }";

const SMALL: Plan = Plan {
    authors: 3,
    books: 5,
    members: 2,
    borrows: 4,
    seed: 1,
};

#[tokio::test]
async fn random_seed_passwords_let_their_accounts_in_and_the_old_fixed_ones_do_not() {
    let app = spawn_app().await;
    let passwords = Passwords::random();
    seed::run(&app.db, &SMALL, Existing::Refuse, &passwords)
        .await
        .unwrap();

    let librarian = app
        .data(
            None,
            LOGIN,
            serde_json::json!({ "e": seed::LIBRARIAN_EMAIL, "p": passwords.librarian }),
        )
        .await;
    let member = app
        .data(
            None,
            LOGIN,
            serde_json::json!({ "e": seed::member_email(2), "p": passwords.members }),
        )
        .await;
    let old = app
        .error_code(
            None,
            LOGIN,
            serde_json::json!({ "e": seed::LIBRARIAN_EMAIL, "p": "librarian-pass" }),
        )
        .await;

    assert_eq!(librarian["login"]["user"]["role"], "LIBRARIAN");
    assert_eq!(member["login"]["user"]["role"], "MEMBER");
    assert_eq!(old, "UNAUTHENTICATED");
    assert_ne!(passwords.librarian, passwords.members);
}

#[tokio::test]
async fn a_reset_keeps_away_from_accounts_people_made_unless_told_to_include_them() {
    let app = spawn_app().await;
    let passwords = Passwords::same("same-for-all");
    seed::run(&app.db, &SMALL, Existing::Refuse, &passwords)
        .await
        .unwrap();
    app.member("reader@example.org").await;

    let refused = seed::run(&app.db, &SMALL, Existing::Replace, &passwords)
        .await
        .err()
        .expect("a reset over a person's account is refused")
        .to_string();
    let still_there = app
        .data(
            None,
            LOGIN,
            serde_json::json!({ "e": "reader@example.org", "p": "member-password" }),
        )
        .await;
    seed::run(&app.db, &SMALL, Existing::ReplaceWithUsers, &passwords)
        .await
        .unwrap();
    let gone = app
        .error_code(
            None,
            LOGIN,
            serde_json::json!({ "e": "reader@example.org", "p": "member-password" }),
        )
        .await;

    assert!(refused.contains("1 account"), "{refused}");
    assert!(refused.contains("reader@example.org"), "{refused}");
    assert!(refused.contains("--include-users"), "{refused}");
    assert_eq!(still_there["login"]["user"]["role"], "MEMBER");
    assert_eq!(gone, "UNAUTHENTICATED");
}

/// The indexes, triggers and (PostgreSQL) constraints of the database, by
/// name, with their SQL.
async fn schema(app: &crate::helpers::TestApp) -> Vec<String> {
    let sql = match app.db.backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() \
             UNION ALL SELECT tgname || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal \
             UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE connamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
             ORDER BY 1"
        }
        _ => "SELECT name || ' ' || COALESCE(sql, '') FROM sqlite_master \
              WHERE type IN ('index', 'trigger') ORDER BY name",
    };
    app.db
        .conn()
        .query_all(Statement::from_string(app.db.backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

#[tokio::test]
async fn a_seed_leaves_the_indexes_and_triggers_as_they_were_and_every_tally_exact() {
    let app = spawn_app().await;
    let before = schema(&app).await;
    let plan = Plan {
        authors: 40,
        books: 300,
        members: 20,
        borrows: 900,
        seed: 9,
    };
    let passwords = Passwords::same("same-for-all");

    seed::run(&app.db, &plan, Existing::Refuse, &passwords)
        .await
        .unwrap();
    assert_eq!(schema(&app).await, before, "after a seed");
    if app.db.backend() == sea_orm::DbBackend::Sqlite {
        // The seed's connection does not enforce foreign keys: its rows
        // must satisfy them all the same.
        let broken = app
            .db
            .conn()
            .query_all(Statement::from_string(
                app.db.backend(),
                "PRAGMA foreign_key_check",
            ))
            .await
            .unwrap();
        assert!(
            broken.is_empty(),
            "{} rows break a foreign key",
            broken.len()
        );
    }
    if app.db.backend() == sea_orm::DbBackend::Postgres {
        // The planner has statistics of the new rows, the search's titles
        // included (without them it guesses a match count, and plans
        // a common word's search as a few rows).
        let analysed = app
            .db
            .conn()
            .query_all(Statement::from_string(
                app.db.backend(),
                "SELECT tablename || '.' || attname FROM pg_stats \
                 WHERE schemaname = current_schema() \
                 AND (tablename, attname) IN (('books', 'title'), ('book_titles', 'title_lower')) \
                 ORDER BY 1",
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get_by_index::<String>(0).unwrap())
            .collect::<Vec<_>>();
        assert_eq!(
            analysed,
            ["book_titles.title_lower", "books.title"],
            "columns with the planner's statistics after a seed"
        );
    }
    let seeded = crate::tallies::tallies(&app.db).await;
    assert_eq!(seeded, crate::tallies::recount(&app.db).await);
    // The triggers count again: a write after the seed moves its tally.
    app.db
        .conn()
        .execute_unprepared(
            "DELETE FROM books WHERE copies_available = copies_total AND price_cents < 1000",
        )
        .await
        .unwrap();
    assert_eq!(
        crate::tallies::tallies(&app.db).await,
        crate::tallies::recount(&app.db).await
    );

    seed::run(
        &app.db,
        &Plan { seed: 10, ..plan },
        Existing::Replace,
        &passwords,
    )
    .await
    .unwrap();
    assert_eq!(schema(&app).await, before, "after a reset");
    assert_eq!(
        crate::tallies::tallies(&app.db).await,
        crate::tallies::recount(&app.db).await
    );
}

#[tokio::test]
async fn a_seed_that_fails_part_way_changes_nothing() {
    let app = spawn_app().await;
    let passwords = Passwords::same("same-for-all");
    let first = Plan {
        borrows: 0,
        ..SMALL
    };
    seed::run(&app.db, &first, Existing::Refuse, &passwords)
        .await
        .unwrap();
    // An index of another program's that the next seed's loans break, once
    // it is built again after the rows are in: the seed's last steps fail.
    app.db
        .conn()
        .execute_unprepared(
            "CREATE UNIQUE INDEX uq_borrow_records_one_per_book ON borrow_records (book_id)",
        )
        .await
        .unwrap();
    let (before, tallies) = (schema(&app).await, crate::tallies::tallies(&app.db).await);
    let bigger = Plan {
        books: 7,
        borrows: 40,
        ..SMALL
    };

    let failed = seed::run(&app.db, &bigger, Existing::Replace, &passwords).await;

    assert!(failed.is_err(), "40 loans of 7 books break the index");
    assert_eq!(schema(&app).await, before, "the index is still there");
    assert_eq!(crate::tallies::tallies(&app.db).await, tallies);
    let stats = app
        .data(None, "{ statistics { totalBooks } }", serde_json::json!({}))
        .await;
    assert_eq!(stats["statistics"]["totalBooks"], SMALL.books as i64);
}
