use crate::auth::throttle;
use crate::cache::Change;
use crate::db;
use crate::domain::{required_text, Email, Password};
use crate::error::{Error, Result};
use crate::graphql::types::{AuthPayload, RegisterInput, User, MAX_NAME_CHARS};
use crate::graphql::{scope, Scope};
use async_graphql::{Context, Object};
use entity::user::{self, Role};
use std::sync::Arc;

#[derive(Default)]
pub struct SignInMutation;

#[Object]
impl SignInMutation {
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
        // A registration reserves an attempt of the address, nothing to
        // give back.
        let _attempt = services.throttle.attempt(scope.client, None).await?;
        let hash = services.hashers.permit()?.hash(password).await?;
        let _share = scope.db_gate().enter().await;
        let write = services.db.begin_write().await?;
        let user = db::users::create(&write, &email, name, hash, Role::Member).await?;
        let change = Change::UserCreated { id: user.id };
        services.cache.commit(write, change).await?;
        Ok(Some(AuthPayload {
            token: services.tokens.issue(user.id, user.token_generation),
            user: User(Arc::new(user.into())),
        }))
    }

    /// Signs in. A wrong password and an unknown e-mail get the same answer.
    /// TOO_MANY_REQUESTS (with `retryAfter`, in seconds) after too many
    /// failures for the e-mail or attempts from the client's address, or
    /// while the server checks as many passwords as it may at once.
    async fn login(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> Result<Option<AuthPayload>> {
        let scope = scope(ctx)?;
        let services = scope.services();
        scope.claim_password_check()?;
        let reservation = services
            .throttle
            .attempt(scope.client, Some(&email))
            .await?;
        let user = match check_password(scope, &email, password).await {
            Ok(Ok(user)) => user,
            Ok(Err(user)) => {
                // The reservation stays: it was this failure.
                tracing::warn!(
                    client = %throttle::logged_client(scope.client),
                    email_hash = %throttle::email_hash(&email),
                    account = if user.is_some() { "exists" } else { "unknown" },
                    "sign-in failed"
                );
                return Err(Error::unauthenticated("invalid email or password"));
            }
            // No password was judged (busy, or the database failed).
            Err(err) => {
                services.throttle.refund(reservation).await;
                return Err(err);
            }
        };
        services.throttle.refund(reservation).await;
        Ok(Some(AuthPayload {
            token: services.tokens.issue(user.id, user.token_generation),
            user: User(Arc::new(user.into())),
        }))
    }
}

/// Judges `password` for `email`: `Ok(user)` when it is theirs,
/// `Err(user, if any)` when it is not (or nobody has the e-mail); an error
/// when it could not be judged.
async fn check_password(
    scope: &Scope,
    email: &str,
    password: String,
) -> Result<Result<user::Model, Option<user::Model>>> {
    let services = scope.services();
    let permit = services.hashers.permit()?;
    let user = match Email::parse(email) {
        Ok(email) => {
            scope
                .on_db(db::users::by_email(&services.db, &email))
                .await?
        }
        Err(_) => None,
    };
    let hash = user.as_ref().map(|user| user.password_hash.clone());
    Ok(match (permit.verify(password, hash).await?, user) {
        (true, Some(user)) => Ok(user),
        (_, user) => Err(user),
    })
}
