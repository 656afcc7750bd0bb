//! What browsers see: GraphiQL's assets as served, GraphiQL itself, CORS
//! and the live dashboard in headless Chromium (Debian's `chromium`),
//! driven by the Node scripts
//! in `tests/browser/` with `playwright-core`. A missing browser or missing
//! `node_modules` fails these tests with the command that installs it:
//! a skipped browser test would let GraphiQL break unnoticed.
use crate::helpers::{catalogue, spawn_app, TestApp};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `node tests/browser/<script> args…` off the test's runtime (the
/// service under test runs on it) and fails the test, with the script's
/// own reason, unless it exits 0. Returns its stdout.
async fn run_browser_script(script: &str, args: Vec<String>) -> String {
    let chromium = std::env::var("BIBLIO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: install it (Debian: apt-get install -y chromium), \
         or set BIBLIO_CHROMIUM to a Chromium binary"
    );
    let scripts = repository().join("tests/browser");
    assert!(
        scripts.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci --prefix tests/browser`"
    );
    let script = scripts.join(script);
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .args(&args)
            .env("BIBLIO_CHROMIUM", &chromium)
            .output()
    })
    .await
    .expect("the script's thread")
    .unwrap_or_else(|err| panic!("cannot run node ({err}): install Node.js 20 or later"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser check failed ({}):\n{}\n{}",
        output.status,
        stdout.trim(),
        // The script's reason is its last line; the rest is a Node trace.
        stderr.lines().rev().take(8).collect::<Vec<_>>().join("\n")
    );
    stdout
}

/// Where screenshots go: the build's target directory.
fn screenshot(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("target"))
        .join("browser")
        .join(name)
}

#[tokio::test]
async fn graphiql_runs_a_query_and_documents_book_with_the_network_off() {
    let app = spawn_app().await;
    let token = app.librarian().await;
    app.create_category(&token, "Offline Fiction").await;
    let path = screenshot("graphiql.png");
    let _ = std::fs::remove_file(&path);

    let stdout = run_browser_script(
        "graphiql.mjs",
        vec![
            app.graphql_url(),
            "--expect".into(),
            "Offline Fiction".into(),
            "--screenshot".into(),
            path.display().to_string(),
        ],
    )
    .await;

    assert!(stdout.starts_with("ok:"), "{stdout}");
    assert!(path.is_file(), "no screenshot at {}", path.display());
}

/// The paths the GraphiQL page loads, as the service serves the page.
async fn page_assets(app: &TestApp) -> Vec<String> {
    let page = app
        .client
        .get(app.graphql_url())
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("https:") && !page.contains("http:"));
    page.split(['"', '\''])
        .filter(|part| part.starts_with("/graphiql/"))
        .map(String::from)
        .collect()
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "identity" => out.extend_from_slice(body),
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(body).unwrap(),
        other => panic!("unexpected coding {other}"),
    }
    out
}

/// Every script and style the page loads is served byte for byte as
/// vendored, in the coding asked for, for a year, with its licence beside.
#[tokio::test]
async fn graphiql_assets_are_served_exactly_compressed_and_immutable() {
    let app = spawn_app().await;
    let assets = page_assets(&app).await;
    assert_eq!(
        assets.len(),
        4,
        "react, react-dom, graphiql's script and style"
    );
    let mut licences: Vec<String> = assets
        .iter()
        .map(|path| format!("{}/LICENSE", path.rsplit_once('/').unwrap().0))
        .collect();
    licences.sort();
    licences.dedup();
    assert_eq!(licences.len(), 3);

    for path in assets.iter().chain(&licences) {
        let vendored = std::fs::read(
            repository()
                .join("src/http/assets")
                .join(path.trim_start_matches("/graphiql/")),
        )
        .unwrap();
        for (accept, expected) in [
            (None, "identity"),
            (Some("gzip"), "gzip"),
            (Some("gzip, deflate, br, zstd"), "br"),
            (Some("zstd, gzip;q=0.5"), "zstd"),
            (Some("br;q=0, identity"), "identity"),
        ] {
            let mut request = app.client.get(format!("{}{path}", app.address));
            if let Some(accept) = accept {
                request = request.header("accept-encoding", accept);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let headers = response.headers().clone();
            // LICENSE files are under the 1 KB floor when short.
            let expected = if vendored.len() < 1024 {
                "identity"
            } else {
                expected
            };
            let coding = headers
                .get("content-encoding")
                .map_or("identity", |v| v.to_str().unwrap());
            assert_eq!(coding, expected, "{path} with Accept-Encoding {accept:?}");
            let body = response.bytes().await.unwrap();
            assert!(
                decode(coding, &body) == vendored,
                "{path} as {coding} is not the vendored file"
            );
            assert_eq!(
                headers["cache-control"],
                "public, max-age=31536000, immutable"
            );
            assert_eq!(headers["vary"], "Accept-Encoding");
            assert_eq!(headers["x-content-type-options"], "nosniff");
            let content_type = headers["content-type"].to_str().unwrap();
            let wanted = match path.rsplit('.').next() {
                Some("js") => "text/javascript",
                Some("css") => "text/css",
                _ => "text/plain",
            };
            assert!(content_type.starts_with(wanted), "{path}: {content_type}");
        }
    }
}

/// A free port on this machine, for a page's origin.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

#[tokio::test]
async fn a_page_on_a_configured_origin_reads_answers_and_etags_and_others_cannot() {
    let origin = format!("http://127.0.0.1:{}", free_port());
    let configured = origin.clone();
    let app = TestApp::builder()
        .configure(move |config| config.cors_origins = vec![configured.clone()])
        .spawn()
        .await;

    let stdout = run_browser_script("cors.mjs", vec![origin, app.graphql_url()]).await;

    assert!(stdout.starts_with("ok:"), "{stdout}");
}

/// What Apollo Client and GraphiQL-like frontends send is allowed by the
/// preflight, and the browser may cache that answer for an hour.
#[tokio::test]
async fn preflights_allow_what_frontends_send_and_are_cached() {
    let app = TestApp::builder()
        .configure(|config| config.cors_origins = vec!["https://app.example.org".into()])
        .spawn()
        .await;
    let wanted = [
        "content-type",
        "authorization",
        "if-none-match",
        "apollographql-client-name",
        "apollographql-client-version",
        "apollo-require-preflight",
    ];

    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.graphql_url())
        .header("origin", "https://app.example.org")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", wanted.join(","))
        .send()
        .await
        .unwrap();

    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    let allowed: Vec<String> = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for name in wanted {
        assert!(
            allowed.iter().any(|a| a == name),
            "{name} not in {allowed:?}"
        );
    }
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    assert_eq!(headers["access-control-max-age"], "3600");
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.org"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());

    // The answer itself exposes its ETag to the page.
    let answer = app
        .client
        .post(app.graphql_url())
        .header("origin", "https://app.example.org")
        .json(&json!({ "query": "{ categories { name } }" }))
        .send()
        .await
        .unwrap();
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");
    assert!(answer.headers().contains_key("etag"));
}

/// Two replicas on one Redis, some load on each (reads repeated so the
/// response tier answers, and writes, so an invalidation travels), then
/// the dashboard in Chromium: a librarian signs in on the page, it shows
/// both replicas and, once the script's own load stops, the same totals
/// as their `/metrics`. With `BIBLIO_UPDATE_SCREENSHOT=1`, the screenshot
/// also replaces docs/dashboard.png, docs/monitoring.md's (not on every run: a
/// test should not rewrite tracked files).
#[tokio::test]
async fn the_dashboard_signs_a_librarian_in_and_shows_every_replica_as_metrics_counts() {
    let (apps, _redis) = TestApp::builder()
        .replicas(2)
        .configure(|config| config.cache.stats_interval = std::time::Duration::from_millis(100))
        .spawn_replicas()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    let cat = catalogue(a, 6).await;
    let book = "query Book($id: ID!) { book(id: $id) { title author { name } } }";
    let list = "query Books { books(pageSize: 5) { totalCount items { title } } }";
    for app in [a, b] {
        for id in &cat.books {
            for _ in 0..3 {
                app.data(None, book, json!({ "id": id })).await;
            }
        }
        for _ in 0..4 {
            app.data(None, list, json!({})).await;
        }
    }
    for id in &cat.books[..2] {
        a.data(
            Some(&cat.librarian),
            "mutation($id: ID!) { updateBook(id: $id, input: { copiesTotal: 3 }) { id } }",
            json!({ "id": id }),
        )
        .await;
    }
    let reader = a.librarian_account().await;
    let path = screenshot("dashboard.png");
    let _ = std::fs::remove_file(&path);

    let stdout = run_browser_script(
        "dashboard.mjs",
        vec![
            format!("{}/dashboard", a.address),
            "--replicas".into(),
            format!("{},{}", a.address, b.address),
            "--email".into(),
            reader.email.clone(),
            "--password".into(),
            reader.password.into(),
            "--screenshot".into(),
            path.display().to_string(),
        ],
    )
    .await;

    assert!(
        stdout.starts_with("ok: the dashboard shows 2 replicas"),
        "{stdout}"
    );
    assert!(path.is_file(), "no screenshot at {}", path.display());
    if std::env::var_os("BIBLIO_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&path, repository().join("docs/dashboard.png")).expect("docs/ is writable");
    }
}
