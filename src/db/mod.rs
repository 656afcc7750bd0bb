//! The database tier: connecting, migrating, and every SQL statement the
//! service issues, one module per table. Functions take validated domain
//! values and return entity models or `crate::Error`.
//!
//! Writes are single atomic statements where possible. Where a write needs
//! several statements, its transaction opens with an UPDATE of the row it is
//! about (the book being lent, the loan being returned): on PostgreSQL that
//! takes the row lock, on SQLite the database write lock, before anything is
//! read, so concurrent writers queue instead of deciding on stale reads.
//!
//! Triggers add each write's changes to the [`tallies`] (counts and sums
//! the reads take instead of aggregating) in the same transaction, right
//! after the statement that changes the rows they count, taking tally rows
//! in one order (the migration that creates them says why that cannot
//! deadlock).
//! Pages (`fetch_page`) walk an index to their rows and take their total
//! from a tally or a COUNT on an index, never from the whole filtered set.
pub mod aggregates;
pub mod authors;
pub mod books;
pub mod borrows;
pub mod cache_changes;
pub mod categories;
pub mod deployment_settings;
pub mod documents;
pub mod instrumentation;
pub(crate) mod keyset;
mod migrations;
pub mod outbox;
mod pool;
pub mod replicas;
mod search;
pub use search::short_text_page;
pub mod tallies;
pub mod users;
mod write;

use pool::{connect_postgres, connect_sqlite, instrument, probe_text_order};
pub use write::{Committed, Write};

use entity::{author, book, borrow_record, category, user};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, QueryResult, Statement,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A pooled connection and a count of the statements sent through it.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// Every statement executed, for tests that prove batching (N+1 bounds)
    /// by counting rather than timing. An atomic add per statement is free
    /// next to the statement itself. The cache outbox's statements are not
    /// counted (nor those of `cache_changes`): they are background
    /// bookkeeping, not the service's reads.
    statements: Arc<AtomicU64>,
    /// Every statement, the outbox's too, counted and timed for `/metrics`.
    metrics: Arc<instrumentation::Statements>,
    /// The most database calls one request has had running at once, for
    /// tests that prove a request cannot take the whole pool.
    most_held_by_a_request: Arc<AtomicU64>,
    /// Whether text sorts as Rust compares strings; see
    /// [`Db::orders_text_by_bytes`].
    text_by_bytes: bool,
    /// SQLite: when the migrations were last applied; see [`connect_sqlite`].
    migrated: Option<Migrated>,
    /// The standbys reads may go to (`--database-read-url`); `None`: every
    /// statement goes to the primary. See [`replicas`].
    replicas: Option<Arc<replicas::Replicas>>,
    /// The most connections its pool (and each standby's) holds.
    pool_size: u32,
    /// SQLite: this process's writes take turns here before they take a
    /// connection (see [`write`]).
    write_turns: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// When this process last finished applying the migrations, shared with
/// SQLite's connection hooks.
type Migrated = Arc<parking_lot::Mutex<Option<std::time::Instant>>>;

/// Strings whose order by bytes differs from their order under any
/// linguistic collation (case, accents, punctuation, spaces).
const COLLATION_PROBE: [&str; 10] = ["B", "a", "_x", "é", "e", "Z", "ab", "a b", "A", "ä"];

