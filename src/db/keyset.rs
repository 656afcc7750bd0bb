//! Keyset slices: the page after (or before) a cursor, found by seeking the
//! index of the list's order to the cursor's sort key and reading on, so a
//! slice deep in a list costs what the first one does.
//!
//! An order is a [`Sort`]: columns in one direction, ending on the id, or
//! (`PUBLISHED_DESC`) a nullable column descending with missing values
//! last, then columns ascending. "Beyond a cursor" is one row comparison
//! for the first, `(title, id) > (?, ?)`, which both databases answer as a
//! range of the order's index; for the second it is up to three ranges of
//! its index (the same year and later titles; earlier years; no year), each
//! read in order with the slice's limit and merged, since an `OR` of them
//! would make the database filter the index from its start.
//!
//! One statement reads the slice's rows, one more than asked (to tell
//! whether more lie beyond), the list's total (a tally or a count, as for
//! pages) and whether any row lies behind the cursor: the nearest one, read
//! by the same index. A slice with no row has nothing to carry the total,
//! and costs a second statement, as a page past the end does.
use super::{Db, Keyed, Total};
use crate::domain::{Direction, Keyset, Slice, SliceRequest};
use sea_orm::sea_query::{
    Alias, Asterisk, BinOper, Expr, IntoIden, NullOrdering, Order, Query, SelectStatement,
    SimpleExpr, SubQueryStatement, UnionType,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, FromQueryResult, QueryFilter, QueryResult, QuerySelect,
    QueryTrait, Value,
};

/// How a list is sorted, as keyset conditions need it. The columns end on
/// the id, so no two rows share a position.
#[derive(Debug, Clone)]
pub(crate) enum Sort<C> {
    /// Every column ascending, or every one descending.
    Uniform { columns: Vec<C>, descending: bool },
    /// `lead` descending with nulls last, then `tail` ascending.
    NullsLast { lead: C, tail: Vec<C> },
}

/// Which side of a cursor, in the list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Later,
    Earlier,
}

impl<C: ColumnTrait + Copy> Sort<C> {
    /// Every column, in order (the lead first).
    fn columns(&self) -> Vec<C> {
        match self {
            Sort::Uniform { columns, .. } => columns.clone(),
            Sort::NullsLast { lead, tail } => std::iter::once(*lead).chain(tail.clone()).collect(),
        }
    }

    /// Orders `select` by this sort, or its reverse, on columns of the
    /// table or of the subquery `alias`.
    fn order(&self, select: &mut SelectStatement, reversed: bool, alias: Option<&Alias>) {
        let col = |c: C| -> SimpleExpr {
            match alias {
                Some(alias) => Expr::col((alias.clone(), c.into_iden())).into(),
                None => Expr::col(c).into(),
            }
        };
        let (ascending, descending) = if reversed {
            (Order::Desc, Order::Asc)
        } else {
            (Order::Asc, Order::Desc)
        };
        match self {
            Sort::Uniform {
                columns,
                descending: down,
            } => {
                let order = if *down { descending } else { ascending };
                for c in columns {
                    select.order_by_expr(col(*c), order.clone());
                }
            }
            Sort::NullsLast { lead, tail } => {
                let nulls = if reversed {
                    NullOrdering::First
                } else {
                    NullOrdering::Last
                };
                select.order_by_expr_with_nulls(col(*lead), descending, nulls);
                for c in tail {
                    select.order_by_expr(col(*c), ascending.clone());
                }
            }
        }
    }

