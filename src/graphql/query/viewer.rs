use crate::auth::Viewer;
use crate::cache::List;
use crate::db;
use crate::domain::cursor::Cursor;
use crate::domain::{PageRequest, SliceRequest};
use crate::error::Result;
use crate::graphql::types::{connection, BorrowRecord, BorrowStatus, Connected, Paged, User};
use crate::graphql::{current_user, scope, services, viewer};
use async_graphql::{Context, Object};

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The signed-in user; null when anonymous.
    async fn me(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        if viewer(ctx)? == Viewer::Anonymous {
            return Ok(None);
        }
        Ok(Some(User(current_user(ctx).await?)))
    }

    /// The signed-in user's borrows, newest first.
    #[graphql(
        complexity = "super::MY_BORROWS_COST + page_size.clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    async fn my_borrows(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(BorrowStatus::All)")] status: Option<BorrowStatus>,
        #[graphql(default = 1)] page: i32,
        #[graphql(default = 20)] page_size: i32,
    ) -> Result<Paged<BorrowRecord>> {
        let user_id = viewer(ctx)?.require_user()?;
        let request = PageRequest::parse(page, page_size)?;
        let status: db::borrows::Status = status.unwrap_or_default().into();
        let services = services(ctx)?;
        let scope = scope(ctx)?;
        // Private: the list, and so its key, carries the user's id.
        let list = List::UserBorrows {
            user: user_id,
            status,
            page: request,
        };
        let borrows = scope
            .page(
                &list,
                request,
                || {
                    scope.on_db(db::borrows::page_for_user(
                        &services.db,
                        user_id,
                        status,
                        request,
                    ))
                },
                |ids| scope.borrows(ids),
            )
            .await?;
        Ok(Paged::new(borrows.map(BorrowRecord)))
    }

    /// The signed-in user's borrows, newest first, as a Relay connection
    /// (arguments and cursors as `booksConnection`). A cursor is of one
    /// member's list with one status: another member's, or another
    /// status's, is `BAD_USER_INPUT`.
    #[graphql(
        complexity = "super::MY_BORROWS_COST + first.or(last).unwrap_or(crate::domain::DEFAULT_SLICE_SIZE as i32).clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    async fn my_borrows_connection(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(BorrowStatus::All)")] status: Option<BorrowStatus>,
    ) -> Result<Connected<BorrowRecord>> {
        let user_id = viewer(ctx)?.require_user()?;
        let status: db::borrows::Status = status.unwrap_or_default().into();
        let listing = db::borrows::listing(user_id, status);
        let request =
            SliceRequest::parse(first, after.as_deref(), last, before.as_deref(), &listing)?;
        let services = services(ctx)?;
        let scope = scope(ctx)?;
        // Private: the list, and so its key, carries the user's id.
        let list = List::UserBorrowsSlice {
            user: user_id,
            status,
            slice: &request,
        };
        let borrows = scope
            .slice(
                &list,
                || {
                    scope.on_db(db::borrows::slice_for_user(
                        &services.db,
                        user_id,
                        status,
                        &request,
                    ))
                },
                |ids| scope.borrows(ids),
            )
            .await?;
        Ok(connection(
            borrows,
            |record| {
                Cursor::new(&listing, db::borrows::key(record), record.id)
                    .as_str()
                    .to_owned()
            },
            BorrowRecord,
        ))
    }
}
