//! What stops the service from starting, or a command from running, said as
//! what to fix: the database that could not be opened and why (a SQLite file
//! in a missing or unwritable directory; a PostgreSQL server that is not
//! there, has no such database or refuses the user), the listen address that
//! is taken. Drivers' own errors say what failed ("unable to open database
//! file", "pool timed out") but not where or why; these checks find out, and
//! name the flag to change. URLs are shown with their password masked.
use crate::db::Db;
use crate::redact;
use sea_orm::sqlx;
use std::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a PostgreSQL server has to accept a connection at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A reason not to start, worded for the operator.
#[derive(Debug)]
pub struct Problem(String);

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Problem {}

/// Connects to the database at `url` with the default pool size, or says
/// why it cannot.
pub async fn open_database(url: &str) -> Result<Db, Problem> {
    open_database_with_pool(url, None).await
}

/// As [`open_database`], with at most `max_connections` in the pool.
///
/// A PostgreSQL server is first reached with one plain connection, which
/// fails at once with the server's reason; the pool would retry until its
/// timeout and report only that it timed out.
pub async fn open_database_with_pool(
    url: &str,
    max_connections: Option<u32>,
) -> Result<Db, Problem> {
    if !url.starts_with("sqlite:") && !is_postgres(url) {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        return Err(Problem(format!(
            "--database-url / DATABASE_URL must be sqlite://FILE?mode=rwc or \
             postgres://USER@HOST/DATABASE, not {:?}",
            redact::url(scheme)
        )));
    }
    if is_postgres(url) {
        reach_postgres(url).await?;
    }
    match Db::connect_with_pool(url, max_connections).await {
        Ok(db) => Ok(db),
        Err(err) if url.starts_with("sqlite:") => Err(sqlite_problem(url, &err)),
        Err(err) => Err(Problem(format!(
            "cannot open the database {}: {err}",
            redact::url(url)
        ))),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// One connection to the PostgreSQL server of `url`, closed at once.
async fn reach_postgres(url: &str) -> Result<(), Problem> {
    use sqlx::postgres::{PgConnectOptions, PgConnection};
    use sqlx::Connection;
    use std::str::FromStr;
    let options = PgConnectOptions::from_str(url).map_err(|err| {
        Problem(format!(
            "--database-url {} is not a PostgreSQL URL this service can read: {err}",
            redact::url(url)
        ))
    })?;
    let server = Postgres {
        host: options.get_host().to_owned(),
        port: options.get_port(),
        user: options.get_username().to_owned(),
        database: options
            .get_database()
            .unwrap_or(options.get_username())
            .to_owned(),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(server.problem(&err)),
        Err(_) => Err(Problem(format!(
            "PostgreSQL at {} did not answer within {} s: check that the host is reachable \
             from here (a firewall, a wrong address) and the port is PostgreSQL's \
             (--database-url / DATABASE_URL)",
            server.address(),
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// The PostgreSQL server and database a URL names, for messages.
struct Postgres {
    host: String,
    port: u16,
    user: String,
    database: String,
}

impl Postgres {
    fn address(&self) -> String {
        if self.host.starts_with('/') {
            format!("the socket in {} (port {})", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// What to fix, from the error of a first connection.
    fn problem(&self, err: &sqlx::Error) -> Problem {
        let address = self.address();
        let flag = "--database-url / DATABASE_URL";
        let message = match err {
            sqlx::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => format!(
                "cannot connect to PostgreSQL at {address}: connection refused. Is the server \
                 running, and listening on that address and port? ({flag})"
            ),
            sqlx::Error::Io(io) if io.to_string().contains("lookup address") => format!(
                "cannot connect to PostgreSQL at {address}: the host name {:?} does not \
                 resolve ({flag})",
                self.host
            ),
            sqlx::Error::Io(io) => {
                format!("cannot connect to PostgreSQL at {address}: {io} ({flag})")
            }
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // invalid_catalog_name
                Some("3D000") => format!(
                    "PostgreSQL at {address} has no database {:?}: create it (createdb -h {} \
                     -p {} -U {} {}) or name another in {flag}",
                    self.database, self.host, self.port, self.user, self.database
                ),
                // invalid_authorization_specification, invalid_password
                Some(code) if code.starts_with("28") => format!(
                    "PostgreSQL at {address} refused user {:?}: {}. Check the user name and \
                     password in {flag}",
                    self.user,
                    db.message()
                ),
                _ => format!(
                    "PostgreSQL at {address} refused the connection: {}",
                    db.message()
                ),
            },
            sqlx::Error::Tls(tls) => format!(
                "TLS with PostgreSQL at {address} failed: {tls} (sslmode and the server's \
                 certificate, in {flag})"
            ),
            other => format!("cannot connect to PostgreSQL at {address}: {other}"),
        };
        Problem(message)
    }
}

/// Why the SQLite database of `url` could not be opened: the file's
/// directory is missing, is not a directory or is not writable, or the file
/// itself cannot be written.
fn sqlite_problem(url: &str, err: &sea_orm::DbErr) -> Problem {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let Ok(options) = SqliteConnectOptions::from_str(url) else {
        return Problem(format!(
            "--database-url {} is not a SQLite URL this service can read: {err}",
            redact::url(url)
        ));
    };
    let path = absolute(options.get_filename());
    let reason = sqlite_reason(&path, url.contains("mode=rwc"));
    let flag = "(--database-url / DATABASE_URL)";
    Problem(match reason {
        Some(reason) => format!(
            "cannot open the SQLite database {}: {reason} {flag}",
            path.display()
        ),
        None => format!(
            "cannot open the SQLite database {}: {err} {flag}",
            path.display()
        ),
    })
}

/// `path` made absolute against the working directory, so the message says
/// where the file was looked for.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    std::env::current_dir()
        .map(|dir| dir.join(path))
        .unwrap_or_else(|_| path.to_owned())
}

/// What is wrong with the place of a SQLite file, if anything can be found.
fn sqlite_reason(path: &Path, create: bool) -> Option<String> {
    let directory = path.parent().filter(|dir| !dir.as_os_str().is_empty())?;
    if directory.is_file() {
        return Some(format!(
            "{} is a file, not a directory",
            directory.display()
        ));
    }
    if !directory.exists() {
        return Some(format!(
            "the directory {} does not exist; create it (mkdir -p {}) or choose another file",
            directory.display(),
            directory.display()
        ));
    }
    if path.is_dir() {
        return Some("that is a directory, not a file".into());
    }
    if path.exists() {
        if let Err(err) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            return Some(format!("the file cannot be opened for writing ({err})"));
        }
    } else if !create {
        return Some("the file does not exist; add ?mode=rwc to the URL to create it".into());
    }
    // SQLite writes the file and, in WAL mode, two more beside it.
    let probe = directory.join(format!(".biblio-write-test-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(err) => Some(format!(
            "the directory {} is not writable ({err})",
            directory.display()
        )),
    }
}

/// Binds the listener on `address`, or says why it cannot.
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, Problem> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|err| bind_problem(address, &err))
}

fn bind_problem(address: SocketAddr, err: &std::io::Error) -> Problem {
    let fix = "choose another with --bind or BIBLIO_BIND";
    Problem(match err.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {address}: the address is already in use (another biblio, or \
             another program, listens there); stop it or {fix}"
        ),
        ErrorKind::PermissionDenied => format!(
            "cannot listen on {address}: permission denied (ports below 1024 need privileges); \
             {fix}"
        ),
        ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {address}: no network interface of this machine has that address \
             (0.0.0.0 listens on every interface, 127.0.0.1 on this machine only); {fix}"
        ),
        _ => format!("cannot listen on {address}: {err}; {fix}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_named_with_the_command_that_creates_it() {
        let dir = std::env::temp_dir().join(format!("biblio-missing-{}", uuid::Uuid::now_v7()));
        let reason = sqlite_reason(&dir.join("biblio.db"), true).unwrap();
        assert!(reason.contains("does not exist"), "{reason}");
        assert!(
            reason.contains(&format!("mkdir -p {}", dir.display())),
            "{reason}"
        );
    }

    #[test]
    fn a_file_where_a_directory_should_be_is_named() {
        let file = std::env::temp_dir().join(format!("biblio-file-{}", uuid::Uuid::now_v7()));
        std::fs::write(&file, b"").unwrap();
        let reason = sqlite_reason(&file.join("biblio.db"), true).unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(reason.contains("is a file, not a directory"), "{reason}");
    }

    #[test]
    fn a_writable_directory_has_nothing_to_fix() {
        let path = std::env::temp_dir().join(format!("biblio-ok-{}.db", uuid::Uuid::now_v7()));
        assert_eq!(sqlite_reason(&path, true), None);
        assert!(sqlite_reason(&path, false).unwrap().contains("?mode=rwc"));
    }

    #[test]
    fn each_bind_failure_names_the_address_and_the_flag() {
        let address: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for kind in [
            ErrorKind::AddrInUse,
            ErrorKind::PermissionDenied,
            ErrorKind::AddrNotAvailable,
        ] {
            let problem = bind_problem(address, &std::io::Error::from(kind)).to_string();
            assert!(problem.contains("127.0.0.1:8080"), "{problem}");
            assert!(problem.contains("--bind"), "{problem}");
        }
    }
}
