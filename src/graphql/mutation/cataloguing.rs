use crate::cache::{Change, Listed};
use crate::db;
use crate::domain::{parse_id, required_text};
use crate::error::Result;
use crate::graphql::types::{
    self as types, Author, Book, Category, CreateAuthorInput, CreateBookInput, CreateCategoryInput,
    UpdateAuthorInput, UpdateBookInput, UpdateCategoryInput, MAX_NAME_CHARS,
};
use crate::graphql::{require_librarian, scope, services};
use async_graphql::{Context, Object, ID};
use std::sync::Arc;

/// Catalogue writes; every one needs the LIBRARIAN role. Each commits, then
/// invalidates what it changed before it answers.
#[derive(Default)]
pub struct CataloguingMutation;

#[Object]
impl CataloguingMutation {
    /// Adds an author.
    async fn create_author(
        &self,
        ctx: &Context<'_>,
        input: CreateAuthorInput,
    ) -> Result<Option<Author>> {
        require_librarian(ctx).await?;
        let (name, bio) = input.validate()?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let author = db::authors::create(&write, name, bio).await?;
        services
            .cache
            .commit(write, Change::AuthorCreated { id: author.id })
            .await?;
        Ok(Some(Author(Arc::new(author))))
    }

    /// Changes an author's name or bio; omitted fields stay as they are.
    async fn update_author(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateAuthorInput,
    ) -> Result<Option<Author>> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let (name, bio) = input.validate()?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let (before, author) = db::authors::update(&write, id, name, bio).await?;
        let after = author.name.clone();
        services
            .cache
            .commit(write, Change::AuthorUpdated { id, before, after })
            .await?;
        Ok(Some(Author(Arc::new(author))))
    }

    /// CONFLICT while the author has books.
    async fn delete_author(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ID>> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        db::authors::delete(&write, id).await?;
        services
            .cache
            .commit(write, Change::AuthorDeleted { id })
            .await?;
        Ok(Some(types::id(id)))
    }

    /// Adds a category; CONFLICT if one has the same name.
    async fn create_category(
        &self,
        ctx: &Context<'_>,
        input: CreateCategoryInput,
    ) -> Result<Option<Category>> {
        require_librarian(ctx).await?;
        let name = required_text(&input.name, "name", MAX_NAME_CHARS)?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let category = db::categories::create(&write, name).await?;
        services
            .cache
            .commit(write, Change::CategoryCreated { id: category.id })
            .await?;
        Ok(Some(Category(Arc::new(category))))
    }

    /// Renames a category; CONFLICT if another has the new name.
    async fn update_category(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateCategoryInput,
    ) -> Result<Option<Category>> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let name = input
            .name
            .map(|name| required_text(&name, "name", MAX_NAME_CHARS))
            .transpose()?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let category = db::categories::update(&write, id, name).await?;
        services
            .cache
            .commit(write, Change::CategoryUpdated { id })
            .await?;
        Ok(Some(Category(Arc::new(category))))
    }

    /// CONFLICT while books are in the category.
    async fn delete_category(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ID>> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        db::categories::delete(&write, id).await?;
        services
            .cache
            .commit(write, Change::CategoryDeleted { id })
            .await?;
        Ok(Some(types::id(id)))
    }

    /// Adds a book; CONFLICT on a duplicate ISBN, NOT_FOUND on an unknown author or category.
    async fn create_book(&self, ctx: &Context<'_>, input: CreateBookInput) -> Result<Option<Book>> {
        require_librarian(ctx).await?;
        let book = input.validate()?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let book = db::books::create(&write, book).await?;
        let listed = Listed {
            author: db::authors::name(&write, book.author_id).await?,
            book: book.clone(),
        };
        services
            .cache
            .commit(write, Change::BookCreated { book: listed })
            .await?;
        Ok(Some(Book(Arc::new(book))))
    }

    /// Changes a book; omitted fields stay as they are. CONFLICT if copiesTotal would go below the copies on loan.
    async fn update_book(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateBookInput,
    ) -> Result<Option<Book>> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let changes = input.validate()?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let (before, after) = db::books::update(&write, id, changes).await?;
        let was_by = db::authors::name(&write, before.author_id).await?;
        let is_by = if after.author_id == before.author_id {
            was_by.clone()
        } else {
            db::authors::name(&write, after.author_id).await?
        };
        let change = Change::BookUpdated {
            before: Listed {
                book: before,
                author: was_by,
            },
            after: Listed {
                book: after.clone(),
                author: is_by,
            },
        };
        services.cache.commit(write, change).await?;
        Ok(Some(Book(Arc::new(after))))
    }

    /// CONFLICT while copies are on loan; the book's returned borrows go with it.
    async fn delete_book(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ID>> {
        require_librarian(ctx).await?;
        let id = parse_id(&id, "id")?;
        let services = services(ctx)?;
        let _share = scope(ctx)?.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let deleted = db::books::delete(&write, id).await?;
        let book = Listed {
            author: db::authors::name(&write, deleted.book.author_id).await?,
            book: deleted.book,
        };
        let change = Change::BookDeleted {
            book,
            borrows: deleted.borrows,
        };
        services.cache.commit(write, change).await?;
        Ok(Some(types::id(id)))
    }
}
