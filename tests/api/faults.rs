//! The processes the history checker (`history.rs`) runs and breaks: a
//! `redis-server` it can pause, stop and restart, replicas that are separate
//! processes of the real `biblio` binary (so one can be SIGKILLed), and the
//! database they share (the suite's, or a PostgreSQL primary with a
//! streaming standby they read from). Everything is killed and removed on
//! drop, also when a test panics.
use crate::cluster::Cluster as RedisCluster;
use crate::helpers::TestDatabase;
use crate::read_replicas::Cluster as Postgres;
use crate::sentinel::SentinelGroup;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Sends a signal (`STOP`, `CONT`) with kill(1): the crate forbids unsafe
/// code, so no libc. Whether it was delivered.
fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|err| panic!("cannot run kill(1) ({err}); it is in procps"))
        .success()
}

/// A `redis-server` of the checker's own (`TestRedis` keeps its pid private,
/// and the checker needs it for SIGSTOP/SIGCONT).
pub struct Redis {
    pub port: u16,
    process: Option<Child>,
    /// With a directory, Redis keeps an append-only file there, fsynced on
    /// every write, and reloads it when restarted.
    dir: Option<PathBuf>,
    paused: bool,
}

impl Redis {
    /// `persistent`: restarts reload the data (a partition, not a crash).
    pub fn start(persistent: bool) -> Self {
        let dir = persistent.then(|| {
            let dir = std::env::temp_dir().join(format!("biblio-history-redis-{}", Uuid::now_v7()));
            std::fs::create_dir_all(&dir).expect("a temp dir");
            dir
        });
        let mut redis = Self {
            port: free_port(),
            process: None,
            dir,
            paused: false,
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.process.as_ref().expect("redis-server is running").id()
    }

    /// Starts the server (again) on the same port, empty unless persistent,
    /// and waits until it answers PING (not LOADING).
    pub fn restart(&mut self) {
        assert!(self.process.is_none(), "redis-server is already running");
        let mut args: Vec<String> = ["--port", &self.port.to_string(), "--bind", "127.0.0.1"]
            .map(String::from)
            .to_vec();
        args.extend(["--save", ""].map(String::from));
        match &self.dir {
            Some(dir) => args.extend(
                ["--appendonly", "yes", "--appendfsync", "always", "--dir"]
                    .map(String::from)
                    .into_iter()
                    .chain([dir.display().to_string()]),
            ),
            None => args.extend(["--appendonly", "no"].map(String::from)),
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}). Install Redis (Debian: apt-get install \
                     redis-server; macOS: brew install redis) so that redis-server is on PATH"
                )
            });
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(reply) = resp(self.port, &["PING"]) {
                if reply == "+PONG" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// SIGKILL: no goodbye to clients; with `appendfsync always` every
    /// acknowledged write is on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            if self.paused {
                // SIGKILL ends a stopped process too; this is for tidiness.
                let _ = signal(child.id(), "CONT");
                self.paused = false;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the process freezes with its sockets open, so clients see
    /// neither a close nor a reset, only silence.
    pub fn pause(&mut self) {
        assert!(signal(self.pid(), "STOP"), "kill -STOP redis-server failed");
        self.paused = true;
    }

    pub fn resume(&mut self) {
        assert!(signal(self.pid(), "CONT"), "kill -CONT redis-server failed");
        self.paused = false;
    }

    /// A command that must succeed; its reply's first line.
    pub async fn command(&self, args: &[&str]) -> String {
        let reply = self.reply(args).await;
        assert!(!reply.starts_with('-'), "redis refused: {reply}");
        reply
    }

    /// A command's reply's first line, an error (`-READONLY …`) included.
    pub async fn reply(&self, args: &[&str]) -> String {
        let port = self.port;
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let reply = tokio::task::spawn_blocking(move || {
            resp(port, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .expect("the command task")
        .unwrap_or_else(|err| panic!("redis on port {port}: {err}"));
        reply
    }
}

/// One command in RESP over a fresh connection (no redis-cli needed); the
/// first line of the reply (`+OK`, `:1`, `-ERR …`).
fn resp(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes())?;
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        reply.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One `biblio serve` process.
pub struct Replica {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    process: Child,
    log: PathBuf,
}

impl Replica {
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.address)
    }

    /// SIGKILL: no shutdown, no goodbye to Redis, whatever it kept in memory
    /// is gone.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }

    /// CPU time the process has used so far (user and system), from
    /// /proc: the cost of the requests it served, whatever else runs.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.process.id()))
            .unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of stat(5), 11 and 12 here;
        // the kernel counts them in USER_HZ, 100 on Linux.
        Duration::from_millis((ticks(11) + ticks(12)) * 10)
    }

    /// Its whole log (standard error).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of its log (standard error).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `Command` for the biblio binary with no configuration inherited from
/// the environment: every setting is a flag or the default.
fn biblio() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_biblio"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("BIBLIO_") || name == "DATABASE_URL" || name == "REDIS_URL" {
            command.env_remove(name);
        }
    }
    command
}

