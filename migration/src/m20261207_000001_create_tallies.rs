//! Tallies: the counts and sums the API reports (books in the catalogue, in
//! a category, by an author; their price total; copies on loan; members),
//! kept exact by triggers in the transaction of every write that changes
//! them, so that reading one is a few row reads instead of a scan.
//!
//! Triggers rather than code in the service's write functions: they count
//! every write whatever makes it (the service, `biblio seed`, a cascade, an
//! operator's `psql` session), and no write path can forget one. TRUNCATE
//! bypasses them (it fires no row or DELETE trigger); run [`recount`] after
//! one.
//!
//! A tally is a row `(kind, owner, shard, value)`: `owner` is the author or
//! category counted, or the nil UUID for library-wide kinds; its value is
//! the sum over its shards. On SQLite, where one writer holds the database
//! at a time, every tally has one shard. On PostgreSQL each statement adds
//! its library-wide deltas to one of [`SHARDS`] rows picked at random, so
//! concurrent borrows of different books do not queue on one row lock. The
//! deltas of one statement go in with one upsert ordered by (kind, owner),
//! so two statements take their tally rows in the same order, after the
//! rows they write. Each of the service's writes changes tallies with one
//! statement (a book's lock-taking no-op UPDATE adds nothing), so they
//! cannot deadlock on tallies; a transaction of another program's that
//! changes counted rows in several statements can, like any transaction
//! that locks rows in an order of its own (PostgreSQL then aborts one).
//!
//! Copies on loan are counted from `books` (`copies_total -
//! copies_available`, the invariant every borrow and return keeps in its
//! transaction), not from `borrow_records`: a borrow and a return then both
//! lock the book's row before the tally's, in that order.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates.
pub const TABLES: &[&str] = &["tallies"];

/// How many rows a library-wide tally is spread over on PostgreSQL.
pub const SHARDS: i16 = 16;

/// The kinds of tally, as stored in `tallies.kind`.
pub mod kind {
    /// Books in the catalogue.
    pub const BOOKS: &str = "books";
    /// The sum of every book's `price_cents`.
    pub const PRICE_CENTS: &str = "price_cents";
    /// Copies lent and not returned: the sum of `copies_total -
    /// copies_available`, which equals the active borrow records.
    pub const COPIES_ON_LOAN: &str = "copies_on_loan";
    /// Books with at least one copy free (`copies_available > 0`).
    pub const BOOKS_AVAILABLE: &str = "books_available";
    pub const AUTHORS: &str = "authors";
    pub const CATEGORIES: &str = "categories";
    /// Users with the role `MEMBER`.
    pub const MEMBERS: &str = "members";
    /// Books by the author `owner`.
    pub const AUTHOR_BOOKS: &str = "author_books";
    /// Books in the category `owner`.
    pub const CATEGORY_BOOKS: &str = "category_books";
}

/// What a table's triggers count: for each row written, the delta it adds
/// to each tally (subtracted for a row removed), as SQL over the row `r`.
struct Counted {
    table: &'static str,
    /// `(kind, owner or None for library-wide, value)`.
    deltas: &'static [(&'static str, Option<&'static str>, &'static str)],
    /// The columns the deltas read, whose UPDATE can change a tally.
    columns: &'static [&'static str],
    /// Per-owner tallies that go with a deleted row of this table.
    owns: Option<&'static str>,
}

const COUNTED: &[Counted] = &[
    Counted {
        table: "books",
        deltas: &[
            (kind::BOOKS, None, "1"),
            (kind::PRICE_CENTS, None, "r.price_cents"),
            (
                kind::COPIES_ON_LOAN,
                None,
                "r.copies_total - r.copies_available",
            ),
            (
                kind::BOOKS_AVAILABLE,
                None,
                "CASE WHEN r.copies_available > 0 THEN 1 ELSE 0 END",
            ),
            (kind::AUTHOR_BOOKS, Some("r.author_id"), "1"),
            (kind::CATEGORY_BOOKS, Some("r.category_id"), "1"),
        ],
        columns: &[
            "price_cents",
            "copies_total",
            "copies_available",
            "author_id",
            "category_id",
        ],
        owns: None,
    },
    Counted {
        table: "authors",
        deltas: &[(kind::AUTHORS, None, "1")],
        columns: &[],
        owns: Some(kind::AUTHOR_BOOKS),
    },
    Counted {
        table: "categories",
        deltas: &[(kind::CATEGORIES, None, "1")],
        columns: &[],
        owns: Some(kind::CATEGORY_BOOKS),
    },
    Counted {
        table: "users",
        deltas: &[(
            kind::MEMBERS,
            None,
            "CASE WHEN r.role = 'MEMBER' THEN 1 ELSE 0 END",
        )],
        columns: &["role"],
        owns: None,
    },
];

