//! A history checker for the staleness bound, under injected faults.
//!
//! Three replicas (separate processes of the real binary, `faults.rs`) share
//! one database and one test-owned `redis-server`. One writer per book
//! renames its book to `b<book> v<n>`, n rising, always on the book's home
//! replica (so each book's versions are totally ordered, every written value
//! is unique, and the other replicas learn of it only through invalidation);
//! the last book's writer is another program: it renames the book with plain
//! SQL on the database, which no replica sees but through the triggers that
//! record other programs' writes (`FOREIGN_BOOK`);
//! readers read `book(id) { title }` on random replicas (and one reads pages
//! of `books` on one replica, see `PAGE_REPLICA`).
//! Every operation is recorded with the time it was sent, the time its
//! response was received and what it returned. Meanwhile a fault is injected
//! into Redis (or the writing replica is killed).
//!
//! A read is *stale at D* when it returns a version older than a write to
//! that book that was acknowledged more than D before the read was sent.
//! Times are taken on the client: a read's start is taken before it is sent
//! and a write's acknowledgement after its response arrived, so any slack in
//! the harness makes reads look fresher, never staler: a stale read reported
//! here really was stale.
//!
//! Each scenario prints the reads, the stale counts at D = 0, 10, 50, 250 and
//! 1000 ms and the delivery time, and fails when a read is stale at the
//! scenario's bound (printing the history around it), or when a request
//! failed (any status but 200, a GraphQL error, a transport error other than
//! to a replica the test killed).
//!
//! With read replicas (`Topology::Standby`, PostgreSQL only) the database is
//! a primary and a streaming standby the test starts (`read_replicas.rs`),
//! replaying 200 ms behind; every replica reads its misses from the standby
//! when it may (`--database-read-url`) and connects as a role that is not a
//! superuser, so that revoking `pg_current_wal_lsn()` reaches it. The
//! standby is paused, or the WAL position made unreadable, as the fault;
//! each cycle begins with a quiet spell in which the standby catches up
//! (so the fault starts with the standby qualifying for reads), and the
//! page reader asks for pages of many sizes, so that some misses do go to
//! the standby: the scenario fails if none did. On SQLite these
//! scenarios say they are skipped and pass, as `read_replicas.rs` does.
//!
//! `cargo test --test api history -- --nocapture` shows the tables; each
//! scenario runs one fault cycle (a few seconds).
//! `BIBLIO_HISTORY_SECS=60` repeats the fault for at least that long per
//! scenario, for a measurement run.
//! `BIBLIO_HISTORY_DUMP=DIR` writes each scenario's whole history and its
//! replicas' logs there; `BIBLIO_HISTORY_LOG` is the replicas' `RUST_LOG`
//! (default `warn`). The history's first line gives the wall-clock time of
//! t=0, to line it up with the logs.
use crate::cluster::Cluster as RedisCluster;
use crate::faults::{graphql, Cluster, Database, Deployment, Redis};
use crate::helpers::isbn;
use crate::read_replicas::on_postgres;
use crate::sentinel::{cli, wait_blocking, SentinelGroup, SERVICE};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// No fault.
    RedisUp,
    /// `kill -STOP` for 2 s, then `kill -CONT`: sockets stay open, Redis is
    /// silent.
    RedisPaused,
    /// `CLIENT PAUSE 1500 WRITE`: reads answer, writes and PUBLISH wait.
    WritesPaused,
    /// `REPLICAOF` a port nobody listens on, for 1.5 s: Redis turns into a
    /// read-only replica that keeps its data, answers reads and PUBLISH, and
    /// refuses every write with `-READONLY`, as a primary demoted by a
    /// failover does to clients still connected to it.
    WritesRefused,
    /// `maxmemory 1` with `noeviction` for 1.5 s: a full Redis refuses the
    /// commands that may grow memory (`-OOM`), and answers reads, DEL and
    /// PUBLISH.
    RedisFull,
    /// `CLIENT KILL TYPE pubsub`: the subscribers' connections are closed.
    SubscriberKilled,
    /// SIGKILL, down 1 s, restarted on the same port with no data.
    RedisRestartedEmpty,
    /// Replica 0 is the only writer; Redis is SIGKILLed, replica 0
    /// acknowledges writes meanwhile, then is SIGKILLed itself, and Redis
    /// comes back with its old data (append-only file). The survivors keep
    /// reading, and so does a replacement for replica 0 (cold L1, as after
    /// an orchestrator's restart); no more writes until the next cycle.
    WriterKilledDuringOutage,
    /// A Sentinel group (a primary, a replica, three sentinels), no fault.
    SentinelUp,
    /// `SENTINEL FAILOVER`: the replica is promoted, the old primary
    /// demoted once it has caught up.
    SentinelFailover,
    /// The Sentinel group's primary SIGKILLed: the sentinels notice (1 s
    /// down-after) and promote the replica; a new replica of the new
    /// primary replaces the dead one.
    SentinelPrimaryKilled,
    /// A Redis Cluster (three primaries, a replica each), no fault.
    ClusterUp,
    /// The Cluster primary holding the deployment's counters SIGKILLed: its
    /// replica is promoted (1 s node timeout).
    ClusterPrimaryKilled,
    /// The slot of every book's entries moves to another primary, each
    /// held migrating for a moment.
    ClusterSlotsMigrated,
    /// The slot of the deployment's counters (namespace, sequence,
    /// generations, heartbeat) moves to another primary, held migrating
    /// for a moment.
    ClusterCountersSlotMigrated,
    /// PostgreSQL with a streaming standby every replica reads from, its
    /// replay held 200 ms behind (`recovery_min_apply_delay`); no other
    /// fault. Each cycle ends with a quiet spell in which the standby
    /// catches up and serves the misses.
    StandbyLagging,
    /// As [`Fault::StandbyLagging`], and the standby's replay paused
    /// (`pg_wal_replay_pause()`) for 1.5 s from the end of a quiet spell,
    /// while the writes go on.
    StandbyReplayPaused,
    /// As [`Fault::StandbyReplayPaused`], and meanwhile biblio's role may
    /// not read the primary's WAL position (`pg_current_wal_lsn()`
    /// revoked): every write's invalidation goes out with its position
    /// unknown, and the standby, whose replay position is past every known
    /// one, is 1.5 s behind them.
    PrimaryPositionUnreadable,
}

/// Which Redis deployment a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    Single,
    Sentinel,
    Cluster,
    /// One Redis server; the database a PostgreSQL primary with a
    /// streaming standby the replicas read from.
    Standby,
}

/// The bound table (docs/caching.md, "The bound"): how much later than a write's
/// acknowledgement a read on any replica may start and still miss it, per
/// fault, in milliseconds. Keep the two in step.
const BOUNDS: [(Fault, u64); 18] = [
    (Fault::RedisUp, 500),
    (Fault::RedisPaused, 1000),
    (Fault::WritesPaused, 1000),
    (Fault::WritesRefused, 1000),
    (Fault::RedisFull, 1000),
    (Fault::SubscriberKilled, 1000),
    (Fault::RedisRestartedEmpty, 1000),
    (Fault::WriterKilledDuringOutage, 1000),
    (Fault::SentinelUp, 500),
    (Fault::SentinelFailover, 1000),
    (Fault::SentinelPrimaryKilled, 1000),
    (Fault::ClusterUp, 500),
    (Fault::ClusterPrimaryKilled, 1000),
    (Fault::ClusterSlotsMigrated, 1000),
    (Fault::ClusterCountersSlotMigrated, 1000),
    // Redis is healthy: a standby's lag must cost nothing.
    (Fault::StandbyLagging, 500),
    (Fault::StandbyReplayPaused, 500),
    (Fault::PrimaryPositionUnreadable, 500),
];

