//! What the running binary logs: one access line per request with its
//! request id (returned to the client), failed sign-ins with a hash of the
//! e-mail, never the e-mail itself nor the password, JSON or text, and
//! colour only on a terminal.
use crate::binary::{biblio, Capture, Server};
use crate::helpers::{TestDatabase, TestRedis};
use serde_json::{json, Value};

/// A replica logging to a capture, in `format`, with `options`.
async fn logging_replica(
    url: &str,
    redis: &TestRedis,
    format: &str,
    options: &[&str],
) -> (Server, Capture) {
    let stderr = Capture::new("stderr");
    let mut command = biblio(url);
    command.stderr(stderr.stdio());
    let redis_url = redis.url();
    let mut all = vec!["--log-format", format, "--redis-url", redis_url.as_str()];
    all.extend_from_slice(options);
    let mut server = Server::start(command, &all).await;
    // The response tier keeps answers only once the bus is heard.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.ready().await.expect("the replica is ready")["checks"]["cache"]["status"] != "up" {
        assert!(
            std::time::Instant::now() < deadline,
            "the cache never came up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (server, stderr)
}

/// The JSON lines of `log` (every line must be one).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line:.200}"))
        })
        .collect()
}

/// The access lines of `log` for `path`.
fn access_lines(log: &str, path: &str) -> Vec<Value> {
    json_lines(log)
        .into_iter()
        .filter(|line| line["target"] == "biblio::access" && line["path"] == path)
        .collect()
}

async fn post(
    server: &Server,
    request_id: Option<&str>,
    body: Value,
) -> (reqwest::StatusCode, Option<String>, Value) {
    let mut request = server
        .client
        .post(format!("{}/graphql", server.address))
        .json(&body);
    if let Some(id) = request_id {
        request = request.header("x-request-id", id);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let id = response
        .headers()
        .get("x-request-id")
        .map(|id| id.to_str().unwrap().to_owned());
    (status, id, response.json().await.expect("a JSON answer"))
}

#[tokio::test]
async fn each_graphql_request_is_one_access_line_naming_its_operation_tier_status_and_id() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();
    let (server, stderr) = logging_replica(&url, &redis, "json", &[]).await;
    let count = json!({ "query": "query Count { books { totalCount } }" });

    let (_, first_id, _) = post(&server, Some("client-id-1"), count.clone()).await;
    let (_, second_id, _) = post(&server, Some("client-id-2"), count).await;
    let (status, bad_id, _) = post(
        &server,
        Some("not usable"),
        json!({ "query": "mutation { login(email: \"x@example.org\", password: \"whatever-1\") { token } }" }),
    )
    .await;
    let log = stderr
        .wait_for("three access lines", |log| {
            log.lines()
                .filter(|line| line.contains("\"path\":\"/graphql\""))
                .count()
                == 3
        })
        .await;

    assert_eq!(first_id.as_deref(), Some("client-id-1"));
    assert_eq!(second_id.as_deref(), Some("client-id-2"));
    let generated = bad_id.expect("an id is always returned");
    let generated = uuid::Uuid::parse_str(&generated).expect("a generated id is a UUID");
    assert_eq!(generated.get_version_num(), 7);
    let lines = access_lines(&log, "/graphql");
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, (operation, kind, tier, id)) in lines.iter().zip([
        ("Count", "query", "executor", "client-id-1".to_owned()),
        ("Count", "query", "response", "client-id-2".to_owned()),
        ("-", "mutation", "executor", generated.to_string()),
    ]) {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["method"], "POST", "{line}");
        assert_eq!(line["operation"], operation, "{line}");
        assert_eq!(line["kind"], kind, "{line}");
        assert_eq!(line["tier"], tier, "{line}");
        assert_eq!(line["status"], status.as_u16(), "{line}");
        assert_eq!(line["request_id"], id.as_str(), "{line}");
        assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    }
    // Never the query text.
    assert!(!log.contains("totalCount"), "the query text was logged");
}

#[tokio::test]
async fn a_request_that_is_not_graphql_gets_a_line_and_an_id_too() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();
    let (server, stderr) = logging_replica(&url, &redis, "json", &[]).await;

    let response = server
        .client
        .get(format!("{}/healthz", server.address))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let log = stderr
        .wait_for("the /healthz line", |log| log.contains(&id))
        .await;

    let lines: Vec<Value> = access_lines(&log, "/healthz")
        .into_iter()
        .filter(|line| line["request_id"] == id.as_str())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 200);
    assert!(lines[0].get("operation").is_none(), "{}", lines[0]);
}

