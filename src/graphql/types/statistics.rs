use super::Category;
use crate::db::aggregates::Statistics;
use crate::error::Result;
use crate::graphql::scope;
use async_graphql::{Context, Object, SimpleObject};
use rust_decimal::Decimal;
use std::sync::Arc;

/// Library-wide figures.
pub struct LibraryStatistics(pub Arc<Statistics>);

#[Object]
impl LibraryStatistics {
    async fn total_books(&self) -> i32 {
        self.0.totals.books as i32
    }

    async fn total_authors(&self) -> i32 {
        self.0.totals.authors as i32
    }

    async fn total_categories(&self) -> i32 {
        self.0.totals.categories as i32
    }

    /// Users with the MEMBER role.
    async fn total_members(&self) -> i32 {
        self.0.totals.members as i32
    }

    /// Borrows not yet returned.
    async fn active_borrows(&self) -> i32 {
        self.0.totals.active_borrows as i32
    }

    /// Mean price of a book, to the cent; `null` when there are no books.
    async fn average_price(&self) -> Option<Decimal> {
        self.0.totals.average_price
    }

    /// Every category with its number of books, by category name.
    async fn books_by_category(&self, ctx: &Context<'_>) -> Result<Vec<CategoryCount>> {
        let rows = &self.0.books_by_category;
        let ids: Vec<_> = rows.iter().map(|(id, _)| *id).collect();
        let mut categories = scope(ctx)?.categories(ids).await?;
        // A category deleted since the figures were cached is skipped; the
        // delete moved them, so the next read is complete.
        Ok(rows
            .iter()
            .filter_map(|(id, count)| {
                Some(CategoryCount {
                    category: Category(categories.remove(id)?),
                    count: *count as i32,
                })
            })
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct CategoryCount {
    pub category: Category,
    pub count: i32,
}
