//! Search through its index (FTS5 on SQLite, `pg_trgm` on PostgreSQL)
//! against the scan that defines it: on random titles and author names
//! (LIKE metacharacters, mixed case, non-ASCII, one and two characters),
//! random queries (substrings of titles and names, random strings, one
//! and two characters, in another case), every answer of `searchBooks`
//! (ids in order and `totalCount`, over several pages and one past the
//! end) must equal a `LIKE` scan run by the test on the same database:
//!
//! ```sql
//! SELECT books.id FROM books JOIN authors ON authors.id = books.author_id
//! WHERE lower(books.title) LIKE p ESCAPE '\' OR lower(authors.name) LIKE p ESCAPE '\'
//! ORDER BY books.title, books.id
//! ```
//!
//! Between rounds, random writes through the API (new books, retitles,
//! moves to another author, deletions, new authors, author renames) exercise the
//! triggers that keep the index.
//!
//! `BIBLIO_SEARCH_SEED=S` replays a seed (printed at the start and on
//! failure).
use crate::helpers::{isbn, TestApp};
use biblio::cache::Mode;
use biblio::seed::Rng;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};

/// Pieces titles, names and queries are made of: LIKE's metacharacters
/// and escape, FTS5's quote and star, ASCII in both cases, letters whose
/// case folding goes beyond ASCII (É/é, the Kelvin sign that folds to
/// `k`, the long s that folds to `s`, ß, İ that lower-cases to two
/// characters, the titlecase ǅ), a character outside the BMP, and common
/// runs so that queries match often.
const PIECES: &[&str] = &[
    "a", "b", "c", "k", "s", "A", "B", "K", "S", "%", "_", "\\", " ", "\"", "*", "é", "É",
    "\u{212A}", "\u{17F}", "ß", "İ", "ǅ", "😀", "ab", "abc", "Abc", "gar", "den", "GARDEN",
    "Garden", "50%", "a_b", "x\\y",
];

const SEARCH: &str = "query($q: String!, $page: Int!, $size: Int!) { \
    searchBooks(query: $q, page: $page, pageSize: $size) { totalCount items { id } } }";

