//! `biblio user`: add (from a script, and asking on a terminal), role,
//! password and remove, run as the built binary on the database of a
//! running replica, whose cached view of the user must follow.
use crate::binary::biblio;
use crate::helpers::{eventually, spawn_app, NewBook, TestApp};
use serde_json::json;
use std::io::{Read, Write};
use std::process::{Output, Stdio};

const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token user { role } } }";

/// `biblio user ARGS` on `app`'s database with `input` on stdin.
fn user(app: &TestApp, args: &[&str], input: &str) -> Output {
    let mut child = biblio(&app.database_url)
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the biblio binary runs");
    let mut stdin = child.stdin.take().expect("its stdin");
    // A command that refuses early may not read: a closed pipe is fine.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    child.wait_with_output().expect("biblio user finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The role `email` signs in with, or the error code.
async fn role_at_sign_in(app: &TestApp, email: &str, password: &str) -> String {
    let (_, body) = app
        .post(None, LOGIN, json!({ "e": email, "p": password }))
        .await;
    match body["data"]["login"]["user"]["role"].as_str() {
        Some(role) => role.to_owned(),
        None => body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("no code")
            .to_owned(),
    }
}

#[tokio::test]
async fn from_a_script_user_add_takes_flags_and_one_line_of_stdin() {
    let app = spawn_app().await;

    let output = user(
        &app,
        &[
            "add",
            "--email",
            "Ann@Example.org",
            "--name",
            "Ann",
            "--role",
            "librarian",
        ],
        "a-strong-password\n",
    );

    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("added ann@example.org (Librarian)"),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        role_at_sign_in(&app, "ann@example.org", "a-strong-password").await,
        "LIBRARIAN"
    );
}

#[tokio::test]
async fn from_a_script_user_add_names_the_flag_it_misses_and_adds_nobody() {
    let app = spawn_app().await;

    let output = user(&app, &["add", "--name", "Ann"], "a-strong-password\n");

    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--email is required when standard input is not a terminal"),
        "{}",
        stderr(&output)
    );
    let members = app
        .data(None, "{ statistics { totalMembers } }", json!({}))
        .await;
    assert_eq!(members["statistics"]["totalMembers"], 0);
}

/// What a program run on a pseudo-terminal shows there, read as it comes.
struct Terminal {
    child: std::process::Child,
    shown: std::sync::Arc<std::sync::Mutex<String>>,
    /// How much of what was shown the prompts answered so far account for.
    consumed: usize,
}

impl Terminal {
    /// Runs `command` (a shell command line) on a pseudo-terminal, through
    /// util-linux's `script`, which copies what the test writes to the
    /// terminal and what the terminal shows to its stdout.
    fn run(command: &str) -> Self {
        let mut child = std::process::Command::new("script")
            .args(["-qec", command, "/dev/null"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("`script` (util-linux) runs");
        let mut out = child.stdout.take().expect("its stdout");
        let shown = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let writer = shown.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1024];
            while let Ok(n) = out.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buffer[..n]);
                writer.lock().unwrap().push_str(&text);
            }
        });
        Self {
            child,
            shown,
            consumed: 0,
        }
    }

    fn shown(&self) -> String {
        self.shown.lock().unwrap().clone()
    }

    /// Waits until the terminal shows `prompt` after what earlier answers
    /// consumed, then types `answer` and Enter.
    fn answer(&mut self, prompt: &str, answer: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let shown = self.shown();
            if let Some(at) = shown[self.consumed..].find(prompt) {
                self.consumed += at + prompt.len();
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never asked {prompt:?}: {shown}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let stdin = self.child.stdin.as_mut().expect("its stdin");
        stdin
            .write_all(format!("{answer}\r").as_bytes())
            .expect("typed");
        stdin.flush().expect("typed");
    }

    /// Waits for the program to end; what the terminal showed.
    fn finish(mut self) -> (bool, String) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("script ends");
        // The reader thread sees the end of the output after the exit.
        std::thread::sleep(std::time::Duration::from_millis(50));
        (status.success(), self.shown())
    }
}

