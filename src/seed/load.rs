//! Writing a seed's rows fast, all in one transaction on a connection of
//! its own.
//!
//! Where the time went (1,000,000 books and 3,000,000 loans on SQLite, 263
//! s before, profiled with perf): a sea-query statement per 1,000
//! ActiveModels; every secondary index maintained row by row in random
//! order (titles, author ids and loans land anywhere in their B-trees: the
//! books alone took 25 s of CPU with their indexes against 3 s without);
//! the loans' primary key filled in random order (their ids carry their
//! random times: 9.8 s of CPU against 1.4 s sorted); and a foreign-key
//! lookup per reference (10 s of the loans' 14). So:
//!
//! - the secondary indexes and the triggers of the five tables (and on
//!   PostgreSQL their foreign keys, checked row by row by COPY, and once
//!   for all rows when added again) are dropped inside the transaction and
//!   created again from their own definitions, read from the database's
//!   catalogue, so the seed repeats no migration; building an index from
//!   sorted rows costs a fraction of inserting into it row by row. The
//!   tallies the triggers would have kept are then counted once
//!   ([`migration::tally::recount`]), and the search's own tables filled
//!   once ([`migration::search::rebuild`]). DDL is transactional on both
//!   databases: a failed seed leaves indexes, triggers and rows as they
//!   were;
//! - loans go in sorted by id, so their primary key grows at its end;
//! - SQLite: multi-row INSERTs with as many rows as its 32,766 bound
//!   parameters allow, the same statement text for every full chunk (so it
//!   is prepared once); index builds sorting in runs of 16 MiB
//!   ([`SQLITE_CACHE_KIB`]) with helper threads, and no foreign-key
//!   enforcement, for this connection only. The last is safe
//!   because the seed empties every table it writes (none other refers to
//!   them) and each row it writes refers to rows it wrote, by ids drawn
//!   from the same lists (a test checks `PRAGMA foreign_key_check`);
//! - PostgreSQL: COPY, into tables truncated in the same transaction so
//!   the rows are written frozen (no VACUUM needed before index-only
//!   scans), then ANALYZE. Dropping an index takes its table's exclusive
//!   lock: on PostgreSQL, reads of these tables wait for a seed to commit.
use super::data::{Author, Book, Category, User};
use crate::db::Db;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::sqlx::{self, Postgres, Sqlite, Transaction};
use sea_orm::DbBackend;
use std::fmt::Write as _;
use uuid::Uuid;

/// The seeded tables, parents first.
pub(super) const TABLES: &[&str] = &["categories", "authors", "users", "books", "borrow_records"];

/// SQLite's bound on parameters per statement (SQLITE_MAX_VARIABLE_NUMBER).
const SQLITE_MAX_PARAMETERS: usize = 32_766;
/// SQLite's page cache for the seed's connection, in KiB (a negative
/// `cache_size` is KiB). Rows and index entries are appended, so a large
/// cache buys nothing; and it sets the size of the runs an index build
/// sorts before merging them, where runs that fit the CPU's caches win.
/// Measured at a million books: 256 MiB with in-memory temporary storage
/// (every index sorted as one list) 52.6 s, the default 2 MiB 27.0 s,
/// 16 MiB with two sorting threads 22.6 s.
const SQLITE_CACHE_KIB: i64 = 16 * 1024;
/// How much COPY text is sent to PostgreSQL at a time.
const COPY_BUFFER: usize = 1 << 20;

/// One value of a row, as both backends take it.
pub(super) enum Cell<'a> {
    Uuid(Uuid),
    Text(&'a str),
    Int(i64),
    Time(DateTime<Utc>),
    Null,
}

impl<'a> From<Option<&'a str>> for Cell<'a> {
    fn from(text: Option<&'a str>) -> Self {
        text.map_or(Cell::Null, Cell::Text)
    }
}

/// A row of one of the seeded tables.
pub(super) trait Row {
    const TABLE: &'static str;
    const COLUMNS: &'static [&'static str];
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>);
}

