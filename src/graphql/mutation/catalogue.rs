use crate::db;
use crate::domain::{parse_id, required_text};
use crate::error::Result;
use crate::graphql::types::{
    self as types, Author, Book, Category, CreateAuthorInput, CreateBookInput, CreateCategoryInput,
    UpdateAuthorInput, UpdateBookInput, UpdateCategoryInput, MAX_NAME_CHARS,
};
use crate::graphql::{require_librarian, services};
use async_graphql::{Context, Object, ID};

/// Catalogue writes; every one needs the LIBRARIAN role.
#[derive(Default)]
pub struct CatalogueMutation;

#[Object]
impl CatalogueMutation {
    async fn create_author(&self, ctx: &Context<'_>, input: CreateAuthorInput) -> Result<Author> {
        require_librarian(ctx).await?;
        let (name, bio) = input.validate()?;
        Ok(Author(
            db::authors::create(&services(ctx)?.db, name, bio).await?,
        ))
    }

    async fn update_author(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAuthorInput,
    ) -> Result<Author> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let (name, bio) = input.validate()?;
        Ok(Author(
            db::authors::update(&services(ctx)?.db, id, name, bio).await?,
        ))
    }

    /// CONFLICT while the author has books.
    async fn delete_author(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        db::authors::delete(&services(ctx)?.db, id).await?;
        Ok(types::id(id))
    }

    async fn create_category(
        &self,
        ctx: &Context<'_>,
        input: CreateCategoryInput,
    ) -> Result<Category> {
        require_librarian(ctx).await?;
        let name = required_text(&input.name, "name", MAX_NAME_CHARS)?;
        Ok(Category(
            db::categories::create(&services(ctx)?.db, name).await?,
        ))
    }

    async fn update_category(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCategoryInput,
    ) -> Result<Category> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let name = input
            .name
            .map(|name| required_text(&name, "name", MAX_NAME_CHARS))
            .transpose()?;
        Ok(Category(
            db::categories::update(&services(ctx)?.db, id, name).await?,
        ))
    }

    /// CONFLICT while books are in the category.
    async fn delete_category(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        db::categories::delete(&services(ctx)?.db, id).await?;
        Ok(types::id(id))
    }

    async fn create_book(&self, ctx: &Context<'_>, input: CreateBookInput) -> Result<Book> {
        require_librarian(ctx).await?;
        let book = input.validate()?;
        Ok(Book(db::books::create(&services(ctx)?.db, book).await?))
    }

    async fn update_book(&self, ctx: &Context<'_>, id: ID, input: UpdateBookInput) -> Result<Book> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let changes = input.validate()?;
        Ok(Book(
            db::books::update(&services(ctx)?.db, id, changes).await?,
        ))
    }

    /// CONFLICT while copies are on loan; the book's returned borrows go with it.
    async fn delete_book(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        db::books::delete(&services(ctx)?.db, id).await?;
        Ok(types::id(id))
    }
}
