//! Trusted documents (`persisted_documents`): written by `biblio documents
//! add`, read by the persisted-query store when neither L1 nor Redis has a
//! document. Rows are never changed once written, so nothing cached from
//! them is ever invalidated.
use super::{now, Db};
use crate::error::Error;
use entity::persisted_document;
use sea_orm::{ActiveModelTrait, DbErr, EntityTrait, QuerySelect, Set};

/// A document to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDocument {
    /// The id clients will send; see [`persisted_document::Model::hash`].
    pub hash: String,
    /// The document's text.
    pub body: String,
    /// The operation's name, when the manifest gives one.
    pub name: Option<String>,
}

/// What registering a document set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Added {
    /// Documents stored by this call.
    pub added: usize,
    /// Documents that were already stored, with the same text.
    pub present: usize,
}

/// The text of the document registered under `hash`.
pub async fn body(db: &Db, hash: &str) -> Result<Option<String>, DbErr> {
    persisted_document::Entity::find_by_id(hash)
        .select_only()
        .column(persisted_document::Column::Body)
        .into_tuple::<String>()
        .one(db.conn())
        .await
}

/// Stores `documents` in one transaction: all of them or, on any error,
/// none. An id already stored with the same text is counted as present; with
/// another text it is a `CONFLICT`, as a registered id never changes meaning.
pub async fn add(db: &Db, documents: &[NewDocument]) -> Result<Added, Error> {
    let write = db.begin_write().await?;
    let mut added = Added::default();
    for document in documents {
        let existing = persisted_document::Entity::find_by_id(document.hash.as_str())
            .one(write.conn())
            .await?;
        match existing {
            Some(row) if row.body == document.body => added.present += 1,
            Some(_) => {
                return Err(Error::conflict(format!(
                    "the id {} is already registered for another document",
                    document.hash
                )))
            }
            None => {
                persisted_document::ActiveModel {
                    hash: Set(document.hash.clone()),
                    body: Set(document.body.clone()),
                    name: Set(document.name.clone()),
                    created_at: Set(now()),
                }
                .insert(write.conn())
                .await
                .map_err(|err| {
                    // Another `documents add` stored the same id meanwhile.
                    Error::from_write(
                        err,
                        Some(Error::conflict(format!(
                            "the id {} was registered concurrently; run the command again",
                            document.hash
                        ))),
                        None,
                    )
                })?;
                added.added += 1;
            }
        }
    }
    // Nothing cached can be stale: no replica caches an absent document.
    write.commit(None).await?;
    Ok(added)
}
