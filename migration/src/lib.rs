//! Database migrations, run at start and by `biblio migrate`.
pub use sea_orm_migration::prelude::*;

mod m20261121_000001_create_catalogue;
mod m20261122_000001_create_cache_outbox;

pub use m20261122_000001_create_cache_outbox::DEPLOYMENT_ID;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_create_catalogue::Migration),
            Box::new(m20261122_000001_create_cache_outbox::Migration),
        ]
    }
}