impl Row for Category {
    const TABLE: &'static str = "categories";
    const COLUMNS: &'static [&'static str] = &["id", "name", "created_at", "updated_at"];
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Uuid(self.id),
            Cell::Text(self.name),
            Cell::Time(self.at),
            Cell::Time(self.at),
        ]);
    }
}

impl Row for Author {
    const TABLE: &'static str = "authors";
    const COLUMNS: &'static [&'static str] = &["id", "name", "bio", "created_at", "updated_at"];
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Uuid(self.id),
            Cell::Text(&self.name),
            self.bio.as_deref().into(),
            Cell::Time(self.at),
            Cell::Time(self.at),
        ]);
    }
}

impl Row for Book {
    const TABLE: &'static str = "books";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "title",
        "isbn",
        "price_cents",
        "published_year",
        "copies_total",
        "copies_available",
        "author_id",
        "category_id",
        "created_at",
        "updated_at",
    ];
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Uuid(self.id),
            Cell::Text(&self.title),
            Cell::Text(&self.isbn),
            Cell::Int(self.price_cents),
            self.published_year
                .map_or(Cell::Null, |year| Cell::Int(year.into())),
            Cell::Int(self.copies_total.into()),
            Cell::Int(self.copies_available.into()),
            Cell::Uuid(self.author_id),
            Cell::Uuid(self.category_id),
            Cell::Time(self.at),
            Cell::Time(self.at),
        ]);
    }
}

/// A user with the password hash they share with the other seeded accounts
/// of their role.
pub(super) struct Account<'a> {
    pub user: &'a User,
    pub password_hash: &'a str,
}

impl Row for Account<'_> {
    const TABLE: &'static str = "users";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "email",
        "name",
        "password_hash",
        "role",
        "created_at",
        "updated_at",
    ];
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        let role = if self.user.librarian {
            "LIBRARIAN"
        } else {
            "MEMBER"
        };
        out.extend([
            Cell::Uuid(self.user.id),
            Cell::Text(&self.user.email),
            Cell::Text(&self.user.name),
            Cell::Text(self.password_hash),
            Cell::Text(role),
            Cell::Time(self.user.at),
            Cell::Time(self.user.at),
        ]);
    }
}

/// A loan as stored.
pub(super) struct Loan {
    pub id: Uuid,
    pub user_id: Uuid,
    pub book_id: Uuid,
    pub borrowed_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub returned_at: Option<DateTime<Utc>>,
}

impl Row for Loan {
    const TABLE: &'static str = "borrow_records";
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "user_id",
        "book_id",
        "borrowed_at",
        "due_at",
        "returned_at",
        "created_at",
        "updated_at",
    ];
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend([
            Cell::Uuid(self.id),
            Cell::Uuid(self.user_id),
            Cell::Uuid(self.book_id),
            Cell::Time(self.borrowed_at),
            Cell::Time(self.due_at),
            self.returned_at.map_or(Cell::Null, Cell::Time),
            Cell::Time(self.borrowed_at),
            Cell::Time(self.returned_at.unwrap_or(self.borrowed_at)),
        ]);
    }
}

/// What is dropped while the rows go in, in the order it is created again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Index,
    /// PostgreSQL only: checked once, for all rows, when added again
    /// (SQLite cannot drop one; the seed's connection does not enforce them).
    ForeignKey,
    Trigger,
}

/// An index, foreign key or trigger of a seeded table, dropped while the
/// rows go in.
pub(super) struct Suspended {
    kind: Kind,
    name: String,
    table: String,
    /// What creates it again, as the database reports it: a whole
    /// statement, or (a foreign key) the constraint's definition.
    definition: String,
}

