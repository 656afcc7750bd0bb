use biblio::app::Application;
use biblio::cache::Mode;
use biblio::cli::ServeArgs;
use biblio::config::Config;
use biblio::db::Db;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The database a test owns, removed when the test ends.
pub enum TestDatabase {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A fresh database (SQLite file, or PostgreSQL database with
    /// `BIBLIO_TEST_DATABASE=postgres`) and its URL.
    pub async fn create() -> (Self, String) {
        let backend = std::env::var("BIBLIO_TEST_DATABASE").unwrap_or_else(|_| "sqlite".into());
        match backend.as_str() {
            "sqlite" => {
                let path = std::env::temp_dir().join(format!("biblio-test-{}.db", Uuid::now_v7()));
                let url = format!("sqlite://{}?mode=rwc", path.display());
                (Self::Sqlite(path), url)
            }
            "postgres" => {
                let admin_url = std::env::var("BIBLIO_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let name = format!("biblio_test_{}", Uuid::now_v7().simple());
                let admin = Db::connect(&admin_url).await.unwrap_or_else(|err| {
                    panic!(
                        "cannot reach PostgreSQL at {admin_url} ({err}). Install and start it \
                         (Debian: apt-get install postgresql && pg_ctlcluster 15 main start) or \
                         set BIBLIO_TEST_POSTGRES_URL"
                    )
                });
                execute(&admin, &format!("CREATE DATABASE \"{name}\"")).await;
                let url = match admin_url.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("BIBLIO_TEST_POSTGRES_URL must end in /DATABASE"),
                };
                (Self::Postgres { admin_url, name }, url)
            }
            other => panic!("BIBLIO_TEST_DATABASE must be sqlite or postgres, not {other:?}"),
        }
    }
}

async fn execute(db: &Db, sql: &str) {
    use sea_orm::ConnectionTrait;
    db.conn()
        .execute_unprepared(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match self {
            Self::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Self::Postgres { admin_url, name } => {
                // Drop runs inside the test's runtime, which cannot be blocked
                // on; a thread with a runtime of its own can.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a runtime");
                    runtime.block_on(async {
                        if let Ok(admin) = Db::connect(&admin_url).await {
                            execute(
                                &admin,
                                &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                            )
                            .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

/// A `redis-server` of the test's own on a free port, killed when dropped.
/// Tests stop and restart it to simulate outages.
pub struct TestRedis {
    pub port: u16,
    process: Option<std::process::Child>,
    /// With a directory, Redis keeps an append-only file there and reloads
    /// it on restart, as after a network partition rather than a crash.
    dir: Option<PathBuf>,
}

impl TestRedis {
    pub fn start() -> Self {
        // Another process can take the port between this probe and the
        // server's bind (the suites start many servers at once); the server
        // then exits at once, and another port is tried.
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .map(|address| address.port())
                .expect("a free port");
            let mut redis = Self {
                port,
                process: None,
                dir: None,
            };
            if redis.launch() {
                return redis;
            }
        }
        panic!("redis-server exited at once on five free ports in a row");
    }

    pub fn start_persistent() -> Self {
        let dir = std::env::temp_dir().join(format!("biblio-redis-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let mut redis = Self::start();
        redis.stop();
        redis.dir = Some(dir);
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(
            self.launch(),
            "redis-server exited at once on port {}",
            self.port
        );
    }

    /// Starts the server and waits until it answers (true) or exits (false).
    fn launch(&mut self) -> bool {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect();
        match &self.dir {
            Some(dir) => args.extend(
                ["--appendonly", "yes", "--appendfsync", "always", "--dir"]
                    .map(String::from)
                    .into_iter()
                    .chain([dir.display().to_string()]),
            ),
            None => args.extend(["--appendonly", "no"].map(String::from)),
        }
        let child = std::process::Command::new("redis-server")
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}). Install Redis (Debian: apt-get install redis-server; \
                     macOS: brew install redis) so that redis-server is on PATH"
                )
            });
        let child = self.process.insert(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return true;
                }
            }
            if child.try_wait().expect("the server's status").is_some() {
                self.process = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Sends one command to the server (as `redis-cli` would) and returns
    /// its first reply line, e.g. `+OK`.
    pub fn command(&self, args: &[&str]) -> String {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .expect("the test redis-server accepts connections");
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream
            .write_all(request.as_bytes())
            .expect("the command is sent");
        let mut reply = String::new();
        BufReader::new(stream)
            .read_line(&mut reply)
            .expect("redis-server replies");
        reply.trim_end().to_owned()
    }

    /// Every key matching `pattern` (`KEYS`: fine on a test's small Redis),
    /// sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .expect("the test redis-server accepts connections");
        let request = format!("*2\r\n$4\r\nKEYS\r\n${}\r\n{pattern}\r\n", pattern.len());
        stream
            .write_all(request.as_bytes())
            .expect("the command is sent");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        let mut read_line = |reader: &mut BufReader<std::net::TcpStream>| {
            line.clear();
            reader.read_line(&mut line).expect("redis-server replies");
            line.trim_end().to_owned()
        };
        let count: usize = read_line(&mut reader)
            .strip_prefix('*')
            .and_then(|n| n.parse().ok())
            .expect("an array reply");
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let len: usize = read_line(&mut reader)
                .strip_prefix('$')
                .and_then(|n| n.parse().ok())
                .expect("a bulk string");
            let mut key = vec![0; len + 2];
            reader.read_exact(&mut key).expect("the key's bytes");
            key.truncate(len);
            keys.push(String::from_utf8(key).expect("keys are text"));
        }
        keys.sort();
        keys
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server, as `kill -SIGNAL` does.
    pub fn signal(&self, signal: &str) {
        let pid = self
            .process
            .as_ref()
            .expect("the test redis-server runs")
            .id();
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} redis-server failed");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The password of every librarian a test creates.
const LIBRARIAN_PASSWORD: &str = "librarian-password";

/// A signed-in account: what a person would type, and the token.
pub struct Account {
    pub email: String,
    pub password: &'static str,
    pub token: String,
}

pub struct TestApp {
    pub address: String,
    /// The service's own database handle: tests read its statement count.
    pub db: Db,
    pub cache: biblio::cache::Cache,
    /// The persisted-query store: tests read its hit and miss counts.
    pub persisted: std::sync::Arc<biblio::graphql::persisted::Store>,
    pub client: reqwest::Client,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    _database: Option<TestDatabase>,
    _redis: Option<TestRedis>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// How a test's apps are started: by default one app, fully cached, with a
/// database and a Redis of its own, on the service's own defaults (as
/// `biblio serve` with no flags) except that it binds a free port, uses a
/// key prefix of its own and seeds no demo data. Change what a test needs
/// field by field, then [`TestAppBuilder::spawn`] or
/// [`TestAppBuilder::spawn_replicas`].
pub struct TestAppBuilder {
    replicas: usize,
    cache_mode: Option<Mode>,
    redis: RedisChoice,
    database_url: Option<String>,
    configure: Box<dyn Fn(&mut Config)>,
    prepare: Box<dyn Fn(&Application)>,
}

enum RedisChoice {
    /// A fresh `redis-server`, owned by what is spawned.
    Own,
    /// A given one, owned by what is spawned (e.g. a persistent one).
    Given(TestRedis),
    /// One the caller keeps, by URL.
    Shared(String),
}

impl Default for TestAppBuilder {
    fn default() -> Self {
        Self {
            replicas: 1,
            cache_mode: None,
            redis: RedisChoice::Own,
            database_url: None,
            configure: Box::new(|_| {}),
            prepare: Box::new(|_| {}),
        }
    }
}

impl TestAppBuilder {
    /// How many replicas share the database, the Redis and the key prefix.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    pub fn cache_mode(mut self, mode: Mode) -> Self {
        self.cache_mode = Some(mode);
        self
    }

    /// Runs on `redis`, which what is spawned then owns.
    pub fn redis(mut self, redis: TestRedis) -> Self {
        self.redis = RedisChoice::Given(redis);
        self
    }

    /// Runs on a Redis the caller keeps.
    pub fn shared_redis(mut self, redis: &TestRedis) -> Self {
        self.redis = RedisChoice::Shared(redis.url());
        self
    }

    /// Runs on the Redis at `url`, which the caller keeps (e.g. a Sentinel
    /// group's URL).
    pub fn redis_url(mut self, url: &str) -> Self {
        self.redis = RedisChoice::Shared(url.to_owned());
        self
    }

    /// Runs on a database the caller keeps (e.g. another app's).
    pub fn shared_database(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// A last change to the config, after every other choice.
    pub fn configure(mut self, configure: impl Fn(&mut Config) + 'static) -> Self {
        self.configure = Box::new(configure);
        self
    }

    /// Something to do with each app once built, before it serves (e.g.
    /// pause a fill its start-up makes).
    pub fn prepare(mut self, prepare: impl Fn(&Application) + 'static) -> Self {
        self.prepare = Box::new(prepare);
        self
    }

    /// One app, owning its database and Redis (unless they are shared).
    pub async fn spawn(self) -> TestApp {
        log_when_asked();
        assert_eq!(self.replicas, 1, "use spawn_replicas for more than one");
        let (mut apps, redis) = self.launch().await;
        let mut app = apps.pop().expect("one app");
        app._redis = redis;
        app
    }

    /// The replicas (the first owns the database) and their Redis, which the
    /// test may stop and restart.
    pub async fn spawn_replicas(self) -> (Vec<TestApp>, TestRedis) {
        let (apps, redis) = self.launch().await;
        (
            apps,
            redis.expect("spawn_replicas with a Redis of their own"),
        )
    }

    /// The replicas (the first owns the database), on a Redis the caller
    /// keeps ([`TestAppBuilder::redis_url`]).
    pub async fn spawn_many(self) -> Vec<TestApp> {
        log_when_asked();
        self.launch().await.0
    }

    async fn launch(self) -> (Vec<TestApp>, Option<TestRedis>) {
        let (database, database_url) = match self.database_url {
            Some(url) => (None, url),
            None => {
                let (database, url) = TestDatabase::create().await;
                (Some(database), url)
            }
        };
        let (redis, redis_url) = match self.redis {
            RedisChoice::Own => {
                let redis = TestRedis::start();
                let url = redis.url();
                (Some(redis), url)
            }
            RedisChoice::Given(redis) => {
                let url = redis.url();
                (Some(redis), url)
            }
            RedisChoice::Shared(url) => (None, url),
        };
        let mut config = ServeArgs::default().into_config(database_url);
        config.bind = "127.0.0.1:0".parse().unwrap();
        // Two tests at a time, some with seven replicas, share one
        // PostgreSQL of 100 connections.
        config.database_max_connections = Some(6);
        config.demo_data_when_empty = false;
        config.cache.redis_url = redis_url;
        // Each test owns its Redis, but a distinct prefix also keeps tests
        // honest about key building.
        config.cache.prefix = Some(format!("test{}", Uuid::now_v7().simple()));
        if let Some(mode) = self.cache_mode {
            config.cache.mode = mode;
        }
        (self.configure)(&mut config);
        let mut apps = Vec::new();
        for _ in 0..self.replicas {
            apps.push(start(&config, &*self.prepare).await);
        }
        if let Some(first) = apps.first_mut() {
            first._database = database;
        }
        (apps, redis)
    }
}

/// One app, fully cached, with a database and a Redis of its own.
pub async fn spawn_app() -> TestApp {
    TestApp::builder().spawn().await
}

/// A replica: the app with `config` as given.
async fn start(config: &Config, prepare: &dyn Fn(&Application)) -> TestApp {
    let app = Application::build(config).await.expect("the app builds");
    prepare(&app);
    let address = format!("http://{}", app.local_addr());
    let db = app.db().clone();
    let cache = app.cache().clone();
    let persisted = app.persisted().clone();
    let (shutdown, stopped) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let app = TestApp {
        address,
        db,
        cache,
        persisted,
        client: reqwest::Client::new(),
        database_url: config.database_url.clone(),
        shutdown: Some(shutdown),
        _database: None,
        _redis: None,
    };
    app.wait_for_cache().await;
    app
}

/// Polls `check` until it holds; panics after 5 s (far above any bound the
/// service states). Returns when it first held.
pub async fn eventually<F, Fut>(check: F) -> Instant
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if check().await {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "the condition never held");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A book to create: `n` picks a distinct valid ISBN; the price is 10.00.
pub struct NewBook<'a> {
    pub title: &'a str,
    pub n: u64,
    pub author: &'a str,
    pub category: &'a str,
    pub copies: i32,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// Waits until the cache's Redis tier and subscriber are connected, so a
    /// test starts from a known state.
    pub async fn wait_for_cache(&self) {
        if !matches!(
            self.cache.mode(),
            biblio::cache::Mode::L2 | biblio::cache::Mode::Both
        ) {
            return;
        }
        for _ in 0..500 {
            let health = self.cache.health();
            if health.status == "up" && health.subscriber == "connected" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the cache did not connect to redis: {:?}",
            self.cache.health()
        );
    }

    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.address)
    }

    /// POSTs a GraphQL request, optionally with a bearer token; returns the
    /// HTTP status and the JSON body.
    pub async fn post(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.graphql_url())
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the request is sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// Sends a query over GET (`?query=`); returns the HTTP status and the
    /// JSON body.
    pub async fn get(&self, query: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.graphql_url())
            .query(&[("query", query)])
            .header("accept", "application/graphql-response+json")
            .send()
            .await
            .expect("the request is sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// Runs a query that must succeed; returns `data`.
    pub async fn data(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(token, query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs a request that must fail; returns the first error's code.
    pub async fn error_code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let (_, body) = self.post(token, query, variables).await;
        let code = &body["errors"][0]["extensions"]["code"];
        assert!(code.is_string(), "expected an error with a code: {body}");
        code.as_str().unwrap().to_owned()
    }

    /// Registers a member and returns their token.
    pub async fn member(&self, email: &str) -> String {
        let data = self
            .data(
                None,
                "mutation($input: RegisterInput!) { register(input: $input) { token } }",
                json!({ "input": { "email": email, "name": "Test Member", "password": "member-password" } }),
            )
            .await;
        data["register"]["token"].as_str().unwrap().to_owned()
    }

    /// Creates a librarian (as `biblio user add` does) and returns their token.
    pub async fn librarian(&self) -> String {
        self.librarian_account().await.token
    }

    /// Creates a librarian (as `biblio user add` does) and signs them in.
    pub async fn librarian_account(&self) -> Account {
        let email = format!("librarian-{}@biblio.test", Uuid::now_v7().simple());
        let parsed = biblio::domain::Email::parse(&email).unwrap();
        let password = biblio::domain::Password::parse(LIBRARIAN_PASSWORD).unwrap();
        let hash = biblio::auth::hash_password(password).await.unwrap();
        let write = self.db.begin_write().await.unwrap();
        biblio::db::users::create(
            &write,
            &parsed,
            "Librarian".into(),
            hash,
            entity::user::Role::Librarian,
        )
        .await
        .unwrap();
        write.commit(None).await.unwrap();
        let data = self
            .data(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({ "e": email, "p": LIBRARIAN_PASSWORD }),
            )
            .await;
        Account {
            token: data["login"]["token"].as_str().unwrap().to_owned(),
            email,
            password: LIBRARIAN_PASSWORD,
        }
    }

    pub async fn create_author(&self, token: &str, name: &str) -> String {
        let data = self
            .data(
                Some(token),
                "mutation($name: String!) { createAuthor(input: { name: $name }) { id } }",
                json!({ "name": name }),
            )
            .await;
        data["createAuthor"]["id"].as_str().unwrap().to_owned()
    }

    pub async fn create_category(&self, token: &str, name: &str) -> String {
        let data = self
            .data(
                Some(token),
                "mutation($name: String!) { createCategory(input: { name: $name }) { id } }",
                json!({ "name": name }),
            )
            .await;
        data["createCategory"]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a book; returns its id.
    pub async fn create_book(&self, token: &str, book: NewBook<'_>) -> String {
        let data = self
            .data(
                Some(token),
                "mutation($input: CreateBookInput!) { createBook(input: $input) { id } }",
                json!({ "input": {
                    "title": book.title, "isbn": isbn(book.n), "price": "10.00",
                    "copiesTotal": book.copies, "authorId": book.author,
                    "categoryId": book.category,
                } }),
            )
            .await;
        data["createBook"]["id"].as_str().unwrap().to_owned()
    }

    /// Statements the service has executed so far.
    pub fn statements(&self) -> u64 {
        self.db.statements_executed()
    }
}

/// A valid ISBN-13, distinct for each `n`.
pub fn isbn(n: u64) -> String {
    biblio::domain::Isbn::with_check_digit(978_000_000_000 + n).into_inner()
}

/// A librarian, and a small catalogue: `books` books over two authors and
/// two categories. Returns (librarian token, author ids, category ids, book ids).
pub struct Catalogue {
    pub librarian: String,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    pub books: Vec<String>,
}

pub async fn catalogue(app: &TestApp, books: usize) -> Catalogue {
    let librarian = app.librarian().await;
    let authors = vec![
        app.create_author(&librarian, "Ursula K. Le Guin").await,
        app.create_author(&librarian, "Stanisław Lem").await,
    ];
    let categories = vec![
        app.create_category(&librarian, "Science Fiction").await,
        app.create_category(&librarian, "Philosophy").await,
    ];
    let mut ids = Vec::new();
    for i in 0..books {
        let title = format!("Book {i:03}");
        ids.push(
            app.create_book(
                &librarian,
                NewBook {
                    title: &title,
                    n: i as u64,
                    author: &authors[i % 2],
                    category: &categories[(i / 2) % 2],
                    copies: 2,
                },
            )
            .await,
        );
    }
    Catalogue {
        librarian,
        authors,
        categories,
        books: ids,
    }
}

/// n fragments, each spreading the next twice, the last selecting `leaf`:
/// 2^n copies of `leaf` once expanded, from a few hundred bytes.
pub fn fragment_ladder(n: usize, leaf: &str) -> String {
    let mut query = String::from("{ ...F0 }\n");
    for i in 0..n {
        query.push_str(&format!(
            "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
            i + 1,
            i + 1
        ));
    }
    query.push_str(&format!("fragment F{n} on Query {{ {leaf} }}\n"));
    query
}

/// With `RUST_LOG` set, the in-process apps' logs go to the test's output
/// (shown for a failing test): what an `INTERNAL` error was, say.
fn log_when_asked() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("RUST_LOG").is_some() {
        ONCE.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        });
    }
}
