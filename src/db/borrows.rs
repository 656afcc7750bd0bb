//! Borrow records: a member's history, lending and returning.
use super::keyset::{fetch_slice, Sides, Sort};
use super::{fetch_page, now, Db, Total, Write};
use crate::domain::cursor::{Key, KeyKind, Listing};
use crate::domain::{Page, PageRequest, Slice, SliceRequest};
use crate::error::{Error, Result};
use entity::{book, borrow_record};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    All,
    Active,
    Returned,
    /// Active and past its due date.
    Overdue,
}

/// A user's borrows, newest first.
///
/// The overdue list changes with time alone: a loan joins it when its due
/// date passes, with no write. Its page says when that next happens (the
/// earliest due date still ahead among the user's loans out), so that no
/// cache keeps it past then.
pub async fn page_for_user(
    db: &Db,
    user_id: Uuid,
    status: Status,
    request: PageRequest,
) -> Result<Page<borrow_record::Model>> {
    use borrow_record::Column::*;
    let now = now();
    let select = of_user(user_id, status, now);
    // The user's records are few, and on idx_borrow_records_user.
    let total = Total::count(select.clone());
    let newest_first = |select: sea_orm::Select<borrow_record::Entity>| {
        select.order_by_desc(BorrowedAt).order_by_desc(Id)
    };
    let mut page = fetch_page(db, select, newest_first, total, request).await?;
    if status == Status::Overdue {
        page.changes_at = next_due(db, user_id, now).await?;
    }
    Ok(page)
}

/// The records of `user_id` with `status` at `now`, unordered.
fn of_user(
    user_id: Uuid,
    status: Status,
    now: chrono::DateTime<chrono::Utc>,
) -> sea_orm::Select<borrow_record::Entity> {
    use borrow_record::Column::*;
    let mine = borrow_record::Entity::find().filter(UserId.eq(user_id));
    match status {
        Status::All => mine,
        Status::Active => mine.filter(ReturnedAt.is_null()),
        Status::Returned => mine.filter(ReturnedAt.is_not_null()),
        Status::Overdue => mine.filter(ReturnedAt.is_null()).filter(DueAt.lt(now)),
    }
}

/// The list of `user_id`'s borrows with `status`, for cursors: a cursor of
/// one member's list, or of another status, is refused by every other.
pub fn listing(user_id: Uuid, status: Status) -> Listing {
    Listing::new(
        &format!("my_borrows|user={user_id}|status={status:?}"),
        KeyKind::Time,
    )
}

/// A record's sort key in `myBorrows` (newest first), for its cursor.
pub fn key(record: &borrow_record::Model) -> Key {
    Key::Time(record.borrowed_at.timestamp_micros())
}

/// A keyset slice of a user's borrows, newest first (see
/// [`super::keyset`]); like [`page_for_user`], the overdue slice says
/// when it next changes with time alone.
pub async fn slice_for_user(
    db: &Db,
    user_id: Uuid,
    status: Status,
    request: &SliceRequest,
) -> Result<Slice<borrow_record::Model>> {
    use borrow_record::Column::*;
    let now = now();
    let select = of_user(user_id, status, now);
    let total = Total::count(select.clone());
    let newest_first = Sort::Uniform {
        columns: vec![BorrowedAt, Id],
        descending: true,
    };
    let position = match &request.cursor {
        Some(cursor) => match cursor.key.time() {
            Some(at) => Some(vec![at.into(), cursor.id.into()]),
            None => return Err(Error::bad_input("the cursor is not one of this list")),
        },
        None => None,
    };
    let sides = Sides::both(select);
    let mut slice = fetch_slice(db, sides, &newest_first, position, total, request).await?;
    if status == Status::Overdue {
        slice.changes_at = next_due(db, user_id, now).await?;
    }
    Ok(slice)
}

