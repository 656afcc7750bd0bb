//! A write: one transaction that commits together with the record of the
//! cache invalidation it causes (an outbox row), so a committed change can
//! never lose its invalidation. Every write function takes a [`Write`];
//! only [`Write::commit`] ends one successfully, and dropping it rolls back.
use super::{outbox, Db};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, TransactionTrait};

/// What [`Write::commit`] recorded.
pub struct Committed {
    /// The outbox row of the write's invalidation, if one was recorded.
    pub outbox: Option<i64>,
    /// The primary's WAL position after the commit, with read replicas
    /// (see [`super::replicas`]): the invalidation carries it.
    pub position: Option<super::replicas::Position>,
}

pub struct Write {
    db: Db,
    txn: DatabaseTransaction,
    /// SQLite: this process's turn to write, held until the write ends.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// How long a write waits for its turn before it goes on without one (and
/// meets SQLite's busy timeout as before): only a write begun while one of
/// the same task is open could wait that long.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many times a write retries taking SQLite's write lock when the
/// snapshot it began with went stale (each after a pause of a millisecond
/// or so): SQLite refuses that case at once, without its busy timeout.
const LOCK_ATTEMPTS: u32 = 50;

impl Db {
    /// Opens a write. On SQLite the transaction takes the database's write
    /// lock before anything else, as `BEGIN IMMEDIATE` would: a deferred
    /// transaction that has read anything (if only the schema) and then
    /// writes after another connection committed fails at once with
    /// `SQLITE_BUSY_SNAPSHOT`, which no busy timeout waits out. On
    /// PostgreSQL each statement locks the rows it changes, so write
    /// functions begin with the UPDATE of the row they are about.
    ///
    /// SQLite has one writer at a time, and a connection that finds the
    /// lock taken sleeps in its busy handler (1, 2, 5, 10 ... 100 ms) while
    /// holding a connection of the pool. So this process's writes first
    /// take turns in memory, before they take a connection: under a stream
    /// of writes each waits for the writes ahead of it, not for sleeps, and
    /// reads keep their connections.
    pub async fn begin_write(&self) -> Result<Write, DbErr> {
        let mut attempt = 0;
        let mut turn = match &self.write_turns {
            Some(turns) => tokio::time::timeout(TURN_WAIT, turns.clone().lock_owned())
                .await
                .ok(),
            None => None,
        };
        loop {
            let txn = self.conn().begin().await?;
            if self.backend() != sea_orm::DbBackend::Sqlite {
                return Ok(self.write(txn, None));
            }
            // A write that changes nothing, to take the lock; it names the
            // outbox, so it is counted as bookkeeping, not as the service's
            // statements.
            let locked = txn
                .execute_unprepared(&format!("DELETE FROM {} WHERE 0 = 1", outbox::TABLE))
                .await;
            match locked {
                Ok(_) => return Ok(self.write(txn, turn.take())),
                Err(err) if is_stale_snapshot(&err) && attempt < LOCK_ATTEMPTS => {
                    attempt += 1;
                    txn.rollback().await?;
                    tokio::time::sleep(std::time::Duration::from_micros(
                        500 + u64::from(attempt) * 100,
                    ))
                    .await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn write(
        &self,
        txn: DatabaseTransaction,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Write {
        Write {
            db: self.clone(),
            txn,
            _turn: turn,
        }
    }
}

/// SQLite's "database is locked" for a snapshot gone stale
/// (`SQLITE_BUSY_SNAPSHOT`, 517): the transaction read before it wrote
/// (a connection's first statement reads the schema), and another
/// connection committed in between. A plain busy database (5) has waited
/// out the busy timeout already and is not retried.
fn is_stale_snapshot(err: &DbErr) -> bool {
    sqlite_code(err).is_some_and(|code| code == "517")
}

/// The SQLite result code of a failed statement (`5` busy, `517` a stale
/// snapshot, ...), if it is one.
pub(super) fn sqlite_code(err: &DbErr) -> Option<String> {
    let (DbErr::Exec(sea_orm::RuntimeErr::SqlxError(sqlx))
    | DbErr::Query(sea_orm::RuntimeErr::SqlxError(sqlx))
    | DbErr::Conn(sea_orm::RuntimeErr::SqlxError(sqlx))) = err
    else {
        return None;
    };
    sqlx.as_database_error()
        .and_then(|db| db.code())
        .map(|code| code.into_owned())
}

impl Write {
    /// The transaction, for the write's statements.
    pub fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// The pool, for reads outside the transaction: after a failed statement
    /// PostgreSQL refuses any other statement in the same transaction, and
    /// explaining a failure (which foreign key was missing) needs one.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Commits, recording `invalidation` (the cache's serialised form) in the
    /// same transaction. `None` records nothing: for deployments without a
    /// shared cache to invalidate.
    pub async fn commit(self, invalidation: Option<&str>) -> Result<Committed, DbErr> {
        let outbox = match invalidation {
            Some(payload) => Some(outbox::record(&self.txn, payload).await?),
            None => None,
        };
        self.txn.commit().await?;
        // After the commit, so the position is past its commit record. It
        // cannot fail the write, which has committed: a position that
        // cannot be read is sent as unknown.
        let position = self.db.position_after_commit().await;
        Ok(Committed { outbox, position })
    }
}
