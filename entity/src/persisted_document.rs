//! Trusted documents registered by `biblio documents add` (see the
//! `migration` crate): what `--persisted-only` lets clients run.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "persisted_documents")]
pub struct Model {
    /// The id clients send as `extensions.persistedQuery.sha256Hash`: the
    /// SHA-256 of `body` in lower-case hex, or an opaque id from a manifest.
    #[sea_orm(primary_key, auto_increment = false)]
    pub hash: String,
    /// The document's text, exactly as the client's build hashed it.
    pub body: String,
    /// The operation's name, when the manifest gives one.
    pub name: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
