//! `searchBooks`: the books whose title or author's name contains the
//! search text, case-insensitively, as
//!
//! ```sql
//! lower(books.title) LIKE '%t%' ESCAPE '\' OR lower(authors.name) LIKE '%t%' ESCAPE '\'
//! ```
//!
//! decides it (`t` the text lower-cased, its `%`, `_` and `\` escaped: see
//! [`SearchText::like_pattern`]), in title order (then id), with their
//! total. That predicate is the definition; the plans below only find its
//! rows faster, and the differential test (`tests/api/search_index.rs`)
//! compares them with it on random titles, names and queries.
//!
//! - PostgreSQL, when `pg_trgm` can take a trigram from the text (three
//!   characters or more, with letters or digits: [`pg_trgm_finds`]): the
//!   same predicate, split into a UNION ALL of its title half and its name
//!   half (less the books the title half found), each a `Bitmap Index
//!   Scan` of a GIN index and a `Recheck Cond` of the predicate on each
//!   candidate. The title half reads `book_titles (id, title,
//!   title_lower)`, kept by triggers with `title_lower = lower(title)`
//!   (migration `m20261207_000005_search_titles`), whose index is on
//!   `title_lower`; the name half `idx_authors_name_trgm` on
//!   `lower(name)`. The cost of a common word is the recheck of its
//!   matches, on the narrow table's pages rather than the books'.
//! - SQLite, three characters or more: the FTS5 table `book_search` (see
//!   the migration `m20261207_000003_search_index`), whose phrase query
//!   matches exactly the predicate's rows, so its counts are read from the
//!   index alone. The page is then cut one of two ways, whichever reads
//!   fewer entries: few matches are read and sorted; for many,
//!   `idx_books_title` is walked in order testing the title half of the
//!   predicate, merged with the books whose author's name matches.
//! - One or two characters (and on PostgreSQL, text `pg_trgm` takes no
//!   trigram from): no trigram index can answer, so the plan is the scan,
//!   bounded by the catalogue's size: one pass over
//!   `idx_books_author_title` (every book's author, title and id, the
//!   smallest index that has them) joined with the authors by primary key,
//!   the matches materialised once for both the total and the page. docs/api.md's
//!   search section gives its cost.
use super::tallies::Tally;
use super::{Counted, Db};
use crate::domain::{Page, PageRequest, SearchText};
use crate::error::Result;
use entity::book;
use migration::tally::kind;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, FromQueryResult, Statement, TransactionTrait,
    Value,
};

/// The shortest text a trigram index can find.
const TRIGRAM: usize = 3;

/// Books matching `text`, one page of them in title order, and their total.
pub async fn books(db: &Db, text: &SearchText, request: PageRequest) -> Result<Page<book::Model>> {
    match db.backend() {
        DbBackend::Sqlite if text.chars() >= TRIGRAM => fts(db, text, request).await,
        DbBackend::Postgres if pg_trgm_finds(text) => {
            materialised(db, text, request, Matches::TrigramUnion).await
        }
        _ => materialised(db, text, request, Matches::Scan).await,
    }
}

/// Whether `pg_trgm` can take a trigram from `LIKE '%text%'`, so that its
/// index narrows the search. It reads the pattern's words (runs of
/// letters and digits) as it reads text: padded with two spaces in front
/// and one behind, except on a side where the word touches a wildcard
/// (here, the ends of the text). A word gives trigrams when that makes
/// three characters or more. Text with none, such as `%%%` or `a..`,
/// would make the index hand back every row to be checked, slower than
/// the scan, which is what it gets instead. (`char::is_alphanumeric`
/// stands in for the locale's notion of a letter: where they differ, the
/// plan is slower, never the answer different.)
fn pg_trgm_finds(text: &SearchText) -> bool {
    let chars: Vec<char> = text.as_str().chars().collect();
    let mut start = 0;
    while start < chars.len() {
        if !chars[start].is_alphanumeric() {
            start += 1;
            continue;
        }
        let end = (start..chars.len())
            .find(|&i| !chars[i].is_alphanumeric())
            .unwrap_or(chars.len());
        let front = if start > 0 { 2 } else { 0 };
        let back = usize::from(end < chars.len());
        if end - start + front + back >= TRIGRAM {
            return true;
        }
        start = end;
    }
    false
}