    /// The rows on `side` of the position `values` (one per column), as
    /// ranges of the order's index, in no particular order; `inclusive`
    /// counts the position itself.
    fn beyond(&self, values: &[Value], side: Side, inclusive: bool) -> Vec<SimpleExpr> {
        let op = |ascending: bool| match (ascending == (side == Side::Later), inclusive) {
            (true, false) => BinOper::GreaterThan,
            (true, true) => BinOper::GreaterThanOrEqual,
            (false, false) => BinOper::SmallerThan,
            (false, true) => BinOper::SmallerThanOrEqual,
        };
        let compare = |columns: &[C], values: &[Value], op: BinOper| -> SimpleExpr {
            if columns.len() == 1 {
                return Expr::col(columns[0]).binary(op, Expr::val(values[0].clone()));
            }
            let left = Expr::tuple(columns.iter().map(|c| Expr::col(*c).into()));
            let right = Expr::tuple(values.iter().map(|v| Expr::val(v.clone()).into()));
            SimpleExpr::from(left).binary(op, SimpleExpr::from(right))
        };
        match self {
            Sort::Uniform {
                columns,
                descending,
            } => vec![compare(columns, values, op(!descending))],
            Sort::NullsLast { lead, tail } => {
                let (year, rest) = values.split_first().expect("a value per column");
                let tail_beyond = compare(tail, rest, op(true));
                let year_is_null = is_null(year);
                match (side, year_is_null) {
                    (Side::Later, false) => vec![
                        Expr::col(*lead).eq(year.clone()).and(tail_beyond),
                        Expr::col(*lead).lt(year.clone()),
                        Expr::col(*lead).is_null(),
                    ],
                    (Side::Later, true) => vec![Expr::col(*lead).is_null().and(tail_beyond)],
                    (Side::Earlier, false) => vec![
                        Expr::col(*lead).eq(year.clone()).and(tail_beyond),
                        Expr::col(*lead).gt(year.clone()),
                    ],
                    (Side::Earlier, true) => vec![
                        Expr::col(*lead).is_null().and(tail_beyond),
                        Expr::col(*lead).is_not_null(),
                    ],
                }
            }
        }
    }
}

/// Whether a sort value is SQL NULL (a missing year).
fn is_null(value: &Value) -> bool {
    matches!(
        value,
        Value::Int(None) | Value::BigInt(None) | Value::String(None)
    )
}

/// A slice's row: the model, the list's total `n`, and `b`, whether a row
/// lies behind the cursor.
struct Sliced<M> {
    model: M,
    n: i64,
    b: bool,
}

impl<M: FromQueryResult> FromQueryResult for Sliced<M> {
    fn from_query_result(row: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            model: M::from_query_result(row, pre)?,
            n: row.try_get(pre, "n")?,
            b: row.try_get(pre, "b")?,
        })
    }
}

/// The list's rows, filtered, for the two sides of a cursor: `ahead`
/// where the slice is read, `behind` where the nearest row is looked for.
/// Both select the same rows, but each may have its filter's bound on the
/// sort's leading column moved to the cursor's key (which every row on
/// its side satisfies anyway): given two lower (or upper) bounds on one
/// column, SQLite seeks to one of them, and walked from the filter's
/// (`minPrice: 5.00` with a cursor at 60.00 read every price in between).
pub(crate) struct Sides<E: sea_orm::EntityTrait> {
    pub ahead: sea_orm::Select<E>,
    pub behind: sea_orm::Select<E>,
}

impl<E: sea_orm::EntityTrait> Sides<E> {
    /// The same rows on both sides.
    pub fn both(filtered: sea_orm::Select<E>) -> Self {
        Self {
            ahead: filtered.clone(),
            behind: filtered,
        }
    }
}

