//! Writes from other programs: a change committed with plain SQL on a
//! connection of the test's own (as `psql` or `sqlite3` would make it) is
//! seen on every replica, whose caches were warm, as an uncached replica
//! (the oracle, mode `off`, on the same database) sees it. The triggers
//! record it, one replica takes it and publishes its invalidation, every
//! replica evicts (`src/cache/foreign.rs`).
use crate::helpers::{catalogue, eventually, isbn, Catalogue, TestApp, TestRedis};
use biblio::cache::Mode;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};
use serde_json::{json, Value as Json};
use uuid::Uuid;

/// Two cached replicas, an uncached oracle on their database, and a plain
/// connection to it that biblio does not know.
struct Deployment {
    replicas: Vec<TestApp>,
    oracle: TestApp,
    _redis: TestRedis,
    cat: Catalogue,
    foreign: DatabaseConnection,
}

/// A read and its variables, with the token it is made with.
type Read = (&'static str, Json, Option<String>);

const BOOK: &str =
    "query($id: ID!) { book(id: $id) { title price copiesAvailable author { name } } }";
const BY_TITLE: &str = "{ books(pageSize: 50) { totalCount items { id title price } } }";
const BY_PRICE: &str =
    "{ books(orderBy: PRICE_DESC, pageSize: 50) { totalCount items { id title price } } }";
const AVAILABLE: &str =
    "{ books(filter: { available: true }, pageSize: 50) { totalCount items { id } } }";
const SEARCH: &str =
    "query($q: String!) { searchBooks(query: $q, pageSize: 50) { totalCount items { title } } }";
const STATS: &str = "{ statistics { totalBooks totalAuthors totalMembers activeBorrows averagePrice booksByCategory { category { name } count } } }";
const AUTHOR: &str = "query($id: ID!) { author(id: $id) { name bookCount books(pageSize: 50) { totalCount items { title price } } } }";
const AUTHORS: &str = "{ authors { totalCount items { name bookCount } } }";
const LOANS: &str =
    "query($s: BorrowStatus!) { myBorrows(status: $s) { totalCount items { id returnedAt } } }";

impl Deployment {
    async fn start(books: usize) -> Self {
        let (replicas, redis) = TestApp::builder().replicas(2).spawn_replicas().await;
        let oracle = TestApp::builder()
            .cache_mode(Mode::Off)
            .shared_database(&replicas[0].database_url)
            .shared_redis(&redis)
            .spawn()
            .await;
        let cat = catalogue(&replicas[0], books).await;
        let foreign = sea_orm::Database::connect(&replicas[0].database_url)
            .await
            .expect("a plain connection to the database");
        Self {
            replicas,
            oracle,
            _redis: redis,
            cat,
            foreign,
        }
    }

    fn backend(&self) -> DbBackend {
        self.foreign.get_database_backend()
    }

    /// `sql` with `?` placeholders, as the backend spells them.
    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let sql = match self.backend() {
            DbBackend::Postgres => {
                let mut numbered = String::new();
                for (n, part) in sql.split('?').enumerate() {
                    if n > 0 {
                        numbered.push_str(&format!("${n}"));
                    }
                    numbered.push_str(part);
                }
                numbered
            }
            _ => sql.to_owned(),
        };
        Statement::from_sql_and_values(self.backend(), sql, values)
    }

    /// Runs `statements` in one transaction of the plain connection;
    /// returns the rows they changed.
    async fn foreign_write(&self, statements: &[(&str, Vec<Value>)]) -> u64 {
        let txn = self.foreign.begin().await.expect("a transaction");
        let mut changed = 0;
        for (sql, values) in statements {
            changed += txn
                .execute(self.statement(sql, values.clone()))
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err}"))
                .rows_affected();
        }
        txn.commit().await.expect("the foreign write commits");
        changed
    }

    /// Reads each of `reads` twice on every replica, so both tiers hold it.
    async fn warm(&self, reads: &[Read]) {
        for replica in &self.replicas {
            for (query, variables, token) in reads {
                for _ in 0..2 {
                    replica
                        .data(token.as_deref(), query, variables.clone())
                        .await;
                }
            }
        }
    }

    /// Waits until every replica answers each of `reads` as the oracle does.
    async fn converge(&self, reads: &[Read]) {
        for (query, variables, token) in reads {
            let token = token.as_deref();
            let expected = self.oracle.data(token, query, variables.clone()).await;
            for replica in &self.replicas {
                eventually(|| async {
                    replica.data(token, query, variables.clone()).await == expected
                })
                .await;
            }
        }
    }

    /// Rows of other programs' writes the replicas took, all together.
    fn taken(&self) -> u64 {
        self.replicas
            .iter()
            .map(|replica| replica.cache.metrics().foreign_changes_taken())
            .sum()
    }

    fn clears(&self) -> u64 {
        self.replicas
            .iter()
            .map(|replica| replica.cache.metrics().foreign_clears())
            .sum()
    }

    /// The reads of the whole catalogue every test warms.
    fn catalogue_reads(&self) -> Vec<Read> {
        let mut reads: Vec<Read> = vec![
            (BY_TITLE, json!({}), None),
            (BY_PRICE, json!({}), None),
            (AVAILABLE, json!({}), None),
            (SEARCH, json!({ "q": "book" }), None),
            (SEARCH, json!({ "q": "foreign" }), None),
            (SEARCH, json!({ "q": "lem" }), None),
            (STATS, json!({}), None),
            (AUTHORS, json!({}), None),
        ];
        for author in &self.cat.authors {
            reads.push((AUTHOR, json!({ "id": author }), None));
        }
        for book in &self.cat.books {
            reads.push((BOOK, json!({ "id": book }), None));
        }
        reads
    }

    /// Warms `reads`, runs `write`, and checks every replica converges.
    async fn check(&self, reads: &[Read], write: &[(&str, Vec<Value>)]) -> u64 {
        self.warm(reads).await;
        let before: Vec<Json> = futures_util::future::join_all(
            reads
                .iter()
                .map(|(q, v, t)| self.oracle.data(t.as_deref(), q, v.clone())),
        )
        .await;
        let heard = |replica: &TestApp| {
            let metrics = replica.cache.metrics();
            (
                metrics.foreign_changes_taken() + metrics.foreign_clears(),
                metrics.events_received(),
            )
        };
        let before_write: Vec<_> = self.replicas.iter().map(heard).collect();
        let changed = self.foreign_write(write).await;
        let committed = std::time::Instant::now();
        // Each replica took the change (or cleared the cache for it), or
        // heard an event about it.
        let reached = eventually(|| async {
            self.replicas
                .iter()
                .zip(&before_write)
                .all(|(replica, before)| {
                    let now = heard(replica);
                    now.0 > before.0 || now.1 > before.1
                })
        })
        .await;
        // Printed, not asserted: the bound is 50 ms on a healthy deployment.
        eprintln!(
            "the change reached every replica {:?} after its commit",
            reached - committed
        );
        self.converge(reads).await;
        let after: Vec<Json> = futures_util::future::join_all(
            reads
                .iter()
                .map(|(q, v, t)| self.oracle.data(t.as_deref(), q, v.clone())),
        )
        .await;
        assert_ne!(before, after, "the write changed what the reads answer");
        changed
    }
}

