//! Read replicas (`--database-read-url`): a PostgreSQL primary and a real
//! streaming standby, both started by the test (`initdb`, `pg_basebackup
//! -R`), the standby's replay held back with `recovery_min_apply_delay`.
//! A write's answer is never followed by its old value, from any tier or
//! either replica of biblio, while the standby lags; the lag is reported;
//! once the standby has caught up, reads go to it. PostgreSQL only: these
//! tests run when the suite does (`BIBLIO_TEST_DATABASE=postgres`).
use crate::helpers::{catalogue, eventually, Catalogue, TestApp, TestRedis};
use biblio::app::Application;
use biblio::cli::ServeArgs;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use uuid::Uuid;

const BOOK: &str = "query($id: ID!) { book(id: $id) { title } }";
const RETITLE: &str =
    "mutation($id: ID!, $title: String!) { updateBook(id: $id, input: { title: $title }) { title } }";

/// The servers' superuser, which the tests use to look and to change
/// settings.
const SUPERUSER: &str = "postgres";

/// The role biblio connects as: the owner of its database, not a superuser,
/// as in production (a superuser passes every permission check, so a
/// privilege the service lacks would go unnoticed).
const SERVICE_ROLE: &str = "biblio";

/// A primary and one streaming standby of it, each a `postgres` of the
/// test's own on a free port, stopped and removed when dropped. The history
/// checker (`history.rs`) runs its replicas on one too.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    primary_port: u16,
    standby_port: u16,
    /// The user the servers run as: PostgreSQL refuses to run as root.
    run_as: Option<&'static str>,
}