/// The CTE `matches (id, title)` of the plan [`books`] takes for `text`,
/// with its one parameter (written `{parameter}`): for searches cut by a
/// cursor rather than an offset (`books::search_slice`), which read the
/// matches once for both the total and the slice.
pub(super) fn matches_cte(
    backend: DbBackend,
    text: &SearchText,
    parameter: &str,
) -> (String, Value) {
    match backend {
        DbBackend::Sqlite if text.chars() >= TRIGRAM => (
            format!(
                "WITH matches AS MATERIALIZED (\
                    SELECT books.id, books.title FROM book_search \
                    JOIN book_search_keys AS k ON k.key = book_search.rowid \
                    JOIN books ON books.id = k.book_id \
                    WHERE book_search MATCH {parameter})"
            ),
            text.fts5_phrase().into(),
        ),
        DbBackend::Postgres if pg_trgm_finds(text) => (
            Matches::TrigramUnion.cte(parameter),
            text.like_pattern().into(),
        ),
        _ => (Matches::Scan.cte(parameter), text.like_pattern().into()),
    }
}

/// How the matches of a [`materialised`] search are found.
#[derive(Clone, Copy)]
enum Matches {
    /// One pass over every book: the short-text plan.
    Scan,
    /// PostgreSQL, three characters or more: each half of the predicate on
    /// its trigram index (the titles' on `book_titles.title_lower`). Both
    /// halves are index-backed only as a UNION (an OR across the join
    /// would leave the planner one scan of the join).
    TrigramUnion,
}

impl Matches {
    /// The CTE `matches (id, title)`, `{pattern}` the LIKE pattern's
    /// placeholder.
    fn cte(self, pattern: &str) -> String {
        match self {
            Self::Scan => format!(
                "WITH matches AS MATERIALIZED (\
                    SELECT books.id, books.title FROM books \
                    JOIN authors ON authors.id = books.author_id \
                    WHERE lower(books.title) LIKE {pattern} ESCAPE '\\' \
                    OR lower(authors.name) LIKE {pattern} ESCAPE '\\')"
            ),
            // The title half on `book_titles` (see its migration), the
            // name half without the books the title half found: no sort to
            // remove duplicates.
            Self::TrigramUnion => format!(
                "WITH matches AS MATERIALIZED (\
                    SELECT book_titles.id, book_titles.title FROM book_titles \
                    WHERE book_titles.title_lower LIKE {pattern} ESCAPE '\\' \
                    UNION ALL \
                    SELECT books.id, books.title FROM authors \
                    JOIN books ON books.author_id = authors.id \
                    WHERE lower(authors.name) LIKE {pattern} ESCAPE '\\' \
                    AND lower(books.title) NOT LIKE {pattern} ESCAPE '\\')"
            ),
        }
    }
}

