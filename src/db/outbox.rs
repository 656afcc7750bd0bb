//! The cache outbox: invalidations recorded by writes in their own
//! transaction, deleted once published. Its statements are cache
//! bookkeeping, so [`Db::statements_executed`] does not count them.
use super::{now, Db};
use entity::cache_outbox;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, NotSet, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use std::time::Duration;

/// The table's name, which the statement counter recognises.
pub const TABLE: &str = "cache_outbox";

pub(super) async fn record(conn: &impl ConnectionTrait, payload: &str) -> Result<i64, DbErr> {
    let row = cache_outbox::ActiveModel {
        id: NotSet,
        created_at: Set(now()),
        payload: Set(payload.to_owned()),
    }
    .insert(conn)
    .await?;
    Ok(row.id)
}

/// Entries recorded at least `age` ago, oldest first, at most `limit`.
pub async fn older_than(
    db: &Db,
    age: Duration,
    limit: u64,
) -> Result<Vec<cache_outbox::Model>, DbErr> {
    let cutoff = now() - chrono::Duration::from_std(age).unwrap_or_default();
    cache_outbox::Entity::find()
        .filter(cache_outbox::Column::CreatedAt.lte(cutoff))
        .order_by_asc(cache_outbox::Column::Id)
        .limit(limit)
        .all(db.conn())
        .await
}

/// Deletes published entries.
pub async fn remove(db: &Db, ids: &[i64]) -> Result<(), DbErr> {
    // In chunks: a statement takes a bounded number of parameters.
    for chunk in ids.chunks(500) {
        cache_outbox::Entity::delete_many()
            .filter(cache_outbox::Column::Id.is_in(chunk.iter().copied()))
            .exec(db.conn())
            .await?;
    }
    Ok(())
}