/// The D's the stale counts are printed for, in milliseconds.
const STALENESS: [u64; 5] = [0, 10, 50, 250, 1000];

const REPLICAS: usize = 3;
const BOOKS: usize = 4;
/// The book renamed with plain SQL, behind every replica's back.
const FOREIGN_BOOK: usize = BOOKS - 1;
/// Readers of single books, on random replicas; one more reads pages.
const READERS: usize = 6;
/// Where pages are read. A page whose list misses L1 is read from the
/// database, and the rows it read refresh that replica's L1 entities: pages
/// read everywhere would refresh every replica all the time and hide what
/// `book(id)` can serve. So one replica (never the one scenario 6 kills)
/// serves pages, and the others only single books.
const PAGE_REPLICA: usize = REPLICAS - 1;
/// Generous: a request is an error only if the service really hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Before the first fault: every replica has every book in L1 and L2.
const WARM_UP: Duration = Duration::from_secs(1);

const BOOK: &str = "query($id: ID!) { book(id: $id) { id title } }";
const PAGE: &str = "query($size: Int!) { books(pageSize: $size) { items { id title } } }";
const RENAME: &str =
    "mutation($id: ID!, $t: String!) { updateBook(id: $id, input: { title: $t }) { id title } }";

impl Fault {
    fn bound(self) -> u64 {
        BOUNDS
            .iter()
            .find(|(fault, _)| *fault == self)
            .map(|(_, bound)| *bound)
            .expect("every fault has a bound")
    }

