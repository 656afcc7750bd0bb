//! SQLite: an index of authors' names for `searchBooks`, `author_search`,
//! one row per author holding `lower(name)`, under the same FTS5 trigram
//! tokenizer as `book_search` (see `m20261207_000003_search_index`, whose
//! reasons hold here: `case_sensitive 1` so that a phrase query of the
//! search text matches exactly the names `lower(name) LIKE '%t%'` does;
//! contentless; rowids from a table of keys, `author_search_keys`, since
//! VACUUM may renumber `authors`' own).
//!
//! Why: `book_search` has the name in every book's row, which finds the
//! books of a matching author but not the authors themselves. A surname
//! of the seeded catalogue matches some 6,800 authors and 34,000 books at
//! 1,000,000 books; reading and sorting those 34,000 books for a page took
//! 82 ms. With the authors in hand (1-4 ms), the page walks the title
//! index testing each book's author against them and stops after a page,
//! as it does for titles (`src/db/search.rs`). For that walk to read no
//! row, `idx_books_title` is rebuilt as `(title, id, author_id)`: a walk
//! that read each book for its author took 106 ms to reach the 2,000th
//! match of `garden`, against 8 ms on the index alone (BENCHMARKS.md).
//!
//! Triggers on `authors` (insert, delete, a change of id or name) keep it
//! in the transaction of every write, whoever makes it; `/readyz` checks
//! them (`migration::search::triggers`). `biblio seed` drops them while it
//! loads and fills the table again with [`rebuild`]. Nothing on
//! PostgreSQL, whose names have a trigram index since
//! `m20261207_000003_search_index`.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates on SQLite: the keys, the FTS5 table and the
/// shadow tables FTS5 creates for it.
pub const TABLES: &[&str] = &[
    "author_search_keys",
    "author_search",
    "author_search_data",
    "author_search_idx",
    "author_search_docsize",
    "author_search_config",
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
    ("authors", "author_search_insert"),
    ("authors", "author_search_update"),
    ("authors", "author_search_delete"),
];

/// The key of the author `id` (SQL over a row named by the caller).
fn key(id: &str) -> String {
    format!("(SELECT key FROM author_search_keys WHERE author_id = {id})")
}

/// SQLite: the tables and the triggers that keep them.
fn sqlite() -> Vec<String> {
    let old_key = key("OLD.id");
    let new_key = key("NEW.id");
    vec![
        "DROP INDEX IF EXISTS idx_books_title".to_owned(),
        "CREATE INDEX idx_books_title ON books (title, id, author_id)".to_owned(),
        "CREATE TABLE author_search_keys (key INTEGER PRIMARY KEY, author_id BLOB NOT NULL UNIQUE)"
            .to_owned(),
        "CREATE VIRTUAL TABLE author_search USING fts5(name, content='', \
         contentless_delete=1, tokenize='trigram case_sensitive 1')"
            .to_owned(),
        // Idempotent, for a repair's second try: a repair drops only tables.
        "DROP TRIGGER IF EXISTS author_search_insert".to_owned(),
        "DROP TRIGGER IF EXISTS author_search_update".to_owned(),
        "DROP TRIGGER IF EXISTS author_search_delete".to_owned(),
        format!(
            "CREATE TRIGGER author_search_insert AFTER INSERT ON authors BEGIN \
             INSERT INTO author_search_keys (author_id) VALUES (NEW.id); \
             INSERT INTO author_search (rowid, name) VALUES ({new_key}, lower(NEW.name)); END"
        ),
        format!(
            "CREATE TRIGGER author_search_update AFTER UPDATE OF id, name ON authors \
             WHEN OLD.id IS NOT NEW.id OR OLD.name IS NOT NEW.name BEGIN \
             DELETE FROM author_search WHERE rowid = {old_key}; \
             UPDATE author_search_keys SET author_id = NEW.id WHERE author_id = OLD.id; \
             INSERT INTO author_search (rowid, name) VALUES ({new_key}, lower(NEW.name)); END"
        ),
        format!(
            "CREATE TRIGGER author_search_delete AFTER DELETE ON authors BEGIN \
             DELETE FROM author_search WHERE rowid = {old_key}; \
             DELETE FROM author_search_keys WHERE author_id = OLD.id; END"
        ),
    ]
}

/// The statements that fill the index from `authors`, for a database
/// filled while its triggers were not there (by this migration, or by
/// `biblio seed`). Nothing on PostgreSQL.
pub fn rebuild(backend: DbBackend) -> Vec<String> {
    match backend {
        DbBackend::Postgres => Vec::new(),
        _ => vec![
            "DELETE FROM author_search_keys".to_owned(),
            "INSERT INTO author_search (author_search) VALUES ('delete-all')".to_owned(),
            "INSERT INTO author_search_keys (author_id) SELECT id FROM authors ORDER BY id"
                .to_owned(),
            "INSERT INTO author_search (rowid, name) \
             SELECT k.key, lower(authors.name) FROM author_search_keys k \
             JOIN authors ON authors.id = k.author_id ORDER BY k.key"
                .to_owned(),
        ],
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        if backend == DbBackend::Postgres {
            return Ok(());
        }
        // One connection for every statement: another connection of the
        // pool would still know the old `idx_books_title`, and refuse to
        // create it again ("already exists") before it read the new schema.
        let txn = manager.get_connection().begin().await?;
        for statement in sqlite().into_iter().chain(rebuild(backend)) {
            txn.execute_unprepared(&statement).await?;
        }
        txn.commit().await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            return Ok(());
        }
        let txn = manager.get_connection().begin().await?;
        for statement in [
            "DROP TRIGGER IF EXISTS author_search_delete",
            "DROP TRIGGER IF EXISTS author_search_update",
            "DROP TRIGGER IF EXISTS author_search_insert",
            "DROP TABLE IF EXISTS author_search",
            "DROP TABLE IF EXISTS author_search_keys",
            "DROP INDEX IF EXISTS idx_books_title",
            "CREATE INDEX idx_books_title ON books (title, id)",
        ] {
            txn.execute_unprepared(statement).await?;
        }
        txn.commit().await
    }
}
