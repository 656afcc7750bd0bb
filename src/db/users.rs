//! Users: sign-up and sign-in lookups, and the operator's changes (role,
//! password, removal).
use super::{now, Db, Write};
use crate::domain::Email;
use crate::error::{Error, Result};
use entity::borrow_record;
use entity::user::{self, Role};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect, Set,
};
use std::collections::HashMap;
use uuid::Uuid;

/// What the service shows and caches of a user: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    /// The generation a token must carry to be accepted: cached with the
    /// profile, so checking a token on a warm request costs no SQL, and
    /// evicted with it by every change that moves it.
    pub token_generation: i64,
}

impl From<user::Model> for Profile {
    fn from(user: user::Model) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
            token_generation: user.token_generation,
        }
    }
}

/// Inserts a user whose password is already hashed; a taken e-mail is CONFLICT.
pub async fn create(
    write: &Write,
    email: &Email,
    name: String,
    password_hash: String,
    role: Role,
) -> Result<user::Model> {
    let now = now();
    user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.as_str().to_owned()),
        name: Set(name),
        password_hash: Set(password_hash),
        role: Set(role),
        token_generation: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(write.conn())
    .await
    .map_err(|err| {
        Error::from_write(
            err,
            Some(Error::conflict("a user with this email already exists")),
            None,
        )
    })
}

/// The profiles of the users with these ids, for the cache's loads.
pub async fn profiles(db: &Db, ids: Vec<Uuid>) -> Result<HashMap<Uuid, Profile>> {
    Ok(super::by_ids::<user::Entity>(db, ids)
        .await?
        .into_iter()
        .map(|(id, user)| (id, Profile::from(user)))
        .collect())
}

pub async fn by_email(db: &Db, email: &Email) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db.conn())
        .await?)
}

/// Sets the user's role and password hash, when given, and moves their
/// token generation, so every token issued before is refused; NOT_FOUND
/// when no user has this id.
pub async fn update(
    write: &Write,
    id: Uuid,
    role: Option<Role>,
    password_hash: Option<String>,
) -> Result<()> {
    let mut update = user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(now()))
        .col_expr(
            user::Column::TokenGeneration,
            Expr::col(user::Column::TokenGeneration).add(1),
        )
        .filter(user::Column::Id.eq(id));
    if let Some(role) = role {
        update = update.col_expr(user::Column::Role, Expr::value(role));
    }
    if let Some(hash) = password_hash {
        update = update.col_expr(user::Column::PasswordHash, Expr::value(hash));
    }
    match update.exec(write.conn()).await?.rows_affected {
        0 => Err(Error::not_found("no such user")),
        _ => Ok(()),
    }
}

/// Deletes the user and their returned loans; returns the ids of those
/// loans. CONFLICT while a loan is still out: the copy is in someone's
/// hands, and deleting its record would lose track of it.
pub async fn delete(write: &Write, id: Uuid) -> Result<Vec<Uuid>> {
    let txn = write.conn();
    // Locks the user's row first (see the module docs of `db`), so no loan
    // can start between the count and the delete.
    let locked = user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(now()))
        .filter(user::Column::Id.eq(id))
        .exec(txn)
        .await?;
    if locked.rows_affected == 0 {
        return Err(Error::not_found("no such user"));
    }
    let out = borrow_record::Entity::find()
        .filter(borrow_record::Column::UserId.eq(id))
        .filter(borrow_record::Column::ReturnedAt.is_null())
        .count(txn)
        .await?;
    if out > 0 {
        return Err(Error::conflict(format!(
            "the user has {out} loan{} not returned yet",
            if out == 1 { "" } else { "s" }
        )));
    }
    let returned: Vec<Uuid> = borrow_record::Entity::find()
        .select_only()
        .column(borrow_record::Column::Id)
        .filter(borrow_record::Column::UserId.eq(id))
        .into_tuple()
        .all(txn)
        .await?;
    borrow_record::Entity::delete_many()
        .filter(borrow_record::Column::UserId.eq(id))
        .exec(txn)
        .await?;
    user::Entity::delete_by_id(id)
        .exec(txn)
        .await
        .map_err(|err| {
            Error::from_write(
                err,
                None,
                Some(Error::conflict("the user started a loan meanwhile")),
            )
        })?;
    Ok(returned)
}
