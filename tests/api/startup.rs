//! Errors at start say what to fix, once, with exit status 1, and never
//! show a password given in a URL; an unreachable Redis is not an error but
//! a warning and a degraded cache.
use crate::binary::{biblio, finish_within_10s, free_port, Capture, Server};
use crate::helpers::{TestDatabase, TestRedis};
use std::path::PathBuf;
use std::process::Output;

/// A SQLite file that does not exist yet, removed (with its WAL files)
/// when dropped.
struct Unborn(PathBuf);

impl Unborn {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("biblio-start-{}.db", uuid::Uuid::now_v7())))
    }

    fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.display())
    }

    fn exists(&self) -> bool {
        self.0.exists()
    }
}

impl Drop for Unborn {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

/// `biblio` without a command (so, serving) on `database_url` with
/// `options`, run to its end.
fn serve(database_url: &str, options: &[&str]) -> Output {
    finish_within_10s(biblio(database_url).args(options))
}

/// Asserts that the process failed with status 1 and reported `expected`
/// (every part of it) exactly once, with no `secret` anywhere; returns
/// stderr.
fn assert_refused(output: &Output, expected: &[&str], secret: Option<&str>) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for part in expected {
        assert_eq!(
            stderr.matches(part).count(),
            1,
            "{part:?} once in: {stderr}"
        );
    }
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    if let Some(secret) = secret {
        assert!(!stderr.contains(secret), "the password was shown: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stdout.contains(secret), "the password was shown: {stdout}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn a_sqlite_file_in_a_missing_directory_names_the_directory_and_how_to_create_it() {
    let missing = std::env::temp_dir().join(format!("biblio-no-dir-{}", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}/biblio.db?mode=rwc", missing.display());

    let output = serve(&url, &["--cache-mode", "off", "--bind", "127.0.0.1:0"]);

    assert_refused(
        &output,
        &[
            &format!("the directory {} does not exist", missing.display()),
            &format!("mkdir -p {}", missing.display()),
            "--database-url",
        ],
        None,
    );
    assert!(!missing.exists());
}

#[test]
fn a_sqlite_file_in_a_directory_nobody_may_write_says_it_is_not_writable() {
    // sysfs refuses new files even to root, who may write anywhere else.
    let output = serve(
        "sqlite:///sys/biblio-test.db?mode=rwc",
        &["--cache-mode", "off", "--bind", "127.0.0.1:0"],
    );

    assert_refused(
        &output,
        &[
            "cannot open the SQLite database /sys/biblio-test.db",
            "the directory /sys is not writable",
        ],
        None,
    );
}

#[test]
fn a_postgresql_server_that_is_not_there_is_named_without_the_password() {
    let port = free_port();
    let url = format!("postgres://app:s3cret-pw@127.0.0.1:{port}/biblio");

    let output = finish_within_10s(biblio(&url).arg("migrate"));

    assert_refused(
        &output,
        &[
            &format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused"),
            "--database-url",
        ],
        Some("s3cret-pw"),
    );
}

/// The URL of the PostgreSQL server the suite runs against, without a
/// database (`postgres://user@host:port`), when it runs against one.
fn test_postgres() -> Option<String> {
    if std::env::var("BIBLIO_TEST_DATABASE").as_deref() != Ok("postgres") {
        return None;
    }
    let admin = std::env::var("BIBLIO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (server, _) = admin.rsplit_once('/').expect("a URL ending in /DATABASE");
    Some(server.to_owned())
}

/// Runs only against PostgreSQL (`BIBLIO_TEST_DATABASE=postgres`, as CI's
/// second run does): it needs a server to refuse.
#[test]
fn a_missing_postgresql_database_is_named_with_the_command_that_creates_it() {
    let Some(server) = test_postgres() else {
        return;
    };
    let name = format!("biblio_absent_{}", uuid::Uuid::now_v7().simple());

    let output = finish_within_10s(biblio(&format!("{server}/{name}")).arg("migrate"));

    assert_refused(
        &output,
        &[&format!("has no database \"{name}\""), "createdb"],
        None,
    );
}

/// Runs only against PostgreSQL, as above. A role that does not exist is
/// refused by the server as a wrong password is (SQLSTATE class 28), and
/// unlike a password it can be tried on a server that trusts local users.
#[test]
fn a_postgresql_user_the_server_refuses_is_named_without_the_password() {
    let Some(server) = test_postgres() else {
        return;
    };
    let host = server
        .rsplit_once('@')
        .map_or(server.as_str(), |(_, host)| host);
    let user = format!("nobody_{}", uuid::Uuid::now_v7().simple());
    let url = format!("postgres://{user}:s3cret-pw@{host}/postgres");

    let output = finish_within_10s(biblio(&url).arg("migrate"));

    assert_refused(
        &output,
        &[
            &format!("refused user \"{user}\""),
            "Check the user name and password",
        ],
        Some("s3cret-pw"),
    );
}

#[test]
fn an_address_in_use_is_named_and_nothing_is_touched() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let database = Unborn::new();

    let output = serve(
        &database.url(),
        &["--cache-mode", "off", "--bind", &address],
    );

    assert_refused(
        &output,
        &[
            &format!("cannot listen on {address}: the address is already in use"),
            "--bind",
        ],
        None,
    );
    assert!(!database.exists(), "the database was created anyway");
}

#[test]
fn a_malformed_redis_url_is_refused_before_anything_is_touched_and_without_its_password() {
    let database = Unborn::new();

    let output = serve(
        &database.url(),
        &[
            "--bind",
            "127.0.0.1:0",
            "--redis-url",
            "redis://:s3cret-pw@127.0.0.1:notaport",
        ],
    );

    assert_refused(
        &output,
        &[
            "--redis-url redis://:***@127.0.0.1:notaport is malformed",
            "expected redis://",
        ],
        Some("s3cret-pw"),
    );
    assert!(!database.exists(), "the database was created anyway");
}

#[test]
fn a_cluster_url_without_a_node_is_refused_before_anything_is_touched() {
    let database = Unborn::new();

    let output = serve(
        &database.url(),
        &[
            "--bind",
            "127.0.0.1:0",
            "--redis-url",
            "redis-cluster://:s3cret-pw@",
        ],
    );

    assert_refused(
        &output,
        &["names no Cluster node", "expected redis-cluster://"],
        Some("s3cret-pw"),
    );
    assert!(!database.exists(), "the database was created anyway");
}

#[test]
fn with_json_logs_the_error_is_one_json_line() {
    let missing = std::env::temp_dir().join(format!("biblio-no-dir-{}", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}/biblio.db?mode=rwc", missing.display());

    let output = serve(
        &url,
        &[
            "--log-format",
            "json",
            "--cache-mode",
            "off",
            "--bind",
            "127.0.0.1:0",
        ],
    );

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    let errors: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_warning_and_a_degraded_cache_not_a_failure() {
    let (_database, url) = TestDatabase::create().await;
    let port = free_port();
    let redis_url = format!("redis://:s3cret-pw@127.0.0.1:{port}");
    let stderr = Capture::new("stderr");
    let mut command = biblio(&url);
    command.stderr(stderr.stdio());

    let mut server = Server::start(command, &["--redis-url", &redis_url]).await;
    let log = stderr
        .wait_for("the warning", |log| log.contains("Redis is unreachable"))
        .await;
    let ready = server.ready().await.expect("ready all the same");
    let answer = server.query("{ books { totalCount } }").await;

    assert_eq!(ready["checks"]["cache"]["status"], "degraded");
    assert_eq!(answer["data"]["books"]["totalCount"], 0, "{answer}");
    assert_eq!(log.matches("Redis is unreachable").count(), 1, "{log}");
    assert!(
        log.contains(&format!("redis://:***@127.0.0.1:{port}")),
        "{log}"
    );
    assert!(!log.contains("s3cret-pw"), "the password was logged: {log}");
}

#[tokio::test]
async fn a_reachable_redis_gives_no_warning() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();
    let stderr = Capture::new("stderr");
    let mut command = biblio(&url);
    command.stderr(stderr.stdio());

    let _server = Server::start(command, &["--redis-url", &redis.url()]).await;
    let log = stderr
        .wait_for("the first contact", |log| {
            log.contains("Redis answers") || log.contains("Redis is unreachable")
        })
        .await;

    assert!(log.contains("Redis answers"), "{log}");
    assert!(!log.contains("Redis is unreachable"), "{log}");
}

#[test]
fn a_short_token_signing_key_is_refused_naming_the_flag_and_how_to_make_one() {
    for short in [
        "",
        "0123456789abcdef",
        "not hex at all, and long enough to be 32 bytes",
    ] {
        let output = finish_within_10s(biblio("sqlite::memory:").args([
            "serve",
            "--cache-mode",
            "off",
            "--bind",
            "127.0.0.1:0",
            "--token-signing-key",
            short,
        ]));

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{short:?} was accepted");
        for part in [
            "--token-signing-key",
            "BIBLIO_TOKEN_SIGNING_KEY",
            "32 bytes",
            "openssl rand -hex 32",
        ] {
            assert!(stderr.contains(part), "{part:?} in {stderr}");
        }
        if !short.is_empty() {
            assert!(
                !stderr.contains(short),
                "the refused key was printed: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn a_short_token_signing_key_stored_in_the_database_stops_the_start_and_says_how_to_replace_it(
) {
    use sea_orm::ConnectionTrait;
    let (_database, url) = TestDatabase::create().await;
    let migrated = finish_within_10s(biblio(&url).arg("migrate"));
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let db = biblio::db::Db::connect(&url).await.unwrap();
    db.conn()
        .execute_unprepared(
            "INSERT INTO settings (key, value) VALUES ('token_signing_key', '0123abcd')",
        )
        .await
        .unwrap();

    let output = serve(&url, &["--cache-mode", "off", "--bind", "127.0.0.1:0"]);

    assert_refused(
        &output,
        &["token_signing_key", "4 bytes", "--token-signing-key"],
        None,
    );
}

#[tokio::test]
async fn a_token_signing_key_given_as_a_flag_signs_the_tokens() {
    let (_database, url) = TestDatabase::create().await;
    let key = "a".repeat(64);
    let mut command = biblio(&url);
    command.stderr(std::process::Stdio::null());
    let server = Server::start(
        command,
        &["--cache-mode", "off", "--token-signing-key", &key],
    )
    .await;
    let register = serde_json::json!({
        "query": "mutation { register(input: { email: \"k@example.org\", name: \"K\", password: \"a-password-1\" }) { token } }"
    });
    let registered: serde_json::Value = server
        .client
        .post(format!("{}/graphql", server.address))
        .json(&register)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["data"]["register"]["token"]
        .as_str()
        .expect("a token");
    let me: serde_json::Value = server
        .client
        .post(format!("{}/graphql", server.address))
        .bearer_auth(token)
        .json(&serde_json::json!({ "query": "{ me { email } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(me["data"]["me"]["email"], "k@example.org", "{me}");
    // Signed with the key given, not one the server made: a verifier
    // holding only that key accepts it, one with another key does not.
    let verifier = |hex: &str| {
        biblio::auth::Tokens::new(
            biblio::auth::signing_key::SigningKey::from_hex(hex).expect("a valid key"),
            std::time::Duration::from_secs(3600),
        )
    };
    assert!(
        verifier(&key).verify(token).is_some(),
        "signed with the flag's key"
    );
    assert!(verifier(&"b".repeat(64)).verify(token).is_none());
}
