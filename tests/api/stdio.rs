//! A closed stdout or stderr (`biblio ... | head -1`) is never a panic: the
//! CLI's own output stops quietly, logging drops what it cannot write, and a
//! migration under way completes or leaves nothing behind.
use crate::binary::{all_migrations, applied_migrations, biblio, closed_pipe, free_port, Server};
use crate::helpers::{TestDatabase, TestRedis};
use std::process::Output;

/// Runs `command` to its end with stderr captured (or closed).
fn finish(command: &mut std::process::Command) -> Output {
    command
        .output()
        .expect("the biblio binary runs (cargo builds it for the tests)")
}

fn assert_no_panic(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "biblio panicked:\n{stderr}"
    );
    // 101 is the exit status of a Rust panic.
    assert_ne!(output.status.code(), Some(101), "biblio panicked");
}

#[tokio::test]
async fn migrate_into_a_closed_stdout_applies_every_migration_and_exits_quietly() {
    let (_database, url) = TestDatabase::create().await;

    let output = finish(biblio(&url).arg("migrate").stdout(closed_pipe()));

    assert_no_panic(&output);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(applied_migrations(&url).await, all_migrations());
}

#[tokio::test]
async fn migrate_with_stdout_and_stderr_closed_applies_every_migration() {
    let (_database, url) = TestDatabase::create().await;

    let output = finish(
        biblio(&url)
            .arg("migrate")
            .stdout(closed_pipe())
            .stderr(closed_pipe()),
    );

    assert_no_panic(&output);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(applied_migrations(&url).await, all_migrations());
}

#[tokio::test]
async fn schema_into_a_closed_stdout_exits_quietly() {
    let output = finish(
        biblio("sqlite::memory:")
            .arg("schema")
            .stdout(closed_pipe()),
    );

    assert_no_panic(&output);
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[tokio::test]
async fn an_error_reported_into_a_closed_stderr_is_still_an_exit_status_of_1() {
    // A PostgreSQL URL nothing listens on: connecting fails.
    let port = free_port();
    let url = format!("postgres://nobody@127.0.0.1:{port}/none");

    let output = finish(
        biblio(&url)
            .arg("migrate")
            .stdout(closed_pipe())
            .stderr(closed_pipe()),
    );

    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

#[tokio::test]
async fn serve_with_stdout_and_stderr_closed_migrates_and_serves() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();
    let mut command = biblio(&url);
    command.stdout(closed_pipe()).stderr(closed_pipe());

    let mut server = Server::start(command, &["--redis-url", &redis.url()]).await;

    let answer = server.query("{ books { totalCount } }").await;
    assert_eq!(answer["data"]["books"]["totalCount"], 0, "{answer}");
    assert!(
        server.ready().await.is_some(),
        "biblio serve stopped serving"
    );
    assert_eq!(applied_migrations(&url).await, all_migrations());
}
