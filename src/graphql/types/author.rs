use super::{id, Book, Connected, Paged};
use crate::cache::List;
use crate::db;
use crate::db::books::{Filter, SortOrder};
use crate::domain::PageRequest;
use crate::error::Result;
use crate::graphql::{scope, services};
use async_graphql::{Context, Object, ID};
use entity::author;
use std::sync::Arc;

pub struct Author(pub Arc<author::Model>);

#[Object]
impl Author {
    async fn id(&self) -> ID {
        id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }

    /// Number of books by this author in the catalogue.
    async fn book_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(scope(ctx)?.author_book_count(self.0.id).await? as i32)
    }

    /// This author's books, by title.
    #[graphql(
        complexity = "crate::graphql::query::AUTHOR_BOOKS_COST + page_size.clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    async fn books(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1)] page: i32,
        #[graphql(default = 20)] page_size: i32,
    ) -> Result<Paged<Book>> {
        let request = PageRequest::parse(page, page_size)?;
        let services = services(ctx)?;
        let scope = scope(ctx)?;
        let author_id = self.0.id;
        let list = List::AuthorBooks {
            author: author_id,
            page: request,
        };
        let books = scope
            .page(
                &list,
                request,
                || scope.on_db(db::books::by_author(&services.db, author_id, request)),
                |ids| scope.books(ids),
            )
            .await?;
        Ok(Paged::new(books.map(Book)))
    }

    /// This author's books, by title, as a Relay connection (arguments and
    /// cursors as `booksConnection`; a cursor of
    /// `booksConnection(filter: {authorId})` in `TITLE_ASC` is one of this
    /// list too).
    #[graphql(
        complexity = "crate::graphql::query::AUTHOR_BOOKS_COST + first.or(last).unwrap_or(crate::domain::DEFAULT_SLICE_SIZE as i32).clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    async fn books_connection(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connected<Book>> {
        let filter = Filter {
            author_id: Some(self.0.id),
            ..Filter::default()
        };
        super::book::books_connection(
            ctx,
            super::book::BookSliceOf::Author(self.0.id),
            &filter,
            SortOrder::TitleAsc,
            (first, after, last, before),
        )
        .await
    }
}
