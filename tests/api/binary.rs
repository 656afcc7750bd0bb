//! Running the real `biblio` binary, for what only a process shows: its exit
//! status, what it writes to stdout and stderr, and how it copes when they
//! are closed.
use biblio::db::Db;
use std::process::{Command, Stdio};

/// `biblio` on `database_url`, with logging at its default level.
pub fn biblio(database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_biblio"));
    command
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    command
}

/// The write end of a pipe whose read end is already closed, as `biblio ... |
/// head -1` leaves stdout once `head` has exited: every write fails with
/// EPIPE. (The read end belongs to a `true` that has exited: std has no
/// portable pipe before Rust 1.87.)
pub fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("`true` runs");
    let writer = reader.stdin.take().expect("a pipe to `true`");
    reader.wait().expect("`true` exits");
    Stdio::from(writer)
}

/// A port free at the time of asking, for a `biblio serve` the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// How many migrations `seaql_migrations` records as applied (0 when the
/// table does not exist).
pub async fn applied_migrations(database_url: &str) -> usize {
    use migration::MigratorTrait;
    let db = Db::connect(database_url).await.expect("the database opens");
    let manager = migration::SchemaManager::new(db.conn());
    if !manager
        .has_table("seaql_migrations")
        .await
        .expect("the catalogue is readable")
    {
        return 0;
    }
    migration::Migrator::get_applied_migrations(db.conn())
        .await
        .expect("seaql_migrations is readable")
        .len()
}

/// Whether `table` exists.
pub async fn has_table(database_url: &str, table: &str) -> bool {
    let db = Db::connect(database_url).await.expect("the database opens");
    migration::SchemaManager::new(db.conn())
        .has_table(table)
        .await
        .expect("the catalogue is readable")
}

/// Every migration the binary knows.
pub fn all_migrations() -> usize {
    use migration::MigratorTrait;
    migration::Migrator::migrations().len()
}
