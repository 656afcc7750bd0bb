use super::Category;
use crate::db;
use crate::db::statistics::Totals;
use crate::error::Result;
use crate::graphql::services;
use async_graphql::{Context, Object, SimpleObject};
use rust_decimal::Decimal;

/// Library-wide figures.
pub struct LibraryStatistics(pub Totals);

#[Object]
impl LibraryStatistics {
    async fn total_books(&self) -> i32 {
        self.0.books as i32
    }

    async fn total_authors(&self) -> i32 {
        self.0.authors as i32
    }

    async fn total_categories(&self) -> i32 {
        self.0.categories as i32
    }

    /// Users with the MEMBER role.
    async fn total_members(&self) -> i32 {
        self.0.members as i32
    }

    /// Borrows not yet returned.
    async fn active_borrows(&self) -> i32 {
        self.0.active_borrows as i32
    }

    /// Mean price of a book, to the cent; `null` when there are no books.
    async fn average_price(&self) -> Option<Decimal> {
        self.0.average_price
    }

    /// Every category with its number of books, by category name.
    async fn books_by_category(&self, ctx: &Context<'_>) -> Result<Vec<CategoryCount>> {
        let rows = db::statistics::books_by_category(&services(ctx)?.db).await?;
        Ok(rows
            .into_iter()
            .map(|(category, count)| CategoryCount {
                category: Category(category),
                count: count as i32,
            })
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct CategoryCount {
    pub category: Category,
    pub count: i32,
}
