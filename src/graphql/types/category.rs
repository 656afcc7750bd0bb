use super::id;
use crate::error::Result;
use crate::graphql::scope;
use async_graphql::{Context, Object, ID};
use entity::category;
use std::sync::Arc;

pub struct Category(pub Arc<category::Model>);

#[Object]
impl Category {
    async fn id(&self) -> ID {
        id(self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Number of books in this category.
    async fn book_count(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(scope(ctx)?.category_book_count(self.0.id).await? as i32)
    }
}