/// The nil UUID as a literal, the owner of library-wide tallies.
pub fn nil(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "'00000000-0000-0000-0000-000000000000'::uuid",
        _ => "X'00000000000000000000000000000000'",
    }
}

fn create_table(backend: DbBackend) -> String {
    let (uuid, shard, rowid) = match backend {
        DbBackend::Postgres => ("uuid", "smallint", ""),
        _ => ("uuid_text", "integer", " WITHOUT ROWID"),
    };
    format!(
        "CREATE TABLE tallies (\
            kind varchar(32) NOT NULL, \
            owner {uuid} NOT NULL, \
            shard {shard} NOT NULL, \
            value bigint NOT NULL, \
            PRIMARY KEY (kind, owner, shard)\
         ){rowid}"
    )
}

/// The deltas of the rows in `changes` (a relation of rows `r` of
/// `counted.table` with a column `sign`: 1 for a row added, -1 for one
/// removed), as one row per (kind, owner): `SELECT kind, owner, value`.
fn deltas(backend: DbBackend, counted: &Counted, changes: &str) -> String {
    let nil = nil(backend);
    let values: Vec<String> = counted
        .deltas
        .iter()
        .map(|(kind, owner, value)| {
            format!(
                "SELECT '{kind}' AS kind, {} AS owner, r.sign * ({value}) AS value FROM {changes}",
                owner.unwrap_or(nil)
            )
        })
        .collect();
    format!(
        "SELECT kind, owner, SUM(value) AS value FROM ({}) AS d \
         WHERE true GROUP BY kind, owner HAVING SUM(value) <> 0",
        values.join(" UNION ALL ")
    )
}

/// Adds `deltas` (rows `kind, owner, value`) to the tallies, in (kind,
/// owner) order; `shard` is the SQL of the shard library-wide rows go to
/// (`None`: every tally has the one shard 0).
fn upsert(backend: DbBackend, deltas: &str, shard: Option<&str>) -> String {
    let shard = match shard {
        Some(shard) => format!("CASE WHEN owner = {} THEN {shard} ELSE 0 END", nil(backend)),
        None => "0".to_owned(),
    };
    format!(
        "INSERT INTO tallies (kind, owner, shard, value) \
         SELECT kind, owner, {shard}, value \
         FROM ({deltas}) AS t WHERE true ORDER BY kind, owner \
         ON CONFLICT (kind, owner, shard) DO UPDATE SET value = tallies.value + excluded.value"
    )
}

/// SQLite: row triggers, one per event, each a single upsert over the row
/// written (`NEW`, `OLD`, or both for an UPDATE of a counted column).
fn sqlite_triggers(counted: &Counted) -> Vec<String> {
    let backend = DbBackend::Sqlite;
    let table = counted.table;
    let row = |sign: i32, row: &str| {
        let mut columns = vec![format!("{sign} AS sign")];
        columns.extend(
            counted
                .columns
                .iter()
                .map(|column| format!("{row}.{column} AS {column}")),
        );
        format!("SELECT {}", columns.join(", "))
    };
    let apply = |rows: &[String]| {
        let changes = format!("({}) AS r", rows.join(" UNION ALL "));
        upsert(backend, &deltas(backend, counted, &changes), None)
    };
    let forget = counted
        .owns
        .map(|owned| format!("DELETE FROM tallies WHERE kind = '{owned}' AND owner = OLD.id; "))
        .unwrap_or_default();
    let mut statements = vec![
        format!(
            "CREATE TRIGGER tally_{table}_insert AFTER INSERT ON {table} BEGIN {}; END",
            apply(&[row(1, "NEW")])
        ),
        format!(
            "CREATE TRIGGER tally_{table}_delete AFTER DELETE ON {table} BEGIN {}; {forget}END",
            apply(&[row(-1, "OLD")])
        ),
    ];
    if !counted.columns.is_empty() {
        statements.push(format!(
            "CREATE TRIGGER tally_{table}_update AFTER UPDATE OF {} ON {table} BEGIN {}; END",
            counted.columns.join(", "),
            apply(&[row(1, "NEW"), row(-1, "OLD")])
        ));
    }
    statements
}

