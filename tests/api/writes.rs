use crate::helpers::{catalogue, isbn, spawn_app};
use serde_json::json;
use uuid::Uuid;

const CREATE_BOOK: &str = "mutation($input: CreateBookInput!) { createBook(input: $input) { id title isbn price publishedYear copiesTotal copiesAvailable author { name } category { name } } }";
const UPDATE_BOOK: &str = "mutation($id: ID!, $input: UpdateBookInput!) { updateBook(id: $id, input: $input) { id title isbn price publishedYear copiesTotal copiesAvailable author { name } category { name } } }";

#[tokio::test]
async fn a_librarian_creates_reads_updates_and_deletes_a_book() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 0).await;
    let token = Some(cat.librarian.as_str());
    let created = app
        .data(token, CREATE_BOOK, json!({ "input": {
            "title": " The Left Hand of Darkness ", "isbn": "978-0-306-40615-7", "price": "12.5",
            "publishedYear": 1969, "copiesTotal": 3, "authorId": cat.authors[0], "categoryId": cat.categories[0],
        } }))
        .await["createBook"]
        .clone();
    assert_eq!(created["title"], "The Left Hand of Darkness");
    assert_eq!(created["isbn"], "9780306406157");
    assert_eq!(created["price"], "12.50");
    assert_eq!(created["copiesAvailable"], 3);
    let id = created["id"].as_str().unwrap();

    let updated = app
        .data(token, UPDATE_BOOK, json!({ "id": id, "input": { "price": "9.99", "authorId": cat.authors[1], "publishedYear": null } }))
        .await["updateBook"]
        .clone();
    assert_eq!(updated["price"], "9.99");
    assert_eq!(
        updated["title"], "The Left Hand of Darkness",
        "omitted fields stay"
    );
    assert_eq!(updated["author"]["name"], "Stanisław Lem");
    assert!(updated["publishedYear"].is_null(), "null clears the year");

    let deleted = app
        .data(
            token,
            "mutation($id: ID!) { deleteBook(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted["deleteBook"], id);
    let gone = app
        .data(
            None,
            "query($id: ID!) { book(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(gone["book"].is_null());
}

#[tokio::test]
async fn invalid_book_input_is_bad_input_and_writes_nothing() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 0).await;
    let token = Some(cat.librarian.as_str());
    let input = |isbn: &str, price: &str, title: &str| {
        json!({ "input": {
        "title": title, "isbn": isbn, "price": price, "authorId": cat.authors[0], "categoryId": cat.categories[0],
    } })
    };
    for (isbn, price, title) in [
        ("9780306406158", "1.00", "Bad check digit"),
        ("12345", "1.00", "Too short"),
        ("9780306406157", "-1.00", "Negative price"),
        ("9780306406157", "1.001", "Fractional cents"),
        ("9780306406157", "1.00", "   "),
    ] {
        let code = app
            .error_code(token, CREATE_BOOK, input(isbn, price, title))
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "{title}");
    }
    let count = app.data(None, "{ books { totalCount } }", json!({})).await;
    assert_eq!(count["books"]["totalCount"], 0);
}

#[tokio::test]
async fn a_duplicate_isbn_conflicts_on_create_and_update() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 2).await;
    let token = Some(cat.librarian.as_str());
    let duplicate = json!({ "input": {
        "title": "Copy", "isbn": isbn(0), "price": "1.00", "authorId": cat.authors[0], "categoryId": cat.categories[0],
    } });
    assert_eq!(
        app.error_code(token, CREATE_BOOK, duplicate).await,
        "CONFLICT"
    );
    let code = app
        .error_code(
            token,
            UPDATE_BOOK,
            json!({ "id": cat.books[1], "input": { "isbn": isbn(0), "title": "Changed" } }),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    let book = app
        .data(
            None,
            "query($id: ID!) { book(id: $id) { title } }",
            json!({ "id": cat.books[1] }),
        )
        .await;
    assert_eq!(
        book["book"]["title"], "Book 001",
        "the failed update changed nothing"
    );
}