/// The earliest due date at or after `now` among `user_id`'s loans out:
/// when their overdue list next grows. Reads the member's records through
/// `idx_borrow_records_user` (user_id, borrowed_at): a member's loans are
/// few, and the overdue page's own query reads the same rows.
async fn next_due(
    db: &Db,
    user_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    use borrow_record::Column::*;
    let next: Option<Option<chrono::DateTime<chrono::Utc>>> = borrow_record::Entity::find()
        .select_only()
        .column_as(DueAt.min(), "next")
        .filter(UserId.eq(user_id))
        .filter(ReturnedAt.is_null())
        .filter(DueAt.gte(now))
        .into_tuple()
        .one(db.reader())
        .await?;
    Ok(next.flatten())
}

/// The ids of the `limit` books lent most often (every loan counts,
/// returned or not), most first, ties by id so the answer is stable: what
/// `biblio cache warm` reads ahead.
pub async fn most_borrowed(db: &Db, limit: u64) -> Result<Vec<Uuid>> {
    use borrow_record::Column::*;
    let rows: Vec<(Uuid, i64)> = borrow_record::Entity::find()
        .select_only()
        .column(BookId)
        .column_as(Id.count(), "n")
        .group_by(BookId)
        .order_by_desc(Id.count())
        .order_by_asc(BookId)
        .limit(limit)
        .into_tuple()
        .all(db.reader())
        .await?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

/// From the primary: a mutation decides on what it returns.
pub async fn by_id(db: &Db, id: Uuid) -> Result<Option<borrow_record::Model>> {
    Ok(borrow_record::Entity::find_by_id(id).one(db.conn()).await?)
}

/// Lends a copy of `book_id` to `user_id` for `loan_period`.
///
/// The transaction's first statement takes a copy only if one is free, so two
/// requests for the last copy cannot both succeed: the second waits for the
/// first's lock and then finds none left.
pub async fn borrow(
    write: &Write,
    user_id: Uuid,
    book_id: Uuid,
    loan_period: chrono::Duration,
) -> Result<borrow_record::Model> {
    let now = now();
    let txn = write.conn();
    let taken = book::Entity::update_many()
        .col_expr(
            book::Column::CopiesAvailable,
            Expr::col(book::Column::CopiesAvailable).sub(1),
        )
        .col_expr(book::Column::UpdatedAt, Expr::value(now))
        .filter(book::Column::Id.eq(book_id))
        .filter(book::Column::CopiesAvailable.gt(0))
        .exec(txn)
        .await?;
    if taken.rows_affected == 0 {
        return match book::Entity::find_by_id(book_id).one(txn).await? {
            None => Err(Error::not_found("book not found")),
            Some(_) => Err(Error::conflict("no copy of this book is free")),
        };
    }
    borrow_record::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        book_id: Set(book_id),
        borrowed_at: Set(now),
        due_at: Set(now + loan_period),
        returned_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await
    .map_err(|err| {
        Error::from_write(
            err,
            Some(Error::conflict("you already have this book on loan")),
            None,
        )
    })
}

/// Marks `record` returned and frees its copy, in one transaction that opens
/// by claiming the record, so a record is returned at most once.
pub async fn give_back(
    write: &Write,
    record: &borrow_record::Model,
) -> Result<borrow_record::Model> {
    let now = now();
    let txn = write.conn();
    let claimed = borrow_record::Entity::update_many()
        .col_expr(borrow_record::Column::ReturnedAt, Expr::value(Some(now)))
        .col_expr(borrow_record::Column::UpdatedAt, Expr::value(now))
        .filter(borrow_record::Column::Id.eq(record.id))
        .filter(borrow_record::Column::ReturnedAt.is_null())
        .exec(txn)
        .await?;
    if claimed.rows_affected == 0 {
        return Err(Error::conflict("this book has already been returned"));
    }
    book::Entity::update_many()
        .col_expr(
            book::Column::CopiesAvailable,
            Expr::col(book::Column::CopiesAvailable).add(1),
        )
        .col_expr(book::Column::UpdatedAt, Expr::value(now))
        .filter(book::Column::Id.eq(record.book_id))
        .exec(txn)
        .await?;
    Ok(borrow_record::Model {
        returned_at: Some(now),
        updated_at: now,
        ..record.clone()
    })
}
