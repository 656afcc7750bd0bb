use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "books")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub title: String,
    /// ISBN-13, digits only (validated before it gets here).
    #[sea_orm(unique)]
    pub isbn: String,
    /// Price in cents: an exact integer on every backend, where a SQL
    /// DECIMAL would be a float on SQLite.
    pub price_cents: i64,
    pub published_year: Option<i32>,
    pub copies_total: i32,
    /// `copies_total` minus the active borrows, kept in the same
    /// transaction as every borrow and return so that lending the last copy
    /// is one conditional UPDATE.
    pub copies_available: i32,
    pub author_id: Uuid,
    pub category_id: Uuid,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub created_at: DateTimeUtc,
    #[serde(with = "chrono::serde::ts_microseconds")]
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::author::Entity",
        from = "Column::AuthorId",
        to = "super::author::Column::Id"
    )]
    Author,
    #[sea_orm(
        belongs_to = "super::category::Entity",
        from = "Column::CategoryId",
        to = "super::category::Column::Id"
    )]
    Category,
    #[sea_orm(has_many = "super::borrow_record::Entity")]
    BorrowRecord,
}

impl Related<super::author::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Author.def()
    }
}

impl Related<super::category::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Category.def()
    }
}

impl Related<super::borrow_record::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BorrowRecord.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