#[tokio::test]
async fn unknown_ids_in_mutations_are_not_found() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let token = Some(cat.librarian.as_str());
    let nowhere = Uuid::now_v7().to_string();
    let create = json!({ "input": {
        "title": "Orphan", "isbn": isbn(99), "price": "1.00", "authorId": nowhere, "categoryId": cat.categories[0],
    } });
    assert_eq!(
        app.error_code(token, CREATE_BOOK, create).await,
        "NOT_FOUND"
    );
    let create = json!({ "input": {
        "title": "Orphan", "isbn": isbn(99), "price": "1.00", "authorId": cat.authors[0], "categoryId": nowhere,
    } });
    assert_eq!(
        app.error_code(token, CREATE_BOOK, create).await,
        "NOT_FOUND"
    );
    assert_eq!(
        app.error_code(
            token,
            UPDATE_BOOK,
            json!({ "id": nowhere, "input": { "title": "X" } })
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        app.error_code(
            token,
            UPDATE_BOOK,
            json!({ "id": cat.books[0], "input": { "categoryId": nowhere } })
        )
        .await,
        "NOT_FOUND"
    );
    for mutation in ["deleteBook", "deleteAuthor", "deleteCategory"] {
        let query = format!("mutation($id: ID!) {{ {mutation}(id: $id) }}");
        assert_eq!(
            app.error_code(token, &query, json!({ "id": nowhere }))
                .await,
            "NOT_FOUND",
            "{mutation}"
        );
    }
    let update_author =
        "mutation($id: ID!) { updateAuthor(id: $id, input: { name: \"X\" }) { id } }";
    assert_eq!(
        app.error_code(token, update_author, json!({ "id": nowhere }))
            .await,
        "NOT_FOUND"
    );
    let update_category =
        "mutation($id: ID!) { updateCategory(id: $id, input: { name: \"X\" }) { id } }";
    assert_eq!(
        app.error_code(token, update_category, json!({ "id": nowhere }))
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        app.error_code(
            token,
            "mutation { deleteBook(id: \"not-a-uuid\") }",
            json!({})
        )
        .await,
        "BAD_USER_INPUT"
    );
}

#[tokio::test]
async fn authors_are_updated_and_deleting_one_with_books_conflicts() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let token = Some(cat.librarian.as_str());
    let updated = app
        .data(token, "mutation($id: ID!) { updateAuthor(id: $id, input: { bio: \"Wrote Earthsea.\" }) { name bio } }", json!({ "id": cat.authors[0] }))
        .await;
    assert_eq!(updated["updateAuthor"]["name"], "Ursula K. Le Guin");
    assert_eq!(updated["updateAuthor"]["bio"], "Wrote Earthsea.");
    let cleared = app
        .data(
            token,
            "mutation($id: ID!) { updateAuthor(id: $id, input: { bio: null }) { bio } }",
            json!({ "id": cat.authors[0] }),
        )
        .await;
    assert!(cleared["updateAuthor"]["bio"].is_null());

    let delete = "mutation($id: ID!) { deleteAuthor(id: $id) }";
    assert_eq!(
        app.error_code(token, delete, json!({ "id": cat.authors[0] }))
            .await,
        "CONFLICT"
    );
    let data = app
        .data(token, delete, json!({ "id": cat.authors[1] }))
        .await;
    assert_eq!(data["deleteAuthor"], cat.authors[1].as_str());
    let authors = app
        .data(None, "{ authors { totalCount } }", json!({}))
        .await;
    assert_eq!(authors["authors"]["totalCount"], 1);
}

#[tokio::test]
async fn category_names_are_unique_and_a_category_with_books_cannot_be_deleted() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let token = Some(cat.librarian.as_str());
    assert_eq!(
        app.error_code(
            token,
            "mutation { createCategory(input: { name: \"Philosophy\" }) { id } }",
            json!({})
        )
        .await,
        "CONFLICT"
    );
    let rename =
        "mutation($id: ID!, $n: String) { updateCategory(id: $id, input: { name: $n }) { name } }";
    assert_eq!(
        app.error_code(
            token,
            rename,
            json!({ "id": cat.categories[1], "n": "Science Fiction" })
        )
        .await,
        "CONFLICT"
    );
    let renamed = app
        .data(
            token,
            rename,
            json!({ "id": cat.categories[1], "n": "Ethics" }),
        )
        .await;
    assert_eq!(renamed["updateCategory"]["name"], "Ethics");
    let delete = "mutation($id: ID!) { deleteCategory(id: $id) }";
    assert_eq!(
        app.error_code(token, delete, json!({ "id": cat.categories[0] }))
            .await,
        "CONFLICT"
    );
    app.data(token, delete, json!({ "id": cat.categories[1] }))
        .await;
    let categories = app.data(None, "{ categories { name } }", json!({})).await;
    assert_eq!(
        categories["categories"],
        json!([{ "name": "Science Fiction" }])
    );
}

