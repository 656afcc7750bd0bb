use crate::db;
use crate::domain::{parse_id, PageRequest, SearchText};
use crate::error::Result;
use crate::graphql::types::{
    Author, Book, BookFilter, BookOrder, Category, LibraryStatistics, Paged,
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
        Ok(scope(ctx)?.loaders.books.load_one(id).await?.map(Book))
    }

    /// A page of books, filtered and ordered.
    #[graphql(complexity = "page_size.clamp(1, 100) as usize * child_complexity")]
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
        let order = order_by.unwrap_or_default().into();
        let books = db::books::page(&services(ctx)?.db, &filter, order, request).await?;
        Ok(Paged::new(books.map(Book)))
    }

    /// Books whose title or author's name contains `query`, ignoring case.
    #[graphql(complexity = "page_size.clamp(1, 100) as usize * child_complexity")]
    async fn search_books(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = 1)] page: i32,
        #[graphql(default = 20)] page_size: i32,
    ) -> Result<Paged<Book>> {
        let text = SearchText::parse(&query)?;
        let request = PageRequest::parse(page, page_size)?;
        let books = db::books::search(&services(ctx)?.db, &text, request).await?;
        Ok(Paged::new(books.map(Book)))
    }

    /// The author with this id, or null.
    async fn author(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Author>> {
        let id = parse_id(&id, "id")?;
        Ok(scope(ctx)?.loaders.authors.load_one(id).await?.map(Author))
    }

    /// A page of authors, by name.
    #[graphql(complexity = "page_size.clamp(1, 100) as usize * child_complexity")]
    async fn authors(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1)] page: i32,
        #[graphql(default = 20)] page_size: i32,
    ) -> Result<Paged<Author>> {
        let request = PageRequest::parse(page, page_size)?;
        let authors = db::authors::page(&services(ctx)?.db, request).await?;
        Ok(Paged::new(authors.map(Author)))
    }

    /// The category with this id, or null.
    async fn category(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Category>> {
        let id = parse_id(&id, "id")?;
        Ok(scope(ctx)?
            .loaders
            .categories
            .load_one(id)
            .await?
            .map(Category))
    }

    /// Every category, by name.
    async fn categories(&self, ctx: &Context<'_>) -> Result<Vec<Category>> {
        let categories = db::categories::all(&services(ctx)?.db).await?;
        Ok(categories.into_iter().map(Category).collect())
    }

    /// Library-wide totals.
    async fn statistics(&self, ctx: &Context<'_>) -> Result<LibraryStatistics> {
        Ok(LibraryStatistics(
            db::statistics::totals(&services(ctx)?.db).await?,
        ))
    }
}
