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

/// A `biblio serve` process on a port of its own, killed when dropped.
pub struct Server {
    pub process: std::process::Child,
    pub address: String,
    pub client: reqwest::Client,
}

impl Server {
    /// Runs `command` (a `biblio(...)`) as `serve` with `options`, on a free
    /// port and without demo data, and waits until `/readyz` answers 200.
    /// Panics if the process exits first.
    pub async fn start(mut command: Command, options: &[&str]) -> Self {
        let port = free_port();
        command
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--no-demo-data",
            ])
            .args(options);
        Self::start_exactly(command, port).await
    }

    /// Runs `command` as it is, arguments included (they must bind it to
    /// 127.0.0.1:`port`), and waits until `/readyz` answers 200.
    pub async fn start_exactly(mut command: Command, port: u16) -> Self {
        let process = command.spawn().expect("the biblio binary runs");
        let mut server = Self {
            process,
            address: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while server.ready().await.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "biblio serve never became ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        server
    }

    /// `/readyz`'s body when it answers 200, `None` while it does not.
    /// Panics if the process has exited.
    pub async fn ready(&mut self) -> Option<serde_json::Value> {
        if let Some(status) = self.process.try_wait().expect("the server's status") {
            panic!("biblio serve exited with {status}");
        }
        let response = self
            .client
            .get(format!("{}/readyz", self.address))
            .send()
            .await
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        response.json().await.ok()
    }

    /// POSTs an anonymous GraphQL query; returns the JSON answer.
    pub async fn query(&self, query: &str) -> serde_json::Value {
        self.client
            .post(format!("{}/graphql", self.address))
            .json(&serde_json::json!({ "query": query }))
            .send()
            .await
            .expect("the server answers")
            .json()
            .await
            .expect("a JSON answer")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Runs `command` to its end, capturing stdout and stderr; panics if it is
/// still running after 10 s (a `serve` that should have refused to start).
pub fn finish_within_10s(command: &mut Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the biblio binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().expect("the process's status").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("the output");
            panic!(
                "still running after 10 s: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("the output")
}

/// A temporary file a process writes its stdout or stderr to, read back
/// whole; removed when dropped. A file, not a pipe, so a chatty process
/// never blocks on a full pipe the test is not reading.
pub struct Capture(std::path::PathBuf);

impl Capture {
    pub fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "biblio-{name}-{}.txt",
            uuid::Uuid::now_v7().simple()
        )))
    }

    /// A handle for `Command::stdout` or `Command::stderr`.
    pub fn stdio(&self) -> Stdio {
        Stdio::from(std::fs::File::create(&self.0).expect("a capture file"))
    }

    /// Everything written so far.
    pub fn read(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }

    /// Waits up to 10 s until `found` holds for what was written; returns it.
    pub async fn wait_for(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = self.read();
            if found(&text) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never written: {what}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Process `pid`'s resident size now and at its peak so far, in KiB, from
/// /proc/PID/status (`VmRSS`, `VmHWM`): what a memory bound is asserted on.
pub fn resident_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("/proc/{pid}/status: {err}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}
