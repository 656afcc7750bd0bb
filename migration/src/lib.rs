//! Database migrations, run at start and by `biblio migrate`.
pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_catalogue;
mod m20261122_000001_create_cache_outbox;
mod m20261123_000001_create_persisted_documents;
mod m20261206_000001_add_user_token_generation;
mod m20261207_000001_create_tallies;
mod m20261207_000002_page_indexes;

pub use m20261122_000001_create_cache_outbox::DEPLOYMENT_ID;

/// The tallies the triggers keep: their kinds, the owner of library-wide
/// ones, and how to set them all from the tables.
pub mod tally {
    pub use crate::m20261207_000001_create_tallies::{kind, nil, recount, SHARDS};
}

pub struct Migrator;

/// A migration and the tables it creates, in the order it creates them.
struct Step {
    migration: Box<dyn MigrationTrait>,
    creates: &'static [&'static str],
}

fn steps() -> Vec<Step> {
    vec![
        Step {
            migration: Box::new(m20261121_000001_create_catalogue::Migration),
            creates: m20261121_000001_create_catalogue::TABLES,
        },
        Step {
            migration: Box::new(m20261122_000001_create_cache_outbox::Migration),
            creates: m20261122_000001_create_cache_outbox::TABLES,
        },
        Step {
            migration: Box::new(m20261123_000001_create_persisted_documents::Migration),
            creates: m20261123_000001_create_persisted_documents::TABLES,
        },
        Step {
            migration: Box::new(m20261206_000001_add_user_token_generation::Migration),
            creates: m20261206_000001_add_user_token_generation::TABLES,
        },
        Step {
            migration: Box::new(m20261207_000001_create_tallies::Migration),
            creates: m20261207_000001_create_tallies::TABLES,
        },
        Step {
            migration: Box::new(m20261207_000002_page_indexes::Migration),
            creates: m20261207_000002_page_indexes::TABLES,
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
pub fn created_tables() -> Vec<(String, &'static [&'static str])> {
    steps()
        .into_iter()
        .map(|step| (step.migration.name().to_owned(), step.creates))
        .collect()
}

/// Tables whose rows the service generates again when they are missing (the
/// deployment id, the token signing key; the tallies, which their migration
/// counts again), so that dropping them loses no one's data.
pub const REGENERATED_TABLES: &[&str] = &["settings", "tallies"];
