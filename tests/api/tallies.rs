//! The tallies (counts and sums kept by triggers in every write's
//! transaction) and what is read from them (statistics, book counts, page
//! totals) equal a recount from the tables, after seeded random workloads of
//! every kind of write: the API's mutations, the operator's account
//! commands, and SQL from another program.
//!
//! `BIBLIO_TALLY_SEED=S` replays a seed (printed at the start and on
//! failure); `BIBLIO_TALLY_OPS=N` runs N writes (default 160).
use crate::helpers::{isbn, TestApp, TestDatabase};
use biblio::db::books::{CountPer, Filter, SortOrder};
use biblio::db::Db;
use biblio::domain::PageRequest;
use biblio::seed::Rng;
use entity::user::Role;
use migration::MigratorTrait;
use rust_decimal::Decimal;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const DEFAULT_OPS: usize = 160;
/// Writes between two checks.
const BURST: usize = 20;

fn seed() -> u64 {
    match std::env::var("BIBLIO_TALLY_SEED") {
        Ok(seed) => seed.parse().expect("BIBLIO_TALLY_SEED is a number"),
        Err(_) => rand_core::RngCore::next_u64(&mut rand_core::OsRng),
    }
}

fn ops() -> usize {
    std::env::var("BIBLIO_TALLY_OPS")
        .map(|ops| ops.parse().expect("BIBLIO_TALLY_OPS is a number"))
        .unwrap_or(DEFAULT_OPS)
}

/// What the workload has made, to pick its targets from.
struct World {
    librarian: String,
    authors: Vec<String>,
    categories: Vec<String>,
    books: Vec<String>,
    /// (e-mail, token) of each member registered.
    members: Vec<(String, String)>,
    /// (borrow id, member index) of the loans believed out.
    loans: Vec<(String, usize)>,
    next: u64,
    /// Books created over the whole run (some may be deleted since).
    books_created: usize,
}

impl World {
    fn next(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

fn pick<'a>(rng: &mut Rng, items: &'a [String]) -> Option<&'a String> {
    (!items.is_empty()).then(|| rng.pick(items))
}

fn price(rng: &mut Rng) -> String {
    format!("{}.{:02}", 1 + rng.below(90), rng.below(100))
}