/// The seed's transaction, on a connection of its own (the pool of one
/// it comes from, to use it after the commit and then close it).
pub(super) enum Load {
    Sqlite(Transaction<'static, Sqlite>, sqlx::SqlitePool),
    Postgres(Transaction<'static, Postgres>, sqlx::PgPool),
}

impl Load {
    /// Opens a connection like `db`'s (SQLite: foreign keys not enforced,
    /// see the module's docs, and helper threads for sorting) and begins
    /// the transaction.
    /// SQLite's is IMMEDIATE: it holds the write lock from the start, so
    /// what it reads first cannot change before it writes.
    pub async fn begin(db: &Db) -> Result<Self, sqlx::Error> {
        Ok(match db.backend() {
            DbBackend::Postgres => {
                let options = db.conn().get_postgres_connection_pool().connect_options();
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with((*options).clone())
                    .await?;
                let mut txn = pool.begin().await?;
                // Index builds sort in memory, for this transaction only.
                sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
                    .execute(&mut *txn)
                    .await?;
                Self::Postgres(txn, pool)
            }
            _ => {
                let options = db.conn().get_sqlite_connection_pool().connect_options();
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
                let options = (*options)
                    .clone()
                    .foreign_keys(false)
                    .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
                    .pragma("threads", threads.to_string());
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await?;
                Self::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?, pool)
            }
        })
    }

    pub fn backend(&self) -> DbBackend {
        match self {
            Self::Sqlite(..) => DbBackend::Sqlite,
            Self::Postgres(..) => DbBackend::Postgres,
        }
    }

    async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(txn, _) => sqlx::raw_sql(sql).execute(&mut **txn).await.map(drop),
            Self::Postgres(txn, _) => sqlx::raw_sql(sql).execute(&mut **txn).await.map(drop),
        }
    }

    /// Whether every seeded table is empty.
    pub async fn is_empty(&mut self) -> Result<bool, sqlx::Error> {
        let sql = TABLES
            .iter()
            .map(|table| format!("SELECT 1 FROM {table}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let sql = format!("SELECT EXISTS ({sql})");
        let any: bool = match self {
            Self::Sqlite(txn, _) => sqlx::query_scalar(&sql).fetch_one(&mut **txn).await?,
            Self::Postgres(txn, _) => sqlx::query_scalar(&sql).fetch_one(&mut **txn).await?,
        };
        Ok(!any)
    }

    /// Drops the secondary indexes, the triggers and (PostgreSQL) the
    /// foreign keys of the seeded tables; returns what [`Self::restore`]
    /// creates again. Indexes that back a primary key or a UNIQUE
    /// constraint stay.
    pub async fn suspend(&mut self) -> Result<Vec<Suspended>, sqlx::Error> {
        let tables: Vec<String> = TABLES.iter().map(|table| table.to_string()).collect();
        let rows: Vec<(String, String, String, String)> = match self {
            Self::Sqlite(txn, _) => {
                let list = TABLES
                    .iter()
                    .map(|table| format!("'{table}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                sqlx::query_as(&format!(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master \
                     WHERE type IN ('index', 'trigger') AND sql IS NOT NULL \
                     AND tbl_name IN ({list})"
                ))
                .fetch_all(&mut **txn)
                .await?
            }
            Self::Postgres(txn, _) => {
                sqlx::query_as(
                    "SELECT 'index', i.relname::text, t.relname::text, pg_get_indexdef(x.indexrelid) \
                     FROM pg_index x \
                     JOIN pg_class i ON i.oid = x.indexrelid \
                     JOIN pg_class t ON t.oid = x.indrelid \
                     JOIN pg_namespace n ON n.oid = t.relnamespace \
                     WHERE n.nspname = current_schema() AND t.relname = ANY($1) \
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                         WHERE c.conindid = x.indexrelid AND c.contype IN ('p', 'u', 'x')) \
                     UNION ALL \
                     SELECT 'foreign key', c.conname::text, t.relname::text, pg_get_constraintdef(c.oid) \
                     FROM pg_constraint c \
                     JOIN pg_class t ON t.oid = c.conrelid \
                     JOIN pg_namespace n ON n.oid = t.relnamespace \
                     WHERE c.contype = 'f' AND n.nspname = current_schema() AND t.relname = ANY($1) \
                     UNION ALL \
                     SELECT 'trigger', g.tgname::text, t.relname::text, pg_get_triggerdef(g.oid) \
                     FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid \
                     JOIN pg_namespace n ON n.oid = t.relnamespace \
                     WHERE NOT g.tgisinternal \
                     AND n.nspname = current_schema() AND t.relname = ANY($1)",
                )
                .bind(&tables)
                .fetch_all(&mut **txn)
                .await?
            }
        };
        let mut suspended: Vec<Suspended> = rows
            .into_iter()
            .map(|(kind, name, table, definition)| Suspended {
                kind: match kind.as_str() {
                    "index" => Kind::Index,
                    "trigger" => Kind::Trigger,
                    _ => Kind::ForeignKey,
                },
                name,
                table,
                definition,
            })
            .collect();
        suspended.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        for item in &suspended {
            let drop = match (item.kind, self.backend()) {
                (Kind::Index, _) => format!("DROP INDEX \"{}\"", item.name),
                (Kind::ForeignKey, _) => format!(
                    "ALTER TABLE \"{}\" DROP CONSTRAINT \"{}\"",
                    item.table, item.name
                ),
                (Kind::Trigger, DbBackend::Postgres) => {
                    format!("DROP TRIGGER \"{}\" ON \"{}\"", item.name, item.table)
                }
                (Kind::Trigger, _) => format!("DROP TRIGGER \"{}\"", item.name),
            };
            self.execute(&drop).await?;
        }
        Ok(suspended)
    }

    /// Deletes every row of the seeded tables (PostgreSQL: truncates them,
    /// which lets COPY write frozen rows; done on empty tables too).
    pub async fn clear(&mut self) -> Result<(), sqlx::Error> {
        match self.backend() {
            DbBackend::Postgres => {
                self.execute(&format!("TRUNCATE {}", TABLES.join(", ")))
                    .await
            }
            _ => {
                for table in TABLES.iter().rev() {
                    self.execute(&format!("DELETE FROM {table}")).await?;
                }
                Ok(())
            }
        }
    }

    /// Writes `rows` into their table.
    pub async fn insert<R: Row>(&mut self, rows: &[R]) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(txn, _) => insert_sqlite(txn, rows).await,
            Self::Postgres(txn, _) => copy_postgres(txn, rows).await,
        }
    }

    /// Creates again what [`Self::suspend`] dropped (indexes, then foreign
    /// keys, which their validation reads through them, then triggers),
    /// calling `done` after each.
    pub async fn restore(
        &mut self,
        suspended: &[Suspended],
        mut done: impl FnMut(&Suspended),
    ) -> Result<(), sqlx::Error> {
        for item in suspended {
            let create = match item.kind {
                Kind::ForeignKey => format!(
                    "ALTER TABLE \"{}\" ADD CONSTRAINT \"{}\" {}",
                    item.table, item.name, item.definition
                ),
                Kind::Index | Kind::Trigger => item.definition.clone(),
            };
            self.execute(&create).await?;
            done(item);
        }
        Ok(())
    }

    /// Sets every tally from the tables, and (PostgreSQL) gives the planner
    /// statistics of the new rows.
    pub async fn recount(&mut self) -> Result<(), sqlx::Error> {
        for statement in migration::tally::recount(self.backend()) {
            self.execute(&statement).await?;
        }
        if self.backend() == DbBackend::Postgres {
            self.execute(&format!("ANALYZE {}, tallies", TABLES.join(", ")))
                .await?;
        }
        Ok(())
    }

    /// Fills the search index from the rows (SQLite's FTS5 table,
    /// PostgreSQL's table of titles and its trigram index: see
    /// [`migration::search::rebuild`]; the authors' trigram index is among
    /// the indexes [`Self::restore`] builds).
    pub async fn rebuild_search(&mut self) -> Result<(), sqlx::Error> {
        for statement in migration::search::rebuild(self.backend()) {
            self.execute(&statement).await?;
        }
        Ok(())
    }

    /// Commits; on SQLite then copies the write-ahead log into the database
    /// and truncates it, rather than leave a log the size of the data set.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(txn, pool) => {
                txn.commit().await?;
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await?;
                pool.close().await;
            }
            Self::Postgres(txn, pool) => {
                txn.commit().await?;
                pool.close().await;
            }
        }
        Ok(())
    }
}

impl Suspended {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

mod bulk;

use bulk::{copy_postgres, insert_sqlite};
