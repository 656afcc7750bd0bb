//! Database migrations, run at start and by `biblio migrate`.
pub use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

mod m20261121_000001_create_catalogue;
mod m20261122_000001_create_cache_outbox;
mod m20261123_000001_create_persisted_documents;
mod m20261206_000001_add_user_token_generation;
mod m20261207_000001_create_tallies;
mod m20261207_000002_page_indexes;
mod m20261207_000003_search_index;
mod m20261207_000004_cache_changes;
mod m20261207_000005_search_titles;
mod m20261208_000001_author_search;

pub use m20261122_000001_create_cache_outbox::DEPLOYMENT_ID;

/// The table of changes the triggers record, and how biblio keeps its own
/// writes out of it.
pub mod changes {
    pub use crate::m20261207_000004_cache_changes::{
        triggers, CHANNEL, SQLITE_OWN_WRITES, WRITER_SETTING,
    };
}

/// The tallies the triggers keep: their kinds, the owner of library-wide
/// ones, and how to set them all from the tables.
pub mod tally {
    pub use crate::m20261207_000001_create_tallies::{kind, nil, recount, SHARDS};
}

/// The search index (an FTS5 table on SQLite, a table of titles and
/// trigram indexes on PostgreSQL), and how to fill it from the tables.
pub mod search {
    use sea_orm_migration::sea_orm::DbBackend;

    /// The triggers that keep the search's own tables, as `(table,
    /// trigger)`: what `/readyz` checks is still there and enabled, since a
    /// write they miss leaves search answering from old titles.
    pub fn triggers(backend: DbBackend) -> Vec<(&'static str, String)> {
        let names: &[&[(&str, &str)]] = match backend {
            DbBackend::Postgres => &[crate::m20261207_000005_search_titles::TRIGGERS],
            _ => &[
                crate::m20261207_000003_search_index::TRIGGERS,
                crate::m20261208_000001_author_search::TRIGGERS,
            ],
        };
        names
            .iter()
            .flat_map(|names| names.iter())
            .map(|(table, trigger)| (*table, (*trigger).to_owned()))
            .collect()
    }

    /// The statements that fill the search index from the tables, for a
    /// database filled while their triggers were not there.
    pub fn rebuild(backend: DbBackend) -> Vec<String> {
        let mut statements = crate::m20261207_000003_search_index::rebuild(backend);
        statements.extend(crate::m20261207_000005_search_titles::rebuild(backend));
        statements.extend(crate::m20261208_000001_author_search::rebuild(backend));
        statements
    }
}

pub struct Migrator;

/// A migration and the tables it creates on a backend, in the order it
/// creates them.
struct Step {
    migration: Box<dyn MigrationTrait>,
    creates: fn(DbBackend) -> &'static [&'static str],
}

fn steps() -> Vec<Step> {
    vec![
        Step {
            migration: Box::new(m20261121_000001_create_catalogue::Migration),
            creates: |_| m20261121_000001_create_catalogue::TABLES,
        },
        Step {
            migration: Box::new(m20261122_000001_create_cache_outbox::Migration),
            creates: |_| m20261122_000001_create_cache_outbox::TABLES,
        },
        Step {
            migration: Box::new(m20261123_000001_create_persisted_documents::Migration),
            creates: |_| m20261123_000001_create_persisted_documents::TABLES,
        },
        Step {
            migration: Box::new(m20261206_000001_add_user_token_generation::Migration),
            creates: |_| m20261206_000001_add_user_token_generation::TABLES,
        },
        Step {
            migration: Box::new(m20261207_000001_create_tallies::Migration),
            creates: |_| m20261207_000001_create_tallies::TABLES,
        },
        Step {
            migration: Box::new(m20261207_000002_page_indexes::Migration),
            creates: |_| m20261207_000002_page_indexes::TABLES,
        },
        Step {
            migration: Box::new(m20261207_000003_search_index::Migration),
            creates: m20261207_000003_search_index::tables,
        },
        Step {
            migration: Box::new(m20261207_000004_cache_changes::Migration),
            creates: |_| m20261207_000004_cache_changes::TABLES,
        },
        Step {
            migration: Box::new(m20261207_000005_search_titles::Migration),
            creates: m20261207_000005_search_titles::tables,
        },
        Step {
            migration: Box::new(m20261208_000001_author_search::Migration),
            creates: m20261208_000001_author_search::tables,
        },
    ]
}

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        steps().into_iter().map(|step| step.migration).collect()
    }
}

/// Each migration's name with the tables it creates, in order: how a
/// database that an interrupted migration left half-applied (tables without
/// their record in `seaql_migrations`) is recognised, and repaired.
pub fn created_tables(backend: DbBackend) -> Vec<(String, &'static [&'static str])> {
    steps()
        .into_iter()
        .map(|step| (step.migration.name().to_owned(), (step.creates)(backend)))
        .collect()
}

/// Whether `table` is one whose rows the service generates again when they
/// are missing (the deployment id, the token signing key; the tallies,
/// which their migration counts again; the search indexes, which their
/// migrations fill again), so that dropping it loses no one's data.
pub fn is_regenerated(table: &str) -> bool {
    ["settings", "tallies", "book_titles"].contains(&table)
        || m20261207_000003_search_index::TABLES.contains(&table)
        || m20261208_000001_author_search::TABLES.contains(&table)
}
