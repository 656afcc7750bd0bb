//! Creating, updating and deleting books, each with the tallies it moves,
//! in the caller's write transaction.
use super::*;
use sea_orm::sea_query::LockType;

/// A new book's fields, validated.
pub struct NewBook {
    pub title: String,
    pub isbn: Isbn,
    pub price: Money,
    pub published_year: Option<i32>,
    pub copies_total: i32,
    pub author_id: Uuid,
    pub category_id: Uuid,
}

pub async fn create(write: &Write, new: NewBook) -> Result<book::Model> {
    let now = now();
    let isbn = new.isbn.clone();
    let (author_id, category_id) = (new.author_id, new.category_id);
    let inserted = book::ActiveModel {
        id: Set(Uuid::now_v7()),
        title: Set(new.title),
        isbn: Set(new.isbn.into_inner()),
        price_cents: Set(new.price.cents()),
        published_year: Set(new.published_year),
        copies_total: Set(new.copies_total),
        copies_available: Set(new.copies_total),
        author_id: Set(new.author_id),
        category_id: Set(new.category_id),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(write.conn())
    .await;
    match inserted {
        Ok(book) => Ok(book),
        Err(err) => Err(write_error(
            write.db(),
            err,
            Some(&isbn),
            Some(author_id),
            Some(category_id),
        )
        .await),
    }
}

/// The fields of `updateBook`; `None` leaves a field as it is.
#[derive(Default)]
pub struct BookChanges {
    pub title: Option<String>,
    pub isbn: Option<Isbn>,
    pub price: Option<Money>,
    /// `Some(None)` clears the year.
    pub published_year: Option<Option<i32>>,
    pub copies_total: Option<i32>,
    pub author_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
}

/// One UPDATE statement: a change of `copies_total` moves `copies_available`
/// by the same amount, and the row is only updated if that leaves no negative
/// availability, so the check cannot race a concurrent borrow.
/// Returns the book before and after, for the cache to see what moved.
pub async fn update(
    write: &Write,
    id: Uuid,
    changes: BookChanges,
) -> Result<(book::Model, book::Model)> {
    use book::Column::*;
    // Lock the row first, so `before` is what this update replaces.
    let before = locked(write, id).await?;
    let mut update = book::Entity::update_many()
        .col_expr(UpdatedAt, Expr::value(now()))
        .filter(Id.eq(id));
    if let Some(title) = &changes.title {
        update = update.col_expr(Title, Expr::value(title.clone()));
    }
    if let Some(isbn) = &changes.isbn {
        update = update.col_expr(Isbn, Expr::value(isbn.as_str()));
    }
    if let Some(price) = changes.price {
        update = update.col_expr(PriceCents, Expr::value(price.cents()));
    }
    if let Some(year) = changes.published_year {
        update = update.col_expr(PublishedYear, Expr::value(year));
    }
    if let Some(author_id) = changes.author_id {
        update = update.col_expr(AuthorId, Expr::value(author_id));
    }
    if let Some(category_id) = changes.category_id {
        update = update.col_expr(CategoryId, Expr::value(category_id));
    }
    if let Some(total) = changes.copies_total {
        let available_after = Expr::col(CopiesAvailable)
            .add(Expr::value(total))
            .sub(Expr::col(CopiesTotal));
        update = update
            .col_expr(CopiesAvailable, available_after.clone())
            .col_expr(CopiesTotal, Expr::value(total))
            .filter(Expr::expr(available_after).gte(0));
    }
    match update.exec_with_returning(write.conn()).await {
        Ok(mut rows) => match rows.pop() {
            Some(after) => Ok((before, after)),
            // The row is locked, so only the availability check can have
            // left it as it was.
            None => Err(Error::conflict(format!(
                "copiesTotal cannot go below the {} copies on loan",
                before.copies_total - before.copies_available
            ))),
        },
        Err(err) => {
            let isbn = changes.isbn.as_ref();
            Err(write_error(
                write.db(),
                err,
                isbn,
                changes.author_id,
                changes.category_id,
            )
            .await)
        }
    }
}

/// What deleting a book removed: the book, and its borrow records as
/// (record id, borrower id).
pub struct Deleted {
    pub book: book::Model,
    pub borrows: Vec<(Uuid, Uuid)>,
}

/// Deletes a book that has no copy on loan, with its (returned) borrow
/// history. The transaction opens by locking the book's row, so no borrow
/// can slip in between listing the records and deleting them.
pub async fn delete(write: &Write, id: Uuid) -> Result<Deleted> {
    let txn = write.conn();
    let book = locked(write, id).await?;
    if book.copies_available != book.copies_total {
        return Err(Error::conflict("the book has copies on loan"));
    }
    let borrows: Vec<(Uuid, Uuid)> = borrow_record::Entity::find()
        .select_only()
        .column(borrow_record::Column::Id)
        .column(borrow_record::Column::UserId)
        .filter(borrow_record::Column::BookId.eq(id))
        .into_tuple()
        .all(txn)
        .await?;
    book::Entity::delete_by_id(id).exec(txn).await?;
    Ok(Deleted { book, borrows })
}

/// Reads the book and takes its row lock (`FOR NO KEY UPDATE`, as an
/// UPDATE of it would; on SQLite the write already holds the database's
/// write lock), so what the write reads and changes next cannot change
/// under it.
async fn locked(write: &Write, id: Uuid) -> Result<book::Model> {
    book::Entity::find_by_id(id)
        .lock(LockType::NoKeyUpdate)
        .one(write.conn())
        .await?
        .ok_or_else(|| Error::not_found("book not found"))
}

/// Turns a failed book write into what the client should see: a duplicate
/// ISBN is CONFLICT, a missing author or category NOT_FOUND.
async fn write_error(
    db: &Db,
    err: sea_orm::DbErr,
    isbn: Option<&Isbn>,
    author_id: Option<Uuid>,
    category_id: Option<Uuid>,
) -> Error {
    let duplicate = match isbn {
        Some(isbn) => Error::conflict(format!("a book with isbn {} already exists", isbn.as_str())),
        None => Error::conflict("a book with this isbn already exists"),
    };
    let missing = match violation(&err) {
        Some(Violation::ForeignKey) => missing_reference(db, author_id, category_id).await,
        _ => None,
    };
    Error::from_write(err, Some(duplicate), missing)
}

/// Which of the book's references does not exist, as NOT_FOUND (or the
/// failed lookup, as INTERNAL); `None` when both exist.
async fn missing_reference(
    db: &Db,
    author_id: Option<Uuid>,
    category_id: Option<Uuid>,
) -> Option<Error> {
    if let Some(id) = author_id {
        match author::Entity::find_by_id(id).one(db.conn()).await {
            Ok(None) => return Some(Error::not_found("author not found")),
            Err(err) => return Some(err.into()),
            Ok(Some(_)) => {}
        }
    }
    if let Some(id) = category_id {
        match category::Entity::find_by_id(id).one(db.conn()).await {
            Ok(None) => return Some(Error::not_found("category not found")),
            Err(err) => return Some(err.into()),
            Ok(Some(_)) => {}
        }
    }
    None
}
