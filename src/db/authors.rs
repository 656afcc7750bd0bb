//! Authors: pages and writes. Lookups by id go through the generic loader.
use super::tallies::Tally;
use super::{fetch_page, now, Db, Total, Write};
use crate::domain::{Page, PageRequest};
use crate::error::{Error, Result};
use entity::author;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use uuid::Uuid;

/// Authors by name; the total is their tally.
pub async fn page(db: &Db, request: PageRequest) -> Result<Page<author::Model>> {
    let by_name = |select: sea_orm::Select<author::Entity>| {
        select
            .order_by_asc(author::Column::Name)
            .order_by_asc(author::Column::Id)
    };
    let total = Total::Tally(Tally::library(migration::tally::kind::AUTHORS));
    Ok(fetch_page(db, author::Entity::find(), by_name, total, request).await?)
}

pub async fn create(write: &Write, name: String, bio: Option<String>) -> Result<author::Model> {
    let now = now();
    Ok(author::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        bio: Set(bio),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(write.conn())
    .await?)
}

/// The name of author `id`, read in `write` and locked against a rename
/// until it commits (PostgreSQL: `FOR SHARE`; SQLite: the write already
/// holds the database's write lock), so the cache's invalidation names the
/// name the committed write saw. Search matches it: see `cache::changes`.
pub async fn name(write: &Write, id: Uuid) -> Result<String> {
    author::Entity::find_by_id(id)
        .select_only()
        .column(author::Column::Name)
        .lock_shared()
        .into_tuple::<String>()
        .one(write.conn())
        .await?
        .ok_or_else(|| Error::not_found("author not found"))
}

/// `None` leaves a field as it is; `bio: Some(None)` clears the bio.
/// Returns the name before the update, and the author after it.
pub async fn update(
    write: &Write,
    id: Uuid,
    name: Option<String>,
    bio: Option<Option<String>>,
) -> Result<(String, author::Model)> {
    // Lock the row first (on SQLite, the database), so the name read next is
    // the one this update replaces.
    let locked = author::Entity::update_many()
        .col_expr(
            author::Column::UpdatedAt,
            Expr::col(author::Column::UpdatedAt).into(),
        )
        .filter(author::Column::Id.eq(id))
        .exec(write.conn())
        .await?;
    if locked.rows_affected == 0 {
        return Err(Error::not_found("author not found"));
    }
    let before = self::name(write, id).await?;
    let changes = author::ActiveModel {
        id: ActiveValue::Unchanged(id),
        name: name.map_or(ActiveValue::NotSet, Set),
        bio: bio.map_or(ActiveValue::NotSet, Set),
        updated_at: Set(now()),
        ..Default::default()
    };
    let after = changes
        .update(write.conn())
        .await
        .map_err(|err| match err {
            sea_orm::DbErr::RecordNotUpdated => Error::not_found("author not found"),
            err => err.into(),
        })?;
    Ok((before, after))
}

/// Refused with CONFLICT while the author has books; the foreign key makes
/// that hold even against a book created concurrently.
pub async fn delete(write: &Write, id: Uuid) -> Result<()> {
    // The DELETE comes first: on SQLite a transaction that reads and then
    // writes can fail to upgrade its lock when another write got in between.
    let still_used = Error::conflict("the author still has books");
    let deleted = author::Entity::delete_by_id(id)
        .exec(write.conn())
        .await
        .map_err(|err| Error::from_write(err, None, Some(still_used)))?;
    if deleted.rows_affected == 0 {
        return Err(Error::not_found("author not found"));
    }
    Ok(())
}
