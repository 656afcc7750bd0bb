//! Reading the tallies: counts and sums that triggers keep exact in the
//! transaction of every write (see the migration that creates them,
//! `migration::tally`, for what each counts and why triggers). A tally is
//! the sum of a few rows, read through the table's primary key, so a
//! library-wide total or a category's count costs the same at ten books and
//! at a million.
use super::Db;
use migration::tally::kind;
use sea_orm::sea_query::{Alias, Expr, Func, Query, SelectStatement, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr};
use std::collections::HashMap;
use uuid::Uuid;

/// The owner of library-wide tallies.
const LIBRARY: Uuid = Uuid::nil();

fn table() -> Alias {
    Alias::new("tallies")
}

fn column(name: &str) -> Expr {
    Expr::col((table(), Alias::new(name)))
}

/// `SUM(value)` as a BIGINT, 0 over no rows (PostgreSQL's SUM of a bigint
/// is a NUMERIC).
pub(crate) fn total(value: SimpleExpr) -> SimpleExpr {
    Func::cast_as(
        Func::coalesce([Func::sum(value).into(), Expr::val(0i64).into()]),
        Alias::new("BIGINT"),
    )
    .into()
}

/// A combination of tallies of one owner: each kind added with its sign.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tally {
    owner: Uuid,
    plus: &'static str,
    minus: Option<&'static str>,
}

impl Tally {
    /// A library-wide tally.
    pub fn library(kind: &'static str) -> Self {
        Self::of(kind, LIBRARY)
    }

    /// The tally `kind` of `owner` (an author, a category).
    pub fn of(kind: &'static str, owner: Uuid) -> Self {
        Self {
            owner,
            plus: kind,
            minus: None,
        }
    }

    /// This tally less the tally `kind` of the same owner.
    pub fn minus(self, kind: &'static str) -> Self {
        Self {
            minus: Some(kind),
            ..self
        }
    }

    /// `SELECT` its value: at most a few rows per kind, by primary key.
    pub fn select(self) -> SelectStatement {
        let value = column("value");
        let (kinds, value): (Vec<&str>, SimpleExpr) = match self.minus {
            None => (vec![self.plus], value.into()),
            Some(minus) => (
                vec![self.plus, minus],
                Expr::case(column("kind").eq(self.plus), column("value"))
                    .finally(Expr::val(0i64).sub(column("value")))
                    .into(),
            ),
        };
        Query::select()
            .expr(total(value))
            .from(table())
            .and_where(column("kind").is_in(kinds))
            .and_where(column("owner").eq(self.owner))
            .to_owned()
    }
}

/// Every library-wide tally, by kind (kinds never written read as 0).
pub async fn library(db: &Db) -> Result<HashMap<&'static str, i64>, DbErr> {
    const KINDS: [&str; 7] = [
        kind::BOOKS,
        kind::PRICE_CENTS,
        kind::COPIES_ON_LOAN,
        kind::BOOKS_AVAILABLE,
        kind::AUTHORS,
        kind::CATEGORIES,
        kind::MEMBERS,
    ];
    let select = Query::select()
        .column((table(), Alias::new("kind")))
        .expr(total(column("value").into()))
        .from(table())
        .and_where(column("kind").is_in(KINDS))
        .and_where(column("owner").eq(LIBRARY))
        .group_by_col((table(), Alias::new("kind")))
        .to_owned();
    let rows = db.reader().query_all(db.backend().build(&select)).await?;
    let mut tallies: HashMap<&'static str, i64> = KINDS.iter().map(|kind| (*kind, 0)).collect();
    for row in rows {
        let kind: String = row.try_get_by_index(0)?;
        let value: i64 = row.try_get_by_index(1)?;
        if let Some(known) = KINDS.iter().find(|known| **known == kind) {
            tallies.insert(known, value);
        }
    }
    Ok(tallies)
}

/// The tally `kind` of each of `owners`, zero included, in one statement.
pub async fn of_each(
    db: &Db,
    kind: &'static str,
    owners: &[Uuid],
) -> Result<HashMap<Uuid, i64>, DbErr> {
    let select = Query::select()
        .column((table(), Alias::new("owner")))
        .expr(total(column("value").into()))
        .from(table())
        .and_where(column("kind").eq(kind))
        .and_where(column("owner").is_in(owners.iter().copied()))
        .group_by_col((table(), Alias::new("owner")))
        .to_owned();
    let rows = db.reader().query_all(db.backend().build(&select)).await?;
    let mut tallies: HashMap<Uuid, i64> = owners.iter().map(|owner| (*owner, 0)).collect();
    for row in rows {
        tallies.insert(row.try_get_by_index(0)?, row.try_get_by_index(1)?);
    }
    Ok(tallies)
}
