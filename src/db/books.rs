//! Books: lookups, filtered and searched pages, and (in `edits`) the
//! catalogue's writes.
use super::keyset::{fetch_slice, Sides, Sort};
use super::tallies::Tally;
use super::{fetch_page, now, Db, Total, Write};
use crate::domain::cursor::{Cursor, Key, KeyKind, Listing};
use crate::domain::{Isbn, Keyset, Money, Page, PageRequest, SearchText, Slice, SliceRequest};
use crate::error::{violation, Error, Result, Violation};
use entity::{author, book, borrow_record, category};
use migration::tally::kind;
use sea_orm::sea_query::{Expr, NullOrdering, Order};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set,
};
use uuid::Uuid;

/// The `books` filter, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub author_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
    pub min_price: Option<Money>,
    pub max_price: Option<Money>,
    pub published_from: Option<i32>,
    pub published_to: Option<i32>,
    pub available: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortOrder {
    TitleAsc,
    TitleDesc,
    PriceAsc,
    PriceDesc,
    PublishedDesc,
    Newest,
}

/// Every order ends on the primary key, so pages never overlap or skip.
fn ordered(select: Select<book::Entity>, order: SortOrder) -> Select<book::Entity> {
    use book::Column::*;
    match order {
        SortOrder::TitleAsc => select.order_by_asc(Title).order_by_asc(Id),
        SortOrder::TitleDesc => select.order_by_desc(Title).order_by_desc(Id),
        SortOrder::PriceAsc => select.order_by_asc(PriceCents).order_by_asc(Id),
        SortOrder::PriceDesc => select.order_by_desc(PriceCents).order_by_desc(Id),
        SortOrder::PublishedDesc => select
            .order_by_with_nulls(PublishedYear, Order::Desc, NullOrdering::Last)
            .order_by_asc(Title)
            .order_by_asc(Id),
        SortOrder::Newest => select.order_by_desc(CreatedAt).order_by_desc(Id),
    }
}

/// The books `filter` selects, unordered.
fn filtered(filter: &Filter) -> Select<book::Entity> {
    use book::Column::*;
    let mut select = book::Entity::find();
    if let Some(id) = filter.author_id {
        select = select.filter(AuthorId.eq(id));
    }
    if let Some(id) = filter.category_id {
        select = select.filter(CategoryId.eq(id));
    }
    if let Some(min) = filter.min_price {
        select = select.filter(PriceCents.gte(min.cents()));
    }
    if let Some(max) = filter.max_price {
        select = select.filter(PriceCents.lte(max.cents()));
    }
    if let Some(year) = filter.published_from {
        select = select.filter(PublishedYear.gte(year));
    }
    if let Some(year) = filter.published_to {
        select = select.filter(PublishedYear.lte(year));
    }
    match filter.available {
        Some(true) => select = select.filter(CopiesAvailable.gt(0)),
        Some(false) => select = select.filter(CopiesAvailable.lte(0)),
        None => {}
    }
    select
}

/// How many books `filter` selects: a tally when the filter is one the
/// writes keep a count of (none, one author, one category, availability),
/// otherwise a COUNT on the index of its most selective column.
fn total(filter: &Filter) -> Total {
    let tally = match filter {
        Filter {
            author_id: None,
            category_id: None,
            min_price: None,
            max_price: None,
            published_from: None,
            published_to: None,
            available,
        } => match available {
            None => Some(Tally::library(kind::BOOKS)),
            Some(true) => Some(Tally::library(kind::BOOKS_AVAILABLE)),
            Some(false) => Some(Tally::library(kind::BOOKS).minus(kind::BOOKS_AVAILABLE)),
        },
        Filter {
            author_id: Some(author),
            category_id: None,
            min_price: None,
            max_price: None,
            published_from: None,
            published_to: None,
            available: None,
        } => Some(Tally::of(kind::AUTHOR_BOOKS, *author)),
        Filter {
            author_id: None,
            category_id: Some(category),
            min_price: None,
            max_price: None,
            published_from: None,
            published_to: None,
            available: None,
        } => Some(Tally::of(kind::CATEGORY_BOOKS, *category)),
        _ => None,
    };
    match tally {
        Some(tally) => Total::Tally(tally),
        None => Total::count(filtered(filter)),
    }
}

