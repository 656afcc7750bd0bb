//! Trusted documents: the GraphQL documents a deployment's own clients were
//! built with, registered by `biblio documents add` from their manifests.
//!
//! They live here rather than only in Redis because Redis keeps nothing on
//! disk: a restarted Redis must not leave a `--persisted-only` deployment
//! refusing its own frontends. Redis and each replica keep copies, read
//! through to this table on a miss. Automatic persisted queries learnt at
//! request time are not written here; they live in Redis and L1 only.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates.
pub const TABLES: &[&str] = &["persisted_documents"];

#[derive(DeriveIden)]
enum PersistedDocuments {
    Table,
    Hash,
    Body,
    Name,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PersistedDocuments::Table)
                    .col(
                        ColumnDef::new(PersistedDocuments::Hash)
                            .string_len(200)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PersistedDocuments::Body).text().not_null())
                    .col(
                        ColumnDef::new(PersistedDocuments::Name)
                            .string_len(200)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PersistedDocuments::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PersistedDocuments::Table).to_owned())
            .await
    }
}
