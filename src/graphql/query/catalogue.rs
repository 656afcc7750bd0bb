use crate::cache::List;
use crate::db;
use crate::domain::cursor::{Cursor, Key};
use crate::domain::{parse_id, PageRequest, SearchText, SliceRequest};
use crate::error::Result;
use crate::graphql::types::{
    books_connection, connection, Author, Book, BookFilter, BookOrder, BookSliceOf, Category,
    Connected, LibraryStatistics, Paged,
};
use crate::graphql::{scope, services};
use async_graphql::{Context, Object, ID};

#[derive(Default)]
pub struct CatalogueQuery;

#[Object]
impl CatalogueQuery {
    /// The book with this id, or null.
    async fn book(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Book>> {
        let id = parse_id(&id, "id")?;
        Ok(scope(ctx)?.book(id).await?.map(Book))
    }

    /// A page of books, filtered and ordered.
    #[graphql(
        complexity = "super::SCAN_COST + page_size.clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    async fn books(
        &self,
        ctx: &Context<'_>,
        filter: Option<BookFilter>,
        #[graphql(default_with = "Some(BookOrder::TitleAsc)")] order_by: Option<BookOrder>,
        #[graphql(default = 1)] page: i32,
        #[graphql(default = 20)] page_size: i32,
    ) -> Result<Paged<Book>> {
        let request = PageRequest::parse(page, page_size)?;
        let filter = filter.unwrap_or_default().validate()?;
        let order: db::books::SortOrder = order_by.unwrap_or_default().into();
        let services = services(ctx)?;
        let scope = scope(ctx)?;
        let list = List::Books {
            filter: &filter,
            order,
            page: request,
        };
        let books = scope
            .page(
                &list,
                request,
                || scope.on_db(db::books::page(&services.db, &filter, order, request)),
                |ids| scope.books(ids),
            )
            .await?;
        Ok(Paged::new(books.map(Book)))
    }

    /// Books, filtered and ordered, as a Relay connection: `first` books
    /// after the cursor `after` (or from the start), or `last` books before
    /// `before` (or up to the end); 20 forward when neither size is given.
    /// `first` and `last` are 0 to 100 and exclusive, as are `after` and
    /// `before`; `after` goes with `first` and `before` with `last`.
    ///
    /// A cursor is a position in this list (its filter and order): it stays
    /// valid across writes, even once its own book is gone, and the next
    /// slice starts right after it. A cursor of another list, of another
    /// version of the service, or not a cursor at all, is `BAD_USER_INPUT`.
    /// Every slice costs an index seek, however deep in the list.
    #[graphql(
        complexity = "super::SCAN_COST + first.or(last).unwrap_or(crate::domain::DEFAULT_SLICE_SIZE as i32).clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn books_connection(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        filter: Option<BookFilter>,
        #[graphql(default_with = "Some(BookOrder::TitleAsc)")] order_by: Option<BookOrder>,
    ) -> Result<Connected<Book>> {
        let filter = filter.unwrap_or_default().validate()?;
        let order: db::books::SortOrder = order_by.unwrap_or_default().into();
        books_connection(
            ctx,
            BookSliceOf::Catalogue,
            &filter,
            order,
            (first, after, last, before),
        )
        .await
    }

    /// Books whose title or author's name contains `query`, ignoring case.
    #[graphql(
        complexity = "super::SCAN_COST + page_size.clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    async fn search_books(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = 1)] page: i32,
        #[graphql(default = 20)] page_size: i32,
    ) -> Result<Paged<Book>> {
        let text = SearchText::parse(&query)?;
        let request = PageRequest::parse(page, page_size)?;
        let services = services(ctx)?;
        let scope = scope(ctx)?;
        let list = List::Search {
            text: &text,
            page: request,
        };
        let search = |known| scope.on_db(db::books::search(&services.db, &text, request, known));
        let books = if db::books::search_counts_apart(&services.db, &text) {
            scope
                .search_page(&text, &list, request, search, |ids| scope.books(ids))
                .await?
        } else {
            scope
                .page(&list, request, || search(None), |ids| scope.books(ids))
                .await?
        };
        Ok(Paged::new(books.map(Book)))
    }

    /// Books whose title or author's name contains `query`, ignoring case,
    /// by title, as a Relay connection (arguments and cursors as
    /// `booksConnection`; a cursor is of one search text).
    #[graphql(
        complexity = "super::SCAN_COST + first.or(last).unwrap_or(crate::domain::DEFAULT_SLICE_SIZE as i32).clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    async fn search_books_connection(
        &self,
        ctx: &Context<'_>,
        query: String,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connected<Book>> {
        let text = SearchText::parse(&query)?;
        let listing = db::books::search_listing(&text);
        let request =
            SliceRequest::parse(first, after.as_deref(), last, before.as_deref(), &listing)?;
        let services = services(ctx)?;
        let scope = scope(ctx)?;
        let list = List::SearchSlice {
            text: &text,
            slice: &request,
        };
        let books = scope
            .slice(
                &list,
                || scope.on_db(db::books::search_slice(&services.db, &text, &request)),
                |ids| scope.books(ids),
            )
            .await?;
        Ok(connection(
            books,
            |book| {
                Cursor::new(&listing, Key::Title(book.title.clone()), book.id)
                    .as_str()
                    .to_owned()
            },
            Book,
        ))
    }

    /// The author with this id, or null.
    async fn author(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Author>> {
        let id = parse_id(&id, "id")?;
        Ok(scope(ctx)?.author(id).await?.map(Author))
    }

    /// A page of authors, by name.
    #[graphql(
        complexity = "super::AUTHORS_COST + page_size.clamp(1, crate::domain::MAX_PAGE_SIZE) as usize * child_complexity"
    )]
    async fn authors(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1)] page: i32,
        #[graphql(default = 20)] page_size: i32,
    ) -> Result<Paged<Author>> {
        let request = PageRequest::parse(page, page_size)?;
        let services = services(ctx)?;
        let scope = scope(ctx)?;
        let authors = scope
            .page(
                &List::Authors { page: request },
                request,
                || scope.on_db(db::authors::page(&services.db, request)),
                |ids| scope.authors(ids),
            )
            .await?;
        Ok(Paged::new(authors.map(Author)))
    }

    /// The category with this id, or null.
    async fn category(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Category>> {
        let id = parse_id(&id, "id")?;
        Ok(scope(ctx)?.category(id).await?.map(Category))
    }

    /// Every category, by name.
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<Category>> {
        let services = services(ctx)?;
        let scope = scope(ctx)?;
        let everything = PageRequest::parse(1, 1)?;
        let categories = scope
            .page(
                &List::Categories,
                everything,
                || async {
                    let all = scope.on_db(db::categories::all(&services.db)).await?;
                    Ok(crate::domain::Page {
                        total_count: all.len() as u64,
                        items: all,
                        request: everything,
                        changes_at: None,
                    })
                },
                |ids| scope.categories(ids),
            )
            .await?;
        Ok(categories.items.into_iter().map(Category).collect())
    }

    /// Library-wide totals.
    async fn statistics(&self, ctx: &Context<'_>) -> Result<LibraryStatistics> {
        Ok(LibraryStatistics(scope(ctx)?.statistics().await?))
    }
}
