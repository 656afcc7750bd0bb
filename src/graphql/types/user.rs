use super::id;
use crate::db::users::Profile;
use async_graphql::{Enum, Object, SimpleObject, ID};
use std::sync::Arc;

/// A member or librarian.
pub struct User(pub Arc<Profile>);

#[Object]
impl User {
    async fn id(&self) -> ID {
        id(self.0.id)
    }

    async fn email(&self) -> &str {
        &self.0.email
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn role(&self) -> Role {
        self.0.role.into()
    }
}

/// Members borrow books; librarians also manage the catalogue.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "entity::user::Role")]
pub enum Role {
    Member,
    Librarian,
}

/// The result of `register` and `login`.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub user: User,
}