#[tokio::test]
async fn copies_total_moves_availability_and_cannot_go_below_the_copies_on_loan() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let token = Some(cat.librarian.as_str());
    let member = app.member("holder@example.org").await;
    app.data(
        Some(&member),
        "mutation($b: ID!) { borrowBook(bookId: $b) { id } }",
        json!({ "b": cat.books[0] }),
    )
    .await;
    let grown = app
        .data(
            token,
            UPDATE_BOOK,
            json!({ "id": cat.books[0], "input": { "copiesTotal": 5 } }),
        )
        .await;
    assert_eq!(grown["updateBook"]["copiesTotal"], 5);
    assert_eq!(grown["updateBook"]["copiesAvailable"], 4);
    let code = app
        .error_code(
            token,
            UPDATE_BOOK,
            json!({ "id": cat.books[0], "input": { "copiesTotal": 0, "title": "Never" } }),
        )
        .await;
    assert_eq!(code, "CONFLICT");
    let delete = app
        .error_code(
            token,
            "mutation($id: ID!) { deleteBook(id: $id) }",
            json!({ "id": cat.books[0] }),
        )
        .await;
    assert_eq!(delete, "CONFLICT", "a book on loan cannot be deleted");
    let book = app
        .data(
            None,
            "query($id: ID!) { book(id: $id) { title copiesTotal copiesAvailable } }",
            json!({ "id": cat.books[0] }),
        )
        .await;
    assert_eq!(
        book["book"],
        json!({ "title": "Book 000", "copiesTotal": 5, "copiesAvailable": 4 })
    );
}

