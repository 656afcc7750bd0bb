//! The one error type of the service. Each variant is what a client sees:
//! its `extensions.code` and a message written for them. Internal causes are
//! logged where they are converted and never sent.
use async_graphql::ErrorExtensions;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error, for start-up and command-line paths that only report it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a rule of the API (`BAD_USER_INPUT`).
    #[error("{0}")]
    BadUserInput(String),
    /// A mutation names something that does not exist (`NOT_FOUND`).
    #[error("{0}")]
    NotFound(String),
    /// Sign-in is needed, or the credentials or token are wrong (`UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but not allowed to do this (`FORBIDDEN`).
    #[error("{0}")]
    Forbidden(String),
    /// The write clashes with the current state: a duplicate, a book with no
    /// free copy, an author who still has books (`CONFLICT`).
    #[error("{0}")]
    Conflict(String),
    /// Refused for now, by a rate limit (`TOO_MANY_REQUESTS`, with
    /// `extensions.retryAfter`: whole seconds until the client may retry).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// Anything else; the client sees only "internal error" (`INTERNAL`).
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadUserInput(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::Unauthenticated(message.into())
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after: u64) -> Self {
        Self::TooManyRequests {
            message: message.into(),
            retry_after,
        }
    }

    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(cause.into())
    }

    /// The `extensions.code` a client sees.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Conflict(_) => "CONFLICT",
            Self::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// The one place a failed database write becomes a client error: a
    /// unique violation becomes `on_unique` and a foreign-key violation
    /// `on_foreign_key` (each when given); anything else is `INTERNAL`. For
    /// writes where a concurrent write can beat the check made before them,
    /// so the constraint has the last word.
    pub fn from_write(
        err: sea_orm::DbErr,
        on_unique: Option<Error>,
        on_foreign_key: Option<Error>,
    ) -> Self {
        match (violation(&err), on_unique, on_foreign_key) {
            (Some(Violation::Unique), Some(client), _) => client,
            (Some(Violation::ForeignKey), _, Some(client)) => client,
            _ => Self::from(err),
        }
    }
}

/// The constraint a failed write violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    Unique,
    ForeignKey,
}

/// Which constraint `err` violated, if any. sea-orm recognizes most; SQLite
/// reports a delete of a still-referenced row as code 1811
/// (SQLITE_CONSTRAINT_TRIGGER), which it does not.
pub fn violation(err: &sea_orm::DbErr) -> Option<Violation> {
    match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Some(Violation::Unique),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => Some(Violation::ForeignKey),
        _ => matches!(
            err,
            sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db)))
                if db.code().as_deref() == Some("1811")
        )
        .then_some(Violation::ForeignKey),
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::internal(err)
    }
}

impl From<sea_orm::TransactionError<Error>> for Error {
    fn from(err: sea_orm::TransactionError<Error>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(err) => err.into(),
            sea_orm::TransactionError::Transaction(err) => err,
        }
    }
}

/// Errors of async-graphql's own machinery reached from a resolver (a missing
/// context value, say) are bugs, not client mistakes.
impl From<async_graphql::Error> for Error {
    fn from(err: async_graphql::Error) -> Self {
        Self::internal(err.message)
    }
}

impl From<Error> for async_graphql::Error {
    fn from(err: Error) -> Self {
        if let Error::Internal(cause) = &err {
            tracing::error!(error = %cause, source = ?cause.source(), "internal error");
        }
        let code = err.code();
        let retry_after = match &err {
            Error::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        async_graphql::Error::new(err.to_string()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(seconds) = retry_after {
                ext.set("retryAfter", seconds);
            }
        })
    }
}

/// DataLoader and cache errors must be `Clone`: this is an [`Error`] that
/// can be shared by every reader of one load, and turns back into the same
/// error, so a client error inside a cached load stays a client error.
#[derive(Debug, Clone)]
pub struct LoadError(std::sync::Arc<Error>);

impl LoadError {
    /// An internal error with this message.
    pub fn message(message: &str) -> Self {
        Self::from(Error::internal(message))
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Error::Internal(cause) => cause.fmt(f),
            client => client.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<Error> for LoadError {
    fn from(err: Error) -> Self {
        Self(std::sync::Arc::new(err))
    }
}

impl From<sea_orm::DbErr> for LoadError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::from(Error::from(err))
    }
}

impl From<LoadError> for Error {
    fn from(err: LoadError) -> Self {
        match std::sync::Arc::try_unwrap(err.0) {
            Ok(err) => err,
            Err(shared) => match &*shared {
                Error::BadUserInput(message) => Error::BadUserInput(message.clone()),
                Error::NotFound(message) => Error::NotFound(message.clone()),
                Error::Unauthenticated(message) => Error::Unauthenticated(message.clone()),
                Error::Forbidden(message) => Error::Forbidden(message.clone()),
                Error::Conflict(message) => Error::Conflict(message.clone()),
                Error::TooManyRequests {
                    message,
                    retry_after,
                } => Error::too_many_requests(message.clone(), *retry_after),
                Error::Internal(_) => Error::Internal(Box::new(LoadError(shared))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_load_error_keeps_its_code() {
        let shared = LoadError::from(Error::bad_input("page must be at least 1"));
        let copy = shared.clone();
        assert_eq!(Error::from(shared).code(), "BAD_USER_INPUT");
        assert_eq!(Error::from(copy).code(), "BAD_USER_INPUT");
        assert_eq!(Error::from(LoadError::message("boom")).code(), "INTERNAL");
    }
}
