use crate::helpers::{eventually, spawn_app, TestApp};
use biblio::config::Config;
use serde_json::{json, Value};
use std::time::Duration;

const REGISTER: &str = "mutation($input: RegisterInput!) { register(input: $input) { token user { id email name role } } }";
const LOGIN: &str = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token user { email } } }";

#[tokio::test]
async fn registering_signs_in_a_member_who_then_sees_themselves_as_me() {
    let app = spawn_app().await;
    let data = app
        .data(None, REGISTER, json!({ "input": { "email": "Ada@Example.org", "name": "Ada", "password": "analytical" } }))
        .await;
    let payload = &data["register"];
    assert_eq!(payload["user"]["email"], "ada@example.org");
    assert_eq!(payload["user"]["role"], "MEMBER");
    let token = payload["token"].as_str().unwrap();
    let me = app
        .data(Some(token), "{ me { email name role } }", json!({}))
        .await;
    assert_eq!(me["me"]["name"], "Ada");
}

#[tokio::test]
async fn me_is_null_when_anonymous_and_my_borrows_is_unauthenticated() {
    let app = spawn_app().await;
    let data = app.data(None, "{ me { id } }", json!({})).await;
    assert!(data["me"].is_null());
    assert_eq!(
        app.error_code(None, "{ myBorrows { totalCount } }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn a_forged_or_garbled_token_is_unauthenticated() {
    let app = spawn_app().await;
    let token = app.member("forger@example.org").await;
    let mut forged = token.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [forged.as_str(), "garbage"] {
        assert_eq!(
            app.error_code(Some(bad), "{ me { id } }", json!({})).await,
            "UNAUTHENTICATED"
        );
        assert_eq!(
            app.error_code(Some(bad), "{ myBorrows { totalCount } }", json!({}))
                .await,
            "UNAUTHENTICATED"
        );
    }
}

#[tokio::test]
async fn login_works_and_wrong_password_and_unknown_email_get_the_same_error() {
    let app = spawn_app().await;
    app.member("login@example.org").await;
    let data = app
        .data(
            None,
            LOGIN,
            json!({ "e": "LOGIN@example.org", "p": "member-password" }),
        )
        .await;
    assert_eq!(data["login"]["user"]["email"], "login@example.org");

    let (_, wrong) = app
        .post(
            None,
            LOGIN,
            json!({ "e": "login@example.org", "p": "not-the-password" }),
        )
        .await;
    let (_, unknown) = app
        .post(
            None,
            LOGIN,
            json!({ "e": "nobody@example.org", "p": "not-the-password" }),
        )
        .await;
    assert_eq!(wrong["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn registration_rejects_short_passwords_bad_emails_and_duplicates() {
    let app = spawn_app().await;
    let input = |email: &str, password: &str| json!({ "input": { "email": email, "name": "X", "password": password } });
    assert_eq!(
        app.error_code(None, REGISTER, input("a@example.org", "1234567"))
            .await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.error_code(None, REGISTER, input("not-an-email", "12345678"))
            .await,
        "BAD_USER_INPUT"
    );
    app.data(None, REGISTER, input("dup@example.org", "12345678"))
        .await;
    assert_eq!(
        app.error_code(None, REGISTER, input("DUP@example.org", "12345678"))
            .await,
        "CONFLICT"
    );
}

#[tokio::test]
async fn members_may_not_write_the_catalogue_and_anonymous_users_must_sign_in() {
    let app = spawn_app().await;
    let member = app.member("member@example.org").await;
    let create = "mutation { createAuthor(input: { name: \"X\" }) { id } }";
    assert_eq!(
        app.error_code(Some(&member), create, json!({})).await,
        "FORBIDDEN"
    );
    assert_eq!(
        app.error_code(None, create, json!({})).await,
        "UNAUTHENTICATED"
    );
    let category = "mutation { createCategory(input: { name: \"X\" }) { id } }";
    assert_eq!(
        app.error_code(Some(&member), category, json!({})).await,
        "FORBIDDEN"
    );
    let stats = app
        .data(
            None,
            "{ statistics { totalAuthors totalCategories } }",
            json!({}),
        )
        .await;
    assert_eq!(
        stats["statistics"]["totalAuthors"], 0,
        "nothing was written"
    );
    assert_eq!(stats["statistics"]["totalCategories"], 0);
}

#[tokio::test]
async fn user_add_reads_the_password_from_stdin_and_makes_a_librarian_who_can_sign_in() {
    use std::io::Write;
    let app = spawn_app().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_biblio"))
        .args([
            "--database-url",
            &app.database_url,
            "user",
            "add",
            "--email",
            "Ann@Example.org",
            "--name",
            "Ann",
            "--role",
            "librarian",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the biblio binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a-strong-password\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let data = app
        .data(
            None,
            LOGIN,
            json!({ "e": "ann@example.org", "p": "a-strong-password" }),
        )
        .await;
    assert_eq!(data["login"]["user"]["email"], "ann@example.org");
    let me = app
        .data(
            Some(data["login"]["token"].as_str().unwrap()),
            "{ me { role } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["role"], "LIBRARIAN");
}

/// One `login` over HTTP, optionally with an `X-Forwarded-For` header:
/// (status, `Retry-After` in seconds, body).
async fn sign_in(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, Option<u64>, Value) {
    let mut request = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": LOGIN, "variables": { "e": email, "p": password } }));
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    let response = request.send().await.expect("the request is sent");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().expect("whole seconds"));
    (
        status,
        retry_after,
        response.json().await.expect("a JSON body"),
    )
}

fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["extensions"]["code"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A policy small enough to reach in a test: `failures` per e-mail and
/// `attempts` per address, in windows of a minute.
fn throttled(failures: u32, attempts: u32) -> impl Fn(&mut Config) {
    move |config| {
        config.throttle.failures_per_email = failures;
        config.throttle.email_window = Duration::from_secs(60);
        config.throttle.attempts_per_address = attempts;
        config.throttle.address_window = Duration::from_secs(60);
    }
}

#[tokio::test]
async fn twenty_aliased_logins_check_one_password_and_refuse_the_rest_before_the_throttle() {
    let app = TestApp::builder()
        .configure(throttled(3, 1000))
        .spawn()
        .await;
    app.member("guessed@example.org").await;
    // Twenty: within the alias limit, which refuses more before they run.
    let fields: String = (0..20)
        .map(|i| {
            format!(
                "l{i}: login(email: \"guessed@example.org\", password: \"guess-{i}\") {{ token }} "
            )
        })
        .collect();
    let (status, body) = app
        .post(None, &format!("mutation {{ {fields} }}"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let answers = codes(&body);
    assert_eq!(answers.len(), 20, "{body}");
    let checked = answers.iter().filter(|c| *c == "UNAUTHENTICATED").count();
    let refused = answers.iter().filter(|c| *c == "BAD_USER_INPUT").count();
    assert_eq!((checked, refused), (1, 19), "{body}");

    // Only that one counted as a failure: two more are allowed (3 per
    // e-mail), the next is throttled.
    for _ in 0..2 {
        let (_, _, body) = sign_in(&app, "guessed@example.org", "another-guess", None).await;
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{body}");
    }
    let (status, _, body) = sign_in(&app, "guessed@example.org", "another-guess", None).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn after_n_failed_sign_ins_an_email_is_refused_with_429_even_with_the_right_password() {
    let app = TestApp::builder()
        .configure(throttled(3, 1000))
        .spawn()
        .await;
    app.member("victim@example.org").await;
    app.member("bystander@example.org").await;
    for _ in 0..3 {
        let (status, retry, body) = sign_in(&app, "victim@example.org", "wrong-guess", None).await;
        assert_eq!((status, retry), (200, None), "{body}");
        assert_eq!(codes(&body), ["UNAUTHENTICATED"]);
    }
    let (status, retry_after, body) =
        sign_in(&app, "VICTIM@example.org", "member-password", None).await;
    assert_eq!(status, 429, "{body}");
    let retry_after = retry_after.expect("a Retry-After header");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(codes(&body), ["TOO_MANY_REQUESTS"]);
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry_after);
    assert!(body["data"]["login"].is_null(), "{body}");

    // Another account is not affected.
    let (status, _, body) = sign_in(&app, "bystander@example.org", "member-password", None).await;
    assert_eq!(status, 200);
    assert!(body["data"]["login"]["token"].is_string(), "{body}");
}

#[tokio::test]
async fn one_address_is_refused_after_m_sign_in_attempts_whatever_the_emails() {
    let app = TestApp::builder()
        .configure(throttled(1000, 4))
        .spawn()
        .await;
    for i in 0..4 {
        let email = format!("nobody{i}@example.org");
        let (status, _, body) = sign_in(&app, &email, "whatever-1", None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(codes(&body), ["UNAUTHENTICATED"]);
    }
    let (status, retry_after, body) = sign_in(&app, "fresh@example.org", "whatever-1", None).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry_after.is_some_and(|s| (1..=60).contains(&s)));
    assert_eq!(codes(&body), ["TOO_MANY_REQUESTS"]);
    // Registering hashes a password too, so it is an attempt as well.
    assert_eq!(
        app.error_code(
            None,
            REGISTER,
            json!({ "input": { "email": "new@example.org", "name": "N", "password": "12345678" } })
        )
        .await,
        "TOO_MANY_REQUESTS"
    );
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_unless_configured_and_then_the_rightmost_counts() {
    let direct = TestApp::builder()
        .configure(throttled(1000, 2))
        .spawn()
        .await;
    let spoofed = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    assert_eq!(
        statuses(&direct, &spoofed).await,
        [200, 200, 429],
        "the peer address counts by default"
    );

    let behind_proxy = TestApp::builder()
        .configure(|config| {
            throttled(1000, 2)(config);
            config.client_address_header = Some("x-forwarded-for".into());
        })
        .spawn()
        .await;
    let same_client = [
        "203.0.113.7, 10.0.0.1",
        "198.51.100.9, 10.0.0.1",
        "10.0.0.1",
    ];
    assert_eq!(
        statuses(&behind_proxy, &same_client).await,
        [200, 200, 429],
        "the rightmost address is the client, whatever it prepends"
    );
    let (status, _, body) = sign_in(
        &behind_proxy,
        "x@example.org",
        "whatever-1",
        Some("10.0.0.2"),
    )
    .await;
    assert_eq!(status, 200, "another client has its own budget: {body}");
}

/// Signs in once per `forwarded_for`, in order; the statuses.
async fn statuses(app: &TestApp, forwarded_for: &[&str]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for header in forwarded_for {
        let (status, _, _) = sign_in(app, "x@example.org", "whatever-1", Some(header)).await;
        statuses.push(status);
    }
    statuses
}

#[tokio::test]
async fn failures_on_one_replica_count_on_another_through_redis() {
    let (replicas, _redis) = TestApp::builder()
        .replicas(2)
        .configure(throttled(3, 1000))
        .spawn_replicas()
        .await;
    replicas[0].member("shared@example.org").await;
    for replica in [&replicas[0], &replicas[1], &replicas[0]] {
        let (status, _, body) = sign_in(replica, "shared@example.org", "wrong-guess", None).await;
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{status} {body}");
    }
    for replica in &replicas {
        let (status, _, body) =
            sign_in(replica, "shared@example.org", "member-password", None).await;
        assert_eq!(status, 429, "{body}");
    }
}

#[tokio::test]
async fn with_redis_stopped_throttling_goes_on_in_process() {
    let (replicas, mut redis) = TestApp::builder()
        .configure(throttled(3, 1000))
        .spawn_replicas()
        .await;
    let app = &replicas[0];
    app.member("offline@example.org").await;
    redis.stop();
    for _ in 0..3 {
        let (_, _, body) = sign_in(app, "offline@example.org", "wrong-guess", None).await;
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{body}");
    }
    let (status, retry_after, body) =
        sign_in(app, "offline@example.org", "member-password", None).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry_after.is_some());
    assert_eq!(
        app.cache.health().status,
        "degraded",
        "Redis really was down"
    );
}

#[tokio::test]
async fn forty_addresses_of_one_ipv6_slash_64_share_one_budget_and_ipv4_mapped_ones_count_as_ipv4()
{
    let app = TestApp::builder()
        .configure(|config| {
            throttled(1000, 5)(config);
            config.client_address_header = Some("x-forwarded-for".into());
        })
        .spawn()
        .await;

    let mut statuses = Vec::new();
    for i in 0..40 {
        let address = format!("2001:db8:1:2:{:x}::{:x}", i * 7919 % 65536, i + 1);
        let (status, _, _) = sign_in(
            &app,
            &format!("u{i}@example.org"),
            "whatever-1",
            Some(&address),
        )
        .await;
        statuses.push(status);
    }
    let (other_net, _, _) =
        sign_in(&app, "x@example.org", "whatever-1", Some("2001:db8:1:3::1")).await;
    let mut mapped = Vec::new();
    for address in ["192.0.2.9", "::ffff:192.0.2.9"].iter().cycle().take(6) {
        let (status, _, _) = sign_in(&app, "y@example.org", "whatever-1", Some(address)).await;
        mapped.push(status);
    }

    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        35,
        "{statuses:?}"
    );
    assert_eq!(other_net, 200, "the next /64 has a budget of its own");
    assert_eq!(
        mapped,
        [200, 200, 200, 200, 200, 429],
        "one client however written"
    );
}

/// `n` concurrent wrong logins for `email`, the i-th from its own address
/// and to `replicas[i % len]`: how many passwords were judged
/// (UNAUTHENTICATED) and how many refused unjudged (TOO_MANY_REQUESTS).
async fn concurrent_wrong_logins(replicas: &[TestApp], email: &str, n: usize) -> (usize, usize) {
    let guesses = (0..n).map(|i| async move {
        let address = format!("198.51.100.{}", i + 1);
        let (_, _, body) = sign_in(
            &replicas[i % replicas.len()],
            email,
            "wrong-guess",
            Some(&address),
        )
        .await;
        codes(&body)
    });
    let answers = futures_util::future::join_all(guesses).await;
    let count = |code: &str| answers.iter().filter(|codes| *codes == &[code]).count();
    let (judged, refused) = (count("UNAUTHENTICATED"), count("TOO_MANY_REQUESTS"));
    assert_eq!(judged + refused, n, "{answers:?}");
    (judged, refused)
}

/// Ten failures per e-mail, addresses unlimited and read from the
/// forwarded header, and hashing places enough for every request, so
/// that only the e-mail's limit can refuse.
fn ten_failures_per_email(config: &mut Config) {
    throttled(10, 1000)(config);
    config.client_address_header = Some("x-forwarded-for".into());
    config.password_hashes = 64;
}

#[tokio::test]
async fn thirty_concurrent_wrong_logins_for_one_email_judge_at_most_ten_passwords() {
    let app = TestApp::builder()
        .configure(ten_failures_per_email)
        .spawn()
        .await;
    app.member("target@example.org").await;

    let (judged, refused) =
        concurrent_wrong_logins(std::slice::from_ref(&app), "target@example.org", 30).await;

    assert_eq!(judged, 10, "{judged} passwords judged, {refused} refused");
    let (status, _, _) = sign_in(&app, "target@example.org", "member-password", None).await;
    assert_eq!(
        status, 429,
        "the e-mail is refused for the rest of the window"
    );
}

#[tokio::test]
async fn thirty_concurrent_wrong_logins_for_one_email_over_two_replicas_judge_at_most_ten_passwords(
) {
    let (replicas, _redis) = TestApp::builder()
        .replicas(2)
        .configure(ten_failures_per_email)
        .spawn_replicas()
        .await;
    replicas[0].member("target@example.org").await;

    let (judged, refused) = concurrent_wrong_logins(&replicas, "target@example.org", 30).await;

    assert_eq!(judged, 10, "{judged} passwords judged, {refused} refused");
}

#[tokio::test]
async fn a_successful_sign_in_gives_back_the_failure_it_reserved() {
    let app = TestApp::builder()
        .configure(throttled(3, 1000))
        .spawn()
        .await;
    app.member("regular@example.org").await;

    for _ in 0..2 {
        let (_, _, body) = sign_in(&app, "regular@example.org", "wrong-guess", None).await;
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{body}");
    }
    for _ in 0..5 {
        let (status, _, body) = sign_in(&app, "regular@example.org", "member-password", None).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"]["login"]["token"].is_string(), "{body}");
    }
    let (_, _, third) = sign_in(&app, "regular@example.org", "wrong-guess", None).await;
    let (status, _, _) = sign_in(&app, "regular@example.org", "member-password", None).await;

    assert_eq!(
        codes(&third),
        ["UNAUTHENTICATED"],
        "the third failure is judged: {third}"
    );
    assert_eq!(status, 429, "and then the e-mail is refused");
}

#[tokio::test]
async fn with_redis_stopped_two_replicas_split_the_limit_instead_of_each_allowing_all_of_it() {
    let (replicas, mut redis) = TestApp::builder()
        .replicas(2)
        .configure(throttled(4, 1000))
        .spawn_replicas()
        .await;
    replicas[0].member("offline@example.org").await;
    for replica in &replicas {
        eventually(|| async { replica.cache.replicas_seen() == 2 }).await;
    }

    redis.stop();
    let mut judged = 0;
    for i in 0..8 {
        let (_, _, body) =
            sign_in(&replicas[i % 2], "offline@example.org", "wrong-guess", None).await;
        judged += usize::from(codes(&body) == ["UNAUTHENTICATED"]);
    }

    assert_eq!(judged, 4, "the deployment's limit, two on each replica");
    for replica in &replicas {
        let (status, _, body) =
            sign_in(replica, "offline@example.org", "member-password", None).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(
            replica.cache.health().status,
            "degraded",
            "Redis really was down"
        );
        assert_eq!(replica.cache.replicas_seen(), 2, "what it last saw is kept");
    }
}

/// A counter Redis lost (it restarted empty) is made again from this
/// replica's own count, for what is left of that count's window, not a new
/// window: else ten wrong guesses could lock an account out for nearly
/// two windows.
#[tokio::test]
async fn a_lockout_restored_after_redis_lost_its_counters_ends_with_its_first_window() {
    let (replicas, mut redis) = TestApp::builder()
        .configure(|config| {
            throttled(3, 1000)(config);
            config.throttle.email_window = Duration::from_secs(10);
        })
        .spawn_replicas()
        .await;
    let app = &replicas[0];
    app.member("locked@example.org").await;
    let first = std::time::Instant::now();
    for _ in 0..3 {
        let (_, _, body) = sign_in(app, "locked@example.org", "wrong-guess", None).await;
        assert_eq!(codes(&body), ["UNAUTHENTICATED"], "{body}");
    }
    redis.stop();
    redis.restart();
    crate::helpers::eventually(|| async { app.cache.health().status == "up" }).await;
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(first.elapsed())).await;

    let (status, retry_after, body) =
        sign_in(app, "locked@example.org", "member-password", None).await;
    assert_eq!(status, 429, "still within the window: {body}");
    let left = 10 - first.elapsed().as_secs();
    assert!(
        retry_after.is_some_and(|secs| secs <= left + 1),
        "the lockout ends with the window the failures began: retry after {retry_after:?}, {left} s left"
    );
}