fn uuid(id: &str) -> Value {
    Value::from(Uuid::parse_str(id).expect("an id"))
}

#[tokio::test]
async fn a_foreign_retitle_is_seen_on_every_replica() {
    let d = Deployment::start(4).await;
    let reads = d.catalogue_reads();
    d.check(
        &reads,
        &[(
            "UPDATE books SET title = 'A Foreign Title' WHERE id = ?",
            vec![uuid(&d.cat.books[1])],
        )],
    )
    .await;
    let book = d.replicas[1]
        .data(None, BOOK, json!({ "id": d.cat.books[1] }))
        .await;
    assert_eq!(book["book"]["title"], "A Foreign Title");
    assert_eq!(d.taken(), 1, "one replica took the one row");
}

#[tokio::test]
async fn a_foreign_price_change_is_seen_on_every_replica() {
    let d = Deployment::start(4).await;
    let reads = d.catalogue_reads();
    d.check(
        &reads,
        &[(
            "UPDATE books SET price_cents = 4242 WHERE id = ?",
            vec![uuid(&d.cat.books[2])],
        )],
    )
    .await;
    assert_eq!(d.taken(), 1);
}

#[tokio::test]
async fn a_foreign_insert_and_delete_are_seen_on_every_replica() {
    let d = Deployment::start(4).await;
    let reads = d.catalogue_reads();
    let id = Uuid::now_v7();
    let now = Value::from(biblio::db::now());
    d.check(
        &reads,
        &[(
            "INSERT INTO books (id, title, isbn, price_cents, published_year, copies_total, \
             copies_available, author_id, category_id, created_at, updated_at) \
             VALUES (?, 'Foreign Arrival', ?, 1999, 2001, 3, 3, ?, ?, ?, ?)",
            vec![
                Value::from(id),
                Value::from(isbn(900)),
                uuid(&d.cat.authors[1]),
                uuid(&d.cat.categories[0]),
                now.clone(),
                now,
            ],
        )],
    )
    .await;
    let mut reads = reads;
    reads.push((BOOK, json!({ "id": id.to_string() }), None));
    d.check(
        &reads,
        &[(
            "DELETE FROM books WHERE id = ?",
            vec![uuid(&d.cat.books[0])],
        )],
    )
    .await;
    assert_eq!(d.taken(), 2);
}

