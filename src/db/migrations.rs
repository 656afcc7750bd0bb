//! Applying migrations atomically, and recognising (and, when no data is at
//! stake, repairing) a database an older build left half-migrated.
//!
//! sea-orm-migration runs the pending migrations in one transaction on
//! PostgreSQL but in none on SQLite, where a process that died between a
//! migration's statements and its record in `seaql_migrations` left tables
//! that every later run tried to create again ("table authors already
//! exists"). Here each migration runs in a transaction of its own, record
//! included, on both backends (SQLite's DDL is transactional too), so a
//! failed or interrupted migration leaves nothing behind.
use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::sea_query::{Alias, Expr, Query, Table};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, TransactionTrait,
};
use std::collections::HashSet;

/// Applies every pending migration, each with its record in one transaction.
/// A database left half-migrated is refused with the way out named.
pub(super) async fn apply(conn: &DatabaseConnection) -> Result<(), DbErr> {
    let turn = take_turn(conn).await?;
    let give_up = std::time::Instant::now() + LOCKED_FOR_AT_MOST;
    let leftovers = loop {
        match leftovers(conn).await {
            // SQLite: another replica holds the write lock (creating
            // `seaql_migrations`, say); look again.
            Err(err) if std::time::Instant::now() < give_up && is_locked(&err) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            found => break found?,
        }
    };
    if !leftovers.is_empty() {
        return Err(DbErr::Migration(half_migrated(&leftovers)));
    }
    while !Migrator::get_pending_migrations(conn).await?.is_empty() {
        let transaction = conn.begin().await?;
        let step = match Migrator::up(&transaction, Some(1)).await {
            Ok(()) => transaction.commit().await,
            Err(err) => Err(err),
        };
        match step {
            Ok(()) => {}
            // SQLite: another replica is migrating the same file (busy,
            // or it committed after this transaction read); read again
            // what is pending.
            Err(err) if std::time::Instant::now() < give_up && is_locked(&err) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(err) => return Err(err),
        }
    }
    drop(turn);
    Ok(())
}

/// SQLite's "busy" answers: the database is locked by another writer, or
/// changed since this transaction read it.
fn is_locked(err: &DbErr) -> bool {
    super::write::sqlite_code(err).is_some_and(|c| c == "5" || c == "517")
}

/// How long migrating keeps trying steps SQLite refuses as locked (20 ms
/// apart): a time, not a count, since a plain busy answer may itself have
/// waited out the 10 s busy timeout.
pub(super) const LOCKED_FOR_AT_MOST: std::time::Duration = std::time::Duration::from_secs(30);

/// The advisory lock replicas migrating one PostgreSQL database take turns
/// by (any constant; this one spells "biblio").
const MIGRATION_LOCK: i64 = 0x6269_626c_696f;

/// On PostgreSQL, waits for this process's turn to migrate, held until the
/// returned transaction ends: replicas of a new deployment start together,
/// and two `CREATE TABLE`s of one name at once fail there (one with
/// `duplicate key value violates unique constraint "pg_type_typname_nsp_index"`).
/// The later replicas then find nothing pending. SQLite's own write lock
/// serialises the steps (see [`LOCKED_FOR_AT_MOST`]). A pool of one connection
/// has none to spare for the lock and takes no turn.
async fn take_turn(conn: &DatabaseConnection) -> Result<Option<DatabaseTransaction>, DbErr> {
    if conn.get_database_backend() != DbBackend::Postgres
        || conn
            .get_postgres_connection_pool()
            .options()
            .get_max_connections()
            < 2
    {
        return Ok(None);
    }
    let turn = conn.begin().await?;
    turn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        .await?;
    Ok(Some(turn))
}

