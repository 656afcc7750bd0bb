use crate::helpers::spawn_app;
use serde_json::json;

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
