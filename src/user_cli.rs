//! The operator's commands on accounts (`biblio user ...`): add one, set a
//! role, reset a password, remove one. The last three sign the user out:
//! every token issued to them before is refused (see [`crate::auth`]).
//!
//! Each write commits with the record of its cache invalidation in the
//! outbox, as a mutation's does, so running replicas forget what they
//! cached of the user within the outbox delay, though this process never
//! talks to Redis. On a terminal, what the flags leave out is asked for (a
//! password twice, without echo); from a script, it comes from flags and
//! one line of standard input.
use crate::cache::Change;
use crate::db::{self, Db};
use crate::domain::{required_text, Email, Password};
use crate::error::{BoxError, Error};
use crate::graphql::MAX_NAME_CHARS;
use entity::user::{self, Role};
use std::io::{BufRead, IsTerminal, Write};

/// How many times a question is asked again after an answer that is refused.
const TRIES: usize = 3;

/// Where answers come from: a person at a terminal, or a script.
pub struct Console {
    interactive: bool,
}

impl Console {
    /// Interactive when standard input is a terminal.
    pub fn new() -> Self {
        Self {
            interactive: std::io::stdin().is_terminal(),
        }
    }

    /// Whether questions are asked.
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// `given`, or asked for on a terminal until `parse` accepts it; `flag`
    /// names what a script must pass instead.
    fn value<T>(
        &self,
        given: Option<String>,
        question: &str,
        flag: &str,
        parse: impl Fn(&str) -> Result<T, Error>,
    ) -> Result<T, BoxError> {
        if let Some(given) = given {
            return Ok(parse(&given)?);
        }
        if !self.interactive {
            return Err(format!("{flag} is required when standard input is not a terminal").into());
        }
        let mut last = None;
        for _ in 0..TRIES {
            let answer = ask(question)?;
            match parse(&answer) {
                Ok(value) => return Ok(value),
                Err(err) => {
                    tell(&format!("{err}"))?;
                    last = Some(err);
                }
            }
        }
        Err(last.map_or_else(|| "no answer".into(), |err| err.into()))
    }

