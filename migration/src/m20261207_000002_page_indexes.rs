//! Indexes that let every page of `books` be read by walking one index in
//! the order asked, and its filtered total be counted on one, without
//! reading the rows (EXPLAIN plans at 1,000,000 books in `src/db/books.rs`):
//!
//! - `PRICE_*` pages filtered by availability, and the count of a price
//!   range with or without it: `(price_cents, id)` carrying
//!   `copies_available` (PostgreSQL's `INCLUDE`; a trailing column on
//!   SQLite). Replaces `idx_books_price (price_cents, id)`.
//! - `PUBLISHED_DESC` (year descending, missing years last, then title and
//!   id): an index in exactly that order, where `(published_year, title)`
//!   read backwards gave titles descending and left a sort per year.
//!   Replaces `idx_books_published`; it serves year-range counts as well.
//! - A category's books in each order: `(category_id, <order>, id)`, so a
//!   page of one category is a walk of its slice of one index, where
//!   `idx_books_category (category_id, title)` left every order but title
//!   to sort the category's ~67,000 books (160 ms on SQLite at a million).
//!   Replaces `idx_books_category`.
//!
//! - An author's books by title: `(author_id, title, id)`, replacing
//!   `idx_books_author (author_id, title)`. Besides the author's page, it
//!   is the smallest index that holds every book's author, title and id:
//!   the search scan (until search has an index of its own) reads it
//!   rather than the table, 0.7 s instead of 2.3 s on SQLite at a million.
//!
//! Filters combined with each other (a category and a price range, say)
//! walk one of these indexes and read rows to check the other.
//!
//! `copies_available` in the price index makes a borrow's or a return's
//! UPDATE of `books` maintain it (on PostgreSQL such an update is no longer
//! HOT, so each index of `books` gets an entry): a few index writes per
//! loan, for availability-filtered pages and counts that read no rows.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates: none.
pub const TABLES: &[&str] = &[];

/// `(index dropped, its definition)`, as `down` restores them.
const REPLACED: &[(&str, &str)] = &[
    (
        "idx_books_author",
        "CREATE INDEX idx_books_author ON books (author_id, title)",
    ),
    (
        "idx_books_price",
        "CREATE INDEX idx_books_price ON books (price_cents, id)",
    ),
    (
        "idx_books_published",
        "CREATE INDEX idx_books_published ON books (published_year, title)",
    ),
    (
        "idx_books_category",
        "CREATE INDEX idx_books_category ON books (category_id, title)",
    ),
];

fn created(backend: DbBackend) -> [(&'static str, &'static str); 7] {
    match backend {
        DbBackend::Postgres => [
            (
                "idx_books_author_title",
                "CREATE INDEX idx_books_author_title ON books (author_id, title, id)",
            ),
            (
                "idx_books_price_id",
                "CREATE INDEX idx_books_price_id ON books (price_cents, id) \
                 INCLUDE (copies_available)",
            ),
            (
                "idx_books_published_desc",
                "CREATE INDEX idx_books_published_desc ON books \
                 (published_year DESC NULLS LAST, title, id)",
            ),
            (
                "idx_books_category_title",
                "CREATE INDEX idx_books_category_title ON books (category_id, title, id)",
            ),
            (
                "idx_books_category_price",
                "CREATE INDEX idx_books_category_price ON books (category_id, price_cents, id)",
            ),
            (
                "idx_books_category_published",
                "CREATE INDEX idx_books_category_published ON books \
                 (category_id, published_year DESC NULLS LAST, title, id)",
            ),
            (
                "idx_books_category_created",
                "CREATE INDEX idx_books_category_created ON books (category_id, created_at, id)",
            ),
        ],
        // SQLite sorts NULL first, so DESC puts missing years last.
        _ => [
            (
                "idx_books_author_title",
                "CREATE INDEX idx_books_author_title ON books (author_id, title, id)",
            ),
            (
                "idx_books_price_id",
                "CREATE INDEX idx_books_price_id ON books (price_cents, id, copies_available)",
            ),
            (
                "idx_books_published_desc",
                "CREATE INDEX idx_books_published_desc ON books (published_year DESC, title, id)",
            ),
            (
                "idx_books_category_title",
                "CREATE INDEX idx_books_category_title ON books (category_id, title, id)",
            ),
            (
                "idx_books_category_price",
                "CREATE INDEX idx_books_category_price ON books (category_id, price_cents, id)",
            ),
            (
                "idx_books_category_published",
                "CREATE INDEX idx_books_category_published ON books \
                 (category_id, published_year DESC, title, id)",
            ),
            (
                "idx_books_category_created",
                "CREATE INDEX idx_books_category_created ON books (category_id, created_at, id)",
            ),
        ],
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for (_, create) in created(manager.get_database_backend()) {
            conn.execute_unprepared(create).await?;
        }
        for (name, _) in REPLACED {
            conn.execute_unprepared(&format!("DROP INDEX {name}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for (_, create) in REPLACED {
            conn.execute_unprepared(create).await?;
        }
        for (name, _) in created(manager.get_database_backend()) {
            conn.execute_unprepared(&format!("DROP INDEX {name}"))
                .await?;
        }
        Ok(())
    }
}
