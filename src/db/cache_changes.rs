//! The changes the database's triggers record (`cache_changes`, see the
//! migration `m20261207_000004_cache_changes` for what a row holds and
//! why biblio's own writes are not among them). A replica reads the head
//! of the table, and takes rows out in the transaction that records their
//! invalidation in the outbox, so that each row is taken by exactly one
//! replica and no taken row can be lost: from then on it is an outbox row
//! like a mutation's. Its statements are cache bookkeeping, counted apart
//! like the outbox's.
use super::{outbox, Db};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, IsolationLevel, Statement, TransactionTrait};

/// The table's name, which the statement counter recognises.
pub const TABLE: &str = "cache_changes";

/// The channel PostgreSQL's triggers notify.
pub use migration::changes::CHANNEL;

/// The oldest rows, at most `limit`, each its id and its change: one read
/// on the primary key, nothing when the table is empty.
pub async fn head(db: &Db, limit: u64) -> Result<Vec<(i64, String)>, DbErr> {
    let rows = db
        .conn()
        .query_all(Statement::from_string(
            db.backend(),
            format!("SELECT id, change FROM {TABLE} ORDER BY id LIMIT {limit}"),
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
}

/// What [`take`] did.
pub enum Taken {
    /// Another replica had taken them: nothing was done.
    Nothing,
    /// The rows are gone and their invalidation is this outbox row.
    Recorded {
        /// The outbox row.
        outbox: i64,
        /// How many changes it covers.
        rows: usize,
    },
    /// `convert` could not read a row: nothing was done.
    Unreadable,
}

/// Takes every row up to `through` out of the table and records, in the
/// same transaction, what `convert` makes of their changes (a serialised
/// invalidation) in the outbox. Rows another replica took first are not
/// returned here (on PostgreSQL the DELETE waits for that replica's
/// transaction and then skips them).
pub async fn take(
    db: &Db,
    through: i64,
    convert: impl FnOnce(&[String]) -> Option<String>,
) -> Result<Taken, DbErr> {
    let txn = db.conn().begin().await?;
    let rows = txn
        .query_all(Statement::from_string(
            db.backend(),
            format!("DELETE FROM {TABLE} WHERE id <= {through} RETURNING change"),
        ))
        .await?;
    let changes: Vec<String> = rows
        .iter()
        .map(|row| row.try_get_by_index(0))
        .collect::<Result<_, _>>()?;
    if changes.is_empty() {
        return Ok(Taken::Nothing);
    }
    let Some(payload) = convert(&changes) else {
        // Dropping the transaction rolls the DELETE back.
        return Ok(Taken::Unreadable);
    };
    let outbox = outbox::record(&txn, &payload).await?;
    txn.commit().await?;
    Ok(Taken::Recorded {
        outbox,
        rows: changes.len(),
    })
}

/// Deletes every row committed before `cleared` (clearing the whole cache)
/// succeeded, and none committed after: the rows are those of one
/// snapshot, taken before `cleared` runs (REPEATABLE READ on PostgreSQL;
/// on SQLite the read transaction's, which cannot delete if anyone wrote
/// since). Returns how many were deleted, `None` if `cleared` failed
/// (nothing is deleted). An error (another replica took rows of the
/// snapshot meanwhile) leaves the rows for the next try.
pub async fn remove_cleared<F>(db: &Db, cleared: impl FnOnce() -> F) -> Result<Option<u64>, DbErr>
where
    F: std::future::Future<Output = bool>,
{
    let isolation = (db.backend() == DbBackend::Postgres).then_some(IsolationLevel::RepeatableRead);
    let txn = db.conn().begin_with_config(isolation, None).await?;
    let newest = txn
        .query_one(Statement::from_string(
            db.backend(),
            format!("SELECT MAX(id) FROM {TABLE}"),
        ))
        .await?
        .map(|row| row.try_get_by_index::<Option<i64>>(0))
        .transpose()?
        .flatten();
    let Some(through) = newest else {
        return Ok(Some(0));
    };
    if !cleared().await {
        return Ok(None);
    }
    let deleted = txn
        .execute(Statement::from_string(
            db.backend(),
            format!("DELETE FROM {TABLE} WHERE id <= {through}"),
        ))
        .await?
        .rows_affected();
    txn.commit().await?;
    Ok(Some(deleted))
}

/// The triggers a write could get past, each as `table.trigger`: those
/// that announce writes to the caches, and those that keep the search's
/// own tables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Bypasses {
    /// Triggers the migration created that are gone (dropped by hand, or
    /// by a restore that left them out).
    pub missing: Vec<String>,
    /// Triggers present but not firing for ordinary sessions: disabled
    /// (`ALTER TABLE … DISABLE TRIGGER`), or firing only in replica mode
    /// (`ENABLE REPLICA TRIGGER`). PostgreSQL only: SQLite's triggers
    /// cannot be disabled.
    pub disabled: Vec<String>,
}

impl Bypasses {
    /// Whether every trigger is there and fires.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.disabled.is_empty()
    }
}

/// Which of the triggers that announce other programs' writes, or keep
/// the search's tables, are missing or disabled: one read of the catalogue
/// (`pg_trigger` on PostgreSQL, `sqlite_master` on SQLite).
pub async fn bypasses(db: &Db) -> Result<Bypasses, DbErr> {
    // `tgenabled`: 'O' fires in ordinary sessions, 'A' always, 'R' only in
    // replica mode, 'D' never. `pg_table_is_visible`: the tables biblio
    // uses, those of its search path.
    let sql = match db.backend() {
        DbBackend::Postgres => {
            "SELECT c.relname::text, t.tgname::text, t.tgenabled IN ('O', 'A') \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE NOT t.tgisinternal AND pg_table_is_visible(c.oid)"
        }
        _ => "SELECT tbl_name, name, 1 FROM sqlite_master WHERE type = 'trigger'",
    };
    let rows = db
        .conn()
        .query_all(Statement::from_string(db.backend(), sql))
        .await?;
    let mut present = std::collections::HashMap::new();
    for row in rows {
        let table: String = row.try_get_by_index(0)?;
        let trigger: String = row.try_get_by_index(1)?;
        let fires: bool = row.try_get_by_index(2)?;
        present.insert(format!("{table}.{trigger}"), fires);
    }
    let mut bypasses = Bypasses::default();
    let expected = migration::changes::triggers()
        .into_iter()
        .chain(migration::search::triggers(db.backend()));
    for (table, trigger) in expected {
        let name = format!("{table}.{trigger}");
        match present.get(&name) {
            None => bypasses.missing.push(name),
            Some(false) => bypasses.disabled.push(name),
            Some(true) => {}
        }
    }
    Ok(bypasses)
}