    /// A new password: on a terminal asked twice without echo, otherwise
    /// the first line of standard input.
    fn new_password(&self) -> Result<Password, BoxError> {
        if !self.interactive {
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line)? == 0 {
                return Err("no password on standard input: pass it as one line \
                            (printf '%s\\n' \"$PASSWORD\" | biblio user ...)"
                    .into());
            }
            return Ok(Password::parse(line.trim_end_matches(['\r', '\n']))?);
        }
        for _ in 0..TRIES {
            let first = rpassword::prompt_password("Password (8 characters or more): ")?;
            if let Err(err) = Password::parse(&first) {
                tell(&format!("{err}"))?;
                continue;
            }
            let again = rpassword::prompt_password("The same password again: ")?;
            if first == again {
                return Ok(Password::parse(&first)?);
            }
            tell("the two passwords differ")?;
        }
        Err("no password set".into())
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints `question` on stderr (stdout is the command's result) and reads
/// one line of standard input.
fn ask(question: &str) -> Result<String, BoxError> {
    let mut stderr = std::io::stderr().lock();
    write!(stderr, "{question}")?;
    stderr.flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Err("standard input ended".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn tell(message: &str) -> Result<(), BoxError> {
    writeln!(std::io::stderr().lock(), "{message}")?;
    Ok(())
}

fn parse_role(answer: &str) -> Result<Role, Error> {
    match answer.trim().to_lowercase().as_str() {
        "" | "member" => Ok(Role::Member),
        "librarian" => Ok(Role::Librarian),
        other => Err(Error::bad_input(format!(
            "{other:?} is not a role: member or librarian"
        ))),
    }
}

/// What `user add` was given; anything missing is asked for.
pub struct NewAccount {
    pub email: Option<String>,
    pub name: Option<String>,
    pub role: Option<Role>,
}

/// Adds a user.
pub async fn add(db: &Db, console: &Console, account: NewAccount) -> Result<user::Model, BoxError> {
    let email = console.value(account.email, "E-mail: ", "--email", Email::parse)?;
    let name = console.value(account.name, "Name: ", "--name", |name| {
        required_text(name, "name", MAX_NAME_CHARS)
    })?;
    let role = match account.role {
        Some(role) => role,
        None if console.is_interactive() => console.value(
            None,
            "Role, member or librarian [member]: ",
            "--role",
            parse_role,
        )?,
        None => Role::Member,
    };
    let password = console.new_password()?;
    let hash = crate::auth::hash_password(password)
        .await
        .map_err(explain)?;
    let write = db.begin_write().await?;
    let user = db::users::create(&write, &email, name, hash, role)
        .await
        .map_err(explain)?;
    commit(write, Change::UserCreated { id: user.id }).await?;
    Ok(user)
}

/// Sets the role of the user with this e-mail, which signs them out (their
/// token generation moves); returns the user as it was. A role they
/// already have changes nothing.
pub async fn set_role(db: &Db, email: &str, role: Role) -> Result<user::Model, BoxError> {
    let user = find(db, email).await?;
    if user.role == role {
        return Ok(user);
    }
    let write = db.begin_write().await?;
    db::users::update(&write, user.id, Some(role), None)
        .await
        .map_err(explain)?;
    commit(write, Change::UserRoleChanged { id: user.id }).await?;
    Ok(user)
}

/// Sets a new password for the user with this e-mail, which signs them out
/// everywhere (their token generation moves).
pub async fn reset_password(
    db: &Db,
    console: &Console,
    email: &str,
) -> Result<user::Model, BoxError> {
    let user = find(db, email).await?;
    let password = console.new_password()?;
    let hash = crate::auth::hash_password(password)
        .await
        .map_err(explain)?;
    let write = db.begin_write().await?;
    db::users::update(&write, user.id, None, Some(hash))
        .await
        .map_err(explain)?;
    commit(write, Change::UserPasswordChanged { id: user.id }).await?;
    Ok(user)
}

/// Removes the user with this e-mail and their returned loans; returns the
/// user and how many loans went with them. Refused while a loan is out. Their
/// tokens are refused from then on: no user, no generation to match (a user
/// added again with the same e-mail gets a new id).
pub async fn remove(db: &Db, email: &str) -> Result<(user::Model, usize), BoxError> {
    let user = find(db, email).await?;
    let write = db.begin_write().await?;
    let loans = match db::users::delete(&write, user.id).await {
        Ok(loans) => loans,
        Err(Error::Conflict(reason)) => {
            return Err(format!(
                "{} was not removed: {reason}. Their loans must be returned first (a librarian \
                 can return them with the returnBook mutation); deleting the record of a copy \
                 still out would lose track of it",
                user.email
            )
            .into())
        }
        Err(err) => return Err(explain(err)),
    };
    let removed = loans.len();
    commit(
        write,
        Change::UserDeleted {
            id: user.id,
            borrows: loans,
        },
    )
    .await?;
    Ok((user, removed))
}

async fn find(db: &Db, email: &str) -> Result<user::Model, BoxError> {
    let email = Email::parse(email)?;
    db::users::by_email(db, &email)
        .await
        .map_err(explain)?
        .ok_or_else(|| format!("no user has the e-mail {}", email.as_str()).into())
}

/// Commits `write` with `change`'s invalidation in the outbox.
async fn commit(write: db::Write, change: Change) -> Result<(), BoxError> {
    let invalidation = change.invalidation();
    write.commit(Some(&invalidation.to_outbox())).await?;
    Ok(())
}

/// The service's error as the operator should read it: an internal one
/// shows its cause, which a client would never see.
fn explain(err: Error) -> BoxError {
    match err {
        Error::Internal(cause) => cause,
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_in_any_case_and_empty_means_member() {
        assert_eq!(parse_role("").unwrap(), Role::Member);
        assert_eq!(parse_role(" Librarian ").unwrap(), Role::Librarian);
        assert_eq!(parse_role("MEMBER").unwrap(), Role::Member);
        assert!(parse_role("admin").is_err());
    }
}
