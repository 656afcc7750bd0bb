//! Opening the pool: PostgreSQL or SQLite settings, statement counting, and
//! the probe of the database's text order.
use super::*;

/// Counts and times every statement sent through `conn`: all of them for
/// `/metrics`, the service's own (not the cache's bookkeeping) in
/// `statements`.
pub(super) fn instrument(
    conn: &mut DatabaseConnection,
    statements: &Arc<AtomicU64>,
    metrics: &Arc<instrumentation::Statements>,
) {
    let (counter, recorder) = (statements.clone(), metrics.clone());
    conn.set_metric_callback(move |info| {
        let sql = &info.statement.sql;
        let purpose = if sql.contains(outbox::TABLE)
            || sql.contains(cache_changes::TABLE)
            || replicas::is_bookkeeping(sql)
        {
            instrumentation::Purpose::Outbox
        } else {
            counter.fetch_add(1, Ordering::Relaxed);
            instrumentation::Purpose::Service
        };
        recorder.record(purpose, info.elapsed, info.failed);
    });
}

/// A pooled PostgreSQL connection idle for at least this long is pinged
/// before it is handed out (one that fails is closed and another taken);
/// one used more recently is handed out as it is. sqlx's default pings
/// every connection taken, a round trip before every write and every miss:
/// a busy replica's connections are never idle that long, and a connection
/// broken within the last second (a restarted server) fails one statement.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// PostgreSQL's pool (`size` connections), each session marked as biblio's,
/// built here rather than by sea-orm for when to ping ([`PING_IF_IDLE_FOR`]).
pub(super) async fn connect_postgres(url: &str, size: u32) -> Result<DatabaseConnection, DbErr> {
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
    let sqlx_error = |err| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(err));
    let options = url
        .parse::<PgConnectOptions>()
        .map_err(sqlx_error)?
        // Marks biblio's sessions, whose writes the triggers that
        // announce other programs' writes skip (see `changes`).
        .options([(migration::changes::WRITER_SETTING, "on")])
        .disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(sqlx_error)?;
    Ok(sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(
        pool,
    ))
}

/// SQLite's pool (`size` connections, WAL, foreign keys on), built here rather
/// than by sea-orm for its connection hooks: each connection creates the
/// TEMP trigger that keeps biblio's own writes out of `cache_changes` (see
/// [`changes`]) when it opens, outside any transaction. (Inside a write
/// transaction it would read the schema before the first write, and a
/// SQLite transaction that reads before it writes cannot take the write
/// lock once another connection has committed.)
///
/// Until the migrations have made the table, the statement fails. So
/// until this process has applied them (`migrated`), the statement is
/// tried again each time a connection is taken from the pool; from then
/// on, a connection opened before they last finished is closed when next
/// taken (a new one replaces it), and taking one costs no statement. (A
/// connection that could not make the trigger only has its own writes
/// announced twice, which is harmless.)
pub(super) async fn connect_sqlite(
    url: &str,
    migrated: Migrated,
    size: u32,
) -> Result<DatabaseConnection, DbErr> {
    use sea_orm::sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use sea_orm::sqlx::{ConnectOptions as _, Executor as _};
    let sqlx_error = |err| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(err));
    let options = url
        .parse::<SqliteConnectOptions>()
        .map_err(sqlx_error)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .disable_statement_logging();
    // Opening sets the journal mode, which the first connections to a new
    // file race for (replicas started together): SQLite answers busy at
    // once, without its busy timeout. Tried again, 20 ms apart, for
    // at most `LOCKED_FOR_AT_MOST`.
    let give_up = std::time::Instant::now() + super::migrations::LOCKED_FOR_AT_MOST;
    let pool = loop {
        let migrated = migrated.clone();
        let opened = SqlitePoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(5))
            // A connection to a file does not break as a socket does, and
            // a ping is a round trip to the connection's worker thread.
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    let _ = conn.execute(migration::changes::SQLITE_OWN_WRITES).await;
                    Ok(())
                })
            })
            .before_acquire(move |conn, meta| {
                let since = *migrated.lock();
                Box::pin(async move {
                    let Some(since) = since else {
                        let _ = conn.execute(migration::changes::SQLITE_OWN_WRITES).await;
                        return Ok(true);
                    };
                    let opened = std::time::Instant::now().checked_sub(meta.age);
                    Ok(opened.is_some_and(|opened| opened > since))
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(sqlx_error);
        match opened {
            Err(err)
                if std::time::Instant::now() < give_up
                    && super::write::sqlite_code(&err).as_deref() == Some("5") =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            opened => break opened?,
        }
    };
    Ok(sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

/// Sorts [`COLLATION_PROBE`] in the database's default collation (the one
/// the catalogue's columns use) and compares with Rust's order.
pub(super) async fn probe_text_order(conn: &DatabaseConnection) -> Result<bool, DbErr> {
    let values = COLLATION_PROBE
        .iter()
        .map(|text| format!("('{text}')"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT column1 AS text FROM (VALUES {values}) AS probe ORDER BY column1");
    let rows = conn
        .query_all(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            sql,
        ))
        .await?;
    let sorted: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String>("", "text"))
        .collect::<Result<_, _>>()?;
    let mut by_bytes: Vec<String> = COLLATION_PROBE.iter().map(|s| (*s).to_owned()).collect();
    by_bytes.sort_unstable();
    Ok(sorted == by_bytes)
}