    fn describe(self) -> &'static str {
        match self {
            Self::RedisUp => "redis up (no fault)",
            Self::RedisPaused => "redis paused (SIGSTOP 2 s)",
            Self::WritesPaused => "writes paused (CLIENT PAUSE 1500 WRITE)",
            Self::WritesRefused => "writes refused (read-only replica, 1.5 s)",
            Self::RedisFull => "redis full (maxmemory 1, noeviction, 1.5 s)",
            Self::SubscriberKilled => "subscriber killed (CLIENT KILL TYPE pubsub)",
            Self::RedisRestartedEmpty => "redis restarted empty (SIGKILL, 1 s down)",
            Self::WriterKilledDuringOutage => {
                "writer killed during an outage (redis back with its data)"
            }
            Self::SentinelUp => "sentinel, no fault",
            Self::SentinelFailover => "sentinel, SENTINEL FAILOVER",
            Self::SentinelPrimaryKilled => "sentinel, primary SIGKILLed (replica promoted)",
            Self::ClusterUp => "cluster, no fault",
            Self::ClusterPrimaryKilled => {
                "cluster, the counters' primary SIGKILLed (replica promoted)"
            }
            Self::ClusterSlotsMigrated => "cluster, books' slots migrated (held 300 ms each)",
            Self::ClusterCountersSlotMigrated => {
                "cluster, the counters' slot migrated (held 300 ms)"
            }
            Self::StandbyLagging => "read replica, replay 200 ms behind",
            Self::StandbyReplayPaused => "read replica, replay paused 1.5 s",
            Self::PrimaryPositionUnreadable => {
                "read replica paused, the primary's WAL position unreadable 1.5 s"
            }
        }
    }

    /// Whether `BIBLIO_HISTORY_SECS` may repeat the fault: a killed node
    /// is not replaced, so a second kill would leave no replica to promote.
    fn repeats(self) -> bool {
        !matches!(
            self,
            Self::SentinelPrimaryKilled | Self::ClusterPrimaryKilled
        )
    }

    fn topology(self) -> Topology {
        match self {
            Self::SentinelUp | Self::SentinelFailover | Self::SentinelPrimaryKilled => {
                Topology::Sentinel
            }
            Self::ClusterUp
            | Self::ClusterPrimaryKilled
            | Self::ClusterSlotsMigrated
            | Self::ClusterCountersSlotMigrated => Topology::Cluster,
            Self::StandbyLagging | Self::StandbyReplayPaused | Self::PrimaryPositionUnreadable => {
                Topology::Standby
            }
            _ => Topology::Single,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_staler_than_the_bound_with_redis_up() {
    check(Fault::RedisUp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_staler_than_the_bound_while_redis_is_paused() {
    check(Fault::RedisPaused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_staler_than_the_bound_while_redis_refuses_writes() {
    check(Fault::WritesPaused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_staler_than_the_bound_while_redis_is_read_only_and_refuses_writes() {
    check(Fault::WritesRefused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_staler_than_the_bound_while_redis_is_full() {
    check(Fault::RedisFull).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_staler_than_the_bound_when_the_subscriber_is_killed() {
    check(Fault::SubscriberKilled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_staler_than_the_bound_when_redis_restarts_empty() {
    check(Fault::RedisRestartedEmpty).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_never_staler_than_the_bound_when_the_writer_dies_during_an_outage() {
    check(Fault::WriterKilledDuringOutage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_reads_are_never_staler_than_the_bound() {
    check(Fault::SentinelUp).await;
}

// Until the sentinels demote the old primary (some 10 s after the
// promotion), replicas can be split between the two; each asks the
// sentinels on every heartbeat and stops trusting the bus while they name
// another primary than its connections do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_reads_are_never_staler_than_the_bound_across_a_failover() {
    check(Fault::SentinelFailover).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_reads_are_never_staler_than_the_bound_when_the_primary_is_killed() {
    check(Fault::SentinelPrimaryKilled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_reads_are_never_staler_than_the_bound() {
    check(Fault::ClusterUp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_reads_are_never_staler_than_the_bound_when_a_primary_is_killed() {
    check(Fault::ClusterPrimaryKilled).await;
}

// Scripts with keys in a migrating slot fail (TRYAGAIN): the writer keeps
// its invalidation pending, and every other replica stops trusting the bus
// when its outbox sweep finds the invalidation and cannot publish it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_reads_are_never_staler_than_the_bound_while_slots_migrate() {
    check(Fault::ClusterSlotsMigrated).await;
}

// Scripts with keys in a migrating slot fail (TRYAGAIN): the writer keeps
// its invalidation pending, and every other replica stops trusting the bus
// when its outbox sweep finds the invalidation and cannot publish it either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_reads_are_never_staler_than_the_bound_while_the_counters_slot_migrates() {
    check(Fault::ClusterCountersSlotMigrated).await;
}

// PostgreSQL only (as `read_replicas.rs`): on SQLite these say so and pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_lagging_read_replica_reads_are_never_staler_than_the_bound() {
    check(Fault::StandbyLagging).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_read_replica_reads_are_never_staler_than_the_bound_while_its_replay_is_paused() {
    check(Fault::StandbyReplayPaused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_read_replica_reads_are_never_staler_than_the_bound_while_the_wal_position_is_unreadable(
) {
    check(Fault::PrimaryPositionUnreadable).await;
}

// ---------------------------------------------------------------------------
// The history.

#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    /// A transport error from a replica the test had killed.
    Lost(String),
    Error(String),
}

#[derive(Debug, Clone)]
enum What {
    Write {
        book: usize,
        version: u64,
        outcome: Outcome,
    },
    Read {
        page: bool,
        /// (book, version) for every book the response showed.
        seen: Vec<(usize, u64)>,
        outcome: Outcome,
    },
    /// A fault injected, or anything else the scenario did.
    Note(String),
}

#[derive(Debug, Clone)]
struct Op {
    /// `w<book>`, `f<book>` (the plain-SQL writer), `r<reader>`, or `test`.
    who: String,
    /// The replica's slot; `None` for notes and plain-SQL writes.
    replica: Option<usize>,
    /// Sent, and response received, since the history began.
    start: Duration,
    end: Duration,
    what: What,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok => write!(f, "ok"),
            Self::Lost(text) => write!(f, "lost to the kill ({text})"),
            Self::Error(text) => write!(f, "ERROR {text}"),
        }
    }
}

impl Op {
    fn acked_write(&self) -> Option<(usize, u64)> {
        match &self.what {
            What::Write {
                book,
                version,
                outcome: Outcome::Ok,
            } => Some((*book, *version)),
            _ => None,
        }
    }
}

/// What the clients and the scenario share.
struct Shared {
    epoch: Instant,
    client: reqwest::Client,
    token: String,
    /// Book ids, by book number.
    books: Vec<String>,
    numbers: HashMap<String, usize>,
    /// Each slot's GraphQL URL while its replica lives.
    targets: RwLock<Vec<Option<String>>>,
    /// `Some(slot)`: every write goes to that replica (and waits while it is
    /// dead); `None`: book b's writes go to replica b % REPLICAS.
    writer: Option<usize>,
    /// Writers wait while this is false.
    writing: AtomicBool,
    /// The page reader's page sizes: 20 only, or (with a standby) one of
    /// many, so that its reads miss and reach the database, standby
    /// included, in the quiet spells.
    page_sizes: (u64, u64),
    /// URLs of replicas the test killed: transport errors there are expected.
    killed: Mutex<HashSet<String>>,
    history: Mutex<Vec<Op>>,
    /// Periods of fault (and of recovery right after), kept out of the
    /// delivery time.
    windows: Mutex<Vec<(Duration, Duration)>>,
    stop: AtomicBool,
}

impl Shared {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn record(&self, op: Op) {
        self.history.lock().unwrap().push(op);
    }

    fn note(&self, text: impl Into<String>) {
        let now = self.now();
        self.record(Op {
            who: "test".into(),
            replica: None,
            start: now,
            end: now,
            what: What::Note(text.into()),
        });
    }

    /// Marks `[from, from + length]` as a fault window.
    fn window(&self, from: Duration, length: Duration) {
        self.windows.lock().unwrap().push((from, from + length));
    }

    fn target(&self, rng: &mut Rng) -> Option<(usize, String)> {
        let targets = self.targets.read().unwrap();
        let live: Vec<(usize, String)> = targets
            .iter()
            .enumerate()
            .filter_map(|(slot, url)| Some((slot, url.clone()?)))
            .collect();
        (!live.is_empty()).then(|| live[rng.below(live.len() as u64) as usize].clone())
    }

    /// Sends one GraphQL request; its `data`, or how it failed.
    async fn send(&self, url: &str, query: &str, variables: Value) -> Result<Value, Outcome> {
        let result = self
            .client
            .post(url)
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await;
        let response = match result {
            Ok(response) => response,
            Err(err) => {
                let text = format!("transport: {err}");
                return Err(if self.killed.lock().unwrap().contains(url) {
                    Outcome::Lost(text)
                } else {
                    Outcome::Error(text)
                });
            }
        };
        let status = response.status().as_u16();
        let body = match response.json::<Value>().await {
            Ok(body) => body,
            Err(err) => {
                let text = format!("HTTP {status}, body lost: {err}");
                return Err(if self.killed.lock().unwrap().contains(url) {
                    Outcome::Lost(text)
                } else {
                    Outcome::Error(text)
                });
            }
        };
        if status != 200 || body.get("errors").is_some() {
            return Err(Outcome::Error(format!("HTTP {status}: {body}")));
        }
        Ok(body["data"].clone())
    }

    /// (book, version) from a title `b<book> v<version>`.
    fn parse(&self, id: &Value, title: &Value) -> Result<(usize, u64), Outcome> {
        let book = id
            .as_str()
            .and_then(|id| self.numbers.get(id))
            .ok_or_else(|| Outcome::Error(format!("an unknown book {id}")))?;
        let version = title
            .as_str()
            .and_then(|title| title.strip_prefix(&format!("b{book} v")))
            .and_then(|version| version.parse().ok())
            .ok_or_else(|| Outcome::Error(format!("book {book} has the title {title}")))?;
        Ok((*book, version))
    }
}

/// xorshift64*: no dependency, good enough to pick replicas and pauses.
struct Rng(u64);

impl Rng {
    fn new(stream: u64) -> Self {
        let seed =
            uuid::Uuid::now_v7().as_u128() as u64 ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from + 1))
    }
}

/// The only writer of `book`: renames it to `b<book> v<n>`, n rising by one
/// per attempt (an unacknowledged attempt may still have committed, so its
/// number is not reused), always on the book's home replica: the others
/// learn of the write only through the cache's invalidation, which is what is
/// under test. (Writes spread over every replica would refresh each one's L1
/// with its own writes and hide most staleness.)
async fn writer(shared: Arc<Shared>, book: usize) {
    let mut rng = Rng::new(1000 + book as u64);
    let mut version = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let slot = shared.writer.unwrap_or(book % REPLICAS);
        let target = shared.targets.read().unwrap()[slot]
            .clone()
            .filter(|_| shared.writing.load(Ordering::Relaxed))
            .map(|url| (slot, url));
        let Some((slot, url)) = target else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        version += 1;
        let title = format!("b{book} v{version}");
        let start = shared.now();
        let result = shared
            .send(
                &url,
                RENAME,
                json!({ "id": shared.books[book], "t": title }),
            )
            .await;
        let end = shared.now();
        let outcome = match result {
            Ok(data) if data["updateBook"]["title"] == title.as_str() => Outcome::Ok,
            Ok(data) => Outcome::Error(format!("the write answered {data}")),
            Err(outcome) => outcome,
        };
        shared.record(Op {
            who: format!("w{book}"),
            replica: Some(slot),
            start,
            end,
            what: What::Write {
                book,
                version,
                outcome,
            },
        });
        tokio::time::sleep(rng.millis(10, 40)).await;
    }
}

/// The writer of `FOREIGN_BOOK`: another program renaming it with plain SQL
/// (`b<book> v<n>`, as [`writer`] does), acknowledged when the statement
/// returns. It writes whenever the other writers do (`writing`), whichever
/// replicas are alive: the database is never the fault here.
async fn foreign_writer(shared: Arc<Shared>, sql: sea_orm::DatabaseConnection) {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let book = FOREIGN_BOOK;
    let id = uuid::Uuid::parse_str(&shared.books[book]).expect("a book id");
    let rename = match sql.get_database_backend() {
        DbBackend::Postgres => "UPDATE books SET title = $1 WHERE id = $2",
        _ => "UPDATE books SET title = ? WHERE id = ?",
    };
    let mut rng = Rng::new(1000 + book as u64);
    let mut version = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        if !shared.writing.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        version += 1;
        let title = format!("b{book} v{version}");
        let start = shared.now();
        let statement = Statement::from_sql_and_values(
            sql.get_database_backend(),
            rename,
            [title.into(), id.into()],
        );
        let result = sql.execute(statement).await;
        let end = shared.now();
        let outcome = match result {
            Ok(done) if done.rows_affected() == 1 => Outcome::Ok,
            Ok(done) => Outcome::Error(format!("the rename changed {} rows", done.rows_affected())),
            Err(err) => Outcome::Error(format!("plain SQL: {err}")),
        };
        shared.record(Op {
            who: format!("f{book}"),
            replica: None,
            start,
            end,
            what: What::Write {
                book,
                version,
                outcome,
            },
        });
        tokio::time::sleep(rng.millis(10, 40)).await;
    }
}

/// Reads a random book on a random live replica or, with `page`, the page of
/// all books on replica `PAGE_REPLICA`.
async fn reader(shared: Arc<Shared>, number: usize, page: bool) {
    let mut rng = Rng::new(number as u64);
    while !shared.stop.load(Ordering::Relaxed) {
        let target = if page {
            shared.targets.read().unwrap()[PAGE_REPLICA]
                .clone()
                .map(|url| (PAGE_REPLICA, url))
        } else {
            shared.target(&mut rng)
        };
        let Some((slot, url)) = target else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let start = shared.now();
        let result = if page {
            let (least, most) = shared.page_sizes;
            let size = least + rng.below(most - least + 1);
            shared.send(&url, PAGE, json!({ "size": size })).await
        } else {
            let book = rng.below(BOOKS as u64) as usize;
            shared
                .send(&url, BOOK, json!({ "id": shared.books[book] }))
                .await
        };
        let end = shared.now();
        let (seen, outcome) = match result.and_then(|data| {
            let items = if page {
                data["books"]["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            } else {
                vec![data["book"].clone()]
            };
            let seen = items
                .iter()
                .map(|item| shared.parse(&item["id"], &item["title"]))
                .collect::<Result<Vec<_>, _>>()?;
            if seen.is_empty() || (page && seen.len() != BOOKS) {
                return Err(Outcome::Error(format!("a read answered {data}")));
            }
            Ok(seen)
        }) {
            Ok(seen) => (seen, Outcome::Ok),
            Err(outcome) => (Vec::new(), outcome),
        };
        shared.record(Op {
            who: format!("r{number}"),
            replica: Some(slot),
            start,
            end,
            what: What::Read {
                page,
                seen,
                outcome,
            },
        });
        let pause = if page {
            rng.millis(5, 25)
        } else {
            rng.millis(0, 8)
        };
        tokio::time::sleep(pause).await;
    }
}

// ---------------------------------------------------------------------------
// The scenarios.

fn scenario_length() -> Duration {
    let secs = std::env::var("BIBLIO_HISTORY_SECS")
        .ok()
        .map(|secs| {
            secs.parse::<u64>().unwrap_or_else(|_| {
                panic!("BIBLIO_HISTORY_SECS must be whole seconds, not {secs:?}")
            })
        })
        .unwrap_or(0);
    Duration::from_secs(secs)
}

async fn check(fault: Fault) {
    let standby = fault.topology() == Topology::Standby;
    if standby && !on_postgres() {
        eprintln!(
            "{}: skipped: read replicas are PostgreSQL standbys; run with \
             BIBLIO_TEST_DATABASE=postgres",
            fault.describe()
        );
        return;
    }
    let started = Instant::now();
    // The starters block (they poll redis-cli): off the runtime's threads.
    let deployment = tokio::task::spawn_blocking(move || match fault.topology() {
        Topology::Single | Topology::Standby => {
            Deployment::from(Redis::start(fault == Fault::WriterKilledDuringOutage))
        }
        Topology::Sentinel => Deployment::Sentinel(SentinelGroup::start()),
        Topology::Cluster => Deployment::Cluster(RedisCluster::start()),
    })
    .await
    .expect("the Redis deployment starts");
    let database = if standby {
        Database::Replicated
    } else {
        Database::Fresh
    };
    let mut cluster = Cluster::start_on(REPLICAS, deployment, database).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("a client");
    let token = cluster.librarian(&client).await;
    if standby {
        // `biblio user add` is another program: its write reaches the
        // replicas through the triggers, within the bound, not at once. The
        // workload starts once the standby has it, then the standby lags.
        cluster.postgres().standby_caught_up().await;
        cluster.postgres().delay_replay("200ms").await;
    }

    let url = cluster.replica(0).graphql_url();
    let create = |query: &'static str, input: Value| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let data = graphql(
                &client,
                &url,
                Some(&token),
                query,
                json!({ "input": input }),
            )
            .await;
            data.as_object().unwrap().values().next().unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let author = create(
        "mutation($input: CreateAuthorInput!) { createAuthor(input: $input) { id } }",
        json!({ "name": "Stanisław Lem" }),
    )
    .await;
    let category = create(
        "mutation($input: CreateCategoryInput!) { createCategory(input: $input) { id } }",
        json!({ "name": "Science Fiction" }),
    )
    .await;
    let mut books = Vec::new();
    for book in 0..BOOKS {
        books.push(
            create(
                "mutation($input: CreateBookInput!) { createBook(input: $input) { id } }",
                json!({
                    "title": format!("b{book} v0"), "isbn": isbn(book as u64), "price": "10.00",
                    "copiesTotal": 1, "authorId": author, "categoryId": category,
                }),
            )
            .await,
        );
    }

    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        client,
        token,
        numbers: books
            .iter()
            .enumerate()
            .map(|(number, id)| (id.clone(), number))
            .collect(),
        books,
        targets: RwLock::new(
            (0..REPLICAS)
                .map(|slot| Some(cluster.replica(slot).graphql_url()))
                .collect(),
        ),
        writer: (fault == Fault::WriterKilledDuringOutage).then_some(0),
        writing: AtomicBool::new(true),
        page_sizes: if standby {
            (BOOKS as u64, 100)
        } else {
            (20, 20)
        },
        killed: Mutex::new(HashSet::new()),
        history: Mutex::new(Vec::new()),
        windows: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    shared.note(format!(
        "t=0 is {} (UTC, as in the replicas' logs)",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    ));
    let mut clients = tokio::task::JoinSet::new();
    for book in 0..FOREIGN_BOOK {
        clients.spawn(writer(shared.clone(), book));
    }
    let sql = sea_orm::Database::connect(&cluster.database_url)
        .await
        .expect("a plain connection to the database");
    clients.spawn(foreign_writer(shared.clone(), sql));
    for number in 0..READERS {
        clients.spawn(reader(shared.clone(), number, false));
    }
    clients.spawn(reader(shared.clone(), READERS, true));

    tokio::time::sleep(WARM_UP).await;
    let length = scenario_length();
    let faulted = Instant::now();
    let mut cycles = 0;
    loop {
        cycle(fault, &mut cluster, &shared).await;
        cycles += 1;
        if faulted.elapsed() >= length || !fault.repeats() {
            break;
        }
        if fault == Fault::WriterKilledDuringOutage {
            shared.note("writes resume");
            shared.writing.store(true, Ordering::Relaxed);
            tokio::time::sleep(WARM_UP).await;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    while let Some(joined) = clients.join_next().await {
        joined.expect("a client task");
    }

    tokio::time::sleep(Duration::from_millis(fault.bound())).await;
    let disagreements = disagreements(&shared, &cluster.database_url).await;

    let history = std::mem::take(&mut *shared.history.lock().unwrap());
    let windows = shared.windows.lock().unwrap().clone();
    let report = analyse(&history, &windows, fault.bound());
    if let Ok(dir) = std::env::var("BIBLIO_HISTORY_DUMP") {
        dump(std::path::Path::new(&dir), fault, &history, &cluster);
    }
    println!(
        "{}",
        report.table(fault, cycles, shared.now(), started.elapsed())
    );
    // The bound must hold with the response tier on (the default), and the
    // history covers it only if the tier answered reads: ask the replicas.
    // With a standby, it covers reads through it only if some went there.
    let mut kept = 0;
    let (mut to_standby, mut to_primary) = (0, 0);
    for slot in 0..REPLICAS {
        let url = format!("{}/metrics", cluster.replica(slot).address);
        let Ok(response) = shared.client.get(url).send().await else {
            continue; // a replica the fault killed
        };
        let text = response.text().await.unwrap_or_default();
        let sum = |wanted: &dyn Fn(&str) -> bool| {
            text.lines()
                .filter(|line| wanted(line))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        kept += sum(&|line| {
            line.starts_with("biblio_cache_hits_total{") && line.contains("tier=\"response\"")
        });
        to_standby += sum(&|line| line.starts_with("biblio_db_reads_total{target=\"replica\"}"));
        to_primary += sum(&|line| line.starts_with("biblio_db_reads_total{target=\"primary\"}"));
    }
    eprintln!(
        "{}: {kept} reads answered by the response tier",
        fault.describe()
    );
    if standby {
        eprintln!(
            "{}: database reads outside writes: {to_standby} from the standby, {to_primary} from \
             the primary",
            fault.describe()
        );
    }
    let mut failures = String::new();
    for disagreement in &disagreements {
        writeln!(failures, "at the end, {disagreement}").unwrap();
    }
    if kept == 0 {
        writeln!(failures, "the response tier answered no read").unwrap();
    }
    if standby && to_standby == 0 {
        writeln!(failures, "no read went to the standby").unwrap();
    }
    if !report.errors.is_empty() {
        writeln!(
            failures,
            "{} requests failed; the first ones:",
            report.errors.len()
        )
        .unwrap();
        for &index in report.errors.iter().take(10) {
            writeln!(failures, "  {}", line(&history[index])).unwrap();
        }
    }
    if !report.offenders.is_empty() {
        let worst = report
            .offenders
            .iter()
            .max_by_key(|staleness| staleness.by)
            .expect("an offender");
        writeln!(
            failures,
            "{} of {} reads were stale at the {} ms bound (max staleness {} ms). \
             The first offending read, then the worst:",
            report.offenders.len(),
            report.reads,
            fault.bound(),
            report.max_staleness.as_millis()
        )
        .unwrap();
        failures.push_str(&excerpt(&history, &report.offenders[0]));
        if worst.read != report.offenders[0].read {
            failures.push_str(&excerpt(&history, worst));
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {failures}\n{}",
        fault.describe(),
        cluster.log_tails(12)
    );
}

/// Injects the fault once and lets the service recover for longer than the
/// bound, so that staleness that outlives the fault is seen.
async fn cycle(fault: Fault, cluster: &mut Cluster, shared: &Shared) {
    const RECOVERY: Duration = Duration::from_millis(2500);
    let sleep = tokio::time::sleep;
    let began = shared.now();
    match fault {
        Fault::RedisUp | Fault::SentinelUp | Fault::ClusterUp => {
            sleep(Duration::from_secs(3)).await
        }
        Fault::StandbyLagging | Fault::StandbyReplayPaused | Fault::PrimaryPositionUnreadable => {
            const SPELL: Duration = Duration::from_millis(1500);
            let postgres = cluster.postgres();
            // A quiet spell first: the standby replays every write, so it
            // qualifies for reads (the page reader's misses go to it), and
            // the fault starts from there, where a gap in the horizon would
            // let an old row through.
            shared.writing.store(false, Ordering::Relaxed);
            shared.note("writes pause");
            sleep(Duration::from_millis(1000)).await;
            let unreadable = fault == Fault::PrimaryPositionUnreadable;
            if unreadable {
                postgres
                    .on_primary("REVOKE EXECUTE ON FUNCTION pg_current_wal_lsn() FROM PUBLIC")
                    .await;
                shared.note("primary: pg_current_wal_lsn() revoked from biblio's role");
            }
            if fault != Fault::StandbyLagging {
                postgres.on_standby("SELECT pg_wal_replay_pause()").await;
                shared.note("standby: pg_wal_replay_pause()");
            }
            let faulted = shared.now();
            shared.writing.store(true, Ordering::Relaxed);
            shared.note("writes resume");
            sleep(SPELL).await;
            if unreadable {
                postgres
                    .on_primary("GRANT EXECUTE ON FUNCTION pg_current_wal_lsn() TO PUBLIC")
                    .await;
                shared.note("primary: pg_current_wal_lsn() granted again");
            }
            if fault != Fault::StandbyLagging {
                postgres.on_standby("SELECT pg_wal_replay_resume()").await;
                shared.note("standby: pg_wal_replay_resume()");
                shared.window(faulted, shared.now() - faulted + Duration::from_secs(1));
            }
            sleep(Duration::from_millis(1000)).await;
        }
        Fault::SentinelFailover => {
            let group = cluster.sentinel();
            let (old, new) = tokio::task::block_in_place(|| {
                let (old, new) = sentinel_roles(group);
                // After an earlier cycle's failover, the sentinels must know
                // the demoted primary as a healthy replica again.
                group.wait_until_settled(old, new);
                (old, new)
            });
            let reply = tokio::task::block_in_place(|| {
                cli(group.sentinels[0].port, &["SENTINEL", "FAILOVER", SERVICE])
            });
            shared.note(format!("SENTINEL FAILOVER ({old} -> {new}): {reply:?}"));
            assert_eq!(reply.as_deref(), Some("OK"), "SENTINEL FAILOVER");
            tokio::task::block_in_place(|| {
                group.wait_for_primary(new);
                wait_blocking("the old primary to follow the new one", || {
                    cli(old, &["ROLE"]).is_some_and(|role| role.starts_with("slave"))
                });
            });
            shared.note(format!("{new} promoted, {old} demoted"));
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::SentinelPrimaryKilled => {
            let group = cluster.sentinel();
            let (old, new) = tokio::task::block_in_place(|| sentinel_roles(group));
            shared.note(format!("sentinel primary {old} SIGKILL"));
            tokio::task::block_in_place(|| {
                let victim = group.servers.iter_mut().find(|node| node.port == old);
                victim.expect("the primary's node").kill();
            });
            tokio::task::block_in_place(|| group.wait_for_primary(new));
            shared.note(format!("the sentinels promoted {new}"));
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::ClusterPrimaryKilled => {
            let prefix = cluster.prefix.clone();
            let nodes = cluster.redis_cluster();
            let (slot, victim) = tokio::task::block_in_place(|| {
                let slot = nodes.slot_of(&prefix);
                (slot, nodes.owner(slot))
            });
            shared.note(format!(
                "cluster primary {victim} (the counters' slot {slot}) SIGKILL"
            ));
            tokio::task::block_in_place(|| {
                nodes.node(victim).kill();
                nodes.wait_until_healthy(false);
            });
            let promoted = tokio::task::block_in_place(|| nodes.owner(slot));
            shared.note(format!("its replica {promoted} promoted, cluster ok"));
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::ClusterSlotsMigrated | Fault::ClusterCountersSlotMigrated => {
            let prefix = cluster.prefix.clone();
            let nodes = cluster.redis_cluster();
            tokio::task::block_in_place(|| {
                let mut slots: Vec<(String, u16)> = Vec::new();
                if fault == Fault::ClusterCountersSlotMigrated {
                    slots.push(("the counters".into(), nodes.slot_of(&prefix)));
                } else {
                    for (book, id) in shared.books.iter().enumerate() {
                        let slot = nodes.slot_of(&format!("{{book:{id}}}"));
                        if slots.iter().all(|(_, taken)| *taken != slot) {
                            slots.push((format!("b{book}"), slot));
                        }
                    }
                }
                for (what, slot) in slots {
                    let primaries = nodes.primaries();
                    let from = nodes.owner(slot);
                    let next = primaries.iter().position(|port| *port == from).unwrap() + 1;
                    let to = primaries[next % primaries.len()];
                    shared.note(format!("slot {slot} ({what}) migrating {from} -> {to}"));
                    nodes.migrate_slot(slot, to, Duration::from_millis(300));
                    shared.note(format!("slot {slot} ({what}) on {to}"));
                }
            });
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::RedisPaused => {
            shared.note("redis SIGSTOP");
            cluster.redis().pause();
            sleep(Duration::from_secs(2)).await;
            cluster.redis().resume();
            shared.note("redis SIGCONT");
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::WritesPaused => {
            let reply = cluster
                .redis()
                .command(&["CLIENT", "PAUSE", "1500", "WRITE"])
                .await;
            shared.note(format!("redis CLIENT PAUSE 1500 WRITE: {reply}"));
            sleep(Duration::from_millis(1500)).await;
            shared.note("redis pause over");
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::WritesRefused => {
            // A port nobody listens on: the replica never syncs, so it keeps
            // its data and serves it stale, read-only.
            let nowhere = crate::binary::free_port().to_string();
            let reply = cluster
                .redis()
                .command(&["REPLICAOF", "127.0.0.1", &nowhere])
                .await;
            let probe = cluster.redis().reply(&["SET", "history:probe", "1"]).await;
            assert!(
                probe.starts_with("-READONLY"),
                "a write is refused: {probe}"
            );
            shared.note(format!(
                "redis REPLICAOF 127.0.0.1:{nowhere}: {reply}; a SET answers {probe}"
            ));
            sleep(Duration::from_millis(1500)).await;
            let reply = cluster.redis().command(&["REPLICAOF", "NO", "ONE"]).await;
            shared.note(format!("redis REPLICAOF NO ONE: {reply}; writes accepted"));
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::RedisFull => {
            cluster
                .redis()
                .command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
                .await;
            cluster
                .redis()
                .command(&["CONFIG", "SET", "maxmemory", "1"])
                .await;
            let probe = cluster.redis().reply(&["SET", "history:probe", "1"]).await;
            assert!(probe.starts_with("-OOM"), "a write is refused: {probe}");
            shared.note(format!(
                "redis maxmemory 1, noeviction; a SET answers {probe}"
            ));
            sleep(Duration::from_millis(1500)).await;
            let reply = cluster
                .redis()
                .command(&["CONFIG", "SET", "maxmemory", "0"])
                .await;
            shared.note(format!("redis maxmemory 0: {reply}; writes accepted"));
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::SubscriberKilled => {
            let reply = cluster
                .redis()
                .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
                .await;
            shared.note(format!("redis CLIENT KILL TYPE pubsub: {reply}"));
            assert_eq!(
                reply,
                format!(":{REPLICAS}"),
                "every replica has a subscriber"
            );
            shared.window(began, Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::RedisRestartedEmpty => {
            shared.note("redis SIGKILL");
            tokio::task::block_in_place(|| cluster.redis().kill());
            sleep(Duration::from_secs(1)).await;
            tokio::task::block_in_place(|| cluster.redis().restart());
            shared.note("redis restarted, empty");
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
        Fault::WriterKilledDuringOutage => {
            let slot = shared.writer.expect("one writing replica");
            // A quiet moment, so that Redis holds every book (the readers
            // refill what the last writes deleted) when it goes.
            shared.writing.store(false, Ordering::Relaxed);
            shared.note("writes pause");
            sleep(Duration::from_millis(300)).await;
            shared.writing.store(true, Ordering::Relaxed);
            shared.note("redis SIGKILL (its append-only file is kept); writes resume");
            tokio::task::block_in_place(|| cluster.redis().kill());
            // The writer acknowledges writes while Redis is down.
            let outage = shared.now();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let acked: HashSet<(usize, u64)> = shared
                    .history
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|op| op.start > outage)
                    .filter_map(Op::acked_write)
                    .collect();
                let per_book = (0..BOOKS)
                    .map(|book| acked.iter().filter(|(b, _)| *b == book).count())
                    .min()
                    .unwrap_or(0);
                if per_book >= 2 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {slot} did not acknowledge writes while Redis was down"
                );
                sleep(Duration::from_millis(10)).await;
            }
            // No more writes until the next cycle: nothing but the cache's
            // own guarantees can make the outage's writes visible.
            shared.writing.store(false, Ordering::Relaxed);
            let url = shared.targets.write().unwrap()[slot]
                .take()
                .expect("the writer is alive");
            shared.killed.lock().unwrap().insert(url);
            shared.note(format!("replica {slot} SIGKILL (the writer); writes stop"));
            let mut writer = cluster.replicas[slot].take().expect("the writer");
            tokio::task::block_in_place(|| writer.kill());
            tokio::task::block_in_place(|| cluster.redis().restart());
            shared.note("redis restarted with its data");
            // As an orchestrator would, start a replacement; it reads too.
            cluster.respawn(slot).await;
            shared.targets.write().unwrap()[slot] = Some(cluster.replica(slot).graphql_url());
            shared.note(format!("replica {slot} started again (cold L1), reading"));
            shared.window(began, shared.now() - began + Duration::from_secs(1));
            sleep(RECOVERY).await;
        }
    }
}

/// The Sentinel group's (primary, replica) ports, as the first sentinel
/// names the primary. Blocking.
fn sentinel_roles(group: &SentinelGroup) -> (u16, u16) {
    let primary = group
        .primary_by(&group.sentinels[0])
        .expect("the sentinels name a primary");
    let replica = group
        .servers
        .iter()
        .map(|node| node.port)
        .find(|port| *port != primary)
        .expect("a replica");
    (primary, replica)
}

/// Once the workload has stopped and the bound has passed, every live
/// replica reads every book as the database holds it; the disagreements.
async fn disagreements(shared: &Shared, database_url: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let sql = sea_orm::Database::connect(database_url)
        .await
        .expect("a plain connection to the database");
    let select = match sql.get_database_backend() {
        DbBackend::Postgres => "SELECT title FROM books WHERE id = $1",
        _ => "SELECT title FROM books WHERE id = ?",
    };
    let targets = shared.targets.read().unwrap().clone();
    let mut found = Vec::new();
    for (book, id) in shared.books.iter().enumerate() {
        let uuid = uuid::Uuid::parse_str(id).expect("a book id");
        let statement =
            Statement::from_sql_and_values(sql.get_database_backend(), select, [uuid.into()]);
        let row = sql
            .query_one(statement)
            .await
            .expect("the select")
            .expect("the book's row");
        let stored: String = row.try_get("", "title").expect("a title");
        for (slot, url) in targets.iter().enumerate() {
            let Some(url) = url else { continue };
            let read = shared.send(url, BOOK, json!({ "id": id })).await;
            match read {
                Ok(data) if data["book"]["title"] == stored.as_str() => {}
                other => found.push(format!(
                    "replica {slot} reads b{book} as {other:?}, the database holds {stored:?}"
                )),
            }
        }
    }
    found
}

// ---------------------------------------------------------------------------
// The checker.

/// A read that missed an acknowledged write.
#[derive(Debug, Clone)]
struct Staleness {
    /// Index of the read in the history.
    read: usize,
    /// Index of the oldest acknowledged write it missed.
    write: usize,
    book: usize,
    /// How long before the read started that write was acknowledged.
    by: Duration,
}

struct Report {
    reads: usize,
    pages: usize,
    acked: usize,
    lost: usize,
    /// History indices of failed requests.
    errors: Vec<usize>,
    /// Per D in `STALENESS`: reads stale at D.
    stale: [usize; STALENESS.len()],
    /// Reads stale at the bound.
    offenders: Vec<Staleness>,
    max_staleness: Duration,
    /// Of those, the plain-SQL writer's: writes acknowledged, and the
    /// most a read of its book was stale by.
    foreign_acked: usize,
    foreign_max_staleness: Duration,
    /// Write ack → first read on another replica that showed it, outside
    /// fault windows.
    delivery: Vec<Duration>,
    /// Mean time between reads of one book on one replica: the resolution of
    /// the delivery time.
    sampling: Duration,
}

fn analyse(history: &[Op], windows: &[(Duration, Duration)], bound: u64) -> Report {
    // Each book's acknowledged writes by version, with the earliest
    // acknowledgement among the writes from there on.
    let mut writes: Vec<Vec<(u64, Duration, usize)>> = vec![Vec::new(); BOOKS];
    let mut attempted: Vec<Vec<(u64, Duration)>> = vec![Vec::new(); BOOKS];
    let mut report = Report {
        reads: 0,
        pages: 0,
        acked: 0,
        lost: 0,
        errors: Vec::new(),
        stale: [0; STALENESS.len()],
        offenders: Vec::new(),
        max_staleness: Duration::ZERO,
        foreign_acked: 0,
        foreign_max_staleness: Duration::ZERO,
        delivery: Vec::new(),
        sampling: Duration::ZERO,
    };
    for (index, op) in history.iter().enumerate() {
        let outcome = match &op.what {
            What::Write {
                book,
                version,
                outcome,
            } => {
                attempted[*book].push((*version, op.start));
                if matches!(outcome, Outcome::Ok) {
                    writes[*book].push((*version, op.end, index));
                    report.acked += 1;
                    report.foreign_acked += usize::from(*book == FOREIGN_BOOK);
                }
                outcome
            }
            What::Read { page, outcome, .. } => {
                if matches!(outcome, Outcome::Ok) {
                    report.reads += 1;
                    report.pages += usize::from(*page);
                }
                outcome
            }
            What::Note(_) => continue,
        };
        match outcome {
            Outcome::Ok => {}
            Outcome::Lost(_) => report.lost += 1,
            Outcome::Error(_) => report.errors.push(index),
        }
    }
    for book in &mut writes {
        book.sort_by_key(|(version, _, _)| *version);
        for i in (0..book.len().saturating_sub(1)).rev() {
            if book[i + 1].1 < book[i].1 {
                book[i].1 = book[i + 1].1;
                book[i].2 = book[i + 1].2;
            }
        }
    }

    // Staleness of each read; reads of versions nobody had sent yet are a
    // harness bug.
    let mut reads_by: HashMap<(usize, usize), Vec<(Duration, u64)>> = HashMap::new();
    for (index, op) in history.iter().enumerate() {
        let What::Read {
            seen,
            outcome: Outcome::Ok,
            ..
        } = &op.what
        else {
            continue;
        };
        let mut worst: Option<Staleness> = None;
        for &(book, version) in seen {
            reads_by
                .entry((op.replica.unwrap(), book))
                .or_default()
                .push((op.start, version));
            if version > 0
                && !attempted[book]
                    .iter()
                    .any(|(v, start)| *v == version && *start < op.end)
            {
                report.errors.push(index);
            }
            let newer = writes[book].partition_point(|(v, _, _)| *v <= version);
            if let Some(&(_, ack, write)) = writes[book].get(newer) {
                if ack < op.start {
                    let by = op.start - ack;
                    if book == FOREIGN_BOOK {
                        report.foreign_max_staleness = report.foreign_max_staleness.max(by);
                    }
                    if worst.as_ref().is_none_or(|w| by > w.by) {
                        worst = Some(Staleness {
                            read: index,
                            write,
                            book,
                            by,
                        });
                    }
                }
            }
        }
        if let Some(staleness) = worst {
            for (count, d) in report.stale.iter_mut().zip(STALENESS) {
                *count += usize::from(staleness.by > Duration::from_millis(d));
            }
            report.max_staleness = report.max_staleness.max(staleness.by);
            if staleness.by > Duration::from_millis(bound) {
                report.offenders.push(staleness);
            }
        }
    }

    // Delivery: from each write's ack to the first read started after it on
    // another replica that shows it (or a later version), outside faults.
    let mut gaps = Vec::new();
    for reads in reads_by.values_mut() {
        reads.sort_by_key(|(start, _)| *start);
        gaps.extend(reads.windows(2).map(|pair| pair[1].0 - pair[0].0));
    }
    if !gaps.is_empty() {
        report.sampling = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    }
    for op in history {
        let Some((book, version)) = op.acked_write() else {
            continue;
        };
        let ack = op.end;
        if windows.iter().any(|(from, to)| *from <= ack && ack <= *to) {
            continue;
        }
        for slot in (0..REPLICAS).filter(|slot| Some(*slot) != op.replica) {
            let Some(reads) = reads_by.get(&(slot, book)) else {
                continue;
            };
            let first = reads.partition_point(|(start, _)| *start < ack);
            if let Some((start, _)) = reads[first..].iter().find(|(_, v)| *v >= version) {
                report.delivery.push(*start - ack);
            }
        }
    }
    report.delivery.sort();
    report
}

impl Report {
    fn table(&self, fault: Fault, cycles: usize, history: Duration, total: Duration) -> String {
        let mut out = String::new();
        let ms = |d: Duration| format!("{:.1}ms", d.as_secs_f64() * 1000.0);
        writeln!(
            out,
            "history | {} | bound {} ms | {} fault cycle(s), {:.1} s of history, {:.1} s in all",
            fault.describe(),
            fault.bound(),
            cycles,
            history.as_secs_f64(),
            total.as_secs_f64()
        )
        .unwrap();
        writeln!(
            out,
            "  {} reads ({} pages), {} writes acked, {} lost to a kill, {} errors",
            self.reads,
            self.pages,
            self.acked,
            self.lost,
            self.errors.len()
        )
        .unwrap();
        let header: String = STALENESS
            .iter()
            .map(|d| format!("{:>8}", format!("{d}ms")))
            .collect();
        let counts: String = self.stale.iter().map(|n| format!("{n:>8}")).collect();
        writeln!(out, "  stale at D:{header}  | max staleness").unwrap();
        writeln!(out, "             {counts}  | {}", ms(self.max_staleness)).unwrap();
        writeln!(
            out,
            "  plain-SQL writes (b{FOREIGN_BOOK}): {} acked, reads of it stale by {} at most",
            self.foreign_acked,
            ms(self.foreign_max_staleness)
        )
        .unwrap();
        let percentile = |p: f64| {
            let i = ((self.delivery.len() as f64 * p).ceil() as usize).saturating_sub(1);
            self.delivery.get(i).copied().map(ms).unwrap_or("-".into())
        };
        write!(
            out,
            "  delivery (ack -> first read showing it on another replica, outside faults): \
             p50 {} p99 {} max {} (n={}; one replica reads one book every ~{})",
            percentile(0.5),
            percentile(0.99),
            self.delivery.last().copied().map(ms).unwrap_or("-".into()),
            self.delivery.len(),
            ms(self.sampling)
        )
        .unwrap();
        out
    }
}

/// BIBLIO_HISTORY_DUMP=DIR: the whole history, one operation a line in
/// start order, and every replica's log (BIBLIO_HISTORY_LOG sets their
/// RUST_LOG), for a closer look.
fn dump(dir: &std::path::Path, fault: Fault, history: &[Op], cluster: &Cluster) {
    std::fs::create_dir_all(dir).expect("the dump directory");
    let name = format!("{fault:?}");
    let mut ops: Vec<&Op> = history.iter().collect();
    ops.sort_by_key(|op| op.start);
    let text: String = ops.iter().map(|op| line(op) + "\n").collect();
    std::fs::write(dir.join(format!("{name}.history")), text).expect("the history is written");
    cluster.copy_logs(dir, &name);
    println!("history and logs written to {}", dir.display());
}

fn at(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// One operation, on one line.
fn line(op: &Op) -> String {
    let place = op
        .replica
        .map(|slot| format!(" @replica {slot}"))
        .unwrap_or_default();
    let what = match &op.what {
        What::Write {
            book,
            version,
            outcome,
        } => format!("write b{book} v{version}: {outcome}"),
        What::Read {
            page,
            seen,
            outcome,
        } => {
            let seen: Vec<String> = seen.iter().map(|(b, v)| format!("b{b} v{v}")).collect();
            let kind = if *page { "page" } else { "read" };
            format!("{kind} shows [{}]: {outcome}", seen.join(", "))
        }
        What::Note(text) => format!("*** {text}"),
    };
    format!(
        "t={}..{} {:>4}{place} {what}",
        at(op.start),
        at(op.end),
        op.who
    )
}

/// The history of one book around a stale read: writes, notes, and each
/// replica's reads folded into runs that showed one version; only what
/// overlaps the missed write or the moments before the read.
fn excerpt(history: &[Op], stale: &Staleness) -> String {
    let (read, write) = (&history[stale.read], &history[stale.write]);
    let ms = Duration::from_millis;
    let windows = [
        (write.start.saturating_sub(ms(100)), write.end + ms(100)),
        (read.start.saturating_sub(ms(300)), read.end + ms(100)),
    ];
    let (from, to) = (windows[0].0, windows[1].1);
    let book = stale.book;
    let mut order: Vec<usize> = (0..history.len())
        .filter(|&i| history[i].end >= from && history[i].start <= to)
        .collect();
    order.sort_by_key(|&i| history[i].start);

    // (start, end, text)
    let mut lines: Vec<(Duration, Duration, String)> = Vec::new();
    // Per replica: (first start, last end, version, count).
    type Runs = HashMap<usize, (Duration, Duration, u64, usize)>;
    let mut runs: Runs = HashMap::new();
    let flush = |runs: &mut Runs, lines: &mut Vec<(Duration, Duration, String)>, slot: usize| {
        if let Some((first, last, version, count)) = runs.remove(&slot) {
            let text = format!(
                "t={}..{}      @replica {slot} {count} read(s) show b{book} v{version}",
                at(first),
                at(last)
            );
            lines.push((first, last, text));
        }
    };
    for i in order {
        let op = &history[i];
        match &op.what {
            What::Read {
                seen,
                outcome: Outcome::Ok,
                ..
            } => {
                let Some(&(_, version)) = seen.iter().find(|(b, _)| *b == book) else {
                    continue;
                };
                let slot = op.replica.unwrap();
                if i == stale.read {
                    flush(&mut runs, &mut lines, slot);
                    let text = format!(
                        ">>> {}  STALE by {:.1} ms: b{book} v{} was acked at t={}",
                        line(op),
                        stale.by.as_secs_f64() * 1000.0,
                        write.acked_write().map(|(_, v)| v).unwrap_or(0),
                        at(write.end)
                    );
                    lines.push((op.start, op.end, text));
                    continue;
                }
                match runs.get_mut(&slot) {
                    Some(run) if run.2 == version => {
                        run.1 = op.end;
                        run.3 += 1;
                    }
                    _ => {
                        flush(&mut runs, &mut lines, slot);
                        runs.insert(slot, (op.start, op.end, version, 1));
                    }
                }
            }
            What::Write { book: b, .. } if *b == book => {
                lines.push((op.start, op.end, line(op)));
            }
            What::Note(_) => lines.push((op.start, op.end, line(op))),
            _ => {}
        }
    }
    for slot in 0..REPLICAS {
        flush(&mut runs, &mut lines, slot);
    }
    lines.sort_by_key(|(start, _, _)| *start);
    let mut out = format!("--- book b{book}:\n");
    let mut skipped = 0;
    let mut shown = 0;
    for (start, end, text) in &lines {
        let relevant = text.starts_with(">>>")
            || text.contains("***")
            || windows.iter().any(|(a, b)| end >= a && start <= b);
        if !relevant || shown >= 100 {
            skipped += 1;
            continue;
        }
        if skipped > 0 {
            writeln!(out, "  … ({skipped} lines)").unwrap();
            skipped = 0;
        }
        writeln!(out, "  {text}").unwrap();
        shown += 1;
    }
    if skipped > 0 {
        writeln!(out, "  … ({skipped} lines)").unwrap();
    }
    out
}
