//! An index for `searchBooks`: books whose title or author's name contains
//! the search text, case-insensitively (`lower(books.title) LIKE '%t%'
//! ESCAPE '\' OR lower(authors.name) LIKE '%t%' ESCAPE '\'`), found without
//! reading every book, with exactly the answers of that scan.
//!
//! - PostgreSQL: `pg_trgm` GIN indexes on exactly the expressions the
//!   predicate compares, `lower(books.title)` and `lower(authors.name)`.
//!   A trigram index only narrows the candidates; the executor checks the
//!   predicate itself on each one (`Recheck Cond`), so the answers are the
//!   scan's whatever `lower()` does in the database's locale.
//! - SQLite: an FTS5 table, `book_search`, with one row per book holding
//!   the two strings the predicate compares, `lower(title)` and
//!   `lower(author's name)`, under the `trigram` tokenizer with
//!   `case_sensitive 1`: no folding of its own, so that a phrase query of
//!   the search text (three characters or more) matches a row exactly when
//!   the text is a substring of one of them, which is what the `LIKE`
//!   above decides (SQLite's `lower()` and `LIKE` fold ASCII only; the
//!   tokenizer's own folding, `case_sensitive 0`, would fold more, "É" to
//!   "é", and match books the scan does not). It is contentless
//!   (`content=''`, `contentless_delete=1`): it stores the index, not a
//!   third copy of the strings.
//!
//!   Its rowids come from `book_search_keys (key INTEGER PRIMARY KEY,
//!   book_id UNIQUE)` rather than from `books`' own rowids, which VACUUM
//!   may renumber (`books` has no INTEGER PRIMARY KEY) while the index
//!   kept the old ones. Triggers on `books` (insert, delete, a change of
//!   title or author) and `authors` (a change of name) keep both tables
//!   in the transaction of the write, whatever makes it.
//!
//! `biblio seed` drops the triggers and indexes while it loads, as it does
//! every other, and then calls [`rebuild`].
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates, on SQLite (none on PostgreSQL): the keys, the
/// FTS5 table and the shadow tables FTS5 creates for it.
pub const TABLES: &[&str] = &[
    "book_search_keys",
    "book_search",
    "book_search_data",
    "book_search_idx",
    "book_search_docsize",
    "book_search_config",
];

/// The tables `up` creates on `backend`.
pub fn tables(backend: DbBackend) -> &'static [&'static str] {
    match backend {
        DbBackend::Postgres => &[],
        _ => TABLES,
    }
}

/// The triggers `up` creates on SQLite, as `(table, trigger)`.
pub const TRIGGERS: &[(&str, &str)] = &[
    ("books", "search_books_insert"),
    ("books", "search_books_update"),
    ("books", "search_books_delete"),
    ("authors", "search_authors_update"),
];

/// PostgreSQL: the extension and the two indexes.
const POSTGRES: &[&str] = &[
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX idx_books_title_trgm ON books USING gin (lower(title) gin_trgm_ops)",
    "CREATE INDEX idx_authors_name_trgm ON authors USING gin (lower(name) gin_trgm_ops)",
];

/// The key of the book `id` (SQL over a row named by the caller).
fn key(id: &str) -> String {
    format!("(SELECT key FROM book_search_keys WHERE book_id = {id})")
}

