//! Writes from anywhere: triggers on every table a cached answer reads
//! (`books`, `authors`, `categories`, `users`, `borrow_records`) append
//! each committed change to `cache_changes`, in the transaction of the
//! change, whatever program makes it (an admin tool, an import, `psql`,
//! `sqlite3`). The replicas turn those rows into cache invalidations
//! (`src/cache/foreign.rs`). Counts and sums (`tallies`) and the search
//! index change only with these tables, so their changes cover them.
//!
//! A row is `(id, change)`: `change` is JSON, `{"t": table, "old": row,
//! "new": row}` (`old` absent for an insert, `new` for a delete), where a
//! row holds the columns whose change moves cached lists: for a book its
//! id, title, price, year, copies available, author and category, and the
//! author's name (search matches it); for an author the name; for a loan
//! its member and book; for a category or user the id alone. UUIDs are
//! text (on SQLite, the hex of the 16-byte blob biblio stores).
//!
//! # One path for biblio's writes and everyone else's
//! biblio's own writes already record a precise invalidation in
//! `cache_outbox` with the change, and publish it at once; announcing them
//! here too would publish every write twice. So the triggers skip them:
//! - PostgreSQL: biblio's connections start with the setting
//!   `biblio.writer=on` (a startup option, so it costs no round trip), and
//!   the trigger functions return at once when
//!   `current_setting('biblio.writer', true)` says so. Any other session
//!   (`psql`, another program) has no such setting and is announced. A
//!   connection pooler in transaction mode that hands biblio's server
//!   connections to other clients would hide their writes: point such
//!   poolers at biblio with session pooling, or not at all.
//! - SQLite has no session settings a trigger can read, and a trigger of
//!   the database cannot read a connection's TEMP objects; but a TEMP
//!   trigger of a connection fires on the database's tables. So every
//!   connection of biblio's pool has one (`own_writes_unannounced`, made
//!   when the connection opens and whenever it is taken from the pool,
//!   outside any transaction) that drops, with `RAISE(IGNORE)`, every row
//!   the triggers below try to add to `cache_changes` on that connection.
//!   No other connection has it.
//!
//! A write of biblio's that the triggers recorded anyway (a connection
//! opened before this migration ran, until it is next taken from the
//! pool) is announced twice, which is harmless: an invalidation evicts
//! nothing more the second time.
//!
//! # Cost
//! One extra row (a few hundred bytes) per row changed, in the same
//! transaction; on PostgreSQL one `INSERT … SELECT` per statement over its
//! transition tables, and a `NOTIFY biblio_cache_changes` the replicas
//! listen to (delivered at commit; several in one transaction are one).
//! Rows live until a replica with Redis takes them, within tens of
//! milliseconds; with no such replica running they accumulate, and the
//! first to start takes them all (a backlog larger than one batch clears
//! the whole cache rather than naming each row). TRUNCATE fires no row
//! trigger: run `biblio cache clear` after one, as after `biblio seed`,
//! which drops every trigger while it loads.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates.
pub const TABLES: &[&str] = &["cache_changes"];

/// The channel a PostgreSQL trigger notifies when it adds rows.
pub const CHANNEL: &str = "biblio_cache_changes";

/// The setting that marks biblio's own PostgreSQL sessions.
pub const WRITER_SETTING: &str = "biblio.writer";

/// The TEMP trigger that keeps a SQLite connection's own writes out of
/// `cache_changes`.
pub const SQLITE_OWN_WRITES: &str = "CREATE TEMP TRIGGER IF NOT EXISTS own_writes_unannounced \
     BEFORE INSERT ON main.cache_changes BEGIN SELECT RAISE(IGNORE); END";

/// The events each watched table has a trigger for.
const EVENTS: [&str; 3] = ["insert", "update", "delete"];

/// The name of the trigger that announces `event`s on `table`.
fn trigger_name(table: &str, event: &str) -> String {
    format!("announce_{table}_{event}")
}

/// Every trigger `up` creates, as `(table, trigger)`: what `/readyz` checks
/// is still there (and, on PostgreSQL, enabled), since a write nothing
/// announces is a write every replica's cache misses.
pub fn triggers() -> Vec<(&'static str, String)> {
    WATCHED
        .iter()
        .flat_map(|watched| {
            EVENTS
                .iter()
                .map(|event| (watched.table, trigger_name(watched.table, event)))
        })
        .collect()
}

