//! The database tier: connecting, migrating, and every SQL statement the
//! service issues, one module per table. Functions take validated domain
//! values and return entity models or `crate::Error`.
//!
//! Writes are single atomic statements where possible. Where a write needs
//! several statements, its transaction opens with an UPDATE of the row it is
//! about (the book being lent, the loan being returned): on PostgreSQL that
//! takes the row lock, on SQLite the database write lock, before anything is
//! read, so concurrent writers queue instead of deciding on stale reads.
pub mod authors;
pub mod books;
pub mod borrows;
pub mod categories;
pub mod settings;
pub mod statistics;
pub mod users;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult,
    QueryResult, Statement,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A pooled connection and a count of the statements sent through it.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// Every statement executed, for tests that prove batching (N+1 bounds)
    /// by counting rather than timing. An atomic add per statement is free
    /// next to the statement itself.
    statements: Arc<AtomicU64>,
}

impl Db {
    /// Connects to `url` (`sqlite://...` or `postgres://...`). SQLite runs in
    /// WAL mode with foreign keys on.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .max_connections(if url.starts_with("sqlite:") { 8 } else { 20 })
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
            });
        let mut conn = sea_orm::Database::connect(options).await?;
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        conn.set_metric_callback(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        Ok(Self { conn, statements })
    }

    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.conn, None).await
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// How many statements have been executed since connecting.
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// A trivial round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn
            .execute(Statement::from_string(self.backend(), "SELECT 1"))
            .await
            .map(drop)
    }

    /// The journal mode SQLite reports (`None` on other backends).
    pub async fn sqlite_journal_mode(&self) -> Result<Option<String>, DbErr> {
        if self.backend() != DbBackend::Sqlite {
            return Ok(None);
        }
        let row = self
            .conn
            .query_one(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA journal_mode",
            ))
            .await?;
        row.map(|row| row.try_get_by_index::<String>(0)).transpose()
    }
}

/// A row of `M` with one extra integer column `n`: the window total of a page
/// (`COUNT(*) OVER ()`), or a per-row count. Lets a page and its total come
/// back in one statement.
#[derive(Debug)]
pub(crate) struct Counted<M> {
    pub model: M,
    pub n: i64,
}

impl<M: FromQueryResult> FromQueryResult for Counted<M> {
    fn from_query_result(row: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            model: M::from_query_result(row, pre)?,
            n: row.try_get(pre, "n")?,
        })
    }
}

/// The current time truncated to microseconds, the precision both backends
/// store, so that what a write returns equals what a later read returns.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{SubsecRound, Utc};
    Utc::now().trunc_subsecs(6)
}

/// Runs `select` for one page, with its total from the same statement. Only a
/// page past the end (no rows to carry the total) costs a second, COUNT query.
pub(crate) async fn fetch_page<E>(
    db: &Db,
    select: sea_orm::Select<E>,
    request: crate::domain::PageRequest,
) -> Result<crate::domain::Page<E::Model>, DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: FromQueryResult + Send + Sync,
{
    use sea_orm::{PaginatorTrait, QuerySelect};
    let rows = select
        .clone()
        .column_as(sea_orm::sea_query::Expr::cust("COUNT(*) OVER ()"), "n")
        .offset(request.offset())
        .limit(request.limit())
        .into_model::<Counted<E::Model>>()
        .all(db.conn())
        .await?;
    let total_count = match rows.first() {
        Some(row) => row.n as u64,
        None if request.page == 1 => 0,
        None => select.count(db.conn()).await?,
    };
    Ok(crate::domain::Page {
        items: rows.into_iter().map(|row| row.model).collect(),
        total_count,
        request,
    })
}