#[tokio::test]
async fn a_foreign_return_of_a_loan_is_seen_on_every_replica() {
    let d = Deployment::start(2).await;
    let member = d.replicas[0].member("reader@example.com").await;
    let lent = d.replicas[0]
        .data(
            Some(&member),
            "mutation($id: ID!) { borrowBook(bookId: $id) { id } }",
            json!({ "id": d.cat.books[0] }),
        )
        .await;
    let loan = lent["borrowBook"]["id"].as_str().unwrap().to_owned();
    let mut reads = d.catalogue_reads();
    for status in ["ALL", "ACTIVE", "RETURNED"] {
        reads.push((LOANS, json!({ "s": status }), Some(member.clone())));
    }
    // The loan's return and the copy back on the shelf, as the service
    // would do them, in one transaction of another program.
    d.check(
        &reads,
        &[
            (
                "UPDATE borrow_records SET returned_at = ? WHERE id = ?",
                vec![Value::from(biblio::db::now()), uuid(&loan)],
            ),
            (
                "UPDATE books SET copies_available = copies_available + 1 WHERE id = ?",
                vec![uuid(&d.cat.books[0])],
            ),
        ],
    )
    .await;
    assert_eq!(d.taken(), 2);
}

#[tokio::test]
async fn a_foreign_author_rename_is_seen_in_books_search_and_lists() {
    let d = Deployment::start(4).await;
    let reads = d.catalogue_reads();
    d.check(
        &reads,
        &[(
            "UPDATE authors SET name = 'Foreign Lemma' WHERE id = ?",
            vec![uuid(&d.cat.authors[1])],
        )],
    )
    .await;
    let found = d.replicas[1]
        .data(None, SEARCH, json!({ "q": "foreign" }))
        .await;
    assert_eq!(found["searchBooks"]["totalCount"], 2);
}

#[tokio::test]
async fn a_foreign_bulk_update_becomes_one_invalidation() {
    let d = Deployment::start(12).await;
    let reads = d.catalogue_reads();
    let published = |d: &Deployment| -> u64 {
        d.replicas
            .iter()
            .map(|replica| replica.cache.metrics().events_published())
            .sum()
    };
    let events = published(&d);
    let changed = d
        .check(
            &reads,
            &[("UPDATE books SET price_cents = price_cents + 100", vec![])],
        )
        .await;
    assert_eq!(changed, 12);
    assert_eq!(d.taken(), 12, "every row taken once");
    assert!(
        published(&d) - events <= 2,
        "twelve rows, one or two events (a poll may split them), not twelve"
    );
    assert_eq!(d.clears(), 0, "under the cap: named, not cleared");
}

#[tokio::test]
async fn a_foreign_write_of_more_rows_than_the_cap_clears_the_cache_once() {
    let d = Deployment::start(2).await;
    let reads = d.catalogue_reads();
    let id = match d.backend() {
        DbBackend::Postgres => "gen_random_uuid()",
        _ => "randomblob(16)",
    };
    let number = match d.backend() {
        DbBackend::Postgres => "lpad(i::text, 10, '0')",
        _ => "substr('0000000000' || i, -10, 10)",
    };
    let insert = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) \
         INSERT INTO books (id, title, isbn, price_cents, published_year, copies_total, \
         copies_available, author_id, category_id, created_at, updated_at) \
         SELECT {id}, 'Imported ' || i, '979' || {number}, 700, 1999, 1, 1, b.author_id, \
         b.category_id, b.created_at, b.updated_at FROM n, (SELECT * FROM books WHERE id = ?) b"
    );
    let changed = d
        .check(&reads, &[(insert.as_str(), vec![uuid(&d.cat.books[0])])])
        .await;
    assert_eq!(changed, 600);
    eventually(|| async { d.clears() >= 1 }).await;
    let statistics = d.replicas[1].data(None, STATS, json!({})).await;
    assert_eq!(statistics["statistics"]["totalBooks"], 602);
}

