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
//! - SQLite, three characters or more: the FTS5 tables `book_search`
//!   (each book's title and author's name, migration
//!   `m20261207_000003_search_index`) and `author_search` (each author's
//!   name, `m20261208_000001_author_search`), whose phrase queries match
//!   exactly the predicate's rows, so the total is read from the index
//!   alone. The page is then cut one of two ways, whichever reads fewer
//!   entries: for many matches, `idx_books_title` is walked in order
//!   testing each entry's title and author; few matches are read and
//!   sorted.
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
/// `known`, the total if the caller has it, spares the count where it is
/// a statement of its own (SQLite's FTS5 plan); elsewhere it is counted
/// with the page, from the same matches, and `known` is not needed.
pub async fn books(
    db: &Db,
    text: &SearchText,
    request: PageRequest,
    known: Option<u64>,
) -> Result<Page<book::Model>> {
    match db.backend() {
        DbBackend::Sqlite if counts_apart(db, text) => fts(db, text, request, known).await,
        DbBackend::Postgres if pg_trgm_finds(text) => {
            materialised(db, text, request, Matches::TrigramUnion).await
        }
        _ => materialised(db, text, request, Matches::Scan).await,
    }
}

/// Whether the plan for `text` counts its matches in a statement of its
/// own (SQLite's FTS5 plan), which a known total spares.
pub(super) fn counts_apart(db: &Db, text: &SearchText) -> bool {
    db.backend() == DbBackend::Sqlite && text.chars() >= TRIGRAM
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
                "WITH {}, matches AS MATERIALIZED ({})",
                sqlite_authors(parameter),
                sqlite_matches(parameter)
            ),
            text.fts5_phrase().into(),
        ),
        DbBackend::Postgres if pg_trgm_finds(text) => (
            Matches::TrigramUnion.cte(backend, parameter),
            text.like_pattern().into(),
        ),
        _ => (
            Matches::Scan.cte(backend, parameter),
            text.like_pattern().into(),
        ),
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
    fn cte(self, backend: DbBackend, pattern: &str) -> String {
        // SQLite would also find every column in `idx_books_title (title,
        // id, author_id)`, and then look the authors up in title order, at
        // random: four to five times slower at 1,000,000 books than in author order.
        let in_author_order = match backend {
            DbBackend::Sqlite => "INDEXED BY idx_books_author_title",
            _ => "",
        };
        match self {
            Self::Scan => format!(
                "WITH matches AS MATERIALIZED (\
                    SELECT books.id, books.title FROM books {in_author_order} \
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
    let rows = Counted::<book::Model>::find_by_statement(materialised_page(
        backend, text, request, matches,
    ))
    .all(db.reader())
    .await?;
    let total_count = match rows.first() {
        Some(row) => row.n,
        None if request.page == 1 => 0,
        None => {
            let (pattern, _, _) = placeholders(backend);
            let count = Statement::from_sql_and_values(
                backend,
                format!(
                    "{} SELECT COUNT(*) FROM matches",
                    matches.cte(backend, pattern)
                ),
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

/// The one statement of a [`materialised`] page: the page's books, each
/// with the total as `n`.
fn materialised_page(
    backend: DbBackend,
    text: &SearchText,
    request: PageRequest,
    matches: Matches,
) -> Statement {
    let (pattern, limit, offset) = placeholders(backend);
    let page = format!(
        "{} SELECT books.*, (SELECT COUNT(*) FROM matches) AS n FROM books \
         WHERE books.id IN (SELECT id FROM matches ORDER BY title, id LIMIT {limit} OFFSET {offset}) \
         ORDER BY books.title, books.id",
        matches.cte(backend, pattern)
    );
    let values = [
        text.like_pattern().into(),
        (request.limit() as i64).into(),
        (request.offset() as i64).into(),
    ];
    Statement::from_sql_and_values(backend, page, values)
}

/// The placeholders of a [`materialised`] statement's pattern, limit and
/// offset.
fn placeholders(backend: DbBackend) -> (&'static str, &'static str, &'static str) {
    match backend {
        DbBackend::Postgres => ("$1", "$2", "$3"),
        _ => ("?1", "?2", "?3"),
    }
}

/// The statement a search of one or two characters runs for a page (the
/// scan), for tests that check how the database plans it.
pub fn short_text_page(backend: DbBackend, text: &SearchText, request: PageRequest) -> Statement {
    materialised_page(backend, text, request, Matches::Scan)
}

/// SQLite, three characters or more, in one read transaction (so the page
/// is cut from the set that was counted). The total is counted on the
/// FTS5 index (`book_search`, whose rows hold each book's title and its
/// author's name), then the page is found by whichever of two plans reads
/// less:
///
/// - Walking `idx_books_title (title, id, author_id)` in order, keeping
///   the entries whose title matches (`lower(title) LIKE`) or whose author
///   is one of those whose name matches (`author_search`, materialised
///   first), until a page is found. No row is read. A common word or name
///   fills the first page after a few hundred entries. At 1,000,000 books,
///   `garden` (50,041 matches, by title) and `umarov` (33,965, by name,
///   6,795 authors): 1-9 ms, the authors' lookup included.
/// - Sorting every match, read as `(id, title)`: those whose title
///   matches (`book_search`'s title column, each then read by key), and
///   the books of the matching authors (`idx_books_author_title`, no row
///   read). Taken for few matches, or deep pages.
///
/// The walk reads about `(offset + limit) * books / total` entries, the
/// sort every match at a few times the cost of an entry: the walk is taken
/// when it reads fewer than twice the matches.
///
/// With the total `known`, the count is skipped: the page alone is cut,
/// its plan chosen by that total.
async fn fts(
    db: &Db,
    text: &SearchText,
    request: PageRequest,
    known: Option<u64>,
) -> Result<Page<book::Model>> {
    let phrase = text.fts5_phrase();
    let txn = db.conn().begin().await?;
    let total = match known {
        Some(total) => total,
        None => count_of(
            &txn,
            Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT COUNT(*) FROM book_search WHERE book_search MATCH ?1",
                [phrase.clone().into()],
            ),
        )
        .await?
        .max(0) as u64,
    };
    let (offset, limit) = (request.offset(), request.limit());
    let items = if offset >= total {
        Vec::new()
    } else {
        let books = books_in_catalogue(&txn).await?.max(total);
        let walked = (offset + limit).saturating_mul(books) / total.max(1);
        let page = if walked < total.saturating_mul(2) {
            walk()
        } else {
            sort()
        };
        let values: [Value; 4] = [
            phrase.into(),
            text.like_pattern().into(),
            (limit as i64).into(),
            (offset as i64).into(),
        ];
        book::Model::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            page,
            values,
        ))
        .all(&txn)
        .await?
    };
    txn.commit().await?;
    Ok(Page {
        items,
        total_count: total,
        request,
        changes_at: None,
    })
}

/// SQLite: the CTE `a (id)` of the authors whose name matches the FTS5
/// phrase `phrase` (a placeholder).
fn sqlite_authors(phrase: &str) -> String {
    format!(
        "a AS MATERIALIZED (SELECT k.author_id AS id FROM author_search \
         JOIN author_search_keys AS k ON k.key = author_search.rowid \
         WHERE author_search MATCH {phrase})"
    )
}

/// SQLite: every match as `(id, title)`, given [`sqlite_authors`]' `a`:
/// the books whose title matches, and the books of the authors in `a`.
fn sqlite_matches(phrase: &str) -> String {
    format!(
        "SELECT b.id, b.title FROM book_search \
         JOIN book_search_keys AS k ON k.key = book_search.rowid \
         JOIN books AS b ON b.id = k.book_id \
         WHERE book_search MATCH 'title : ' || {phrase} \
         UNION SELECT b.id, b.title FROM a \
         JOIN books AS b INDEXED BY idx_books_author_title ON b.author_id = a.id"
    )
}

/// The page of many matches (`?1` the FTS5 phrase, `?2` the LIKE pattern,
/// `?3` the limit, `?4` the offset), walking the title index in order
/// (`INDEXED BY` keeps it from sorting instead).
fn walk() -> String {
    format!(
        "WITH {}, page AS (SELECT b.id FROM books AS b INDEXED BY idx_books_title \
         WHERE lower(b.title) LIKE ?2 ESCAPE '\\' OR b.author_id IN (SELECT id FROM a) \
         ORDER BY b.title, b.id LIMIT ?3 OFFSET ?4) \
         SELECT books.* FROM books WHERE books.id IN (SELECT id FROM page) \
         ORDER BY books.title, books.id",
        sqlite_authors("?1")
    )
}

/// The page of few matches, or a deep one (the parameters of [`walk`];
/// `?2` unused): every match read, then sorted.
fn sort() -> String {
    format!(
        "WITH {}, matches AS MATERIALIZED ({}) \
         SELECT books.* FROM books WHERE books.id IN \
         (SELECT id FROM matches ORDER BY title, id LIMIT ?3 OFFSET ?4) \
         ORDER BY books.title, books.id",
        sqlite_authors("?1"),
        sqlite_matches("?1")
    )
}

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
