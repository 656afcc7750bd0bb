use super::{id, Book, User};
use crate::error::{Error, Result};
use crate::graphql::scope;
use async_graphql::{Context, Enum, Object, ID};
use chrono::{DateTime, Utc};
use entity::borrow_record;
use std::sync::Arc;

/// One loan of one book to one member.
pub struct BorrowRecord(pub Arc<borrow_record::Model>);

#[Object]
impl BorrowRecord {
    async fn id(&self) -> ID {
        id(self.0.id)
    }

    async fn book(&self, ctx: &Context<'_>) -> Result<Book> {
        scope(ctx)?
            .book(self.0.book_id)
            .await?
            .map(Book)
            .ok_or_else(|| {
                Error::internal(format!("book {} of a borrow is missing", self.0.book_id))
            })
    }

    async fn user(&self, ctx: &Context<'_>) -> Result<User> {
        scope(ctx)?
            .user(self.0.user_id)
            .await?
            .map(User)
            .ok_or_else(|| {
                Error::internal(format!("user {} of a borrow is missing", self.0.user_id))
            })
    }

    async fn borrowed_at(&self) -> DateTime<Utc> {
        self.0.borrowed_at
    }

    /// When the book should be back.
    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }

    /// `null` while the book is on loan.
    async fn returned_at(&self) -> Option<DateTime<Utc>> {
        self.0.returned_at
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(remote = "crate::db::borrows::Status")]
pub enum BorrowStatus {
    #[default]
    All,
    /// Not yet returned.
    Active,
    Returned,
    /// Not yet returned and past due.
    Overdue,
}
