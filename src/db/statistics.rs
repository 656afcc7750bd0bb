//! Library-wide aggregates: one statement for the totals, one for the
//! per-category counts.
use super::{Counted, Db};
use crate::domain::Money;
use crate::error::Result;
use entity::{book, category};
use rust_decimal::Decimal;
use sea_orm::sea_query::Expr;
use sea_orm::{EntityTrait, FromQueryResult, QueryOrder, QuerySelect, RelationTrait, Statement};

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

#[derive(FromQueryResult)]
struct TotalsRow {
    books: i64,
    authors: i64,
    categories: i64,
    members: i64,
    active_borrows: i64,
    price_cents_sum: i64,
}

async fn totals(db: &Db) -> Result<Totals> {
    // Plain SQL that both backends accept; the sum is cast because
    // PostgreSQL's SUM(bigint) is NUMERIC.
    let sql = "SELECT \
        (SELECT COUNT(*) FROM books) AS books, \
        (SELECT COUNT(*) FROM authors) AS authors, \
        (SELECT COUNT(*) FROM categories) AS categories, \
        (SELECT COUNT(*) FROM users WHERE role = 'MEMBER') AS members, \
        (SELECT COUNT(*) FROM borrow_records WHERE returned_at IS NULL) AS active_borrows, \
        (SELECT CAST(COALESCE(SUM(price_cents), 0) AS BIGINT) FROM books) AS price_cents_sum";
    let row = TotalsRow::find_by_statement(Statement::from_string(db.backend(), sql))
        .one(db.conn())
        .await?
        .unwrap_or(TotalsRow {
            books: 0,
            authors: 0,
            categories: 0,
            members: 0,
            active_borrows: 0,
            price_cents_sum: 0,
        });
    let average_price = (row.books > 0).then(|| {
        (Money::from_cents(row.price_cents_sum).to_decimal() / Decimal::from(row.books))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    });
    Ok(Totals {
        books: row.books,
        authors: row.authors,
        categories: row.categories,
        members: row.members,
        active_borrows: row.active_borrows,
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

async fn books_by_category(db: &Db) -> Result<Vec<(uuid::Uuid, i64)>> {
    let rows = category::Entity::find()
        .column_as(Expr::col((book::Entity, book::Column::Id)).count(), "n")
        .join(sea_orm::JoinType::LeftJoin, category::Relation::Book.def())
        .group_by(category::Column::Id)
        .order_by_asc(category::Column::Name)
        .into_model::<Counted<category::Model>>()
        .all(db.conn())
        .await?;
    Ok(rows.into_iter().map(|row| (row.model.id, row.n)).collect())
}