/// A page of books, in the statement `db::fetch_page` describes.
///
/// Plans at 1,000,000 books (seeded with `--seed 42`), timed on an idle
/// machine (SQLite / PostgreSQL):
///
/// - no filter, `TITLE_ASC`, page 1: the ids come from `SCAN books USING
///   COVERING INDEX idx_books_title` / `Index Only Scan using
///   idx_books_title` (`Heap Fetches: 0`), the rows from `SEARCH books
///   USING INDEX sqlite_autoindex_books_1 (id=?)` / `Index Scan using
///   books_pkey` 20 times, the total from `tallies` by primary key:
///   1 ms / 2-4 ms.
/// - the same at page 20,000 (40% deep): the same plans, the index walk
///   skipping 400,000 entries without reading a row: 10 ms / 60-140 ms
///   (PostgreSQL hands every skipped entry through its executor).
/// - `minPrice: 50.00, available: true, PRICE_ASC`: the page and the count
///   both on `idx_books_price_id` (`SEARCH books USING COVERING INDEX
///   idx_books_price_id (price_cents>?)` / `Parallel Index Only Scan using
///   idx_books_price_id`, `Filter: copies_available > 0`); counting its
///   365,097 entries is most of the cost: 17 ms / 36-70 ms.
/// - one category, any order: `SEARCH books USING COVERING INDEX
///   idx_books_category_<order> (category_id=?)`, total from `tallies`.
pub async fn page(
    db: &Db,
    filter: &Filter,
    order: SortOrder,
    request: PageRequest,
) -> Result<Page<book::Model>> {
    Ok(fetch_page(
        db,
        filtered(filter),
        |select| ordered(select, order),
        total(filter),
        request,
    )
    .await?)
}

/// How `order` sorts, for keyset slices.
fn sort(order: SortOrder) -> Sort<book::Column> {
    use book::Column::*;
    let uniform = |column, descending| Sort::Uniform {
        columns: vec![column, Id],
        descending,
    };
    match order {
        SortOrder::TitleAsc => uniform(Title, false),
        SortOrder::TitleDesc => uniform(Title, true),
        SortOrder::PriceAsc => uniform(PriceCents, false),
        SortOrder::PriceDesc => uniform(PriceCents, true),
        SortOrder::PublishedDesc => Sort::NullsLast {
            lead: PublishedYear,
            tail: vec![Title, Id],
        },
        SortOrder::Newest => uniform(CreatedAt, true),
    }
}

impl SortOrder {
    /// The kind of cursor key this order sorts by.
    pub fn key_kind(self) -> KeyKind {
        match self {
            SortOrder::TitleAsc | SortOrder::TitleDesc => KeyKind::Title,
            SortOrder::PriceAsc | SortOrder::PriceDesc => KeyKind::Price,
            SortOrder::PublishedDesc => KeyKind::Published,
            SortOrder::Newest => KeyKind::Time,
        }
    }

    /// `book`'s sort key in this order, for its cursor.
    pub fn key(self, book: &book::Model) -> Key {
        match self {
            SortOrder::TitleAsc | SortOrder::TitleDesc => Key::Title(book.title.clone()),
            SortOrder::PriceAsc | SortOrder::PriceDesc => Key::Price(book.price_cents),
            SortOrder::PublishedDesc => Key::Published(book.published_year, book.title.clone()),
            SortOrder::Newest => Key::Time(book.created_at.timestamp_micros()),
        }
    }
}

impl Filter {
    /// The list of books this filter and `order` select, for cursors: a
    /// cursor of one is refused by every other.
    pub fn listing(&self, order: SortOrder) -> Listing {
        let opt = |value: Option<String>| value.unwrap_or_default();
        let description = format!(
            "books|order={order:?}|author={}|category={}|min={}|max={}|from={}|to={}|available={}",
            opt(self.author_id.map(|id| id.to_string())),
            opt(self.category_id.map(|id| id.to_string())),
            opt(self.min_price.map(|money| money.cents().to_string())),
            opt(self.max_price.map(|money| money.cents().to_string())),
            opt(self.published_from.map(|year| year.to_string())),
            opt(self.published_to.map(|year| year.to_string())),
            opt(self.available.map(|available| available.to_string())),
        );
        Listing::new(&description, order.key_kind())
    }
}

