//! Redis Sentinel: the service finds the primary through three sentinels,
//! follows it when they fail over (asked to, or because the primary died),
//! keeps replicas' copies honest across the switch, and a write the old
//! primary acknowledged but never replicated cannot come back as a stale
//! read once the service trusts Redis again. Each test starts its own group
//! (a primary, a replica, three sentinels) from `redis-server`, on free
//! ports; nothing is mocked.
use crate::binary::free_port;
use crate::helpers::{catalogue, TestApp};
use crate::tls::Certificates;
use biblio::cache::Kind;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const SERVICE: &str = "mymaster";
pub(crate) const INSTALL: &str =
    "Install Redis (Debian: apt-get install redis-server redis-tools; \
                       macOS: brew install redis) so that redis-server and redis-cli are on PATH";

/// How long the sentinels may take to agree on anything: generous, since a
/// failover takes seconds and CI runs hundreds of tests on two cores.
const SENTINEL_DEADLINE: Duration = Duration::from_secs(90);

/// Polls `check` until it holds; panics with `what` after `within`.
pub(crate) async fn eventually_within<F, Fut>(within: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `redis-cli` against 127.0.0.1:`port`: its output, trimmed (raw: one
/// line per element), or `None` if it could not connect.
pub(crate) fn cli(port: u16, args: &[&str]) -> Option<String> {
    cli_with(None, port, args)
}

/// [`cli`], over TLS verified with the CA file `ca` if given.
fn cli_with(ca: Option<&Path>, port: u16, args: &[&str]) -> Option<String> {
    let mut command = Command::new("redis-cli");
    if let Some(ca) = ca {
        command.args(["--tls", "--cacert", &ca.display().to_string()]);
    }
    let output = command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run redis-cli ({err}). {INSTALL}"));
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
}

/// One `redis-server` process (a data node or a sentinel).
pub(crate) struct Node {
    pub(crate) port: u16,
    process: Option<Child>,
}

impl Node {
    /// Starts `redis-server` with the arguments `args(port)` on a free
    /// port and waits until it answers. Another process can take the port
    /// between the probe that found it free and the server's bind (the
    /// suites start many servers at once); the server then exits at once,
    /// and another port is tried.
    pub(crate) fn spawn(ca: Option<&Path>, mut args: impl FnMut(u16) -> Vec<String>) -> Self {
        for _ in 0..5 {
            // A cluster node's bus listens 10,000 ports above it, so
            // redis-server refuses a port above 55535.
            let port = std::iter::repeat_with(free_port)
                .find(|port| *port <= 55535)
                .expect("a free port");
            let mut process = Command::new("redis-server")
                .args(args(port))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start redis-server ({err}). {INSTALL}"));
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if cli_with(ca, port, &["PING"]).as_deref() == Some("PONG") {
                    return Self {
                        port,
                        process: Some(process),
                    };
                }
                if process.try_wait().expect("the node's status").is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "redis-server did not answer on port {port}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("redis-server exited at once on five free ports in a row");
    }

    /// A data node; a replica of `primary` if given; TLS only (replication
    /// too) with `certificates`. Whatever it writes (a replica stores the
    /// snapshot it syncs from) goes in a directory under `dir`.
    pub(crate) fn server(
        dir: &Path,
        certificates: Option<&Certificates>,
        primary: Option<u16>,
    ) -> Self {
        Self::spawn(ca(certificates).as_deref(), |port| {
            let mut args: Vec<String> = match certificates {
                None => vec!["--port".into(), port.to_string()],
                Some(certificates) => {
                    let mut args: Vec<String> = vec![
                        "--port".into(),
                        "0".into(),
                        "--tls-port".into(),
                        port.to_string(),
                    ];
                    args.extend(
                        tls_options(certificates)
                            .iter()
                            .flat_map(|(name, value)| [format!("--{name}"), value.clone()]),
                    );
                    args
                }
            };
            args.extend(
                ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(String::from),
            );
            let dir = dir.join(format!("node-{port}"));
            std::fs::create_dir_all(&dir).expect("a node's directory");
            args.extend(["--dir".into(), dir.display().to_string()]);
            if let Some(primary) = primary {
                args.extend([
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    primary.to_string(),
                ]);
            }
            args
        })
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().expect("a running node").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// SIGKILL: the process dies at once, with whatever it had not sent.
    pub(crate) fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.process.is_some() {
            // A stopped process cannot die until it is continued.
            self.signal("-CONT");
        }
        self.kill();
    }
}

/// A primary, a replica of it and three sentinels monitoring it (quorum 2)
/// as `mymaster`, with a short `down-after-milliseconds`; all killed, and
/// their directory removed, when dropped.
pub(crate) struct SentinelGroup {
    /// Indexed by role at start: 0 the primary, 1 the replica.
    pub(crate) servers: Vec<Node>,
    pub(crate) sentinels: Vec<Node>,
    pub(crate) dir: PathBuf,
    /// The CA every node's certificate chains to, when all speak TLS only.
    ca: Option<PathBuf>,
    _certificates: Option<Certificates>,
}

/// The CA file of `certificates`, if any.
fn ca(certificates: Option<&Certificates>) -> Option<PathBuf> {
    certificates.map(|certificates| certificates.path("ca.pem"))
}

/// What makes a node speak TLS, to clients and to the nodes it connects to
/// (a replica to its primary, a sentinel to everything), as config names
/// and values.
fn tls_options(certificates: &Certificates) -> Vec<(&'static str, String)> {
    let file = |name: &str| certificates.path(name).display().to_string();
    vec![
        ("tls-cert-file", file("server.pem")),
        ("tls-key-file", file("server.key")),
        ("tls-ca-cert-file", file("ca.pem")),
        ("tls-auth-clients", "no".into()),
        ("tls-replication", "yes".into()),
    ]
}

impl SentinelGroup {
    pub(crate) fn start() -> Self {
        Self::start_with(None)
    }

    /// A group whose every node (sentinels included) speaks TLS only.
    fn start_tls() -> Self {
        Self::start_with(Some(Certificates::create()))
    }

    fn start_with(certificates: Option<Certificates>) -> Self {
        let dir = std::env::temp_dir().join(format!("biblio-sentinel-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let ca = ca(certificates.as_ref());
        let primary = Node::server(&dir, certificates.as_ref(), None);
        let replica = Node::server(&dir, certificates.as_ref(), Some(primary.port));
        // The sentinels find the replica in the primary's INFO: start them
        // once it is attached, so the first INFO already lists it.
        wait_blocking("the replica to attach", || {
            cli_with(ca.as_deref(), replica.port, &["INFO", "replication"])
                .is_some_and(|info| info.contains("master_link_status:up"))
        });
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(Node::spawn(ca.as_deref(), |port| {
                let conf = dir.join(format!("sentinel-{port}.conf"));
                let listen = match &certificates {
                    None => format!("port {port}\n"),
                    Some(certificates) => {
                        let mut listen = format!("port 0\ntls-port {port}\n");
                        for (name, value) in tls_options(certificates) {
                            listen.push_str(&format!("{name} {value}\n"));
                        }
                        listen
                    }
                };
                std::fs::write(
                    &conf,
                    format!(
                        "{listen}bind 127.0.0.1\ndir {}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 4000\n\
                     sentinel parallel-syncs {SERVICE} 1\n",
                        dir.display(),
                        primary.port
                    ),
                )
                .expect("the sentinel's config is written");
                vec![conf.display().to_string(), "--sentinel".into()]
            }));
        }
        let group = Self {
            servers: vec![primary, replica],
            sentinels,
            dir,
            ca,
            _certificates: certificates,
        };
        group.wait_until_settled(group.servers[0].port, group.servers[1].port);
        group
    }

    /// `redis-cli` to one of the group's nodes (over TLS if they speak it).
    fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        cli_with(self.ca.as_deref(), port, args)
    }

    /// The URL the service is given: every sentinel, comma-separated.
    pub(crate) fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect();
        let scheme = match self.ca {
            None => "redis-sentinel",
            Some(_) => "rediss-sentinel",
        };
        format!(
            "{scheme}://{}/0?sentinelServiceName={SERVICE}",
            hosts.join(",")
        )
    }

    /// The primary's port as `sentinel` reports it.
    pub(crate) fn primary_by(&self, sentinel: &Node) -> Option<u16> {
        let reply = self.cli(
            sentinel.port,
            &["SENTINEL", "get-master-addr-by-name", SERVICE],
        )?;
        reply.lines().nth(1)?.trim().parse().ok()
    }

    /// Waits until every sentinel names `primary` as the primary and knows
    /// `replica` as a healthy replica and the two other sentinels, and
    /// `primary` is one: only then can the group fail over.
    pub(crate) fn wait_until_settled(&self, primary: u16, replica: u16) {
        wait_blocking("the sentinel group to settle", || {
            self.cli(primary, &["ROLE"])
                .is_some_and(|role| role.starts_with("master"))
                && self.sentinels.iter().all(|sentinel| {
                    let replicas = self
                        .cli(sentinel.port, &["SENTINEL", "replicas", SERVICE])
                        .unwrap_or_default();
                    let others = self
                        .cli(sentinel.port, &["SENTINEL", "sentinels", SERVICE])
                        .unwrap_or_default();
                    self.primary_by(sentinel) == Some(primary)
                        && replicas.contains(&format!("127.0.0.1:{replica}"))
                        && !replicas.contains("s_down")
                        && !replicas.contains("disconnected")
                        && others.lines().filter(|line| *line == "name").count() == 2
                })
        });
    }

    /// Waits until every sentinel names `port` as the primary and it says so.
    pub(crate) fn wait_for_primary(&self, port: u16) {
        wait_blocking("the sentinels to promote the replica", || {
            self.cli(port, &["ROLE"])
                .is_some_and(|role| role.starts_with("master"))
                && self
                    .sentinels
                    .iter()
                    .all(|sentinel| self.primary_by(sentinel) == Some(port))
        });
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        self.sentinels.clear();
        self.servers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `check` (blocking: only between the service's steps) until it
/// holds, for up to [`SENTINEL_DEADLINE`].
pub(crate) fn wait_blocking(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + SENTINEL_DEADLINE;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {SENTINEL_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends one command straight to 127.0.0.1:`port` and returns its first
/// reply line (e.g. `+OK`); for arguments too long for a command line.
fn command(port: u16, args: &[&str]) -> String {
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("redis accepts connections");
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).expect("sent");
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .expect("redis replies");
    reply.trim_end().to_owned()
}

pub(crate) const TITLE: &str = "query($id: ID!) { book(id: $id) { title } }";

pub(crate) async fn title(app: &TestApp, id: &str) -> String {
    app.data(None, TITLE, json!({ "id": id })).await["book"]["title"]
        .as_str()
        .expect("a title")
        .to_owned()
}

pub(crate) async fn retitle(app: &TestApp, token: &str, id: &str, title: &str) {
    let data = app
        .data(
            Some(token),
            "mutation($id: ID!, $t: String!) { updateBook(id: $id, input: { title: $t }) { title } }",
            json!({ "id": id, "t": title }),
        )
        .await;
    assert_eq!(data["updateBook"]["title"], title);
}

/// `/readyz`'s cache status.
pub(crate) async fn cache_status(app: &TestApp) -> String {
    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .expect("/readyz answers")
        .json()
        .await
        .expect("a JSON body");
    ready["checks"]["cache"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Watches an app's cache health (what `/readyz` reports) every few
/// milliseconds in the background: whether it was ever `degraded`.
fn watch_for_degraded(app: &TestApp) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(AtomicBool::new(false));
    let cache = app.cache.clone();
    let flag = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            if cache.health().status == "degraded" {
                flag.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    (seen, task)
}

/// How many subscribers the app's invalidation channel has on `port`.
fn subscribers(port: u16, app: &TestApp) -> u64 {
    let channel = format!("{}:invalidate", app.cache.prefix());
    cli(port, &["PUBSUB", "NUMSUB", &channel])
        .and_then(|reply| reply.lines().nth(1)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Every key on `port` whose name ends with `suffix`.
pub(crate) fn keys_ending(port: u16, suffix: &str) -> Vec<String> {
    cli(port, &["KEYS", &format!("*{suffix}")])
        .unwrap_or_default()
        .lines()
        .filter(|key| !key.is_empty())
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_reads_are_shared_in_the_primary_and_writes_reach_every_replica() {
    let group = SentinelGroup::start();
    let apps = TestApp::builder()
        .redis_url(&group.url())
        .replicas(2)
        .spawn_many()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    let (primary, replica) = (group.servers[0].port, group.servers[1].port);
    let cat = catalogue(a, 2).await;
    let id = &cat.books[0];

    assert_eq!(title(a, id).await, "Book 000");
    // A's fill reached the primary the sentinels named, and its replica.
    eventually_within(Duration::from_secs(10), "the fill", || async {
        !keys_ending(primary, id).is_empty() && !keys_ending(replica, id).is_empty()
    })
    .await;
    let before = b.cache.metrics().kind(Kind::Book);
    assert_eq!(title(b, id).await, "Book 000");
    let after = b.cache.metrics().kind(Kind::Book);
    assert_eq!(after.l2_hits - before.l2_hits, 1, "B read A's fill");
    assert_eq!(after.loads, before.loads, "and loaded nothing");
    assert_eq!(
        subscribers(primary, a),
        2,
        "both subscribers on the primary"
    );

    retitle(a, &cat.librarian, id, "Retitled through Sentinel").await;

    eventually_within(Duration::from_secs(10), "B sees A's write", || async {
        title(b, id).await == "Retitled through Sentinel"
    })
    .await;
    assert_eq!(title(a, id).await, "Retitled through Sentinel");
}

/// Both ways a primary goes away: the sentinels are asked to fail over, or
/// it is killed. Either way every connection follows the new primary,
/// `/readyz` is degraded in between and up after, writes made in between
/// are replayed, and afterwards a write on one replica reaches the other.
async fn survives_a_failover(kill: bool) {
    let mut group = SentinelGroup::start();
    let apps = TestApp::builder()
        .redis_url(&group.url())
        .replicas(2)
        .spawn_many()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    let (old, new) = (group.servers[0].port, group.servers[1].port);
    let cat = catalogue(a, 2).await;
    let id = &cat.books[0];
    for app in [a, b] {
        for _ in 0..2 {
            assert_eq!(title(app, id).await, "Book 000");
        }
    }
    let watches = [watch_for_degraded(a), watch_for_degraded(b)];
    let replays = a.cache.metrics().replays();

    if kill {
        group.servers[0].kill();
        // While the sentinels notice: the cache is degraded, writes still
        // succeed, and the other replica sees them within the cap.
        for app in [a, b] {
            eventually_within(Duration::from_secs(30), "degraded", || async {
                cache_status(app).await == "degraded"
            })
            .await;
        }
        retitle(a, &cat.librarian, id, "Written while the primary is dead").await;
        eventually_within(Duration::from_secs(10), "B sees it", || async {
            title(b, id).await == "Written while the primary is dead"
        })
        .await;
    } else {
        let sentinel = group.sentinels[0].port;
        assert_eq!(
            cli(sentinel, &["SENTINEL", "FAILOVER", SERVICE]).as_deref(),
            Some("OK")
        );
    }
    group.wait_for_primary(new);
    if !kill {
        // The sentinels demote the old primary (and kill its clients) only
        // after the promotion.
        wait_blocking("the old primary to follow the new one", || {
            cli(old, &["ROLE"]).is_some_and(|role| role.starts_with("slave"))
        });
    }

    for (seen, _) in &watches {
        eventually_within(
            SENTINEL_DEADLINE,
            "degraded during the failover",
            || async { seen.load(Ordering::Relaxed) },
        )
        .await;
    }
    for (_, task) in &watches {
        task.abort();
    }
    for app in [a, b] {
        eventually_within(SENTINEL_DEADLINE, "up after the failover", || async {
            cache_status(app).await == "up"
        })
        .await;
    }
    // Every connection follows: both subscribers move to the new primary
    // (a subscriber left on the demoted one still hears the channel, which
    // Redis replicates, so "up" can come first), and the cache fills it.
    eventually_within(
        SENTINEL_DEADLINE,
        "both subscribers on the new primary",
        || async { subscribers(new, a) == 2 },
    )
    .await;
    if kill {
        assert!(
            a.cache.metrics().replays() > replays,
            "the write's invalidation was kept pending and replayed"
        );
    }
    assert_eq!(
        a.cache.metrics().failovers() + b.cache.metrics().failovers(),
        1,
        "the promoted primary was noticed, and the namespace moved once"
    );

    retitle(a, &cat.librarian, id, "After the failover").await;
    let written = Instant::now();
    eventually_within(Duration::from_secs(10), "B sees the write", || async {
        title(b, id).await == "After the failover"
    })
    .await;
    println!(
        "after the failover, B saw A's write {:?} after its response (bound: 500 ms)",
        written.elapsed()
    );
    eventually_within(Duration::from_secs(10), "the fill", || async {
        !keys_ending(new, id).is_empty()
    })
    .await;
    // No read after that is stale, on either replica.
    for _ in 0..10 {
        for app in [a, b] {
            assert_eq!(title(app, id).await, "After the failover");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_moves_every_connection_to_the_new_primary() {
    survives_a_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_degrades_the_cache_until_the_sentinels_promote_the_replica() {
    survives_a_failover(true).await;
}

/// The replica falls behind (stopped), the old primary acknowledges a
/// write's invalidation that is still in its replication buffer when it is
/// killed: the promoted replica holds the entry the write had deleted, with
/// its version unmoved. Once the service trusts Redis again, no replica may
/// read it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_failover_lost_is_not_read_back_from_the_promoted_replica() {
    let mut group = SentinelGroup::start();
    let apps = TestApp::builder()
        .redis_url(&group.url())
        .replicas(2)
        .spawn_many()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    let (primary, replica) = (group.servers[0].port, group.servers[1].port);
    let cat = catalogue(a, 2).await;
    let id = &cat.books[0];
    for _ in 0..2 {
        assert_eq!(title(b, id).await, "Book 000");
    }
    // B's fill reached the replica.
    eventually_within(Duration::from_secs(10), "the fill replicated", || async {
        !keys_ending(replica, id).is_empty()
    })
    .await;
    let entries = keys_ending(replica, id);

    // Stop the replica and back up the replication stream behind it: more
    // filler than the kernel's socket buffers on both ends can hold, so
    // what the primary takes next stays in its own memory, unsent.
    group.servers[1].signal("-STOP");
    let buffers: u64 = ["/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/ipv4/tcp_rmem"]
        .iter()
        .map(|path| {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.split_whitespace().last()?.parse().ok())
                .unwrap_or(32 << 20)
        })
        .sum();
    let megabytes = buffers / (1 << 20) + 16;
    for n in 0..megabytes {
        let reply = command(
            primary,
            &[
                "EVAL",
                "redis.call('SET', KEYS[1], string.rep('x', 1048576))",
                "1",
                &format!("filler:{n}"),
            ],
        );
        assert!(!reply.starts_with('-'), "{reply}");
    }
    retitle(a, &cat.librarian, id, "Lost in the failover").await;
    group.servers[0].kill();
    group.servers[1].signal("-CONT");
    group.wait_for_primary(replica);

    // The write's deletion was lost: the promoted replica holds the entry.
    for entry in &entries {
        assert_eq!(
            cli(replica, &["EXISTS", entry]).as_deref(),
            Some("1"),
            "{entry} survived the failover"
        );
    }
    for app in [a, b] {
        eventually_within(SENTINEL_DEADLINE, "up after the failover", || async {
            cache_status(app).await == "up"
        })
        .await;
    }
    for _ in 0..10 {
        for app in [a, b] {
            assert_eq!(title(app, id).await, "Lost in the failover");
        }
    }
    assert_eq!(
        a.cache.metrics().failovers() + b.cache.metrics().failovers(),
        1,
        "one replica moved the namespace, the other learnt it"
    );
}

/// `biblio cache warm`, `stats` and `clear` through the same Sentinel URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_commands_work_through_sentinel() {
    let group = SentinelGroup::start();
    let apps = TestApp::builder()
        .redis_url(&group.url())
        .spawn_many()
        .await;
    let a = &apps[0];
    let primary = group.servers[0].port;
    catalogue(a, 2).await;
    let run = |args: &'static [&'static str]| {
        let mut command = crate::binary::biblio(&a.database_url);
        command
            .arg("cache")
            .args(args)
            .env("REDIS_URL", group.url())
            .env("BIBLIO_CACHE_PREFIX", a.cache.prefix())
            .env("RUST_LOG", "warn");
        async move {
            let output =
                tokio::task::spawn_blocking(move || crate::binary::finish_within_10s(&mut command))
                    .await
                    .expect("the command ran");
            assert!(
                output.status.success(),
                "biblio cache {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).expect("text")
        }
    };

    let warmed = run(&["warm"]).await;
    assert!(warmed.contains("stored"), "{warmed}");
    assert!(!keys_ending(primary, "").is_empty());
    let origin = a.cache.origin().to_owned();
    eventually_within(
        Duration::from_secs(30),
        "the stats list the replica",
        || {
            let stats = run(&["stats", "--json"]);
            let origin = origin.clone();
            async move { stats.await.contains(&origin) }
        },
    )
    .await;
    let namespace = a.cache.namespace();
    let cleared = run(&["clear"]).await;
    assert!(cleared.contains("cleared"), "{cleared}");
    eventually_within(
        Duration::from_secs(10),
        "the replica learns the clear",
        || async { a.cache.namespace() > namespace },
    )
    .await;
}

/// `rediss-sentinel://`: TLS to the sentinels and to the primary they name,
/// verified against `--redis-ca-file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_sentinel_caches_over_tls_to_the_sentinels_and_the_primary() {
    let group = SentinelGroup::start_tls();
    let ca = group.ca.clone().expect("a TLS group");
    assert!(group.url().starts_with("rediss-sentinel://"));
    let apps = TestApp::builder()
        .redis_url(&group.url())
        .configure(move |config| config.cache.redis_ca_file = Some(ca.clone()))
        .replicas(2)
        .spawn_many()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    let primary = group.servers[0].port;
    let cat = catalogue(a, 1).await;
    let id = &cat.books[0];

    assert_eq!(title(a, id).await, "Book 000");
    eventually_within(Duration::from_secs(10), "the fill", || async {
        group
            .cli(primary, &["KEYS", &format!("*{id}")])
            .is_some_and(|keys| !keys.is_empty())
    })
    .await;
    retitle(a, &cat.librarian, id, "Over TLS").await;
    eventually_within(Duration::from_secs(10), "B sees A's write", || async {
        title(b, id).await == "Over TLS"
    })
    .await;
}

/// The differential workload (cached answers equal the uncached oracle's)
/// with every cached replica on a Sentinel-managed primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_cached_answers_equal_the_uncached_oracle() {
    let group = SentinelGroup::start();
    crate::differential::cached_answers_equal_the_uncached_oracle(&group.url()).await;
}

/// What `biblio serve` logs at start through `url`, once it has judged
/// Redis, and its `/readyz`.
async fn start_through(url: &str) -> (String, Value) {
    use crate::binary::{biblio, Capture, Server};
    let (_database, database_url) = crate::helpers::TestDatabase::create().await;
    let stderr = Capture::new("stderr");
    let mut command = biblio(&database_url);
    command.stderr(stderr.stdio());
    let mut server = Server::start(command, &["--redis-url", url]).await;
    let log = stderr
        .wait_for("the first contact", |log| {
            log.contains("Redis answers") || log.contains("Redis is unreachable")
        })
        .await;
    let ready = server.ready().await.expect("ready all the same");
    (log, ready)
}

/// Sentinels that do not answer (a wrong port, the primary's port given
/// instead of a sentinel's) are named at start, with what to check; the
/// replica serves all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_sentinels_are_named_at_start_with_what_to_check() {
    let port = free_port();
    let url = format!("redis-sentinel://127.0.0.1:{port}?sentinelServiceName={SERVICE}");
    let (log, ready) = start_through(&url).await;
    assert!(log.contains("Redis is unreachable"), "{log}");
    assert!(
        log.contains(&format!("none of the sentinels (127.0.0.1:{port}) answers")),
        "{log}"
    );
    assert!(log.contains("26379"), "the sentinels' default port: {log}");
    assert_eq!(ready["checks"]["cache"]["status"], "degraded", "{ready}");
}

/// Sentinels that answer but monitor no such service: the name is the
/// mistake, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_the_sentinels_do_not_monitor_is_named_at_start() {
    let group = SentinelGroup::start();
    let url = group.url().replace(
        &format!("sentinelServiceName={SERVICE}"),
        "sentinelServiceName=nosuch",
    );
    let (log, ready) = start_through(&url).await;
    assert!(log.contains("Redis is unreachable"), "{log}");
    assert!(
        log.contains("the sentinels answer but monitor no service named \\\"nosuch\\\"")
            || log.contains("the sentinels answer but monitor no service named \"nosuch\""),
        "{log}"
    );
    assert_eq!(ready["checks"]["cache"]["status"], "degraded", "{ready}");
}