/// A watched table and the columns its rows carry into a change, as
/// `(name in the JSON, column, kind)`.
struct Watched {
    table: &'static str,
    columns: &'static [(&'static str, &'static str, Value)],
    /// The author's name, for `books`: search matches it as it matches
    /// the title.
    author_name: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Value {
    Uuid,
    Plain,
}

const WATCHED: &[Watched] = &[
    Watched {
        table: "books",
        columns: &[
            ("id", "id", Value::Uuid),
            ("title", "title", Value::Plain),
            ("price", "price_cents", Value::Plain),
            ("year", "published_year", Value::Plain),
            ("copies", "copies_available", Value::Plain),
            ("author_id", "author_id", Value::Uuid),
            ("category_id", "category_id", Value::Uuid),
        ],
        author_name: true,
    },
    Watched {
        table: "authors",
        columns: &[("id", "id", Value::Uuid), ("name", "name", Value::Plain)],
        author_name: false,
    },
    Watched {
        table: "categories",
        columns: &[("id", "id", Value::Uuid)],
        author_name: false,
    },
    Watched {
        table: "users",
        columns: &[("id", "id", Value::Uuid)],
        author_name: false,
    },
    Watched {
        table: "borrow_records",
        columns: &[
            ("id", "id", Value::Uuid),
            ("user_id", "user_id", Value::Uuid),
            ("book_id", "book_id", Value::Uuid),
        ],
        author_name: false,
    },
];

/// The JSON object of row `r` of `watched` on `backend`.
fn row_json(backend: DbBackend, watched: &Watched, r: &str) -> String {
    let mut parts = Vec::new();
    for (name, column, value) in watched.columns {
        let expr = match (backend, value) {
            // biblio stores UUIDs as 16-byte blobs; another program may
            // have written text.
            (DbBackend::Sqlite, Value::Uuid) => format!(
                "CASE WHEN typeof({r}.{column}) = 'blob' THEN lower(hex({r}.{column})) \
                 ELSE {r}.{column} END"
            ),
            _ => format!("{r}.{column}"),
        };
        parts.push(format!("'{name}', {expr}"));
    }
    if watched.author_name {
        parts.push(format!(
            "'author', (SELECT a.name FROM authors a WHERE a.id = {r}.author_id)"
        ));
    }
    let function = match backend {
        DbBackend::Postgres => "json_build_object",
        _ => "json_object",
    };
    format!("{function}({})", parts.join(", "))
}

fn create_table(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "CREATE TABLE cache_changes (id bigserial PRIMARY KEY, change text NOT NULL)"
        }
        _ => "CREATE TABLE cache_changes (id integer PRIMARY KEY AUTOINCREMENT, change text NOT NULL)",
    }
}

/// SQLite: a row trigger per event.
fn sqlite_triggers(watched: &Watched) -> Vec<String> {
    let backend = DbBackend::Sqlite;
    let table = watched.table;
    let (old, new) = (
        row_json(backend, watched, "OLD"),
        row_json(backend, watched, "NEW"),
    );
    [
        ("insert", "INSERT", format!("'new', {new}")),
        ("update", "UPDATE", format!("'old', {old}, 'new', {new}")),
        ("delete", "DELETE", format!("'old', {old}")),
    ]
    .into_iter()
    .map(|(name, event, sides)| {
        let trigger = trigger_name(table, name);
        format!(
            "CREATE TRIGGER {trigger} AFTER {event} ON {table} BEGIN \
             INSERT INTO cache_changes (change) VALUES (json_object('t', '{table}', {sides})); END"
        )
    })
    .collect()
}

/// PostgreSQL: one statement-level trigger per event, adding a row per row
/// changed from the statement's transition tables with one `INSERT`.
fn postgres_triggers(watched: &Watched) -> Vec<String> {
    let backend = DbBackend::Postgres;
    let table = watched.table;
    let (old, new) = (
        row_json(backend, watched, "o"),
        row_json(backend, watched, "n"),
    );
    let insert = |select: String| {
        format!("INSERT INTO cache_changes (change) SELECT ({select})::text {{from}}")
    };
    let inserted = insert(format!("json_build_object('t', '{table}', 'new', {new})"))
        .replace("{from}", "FROM new_rows n");
    let deleted = insert(format!("json_build_object('t', '{table}', 'old', {old})"))
        .replace("{from}", "FROM old_rows o");
    // An UPDATE that changes an id pairs with nothing: a delete and an insert.
    let updated = insert(format!(
        "json_build_object('t', '{table}', \
         'old', CASE WHEN o.id IS NULL THEN NULL ELSE {old} END, \
         'new', CASE WHEN n.id IS NULL THEN NULL ELSE {new} END)"
    ))
    .replace(
        "{from}",
        "FROM old_rows o FULL JOIN new_rows n ON n.id = o.id",
    );
    let mut statements = vec![format!(
        "CREATE FUNCTION announce_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ \
         DECLARE added bigint; \
         BEGIN \
             IF current_setting('{WRITER_SETTING}', true) = 'on' THEN RETURN NULL; END IF; \
             IF TG_OP = 'INSERT' THEN {inserted}; \
             ELSIF TG_OP = 'UPDATE' THEN {updated}; \
             ELSE {deleted}; \
             END IF; \
             GET DIAGNOSTICS added = ROW_COUNT; \
             IF added > 0 THEN PERFORM pg_notify('{CHANNEL}', ''); END IF; \
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
        let trigger = trigger_name(table, name);
        statements.push(format!(
            "CREATE TRIGGER {trigger} AFTER {event} ON {table} \
             REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION announce_{table}()"
        ));
    }
    statements
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = manager.get_database_backend();
        conn.execute_unprepared(create_table(backend)).await?;
        for watched in WATCHED {
            let statements = match backend {
                DbBackend::Postgres => postgres_triggers(watched),
                _ => sqlite_triggers(watched),
            };
            for statement in statements {
                conn.execute_unprepared(&statement).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = manager.get_database_backend();
        for (table, trigger) in triggers() {
            let on = if backend == DbBackend::Postgres {
                format!(" ON {table}")
            } else {
                String::new()
            };
            conn.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {trigger}{on}"))
                .await?;
        }
        if backend == DbBackend::Postgres {
            for watched in WATCHED {
                let table = watched.table;
                conn.execute_unprepared(&format!("DROP FUNCTION IF EXISTS announce_{table}()"))
                    .await?;
            }
        }
        conn.execute_unprepared("DROP TABLE cache_changes").await?;
        Ok(())
    }
}