/// PostgreSQL: one statement-level trigger per event over the statement's
/// transition tables, so a bulk write (a seed, a cascade) costs one upsert,
/// not one per row.
fn postgres_triggers(counted: &Counted) -> Vec<String> {
    let backend = DbBackend::Postgres;
    let table = counted.table;
    let shard = format!("floor(random() * {SHARDS})::smallint");
    let apply = |changes: &str| upsert(backend, &deltas(backend, counted, changes), Some(&shard));
    let inserted = apply("(SELECT 1 AS sign, * FROM new_rows) AS r");
    let deleted = apply("(SELECT -1 AS sign, * FROM old_rows) AS r");
    let updated = apply(
        "(SELECT 1 AS sign, * FROM new_rows UNION ALL SELECT -1 AS sign, * FROM old_rows) AS r",
    );
    let forget = counted
        .owns
        .map(|owned| {
            format!(
                "DELETE FROM tallies WHERE kind = '{owned}' AND owner IN (SELECT id FROM old_rows);"
            )
        })
        .unwrap_or_default();
    let mut statements = vec![format!(
        "CREATE FUNCTION tally_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
             IF TG_OP = 'INSERT' THEN {inserted}; \
             ELSIF TG_OP = 'UPDATE' THEN {updated}; \
             ELSE {deleted}; {forget} \
             END IF; \
             RETURN NULL; \
         END $$"
    )];
    for (name, event, referencing) in [
        ("insert", "INSERT", "NEW TABLE AS new_rows"),
        (
            "update",
            "UPDATE",
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ),
        ("delete", "DELETE", "OLD TABLE AS old_rows"),
    ] {
        if name == "update" && counted.columns.is_empty() {
            continue;
        }
        statements.push(format!(
            "CREATE TRIGGER tally_{table}_{name} AFTER {event} ON {table} \
             REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION tally_{table}()"
        ));
    }
    statements
}

/// The statements that create the triggers of every counted table.
fn triggers(backend: DbBackend) -> Vec<String> {
    COUNTED
        .iter()
        .flat_map(|counted| match backend {
            DbBackend::Postgres => postgres_triggers(counted),
            _ => sqlite_triggers(counted),
        })
        .collect()
}

/// The statements that set every tally from the tables themselves, for a
/// database filled while the triggers were not there (by this migration,
/// or by `biblio seed`, which drops them while it loads).
pub fn recount(backend: DbBackend) -> Vec<String> {
    let nil = nil(backend);
    let sum = |expr: &str| format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)");
    let library = |kind: &str, value: &str, from: &str| {
        format!("SELECT '{kind}', {nil}, 0, {value} FROM {from}")
    };
    let parts = [
        library(kind::BOOKS, "COUNT(*)", "books"),
        library(kind::PRICE_CENTS, &sum("price_cents"), "books"),
        library(
            kind::COPIES_ON_LOAN,
            &sum("copies_total - copies_available"),
            "books",
        ),
        library(
            kind::BOOKS_AVAILABLE,
            "COUNT(*)",
            "books WHERE copies_available > 0",
        ),
        library(kind::AUTHORS, "COUNT(*)", "authors"),
        library(kind::CATEGORIES, "COUNT(*)", "categories"),
        library(kind::MEMBERS, "COUNT(*)", "users WHERE role = 'MEMBER'"),
        format!(
            "SELECT '{}', author_id, 0, COUNT(*) FROM books GROUP BY author_id",
            kind::AUTHOR_BOOKS
        ),
        format!(
            "SELECT '{}', category_id, 0, COUNT(*) FROM books GROUP BY category_id",
            kind::CATEGORY_BOOKS
        ),
    ];
    vec![
        "DELETE FROM tallies".to_owned(),
        format!(
            "INSERT INTO tallies (kind, owner, shard, value) {}",
            parts.join(" UNION ALL ")
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = manager.get_database_backend();
        if backend == DbBackend::Postgres {
            // No write may land between the recount and the triggers taking
            // over (SQLite's write lock already ensures as much).
            conn.execute_unprepared("LOCK TABLE books, authors, categories, users IN SHARE MODE")
                .await?;
        }
        conn.execute_unprepared(&create_table(backend)).await?;
        for statement in triggers(backend).iter().chain(&recount(backend)) {
            conn.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = manager.get_database_backend();
        for counted in COUNTED {
            for event in ["insert", "update", "delete"] {
                let table = counted.table;
                let on = if backend == DbBackend::Postgres {
                    format!(" ON {table}")
                } else {
                    String::new()
                };
                conn.execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS tally_{table}_{event}{on}"
                ))
                .await?;
            }
            if backend == DbBackend::Postgres {
                conn.execute_unprepared(&format!(
                    "DROP FUNCTION IF EXISTS tally_{}()",
                    counted.table
                ))
                .await?;
            }
        }
        conn.execute_unprepared("DROP TABLE tallies").await?;
        Ok(())
    }
}