impl Db {
    /// Connects to `url` (`sqlite://...` or `postgres://...`) with the
    /// default pool size. SQLite runs in WAL mode with foreign keys on.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        Self::connect_with_pool(url, None).await
    }

    /// As [`Db::connect`], with at most `max_connections` in the pool (and
    /// in each standby's, see [`Db::with_read_replicas`]); `None`: 20 on
    /// PostgreSQL, 8 on SQLite.
    pub async fn connect_with_pool(url: &str, max_connections: Option<u32>) -> Result<Self, DbErr> {
        let mut migrated = None;
        let (mut conn, pool_size) = if url.starts_with("sqlite:") {
            let since = Migrated::default();
            migrated = Some(since.clone());
            let size = max_connections.unwrap_or(8);
            (connect_sqlite(url, since, size).await?, size)
        } else {
            let size = max_connections.unwrap_or(20);
            (connect_postgres(url, size).await?, size)
        };
        // Before the statement counter is attached: no request asked for it.
        let text_by_bytes = probe_text_order(&conn).await?;
        let statements = Arc::new(AtomicU64::new(0));
        let metrics = Arc::new(instrumentation::Statements::default());
        instrument(&mut conn, &statements, &metrics);
        let write_turns = migrated
            .is_some()
            .then(|| Arc::new(tokio::sync::Mutex::new(())));
        Ok(Self {
            conn,
            statements,
            metrics,
            most_held_by_a_request: Arc::new(AtomicU64::new(0)),
            text_by_bytes,
            migrated,
            replicas: None,
            pool_size,
            write_turns,
        })
    }

    /// Sends reads outside write transactions to the standbys at `urls`
    /// when they have replayed every write the cache could race (see
    /// [`replicas`]); skips one lagging beyond `max_lag`. Start-up checks
    /// the URLs first ([`replicas::check_urls`]).
    pub async fn with_read_replicas(
        mut self,
        urls: &[String],
        max_lag: Duration,
    ) -> Result<Self, String> {
        if urls.is_empty() {
            return Ok(self);
        }
        if self.backend() != DbBackend::Postgres {
            return Err("--database-read-url needs a PostgreSQL --database-url".into());
        }
        let (statements, metrics) = (self.statements.clone(), self.metrics.clone());
        let replicas =
            replicas::Replicas::connect(self.conn.clone(), urls, max_lag, self.pool_size, |conn| {
                instrument(conn, &statements, &metrics)
            })
            .await?;
        let replicas = Arc::new(replicas);
        tokio::spawn(replicas::Replicas::follow(Arc::downgrade(&replicas)));
        self.replicas = Some(replicas);
        Ok(self)
    }

    /// The standbys, if reads may go to any.
    pub fn read_replicas(&self) -> Option<&replicas::Replicas> {
        self.replicas.as_deref()
    }

    /// Where a read outside a write transaction goes: a standby that has
    /// replayed every invalidation this process knows of, else the primary.
    pub fn reader(&self) -> &DatabaseConnection {
        self.replicas
            .as_ref()
            .and_then(|replicas| replicas.choose())
            .unwrap_or(&self.conn)
    }

    /// The primary's WAL position now, if reads may go to standbys (the
    /// position an invalidation of a write committed before carries), and
    /// raises this process's horizon to it; if it cannot be read, an
    /// unknown position, which keeps this process's reads on the primary
    /// until one is read (see [`replicas`]). Never fails: the write it
    /// follows has committed. `None` without standbys.
    pub async fn position_after_commit(&self) -> Option<replicas::Position> {
        let replicas = self.replicas.as_ref()?;
        Some(replicas.position_after_commit(&self.conn).await)
    }

    /// Whether the cache hears its invalidation bus: while it does not,
    /// reads stay on the primary (see [`replicas`]).
    pub fn hear_bus(&self, heard: bool) {
        if let Some(replicas) = &self.replicas {
            replicas.hear_bus(heard);
        }
    }

    /// Raises this process's horizon to `lsn` (an invalidation's, heard
    /// from Redis): no read goes to a standby that has not replayed it.
    pub fn learn_lsn(&self, lsn: u64) {
        if let Some(replicas) = &self.replicas {
            replicas.learn(lsn);
        }
    }

    /// Learns of an invalidation whose position is unknown (its token, heard
    /// from Redis): reads stay on the primary until a position read after
    /// this call is known.
    pub fn notice_unknown_position(&self, token: u64) {
        if let Some(replicas) = &self.replicas {
            replicas.notice_unknown(token);
        }
    }

    /// Learns what an invalidation says of the primary's WAL position.
    pub fn learn_position(&self, position: replicas::Position) {
        match position {
            replicas::Position::At(lsn) => self.learn_lsn(lsn),
            replicas::Position::Unknown(token) => self.notice_unknown_position(token),
        }
    }

    /// Whether this database orders text as Rust compares strings, by
    /// bytes (SQLite's `BINARY`, PostgreSQL's `C` collations), so the cache
    /// may compare titles to know which pages a retitle reaches.
    pub fn orders_text_by_bytes(&self) -> bool {
        self.text_by_bytes
    }

    /// Applies every pending migration, each atomically with its record. A
    /// database an older build left half-migrated is refused, with the way
    /// out (`biblio migrate --repair`) named.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        migrations::apply(&self.conn).await?;
        self.note_migrated();
        Ok(())
    }

    /// [`migrate`](Self::migrate), after dropping what interrupted
    /// migrations left behind, if none of it holds data.
    pub async fn repair_and_migrate(&self) -> Result<(), DbErr> {
        migrations::repair(&self.conn).await?;
        self.note_migrated();
        Ok(())
    }

    fn note_migrated(&self) {
        if let Some(migrated) = &self.migrated {
            *migrated.lock() = Some(std::time::Instant::now());
        }
    }

    /// This database's deployment id, generated by its first migration (or
    /// again by the first replica to start, if someone deleted the row).
    pub async fn deployment_id(&self) -> Result<String, DbErr> {
        deployment_settings::get_or_init(self, migration::DEPLOYMENT_ID, || {
            uuid::Uuid::now_v7().simple().to_string()[20..].to_owned()
        })
        .await
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// The database's families for `/metrics`.
    pub fn export(&self) -> instrumentation::Export {
        instrumentation::Export(self.clone())
    }

    /// How many statements have been executed since connecting.
    pub fn statements_executed(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Records that a request has `held` database calls running at once.
    pub fn note_connections_held_by_a_request(&self, held: usize) {
        self.most_held_by_a_request
            .fetch_max(held as u64, Ordering::Relaxed);
    }

    /// The most database calls any one request has had running at once.
    pub fn most_connections_held_by_a_request(&self) -> u64 {
        self.most_held_by_a_request.load(Ordering::Relaxed)
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

/// A row of `M` with one extra integer column `n`: the total of a page,
/// or a per-row count. Lets a page and its total come back in one statement.
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

/// How a page's total is found.
pub(crate) enum Total {
    /// Kept by the writes: a tally, a few row reads.
    Tally(tallies::Tally),
    /// Counted: `COUNT(*)` of this statement, which must be answerable on
    /// an index (its filter's).
    Count(Box<sea_orm::sea_query::SelectStatement>),
}

impl Total {
    /// `COUNT(*)` of `select`'s rows (its order, if any, dropped).
    pub fn count<E: sea_orm::EntityTrait>(select: sea_orm::Select<E>) -> Self {
        use sea_orm::{QuerySelect, QueryTrait};
        let mut query = select
            .select_only()
            .column_as(sea_orm::sea_query::Expr::cust("COUNT(*)"), "n")
            .into_query();
        query.clear_order_by();
        Self::Count(Box::new(query))
    }

    fn into_query(self) -> sea_orm::sea_query::SelectStatement {
        match self {
            Self::Tally(tally) => tally.select(),
            Self::Count(query) => *query,
        }
    }
}

/// One page of `filtered` in `order`, and its total, in one statement that
/// reads neither more rows than the page nor the set it is cut from:
///
/// ```sql
/// SELECT t.*, (<total>) AS n FROM t
/// WHERE t.id IN (SELECT t.id FROM t WHERE <filter> ORDER BY <order> LIMIT ? OFFSET ?)
/// ORDER BY <order>
/// ```
///
/// The inner query walks the index of `order` (its columns and the id) and
/// skips the offset without touching a row; only the page's rows are read,
/// by primary key. The total is a tally or a COUNT on an index, evaluated
/// once (a scalar subquery that depends on no row). A page past the end has
/// no row to carry the total: only then does it cost a second statement.
pub(crate) async fn fetch_page<E>(
    db: &Db,
    filtered: sea_orm::Select<E>,
    order: impl Fn(sea_orm::Select<E>) -> sea_orm::Select<E>,
    total: Total,
    request: crate::domain::PageRequest,
) -> Result<crate::domain::Page<E::Model>, DbErr>
where
    E: Keyed,
    E::Model: FromQueryResult + Send + Sync,
{
    use sea_orm::sea_query::{Query, SimpleExpr, SubQueryStatement};
    use sea_orm::{ColumnTrait, QueryFilter, QuerySelect, QueryTrait};
    let ids = order(filtered)
        .select_only()
        .column(E::id_column())
        .offset(request.offset())
        .limit(request.limit())
        .into_query();
    let total = total.into_query();
    let rows = order(E::find().filter(E::id_column().in_subquery(ids)))
        .column_as(
            SimpleExpr::SubQuery(
                None,
                Box::new(SubQueryStatement::SelectStatement(total.clone())),
            ),
            "n",
        )
        .into_model::<Counted<E::Model>>()
        .all(db.reader())
        .await?;
    let total_count = match rows.first() {
        Some(row) => row.n,
        None if request.page == 1 => 0,
        None => {
            let select = Query::select()
                .expr_as(
                    SimpleExpr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(total))),
                    sea_orm::sea_query::Alias::new("n"),
                )
                .to_owned();
            db.reader()
                .query_one(db.backend().build(&select))
                .await?
                .map(|row| row.try_get_by_index::<i64>(0))
                .transpose()?
                .unwrap_or(0)
        }
    };
    Ok(crate::domain::Page {
        items: rows.into_iter().map(|row| row.model).collect(),
        total_count: total_count.max(0) as u64,
        request,
        changes_at: None,
    })
}

/// A table keyed by a UUID column `id`, readable in batches by [`by_ids`].
pub trait Keyed: sea_orm::EntityTrait {
    fn id_column() -> Self::Column;
    fn id_of(model: &Self::Model) -> Uuid;
}

macro_rules! keyed {
    ($($module:ident),*) => {$(
        impl Keyed for $module::Entity {
            fn id_column() -> Self::Column {
                $module::Column::Id
            }
            fn id_of(model: &Self::Model) -> Uuid {
                model.id
            }
        }
    )*};
}
keyed!(author, book, borrow_record, category, user);

/// The rows of `E` with these ids, in one statement; absent ids are left out.
pub async fn by_ids<E: Keyed>(db: &Db, ids: Vec<Uuid>) -> Result<HashMap<Uuid, E::Model>, DbErr> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let rows = E::find()
        .filter(E::id_column().is_in(ids))
        .all(db.reader())
        .await?;
    Ok(rows.into_iter().map(|row| (E::id_of(&row), row)).collect())
}
