//! The GraphQL layer: the schema's types and resolvers. Resolvers validate
//! their arguments into domain values, read entities through the request's
//! [`Scope`] and its loaders, pages and aggregates through the cache, and
//! write through `db` and [`crate::cache::Cache::commit`].
mod execute;
mod limits;
pub mod loaders;
mod mutation;
mod operation;
mod order;
pub mod persisted;
pub(crate) mod query;
mod schema;
mod scope;
mod types;

pub use execute::{execute, Documents};
pub use limits::{Limits, NESTING_CEILING};
pub use operation::{selected_named_operation, selected_operation};
pub use schema::{build_schema, sdl, BiblioSchema};
pub use scope::{Scope, Services};
pub use types::MAX_NAME_CHARS;

use crate::auth::Viewer;
use crate::db::users::Profile;
use crate::error::{Error, Result};
use async_graphql::Context;
use entity::user::Role;
use std::sync::Arc;

/// The process-wide services a resolver needs.
pub(crate) fn services<'a>(ctx: &Context<'a>) -> Result<&'a Services> {
    Ok(scope(ctx)?.services())
}

/// The current request's viewer and loaders.
pub(crate) fn scope<'a>(ctx: &Context<'a>) -> Result<&'a Scope> {
    Ok(ctx.data::<Scope>()?)
}

/// The signed-in user, or UNAUTHENTICATED.
pub(crate) async fn current_user(ctx: &Context<'_>) -> Result<Arc<Profile>> {
    let scope = scope(ctx)?;
    let id = scope.viewer().require_user()?;
    scope
        .user(id)
        .await?
        .ok_or_else(|| Error::unauthenticated("the signed-in user no longer exists"))
}

/// The signed-in user if they are a librarian; FORBIDDEN for members.
pub(crate) async fn require_librarian(ctx: &Context<'_>) -> Result<Arc<Profile>> {
    let user = current_user(ctx).await?;
    if user.role != Role::Librarian {
        return Err(Error::forbidden("only librarians may change the catalogue"));
    }
    Ok(user)
}

pub(crate) fn viewer(ctx: &Context<'_>) -> Result<Viewer> {
    Ok(scope(ctx)?.viewer())
}
