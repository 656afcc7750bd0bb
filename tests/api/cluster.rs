//! Redis Cluster: the service on three primaries with a replica each,
//! started by each test from `redis-server --cluster-enabled yes` on free
//! ports and joined with `redis-cli --cluster create`; nothing is mocked.
//! Entries spread over every primary, every write still reaches every
//! replica, `cache clear` and the stats cover every primary, and a primary
//! killed (its replica promoted) is survived.
use crate::helpers::{catalogue, TestApp};
use crate::sentinel::{
    cache_status, cli, eventually_within, retitle, title, wait_blocking, Node, INSTALL,
};
use biblio::cache::Kind;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the cluster may take to agree on anything (a failover takes a
/// few node timeouts; CI runs hundreds of tests on two cores).
const DEADLINE: Duration = Duration::from_secs(90);

/// Three primaries and a replica of each, with a short node timeout so a
/// killed primary is replaced within seconds; all killed, and their
/// directory removed, when dropped.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Node>,
    dir: PathBuf,
}

impl Cluster {
    pub(crate) fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("biblio-cluster-{}", uuid::Uuid::now_v7()));
        let nodes: Vec<Node> = (0..6)
            .map(|_| {
                Node::spawn(None, |port| {
                    let node_dir = dir.join(format!("node-{port}"));
                    std::fs::create_dir_all(&node_dir).expect("a node's directory");
                    [
                        "--port",
                        &port.to_string(),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                        // A replica whose primary dies always takes over (the
                        // default refuses if the link was down too long, which
                        // a loaded CI machine can cause), and syncs at once.
                        "--cluster-replica-validity-factor",
                        "0",
                        "--repl-diskless-sync-delay",
                        "0",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        &node_dir.display().to_string(),
                    ]
                    .map(String::from)
                    .to_vec()
                })
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run redis-cli ({err}). {INSTALL}"));
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes, dir };
        cluster.wait_until_healthy(true);
        cluster
    }

    /// Waits until every live node sees the cluster `ok` with three
    /// primaries, and, if `replicated`, three replicas whose link to their
    /// primary is up (synced, not only attached): only then can a primary
    /// fail over.
    pub(crate) fn wait_until_healthy(&self, replicated: bool) {
        wait_blocking("the cluster to be healthy", || {
            self.live().all(|port| {
                cli(port, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            }) && self.primaries().len() == 3
                && (!replicated
                    || self
                        .live()
                        .filter(|port| {
                            cli(*port, &["INFO", "replication"])
                                .is_some_and(|info| info.contains("master_link_status:up"))
                        })
                        .count()
                        == 3)
        });
    }

    /// The URL the service is given: one node, the others as `node=`.
    pub(crate) fn url(&self) -> String {
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|node| format!("node=127.0.0.1:{}", node.port))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.nodes[0].port,
            others.join("&")
        )
    }

    /// The ports of the nodes that still answer.
    fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .map(|node| node.port)
            .filter(|port| cli(*port, &["PING"]).as_deref() == Some("PONG"))
    }

    /// The ports of the live primaries.
    pub(crate) fn primaries(&self) -> Vec<u16> {
        self.live()
            .filter(|port| cli(*port, &["ROLE"]).is_some_and(|role| role.starts_with("master")))
            .collect()
    }

    /// Every key on every live primary matching `pattern`.
    fn keys(&self, pattern: &str) -> Vec<(u16, String)> {
        self.primaries()
            .into_iter()
            .flat_map(|port| {
                cli(port, &["KEYS", pattern])
                    .unwrap_or_default()
                    .lines()
                    .filter(|key| !key.is_empty())
                    .map(|key| (port, key.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// A node's cluster id.
    pub(crate) fn id_of(port: u16) -> String {
        cli(port, &["CLUSTER", "MYID"]).expect("a node id")
    }

    /// The hash slot of a key (or of a hash tag given as the key).
    pub(crate) fn slot_of(&self, key: &str) -> u16 {
        let port = self.primaries()[0];
        cli(port, &["CLUSTER", "KEYSLOT", key])
            .and_then(|slot| slot.parse().ok())
            .expect("a slot")
    }

    /// The port of the live primary that serves `slot`, as its own
    /// `CLUSTER NODES` says.
    pub(crate) fn owner(&self, slot: u16) -> u16 {
        self.primaries()
            .into_iter()
            .find(|port| {
                let nodes = cli(*port, &["CLUSTER", "NODES"]).unwrap_or_default();
                let Some(myself) = nodes.lines().find(|line| line.contains("myself")) else {
                    return false;
                };
                // id address flags primary ping pong epoch link slots…
                myself.split_whitespace().skip(8).any(|range| {
                    let (from, to) = range.split_once('-').unwrap_or((range, range));
                    match (from.parse::<u16>(), to.parse::<u16>()) {
                        (Ok(from), Ok(to)) => (from..=to).contains(&slot),
                        _ => false, // `[slot->-id]`: a migration in progress
                    }
                })
            })
            .unwrap_or_else(|| panic!("no live primary serves slot {slot}"))
    }

    /// Moves `slot` from its primary to the primary `to` by hand, as
    /// `redis-cli --cluster reshard` does for each slot (`CLUSTER SETSLOT`
    /// IMPORTING/MIGRATING, `MIGRATE` of its keys, `SETSLOT … NODE`), but
    /// keeps it migrating for `hold` with its keys moved: meanwhile clients
    /// get `ASK` for every key, and `TRYAGAIN` for scripts whose keys are
    /// split. Blocking.
    pub(crate) fn migrate_slot(&self, slot: u16, to: u16, hold: Duration) {
        let from = self.owner(slot);
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let (from_id, to_id) = (Self::id_of(from), Self::id_of(to));
        let slot = slot.to_string();
        let setslot = |port: u16, args: &[&str]| {
            let reply = cli(port, &[&["CLUSTER", "SETSLOT", &slot][..], args].concat());
            assert_eq!(
                reply.as_deref(),
                Some("OK"),
                "SETSLOT {slot} {args:?} on {port}"
            );
        };
        setslot(to, &["IMPORTING", &from_id]);
        setslot(from, &["MIGRATING", &to_id]);
        let move_keys = || loop {
            let keys = cli(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "1000"]).unwrap_or_default();
            let keys: Vec<&str> = keys.lines().filter(|key| !key.is_empty()).collect();
            if keys.is_empty() {
                return;
            }
            let port = to.to_string();
            let reply = cli(
                from,
                &[
                    &[
                        "MIGRATE",
                        "127.0.0.1",
                        &port,
                        "",
                        "0",
                        "5000",
                        "REPLACE",
                        "KEYS",
                    ][..],
                    &keys,
                ]
                .concat(),
            );
            assert_eq!(reply.as_deref(), Some("OK"), "MIGRATE of slot {slot}");
        };
        move_keys();
        std::thread::sleep(hold);
        // Keys that existed on the source were still written there meanwhile.
        move_keys();
        setslot(to, &["NODE", &to_id]);
        setslot(from, &["NODE", &to_id]);
        for port in self.primaries() {
            if port != from && port != to {
                setslot(port, &["NODE", &to_id]);
            }
        }
    }

    pub(crate) fn node(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.port == port)
            .expect("a node of the cluster")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const BOOKS: &str = "query { books(page: 1, pageSize: 50) { items { id title } } }";

/// The titles of the first page of books, in order.
async fn titles(app: &TestApp) -> Vec<String> {
    let data = app.data(None, BOOKS, json!({})).await;
    data["books"]["items"]
        .as_array()
        .expect("a page")
        .iter()
        .map(|book| book["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_entries_spread_over_every_primary_and_writes_reach_every_replica() {
    let cluster = Cluster::start();
    let apps = TestApp::builder()
        .redis_url(&cluster.url())
        .replicas(2)
        .spawn_many()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    a.wait_for_cache().await;
    b.wait_for_cache().await;
    // 48 books: each of 3 primaries holds some unless 48 random slots all
    // miss one of them, a chance of 3 * (2/3)^48, about 1 in 10^8.
    let cat = catalogue(a, 48).await;
    for id in &cat.books {
        title(a, id).await;
    }
    let prefix = a.cache.prefix().to_owned();
    let filled = cluster.keys(&format!("{prefix}:v*:n0:{{book:*}}"));
    let primaries: std::collections::BTreeSet<u16> = filled.iter().map(|(port, _)| *port).collect();
    assert_eq!(filled.len(), 48, "every book filled once: {filled:?}");
    assert_eq!(primaries.len(), 3, "on every primary: {filled:?}");

    // `/readyz` names the topology, every primary and the subscriber's node.
    let ready: serde_json::Value = a
        .client
        .get(format!("{}/readyz", a.address))
        .send()
        .await
        .expect("/readyz answers")
        .json()
        .await
        .expect("a JSON body");
    let cache = &ready["checks"]["cache"];
    assert_eq!(cache["topology"], "cluster", "{cache}");
    let mut listed: Vec<String> = cluster
        .primaries()
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    listed.sort();
    assert_eq!(cache["primaries"], serde_json::json!(listed), "{cache}");
    let node = cache["subscriber_node"].as_str().unwrap_or_default();
    assert!(
        cluster
            .live()
            .any(|port| node == format!("127.0.0.1:{port}")),
        "the subscriber is on one of the cluster's nodes: {cache}"
    );

    let before = b.cache.metrics().kind(Kind::Book);
    for id in &cat.books {
        title(b, id).await;
    }
    let after = b.cache.metrics().kind(Kind::Book);
    assert_eq!(after.l2_hits - before.l2_hits, 48, "B read A's fills");
    assert_eq!(after.loads, before.loads, "and loaded nothing");
    let listed = titles(b).await;
    assert_eq!(titles(a).await, listed);

    // Entries in every slot and a group: each write reaches both replicas.
    for (n, id) in cat.books.iter().enumerate().step_by(3) {
        let new = format!("Retitled on a cluster {n}");
        retitle(a, &cat.librarian, id, &new).await;
        eventually_within(Duration::from_secs(10), "B sees A's write", || async {
            title(b, id).await == new
        })
        .await;
        assert_eq!(title(a, id).await, new);
    }
    eventually_within(Duration::from_secs(10), "the lists agree", || async {
        titles(a).await == titles(b).await
    })
    .await;
    assert!(titles(b)
        .await
        .contains(&"Retitled on a cluster 9".to_owned()));
}

/// `biblio cache stats` and `clear` through the cluster URL: the stats
/// count the keys of every primary; the clear reaches every replica and
/// removes the old namespace's keys from every primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_clear_and_stats_cover_every_primary() {
    let cluster = Cluster::start();
    let apps = TestApp::builder()
        .redis_url(&cluster.url())
        .replicas(2)
        .spawn_many()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    a.wait_for_cache().await;
    b.wait_for_cache().await;
    let cat = catalogue(a, 12).await;
    for id in &cat.books {
        title(a, id).await;
    }
    titles(a).await;
    let prefix = a.cache.prefix().to_owned();
    let run = |args: &'static [&'static str]| {
        let mut command = crate::binary::biblio(&a.database_url);
        command
            .arg("cache")
            .args(args)
            .env("REDIS_URL", cluster.url())
            .env("BIBLIO_CACHE_PREFIX", &prefix)
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

    let everything = format!("{prefix}:*");
    let counted_before = cluster.keys(&everything).len() as u64;
    let stats: Value = serde_json::from_str(&run(&["stats", "--json"]).await).expect("JSON");
    let counted_after = cluster.keys(&everything).len() as u64;
    let keys = stats["redis"]["keys"].as_u64().expect("a key count");
    assert_eq!(stats["redis"]["keys_complete"], true, "{stats}");
    assert!(
        (counted_before.min(counted_after)..=counted_before.max(counted_after)).contains(&keys),
        "the stats count every primary's keys: {keys}, KEYS found {counted_before}..{counted_after}"
    );
    let old = format!("{prefix}:v*:n0:*");
    let spread: std::collections::BTreeSet<u16> = cluster
        .keys(&old)
        .into_iter()
        .map(|(port, _)| port)
        .collect();
    assert_eq!(spread.len(), 3, "entries on every primary");

    let cleared = run(&["clear"]).await;
    assert!(cleared.contains("cleared"), "{cleared}");
    for app in [a, b] {
        eventually_within(
            Duration::from_secs(10),
            "the replica learns the clear",
            || async { app.cache.namespace() > 0 },
        )
        .await;
    }
    assert!(
        cluster.keys(&old).is_empty(),
        "no old entry left on any primary: {:?}",
        cluster.keys(&old)
    );
    let loads = b.cache.metrics().kind(Kind::Book).loads;
    assert_eq!(title(b, &cat.books[0]).await, "Book 000");
    assert_eq!(
        b.cache.metrics().kind(Kind::Book).loads,
        loads + 1,
        "the clear emptied B's tiers"
    );
}

/// A primary holding a book's entry is killed: while its replica is not yet
/// promoted the cache is degraded and a write still reaches the other
/// service replica; after the promotion the namespace moves (the promoted
/// replica may lack acknowledged invalidations), both report `up`, and
/// every read is the written value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_on_a_cluster_is_survived_within_the_bound() {
    let mut cluster = Cluster::start();
    let apps = TestApp::builder()
        .redis_url(&cluster.url())
        .replicas(2)
        .spawn_many()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    a.wait_for_cache().await;
    b.wait_for_cache().await;
    let cat = catalogue(a, 2).await;
    let id = &cat.books[0];
    for app in [a, b] {
        assert_eq!(title(app, id).await, "Book 000");
    }
    let prefix = a.cache.prefix().to_owned();
    let filled = cluster.keys(&format!("{prefix}:v*:n0:{{book:{id}}}"));
    let [(victim, _)] = filled.as_slice() else {
        panic!("the book's entry on one primary: {filled:?}");
    };
    let victim = *victim;
    let failovers = a.cache.metrics().failovers() + b.cache.metrics().failovers();

    cluster.node(victim).kill();
    for app in [a, b] {
        eventually_within(Duration::from_secs(30), "degraded", || async {
            cache_status(app).await == "degraded"
        })
        .await;
    }
    retitle(a, &cat.librarian, id, "Written while a primary is dead").await;
    eventually_within(Duration::from_secs(10), "B sees it", || async {
        title(b, id).await == "Written while a primary is dead"
    })
    .await;

    cluster.wait_until_healthy(false);
    for app in [a, b] {
        eventually_within(DEADLINE, "up after the failover", || async {
            cache_status(app).await == "up"
        })
        .await;
    }
    assert!(
        a.cache.metrics().failovers() + b.cache.metrics().failovers() > failovers,
        "the promotion moved the namespace"
    );
    for app in [a, b] {
        for _ in 0..3 {
            assert_eq!(title(app, id).await, "Written while a primary is dead");
        }
    }
    retitle(b, &cat.librarian, id, "Written after the failover").await;
    eventually_within(Duration::from_secs(10), "A sees it", || async {
        title(a, id).await == "Written after the failover"
    })
    .await;
}

/// The differential workload (cached answers equal the uncached oracle's)
/// with every cached replica on a Redis Cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_cached_answers_equal_the_uncached_oracle() {
    let cluster = Cluster::start();
    crate::differential::cached_answers_equal_the_uncached_oracle(&cluster.url()).await;
}

/// Slots move from one primary to another (`redis-cli --cluster reshard`)
/// while one replica writes and the other reads: `MOVED` and `ASK` are
/// followed, what fails meanwhile is replayed, and once the move is done
/// both replicas read every book as last written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_migrated_while_writes_and_reads_run_leave_every_replica_exact() {
    let cluster = Cluster::start();
    let apps = TestApp::builder()
        .redis_url(&cluster.url())
        .replicas(2)
        .spawn_many()
        .await;
    let (a, b) = (&apps[0], &apps[1]);
    let cat = catalogue(a, 12).await;
    let mut written: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (n, id) in cat.books.iter().enumerate() {
        written.insert(id.clone(), format!("Book {n:03}"));
        title(a, id).await;
        title(b, id).await;
    }
    let primaries = cluster.primaries();
    let (from, to) = (Cluster::id_of(primaries[0]), Cluster::id_of(primaries[1]));
    let mut reshard = Command::new("redis-cli");
    reshard
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", primaries[0]),
        ])
        .args(["--cluster-from", &from, "--cluster-to", &to])
        .args(["--cluster-slots", "3000", "--cluster-yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let moving = tokio::task::spawn_blocking(move || {
        reshard
            .output()
            .unwrap_or_else(|err| panic!("cannot run redis-cli ({err}). {INSTALL}"))
    });

    let mut writes = 0;
    while !moving.is_finished() {
        let id = &cat.books[writes % cat.books.len()];
        let new = format!("Written during the move {writes}");
        retitle(a, &cat.librarian, id, &new).await;
        written.insert(id.clone(), new);
        for id in cat.books.iter().take(4) {
            title(b, id).await;
        }
        titles(b).await;
        writes += 1;
    }
    let moved = moving.await.expect("redis-cli ran");
    assert!(
        moved.status.success(),
        "redis-cli --cluster reshard: {}",
        String::from_utf8_lossy(&moved.stdout)
    );
    assert!(writes > 0, "no write ran while the slots moved");

    for app in [a, b] {
        eventually_within(DEADLINE, "up after the move", || async {
            cache_status(app).await == "up"
        })
        .await;
    }
    for (id, expected) in &written {
        for app in [a, b] {
            eventually_within(
                Duration::from_secs(10),
                "the last write is read",
                || async { title(app, id).await == *expected },
            )
            .await;
        }
    }
    eventually_within(Duration::from_secs(10), "the lists agree", || async {
        titles(a).await == titles(b).await
    })
    .await;
}
