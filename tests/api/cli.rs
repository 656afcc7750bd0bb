//! The command line as a newcomer meets it: `serve` is the default command
//! and its flags work without it; demo data goes only into the default
//! database, with passwords printed once; `seed` draws random passwords
//! unless told one, and its `--reset` keeps away from people's accounts.
use crate::binary::{biblio, finish_within_10s, free_port, Capture, Server};
use crate::helpers::{TestDatabase, TestRedis};
use serde_json::json;
use std::path::PathBuf;
use std::process::Stdio;

#[test]
fn help_never_shows_a_password_from_the_environment() {
    for args in [
        &["--help"][..],
        &["seed", "--help"],
        &["cache", "warm", "--help"],
    ] {
        let output = finish_within_10s(
            biblio("postgres://app:s3cret-pw@db.example.org/biblio")
                .env("REDIS_URL", "redis://:s3cret-pw@cache.example.org")
                .env("BIBLIO_SEED_PASSWORD", "s3cret-pw")
                .args(args),
        );

        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{help}");
        assert!(help.contains("DATABASE_URL"), "{help}");
        assert!(!help.contains("s3cret-pw"), "{args:?} showed a password");
    }
}

#[test]
fn help_lists_the_options_of_serve_under_their_own_heading() {
    let output = finish_within_10s(biblio("sqlite::memory:").arg("--help"));

    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    assert!(
        help.contains("Options of serve (the default command)"),
        "{help}"
    );
    for flag in [
        "--bind",
        "--redis-url",
        "--cache-mode",
        "--log-format",
        "--database-url",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[tokio::test]
async fn biblio_without_a_command_serves_with_the_flags_of_serve() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();
    let port = free_port();
    let mut command = biblio(&url);
    command.args([
        "--bind",
        &format!("127.0.0.1:{port}"),
        "--no-demo-data",
        "--redis-url",
        &redis.url(),
    ]);

    let server = Server::start_exactly(command, port).await;

    let answer = server.query("{ books { totalCount } }").await;
    assert_eq!(answer["data"]["books"]["totalCount"], 0, "{answer}");
}

#[test]
fn a_flag_of_serve_before_another_command_is_a_usage_error() {
    let output =
        finish_within_10s(biblio("sqlite::memory:").args(["--bind", "127.0.0.1:9", "schema"]));

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--bind is an option of `serve`: it cannot come before `schema`"),
        "{stderr}"
    );
}

#[test]
fn the_database_url_may_come_before_any_command() {
    let output =
        finish_within_10s(biblio("ignored").args(["--database-url", "sqlite::memory:", "migrate"]));

    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "migrations applied\n"
    );
}

/// A directory of its own, removed when dropped: the working directory of
/// a `biblio` that uses the default database, `biblio.db` there.
struct WorkingDirectory(PathBuf);

impl WorkingDirectory {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("biblio-cwd-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir(&dir).expect("a temporary directory");
        Self(dir)
    }
}

impl Drop for WorkingDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `biblio --bind 127.0.0.1:PORT --cache-mode off` in `dir` on the default
/// database, its stdout and stderr captured.
async fn serve_default_database(dir: &WorkingDirectory) -> (Server, Capture, Capture) {
    let (stdout, stderr) = (Capture::new("stdout"), Capture::new("stderr"));
    let port = free_port();
    let mut command = on_default_database(dir, port);
    command.stdout(stdout.stdio()).stderr(stderr.stdio());
    (Server::start_exactly(command, port).await, stdout, stderr)
}

/// `biblio --bind 127.0.0.1:PORT --cache-mode off` in `dir`, on the
/// default database.
fn on_default_database(dir: &WorkingDirectory, port: u16) -> std::process::Command {
    let mut command = biblio("unused");
    command
        .env_remove("DATABASE_URL")
        .current_dir(&dir.0)
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--cache-mode",
            "off",
        ]);
    command
}

async fn sign_in(server: &Server, email: &str, password: &str) -> serde_json::Value {
    server
        .client
        .post(format!("{}/graphql", server.address))
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { role } } }",
            "variables": { "e": email, "p": password },
        }))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer")
}

/// The password printed after `email / ` in `text`.
fn password_after(text: &str, email: &str) -> String {
    let start = text
        .find(&format!("{email} / "))
        .unwrap_or_else(|| panic!("no password for {email} in: {text}"))
        + email.len()
        + 3;
    text[start..]
        .split_whitespace()
        .next()
        .expect("a password")
        .to_owned()
}