impl Filter {
    /// This filter for the rows on one side of a cursor at `key` in
    /// `order` (`later`: after it in the list's order), its bound on the
    /// order's leading column, if it has one, moved to the key when that
    /// is tighter: the same rows on that side, and one bound for the
    /// database to seek to (see [`super::keyset::Sides`]).
    fn bounded_by(&self, order: SortOrder, key: &Key, later: bool) -> Filter {
        let mut filter = self.clone();
        match (order, key) {
            (SortOrder::PriceAsc | SortOrder::PriceDesc, Key::Price(cents)) => {
                let at = Money::from_cents(*cents);
                // Later in PRICE_ASC and earlier in PRICE_DESC are dearer.
                if later == (order == SortOrder::PriceAsc) {
                    filter.min_price = filter.min_price.map(|min| min.max(at));
                } else {
                    filter.max_price = filter.max_price.map(|max| max.min(at));
                }
            }
            (SortOrder::PublishedDesc, Key::Published(Some(year), _)) => {
                if later {
                    filter.published_to = filter.published_to.map(|to| to.min(*year));
                } else {
                    filter.published_from = filter.published_from.map(|from| from.max(*year));
                }
            }
            _ => {}
        }
        filter
    }
}

/// The sort values of a cursor's position, one per column of `sort(order)`.
/// The key's kind was checked against the order when the cursor was parsed.
fn position(order: SortOrder, cursor: &Cursor) -> Result<Vec<sea_orm::Value>> {
    let id = sea_orm::Value::from(cursor.id);
    Ok(match (&cursor.key, order.key_kind()) {
        (Key::Title(title), KeyKind::Title) => vec![title.clone().into(), id],
        (Key::Price(cents), KeyKind::Price) => vec![(*cents).into(), id],
        (Key::Published(year, title), KeyKind::Published) => {
            vec![(*year).into(), title.clone().into(), id]
        }
        (key @ Key::Time(_), KeyKind::Time) => match key.time() {
            Some(at) => vec![at.into(), id],
            None => return Err(Error::bad_input("the cursor's time is out of range")),
        },
        _ => return Err(Error::bad_input("the cursor is not one of this order")),
    })
}

/// A keyset slice of books (see [`super::keyset`]): the same index walks
/// as [`page`], started at the cursor's key instead of skipping an offset.
///
/// Plans checked at 100,000 books (SQLite / PostgreSQL), a slice of 20
/// after a cursor 40% deep:
///
/// - `TITLE_ASC`: `SEARCH books USING COVERING INDEX idx_books_title
///   ((title,id)>(?,?))` / `Index Only Scan using idx_books_title, Index
///   Cond: (ROW(title, id) > ROW($1, $2))`, the rows by primary key, the
///   total from `tallies`, and the row behind the cursor by the same index
///   read the other way (`Index Only Scan Backward`).
/// - `PUBLISHED_DESC`: three `SEARCH ... idx_books_published_desc` (the
///   cursor's year with `(title,id)>(?,?)`, earlier years, no year), each
///   `LIMIT 21`, merged (`Merge Append` on PostgreSQL).
/// - one category: `idx_books_category_title (category_id=? AND
///   (title,id)>(?,?))`, on both.
/// - `minPrice`, `PRICE_ASC`: `idx_books_price_id (price_cents>?)`, the
///   bound moved to the cursor's price (`Filter::bounded_by`).
pub async fn slice(
    db: &Db,
    filter: &Filter,
    order: SortOrder,
    request: &SliceRequest,
) -> Result<Slice<book::Model>> {
    let (position, sides) = match &request.cursor {
        Some(cursor) => {
            let forward = request.direction == crate::domain::Direction::Forward;
            let sides = Sides {
                ahead: filtered(&filter.bounded_by(order, &cursor.key, forward)),
                behind: filtered(&filter.bounded_by(order, &cursor.key, !forward)),
            };
            (Some(position(order, cursor)?), sides)
        }
        None => (None, Sides::both(filtered(filter))),
    };
    Ok(fetch_slice(db, sides, &sort(order), position, total(filter), request).await?)
}

pub async fn by_author(
    db: &Db,
    author_id: Uuid,
    request: PageRequest,
) -> Result<Page<book::Model>> {
    let filter = Filter {
        author_id: Some(author_id),
        ..Filter::default()
    };
    page(db, &filter, SortOrder::TitleAsc, request).await
}

/// Books whose title or author's name contains `text`, case-insensitively:
/// a page in title order and the total ([`super::search`] has the plans).
/// `known` is the total when the caller has it (the cache keeps it apart
/// from the pages): a plan that counts on its own then does not.
pub async fn search(
    db: &Db,
    text: &SearchText,
    request: PageRequest,
    known: Option<u64>,
) -> Result<Page<book::Model>> {
    super::search::books(db, text, request, known).await
}

/// Whether [`search`] counts `text`'s matches in a statement apart from
/// the page, so that a known total spares it: SQLite's FTS5 plan.
pub fn search_counts_apart(db: &Db, text: &SearchText) -> bool {
    super::search::counts_apart(db, text)
}

