use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "borrow_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub book_id: Uuid,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub borrowed_at: DateTimeUtc,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub due_at: DateTimeUtc,
    /// `None` while the book is on loan.
    #[serde(with = "chrono::serde::ts_microseconds_option")]
    pub returned_at: Option<DateTimeUtc>,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub created_at: DateTimeUtc,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
    #[sea_orm(
        belongs_to = "super::book::Entity",
        from = "Column::BookId",
        to = "super::book::Column::Id"
    )]
    Book,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl Related<super::book::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Book.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
