use super::{id, Author, Category};
use crate::domain::Money;
use crate::error::{Error, Result};
use crate::graphql::scope;
use async_graphql::{Context, Enum, Object, ID};
use chrono::{DateTime, Utc};
use entity::book;
use rust_decimal::Decimal;
use std::sync::Arc;

/// A title in the catalogue, with its copies.
pub struct Book(pub Arc<book::Model>);

#[Object]
impl Book {
    async fn id(&self) -> ID {
        id(self.0.id)
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    /// ISBN-13, as 13 digits.
    async fn isbn(&self) -> &str {
        &self.0.isbn
    }

    /// Price with two decimal places, e.g. "12.50".
    async fn price(&self) -> Decimal {
        Money::from_cents(self.0.price_cents).to_decimal()
    }

    async fn published_year(&self) -> Option<i32> {
        self.0.published_year
    }

    /// Copies the library owns.
    async fn copies_total(&self) -> i32 {
        self.0.copies_total
    }

    /// Copies on the shelf now: owned minus on loan.
    async fn copies_available(&self) -> i32 {
        self.0.copies_available
    }

    async fn author(&self, ctx: &Context<'_>) -> Result<Author> {
        scope(ctx)?
            .author(self.0.author_id)
            .await?
            .map(Author)
            .ok_or_else(|| {
                Error::internal(format!("author {} of a book is missing", self.0.author_id))
            })
    }

    async fn category(&self, ctx: &Context<'_>) -> Result<Category> {
        scope(ctx)?
            .category(self.0.category_id)
            .await?
            .map(Category)
            .ok_or_else(|| {
                Error::internal(format!(
                    "category {} of a book is missing",
                    self.0.category_id
                ))
            })
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// How `books` orders its results. Ties are broken by id, so pages are stable.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(remote = "crate::db::books::SortOrder")]
pub enum BookOrder {
    #[default]
    TitleAsc,
    TitleDesc,
    PriceAsc,
    PriceDesc,
    /// Most recently published first; books without a year last.
    PublishedDesc,
    /// Most recently added to the catalogue first.
    Newest,
}

/// Whose connection a slice of books is: the catalogue's `booksConnection`
/// or an author's, which the cache keeps in different groups.
pub enum BookSliceOf {
    Catalogue,
    Author(uuid::Uuid),
}

/// `first`, `after`, `last`, `before`, as a connection field takes them.
pub type SliceArguments = (Option<i32>, Option<String>, Option<i32>, Option<String>);

/// A connection of the books `filter` selects in `order`: the arguments
/// checked against the list's cursors, the slice read through the cache.
pub async fn books_connection(
    ctx: &Context<'_>,
    of: BookSliceOf,
    filter: &crate::db::books::Filter,
    order: crate::db::books::SortOrder,
    (first, after, last, before): SliceArguments,
) -> Result<super::Connected<Book>> {
    use crate::cache::List;
    use crate::domain::cursor::Cursor;
    let listing = filter.listing(order);
    let request = crate::domain::SliceRequest::parse(
        first,
        after.as_deref(),
        last,
        before.as_deref(),
        &listing,
    )?;
    let services = crate::graphql::services(ctx)?;
    let scope = scope(ctx)?;
    let list = match of {
        BookSliceOf::Catalogue => List::BookSlice {
            filter,
            order,
            slice: &request,
        },
        BookSliceOf::Author(author) => List::AuthorBooksSlice {
            author,
            slice: &request,
        },
    };
    let books = scope
        .slice(
            &list,
            || {
                scope.on_db(crate::db::books::slice(
                    &services.db,
                    filter,
                    order,
                    &request,
                ))
            },
            |ids| scope.books(ids),
        )
        .await?;
    Ok(super::connection(
        books,
        |book| {
            Cursor::new(&listing, order.key(book), book.id)
                .as_str()
                .to_owned()
        },
        Book,
    ))
}