/// The list of search results for `text`, for cursors (by title, then id).
pub fn search_listing(text: &SearchText) -> Listing {
    Listing::new(&format!("search|q={}", text.as_str()), KeyKind::Title)
}

/// A keyset slice of the books [`search`] matches, by title then id: the
/// same matched set, found by the same index (`search::matches_cte`), cut
/// after (or before) the cursor's `(title, id)` instead of at an
/// offset, with its total and whether a match lies behind the cursor.
pub async fn search_slice(
    db: &Db,
    text: &SearchText,
    request: &SliceRequest,
) -> Result<Slice<book::Model>> {
    use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
    let backend = db.backend();
    let postgres = backend == sea_orm::DbBackend::Postgres;
    let placeholder = |n: usize| {
        if postgres {
            format!("${n}")
        } else {
            format!("?{n}")
        }
    };
    let backward = request.direction == crate::domain::Direction::Backward;
    // The plan `searchBooks` takes: an index for text of three characters
    // or more.
    let (matches, parameter) = super::search::matches_cte(backend, text, &placeholder(1));
    let mut values: Vec<sea_orm::Value> = vec![parameter];
    let (ahead, behind) = match &request.cursor {
        Some(cursor) => {
            let title = match &cursor.key {
                Key::Title(title) => title.clone(),
                _ => return Err(Error::bad_input("the cursor is not one of this list")),
            };
            values.push(title.into());
            values.push(cursor.id.into());
            let at = format!("({}, {})", placeholder(2), placeholder(3));
            let (ahead, behind) = if backward { ("<", ">=") } else { (">", "<=") };
            (
                format!("WHERE (title, id) {ahead} {at}"),
                format!("EXISTS (SELECT 1 FROM matches WHERE (title, id) {behind} {at})"),
            )
        }
        None => (String::new(), "1 = 0".to_owned()),
    };
    // The limit goes last, so the statement that only counts can leave it out.
    let limit = placeholder(values.len() + 1);
    let scalar_values = values.clone();
    values.push((request.limit() as i64).into());
    let walk = if backward {
        "title DESC, id DESC"
    } else {
        "title, id"
    };
    let slice = format!(
        "{matches} SELECT books.*, (SELECT COUNT(*) FROM matches) AS n, ({behind}) AS b \
         FROM books WHERE books.id IN \
         (SELECT id FROM matches {ahead} ORDER BY {walk} LIMIT {limit}) \
         ORDER BY books.title, books.id"
    );
    #[derive(Debug)]
    struct Row {
        model: book::Model,
        n: i64,
        b: bool,
    }
    impl FromQueryResult for Row {
        fn from_query_result(
            row: &sea_orm::QueryResult,
            pre: &str,
        ) -> Result<Self, sea_orm::DbErr> {
            Ok(Self {
                model: book::Model::from_query_result(row, pre)?,
                n: row.try_get(pre, "n")?,
                b: row.try_get(pre, "b")?,
            })
        }
    }
    let rows = Row::find_by_statement(Statement::from_sql_and_values(backend, &slice, values))
        .all(db.reader())
        .await?;
    let (total, behind) = match rows.first() {
        Some(row) => (row.n, row.b),
        None => {
            let scalars =
                format!("{matches} SELECT (SELECT COUNT(*) FROM matches) AS n, ({behind}) AS b");
            match db
                .reader()
                .query_one(Statement::from_sql_and_values(
                    backend,
                    scalars,
                    scalar_values,
                ))
                .await?
            {
                Some(row) => (row.try_get::<i64>("", "n")?, row.try_get::<bool>("", "b")?),
                None => (0, false),
            }
        }
    };
    let items: Vec<book::Model> = rows.into_iter().map(|row| row.model).collect();
    let read = Keyset {
        backward,
        from_cursor: request.cursor.is_some(),
        behind,
    };
    Ok(Slice::from_keyset(items, request.limit(), read, total))
}

/// What [`counts`] groups books by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountPer {
    Author,
    Category,
}

/// The number of books of each author (or category) in `ids`, zero included,
/// in one statement: their tallies.
pub async fn counts(
    db: &Db,
    per: CountPer,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, i64>, sea_orm::DbErr> {
    let kind = match per {
        CountPer::Author => kind::AUTHOR_BOOKS,
        CountPer::Category => kind::CATEGORY_BOOKS,
    };
    super::tallies::of_each(db, kind, ids).await
}

mod edits;

pub use edits::{create, delete, update, BookChanges, Deleted, NewBook};