#[tokio::test]
async fn on_a_terminal_user_add_asks_for_what_is_missing_and_never_shows_the_password() {
    let app = spawn_app().await;
    let command = format!(
        "{} --database-url '{}' user add --name 'Ann Reader'",
        env!("CARGO_BIN_EXE_biblio"),
        app.database_url
    );

    let shown = tokio::task::spawn_blocking(move || {
        let mut terminal = Terminal::run(&command);
        terminal.answer("E-mail: ", "Ann@Example.org");
        terminal.answer("Role, member or librarian [member]: ", "librarian");
        terminal.answer("Password (8 characters or more): ", "short");
        terminal.answer("Password (8 characters or more): ", "typed-unseen-1");
        terminal.answer("The same password again: ", "typed-unseen-1");
        terminal.finish()
    })
    .await
    .unwrap();

    let (success, shown) = shown;
    assert!(success, "{shown}");
    // What is typed at a prompt with echo is shown; a password is not.
    assert!(shown.contains("Ann@Example.org"), "{shown}");
    assert!(!shown.contains("Name: "), "asked for a name it was given");
    assert!(shown.contains("at least 8 characters"), "{shown}");
    assert!(!shown.contains("typed-unseen-1"), "the password was echoed");
    assert!(!shown.contains("short"), "the password was echoed");
    assert!(
        shown.contains("added ann@example.org (Librarian)"),
        "{shown}"
    );
    assert_eq!(
        role_at_sign_in(&app, "ann@example.org", "typed-unseen-1").await,
        "LIBRARIAN"
    );
}

#[tokio::test]
async fn a_role_set_with_the_cli_reaches_a_running_replica_that_cached_the_profile() {
    let app = spawn_app().await;
    let token = app.member("reader@example.org").await;
    let role = |token: String| {
        let app = &app;
        async move {
            app.data(Some(&token), "{ me { role } }", json!({})).await["me"]["role"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(role(token.clone()).await, "MEMBER");
    assert_eq!(role(token.clone()).await, "MEMBER");

    let output = user(&app, &["role", "reader@example.org", "librarian"], "");

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "reader@example.org is now Librarian (was Member)"
    );
    // Only the outbox row tells the replica: its cached profile would
    // otherwise live out its TTL (5 minutes), and the token issued before
    // the change with it.
    eventually(|| async { token_answer(&app, &token).await == "UNAUTHENTICATED" }).await;
    let token = sign_in(&app, "reader@example.org", "member-password").await;
    assert_eq!(role(token).await, "LIBRARIAN");
    let members = app
        .data(None, "{ statistics { totalMembers } }", json!({}))
        .await;
    assert_eq!(members["statistics"]["totalMembers"], 0);
}

#[tokio::test]
async fn a_password_reset_lets_the_new_password_in_and_not_the_old() {
    let app = spawn_app().await;
    app.member("reader@example.org").await;

    let output = user(
        &app,
        &["password", "Reader@Example.org"],
        "a-new-password-1\n",
    );

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "new password set for reader@example.org"
    );
    assert_eq!(
        role_at_sign_in(&app, "reader@example.org", "a-new-password-1").await,
        "MEMBER"
    );
    assert_eq!(
        role_at_sign_in(&app, "reader@example.org", "member-password").await,
        "UNAUTHENTICATED"
    );
}

#[tokio::test]
async fn a_user_is_not_removed_while_a_loan_is_out_and_afterwards_goes_with_their_history() {
    let app = spawn_app().await;
    let librarian = app.librarian().await;
    let author = app.create_author(&librarian, "Author").await;
    let category = app.create_category(&librarian, "Category").await;
    let book = app
        .create_book(
            &librarian,
            NewBook {
                title: "Lent",
                n: 1,
                author: &author,
                category: &category,
                copies: 1,
            },
        )
        .await;
    let reader = app.member("reader@example.org").await;
    let loan = app
        .data(
            Some(&reader),
            "mutation($b: ID!) { borrowBook(bookId: $b) { id } }",
            json!({ "b": book }),
        )
        .await["borrowBook"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let refused = user(&app, &["remove", "reader@example.org"], "");
    app.data(
        Some(&reader),
        "mutation($r: ID!) { returnBook(borrowId: $r) { id } }",
        json!({ "r": loan }),
    )
    .await;
    let removed = user(&app, &["remove", "reader@example.org"], "");

    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused)
            .contains("reader@example.org was not removed: the user has 1 loan not returned yet"),
        "{}",
        stderr(&refused)
    );
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert_eq!(
        stdout(&removed).trim(),
        "removed reader@example.org (Member) and 1 returned loan of theirs"
    );
    assert_eq!(
        role_at_sign_in(&app, "reader@example.org", "member-password").await,
        "UNAUTHENTICATED"
    );
    eventually(|| async {
        app.data(None, "{ statistics { totalMembers } }", json!({}))
            .await["statistics"]["totalMembers"]
            == 0
    })
    .await;
}

