//! Library-wide aggregates, read from the tallies the writes keep (see
//! [`super::tallies`]): one statement for the totals, one for the
//! per-category counts, a few rows each whatever the catalogue's size.
use super::{tallies, Db};
use crate::domain::Money;
use crate::error::Result;
use entity::category;
use migration::tally::kind;
use rust_decimal::Decimal;
use sea_orm::sea_query::{Alias, Condition, Expr, JoinType, Order, Query};
use sea_orm::ConnectionTrait;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Totals {
    pub books: i64,
    pub authors: i64,
    pub categories: i64,
    pub members: i64,
    pub active_borrows: i64,
    /// Mean book price rounded to the cent; `None` with no books. As text:
    /// `Decimal`'s own `Deserialize` needs a self-describing format, which
    /// the cache's codec is not (the bytes are the same either way).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub average_price: Option<Decimal>,
}

async fn totals(db: &Db) -> Result<Totals> {
    let tallies = tallies::library(db).await?;
    let books = tallies[kind::BOOKS];
    let average_price = (books > 0).then(|| {
        (Money::from_cents(tallies[kind::PRICE_CENTS]).to_decimal() / Decimal::from(books))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    });
    Ok(Totals {
        books,
        authors: tallies[kind::AUTHORS],
        categories: tallies[kind::CATEGORIES],
        members: tallies[kind::MEMBERS],
        active_borrows: tallies[kind::COPIES_ON_LOAN],
        average_price,
    })
}

/// The whole `statistics` answer, as cached: the totals and, for every
/// category by name (zero included), its id and number of books.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Statistics {
    pub totals: Totals,
    pub books_by_category: Vec<(uuid::Uuid, i64)>,
}

pub async fn statistics(db: &Db) -> Result<Statistics> {
    Ok(Statistics {
        totals: totals(db).await?,
        books_by_category: books_by_category(db).await?,
    })
}

/// Every category by name with its tally: one row per category, whose
/// tally is found by the primary key of `tallies`.
async fn books_by_category(db: &Db) -> Result<Vec<(uuid::Uuid, i64)>> {
    let tally = Alias::new("tallies");
    let id = (category::Entity, category::Column::Id);
    let select = Query::select()
        .column(id)
        .expr(tallies::total(
            Expr::col((tally.clone(), Alias::new("value"))).into(),
        ))
        .from(category::Entity)
        .join(
            JoinType::LeftJoin,
            tally.clone(),
            Condition::all()
                .add(Expr::col((tally.clone(), Alias::new("kind"))).eq(kind::CATEGORY_BOOKS))
                .add(Expr::col((tally, Alias::new("owner"))).equals(id)),
        )
        .group_by_columns([id, (category::Entity, category::Column::Name)])
        .order_by((category::Entity, category::Column::Name), Order::Asc)
        .to_owned();
    let rows = db.reader().query_all(db.backend().build(&select)).await?;
    Ok(rows
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect::<Result<_, sea_orm::DbErr>>()?)
}
