//! PostgreSQL: the search's titles in a narrow table of their own,
//! `book_titles (id, title, title_lower)`, with the trigram index on
//! `title_lower`, which the search reads in place of the trigram index on
//! `lower(books.title)`. That index stays for now: dropping it here would
//! take `books`' exclusive lock for the whole migration (reads wait, in a
//! rolling deploy too) and leave replicas of the previous version, which
//! still search `lower(title)`, scanning every book. A later migration
//! drops it once no such replica can be running.
//!
//! Why: a trigram index only narrows the candidates, and each one is
//! checked again against its row (`Recheck Cond`). For a common word at
//! 1,000,000 books (`garden`, 50,041 matches) that recheck read 17,850
//! pages of `books` (150 MB, more than the default `shared_buffers`) and
//! lower-cased every candidate's title: 105 ms of 130. On this table (87
//! MB) with the title lower-cased once, when written, the same search took
//! 46 ms (BENCHMARKS.md, "Scale on an idle machine").
//!
//! Triggers on `books` keep it in the transaction of every write, whatever
//! makes it (biblio, `psql`, an import; `TRUNCATE` too, which fires no row
//! trigger), so it holds exactly `(id, title, lower(title))` of every book.
//! Disabling them (`ALTER TABLE books DISABLE TRIGGER ALL`,
//! `session_replication_role = replica`) leaves search stale until the
//! next `biblio seed` or a rerun of [`rebuild`]'s statements. `biblio seed` drops the
//! triggers of `books` while it loads and then calls [`rebuild`].
//! SQLite's search has its own FTS5 table
//! (`m20261207_000003_search_index`); this migration does nothing there.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates on `backend`.
pub fn tables(backend: DbBackend) -> &'static [&'static str] {
    match backend {
        DbBackend::Postgres => &["book_titles"],
        _ => &[],
    }
}

/// The triggers `up` creates, as `(table, trigger)`.
pub const TRIGGERS: &[(&str, &str)] = &[
    ("books", "book_titles_insert_delete"),
    ("books", "book_titles_update"),
    ("books", "book_titles_truncate"),
];

const POSTGRES: &[&str] = &[
    "CREATE TABLE book_titles (id uuid PRIMARY KEY, title text NOT NULL, title_lower text NOT NULL)",
    // Idempotent, like a repair's second try: a repair drops only tables.
    // A row left behind (by a restore that loaded `book_titles` first,
    // say) is replaced, never a reason to refuse a write of `books`.
    "CREATE OR REPLACE FUNCTION book_titles_keep() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       IF TG_OP = 'TRUNCATE' THEN \
         TRUNCATE book_titles; \
         RETURN NULL; \
       END IF; \
       IF TG_OP IN ('UPDATE', 'DELETE') THEN \
         DELETE FROM book_titles WHERE id = OLD.id; \
       END IF; \
       IF TG_OP IN ('INSERT', 'UPDATE') THEN \
         INSERT INTO book_titles (id, title, title_lower) \
         VALUES (NEW.id, NEW.title, lower(NEW.title)) \
         ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title, title_lower = EXCLUDED.title_lower; \
       END IF; \
       RETURN NULL; \
     END $$",
    "DROP TRIGGER IF EXISTS book_titles_insert_delete ON books",
    "DROP TRIGGER IF EXISTS book_titles_update ON books",
    "DROP TRIGGER IF EXISTS book_titles_truncate ON books",
    "CREATE TRIGGER book_titles_insert_delete AFTER INSERT OR DELETE ON books \
     FOR EACH ROW EXECUTE FUNCTION book_titles_keep()",
    "CREATE TRIGGER book_titles_update AFTER UPDATE OF id, title ON books \
     FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.title IS DISTINCT FROM NEW.title) \
     EXECUTE FUNCTION book_titles_keep()",
    // TRUNCATE fires no row trigger.
    "CREATE TRIGGER book_titles_truncate AFTER TRUNCATE ON books \
     FOR EACH STATEMENT EXECUTE FUNCTION book_titles_keep()",
    "INSERT INTO book_titles (id, title, title_lower) SELECT id, title, lower(title) FROM books",
    "CREATE INDEX idx_book_titles_trgm ON book_titles USING gin (title_lower gin_trgm_ops)",
    "ANALYZE book_titles",
];

/// The statements that fill `book_titles` from `books`, for a database
/// filled while the triggers were not there (`biblio seed` drops them while
/// it loads). The index is built after the rows, as the seed builds every
/// other, then the table analysed. Nothing on SQLite.
pub fn rebuild(backend: DbBackend) -> Vec<String> {
    match backend {
        DbBackend::Postgres => [
            "DROP INDEX IF EXISTS idx_book_titles_trgm",
            "TRUNCATE book_titles",
            "INSERT INTO book_titles (id, title, title_lower) SELECT id, title, lower(title) FROM books",
            "CREATE INDEX idx_book_titles_trgm ON book_titles USING gin (title_lower gin_trgm_ops)",
            // The planner's statistics of the new rows (the seed analyses
            // the tables it writes, which this one is not).
            "ANALYZE book_titles",
        ]
        .map(str::to_owned)
        .to_vec(),
        _ => Vec::new(),
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let conn = manager.get_connection();
        for statement in POSTGRES {
            conn.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let conn = manager.get_connection();
        for statement in [
            "DROP TRIGGER IF EXISTS book_titles_truncate ON books",
            "DROP TRIGGER IF EXISTS book_titles_update ON books",
            "DROP TRIGGER IF EXISTS book_titles_insert_delete ON books",
            "DROP FUNCTION IF EXISTS book_titles_keep()",
            "DROP TABLE IF EXISTS book_titles",
        ] {
            conn.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