#[tokio::test]
async fn a_user_command_for_an_unknown_email_says_so() {
    let app = spawn_app().await;

    for args in [
        &["role", "nobody@example.org", "member"][..],
        &["password", "nobody@example.org"],
        &["remove", "nobody@example.org"],
    ] {
        let output = user(&app, args, "a-new-password-1\n");

        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&output).trim(),
            "error: no user has the e-mail nobody@example.org",
            "{args:?}"
        );
    }
}

/// The code a token gets for `{ me { email } }` on `app`: `OK` when it is
/// accepted.
async fn token_answer(app: &TestApp, token: &str) -> String {
    let (_, body) = app.post(Some(token), "{ me { email } }", json!({})).await;
    match body["errors"][0]["extensions"]["code"].as_str() {
        Some(code) => code.to_owned(),
        None if body["data"]["me"]["email"].is_string() => "OK".to_owned(),
        None => format!("no answer: {body}"),
    }
}

/// A fresh sign-in's token, which must succeed.
async fn sign_in(app: &TestApp, email: &str, password: &str) -> String {
    let data = app
        .data(None, LOGIN, json!({ "e": email, "p": password }))
        .await;
    data["login"]["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_password_reset_a_role_change_and_a_removal_each_revoke_earlier_tokens_on_every_replica()
{
    let (replicas, _redis) = TestApp::builder().replicas(2).spawn_replicas().await;
    let email = "reader@example.org";
    let first = replicas[0].member(email).await;
    // Both replicas accept it, and have cached the profile it is checked
    // against.
    for replica in &replicas {
        assert_eq!(token_answer(replica, &first).await, "OK");
        assert_eq!(token_answer(replica, &first).await, "OK");
    }

    let reset = user(&replicas[0], &["password", email], "a-new-password-1\n");
    assert!(reset.status.success(), "{}", stderr(&reset));
    for replica in &replicas {
        eventually(|| async { token_answer(replica, &first).await == "UNAUTHENTICATED" }).await;
    }
    let second = sign_in(&replicas[1], email, "a-new-password-1").await;
    for replica in &replicas {
        assert_eq!(token_answer(replica, &second).await, "OK");
    }

    let promoted = user(&replicas[0], &["role", email, "librarian"], "");
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    for replica in &replicas {
        eventually(|| async { token_answer(replica, &second).await == "UNAUTHENTICATED" }).await;
    }
    let third = sign_in(&replicas[0], email, "a-new-password-1").await;
    for replica in &replicas {
        assert_eq!(token_answer(replica, &third).await, "OK");
    }

    let removed = user(&replicas[0], &["remove", email], "");
    assert!(removed.status.success(), "{}", stderr(&removed));
    for replica in &replicas {
        eventually(|| async { token_answer(replica, &third).await == "UNAUTHENTICATED" }).await;
    }
}

#[tokio::test]
async fn setting_the_role_a_user_already_has_keeps_their_tokens() {
    let app = spawn_app().await;
    let token = app.member("reader@example.org").await;

    let output = user(&app, &["role", "reader@example.org", "member"], "");

    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "reader@example.org was already Member"
    );
    assert_eq!(token_answer(&app, &token).await, "OK");
}

#[tokio::test]
async fn the_token_generation_is_read_through_the_cache_so_a_warm_signed_in_request_costs_no_sql() {
    let app = spawn_app().await;
    let token = app.member("reader@example.org").await;
    let user_hits = || app.cache.metrics().kind(biblio::cache::Kind::User).l1_hits;

    let sql = app.statements();
    app.data(Some(&token), "{ __typename }", json!({})).await;
    let cold = app.statements() - sql;
    let (sql, hits) = (app.statements(), user_hits());
    app.data(Some(&token), "{ __typename }", json!({})).await;
    let warm = app.statements() - sql;

    assert_eq!(cold, 1, "a cold check loads the user's profile once");
    assert_eq!(warm, 0, "a warm check costs no SQL");
    assert_eq!(user_hits() - hits, 1, "it is one L1 hit");
}