async fn sql(app: &TestApp, sql: &str) {
    app.db
        .conn()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

/// One random write; refusals (a category still used, no copy free) are
/// part of the workload: a refused write must change no tally.
async fn random_write(app: &TestApp, rng: &mut Rng, world: &mut World) {
    let librarian = world.librarian.clone();
    let lib = Some(librarian.as_str());
    match rng.below(16) {
        0 => {
            let n = world.next();
            let id = app.create_author(&librarian, &format!("Author {n}")).await;
            world.authors.push(id);
        }
        1 => {
            if let Some(id) = pick(rng, &world.authors).cloned() {
                let (_, body) = app
                    .post(
                        lib,
                        "mutation($id: ID!) { deleteAuthor(id: $id) }",
                        json!({ "id": id }),
                    )
                    .await;
                if body["errors"].is_null() {
                    world.authors.retain(|author| *author != id);
                }
            }
        }
        2 => {
            let n = world.next();
            let id = app
                .create_category(&librarian, &format!("Category {n}"))
                .await;
            world.categories.push(id);
        }
        3 => {
            if let Some(id) = pick(rng, &world.categories).cloned() {
                let (_, body) = app
                    .post(
                        lib,
                        "mutation($id: ID!) { deleteCategory(id: $id) }",
                        json!({ "id": id }),
                    )
                    .await;
                if body["errors"].is_null() {
                    world.categories.retain(|category| *category != id);
                }
            }
        }
        4..=6 => {
            let (Some(author), Some(category)) = (
                pick(rng, &world.authors).cloned(),
                pick(rng, &world.categories).cloned(),
            ) else {
                return;
            };
            let n = world.next();
            let input = json!({
                "title": format!("Book {n}"), "isbn": isbn(n), "price": price(rng),
                "copiesTotal": 1 + rng.below(3), "authorId": author, "categoryId": category,
                "publishedYear": 1950 + rng.below(70),
            });
            let data = app
                .data(
                    lib,
                    "mutation($input: CreateBookInput!) { createBook(input: $input) { id } }",
                    json!({ "input": input }),
                )
                .await;
            world
                .books
                .push(data["createBook"]["id"].as_str().unwrap().to_owned());
            world.books_created += 1;
        }
        7 | 8 => {
            let Some(id) = pick(rng, &world.books).cloned() else {
                return;
            };
            let mut input = serde_json::Map::new();
            if rng.one_in(2) {
                input.insert("price".into(), json!(price(rng)));
            }
            if rng.one_in(3) {
                input.insert("copiesTotal".into(), json!(rng.below(4)));
            }
            if rng.one_in(3) {
                if let Some(author) = pick(rng, &world.authors) {
                    input.insert("authorId".into(), json!(author));
                }
            }
            if rng.one_in(3) {
                if let Some(category) = pick(rng, &world.categories) {
                    input.insert("categoryId".into(), json!(category));
                }
            }
            if rng.one_in(3) {
                input.insert("title".into(), json!(format!("Retitled {}", world.next())));
            }
            app.post(
                lib,
                "mutation($id: ID!, $input: UpdateBookInput!) { updateBook(id: $id, input: $input) { id } }",
                json!({ "id": id, "input": input }),
            )
            .await;
        }
        9 => {
            if let Some(id) = pick(rng, &world.books).cloned() {
                let (_, body) = app
                    .post(
                        lib,
                        "mutation($id: ID!) { deleteBook(id: $id) }",
                        json!({ "id": id }),
                    )
                    .await;
                if body["errors"].is_null() {
                    world.books.retain(|book| *book != id);
                }
            }
        }
        10 | 11 => {
            if world.members.is_empty() || world.books.is_empty() {
                return;
            }
            let member = rng.below(world.members.len());
            let book = rng.pick(&world.books).clone();
            let (_, body) = app
                .post(
                    Some(&world.members[member].1),
                    "mutation($id: ID!) { borrowBook(bookId: $id) { id } }",
                    json!({ "id": book }),
                )
                .await;
            if let Some(id) = body["data"]["borrowBook"]["id"].as_str() {
                world.loans.push((id.to_owned(), member));
            }
        }
        12 => {
            if world.loans.is_empty() {
                return;
            }
            let (id, member) = world.loans.swap_remove(rng.below(world.loans.len()));
            app.post(
                Some(&world.members[member].1),
                "mutation($id: ID!) { returnBook(borrowId: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        }
        13 => {
            let email = format!("member{}@example.org", world.next());
            let token = app.member(&email).await;
            world.members.push((email, token));
        }
        14 => {
            // The operator's commands: a role changed, an account removed
            // (refused while it has loans out).
            if world.members.is_empty() {
                return;
            }
            let (email, _) = world.members[rng.below(world.members.len())].clone();
            if rng.one_in(2) {
                let role = if rng.one_in(2) {
                    Role::Librarian
                } else {
                    Role::Member
                };
                // Refused for an account removed earlier.
                let _ = biblio::user_cli::set_role(&app.db, &email, role).await;
            } else if biblio::user_cli::remove(&app.db, &email).await.is_ok() {
                // Its index stays, so loans keep pointing at the right token;
                // the token no longer signs anyone in.
            }
        }
        _ => {
            // Another program's SQL, several rows at once.
            match rng.below(3) {
                0 => sql(app, "UPDATE books SET price_cents = price_cents + 101 WHERE price_cents < 4000").await,
                1 => sql(app, "UPDATE books SET copies_total = copies_total + 1, copies_available = copies_available + 1 WHERE copies_available = 0").await,
                _ => {
                    sql(
                        app,
                        "DELETE FROM books WHERE copies_available = copies_total AND price_cents > 6000",
                    )
                    .await;
                    let ids = column(app, "SELECT id FROM books").await;
                    world.books.retain(|id| ids.contains(id));
                }
            }
        }
    }
}

async fn column(app: &TestApp, sql: &str) -> Vec<String> {
    app.db
        .conn()
        .query_all(Statement::from_string(app.db.backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<uuid::Uuid>(0).unwrap().to_string())
        .collect()
}

async fn count(db: &Db, sql: &str) -> i64 {
    let row = db
        .conn()
        .query_one(Statement::from_string(db.backend(), sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// (kind, owner) → value, rows of value 0 left out.
async fn grouped(db: &Db, sql: &str) -> BTreeMap<(String, String), i64> {
    db.conn()
        .query_all(Statement::from_string(db.backend(), sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .iter()
        .map(|row| {
            let kind: String = row.try_get_by_index(0).unwrap();
            let owner: uuid::Uuid = row.try_get_by_index(1).unwrap();
            let value: i64 = row.try_get_by_index(2).unwrap();
            ((kind, owner.to_string()), value)
        })
        .filter(|(_, value)| *value != 0)
        .collect()
}

/// Every tally, counted again from the tables; active loans from the loan
/// records themselves.
pub(crate) async fn recount(db: &Db) -> BTreeMap<(String, String), i64> {
    let nil = uuid::Uuid::nil().to_string();
    let mut expected = BTreeMap::new();
    for (kind, sql) in [
        ("books", "SELECT COUNT(*) FROM books"),
        (
            "price_cents",
            "SELECT CAST(COALESCE(SUM(price_cents), 0) AS BIGINT) FROM books",
        ),
        (
            "copies_on_loan",
            "SELECT COUNT(*) FROM borrow_records WHERE returned_at IS NULL",
        ),
        (
            "books_available",
            "SELECT COUNT(*) FROM books WHERE copies_available > 0",
        ),
        ("authors", "SELECT COUNT(*) FROM authors"),
        ("categories", "SELECT COUNT(*) FROM categories"),
        (
            "members",
            "SELECT COUNT(*) FROM users WHERE role = 'MEMBER'",
        ),
    ] {
        expected.insert((kind.to_owned(), nil.clone()), count(db, sql).await);
    }
    expected.extend(
        grouped(
            db,
            "SELECT 'author_books', author_id, COUNT(*) FROM books GROUP BY author_id",
        )
        .await,
    );
    expected.extend(
        grouped(
            db,
            "SELECT 'category_books', category_id, COUNT(*) FROM books GROUP BY category_id",
        )
        .await,
    );
    expected.retain(|_, value| *value != 0);
    expected
}

pub(crate) async fn tallies(db: &Db) -> BTreeMap<(String, String), i64> {
    grouped(
        db,
        "SELECT kind, owner, CAST(SUM(value) AS BIGINT) FROM tallies GROUP BY kind, owner",
    )
    .await
}

/// A workload of `ops` random writes on a fresh service, calling `check`
/// after each burst and at the end.
async fn workload<F>(name: &str, check: F)
where
    F: for<'a> Fn(&'a TestApp, u64, &'a str) -> futures_util::future::BoxFuture<'a, ()>,
{
    let seed = seed();
    let ops = ops();
    eprintln!("{name}: seed {seed}, {ops} writes (BIBLIO_TALLY_SEED={seed} replays it)");
    // Members register throughout: lift the per-address sign-in throttle.
    let app = TestApp::builder()
        .configure(|config| config.throttle.attempts_per_address = 100_000)
        .spawn()
        .await;
    let mut rng = Rng(seed);
    let librarian = app.librarian().await;
    let mut world = World {
        librarian,
        authors: Vec::new(),
        categories: Vec::new(),
        books: Vec::new(),
        members: Vec::new(),
        loans: Vec::new(),
        next: 0,
        books_created: 0,
    };
    check(&app, seed, "before any write").await;
    for done in 0..ops {
        random_write(&app, &mut rng, &mut world).await;
        if (done + 1) % BURST == 0 || done + 1 == ops {
            check(&app, seed, &format!("after {} writes", done + 1)).await;
        }
    }
    // Over the run, not at its end: deletes may leave little standing.
    assert!(
        world.books_created > 2,
        "the workload created too few books to prove anything ({})",
        world.books_created
    );
}

#[tokio::test]
async fn every_tally_equals_a_recount_after_random_writes() {
    workload("tallies", |app, seed, point| {
        Box::pin(async move {
            let (kept, counted) = (tallies(&app.db).await, recount(&app.db).await);
            assert_eq!(
                kept, counted,
                "seed {seed}, {point}: tallies (left) vs recount"
            );
            // What pages and book counts read from them.
            let ids = |prefix: &str| -> Vec<uuid::Uuid> {
                counted
                    .keys()
                    .filter(|(kind, _)| kind == prefix)
                    .map(|(_, owner)| owner.parse().unwrap())
                    .collect()
            };
            let request = PageRequest::parse(1, 1).unwrap();
            for (per, kind) in [
                (CountPer::Author, "author_books"),
                (CountPer::Category, "category_books"),
            ] {
                let owners = ids(kind);
                let counts = biblio::db::books::counts(&app.db, per, &owners)
                    .await
                    .unwrap();
                for owner in &owners {
                    let filter = match per {
                        CountPer::Author => Filter {
                            author_id: Some(*owner),
                            ..Filter::default()
                        },
                        CountPer::Category => Filter {
                            category_id: Some(*owner),
                            ..Filter::default()
                        },
                    };
                    let page =
                        biblio::db::books::page(&app.db, &filter, SortOrder::TitleAsc, request)
                            .await
                            .unwrap();
                    let expected = counted[&(kind.to_owned(), owner.to_string())];
                    assert_eq!(
                        counts[owner], expected,
                        "seed {seed}, {point}: {kind} {owner}"
                    );
                    assert_eq!(
                        page.total_count as i64, expected,
                        "seed {seed}, {point}: page of {kind} {owner}"
                    );
                }
            }
            for (available, sql) in [
                (None, "SELECT COUNT(*) FROM books"),
                (
                    Some(true),
                    "SELECT COUNT(*) FROM books WHERE copies_available > 0",
                ),
                (
                    Some(false),
                    "SELECT COUNT(*) FROM books WHERE copies_available <= 0",
                ),
            ] {
                let filter = Filter {
                    available,
                    ..Filter::default()
                };
                let page = biblio::db::books::page(&app.db, &filter, SortOrder::Newest, request)
                    .await
                    .unwrap();
                assert_eq!(
                    page.total_count as i64,
                    count(&app.db, sql).await,
                    "seed {seed}, {point}: total of books with available = {available:?}"
                );
            }
        })
    })
    .await;
}

/// The statistics answer as the old aggregate queries computed it.
async fn recomputed_statistics(app: &TestApp) -> Value {
    let db = &app.db;
    let books = count(db, "SELECT COUNT(*) FROM books").await;
    let cents = count(
        db,
        "SELECT CAST(COALESCE(SUM(price_cents), 0) AS BIGINT) FROM books",
    )
    .await;
    let average = (books > 0).then(|| {
        (Decimal::new(cents, 2) / Decimal::from(books))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .to_string()
    });
    let by_category: Vec<Value> = app
        .db
        .conn()
        .query_all(Statement::from_string(
            app.db.backend(),
            "SELECT c.id, COUNT(b.id) FROM categories c LEFT JOIN books b ON b.category_id = c.id \
             GROUP BY c.id, c.name ORDER BY c.name",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let id: uuid::Uuid = row.try_get_by_index(0).unwrap();
            let n: i64 = row.try_get_by_index(1).unwrap();
            json!([id, n])
        })
        .collect();
    json!({
        "books": books,
        "authors": count(db, "SELECT COUNT(*) FROM authors").await,
        "categories": count(db, "SELECT COUNT(*) FROM categories").await,
        "members": count(db, "SELECT COUNT(*) FROM users WHERE role = 'MEMBER'").await,
        "activeBorrows": count(db, "SELECT COUNT(*) FROM borrow_records WHERE returned_at IS NULL").await,
        "averagePrice": average,
        "byCategory": by_category,
    })
}

#[tokio::test]
async fn statistics_equal_a_full_recomputation_after_random_writes() {
    workload("statistics", |app, seed, point| {
        Box::pin(async move {
            let kept = biblio::db::aggregates::statistics(&app.db).await.unwrap();
            let kept = json!({
                "books": kept.totals.books,
                "authors": kept.totals.authors,
                "categories": kept.totals.categories,
                "members": kept.totals.members,
                "activeBorrows": kept.totals.active_borrows,
                "averagePrice": kept.totals.average_price.map(|price| price.to_string()),
                "byCategory": kept.books_by_category.iter().map(|(id, n)| json!([id, n])).collect::<Vec<_>>(),
            });
            assert_eq!(
                kept,
                recomputed_statistics(app).await,
                "seed {seed}, {point}: statistics (left) vs recomputation"
            );
        })
    })
    .await;
}

#[tokio::test]
async fn the_migration_counts_what_the_tables_already_hold() {
    let (_database, url) = TestDatabase::create().await;
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let plan = biblio::seed::Plan {
        authors: 12,
        books: 90,
        members: 8,
        borrows: 120,
        seed: 3,
    };
    biblio::seed::run(
        &db,
        &plan,
        biblio::seed::Existing::Refuse,
        &biblio::seed::Passwords::same("password-1"),
    )
    .await
    .unwrap();
    let counted = recount(&db).await;
    assert_eq!(
        counted[&("books".to_owned(), uuid::Uuid::nil().to_string())],
        90
    );

    // Back to before the tallies (and the migrations after them), then up
    // again over the data already there.
    let since_tallies = migration::Migrator::migrations()
        .iter()
        .rev()
        .position(|step| step.name() == "m20261207_000001_create_tallies")
        .expect("the tallies' migration")
        + 1;
    migration::Migrator::down(db.conn(), Some(since_tallies as u32))
        .await
        .unwrap();
    assert!(!crate::binary::has_table(&url, "tallies").await);
    db.migrate().await.unwrap();

    assert_eq!(tallies(&db).await, counted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn borrows_and_returns_of_one_book_at_once_neither_deadlock_nor_miscount() {
    let app = TestApp::builder()
        .configure(|config| config.throttle.attempts_per_address = 100_000)
        .spawn()
        .await;
    let librarian = app.librarian().await;
    let author = app.create_author(&librarian, "Ada").await;
    let category = app.create_category(&librarian, "Poetry").await;
    let book = app
        .create_book(
            &librarian,
            crate::helpers::NewBook {
                title: "Shared",
                n: 1,
                author: &author,
                category: &category,
                copies: 12,
            },
        )
        .await;
    let mut members = Vec::new();
    for n in 0..12 {
        members.push(app.member(&format!("reader{n}@example.org")).await);
    }
    const BORROW: &str = "mutation($id: ID!) { borrowBook(bookId: $id) { id } }";
    const RETURN: &str = "mutation($id: ID!) { returnBook(borrowId: $id) { id } }";
    // Half the members hold a copy; each round they return it while the
    // other half borrow one, all at once, and then the halves swap.
    let mut loans: Vec<Option<String>> = vec![None; members.len()];
    for (i, member) in members.iter().enumerate().take(6) {
        let data = app.data(Some(member), BORROW, json!({ "id": book })).await;
        loans[i] = Some(data["borrowBook"]["id"].as_str().unwrap().to_owned());
    }
    for round in 0..12 {
        let requests = members.iter().zip(&loans).map(|(member, loan)| {
            let app = &app;
            let book = &book;
            async move {
                match loan {
                    Some(loan) => app.post(Some(member), RETURN, json!({ "id": loan })).await,
                    None => app.post(Some(member), BORROW, json!({ "id": book })).await,
                }
            }
        });
        let answers = futures_util::future::join_all(requests).await;
        for (i, (status, body)) in answers.into_iter().enumerate() {
            assert!(
                status == 200 && body["errors"].is_null(),
                "round {round}, member {i}: {body}"
            );
            loans[i] = body["data"]["borrowBook"]["id"].as_str().map(str::to_owned);
        }
        assert_eq!(
            tallies(&app.db).await,
            recount(&app.db).await,
            "round {round}"
        );
    }
}
