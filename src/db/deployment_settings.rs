//! Deployment-wide settings stored in the database.
use super::Db;
use entity::setting;
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};

/// The value under `key`; the first caller stores `generate()`'s value and
/// every caller, on every replica, gets that same value back.
pub async fn get_or_init(
    db: &Db,
    key: &str,
    generate: impl FnOnce() -> String,
) -> Result<String, sea_orm::DbErr> {
    if let Some(found) = setting::Entity::find_by_id(key).one(db.conn()).await? {
        return Ok(found.value);
    }
    let insert = setting::Entity::insert(setting::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(generate()),
    })
    .on_conflict(
        OnConflict::column(setting::Column::Key)
            .do_nothing()
            .to_owned(),
    )
    .do_nothing()
    .exec(db.conn())
    .await;
    insert?;
    setting::Entity::find_by_id(key)
        .one(db.conn())
        .await?
        .map(|found| found.value)
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("setting {key}")))
}