#[tokio::test]
async fn biblios_own_writes_are_announced_once_by_their_outbox_not_by_the_triggers() {
    let d = Deployment::start(3).await;
    let reads = d.catalogue_reads();
    d.warm(&reads).await;
    d.replicas[0]
        .data(
            Some(&d.cat.librarian),
            "mutation($id: ID!) { updateBook(id: $id, input: { title: \"Own Title\" }) { title } }",
            json!({ "id": d.cat.books[0] }),
        )
        .await;
    d.converge(&reads).await;
    // A foreign write after it, so that once it is taken the table has
    // been read past the mutation.
    d.foreign_write(&[(
        "UPDATE books SET title = 'Foreign Title' WHERE id = ?",
        vec![uuid(&d.cat.books[1])],
    )])
    .await;
    d.converge(&reads).await;
    eventually(|| async { d.taken() == 1 }).await;
    let rows = d
        .foreign
        .query_one(Statement::from_string(
            d.backend(),
            "SELECT COUNT(*) FROM cache_changes",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(rows, 0, "taken rows are pruned");
    assert_eq!(
        d.taken(),
        1,
        "the catalogue and the mutation were not recorded"
    );
}

/// `/readyz`'s status code and body.
async fn readiness(app: &TestApp) -> (u16, Json) {
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .expect("/readyz answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("/readyz answers JSON"))
}

/// Runs `sql` on a connection of its own, as `psql` or `sqlite3` would.
async fn run_foreign(app: &TestApp, sql: &str) {
    let foreign = sea_orm::Database::connect(&app.database_url)
        .await
        .expect("a plain connection to the database");
    foreign
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
    foreign.close().await.expect("the connection closes");
}

/// Waits until `/readyz` says a trigger is down, checks that the replica
/// stays in rotation (200, "degraded": every replica alike would go), and
/// returns the body.
async fn degraded_by_triggers(app: &TestApp) -> Json {
    eventually(|| async { readiness(app).await.1["checks"]["triggers"]["status"] == "down" }).await;
    let (status, body) = readiness(app).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("degraded")),
        "{body}"
    );
    assert_eq!(body["checks"]["triggers"]["status"], "down", "{body}");
    body
}

#[tokio::test]
async fn readiness_names_an_outbox_trigger_that_was_dropped() {
    let app = crate::helpers::spawn_app().await;
    assert_eq!(readiness(&app).await.0, 200);
    let drop = match app.db.backend() {
        DbBackend::Postgres => "DROP TRIGGER announce_books_update ON books",
        _ => "DROP TRIGGER announce_books_update",
    };

    run_foreign(&app, drop).await;

    let body = degraded_by_triggers(&app).await;
    assert_eq!(body["checks"]["database"]["status"], "up", "{body}");
    let triggers = &body["checks"]["triggers"];
    assert_eq!(
        triggers["missing"],
        json!(["books.announce_books_update"]),
        "{body}"
    );
    assert_eq!(triggers["disabled"], json!([]), "{body}");
}

/// The triggers that keep the search's own tables (an FTS5 table on
/// SQLite, the titles on PostgreSQL) are checked as the announcing ones.
#[tokio::test]
async fn readiness_names_a_search_trigger_that_was_dropped_or_disabled() {
    let app = crate::helpers::spawn_app().await;
    assert_eq!(readiness(&app).await.0, 200);
    let (change, missing, disabled) = match app.db.backend() {
        DbBackend::Postgres => (
            "ALTER TABLE books DISABLE TRIGGER book_titles_update",
            json!([]),
            json!(["books.book_titles_update"]),
        ),
        _ => (
            "DROP TRIGGER search_books_update",
            json!(["books.search_books_update"]),
            json!([]),
        ),
    };

    run_foreign(&app, change).await;

    let body = degraded_by_triggers(&app).await;
    let triggers = &body["checks"]["triggers"];
    assert_eq!(triggers["missing"], missing, "{body}");
    assert_eq!(triggers["disabled"], disabled, "{body}");
}

/// Runs only against PostgreSQL (`BIBLIO_TEST_DATABASE=postgres`, as CI's
/// second run does): SQLite's triggers cannot be disabled, only dropped.
#[tokio::test]
async fn readiness_names_a_disabled_outbox_trigger_until_it_is_enabled_again() {
    let app = crate::helpers::spawn_app().await;
    if app.db.backend() != DbBackend::Postgres {
        return;
    }
    assert_eq!(readiness(&app).await.0, 200);

    run_foreign(
        &app,
        "ALTER TABLE books DISABLE TRIGGER announce_books_update",
    )
    .await;

    let body = degraded_by_triggers(&app).await;
    let triggers = &body["checks"]["triggers"];
    assert_eq!(
        triggers["disabled"],
        json!(["books.announce_books_update"]),
        "{body}"
    );
    assert_eq!(triggers["missing"], json!([]), "{body}");

    run_foreign(
        &app,
        "ALTER TABLE books ENABLE TRIGGER announce_books_update",
    )
    .await;

    eventually(|| async { readiness(&app).await.1["checks"]["triggers"]["status"] == "up" }).await;
    let (_, body) = readiness(&app).await;
    assert_eq!(body["status"], "ready", "{body}");
}

/// Runs only against PostgreSQL, as above. A trigger that fires only in
/// sessions with `session_replication_role = replica` does not fire for
/// `psql` or an import: it is as good as disabled.
#[tokio::test]
async fn readiness_counts_a_replica_only_outbox_trigger_as_disabled() {
    let app = crate::helpers::spawn_app().await;
    if app.db.backend() != DbBackend::Postgres {
        return;
    }

    run_foreign(
        &app,
        "ALTER TABLE authors ENABLE REPLICA TRIGGER announce_authors_delete",
    )
    .await;

    let (status, body) = readiness(&app).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("degraded")),
        "{body}"
    );
    assert_eq!(
        body["checks"]["triggers"]["disabled"],
        json!(["authors.announce_authors_delete"]),
        "{body}"
    );
}

