//! Migrations are atomic: each one and its record in `seaql_migrations`
//! commit together or not at all. A database an older build left
//! half-migrated (tables without their record) is named as such, with the
//! way out, and `biblio migrate --repair` takes it when no data is at stake.
use crate::binary::{all_migrations, applied_migrations, biblio, has_table};
use crate::helpers::TestDatabase;
use biblio::db::Db;
use migration::MigratorTrait;
use sea_orm::ConnectionTrait;

async fn execute(url: &str, sql: &str) {
    let db = Db::connect(url).await.expect("the database opens");
    db.conn()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

async fn count(url: &str, table: &str) -> i64 {
    let db = Db::connect(url).await.expect("the database opens");
    let row = db
        .conn()
        .query_one(sea_orm::Statement::from_string(
            db.backend(),
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .expect("the count runs")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

/// What a build before atomic migrations left when it died between applying
/// the first migration and recording it: every table of the catalogue, and
/// `seaql_migrations` empty.
async fn half_migrated_by_an_older_build(url: &str) {
    let db = Db::connect(url).await.expect("the database opens");
    migration::Migrator::up(db.conn(), Some(1))
        .await
        .expect("the first migration applies");
    execute(url, "DELETE FROM seaql_migrations").await;
    assert!(has_table(url, "authors").await);
    assert_eq!(applied_migrations(url).await, 0);
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_migration_that_fails_half_way_leaves_nothing_behind() {
    let (_database, url) = TestDatabase::create().await;
    // An index named like the first migration's last one: the migration
    // creates every table, then fails on that index.
    execute(&url, "CREATE TABLE decoy (x INTEGER)").await;
    execute(&url, "CREATE INDEX uq_borrow_records_active ON decoy (x)").await;
    let db = Db::connect(&url).await.unwrap();

    let failed = db.migrate().await;

    assert!(failed.is_err(), "the migration should fail on the decoy");
    for table in ["authors", "books", "borrow_records"] {
        assert!(!has_table(&url, table).await, "{table} was left behind");
    }
    assert_eq!(applied_migrations(&url).await, 0);

    // Nothing half-applied stands in the way once the cause is gone.
    execute(&url, "DROP TABLE decoy").await;
    db.migrate().await.expect("the migrations apply");
    assert_eq!(applied_migrations(&url).await, all_migrations());
}

#[tokio::test]
async fn a_half_migrated_database_is_refused_with_the_way_out_named() {
    let (_database, url) = TestDatabase::create().await;
    half_migrated_by_an_older_build(&url).await;

    for command in [&["migrate"][..], &["serve", "--bind", "127.0.0.1:0"]] {
        let output = biblio(&url)
            .args(command)
            .output()
            .expect("the biblio binary runs");

        assert_eq!(output.status.code(), Some(1), "{command:?}: {output:?}");
        let stderr = stderr(&output);
        assert!(stderr.contains("half-migrated"), "{command:?}: {stderr}");
        assert!(
            stderr.contains("biblio migrate --repair"),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{command:?}: {stderr}");
    }
    assert_eq!(applied_migrations(&url).await, 0);
}

#[tokio::test]
async fn repair_drops_an_interrupted_migrations_empty_tables_and_migrates() {
    let (_database, url) = TestDatabase::create().await;
    half_migrated_by_an_older_build(&url).await;

    let output = biblio(&url)
        .args(["migrate", "--repair"])
        .output()
        .expect("the biblio binary runs");

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(applied_migrations(&url).await, all_migrations());
    assert_eq!(count(&url, "authors").await, 0);
    // A plain start works again.
    let output = biblio(&url).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test]
async fn repair_refuses_to_drop_tables_that_hold_rows() {
    let (_database, url) = TestDatabase::create().await;
    half_migrated_by_an_older_build(&url).await;
    execute(
        &url,
        "INSERT INTO authors (id, name, created_at, updated_at) VALUES \
         ('0190a0a0-0000-7000-8000-000000000001', 'Kept', \
          '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
    )
    .await;

    let output = biblio(&url)
        .args(["migrate", "--repair"])
        .output()
        .expect("the biblio binary runs");

    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = stderr(&output);
    assert!(stderr.contains("authors"), "{stderr}");
    assert!(stderr.contains("1 row"), "{stderr}");
    assert_eq!(count(&url, "authors").await, 1, "nothing may be dropped");
    assert_eq!(applied_migrations(&url).await, 0);
}

/// The tables in the database, except the migrations' own record.
async fn tables(db: &Db) -> std::collections::BTreeSet<String> {
    let sql = match db.backend() {
        sea_orm::DbBackend::Postgres => {
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    };
    db.conn()
        .query_all(sea_orm::Statement::from_string(db.backend(), sql))
        .await
        .expect("the catalogue is readable")
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a name"))
        .filter(|name| name != "seaql_migrations")
        .collect()
}

#[tokio::test]
async fn each_migration_declares_exactly_the_tables_it_creates() {
    let (_database, url) = TestDatabase::create().await;
    let db = Db::connect(&url).await.unwrap();
    let mut expected = std::collections::BTreeSet::new();

    for (name, created) in migration::created_tables(db.backend()) {
        migration::Migrator::up(db.conn(), Some(1))
            .await
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        expected.extend(created.iter().map(|table| table.to_string()));

        assert_eq!(tables(&db).await, expected, "after {name}");
    }
    assert_eq!(applied_migrations(&url).await, all_migrations());
}

/// Replicas of a new deployment start together (compose, a Deployment of
/// three): each migrates the same empty database at once. Every one must
/// come up with the schema applied once, whichever applies each migration.
#[tokio::test]
async fn three_replicas_migrating_one_empty_database_at_once_all_succeed() {
    let (_database, url) = TestDatabase::create().await;
    let (a, b, c) = tokio::join!(Db::connect(&url), Db::connect(&url), Db::connect(&url));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());

    let (ra, rb, rc) = tokio::join!(a.migrate(), b.migrate(), c.migrate());

    for (replica, result) in [("first", ra), ("second", rb), ("third", rc)] {
        if let Err(err) = result {
            panic!("the {replica} replica's migration failed: {err}");
        }
    }
    assert_eq!(applied_migrations(&url).await, all_migrations());
}
