use crate::auth::throttle;
use crate::cache::Change;
use crate::db;
use crate::domain::{required_text, Email, Password};
use crate::error::{Error, Result};
use crate::graphql::scope;
use crate::graphql::types::{AuthPayload, RegisterInput, User, MAX_NAME_CHARS};
use async_graphql::{Context, Object};
use entity::user::Role;
use std::sync::Arc;

#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Creates a member account and signs it in.
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
    ) -> Result<Option<AuthPayload>> {
        let scope = scope(ctx)?;
        let services = scope.services();
        let email = Email::parse(&input.email)?;
        let name = required_text(&input.name, "name", MAX_NAME_CHARS)?;
        let password = Password::parse(&input.password)?;
        scope.claim_password_check()?;
        services.throttle.attempt(scope.client, None).await?;
        let hash = services.hashers.permit()?.hash(password).await?;
        let _share = scope.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let user = db::users::create(&write, &email, name, hash, Role::Member).await?;
        let change = Change::UserCreated { id: user.id };
        services.cache.commit(write, change).await?;
        Ok(Some(AuthPayload {
            token: services.tokens.issue(user.id),
            user: User(Arc::new(user.into())),
        }))
    }

    /// Signs in. A wrong password and an unknown e-mail get the same answer.
    /// TOO_MANY_REQUESTS (with `retryAfter`, in seconds) after too many
    /// failures for the e-mail or attempts from the client's address.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<Option<AuthPayload>> {
        let scope = scope(ctx)?;
        let services = scope.services();
        scope.claim_password_check()?;
        services
            .throttle
            .attempt(scope.client, Some(&email))
            .await?;
        let permit = services.hashers.permit()?;
        let refused = || Error::unauthenticated("invalid email or password");
        let user = match Email::parse(&email) {
            Ok(email) => {
                scope
                    .on_db(db::users::by_email(&services.db, &email))
                    .await?
            }
            Err(_) => None,
        };
        let hash = user.as_ref().map(|user| user.password_hash.clone());
        if !permit.verify(password, hash).await? {
            services.throttle.failed(&email).await;
            tracing::warn!(
                client = %throttle::logged_client(scope.client),
                email = %throttle::logged_email(&email),
                account = if user.is_some() { "exists" } else { "unknown" },
                "sign-in failed"
            );
            return Err(refused());
        }
        let user = user.ok_or_else(refused)?;
        Ok(Some(AuthPayload {
            token: services.tokens.issue(user.id),
            user: User(Arc::new(user.into())),
        }))
    }
}