/// The matches read once into a materialised CTE, which gives both the
/// total and, sorted, the page: one statement (two for a page past the
/// end, which has no row to carry the total).
///
/// PostgreSQL at 1,000,000 books (`biblio seed --seed 42`, default
/// settings): for `zqx` both `Bitmap Index Scan`s find nothing (0.1 ms).
/// For `garden` (50,041 matches) `Bitmap Index Scan on
/// idx_book_titles_trgm` takes 7 ms and the `Bitmap Heap Scan on
/// book_titles` rechecks the 50,041 rows, 27 ms; on `books` itself that
/// recheck read 17,850 pages (150 MB, more than the default 128 MB of
/// `shared_buffers`) and lower-cased each title, 105 ms (BENCHMARKS.md).
async fn materialised(
    db: &Db,
    text: &SearchText,
    request: PageRequest,
    matches: Matches,
) -> Result<Page<book::Model>> {
    let backend = db.backend();
    let (pattern, limit, offset) = match backend {
        DbBackend::Postgres => ("$1", "$2", "$3"),
        _ => ("?1", "?2", "?3"),
    };
    let matches = matches.cte(pattern);
    let page = format!(
        "{matches} SELECT books.*, (SELECT COUNT(*) FROM matches) AS n FROM books \
         WHERE books.id IN (SELECT id FROM matches ORDER BY title, id LIMIT {limit} OFFSET {offset}) \
         ORDER BY books.title, books.id"
    );
    let values = [
        text.like_pattern().into(),
        (request.limit() as i64).into(),
        (request.offset() as i64).into(),
    ];
    let rows = Counted::<book::Model>::find_by_statement(Statement::from_sql_and_values(
        backend, &page, values,
    ))
    .all(db.reader())
    .await?;
    let total_count = match rows.first() {
        Some(row) => row.n,
        None if request.page == 1 => 0,
        None => {
            let count = Statement::from_sql_and_values(
                backend,
                format!("{matches} SELECT COUNT(*) FROM matches"),
                [text.like_pattern().into()],
            );
            count_of(db.reader(), count).await?
        }
    };
    Ok(Page {
        items: rows.into_iter().map(|row| row.model).collect(),
        total_count: total_count.max(0) as u64,
        request,
        changes_at: None,
    })
}

/// SQLite, three characters or more, in one read transaction (so the page
/// is cut from the set that was counted). The title matches are counted
/// on the FTS5 index (`title : "text"`), then the page is found by
/// whichever of two plans reads less:
///
/// - Walking `idx_books_title` (`SCAN b USING COVERING INDEX
///   idx_books_title`), testing the predicate's title half on each entry
///   (`lower(title) LIKE`, no row read), merged with the books whose
///   author's name matches (the FTS5 index's `author` column, usually few,
///   read and sorted); the same statement counts those whose title does
///   not match, so the total is the two counts' sum. A common word fills
///   the first page after a few hundred entries. At 1,000,000 books,
///   `garden` (50,041 matches): 7 ms for the count, 7 ms for the page,
///   where keeping the 50,041 matching keys in a temporary B-tree for a
///   walk took 26-33 ms.
/// - Sorting the matches reads each one (its key, then its book by
///   primary key) and sorts them: `SCAN book_search VIRTUAL TABLE INDEX
///   0:M`, `SEARCH k USING INTEGER PRIMARY KEY`, `SEARCH books USING INDEX
///   sqlite_autoindex_books_1 (id=?)`, `USE TEMP B-TREE FOR ORDER BY`;
///   with the total counted on both columns.
///
/// The walk reads about `(offset + limit) * books / title matches`
/// entries, the sort every match at a few times the cost of an entry: the
/// walk is taken when it reads fewer than twice the title matches.
async fn fts(db: &Db, text: &SearchText, request: PageRequest) -> Result<Page<book::Model>> {
    let phrase = text.fts5_phrase();
    let txn = db.conn().begin().await?;
    let titles = count_of(
        &txn,
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT COUNT(*) FROM book_search WHERE book_search MATCH ?1",
            [format!("title : {phrase}").into()],
        ),
    )
    .await?
    .max(0) as u64;
    let (offset, limit) = (request.offset(), request.limit());
    let books = books_in_catalogue(&txn).await?.max(titles);
    let walked = (offset + limit).saturating_mul(books) / titles.max(1);
    let (items, total) = if titles > 0 && walked < titles.saturating_mul(2) {
        let values: [Value; 4] = [
            text.like_pattern().into(),
            format!("author : {phrase}").into(),
            (limit as i64).into(),
            (offset as i64).into(),
        ];
        let rows = Counted::<book::Model>::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            WALK,
            values.clone(),
        ))
        .all(&txn)
        .await?;
        let authors_only = match rows.first() {
            Some(row) => row.n,
            None => {
                let count = Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    AUTHORS_ONLY,
                    [values[0].clone(), values[1].clone()],
                );
                count_of(&txn, count).await?
            }
        };
        let items = rows.into_iter().map(|row| row.model).collect();
        (items, titles + authors_only.max(0) as u64)
    } else {
        let count = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT COUNT(*) FROM book_search WHERE book_search MATCH ?1",
            [phrase.clone().into()],
        );
        let total = count_of(&txn, count).await?.max(0) as u64;
        let items = if offset >= total {
            Vec::new()
        } else {
            let values: [Value; 3] = [phrase.into(), (limit as i64).into(), (offset as i64).into()];
            book::Model::find_by_statement(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                SORT,
                values,
            ))
            .all(&txn)
            .await?
        };
        (items, total)
    };
    txn.commit().await?;
    Ok(Page {
        items,
        total_count: total,
        request,
        changes_at: None,
    })
}