#[tokio::test]
async fn failed_sign_ins_are_logged_with_a_hash_of_the_email_and_the_request_id_never_the_email_or_password(
) {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();
    let (server, stderr) =
        logging_replica(&url, &redis, "json", &["--login-failures-per-email", "2"]).await;
    let register = json!({
        "query": "mutation($i: RegisterInput!) { register(input: $i) { token } }",
        "variables": { "i": { "email": "reader@example.org", "name": "Reader", "password": "right-password-1" } }
    });
    post(&server, None, register).await;
    let login = |email: &str, password: &str| {
        json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            "variables": { "e": email, "p": password }
        })
    };

    post(
        &server,
        Some("guess-1"),
        login(" Reader@Example.org", "Guess-Number-1"),
    )
    .await;
    post(
        &server,
        Some("guess-2"),
        login("nobody@example.org", "Guess-Number-2"),
    )
    .await;
    post(
        &server,
        Some("guess-3"),
        login("reader@example.org", "Guess-Number-3"),
    )
    .await;
    let (status, _, _) = post(
        &server,
        Some("guess-4"),
        login("reader@example.org", "Guess-Number-4"),
    )
    .await;
    let log = stderr
        .wait_for("the refusal", |log| log.contains("sign-in refused"))
        .await;

    assert_eq!(status, 429);
    let warnings: Vec<Value> = json_lines(&log)
        .into_iter()
        .filter(|line| line["level"] == "WARN" && line["target"] != "biblio::access")
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("sign-in"))
        })
        .collect();
    let seen: Vec<(&str, &str)> = warnings
        .iter()
        .map(|line| {
            (
                line["message"].as_str().unwrap(),
                line["request_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("sign-in failed", "guess-1"),
            ("sign-in failed", "guess-2"),
            ("sign-in failed", "guess-3"),
            ("sign-in refused: too many attempts", "guess-4"),
        ]
    );
    let hashes: Vec<&str> = warnings
        .iter()
        .map(|line| line["email_hash"].as_str().expect("an email_hash field"))
        .collect();
    // One account's lines carry one hash, however the e-mail was typed.
    assert_eq!(hashes[0], hashes[2]);
    assert_eq!(hashes[0], hashes[3]);
    assert_ne!(hashes[0], hashes[1]);
    let printed = biblio(&url)
        .args(["user", "email-hash", "READER@example.org"])
        .output()
        .expect("biblio user email-hash runs");
    assert!(printed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim(),
        hashes[0],
        "the operator finds an account's lines by its e-mail"
    );
    assert_eq!(warnings[0]["account"], "exists");
    assert_eq!(warnings[1]["account"], "unknown");
    assert_eq!(warnings[0]["client"], "127.0.0.1");
    for email in [
        "reader@example.org",
        "Reader@Example.org",
        "nobody@example.org",
    ] {
        assert!(!log.contains(email), "{email} was logged");
    }
    for n in 1..=4 {
        assert!(
            !log.contains(&format!("Guess-Number-{n}")),
            "password {n} was logged"
        );
    }
    assert!(!log.contains("right-password-1"), "a password was logged");
}

#[tokio::test]
async fn text_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();
    let (server, stderr) = logging_replica(&url, &redis, "text", &[]).await;

    let (_, id, _) = post(
        &server,
        None,
        json!({ "query": "{ books { totalCount } }" }),
    )
    .await;
    let id = id.unwrap();
    let log = stderr
        .wait_for("the access line", |log| log.contains(&id))
        .await;

    let line = log
        .lines()
        .find(|line| line.contains(&id))
        .expect("the access line");
    assert!(line.contains("biblio::access"), "{line}");
    assert!(line.contains("operation=\"-\""), "{line}");
    assert!(line.contains("tier=\"executor\""), "{line}");
    assert!(!log.contains('\u{1b}'), "colour codes in a file");
}

#[test]
fn text_logs_are_coloured_on_a_terminal() {
    let database = std::env::temp_dir().join(format!("biblio-tty-{}.db", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}?mode=rwc", database.display());
    // `script` runs the command on a pseudo-terminal and copies what it
    // writes there to its own stdout.
    let command = format!(
        "{} --database-url '{url}' migrate",
        env!("CARGO_BIN_EXE_biblio")
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux) runs");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }

    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("migrations applied"), "{shown}");
    assert!(
        shown.contains("\u{1b}["),
        "no colour on a terminal: {shown}"
    );
}

/// Lines are written by a thread of their own: the ones logged just before
/// the process ends (the last requests' access lines, the shutdown line)
/// are written out all the same, and `/metrics` says how many lines were
/// dropped because the writer fell behind (none here).
#[tokio::test]
async fn every_line_logged_before_a_graceful_stop_is_written_and_drops_are_counted() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();
    let (mut server, stderr) = logging_replica(&url, &redis, "json", &[]).await;
    let metrics = server
        .client
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|line| line == "biblio_log_lines_dropped_total 0"),
        "no count of dropped lines in /metrics"
    );

    let requests = 200;
    for n in 0..requests {
        let response = server
            .client
            .get(format!("{}/healthz", server.address))
            .header("x-request-id", format!("last-requests-{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &server.process.id().to_string()])
        .status()
        .expect("`kill` runs");
    assert!(stopped.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.process.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");

    let log = stderr.read();
    let lines = json_lines(&log);
    let written = lines
        .iter()
        .filter(|line| {
            line["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("last-requests-"))
        })
        .count();
    assert_eq!(written, requests, "access lines written before the exit");
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "shutting down: finishing in-flight requests"),
        "no shutdown line"
    );
}
