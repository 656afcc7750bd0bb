use crate::cache::Change;
use crate::db;
use crate::domain::parse_id;
use crate::error::{Error, Result};
use crate::graphql::types::BorrowRecord;
use crate::graphql::{current_user, scope, services};
use async_graphql::{Context, Object, ID};
use entity::user::Role;
use std::sync::Arc;

#[derive(Default)]
pub struct BorrowingMutation;

#[Object]
impl BorrowingMutation {
    /// Lends a copy to the signed-in user. CONFLICT when no copy is free or
    /// they already have this book on loan.
    async fn borrow_book(&self, ctx: &Context<'_>, book_id: ID) -> Result<Option<BorrowRecord>> {
        let user = current_user(ctx).await?;
        let book_id = parse_id(&book_id, "bookId")?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let record = db::borrows::borrow(&write, user.id, book_id, services.loan_period).await?;
        let change = Change::BookBorrowed {
            record: record.clone(),
        };
        services.cache.commit(write, change).await?;
        Ok(Some(BorrowRecord(Arc::new(record))))
    }

    /// Returns a borrowed copy; only the borrower or a librarian may.
    async fn return_book(&self, ctx: &Context<'_>, borrow_id: ID) -> Result<Option<BorrowRecord>> {
        let user = current_user(ctx).await?;
        let borrow_id = parse_id(&borrow_id, "borrowId")?;
        let services = services(ctx)?;
        // One share of the pool for the read and then the write.
        let _share = scope(ctx)?.db_gate().enter().await;
        // Read from the database, not the cache: the decision to write is
        // made on the current row.
        let record = db::borrows::by_id(&services.db, borrow_id)
            .await?
            .ok_or_else(|| Error::not_found("borrow record not found"))?;
        if record.user_id != user.id && user.role != Role::Librarian {
            return Err(Error::forbidden(
                "only the borrower or a librarian may return this book",
            ));
        }
        let write = services.db.begin_write().await?;
        let returned = db::borrows::give_back(&write, &record).await?;
        let change = Change::BookReturned {
            record: returned.clone(),
        };
        services.cache.commit(write, change).await?;
        Ok(Some(BorrowRecord(Arc::new(returned))))
    }
}