/// Drops the tables of migrations that are not recorded as applied, when
/// none of them holds data, then applies every pending migration. With data
/// at stake it changes nothing and says what to do instead.
pub(super) async fn repair(conn: &DatabaseConnection) -> Result<(), DbErr> {
    let leftovers = leftovers(conn).await?;
    let mut holding = Vec::new();
    for leftover in &leftovers {
        for &table in &leftover.tables {
            if migration::is_regenerated(table) {
                continue;
            }
            let rows = count_rows(conn, table).await?;
            if rows > 0 {
                let plural = if rows == 1 { "" } else { "s" };
                holding.push(format!("{table} ({rows} row{plural})"));
            }
        }
    }
    if !holding.is_empty() {
        return Err(DbErr::Migration(refused(&leftovers, &holding)));
    }
    let transaction = conn.begin().await?;
    for leftover in leftovers.iter().rev() {
        for &table in leftover.tables.iter().rev() {
            let drop = Table::drop()
                .table(Alias::new(table))
                .if_exists()
                .to_owned();
            transaction
                .execute(transaction.get_database_backend().build(&drop))
                .await?;
        }
        tracing::warn!(
            migration = %leftover.migration,
            tables = %leftover.tables.join(", "),
            "repair: dropped the empty tables of an unrecorded migration"
        );
    }
    transaction.commit().await?;
    apply(conn).await
}

/// The tables of one migration that exist although it is not recorded as
/// applied.
struct Leftover {
    migration: String,
    tables: Vec<&'static str>,
}

/// Read in one transaction, so on one snapshot: on SQLite another replica
/// may be migrating the same file, and a migration's tables and its record
/// commit together, so reading them at two moments could see its tables
/// without its record, and call the database half-migrated (seen with two
/// replicas started at once on an empty file under load, about one start
/// in five).
async fn leftovers(conn: &DatabaseConnection) -> Result<Vec<Leftover>, DbErr> {
    let snapshot = conn.begin().await?;
    let found = leftovers_in(&snapshot).await?;
    snapshot.commit().await?;
    Ok(found)
}

async fn leftovers_in(conn: &DatabaseTransaction) -> Result<Vec<Leftover>, DbErr> {
    let pending: HashSet<String> = Migrator::get_pending_migrations(conn)
        .await?
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    let manager = SchemaManager::new(conn);
    let mut leftovers = Vec::new();
    for (migration, created) in migration::created_tables(conn.get_database_backend()) {
        if !pending.contains(&migration) {
            continue;
        }
        let mut tables = Vec::new();
        for &table in created {
            if manager.has_table(table).await? {
                tables.push(table);
            }
        }
        if !tables.is_empty() {
            leftovers.push(Leftover { migration, tables });
        }
    }
    Ok(leftovers)
}

async fn count_rows(conn: &DatabaseConnection, table: &str) -> Result<i64, DbErr> {
    let select = Query::select()
        .expr(Expr::cust("COUNT(*)"))
        .from(Alias::new(table))
        .to_owned();
    let row = conn
        .query_one(conn.get_database_backend().build(&select))
        .await?;
    row.map(|row| row.try_get_by_index::<i64>(0))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn describe(leftovers: &[Leftover]) -> String {
    leftovers
        .iter()
        .map(|leftover| {
            format!(
                "migration {} is not recorded in seaql_migrations, yet its tables {} exist",
                leftover.migration,
                leftover.tables.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn half_migrated(leftovers: &[Leftover]) -> String {
    format!(
        "the database is half-migrated: {} (a migration by an older biblio was \
         interrupted). Run `biblio migrate --repair` to drop those tables and migrate \
         again; it only does so when they hold no rows.",
        describe(leftovers)
    )
}

fn refused(leftovers: &[Leftover], holding: &[String]) -> String {
    let record = leftovers
        .iter()
        .map(|leftover| format!("('{}', 0)", leftover.migration))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "not repairing the half-migrated database, nothing was changed: {}, and {} \
         hold data that dropping them would lose. Back the database up; then either \
         move those rows out and run `biblio migrate --repair` again, or, if those \
         tables are complete, record their migrations as applied \
         (INSERT INTO seaql_migrations (version, applied_at) VALUES {record}) and run \
         `biblio migrate`.",
        describe(leftovers),
        holding.join(", ")
    )
}