/// The slice of the filtered rows, sorted by `sort`, that `request` asks
/// for; `position` gives the sort values of its cursor (one per column of
/// `sort`), and `total` the list's total.
pub(crate) async fn fetch_slice<E>(
    db: &Db,
    sides: Sides<E>,
    sort: &Sort<E::Column>,
    position: Option<Vec<Value>>,
    total: Total,
    request: &SliceRequest,
) -> Result<Slice<E::Model>, DbErr>
where
    E: Keyed,
    E::Column: Copy,
    E::Model: FromQueryResult + Send + Sync,
{
    let Sides {
        ahead: filtered,
        behind: behind_filtered,
    } = sides;
    let backward = request.direction == Direction::Backward;
    let (ahead, behind) = if backward {
        (Side::Earlier, Side::Later)
    } else {
        (Side::Later, Side::Earlier)
    };
    let limit = request.limit();
    let ids = match &position {
        None => {
            let mut ids = filtered.clone().select_only().column(E::id_column());
            sort.order(QueryTrait::query(&mut ids), backward, None);
            ids.limit(limit).into_query()
        }
        Some(values) => {
            let parts = sort.beyond(values, ahead, false);
            if let [part] = &parts[..] {
                let mut ids = filtered
                    .clone()
                    .select_only()
                    .column(E::id_column())
                    .filter(part.clone());
                sort.order(QueryTrait::query(&mut ids), backward, None);
                ids.limit(limit).into_query()
            } else {
                merged(&filtered, sort, parts, backward, limit)
            }
        }
    };
    let behind = match &position {
        None => Expr::val(false).into(),
        Some(values) => sort
            .beyond(values, behind, true)
            .into_iter()
            .map(|part| {
                let mut nearest = behind_filtered
                    .clone()
                    .select_only()
                    .column(E::id_column())
                    .filter(part);
                sort.order(QueryTrait::query(&mut nearest), !backward, None);
                // Not EXISTS: PostgreSQL drops an EXISTS's ORDER BY and
                // may scan the table for it; the nearest row by the
                // order's index is one index probe.
                let nearest = SimpleExpr::SubQuery(
                    None,
                    Box::new(SubQueryStatement::SelectStatement(
                        nearest.limit(1).into_query(),
                    )),
                );
                Expr::expr(nearest).is_not_null()
            })
            .reduce(|a, b| a.or(b))
            .unwrap_or_else(|| Expr::val(false).into()),
    };
    let total = total.into_query();
    let subquery = |select: SelectStatement| {
        SimpleExpr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(select)))
    };
    let mut rows = E::find()
        .filter(E::id_column().in_subquery(ids))
        .column_as(subquery(total.clone()), "n")
        .column_as(behind.clone(), "b");
    sort.order(QueryTrait::query(&mut rows), false, None);
    let rows = rows
        .into_model::<Sliced<E::Model>>()
        .all(db.reader())
        .await?;
    let (total_count, behind) = match rows.first() {
        Some(row) => (row.n, row.b),
        None => {
            let select = Query::select()
                .expr_as(subquery(total), Alias::new("n"))
                .expr_as(behind, Alias::new("b"))
                .to_owned();
            match db.reader().query_one(db.backend().build(&select)).await? {
                Some(row) => (row.try_get::<i64>("", "n")?, row.try_get::<bool>("", "b")?),
                None => (0, false),
            }
        }
    };
    let items: Vec<E::Model> = rows.into_iter().map(|row| row.model).collect();
    let read = Keyset {
        backward,
        from_cursor: position.is_some(),
        behind,
    };
    Ok(Slice::from_keyset(items, limit, read, total_count))
}

/// The ids of the first `limit` rows of several ranges, each read in order
/// by its index with the same limit, merged in the sort's order:
///
/// ```sql
/// SELECT u.id FROM (
///   SELECT * FROM (SELECT <sort columns> FROM t WHERE <filter> AND <range 0>
///                  ORDER BY <order> LIMIT ?) AS p0
///   UNION ALL SELECT * FROM (... <range 1> ...) AS p1 ...
/// ) AS u ORDER BY <order on u> LIMIT ?
/// ```
fn merged<E>(
    filtered: &sea_orm::Select<E>,
    sort: &Sort<E::Column>,
    parts: Vec<SimpleExpr>,
    backward: bool,
    limit: u64,
) -> SelectStatement
where
    E: Keyed,
    E::Column: Copy,
{
    let mut union: Option<SelectStatement> = None;
    for (i, part) in parts.into_iter().enumerate() {
        let mut range = filtered.clone().select_only();
        for column in sort.columns() {
            range = range.column(column);
        }
        let mut range = range.filter(part);
        sort.order(QueryTrait::query(&mut range), backward, None);
        let range = Query::select()
            .column(Asterisk)
            .from_subquery(range.limit(limit).into_query(), Alias::new(format!("p{i}")))
            .to_owned();
        union = Some(match union {
            None => range,
            Some(mut union) => {
                union.union(UnionType::All, range);
                union
            }
        });
    }
    let u = Alias::new("u");
    let mut ids = Query::select()
        .column((u.clone(), E::id_column().into_iden()))
        .from_subquery(union.unwrap_or_default(), u.clone())
        .to_owned();
    sort.order(&mut ids, backward, Some(&u));
    ids.limit(limit);
    ids
}