#[tokio::test]
async fn frequent_readiness_probes_check_the_triggers_once_not_once_each() {
    let app = crate::helpers::spawn_app().await;
    assert_eq!(readiness(&app).await.0, 200);
    let before = app.db.statements_executed();

    for _ in 0..20 {
        assert_eq!(readiness(&app).await.0, 200);
    }

    // Each probe pings the database (one statement); the triggers are read
    // again at most once in the interval, however many probes come.
    let statements = app.db.statements_executed() - before;
    assert!(
        (20..=21).contains(&statements),
        "20 probes ran {statements} statements"
    );
}

/// Taking other programs' rows is a write, which can wait behind other
/// writers (SQLite's write lock; here, on PostgreSQL, a lock held on the
/// outbox the take records into). A replica publishes what the rows it read
/// invalidate before taking them, so the change reaches every replica while
/// the take waits, and through the trusted bus, not by entries aging out.
#[tokio::test]
async fn a_foreign_change_reaches_every_replica_while_taking_it_waits_for_a_lock() {
    let d = Deployment::start(2).await;
    if d.backend() != DbBackend::Postgres {
        eprintln!(
            "skipped: an outbox lock needs PostgreSQL (BIBLIO_TEST_DATABASE=postgres runs it)"
        );
        return;
    }
    let book = json!({ "id": d.cat.books[0] });
    d.warm(&[(BOOK, book.clone(), None)]).await;
    let blocker = d.foreign.begin().await.expect("a transaction");
    blocker
        .execute_unprepared("LOCK TABLE cache_outbox IN SHARE MODE")
        .await
        .expect("the outbox is locked against inserts");

    d.foreign_write(&[(
        "UPDATE books SET title = 'Under Lock' WHERE id = ?",
        vec![uuid(&d.cat.books[0])],
    )])
    .await;
    for replica in &d.replicas {
        eventually(|| async {
            replica.data(None, BOOK, book.clone()).await["book"]["title"] == "Under Lock"
        })
        .await;
        assert!(
            replica.cache.health().bus_trusted,
            "seen through the bus, not by entries aging out of an untrusted cache"
        );
    }
    assert_eq!(d.taken(), 0, "no replica could take the row meanwhile");

    blocker.rollback().await.expect("the lock is released");
    eventually(|| async { d.taken() == 1 }).await;
}
