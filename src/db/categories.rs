//! Categories: the full list and writes. Names are unique.
use super::{now, Db, Write};
use crate::error::{Error, Result};
use entity::category;
use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, QueryOrder, Set};
use uuid::Uuid;

pub async fn all(db: &Db) -> Result<Vec<category::Model>> {
    Ok(category::Entity::find()
        .order_by_asc(category::Column::Name)
        .all(db.reader())
        .await?)
}

fn duplicate_name(name: &str) -> String {
    format!("a category named {name:?} already exists")
}

pub async fn create(write: &Write, name: String) -> Result<category::Model> {
    let now = now();
    let message = duplicate_name(&name);
    category::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(write.conn())
    .await
    .map_err(|err| Error::from_write(err, Some(Error::conflict(message)), None))
}

pub async fn update(write: &Write, id: Uuid, name: Option<String>) -> Result<category::Model> {
    let message = name.as_deref().map(duplicate_name).unwrap_or_default();
    let changes = category::ActiveModel {
        id: ActiveValue::Unchanged(id),
        name: name.map_or(ActiveValue::NotSet, Set),
        updated_at: Set(now()),
        ..Default::default()
    };
    changes.update(write.conn()).await.map_err(|err| match err {
        sea_orm::DbErr::RecordNotUpdated => Error::not_found("category not found"),
        err => Error::from_write(err, Some(Error::conflict(message)), None),
    })
}

/// Refused with CONFLICT while books are in the category.
pub async fn delete(write: &Write, id: Uuid) -> Result<()> {
    // The DELETE comes first: on SQLite a transaction that reads and then
    // writes can fail to upgrade its lock when another write got in between.
    let still_used = Error::conflict("the category still has books");
    let deleted = category::Entity::delete_by_id(id)
        .exec(write.conn())
        .await
        .map_err(|err| Error::from_write(err, None, Some(still_used)))?;
    if deleted.rows_affected == 0 {
        return Err(Error::not_found("category not found"));
    }
    Ok(())
}
