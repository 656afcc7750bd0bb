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
        let count = scope(ctx)?
            .loaders
            .books_per_category
            .load_one(self.0.id)
            .await?;
        Ok(count.unwrap_or(0) as i32)
    }
}