#[tokio::test]
async fn a_mutation_whose_second_field_fails_reports_the_first_fields_committed_write() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let unknown = Uuid::now_v7().to_string();
    let (status, body) = app
        .post(
            Some(&cat.librarian),
            "mutation($a: ID!, $b: ID!) {
               a: updateBook(id: $a, input: { title: \"New\" }) { id title }
               b: updateBook(id: $b, input: { title: \"Never\" }) { id }
             }",
            json!({ "a": cat.books[0], "b": unknown }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["a"]["title"], "New", "{body}");
    assert_eq!(body["data"].get("b"), Some(&json!(null)), "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["path"], json!(["b"]));
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND");

    use sea_orm::EntityTrait;
    let id = Uuid::parse_str(&cat.books[0]).unwrap();
    let stored = entity::book::Entity::find_by_id(id)
        .one(app.db.conn())
        .await
        .unwrap()
        .expect("the book is still there");
    assert_eq!(stored.title, "New", "a's write was committed");
}

#[tokio::test]
async fn every_mutation_field_is_nullable_so_one_failure_cannot_null_the_others() {
    let app = spawn_app().await;
    let data = app
        .data(
            None,
            "{ __type(name: \"Mutation\") { fields { name type { kind } } } }",
            json!({}),
        )
        .await;
    let fields = data["__type"]["fields"].as_array().expect("fields");
    assert!(!fields.is_empty());
    for field in fields {
        assert_ne!(field["type"]["kind"], "NON_NULL", "{}", field["name"]);
    }
}

#[tokio::test]
async fn a_mutation_field_refused_for_its_price_keeps_the_write_committed_before_it() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 2).await;
    let (status, body) = app
        .post(
            Some(&cat.librarian),
            "mutation($a: ID!, $b: ID!) {
               a: updateBook(id: $a, input: { title: \"New\" }) { title }
               b: updateBook(id: $b, input: { price: \"1e28\" }) { id }
             }",
            json!({ "a": cat.books[0], "b": cat.books[1] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["a"]["title"], "New", "{body}");
    assert_eq!(body["data"].get("b"), Some(&json!(null)), "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["b"]));
    let code = body["errors"][0]["extensions"]["code"].as_str().unwrap();
    assert!(["BAD_USER_INPUT", "INTERNAL"].contains(&code), "{body}");
}

/// SQLite refuses at once, without waiting out its busy timeout, a
/// transaction that read before writing when another connection committed
/// in between (`SQLITE_BUSY_SNAPSHOT`): under another replica's commits,
/// books created on connections seen for the first time must go through.
#[tokio::test]
async fn writes_go_through_while_another_replica_commits() {
    use biblio::db::{authors, books, categories, Db};
    use biblio::domain::{Isbn, Money};
    let (_database, url) = crate::helpers::TestDatabase::create().await;
    let setup = Db::connect(&url).await.unwrap();
    setup.migrate().await.unwrap();
    let write = setup.begin_write().await.unwrap();
    let author = authors::create(&write, "Octavia Butler".into(), None)
        .await
        .unwrap()
        .id;
    let category = categories::create(&write, "Fiction".into())
        .await
        .unwrap()
        .id;
    write.commit(None).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let stop = stop.clone();
        let db = Db::connect(&url).await.unwrap();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let write = db.begin_write().await.unwrap();
                categories::create(&write, format!("other {n}"))
                    .await
                    .unwrap();
                write.commit(Some("{}")).await.unwrap();
                n += 1;
            }
            n
        })
    };
    let mut failures = Vec::new();
    for round in 0..40u64 {
        // A new pool each round: connections whose first statements run
        // inside the write.
        let db = Db::connect(&url).await.unwrap();
        let writes = (0..4u64).map(|i| {
            let db = db.clone();
            async move {
                let fail = |e: &dyn std::fmt::Display| e.to_string();
                let write = db.begin_write().await.map_err(|e| fail(&e))?;
                let new = books::NewBook {
                    title: format!("Kindred {round}-{i}"),
                    isbn: Isbn::with_check_digit(978_100_000_000 + round * 10 + i),
                    price: Money::from_cents(1500),
                    published_year: Some(1979),
                    copies_total: 2,
                    author_id: author,
                    category_id: category,
                };
                let book = books::create(&write, new).await.map_err(|e| fail(&e))?;
                authors::name(&write, book.author_id)
                    .await
                    .map_err(|e| fail(&e))?;
                write.commit(Some("{}")).await.map_err(|e| fail(&e))?;
                Ok::<_, String>(())
            }
        });
        for result in futures_util::future::join_all(writes).await {
            if let Err(err) = result {
                failures.push(err);
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let theirs = other.await.unwrap();
    assert!(theirs > 0, "the other replica committed");
    assert!(
        failures.is_empty(),
        "{} of 160 writes failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

/// A client that goes away while its mutation commits drops the request's
/// future. The write must still be finished as a whole: committed and then
/// published at once, not cut between its COMMIT and its invalidation
/// (which would leave the invalidation to the outbox sweep, here an hour
/// away, and on PostgreSQL a COMMIT half-read on a pooled connection).
#[tokio::test]
async fn a_write_whose_caller_goes_away_during_its_commit_is_still_published_at_once() {
    use biblio::cache::{Change, Listed};
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    let app = crate::helpers::TestApp::builder()
        .configure(|config| config.cache.outbox_delay = std::time::Duration::from_secs(3600))
        .spawn()
        .await;
    app.wait_for_cache().await;
    let cat = catalogue(&app, 1).await;
    let id = Uuid::parse_str(&cat.books[0]).unwrap();
    let before = entity::book::Entity::find_by_id(id)
        .one(app.db.conn())
        .await
        .unwrap()
        .unwrap();
    let write = app.db.begin_write().await.unwrap();
    let mut renamed = before.clone().into_active_model();
    renamed.title = Set("Renamed".into());
    let after = renamed.update(write.conn()).await.unwrap();
    let listed = |book| Listed {
        book,
        author: "the author".into(),
    };
    let published = app.cache.metrics().events_published();

    let mut commit = Box::pin(app.cache.commit(
        write,
        Change::BookUpdated {
            before: listed(before),
            after: listed(after),
        },
    ));
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    let started = std::future::Future::poll(commit.as_mut(), &mut context);
    assert!(started.is_pending(), "the commit waits for the database");
    drop(commit);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.cache.metrics().events_published() == published {
        assert!(
            std::time::Instant::now() < deadline,
            "the write's invalidation was never published: it was cut off with its caller"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let title = entity::book::Entity::find_by_id(id)
        .one(app.db.conn())
        .await
        .unwrap()
        .unwrap()
        .title;
    assert_eq!(title, "Renamed", "the write committed");
}

/// A retitle reads the book and takes its lock in one statement, changes
/// it and reads it back in another, and reads its author's name: three of
/// the service's statements (the outbox row is bookkeeping, not counted).
/// Each statement is a round trip inside the write's transaction, so they
/// set what a write costs: the row used to be locked by a no-op UPDATE
/// (which fired the table's triggers and wrote a row version), then read,
/// changed, and read again.
#[tokio::test]
async fn a_retitle_costs_three_statements() {
    let app = spawn_app().await;
    let cat = catalogue(&app, 1).await;
    let token = Some(cat.librarian.as_str());
    let book = &cat.books[0];
    let before = app.statements();
    let updated = app
        .data(
            token,
            "mutation($id: ID!) { updateBook(id: $id, input: { title: \"Retitled\" }) { id title } }",
            json!({ "id": book }),
        )
        .await;
    assert_eq!(updated["updateBook"]["title"], "Retitled");
    assert_eq!(app.statements() - before, 3);
}
