//! `rediss://` is TLS or nothing: with the right CA the cache works over
//! TLS, and every way of getting it wrong (plaintext to a TLS port, an
//! unknown CA, `rediss://` to a plaintext server) leaves the cache degraded
//! instead of silently plaintext. A scheme the service cannot honour is
//! refused at start.
use crate::binary::{biblio, finish_within_10s, Server};
use crate::helpers::{eventually, TestDatabase, TestRedis};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs a tool the test needs; a missing one fails with how to install it.
fn run(program: &str, args: &[&str], install: &str) -> std::process::Output {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program} ({err}). {install}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn openssl(args: &[&str]) {
    run(
        "openssl",
        args,
        "Install OpenSSL's command-line tool (Debian: apt-get install openssl)",
    );
}

/// A certificate authority made for one test, and a certificate it signed
/// for 127.0.0.1, in a directory removed when dropped.
pub(crate) struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    pub(crate) fn create() -> Self {
        let dir = std::env::temp_dir().join(format!("biblio-tls-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let certificates = Self { dir };
        let path = |name: &str| certificates.path(name).display().to_string();
        let key = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let (key_file, cert_file) = (path(&format!("{ca}.key")), path(&format!("{ca}.pem")));
            let mut args = vec!["req", "-x509", "-days", "2", "-subj", "/CN=biblio test CA"];
            args.extend(key);
            args.extend(["-keyout", &key_file, "-out", &cert_file]);
            openssl(&args);
        }
        std::fs::write(
            certificates.path("server.ext"),
            "subjectAltName=IP:127.0.0.1\n",
        )
        .expect("the extension file is written");
        let (server_key, server_csr) = (path("server.key"), path("server.csr"));
        let mut args = vec!["req", "-subj", "/CN=127.0.0.1"];
        args.extend(key);
        args.extend(["-keyout", &server_key, "-out", &server_csr]);
        openssl(&args);
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &server_csr,
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-extfile",
            &path("server.ext"),
            "-out",
            &path("server.pem"),
        ]);
        certificates
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` that accepts TLS only, on a free port, killed when
/// dropped.
struct TlsRedis {
    port: u16,
    process: std::process::Child,
    certificates: Certificates,
}

impl TlsRedis {
    fn start() -> Self {
        let certificates = Certificates::create();
        let port = crate::binary::free_port();
        let file = |name: &str| certificates.path(name).display().to_string();
        let process = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--tls-cert-file", &file("server.pem")])
            .args(["--tls-key-file", &file("server.key")])
            .args(["--tls-ca-cert-file", &file("ca.pem")])
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start redis-server ({err}). Install Redis built with TLS \
                     (Debian: apt-get install redis-server) so that redis-server is on PATH"
                )
            });
        let redis = Self {
            port,
            process,
            certificates,
        };
        for _ in 0..200 {
            if redis.try_cli(&["PING"]).as_deref() == Some("PONG") {
                return redis;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the TLS redis-server did not answer on port {port}");
    }

    fn ca_file(&self) -> PathBuf {
        self.certificates.path("ca.pem")
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .args(["--tls", "--cacert", &self.ca_file().display().to_string()])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap_or_else(|err| {
                panic!("cannot run redis-cli ({err}). Install it (Debian: apt-get install redis-tools)")
            });
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// How many keys the server holds, asked over TLS.
    fn keys(&self) -> u64 {
        let reply = self
            .try_cli(&["DBSIZE"])
            .expect("redis-cli answers over TLS");
        reply.parse().unwrap_or_else(|_| panic!("DBSIZE: {reply}"))
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

const READ: &str = "{ categories { id name } books { totalCount } }";

/// Serves on `redis_url` (with `ca_file` if given), makes one read, and
/// returns `/readyz`'s cache status after it.
async fn cache_status_after_a_read(
    database_url: &str,
    redis_url: &str,
    ca_file: Option<&Path>,
) -> String {
    let mut options = vec!["--redis-url", redis_url];
    let ca_file = ca_file.map(|path| path.display().to_string());
    if let Some(ca_file) = &ca_file {
        options.extend(["--redis-ca-file", ca_file]);
    }
    let mut command = biblio(database_url);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut server = Server::start(command, &options).await;
    // Connecting is retried in the background: wait for the outcome.
    let mut status = String::new();
    for _ in 0..100 {
        let ready = server.ready().await.expect("the replica stays ready");
        status = ready["checks"]["cache"]["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "up" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let answer = server.query(READ).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    status
}

#[tokio::test]
async fn rediss_with_the_configured_ca_caches_over_tls() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TlsRedis::start();
    assert_eq!(redis.keys(), 0);

    let status = cache_status_after_a_read(
        &url,
        &format!("rediss://127.0.0.1:{}", redis.port),
        Some(&redis.ca_file()),
    )
    .await;

    assert_eq!(status, "up");
    // Fills may complete just after the answer: wait for the first one.
    eventually(|| async { redis.keys() > 0 }).await;
}

#[tokio::test]
async fn plain_redis_to_a_tls_port_is_degraded_not_working() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TlsRedis::start();

    let status =
        cache_status_after_a_read(&url, &format!("redis://127.0.0.1:{}", redis.port), None).await;

    assert_eq!(status, "degraded");
    assert_eq!(redis.keys(), 0);
}

#[tokio::test]
async fn rediss_with_an_unknown_ca_is_degraded_not_working() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TlsRedis::start();
    let rediss = format!("rediss://127.0.0.1:{}", redis.port);

    // A CA that did not sign the server's certificate, then the system's.
    let other_ca = redis.certificates.path("other-ca.pem");
    for ca_file in [Some(other_ca.as_path()), None] {
        let status = cache_status_after_a_read(&url, &rediss, ca_file).await;

        assert_eq!(status, "degraded", "CA file {ca_file:?}");
        assert_eq!(redis.keys(), 0, "CA file {ca_file:?}");
    }
}

#[tokio::test]
async fn rediss_to_a_plaintext_server_is_degraded_not_plaintext() {
    let (_database, url) = TestDatabase::create().await;
    let redis = TestRedis::start();

    let status =
        cache_status_after_a_read(&url, &format!("rediss://127.0.0.1:{}", redis.port), None).await;

    assert_eq!(status, "degraded");
    assert_eq!(redis.command(&["DBSIZE"]), ":0");
}

#[tokio::test]
async fn a_redis_url_scheme_the_service_cannot_honour_is_refused_at_start() {
    let (_database, url) = TestDatabase::create().await;
    for (redis_url, named) in [
        ("http://127.0.0.1:6379", "\"http\""),
        ("redis-clusters://127.0.0.1:6379", "\"redis-clusters\""),
        ("127.0.0.1:6379", "redis://"),
        ("127.0.0.1:6379", "redis-sentinel://"),
        ("127.0.0.1:6379", "redis-cluster://"),
        ("redis-cluster://127.0.0.1", "names no Cluster node"),
        (
            "redis-sentinel://127.0.0.1:26379,127.0.0.1:26380",
            "sentinelServiceName=NAME",
        ),
    ] {
        let output = finish_within_10s(biblio(&url).args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--redis-url",
            redis_url,
        ]));

        assert_eq!(output.status.code(), Some(1), "{redis_url}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--redis-url"), "{redis_url}: {stderr}");
        assert!(stderr.contains(named), "{redis_url}: {stderr}");
        assert!(!stderr.contains("panicked"), "{redis_url}: {stderr}");
    }
}
