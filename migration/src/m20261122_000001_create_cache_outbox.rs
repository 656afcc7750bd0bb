//! The cache's outbox, and the deployment's identity.
//!
//! A write records the cache invalidation of what it changed in the same
//! transaction as the change (a `cache_outbox` row), so no committed write
//! can lose its invalidation: if its replica dies before publishing it, any
//! other replica publishes it. The deployment id, generated here once per
//! database, namespaces the cache keys, so two databases sharing one Redis
//! never read each other's entries.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates.
pub const TABLES: &[&str] = &["cache_outbox"];

#[derive(DeriveIden)]
enum CacheOutbox {
    Table,
    Id,
    CreatedAt,
    Payload,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
}

/// The `settings` key under which the deployment id is stored.
pub const DEPLOYMENT_ID: &str = "deployment_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CacheOutbox::Table)
                    .col(
                        ColumnDef::new(CacheOutbox::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(CacheOutbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(CacheOutbox::Payload).text().not_null())
                    .to_owned(),
            )
            .await?;
        // The sweep for entries left behind reads the oldest first.
        manager
            .create_index(
                Index::create()
                    .name("ix_cache_outbox_created_at")
                    .table(CacheOutbox::Table)
                    .col(CacheOutbox::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // 48 random bits: the tail of a v7 UUID is random.
        let id = uuid::Uuid::now_v7().simple().to_string()[20..].to_owned();
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(Settings::Table)
                    .columns([Settings::Key, Settings::Value])
                    .values_panic([DEPLOYMENT_ID.into(), id.into()])
                    // An id left by an older build interrupted before it
                    // recorded this migration is kept, so a repaired
                    // database can run it again.
                    .on_conflict(OnConflict::column(Settings::Key).do_nothing().to_owned())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(Settings::Table)
                    .and_where(Expr::col(Settings::Key).eq(DEPLOYMENT_ID))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(CacheOutbox::Table).to_owned())
            .await
    }
}