impl Cluster {
    /// The cluster with the database `biblio` on it, owned by
    /// [`SERVICE_ROLE`], once the standby has it too.
    pub async fn with_database() -> Self {
        let cluster = tokio::task::spawn_blocking(Self::start)
            .await
            .expect("the PostgreSQL cluster starts");
        let admin = connect(&cluster.primary_url("postgres")).await;
        for sql in [
            format!("CREATE ROLE {SERVICE_ROLE} LOGIN"),
            format!("CREATE DATABASE biblio OWNER {SERVICE_ROLE}"),
        ] {
            admin
                .execute_unprepared(&sql)
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err}"));
        }
        // The standby has the new database once it has replayed its creation.
        let standby_admin = connect(&cluster.standby_url("postgres")).await;
        eventually(|| async {
            scalar::<i64>(
                &standby_admin,
                "SELECT COUNT(*) FROM pg_database WHERE datname = 'biblio'",
            )
            .await
                == 1
        })
        .await;
        cluster
    }

    /// biblio's `--database-url`: the primary's database, as the service.
    pub fn service_url(&self) -> String {
        self.primary_url_as(SERVICE_ROLE, "biblio")
    }

    /// biblio's `--database-read-url`: the standby's database, as the
    /// service.
    pub fn service_read_url(&self) -> String {
        self.standby_url_as(SERVICE_ROLE, "biblio")
    }

    fn start() -> Self {
        let bin = postgres_bin();
        let dir = std::env::temp_dir().join(format!("biblio-replicas-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let status = Command::new("chown")
                .args([user, &dir.display().to_string()])
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown {user} {}", dir.display());
        }
        let mut cluster = Self {
            bin,
            dir,
            primary_port: free_port(),
            standby_port: 0,
            run_as,
        };
        let primary = cluster.dir.join("primary");
        cluster.run(
            "initdb",
            &[
                "-D",
                &primary.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.configure(
            &primary,
            cluster.primary_port,
            "wal_level = replica\nmax_wal_senders = 4\n",
        );
        cluster.pg_ctl_start(&primary);
        cluster.standby_port = free_port();
        let standby = cluster.dir.join("standby");
        cluster.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &cluster.primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &standby.display().to_string(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        cluster.configure(&standby, cluster.standby_port, "hot_standby = on\n");
        cluster.pg_ctl_start(&standby);
        cluster
    }

    /// The primary's `database`, as the superuser.
    pub fn primary_url(&self, database: &str) -> String {
        self.primary_url_as(SUPERUSER, database)
    }

    /// The standby's `database`, as the superuser.
    pub fn standby_url(&self, database: &str) -> String {
        self.standby_url_as(SUPERUSER, database)
    }

    fn primary_url_as(&self, user: &str, database: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{database}",
            self.primary_port
        )
    }

    fn standby_url_as(&self, user: &str, database: &str) -> String {
        format!(
            "postgres://{user}@127.0.0.1:{}/{database}",
            self.standby_port
        )
    }

    /// Holds back the standby's replay of each commit by `delay` from now
    /// on (0 for none): `recovery_min_apply_delay`, reloaded.
    pub async fn delay_replay(&self, delay: &str) {
        let auto = self.dir.join("standby/postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).expect("the standby's auto.conf");
        conf.push_str(&format!("recovery_min_apply_delay = '{delay}'\n"));
        std::fs::write(&auto, conf).expect("the standby's auto.conf is written");
        let standby = self.dir.join("standby").display().to_string();
        self.run("pg_ctl", &["-D", &standby, "reload"]);
        let conn = connect(&self.standby_url("postgres")).await;
        let delay = delay.to_owned();
        eventually(|| {
            let (conn, delay) = (&conn, &delay);
            async move { scalar::<String>(conn, "SHOW recovery_min_apply_delay").await == *delay }
        })
        .await;
    }

    /// Waits until the standby has replayed everything the primary has.
    pub async fn standby_caught_up(&self) {
        let primary = connect(&self.primary_url("postgres")).await;
        let target: i64 = scalar(&primary, "SELECT (pg_current_wal_lsn() - '0/0')::bigint").await;
        let standby = connect(&self.standby_url("postgres")).await;
        eventually(|| async {
            scalar::<i64>(
                &standby,
                "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint",
            )
            .await
                >= target
        })
        .await;
    }

    /// Runs `sql` on the primary's database `biblio`, as the superuser.
    pub async fn on_primary(&self, sql: &str) {
        connect(&self.primary_url("biblio"))
            .await
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// Runs `sql` on the standby, as the superuser.
    pub async fn on_standby(&self, sql: &str) {
        connect(&self.standby_url("postgres"))
            .await
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// Stops the standby, as a crash or a network cut would take it away.
    fn stop_standby(&self) {
        let standby = self.dir.join("standby").display().to_string();
        self.run("pg_ctl", &["-D", &standby, "-m", "immediate", "stop"]);
    }

    fn configure(&self, data: &Path, port: u16, extra: &str) {
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str(&format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = on\n{extra}",
            self.dir.display()
        ));
        std::fs::write(&conf, text).expect("postgresql.conf is written");
    }

    fn pg_ctl_start(&self, data: &Path) {
        let log = data.with_extension("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Runs one of PostgreSQL's programs (as the `postgres` user when the
    /// test runs as root); panics with its output if it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", path.display()));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for data in ["standby", "primary"] {
            let data = self.dir.join(data);
            if data.exists() {
                let path = self.bin.join("pg_ctl");
                let mut command = match self.run_as {
                    Some(user) => {
                        let mut command = Command::new("runuser");
                        command.args(["-u", user, "--"]).arg(&path);
                        command
                    }
                    None => Command::new(&path),
                };
                let _ = command
                    .args(["-D", &data.display().to_string(), "-m", "immediate", "stop"])
                    .output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of PostgreSQL's server programs (`initdb`, `postgres`,
/// `pg_basebackup`, `pg_ctl`): Debian's /usr/lib/postgresql/N/bin, the
/// newest version first, or `BIBLIO_TEST_POSTGRES_BIN`.
fn postgres_bin() -> PathBuf {
    let wanted = ["initdb", "postgres", "pg_basebackup", "pg_ctl"];
    let has_all = |dir: &Path| wanted.iter().all(|program| dir.join(program).is_file());
    if let Ok(dir) = std::env::var("BIBLIO_TEST_POSTGRES_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            has_all(&dir),
            "BIBLIO_TEST_POSTGRES_BIN={} lacks one of {wanted:?}",
            dir.display()
        );
        return dir;
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_all(dir))
        .collect();
    found.sort();
    match found.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "the read replica tests need PostgreSQL's server programs ({}) and found none under \
             /usr/lib/postgresql/*/bin. Install them (Debian: apt-get install postgresql) or set \
             BIBLIO_TEST_POSTGRES_BIN to the directory that holds them",
            wanted.join(", ")
        ),
    }
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("id runs");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

pub async fn connect(url: &str) -> DatabaseConnection {
    sea_orm::Database::connect(url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"))
}

async fn scalar<T: sea_orm::TryGetable>(conn: &DatabaseConnection, sql: &str) -> T {
    conn.query_one(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .unwrap_or_else(|| panic!("{sql}: no row"))
        .try_get_by_index(0)
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// The value of the first sample of `/metrics` whose line starts with
/// `prefix` (a name and the start of its labels).
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.split_whitespace().last()?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in /metrics:\n{text}"))
}

/// Whether the suite runs on PostgreSQL, which these tests need.
pub fn on_postgres() -> bool {
    std::env::var("BIBLIO_TEST_DATABASE").as_deref() == Ok("postgres")
}

/// The cluster, a database on it, and `replicas` replicas of biblio that
/// read from its standby, sharing one Redis.
struct Deployment {
    apps: Vec<TestApp>,
    redis: TestRedis,
    primary: DatabaseConnection,
    standby: DatabaseConnection,
    cluster: Cluster,
}

impl Deployment {
    async fn start(replicas: usize, max_lag: Duration) -> Self {
        let cluster = Cluster::with_database().await;
        let (primary_url, standby_url) =
            (cluster.primary_url("biblio"), cluster.standby_url("biblio"));
        let read_url = cluster.service_read_url();
        let (apps, redis) = TestApp::builder()
            .replicas(replicas)
            .shared_database(&cluster.service_url())
            .configure(move |config| {
                config.database_read_urls = vec![read_url.clone()];
                config.database_read_max_lag = max_lag;
            })
            .spawn_replicas()
            .await;
        Self {
            apps,
            redis,
            primary: connect(&primary_url).await,
            standby: connect(&standby_url).await,
            cluster,
        }
    }

    fn reads(&self, app: usize) -> (u64, u64) {
        self.apps[app]
            .db
            .read_replicas()
            .expect("the app reads from replicas")
            .reads()
    }

    /// Waits until the standby has replayed everything the primary has.
    async fn caught_up(&self) {
        let target: i64 = scalar(
            &self.primary,
            "SELECT (pg_current_wal_lsn() - '0/0')::bigint",
        )
        .await;
        eventually(|| async {
            scalar::<i64>(
                &self.standby,
                "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint",
            )
            .await
                >= target
        })
        .await;
        // And every app's poll has seen it.
        for app in &self.apps {
            let replicas = app.db.read_replicas().expect("replicas");
            eventually(|| async { replicas.serves_now() }).await;
        }
    }

    async fn metrics(&self, app: usize) -> String {
        let app = &self.apps[app];
        app.client
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("a body")
    }

    async fn title_on_standby(&self, id: &str) -> String {
        scalar(
            &self.standby,
            &format!("SELECT title FROM books WHERE id = '{id}'"),
        )
        .await
    }

    async fn title(&self, app: usize, id: &str) -> String {
        let data = self.apps[app].data(None, BOOK, json!({ "id": id })).await;
        data["book"]["title"].as_str().expect("a title").to_owned()
    }
}

#[tokio::test]
async fn with_the_replica_caught_up_cache_misses_are_read_from_it() {
    if !on_postgres() {
        return;
    }
    let deployment = Deployment::start(1, Duration::from_secs(60)).await;
    let cat = catalogue(&deployment.apps[0], 3).await;
    deployment.caught_up().await;
    let (to_replica, to_primary) = deployment.reads(0);

    // Neither read since start: misses.
    for query in [
        "{ books(pageSize: 50) { totalCount items { id title } } }",
        "{ authors { totalCount items { name bookCount } } }",
    ] {
        deployment.apps[0].data(None, query, json!({})).await;
    }
    for id in &cat.books {
        deployment.title(0, id).await;
    }

    let (now_replica, now_primary) = deployment.reads(0);
    assert!(
        now_replica > to_replica,
        "the misses went to the replica: {to_replica} -> {now_replica}"
    );
    assert_eq!(now_primary, to_primary, "no read went to the primary");
    let metrics = deployment.metrics(0).await;
    assert!(
        metric(&metrics, "biblio_db_reads_total{target=\"replica\"}") >= now_replica as f64,
        "{metrics}"
    );
    assert!(
        metrics.contains("biblio_db_replica_lag_seconds{replica="),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_write_is_never_read_back_old_from_a_lagging_replica_by_any_tier_or_replica() {
    if !on_postgres() {
        return;
    }
    // A limit far above the delay: only the LSN horizon keeps reads off the
    // standby here, not the lag limit.
    let deployment = Deployment::start(2, Duration::from_secs(600)).await;
    let cat = catalogue(&deployment.apps[0], 2).await;
    let token = cat.librarian.clone();
    let (book, foreign_book) = (&cat.books[0], &cat.books[1]);
    deployment.caught_up().await;
    // Every tier warm on both replicas, from the standby.
    for app in 0..2 {
        for id in [book, foreign_book] {
            deployment.title(app, id).await;
            deployment.title(app, id).await;
        }
    }
    deployment.cluster.delay_replay("3s").await;
    let (_, primary_before) = deployment.reads(0);

    // A write through biblio, then reads on the replica that wrote and on
    // the other one, while the standby still has the old row.
    let answer = deployment.apps[0]
        .data(
            Some(&token),
            RETITLE,
            json!({ "id": book, "title": "Retitled" }),
        )
        .await;
    assert_eq!(answer["updateBook"]["title"], "Retitled");
    assert_ne!(
        deployment.title_on_standby(book).await,
        "Retitled",
        "the standby lags: the test reaches the race it is about"
    );
    for _ in 0..5 {
        assert_eq!(deployment.title(0, book).await, "Retitled");
    }
    let (_, primary_after) = deployment.reads(0);
    assert!(
        primary_after > primary_before,
        "the miss after the write was read from the primary"
    );
    // The other replica hears the invalidation within the bus's bound; from
    // then on it never answers the old title again.
    eventually(|| async { deployment.title(1, book).await == "Retitled" }).await;

    // A write made with plain SQL on the primary, as another program would.
    deployment
        .primary
        .execute_unprepared(&format!(
            "UPDATE books SET title = 'Changed elsewhere' WHERE id = '{foreign_book}'"
        ))
        .await
        .expect("the foreign write");
    for app in 0..2 {
        eventually(|| async { deployment.title(app, foreign_book).await == "Changed elsewhere" })
            .await;
    }
    assert_ne!(
        deployment.title_on_standby(foreign_book).await,
        "Changed elsewhere",
        "the standby still lags after the foreign write was seen"
    );

    // Until the standby replays both writes, and after: never the old value,
    // from L1, L2 or kept answers, on either replica.
    let mut rounds = 0;
    while deployment.title_on_standby(foreign_book).await != "Changed elsewhere" {
        rounds += 1;
        for app in 0..2 {
            assert_eq!(deployment.title(app, book).await, "Retitled", "app {app}");
            assert_eq!(
                deployment.title(app, foreign_book).await,
                "Changed elsewhere",
                "app {app}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(rounds < 1000, "the standby never replayed the writes");
    }
    deployment.caught_up().await;
    for app in 0..2 {
        assert_eq!(deployment.title(app, book).await, "Retitled", "app {app}");
        assert_eq!(
            deployment.title(app, foreign_book).await,
            "Changed elsewhere",
            "app {app}"
        );
    }
}

/// A server where biblio's role may not read the primary's WAL position
/// (`pg_current_wal_lsn()` revoked, as a hardened server may have it): the
/// position cannot be read after a write commits. The write committed, so
/// it answers success; its invalidation goes out with its position unknown,
/// and no replica of biblio reads the lagging standby, which lacks the
/// write, until a position read after it is known.
#[tokio::test]
async fn a_write_whose_wal_position_cannot_be_read_answers_success_and_no_standby_is_read_behind_it(
) {
    if !on_postgres() {
        return;
    }
    let deployment = Deployment::start(2, Duration::from_secs(600)).await;
    let cat = catalogue(&deployment.apps[0], 1).await;
    let (token, book) = (cat.librarian.clone(), &cat.books[0]);
    deployment.caught_up().await;
    for app in 0..2 {
        deployment.title(app, book).await;
        deployment.title(app, book).await;
    }
    deployment.cluster.delay_replay("3s").await;
    deployment
        .primary
        .execute_unprepared("REVOKE EXECUTE ON FUNCTION pg_current_wal_lsn() FROM PUBLIC")
        .await
        .expect("the revoke");
    let standby_reads_before: Vec<u64> = (0..2).map(|app| deployment.reads(app).0).collect();

    let (status, body) = deployment.apps[0]
        .post(
            Some(&token),
            RETITLE,
            json!({ "id": book, "title": "Retitled" }),
        )
        .await;

    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("errors").is_none(),
        "the write committed: it answers success: {body}"
    );
    assert_eq!(body["data"]["updateBook"]["title"], "Retitled");
    assert_ne!(
        deployment.title_on_standby(book).await,
        "Retitled",
        "the standby lags: the test reaches the race it is about"
    );
    for (app, &standby_reads) in standby_reads_before.iter().enumerate() {
        eventually(|| async { deployment.title(app, book).await == "Retitled" }).await;
        for _ in 0..5 {
            assert_eq!(deployment.title(app, book).await, "Retitled", "app {app}");
        }
        assert_eq!(
            deployment.reads(app).0,
            standby_reads,
            "app {app} read nothing from the standby while the write's position was unknown"
        );
    }

    // Allowed again: a position read after the write is learnt, and once
    // the standby has replayed it, reads go to it again.
    deployment
        .primary
        .execute_unprepared("GRANT EXECUTE ON FUNCTION pg_current_wal_lsn() TO PUBLIC")
        .await
        .expect("the grant");
    deployment.cluster.delay_replay("0").await;
    deployment.caught_up().await;
    for (app, &standby_reads) in standby_reads_before.iter().enumerate() {
        // A page size never asked before, by either app: a miss in L1 and L2.
        deployment.apps[app]
            .data(
                None,
                "query($size: Int!) { books(pageSize: $size) { totalCount items { id } } }",
                json!({ "size": 37 + app }),
            )
            .await;
        assert!(
            deployment.reads(app).0 > standby_reads,
            "app {app} reads from the standby again"
        );
        assert_eq!(deployment.title(app, book).await, "Retitled", "app {app}");
    }
}

/// One replica over a standby that has caught up with a catalogue of one
/// book, and the Redis key its writes recorded their LSN in.
async fn one_replica_caught_up() -> (Deployment, Catalogue, String) {
    let deployment = Deployment::start(1, Duration::from_secs(600)).await;
    let cat = catalogue(&deployment.apps[0], 1).await;
    let lsn_keys = deployment.redis.keys("*:lsn");
    assert_eq!(
        lsn_keys.len(),
        1,
        "the writes recorded their LSN: {lsn_keys:?}"
    );
    deployment.caught_up().await;
    let lsn_key = lsn_keys[0].clone();
    (deployment, cat, lsn_key)
}

/// The path a replica takes when another one's invalidation reached Redis
/// but its event has not reached this one yet: the MGET that reads the
/// versions reads the highest LSN too, and the miss goes to the primary.
#[tokio::test]
async fn a_miss_learns_the_highest_lsn_from_redis_before_it_picks_a_replica() {
    if !on_postgres() {
        return;
    }
    let (deployment, cat, lsn_key) = one_replica_caught_up().await;
    let app = &deployment.apps[0];
    // As if some replica had published a write far ahead of the standby.
    let ahead = u64::MAX >> 1;
    deployment
        .redis
        .command(&["SET", &lsn_key, &format!("{ahead:016x}")]);
    let (replica_before, primary_before) = deployment.reads(0);

    deployment.title(0, &cat.books[0]).await;

    let replicas = app.db.read_replicas().expect("replicas");
    assert_eq!(replicas.horizon(), ahead, "the MGET taught the horizon");
    let (replica_after, primary_after) = deployment.reads(0);
    assert_eq!(
        replica_after, replica_before,
        "the standby is behind it: not read"
    );
    assert!(
        primary_after > primary_before,
        "the miss was read from the primary"
    );
}

/// The same path for a write whose position is unknown: the MGET reads the
/// unknown-position key beside the LSN key, and a token it has not seen
/// keeps its reads on the primary until it has read the primary's position
/// after it (here held off by the revoke, then allowed).
#[tokio::test]
async fn a_miss_that_finds_an_unknown_position_in_redis_reads_the_primary_until_it_learns_one() {
    if !on_postgres() {
        return;
    }
    let (deployment, cat, lsn_key) = one_replica_caught_up().await;
    let app = &deployment.apps[0];
    deployment
        .primary
        .execute_unprepared("REVOKE EXECUTE ON FUNCTION pg_current_wal_lsn() FROM PUBLIC")
        .await
        .expect("the revoke");
    // As if another replica had published a write whose position it could
    // not read.
    deployment
        .redis
        .command(&["SET", &format!("{lsn_key}:unknown"), "00000000deadbeef"]);
    let (replica_before, primary_before) = deployment.reads(0);

    deployment.title(0, &cat.books[0]).await;

    let replicas = app.db.read_replicas().expect("replicas");
    let (replica_after, primary_after) = deployment.reads(0);
    assert_eq!(replica_after, replica_before, "the standby was not read");
    assert!(
        primary_after > primary_before,
        "the miss was read from the primary"
    );
    assert!(
        !replicas.serves_now(),
        "no standby serves until a position after the unknown one is known"
    );

    deployment
        .primary
        .execute_unprepared("GRANT EXECUTE ON FUNCTION pg_current_wal_lsn() TO PUBLIC")
        .await
        .expect("the grant");
    eventually(|| async { replicas.serves_now() }).await;
    app.data(None, "{ authors { totalCount items { name } } }", json!({}))
        .await;
    assert!(
        deployment.reads(0).0 > replica_after,
        "reads went to the standby again"
    );
}

#[tokio::test]
async fn a_replica_lagging_past_the_limit_is_skipped_and_reported_then_used_again() {
    if !on_postgres() {
        return;
    }
    let deployment = Deployment::start(1, Duration::from_millis(500)).await;
    let app = &deployment.apps[0];
    let cat = catalogue(app, 2).await;
    deployment.caught_up().await;
    deployment.cluster.delay_replay("2s").await;

    // A foreign write the standby holds back: its replay lag grows past
    // the limit.
    deployment
        .primary
        .execute_unprepared(&format!(
            "UPDATE books SET price_cents = price_cents + 1 WHERE id = '{}'",
            cat.books[0]
        ))
        .await
        .expect("the foreign write");
    let replicas = app.db.read_replicas().expect("replicas");
    eventually(|| async { replicas.report()[0].status == "lagging" }).await;

    let (status, ready) = {
        let response = app
            .client
            .get(format!("{}/readyz", app.address))
            .send()
            .await
            .expect("/readyz answers");
        let status = response.status().as_u16();
        (
            status,
            response.json::<serde_json::Value>().await.expect("JSON"),
        )
    };
    assert_eq!(
        status, 200,
        "a lagging replica does not take biblio out: {ready}"
    );
    let reported = &ready["checks"]["read_replicas"][0];
    assert_eq!(reported["status"], "lagging", "{ready}");
    assert!(reported["lag_seconds"].as_f64().unwrap() > 0.5, "{ready}");
    let metrics = deployment.metrics(0).await;
    assert_eq!(
        metric(&metrics, "biblio_db_replica_skipped{replica="),
        1.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "biblio_db_replica_lag_seconds{replica=") > 0.5,
        "{metrics}"
    );

    // Reads are still served, from the primary.
    let (replica_before, primary_before) = deployment.reads(0);
    for id in &cat.books {
        app.data(None, BOOK, json!({ "id": id })).await;
        app.data(None, "{ statistics { totalBooks } }", json!({}))
            .await;
    }
    let (replica_after, primary_after) = deployment.reads(0);
    assert_eq!(
        replica_after, replica_before,
        "nothing was read from the lagging replica"
    );
    assert!(
        primary_after > primary_before,
        "the reads went to the primary"
    );

    // Caught up, it serves again.
    eventually(|| async { replicas.report()[0].status == "up" }).await;
    deployment.caught_up().await;
    app.data(None, "{ authors { totalCount } }", json!({}))
        .await;
    assert!(
        deployment.reads(0).0 > replica_after,
        "reads went to the replica again"
    );
}

#[tokio::test]
async fn a_standby_that_stops_answering_is_skipped_and_reads_go_on_from_the_primary() {
    if !on_postgres() {
        return;
    }
    let deployment = Deployment::start(1, Duration::from_secs(600)).await;
    let app = &deployment.apps[0];
    let cat = catalogue(app, 1).await;
    deployment.caught_up().await;

    deployment.cluster.stop_standby();

    let replicas = app.db.read_replicas().expect("replicas");
    eventually(|| async { replicas.report()[0].status == "down" }).await;
    let (replica_before, primary_before) = deployment.reads(0);
    app.data(None, "{ authors { totalCount items { name } } }", json!({}))
        .await;
    assert_eq!(deployment.title(0, &cat.books[0]).await, "Book 000");
    let (replica_after, primary_after) = deployment.reads(0);
    assert_eq!(
        replica_after, replica_before,
        "nothing was sent to the stopped standby"
    );
    assert!(
        primary_after > primary_before,
        "the misses went to the primary"
    );
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .expect("/readyz answers");
    assert_eq!(response.status().as_u16(), 200, "biblio stays in rotation");
    let ready: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(
        ready["checks"]["read_replicas"][0]["status"], "down",
        "{ready}"
    );
}

#[tokio::test]
async fn a_read_url_beside_a_sqlite_database_is_refused_at_start_up() {
    let path = std::env::temp_dir().join(format!("biblio-test-{}.db", Uuid::now_v7()));
    let mut config =
        ServeArgs::default().into_config(format!("sqlite://{}?mode=rwc", path.display()));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.database_read_urls = vec!["postgres://biblio:pw@127.0.0.1:1/biblio".into()];

    let err = Application::build(&config)
        .await
        .err()
        .expect("the start is refused")
        .to_string();

    assert!(err.contains("--database-read-url"), "{err}");
    assert!(err.contains("needs a PostgreSQL --database-url"), "{err}");
    assert!(!err.contains(":pw@"), "the password is not shown: {err}");
    assert!(!path.exists(), "nothing was created before the refusal");
}
