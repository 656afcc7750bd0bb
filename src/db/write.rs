//! A write: one transaction that commits together with the record of the
//! cache invalidation it causes (an outbox row), so a committed change can
//! never lose its invalidation. Every write function takes a [`Write`];
//! only [`Write::commit`] ends one successfully, and dropping it rolls back.
use super::{outbox, Db};
use sea_orm::{DatabaseTransaction, DbErr, TransactionTrait};

pub struct Write {
    db: Db,
    txn: DatabaseTransaction,
}

impl Db {
    /// Opens a write. On SQLite the transaction takes the database's write
    /// lock with its first write statement; on PostgreSQL each statement
    /// locks the rows it changes, so write functions begin with the UPDATE of
    /// the row they are about.
    pub async fn begin_write(&self) -> Result<Write, DbErr> {
        Ok(Write {
            db: self.clone(),
            txn: self.conn().begin().await?,
        })
    }
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
    /// same transaction; returns its outbox id. `None` records nothing: for
    /// deployments without a shared cache to invalidate.
    pub async fn commit(self, invalidation: Option<&str>) -> Result<Option<i64>, DbErr> {
        let id = match invalidation {
            Some(payload) => Some(outbox::record(&self.txn, payload).await?),
            None => None,
        };
        self.txn.commit().await?;
        Ok(id)
    }
}
