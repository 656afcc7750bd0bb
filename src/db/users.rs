//! Users: sign-up and sign-in lookups.
use super::{now, Db, Write};
use crate::domain::Email;
use crate::error::{Error, Result};
use entity::user::{self, Role};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

/// What the service shows and caches of a user: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
}

impl From<user::Model> for Profile {
    fn from(user: user::Model) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
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

pub async fn by_email(db: &Db, email: &Email) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db.conn())
        .await?)
}