/// The Redis deployment the replicas share: one server (which the faults
/// pause, fill and restart), a Sentinel group or a Redis Cluster (both from
/// their own tests' starters).
pub enum Deployment {
    Single(Redis),
    Sentinel(SentinelGroup),
    Cluster(RedisCluster),
}

impl Deployment {
    /// The `--redis-url` the replicas are given.
    pub fn url(&self) -> String {
        match self {
            Self::Single(redis) => redis.url(),
            Self::Sentinel(group) => group.url(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }
}

impl From<Redis> for Deployment {
    fn from(redis: Redis) -> Self {
        Self::Single(redis)
    }
}

/// The database the replicas share.
pub enum Database {
    /// A fresh database on the suite's server (`BIBLIO_TEST_DATABASE`).
    Fresh,
    /// A PostgreSQL primary and a streaming standby of its own, which every
    /// replica reads from (`--database-read-url`).
    Replicated,
}

/// Three (or n) replicas of the real binary on one database and one Redis
/// deployment. Fields drop in order: replicas first, then Redis, then the
/// database.
pub struct Cluster {
    /// A slot is `None` once its replica was killed.
    pub replicas: Vec<Option<Replica>>,
    pub deployment: Deployment,
    pub database_url: String,
    /// Each replica's `--database-read-url`s.
    read_urls: Vec<String>,
    /// The replicas' `--cache-prefix`: its hash tag names the slot of the
    /// deployment's counters on a Redis Cluster.
    pub prefix: String,
    logs: PathBuf,
    /// With [`Database::Fresh`]: kept until the end, dropping it removes it.
    _database: Option<TestDatabase>,
    /// With [`Database::Replicated`]: the primary and its standby.
    postgres: Option<Postgres>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for replica in self.replicas.iter_mut().flatten() {
            replica.kill();
        }
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

impl Cluster {
    pub async fn start(replicas: usize, deployment: impl Into<Deployment>) -> Self {
        Self::start_on(replicas, deployment, Database::Fresh).await
    }

    /// [`Cluster::start`] on `database`.
    pub async fn start_on(
        replicas: usize,
        deployment: impl Into<Deployment>,
        database: Database,
    ) -> Self {
        let (fresh, postgres, database_url, read_urls) = match database {
            Database::Fresh => {
                let (database, url) = TestDatabase::create().await;
                (Some(database), None, url, Vec::new())
            }
            Database::Replicated => {
                let postgres = Postgres::with_database().await;
                let (url, read_url) = (postgres.service_url(), postgres.service_read_url());
                (None, Some(postgres), url, vec![read_url])
            }
        };
        let logs = std::env::temp_dir().join(format!("biblio-history-logs-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&logs).expect("a temp dir");
        let mut cluster = Self {
            replicas: Vec::new(),
            deployment: deployment.into(),
            database_url,
            read_urls,
            prefix: format!("history{}", Uuid::now_v7().simple()),
            logs,
            _database: fresh,
            postgres,
        };
        // One at a time: the first applies the migrations.
        for slot in 0..replicas {
            cluster.replicas.push(None);
            cluster.respawn(slot).await;
        }
        cluster
    }

    /// Starts a replica in `slot` (again, on a new port) and waits until its
    /// cache is connected to Redis and subscribed.
    pub async fn respawn(&mut self, slot: usize) {
        assert!(self.replicas[slot].is_none(), "slot {slot} is taken");
        for attempt in 0.. {
            let port = free_port();
            let log = self.logs.join(format!("replica-{slot}-{port}.log"));
            let process = biblio()
                .args(["serve", "--database-url", &self.database_url])
                // Two scenarios at a time, each of four processes, share
                // one PostgreSQL of 100 connections.
                .args(["--database-max-connections", "6"])
                .args(
                    self.read_urls
                        .iter()
                        .flat_map(|url| ["--database-read-url", url.as_str()]),
                )
                .args(["--redis-url", &self.deployment.url()])
                .args(["--bind", &format!("127.0.0.1:{port}")])
                .args(["--cache-prefix", &self.prefix, "--no-demo-data"])
                .env(
                    "RUST_LOG",
                    std::env::var("BIBLIO_HISTORY_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("a log file"))
                .spawn()
                .expect("the biblio binary starts");
            let mut replica = Replica {
                address: format!("http://127.0.0.1:{port}"),
                process,
                log,
            };
            match wait_until_ready(&mut replica).await {
                Ok(()) => {
                    self.replicas[slot] = Some(replica);
                    return;
                }
                // Someone else took the port between our probe and its bind.
                Err(log) if attempt < 2 && log.contains("in use") => continue,
                Err(log) => panic!("replica {slot} did not become ready:\n{log}"),
            }
        }
    }

    /// The single Redis server, for the faults that act on one.
    pub fn redis(&mut self) -> &mut Redis {
        match &mut self.deployment {
            Deployment::Single(redis) => redis,
            _ => panic!("this fault needs a single Redis server"),
        }
    }

    /// The Sentinel group, for the faults that act on one.
    pub fn sentinel(&mut self) -> &mut SentinelGroup {
        match &mut self.deployment {
            Deployment::Sentinel(group) => group,
            _ => panic!("this fault needs a Sentinel group"),
        }
    }

    /// The Redis Cluster, for the faults that act on one.
    pub fn redis_cluster(&mut self) -> &mut RedisCluster {
        match &mut self.deployment {
            Deployment::Cluster(cluster) => cluster,
            _ => panic!("this fault needs a Redis Cluster"),
        }
    }

    /// The PostgreSQL primary and standby, for the faults that act on them.
    pub fn postgres(&self) -> &Postgres {
        self.postgres
            .as_ref()
            .expect("this fault needs a database with a standby")
    }

    pub fn replica(&self, slot: usize) -> &Replica {
        self.replicas[slot].as_ref().expect("a live replica")
    }

    /// Adds a librarian with `biblio user add` (the operator's way) and signs
    /// in on the first replica; returns the token.
    pub async fn librarian(&self, client: &reqwest::Client) -> String {
        let email = format!("librarian-{}@biblio.test", Uuid::now_v7().simple());
        let mut add = biblio()
            .args(["user", "add", "--database-url", &self.database_url])
            .args([
                "--email",
                &email,
                "--name",
                "Librarian",
                "--role",
                "librarian",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("biblio user add starts");
        add.stdin
            .take()
            .expect("its stdin")
            .write_all(b"librarian-password\n")
            .expect("the password is written");
        let output = tokio::task::spawn_blocking(move || add.wait_with_output())
            .await
            .expect("the task")
            .expect("biblio user add finishes");
        assert!(
            output.status.success(),
            "biblio user add failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let data = graphql(
            client,
            &self.replica(0).graphql_url(),
            None,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            json!({ "e": email, "p": "librarian-password" }),
        )
        .await;
        data["login"]["token"].as_str().unwrap().to_owned()
    }

    /// Copies every replica's log (also those killed) into `dir`.
    pub fn copy_logs(&self, dir: &std::path::Path, prefix: &str) {
        for entry in std::fs::read_dir(&self.logs)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let _ = std::fs::copy(
                entry.path(),
                dir.join(format!("{prefix}-{}", name.to_string_lossy())),
            );
        }
    }

    /// The last lines of every replica's log, for a failure message.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (slot, replica) in self.replicas.iter().enumerate() {
            if let Some(replica) = replica {
                out.push_str(&format!(
                    "--- replica {slot} ({}) log tail:\n{}\n",
                    replica.address,
                    replica.log_tail(lines)
                ));
            }
        }
        out
    }
}

async fn wait_until_ready(replica: &mut Replica) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("a client");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = replica.process.try_wait() {
            return Err(format!(
                "exited with {status}; log:\n{}",
                replica.log_tail(30)
            ));
        }
        if let Ok(response) = client
            .get(format!("{}/readyz", replica.address))
            .send()
            .await
        {
            if let Ok(body) = response.json::<Value>().await {
                let cache = &body["checks"]["cache"];
                if cache["status"] == "up" && cache["subscriber"] == "connected" {
                    return Ok(());
                }
                last = body;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!(
        "not ready after 60 s (last /readyz: {last}); log:\n{}",
        replica.log_tail(30)
    ))
}

/// A GraphQL request that must succeed; its `data`.
pub async fn graphql(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the request is sent");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON body");
    assert!(
        status == 200 && body.get("errors").is_none(),
        "{status}: {body}"
    );
    body["data"].clone()
}