/// SQLite: the tables and the triggers that keep them.
fn sqlite() -> Vec<String> {
    let old_key = key("OLD.id");
    let new_key = key("NEW.id");
    let author_of_new = "(SELECT lower(name) FROM authors WHERE id = NEW.author_id)";
    vec![
        "CREATE TABLE book_search_keys (key INTEGER PRIMARY KEY, book_id BLOB NOT NULL UNIQUE)"
            .to_owned(),
        "CREATE VIRTUAL TABLE book_search USING fts5(title, author, content='', \
         contentless_delete=1, tokenize='trigram case_sensitive 1')"
            .to_owned(),
        format!(
            "CREATE TRIGGER search_books_insert AFTER INSERT ON books BEGIN \
             INSERT INTO book_search_keys (book_id) VALUES (NEW.id); \
             INSERT INTO book_search (rowid, title, author) \
             VALUES ({new_key}, lower(NEW.title), {author_of_new}); END"
        ),
        format!(
            "CREATE TRIGGER search_books_update AFTER UPDATE OF id, title, author_id ON books \
             WHEN OLD.id IS NOT NEW.id OR OLD.title IS NOT NEW.title \
             OR OLD.author_id IS NOT NEW.author_id BEGIN \
             DELETE FROM book_search WHERE rowid = {old_key}; \
             UPDATE book_search_keys SET book_id = NEW.id WHERE book_id = OLD.id; \
             INSERT INTO book_search (rowid, title, author) \
             VALUES ({new_key}, lower(NEW.title), {author_of_new}); END"
        ),
        format!(
            "CREATE TRIGGER search_books_delete AFTER DELETE ON books BEGIN \
             DELETE FROM book_search WHERE rowid = {old_key}; \
             DELETE FROM book_search_keys WHERE book_id = OLD.id; END"
        ),
        "CREATE TRIGGER search_authors_update AFTER UPDATE OF name ON authors \
         WHEN OLD.name IS NOT NEW.name BEGIN \
         DELETE FROM book_search WHERE rowid IN (SELECT k.key FROM books \
             JOIN book_search_keys k ON k.book_id = books.id WHERE books.author_id = NEW.id); \
         INSERT INTO book_search (rowid, title, author) \
             SELECT k.key, lower(books.title), lower(NEW.name) FROM books \
             JOIN book_search_keys k ON k.book_id = books.id WHERE books.author_id = NEW.id; END"
            .to_owned(),
    ]
}

/// The statements that fill the search index from the tables, for a
/// database filled while its triggers were not there (by this migration,
/// or by `biblio seed`, which drops them while it loads). Nothing on
/// PostgreSQL, whose indexes are built from the tables when created.
///
/// The keys are handed out in the order of the books' ids, so the unique
/// index on `book_id` and the FTS5 table are both written in order.
pub fn rebuild(backend: DbBackend) -> Vec<String> {
    match backend {
        DbBackend::Postgres => Vec::new(),
        _ => vec![
            "DELETE FROM book_search_keys".to_owned(),
            "INSERT INTO book_search (book_search) VALUES ('delete-all')".to_owned(),
            "INSERT INTO book_search_keys (book_id) SELECT id FROM books ORDER BY id".to_owned(),
            "INSERT INTO book_search (rowid, title, author) \
             SELECT k.key, lower(books.title), lower(authors.name) FROM book_search_keys k \
             JOIN books ON books.id = k.book_id \
             LEFT JOIN authors ON authors.id = books.author_id ORDER BY k.key"
                .to_owned(),
        ],
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = manager.get_database_backend();
        let statements: Vec<String> = match backend {
            DbBackend::Postgres => POSTGRES.iter().map(|s| (*s).to_owned()).collect(),
            _ => sqlite().into_iter().chain(rebuild(backend)).collect(),
        };
        for statement in statements {
            conn.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    /// Drops what `up` made; the `pg_trgm` extension stays, as something
    /// else may have come to use it.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let statements: &[&str] = match manager.get_database_backend() {
            DbBackend::Postgres => &[
                "DROP INDEX IF EXISTS idx_authors_name_trgm",
                "DROP INDEX IF EXISTS idx_books_title_trgm",
            ],
            _ => &[
                "DROP TRIGGER IF EXISTS search_authors_update",
                "DROP TRIGGER IF EXISTS search_books_delete",
                "DROP TRIGGER IF EXISTS search_books_update",
                "DROP TRIGGER IF EXISTS search_books_insert",
                "DROP TABLE IF EXISTS book_search",
                "DROP TABLE IF EXISTS book_search_keys",
            ],
        };
        for statement in statements {
            conn.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