#[tokio::test]
async fn the_default_database_gets_demo_data_with_random_passwords_printed_once() {
    let dir = WorkingDirectory::new();

    let (mut first, stdout, stderr) = serve_default_database(&dir).await;
    let shown = stdout
        .wait_for("the demo accounts", |out| out.contains("members:"))
        .await;
    let librarian = password_after(&shown, "librarian@biblio.test");
    let member = password_after(&shown, "member20@biblio.test");
    let books = first.query("{ books { totalCount } }").await;
    let signed_in = sign_in(&first, "librarian@biblio.test", &librarian).await;
    let old_fixed = sign_in(&first, "librarian@biblio.test", "librarian-pass").await;
    let member_signed_in = sign_in(&first, "member1@biblio.test", &member).await;
    let _ = first.process.kill();
    let _ = first.process.wait();
    let (_second, stdout_again, _) = serve_default_database(&dir).await;

    assert_eq!(books["data"]["books"]["totalCount"], 200, "{books}");
    assert_eq!(signed_in["data"]["login"]["user"]["role"], "LIBRARIAN");
    assert_eq!(member_signed_in["data"]["login"]["user"]["role"], "MEMBER");
    assert_eq!(
        old_fixed["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    assert_ne!(librarian, member);
    assert!(
        !stderr.read().contains(&librarian),
        "a password went to the log"
    );
    assert!(dir.0.join("biblio.db").exists());
    assert!(
        !stdout_again.read().contains("librarian@biblio.test"),
        "the accounts were printed again"
    );
}

#[tokio::test]
async fn a_database_named_on_the_command_line_gets_no_demo_data_unasked() {
    let (_database, url) = TestDatabase::create().await;
    let stderr = Capture::new("stderr");
    let port = free_port();
    let mut command = biblio(&url);
    command
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--cache-mode",
            "off",
        ])
        .stderr(stderr.stdio());

    let server = Server::start_exactly(command, port).await;

    let answer = server
        .query("{ books { totalCount } statistics { totalMembers } }")
        .await;
    assert_eq!(answer["data"]["books"]["totalCount"], 0, "{answer}");
    assert_eq!(answer["data"]["statistics"]["totalMembers"], 0, "{answer}");
    assert!(
        stderr.read().contains("run `biblio seed`"),
        "{}",
        stderr.read()
    );
}

/// `biblio seed` on `url` with `args`, run to its end.
fn seed(url: &str, args: &[&str]) -> std::process::Output {
    finish_within_10s(
        biblio(url)
            .arg("seed")
            .args([
                "--authors",
                "3",
                "--books",
                "5",
                "--members",
                "2",
                "--borrows",
                "2",
            ])
            .args(args),
    )
}

#[tokio::test]
async fn seed_prints_random_passwords_unless_one_is_given_for_all() {
    let (_database, url) = TestDatabase::create().await;

    let random = seed(&url, &[]);
    let given = seed(&url, &["--reset", "--password-for-all", "known-password"]);

    let random_out = String::from_utf8_lossy(&random.stdout);
    assert!(random.status.success(), "{random:?}");
    let librarian = password_after(&random_out, "librarian@biblio.test");
    assert_eq!(librarian.len(), 19, "{random_out}");
    assert_ne!(librarian, "librarian-pass");
    let given_out = String::from_utf8_lossy(&given.stdout);
    assert!(given.status.success(), "{given:?}");
    assert_eq!(
        password_after(&given_out, "librarian@biblio.test"),
        "known-password"
    );
    assert_eq!(
        password_after(&given_out, "member2@biblio.test"),
        "known-password"
    );
}

#[tokio::test]
async fn seed_reset_refuses_over_an_account_added_by_hand_unless_told_to_include_users() {
    let (_database, url) = TestDatabase::create().await;
    assert!(seed(&url, &["--password-for-all", "known-password"])
        .status
        .success());
    let mut add = biblio(&url);
    add.args(["user", "add", "--email", "ann@example.org", "--name", "Ann"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = add.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-strong-password\n")
        .unwrap();
    assert!(child.wait().unwrap().success());

    let refused = seed(&url, &["--reset", "--password-for-all", "known-password"]);
    let included = seed(
        &url,
        &[
            "--reset",
            "--include-users",
            "--password-for-all",
            "known-password",
        ],
    );

    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--reset would delete 1 account that no seed made (ann@example.org)"),
        "{stderr}"
    );
    assert!(stderr.contains("--include-users"), "{stderr}");
    assert!(included.status.success(), "{included:?}");
}

/// Two replicas started at once on one empty default database: one seeds
/// the demo catalogue, the other finds it seeded and serves it too (before,
/// it exited, told to pass a `--reset` that `serve` does not take). Five
/// times, each on a new file: the replica that migrates second once read
/// the first one's tables and records at two moments and, about one start
/// in five under load, called the database half-migrated and exited.
#[tokio::test]
async fn two_replicas_started_at_once_on_an_empty_default_database_both_serve_one_demo_catalogue() {
    for _ in 0..5 {
        let dir = WorkingDirectory::new();
        let command = |port: u16| {
            let mut command = on_default_database(&dir, port);
            command.stdout(Stdio::null()).stderr(Stdio::null());
            command
        };
        let (a, b) = (free_port(), free_port());
        // Both spawned at the first poll of the join, before either is ready.
        let (first, second) = tokio::join!(
            Server::start_exactly(command(a), a),
            Server::start_exactly(command(b), b)
        );
        for server in [&first, &second] {
            assert_eq!(
                server.query("{ books { totalCount } }").await["data"]["books"]["totalCount"],
                200,
                "one demo catalogue, seeded once"
            );
        }
    }
}