#[tokio::test]
async fn search_answers_equal_a_like_scan_on_random_titles_names_queries_and_writes() {
    let seed = seed();
    eprintln!("search_index: seed {seed} (BIBLIO_SEARCH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let app = uncached_app().await;
    let librarian = app.librarian().await;
    let category = app.create_category(&librarian, "Any").await;
    let mut authors = Vec::new();
    for _ in 0..6 {
        let name = text(&mut rng, 4);
        authors.push(app.create_author(&librarian, &name).await);
    }
    let mut books = Vec::new();
    let mut next_isbn = 0;
    for _ in 0..40 {
        let title = text(&mut rng, 5);
        let author = rng.pick(&authors).clone();
        books.push(create_book(&app, &librarian, &title, &author, &category, next_isbn).await);
        next_isbn += 1;
    }

    for round in 0..4 {
        check_random_queries(&app, &mut rng, seed, &format!("round {round}"), 40).await;
        for _ in 0..12 {
            match rng.below(6) {
                5 => {
                    let name = text(&mut rng, 4);
                    authors.push(app.create_author(&librarian, &name).await);
                }
                0 => {
                    let title = text(&mut rng, 5);
                    let author = rng.pick(&authors).clone();
                    books.push(
                        create_book(&app, &librarian, &title, &author, &category, next_isbn).await,
                    );
                    next_isbn += 1;
                }
                1 => {
                    let book = rng.pick(&books).clone();
                    let title = text(&mut rng, 5);
                    update_book(&app, &librarian, &book, json!({ "title": title })).await;
                }
                2 => {
                    let book = rng.pick(&books).clone();
                    let author = rng.pick(&authors).clone();
                    update_book(&app, &librarian, &book, json!({ "authorId": author })).await;
                }
                3 => {
                    let author = rng.pick(&authors).clone();
                    let name = text(&mut rng, 4);
                    let data = app
                        .data(
                            Some(&librarian),
                            "mutation($id: ID!, $name: String!) { \
                             updateAuthor(id: $id, input: { name: $name }) { id } }",
                            json!({ "id": author, "name": name }),
                        )
                        .await;
                    assert_eq!(data["updateAuthor"]["id"], json!(author), "seed {seed}");
                }
                _ if books.len() > 10 => {
                    let book = books.swap_remove(rng.below(books.len()));
                    let data = app
                        .data(
                            Some(&librarian),
                            "mutation($id: ID!) { deleteBook(id: $id) }",
                            json!({ "id": book }),
                        )
                        .await;
                    assert_eq!(data["deleteBook"], json!(book), "seed {seed}");
                }
                _ => {}
            }
        }
    }
    check_random_queries(&app, &mut rng, seed, "after the last writes", 40).await;
}

#[tokio::test]
async fn search_answers_equal_a_like_scan_after_a_seed_rebuilt_the_index() {
    let app = uncached_app().await;
    let plan = biblio::seed::Plan {
        authors: 30,
        books: 400,
        members: 5,
        borrows: 20,
        seed: 11,
    };
    biblio::seed::run(
        &app.db,
        &plan,
        biblio::seed::Existing::Refuse,
        &biblio::seed::Passwords::same("same-for-all"),
    )
    .await
    .unwrap();

    // The seed's vocabulary (common and rare words, a word of its bios,
    // which search does not read), no match at all, and the last names of
    // authors it made (matched by name only).
    let mut queries: Vec<String> = [
        "garden", "GARDEN", "the", "of the", "lisbon", "writes", "zqx", "ar", "e",
    ]
    .map(str::to_owned)
    .to_vec();
    let authors = app
        .db
        .conn()
        .query_all(Statement::from_string(
            app.db.backend(),
            "SELECT name FROM authors ORDER BY name LIMIT 3",
        ))
        .await
        .unwrap();
    queries.extend(authors.iter().filter_map(|row| {
        let name = row.try_get_by_index::<String>(0).ok()?;
        name.split(' ').nth(1).map(str::to_owned)
    }));
    for query in &queries {
        for size in [7, 50] {
            check(&app, 0, "after a seed", query, size).await;
        }
    }
}

/// Another program empties `books` at once (PostgreSQL's TRUNCATE fires no
/// row trigger; SQLite has none, so a DELETE) and loads the same rows again:
/// the search's own tables follow, with no duplicate left to refuse the
/// reload and no old title left to count.
#[tokio::test]
async fn search_answers_equal_a_like_scan_after_books_are_emptied_and_loaded_again() {
    let app = uncached_app().await;
    biblio::seed::run(
        &app.db,
        &biblio::seed::Plan {
            authors: 20,
            books: 200,
            members: 5,
            borrows: 20,
            seed: 12,
        },
        biblio::seed::Existing::Refuse,
        &biblio::seed::Passwords::same("same-for-all"),
    )
    .await
    .unwrap();
    let emptied = match app.db.backend() {
        sea_orm::DbBackend::Postgres => "TRUNCATE books, borrow_records",
        _ => "DELETE FROM borrow_records; DELETE FROM books",
    };
    // Another program's connection, as an import's would be.
    let conn = sea_orm::Database::connect(&app.database_url)
        .await
        .expect("a plain connection to the database");
    conn.execute_unprepared("CREATE TABLE saved_books AS SELECT * FROM books")
        .await
        .unwrap();
    for statement in emptied.split("; ") {
        conn.execute_unprepared(statement)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    for query in ["garden", "the"] {
        check(&app, 0, "after books were emptied", query, 50).await;
    }
    conn.execute_unprepared("INSERT INTO books SELECT * FROM saved_books WHERE title < 'M'")
        .await
        .expect("the same rows load again");
    for query in ["garden", "the", "of the"] {
        for size in [7, 50] {
            check(&app, 0, "after books were loaded again", query, size).await;
        }
    }
}

/// A service with every cache off: each search reaches the database.
async fn uncached_app() -> TestApp {
    TestApp::builder()
        .cache_mode(Mode::Off)
        .configure(|config| config.response_cache = None)
        .spawn()
        .await
}

/// `queries` random queries, each compared with the scan at random page
/// sizes, over every page and one past the end (at most four pages).
async fn check_random_queries(app: &TestApp, rng: &mut Rng, seed: u64, when: &str, queries: usize) {
    let strings = stored_strings(app).await;
    for _ in 0..queries {
        let query = match rng.below(4) {
            // A substring of a stored title or name, maybe in another case.
            0 | 1 => {
                let source: Vec<char> = rng.pick(&strings).chars().collect();
                let start = rng.below(source.len());
                let len = 1 + rng.below((source.len() - start).min(6));
                let sub: String = source[start..start + len].iter().collect();
                match rng.below(3) {
                    0 => sub.to_uppercase(),
                    _ => sub,
                }
            }
            // One or two characters.
            2 => text(rng, 1).chars().take(1 + rng.below(2)).collect(),
            _ => text(rng, 3),
        };
        if query.split_whitespace().next().is_none() {
            continue;
        }
        let size = *rng.pick(&[1, 3, 7, 50]);
        check(app, seed, when, &query, size).await;
    }
}

/// Every page of `query` at `size` (up to four) and the one after the
/// last: the API's ids and total equal the scan's.
async fn check(app: &TestApp, seed: u64, when: &str, query: &str, size: usize) {
    let mut page = 1;
    loop {
        let (api, scan) = answers(app, query, page, size).await;
        assert_eq!(
            api, scan,
            "seed {seed}, {when}: searchBooks({query:?}, page {page}, pageSize {size}) \
             differs from the scan (left: API, right: scan)"
        );
        if scan.1.is_empty() || page == 4 {
            break;
        }
        page += 1;
    }
}

/// (totalCount, ids) of one page, from the API and from the scan.
async fn answers(
    app: &TestApp,
    query: &str,
    page: usize,
    size: usize,
) -> ((i64, Vec<String>), (i64, Vec<String>)) {
    let data = app
        .data(
            None,
            SEARCH,
            json!({ "q": query, "page": page, "size": size }),
        )
        .await;
    let found = &data["searchBooks"];
    let api = (
        found["totalCount"].as_i64().expect("a total"),
        found["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["id"].as_str().expect("an id").to_owned())
            .collect(),
    );
    let all = scan(app, query).await;
    let total = all.len() as i64;
    let ids = all.into_iter().skip((page - 1) * size).take(size).collect();
    (api, (total, ids))
}

/// The ids of the books matching `query` by the definition, in order: the
/// query normalised as the API documents (whitespace collapsed, lower
/// case), its LIKE metacharacters escaped.
async fn scan(app: &TestApp, query: &str) -> Vec<String> {
    let normalized = query
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let mut pattern = String::from("%");
    for c in normalized.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    let placeholder = match app.db.backend() {
        sea_orm::DbBackend::Postgres => "$1",
        _ => "?1",
    };
    let sql = format!(
        "SELECT books.id FROM books JOIN authors ON authors.id = books.author_id \
         WHERE lower(books.title) LIKE {placeholder} ESCAPE '\\' \
         OR lower(authors.name) LIKE {placeholder} ESCAPE '\\' \
         ORDER BY books.title, books.id"
    );
    app.db
        .conn()
        .query_all(Statement::from_sql_and_values(
            app.db.backend(),
            &sql,
            [pattern.into()],
        ))
        .await
        .expect("the scan runs")
        .iter()
        .map(|row| {
            row.try_get_by_index::<uuid::Uuid>(0)
                .expect("an id")
                .to_string()
        })
        .collect()
}

/// Every title and author name stored, for queries cut from them.
async fn stored_strings(app: &TestApp) -> Vec<String> {
    app.db
        .conn()
        .query_all(Statement::from_string(
            app.db.backend(),
            "SELECT title FROM books UNION ALL SELECT name FROM authors",
        ))
        .await
        .expect("the strings are readable")
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a string"))
        .collect()
}

/// One to `most` pieces, trimmed (as titles and names are stored); never
/// blank.
fn text(rng: &mut Rng, most: usize) -> String {
    loop {
        let pieces = 1 + rng.below(most);
        let text: String = (0..pieces).map(|_| *rng.pick(PIECES)).collect();
        if !text.trim().is_empty() {
            return text.trim().to_owned();
        }
    }
}

async fn create_book(
    app: &TestApp,
    librarian: &str,
    title: &str,
    author: &str,
    category: &str,
    n: u64,
) -> String {
    let data = app
        .data(
            Some(librarian),
            "mutation($input: CreateBookInput!) { createBook(input: $input) { id } }",
            json!({ "input": {
                "title": title, "isbn": isbn(n), "price": "10.00",
                "copiesTotal": 1, "authorId": author, "categoryId": category,
            } }),
        )
        .await;
    data["createBook"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createBook({title:?}): {data}"))
        .to_owned()
}

async fn update_book(app: &TestApp, librarian: &str, id: &str, input: Value) {
    let data = app
        .data(
            Some(librarian),
            "mutation($id: ID!, $input: UpdateBookInput!) { updateBook(id: $id, input: $input) { id } }",
            json!({ "id": id, "input": input }),
        )
        .await;
    assert_eq!(data["updateBook"]["id"], json!(id), "updateBook: {data}");
}

fn seed() -> u64 {
    match std::env::var("BIBLIO_SEARCH_SEED") {
        Ok(seed) => seed.trim().parse().unwrap_or_else(|_| {
            panic!("BIBLIO_SEARCH_SEED must be an unsigned integer, not {seed:?}")
        }),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or_default();
            Rng(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
        }
    }
}

/// Runs only against SQLite (PostgreSQL's planner takes no index hint, and
/// its scan reads the tables, not an index). The scan of a one- or
/// two-character search reads books in author order, so that each author
/// it looks up follows the last: `idx_books_title (title, id, author_id)`
/// holds every column it needs too, and walking it looked authors up at
/// random, 3.2 s against 0.7 s at 1,000,000 books (BENCHMARKS.md).
#[tokio::test]
async fn a_short_search_scans_books_in_author_order() {
    let app = uncached_app().await;
    if app.db.backend() != sea_orm::DbBackend::Sqlite {
        return;
    }
    let text = biblio::domain::SearchText::parse("ar").unwrap();
    let request = biblio::domain::PageRequest::parse(1, 20).unwrap();
    let mut statement = biblio::db::short_text_page(app.db.backend(), &text, request);
    statement.sql = format!("EXPLAIN QUERY PLAN {}", statement.sql);
    let plan: Vec<String> = app
        .db
        .conn()
        .query_all(statement)
        .await
        .expect("the plan")
        .iter()
        .map(|row| row.try_get_by_index::<String>(3).expect("a step"))
        .collect();
    assert!(
        plan.iter()
            .any(|step| step.contains("SCAN books USING COVERING INDEX idx_books_author_title")),
        "{plan:#?}"
    );
}