/// The page of a few matches: each read, then sorted.
const SORT: &str = "SELECT books.* FROM book_search \
    JOIN book_search_keys AS k ON k.key = book_search.rowid \
    JOIN books ON books.id = k.book_id \
    WHERE book_search MATCH ?1 \
    ORDER BY books.title, books.id LIMIT ?2 OFFSET ?3";

/// The books whose author's name matches (`?2`, an FTS5 query on the
/// `author` column), with their titles.
macro_rules! by_author {
    () => {
        "SELECT books.id, books.title FROM book_search \
         JOIN book_search_keys AS k ON k.key = book_search.rowid \
         JOIN books ON books.id = k.book_id \
         WHERE book_search MATCH ?2"
    };
}

/// The page of many matches (`?1` the LIKE pattern, `?3` the limit, `?4`
/// the offset): the first `offset + limit` titles that match, walking the
/// title index in order (`INDEXED BY` keeps it from sorting instead),
/// merged with the books whose author's name matches; `n` counts those of
/// the latter whose title does not match.
const WALK: &str = concat!(
    "WITH a AS MATERIALIZED (",
    by_author!(),
    "), t AS (SELECT b.id, b.title FROM books AS b INDEXED BY idx_books_title \
         WHERE lower(b.title) LIKE ?1 ESCAPE '\\' ORDER BY b.title, b.id LIMIT ?3 + ?4) \
     SELECT books.*, (SELECT COUNT(*) FROM a WHERE lower(a.title) NOT LIKE ?1 ESCAPE '\\') AS n \
     FROM books WHERE books.id IN (\
         SELECT id FROM (SELECT id, title FROM t UNION SELECT id, title FROM a) \
         ORDER BY title, id LIMIT ?3 OFFSET ?4) \
     ORDER BY books.title, books.id"
);

/// [`WALK`]'s `n` alone, for a page past the last.
const AUTHORS_ONLY: &str = concat!(
    "SELECT COUNT(*) FROM (",
    by_author!(),
    ") AS a WHERE lower(a.title) NOT LIKE ?1 ESCAPE '\\'"
);

/// Books in the catalogue, from their tally.
async fn books_in_catalogue(txn: &DatabaseTransaction) -> Result<u64> {
    let select = Tally::library(kind::BOOKS).select();
    let statement = txn.get_database_backend().build(&select);
    Ok(count_of(txn, statement).await?.max(0) as u64)
}

/// The one integer `statement` returns (0 for no row).
async fn count_of(
    conn: &impl ConnectionTrait,
    statement: Statement,
) -> Result<i64, sea_orm::DbErr> {
    conn.query_one(statement)
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()
        .map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finds(text: &str) -> bool {
        pg_trgm_finds(&SearchText::parse(text).unwrap())
    }

    #[test]
    fn pg_trgm_takes_trigrams_from_words_padded_where_they_do_not_touch_a_wildcard() {
        // A word of three, or a shorter one padded by its neighbours.
        for text in ["gar", "garden", "a.b", "..a", "ab.", "x a", "50% off"] {
            assert!(finds(text), "{text}");
        }
        // No word, or only words cut short by the ends of the text.
        for text in ["%%%", "a..", "ab", "a", "-_-"] {
            assert!(!finds(text), "{text}");
        }
    }
}
