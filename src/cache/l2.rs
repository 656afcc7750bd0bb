//! L2: encoded values in Redis, shared by every replica, through `fred`.
//!
//! Every call is one round trip, has a short timeout, and goes through a
//! breaker: after a failure Redis is left alone for an interval, then one
//! call is let through to probe it. A dead Redis therefore costs at most one
//! timeout per interval, and callers treat "no answer" as a miss. Nothing
//! here ever fails a request.
//!
//! Two connections: reads (MGET, GET) on one, writes (fills, invalidations,
//! heartbeats) on the other. Redis answers a connection's commands in order,
//! so a write held up (`CLIENT PAUSE … WRITE`) would otherwise hold up every
//! read queued behind it.
use super::changes::Invalidation;
use super::keys::{Group, Keys};
use super::metrics::{FillTier, Metrics, Outcome};
use super::topology::{self, Scheme, Topology};
use crate::db::replicas::Position;
use fred::bytes::Bytes;
use fred::prelude::*;
use fred::types::scan::ScanResult;
use fred::types::scripts::Script;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stores entries whose guard key still holds the value read before the
/// database was: the entry's own version, or the global invalidation
/// sequence for rows primed from a list query. KEYS: (entry, guard) pairs;
/// ARGV: (expected guard value or "", ttl in ms, bytes) triples. Returns
/// how many entries were stored and their bytes.
const FILL: &str = r"
local stored, bytes = 0, 0
for i = 1, #KEYS, 2 do
  local j = (i - 1) / 2 * 3
  local current = redis.call('GET', KEYS[i + 1]) or ''
  if current == ARGV[j + 1] then
    redis.call('SET', KEYS[i], ARGV[j + 3], 'PX', ARGV[j + 2])
    stored = stored + 1
    bytes = bytes + #ARGV[j + 3]
  end
end
return { stored, bytes }
";

/// The **namespace** counter as the scripts read it: never older than the
/// namespace the caller knows. A counter found older (lost to an eviction
/// or a flush) is restored, so the namespace never moves back and a replica
/// that knows better never gives in to one that knows less.
pub(super) const NAMESPACE: &str = r"
local function namespace(counter, known)
  local current = tonumber(redis.call('GET', counter) or '0')
  if current < known then
    redis.call('SET', counter, known)
    current = known
  end
  return current
end
";

/// Deletes entries and bumps their versions, bumps group generations, and
/// publishes one event naming all of it, atomically. A group's new
/// generation is the sequence's new value, which never expires: a counter
/// of its own would restart at 1 after expiring and make old pages current
/// again. The entries are named in the namespace the caller knows; if the
/// cache was cleared since, nothing is done and the current namespace is
/// returned, so the caller learns it and names them again: deleting entries
/// in a namespace nobody reads would leave the current ones stale.
/// KEYS: the namespace counter, n entries, their n versions, then the
/// groups' generation counters. ARGV: n, version ttl (ms), generation ttl
/// (s), channel, origin, the entries' namespace, the groups' names, the
/// moves (JSON, passed through to the event as a string; empty for none),
/// the publisher's wall clock (the event's `at`, microseconds since the
/// Unix epoch, as a string: Lua's numbers would round it), the global
/// invalidation sequence, the LSN key, the primary's WAL position after
/// the write (16 hex digits, so strings compare as positions; empty without
/// read replicas or when unknown), kept in the LSN key if higher and
/// carried by the event, then the unknown-position key and the token of an
/// unknown position (16 hex digits; empty when the position is known),
/// kept in that key and carried by the event. Returns the namespace and,
/// if it was the caller's, the groups' new generations.
const INVALIDATE: &str = r"
local n = tonumber(ARGV[1])
local ns = namespace(KEYS[1], tonumber(ARGV[6]))
if ns ~= tonumber(ARGV[6]) then
  return { ns, '' }
end
local keys = {}
for i = 1, n do
  redis.call('DEL', KEYS[1 + i])
  redis.call('INCR', KEYS[1 + n + i])
  redis.call('PEXPIRE', KEYS[1 + n + i], ARGV[2])
  keys[i] = KEYS[1 + i]
end
local sequence = redis.call('INCR', ARGV[#ARGV - 4])
local groups = {}
for j = 2 * n + 2, #KEYS do
  redis.call('SET', KEYS[j], sequence, 'EX', ARGV[3])
  groups[#groups + 1] = { ARGV[6 + j - 2 * n - 1], sequence }
end
local event = { origin = ARGV[5], namespace = ns, at = ARGV[#ARGV - 5] }
if n > 0 then event.keys = keys end
if #groups > 0 then event.groups = groups end
if ARGV[#ARGV - 6] ~= '' then event.moves = ARGV[#ARGV - 6] end
local lsn = ARGV[#ARGV - 2]
if lsn ~= '' then
  if lsn > (redis.call('GET', ARGV[#ARGV - 3]) or '') then
    redis.call('SET', ARGV[#ARGV - 3], lsn)
  end
  event.lsn = lsn
end
if ARGV[#ARGV] ~= '' then
  redis.call('SET', ARGV[#ARGV - 1], ARGV[#ARGV])
  event.unknown = ARGV[#ARGV]
end
redis.call('PUBLISH', ARGV[4], cjson.encode(event))
return { ns, cjson.encode(groups) }
";

/// On a Cluster, `INVALIDATE`'s first half, run once per slot the entries
/// are in: deletes them and bumps their versions. KEYS: n entries of one
/// slot, then their n versions. ARGV: version ttl (ms).
const REMOVE: &str = r"
local n = #KEYS / 2
for i = 1, n do
  redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[n + i])
  redis.call('PEXPIRE', KEYS[n + i], ARGV[1])
end
return n
";

/// On a Cluster, `INVALIDATE`'s second half, run after `REMOVE` took every
/// slot's entries, in the slot of the deployment's counters: if the
/// namespace is still the one the entries were named in, moves the groups
/// and publishes the event, as `INVALIDATE` does; otherwise does nothing
/// and returns the current namespace. Checking the namespace after the
/// removal rather than before is as safe: it only moves forward, so it was
/// the caller's during the removal too, and a replica that learns a newer
/// one learns it after this check, so after the write committed: its loads
/// read the written rows. KEYS: the namespace counter, the sequence, then
/// the LSN key, the unknown-position key, then the groups' generation
/// counters. ARGV: the number of groups, generation ttl (s), channel,
/// origin, the entries' namespace, the moves (as in `INVALIDATE`), the
/// publisher's wall clock, the LSN and the unknown position's token (as in
/// `INVALIDATE`), the groups' names, then the removed entries' keys, for
/// the event.
const ANNOUNCE: &str = r"
local g = tonumber(ARGV[1])
local ns = namespace(KEYS[1], tonumber(ARGV[5]))
if ns ~= tonumber(ARGV[5]) then
  return { ns, '' }
end
local sequence = redis.call('INCR', KEYS[2])
local groups = {}
for j = 1, g do
  redis.call('SET', KEYS[4 + j], sequence, 'EX', ARGV[2])
  groups[j] = { ARGV[9 + j], sequence }
end
local keys = {}
for i = 10 + g, #ARGV do keys[#keys + 1] = ARGV[i] end
local event = { origin = ARGV[4], namespace = ns, at = ARGV[7] }
if #keys > 0 then event.keys = keys end
if #groups > 0 then event.groups = groups end
if ARGV[6] ~= '' then event.moves = ARGV[6] end
local lsn = ARGV[8]
if lsn ~= '' then
  if lsn > (redis.call('GET', KEYS[3]) or '') then
    redis.call('SET', KEYS[3], lsn)
  end
  event.lsn = lsn
end
if ARGV[9] ~= '' then
  redis.call('SET', KEYS[4], ARGV[9])
  event.unknown = ARGV[9]
end
redis.call('PUBLISH', ARGV[3], cjson.encode(event))
return { ns, cjson.encode(groups) }
";

/// Keeps ARGV[1] (an LSN, 16 hex digits) in KEYS[1] (the LSN key) if it
/// is higher than the one there, or, when ARGV[1] is empty, ARGV[2] (an
/// unknown position's token) in KEYS[2] (the unknown-position key).
const RECORD_LSN: &str = r"
if ARGV[1] == '' then
  redis.call('SET', KEYS[2], ARGV[2])
elseif ARGV[1] > (redis.call('GET', KEYS[1]) or '') then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
";

/// Publishes a heartbeat carrying the namespace current when it was sent,
/// so hearing it back proves the namespace known, as it proves every
/// earlier event heard. It writes before it publishes: a Redis that refuses
/// writes but still publishes (full under `noeviction`, or a primary turned
/// read-only replica by a failover) refuses invalidations too, so its
/// heartbeats must fail with them, or replicas would go on trusting a bus
/// that carries no invalidation. KEYS: the namespace counter, the last
/// heartbeat. ARGV: channel, the heartbeat's JSON up to the namespace's
/// value (Lua numbers would round a large `beat`), the namespace the sender
/// knows.
const HEARTBEAT: &str = r"
redis.call('SET', KEYS[2], ARGV[2], 'PX', 60000)
local ns = namespace(KEYS[1], tonumber(ARGV[3]))
return redis.call('PUBLISH', ARGV[1], ARGV[2] .. string.format('%d', ns) .. '}')
";

/// Finds out whether the dataset is the one the cache last worked on, or
/// one a failover promoted (Sentinel only). A promoted replica may lack
/// writes the old primary acknowledged (replication is asynchronous): the
/// deletions, version bumps and generation moves of invalidations whose
/// writes were answered. So when the primary's replication id differs from
/// the one recorded in the dataset, the namespace moves, as `cache clear`
/// moves it: nothing filled before the failover is read again, whatever it
/// missed. The first replica to find the new primary moves it; the others
/// find the id recorded and only learn the namespace. A dataset with no id
/// recorded holds no entry (the id is recorded before any replica trusts
/// the bus, so before any fill, and replication keeps that order) and
/// needs no move. On a Cluster every primary holds part of the dataset, so
/// the id is that of every primary together, which the caller reads and
/// passes: any failover changes it. KEYS: the namespace counter, the
/// primary marker. ARGV: the namespace the caller knows, then on a Cluster
/// the primaries' ids. Returns the namespace and 1 if it moved.
const PRIMARY: &str = r"
local ns = namespace(KEYS[1], tonumber(ARGV[1]))
local id = ARGV[2]
if not id then
  id = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
end
if not id then return redis.error_reply('no master_replid in INFO replication') end
local recorded = redis.call('GET', KEYS[2])
if recorded == id then return { ns, 0 } end
redis.call('SET', KEYS[2], id)
if not recorded then return { ns, 0 } end
return { redis.call('INCR', KEYS[1]), 1 }
";

/// Judges an attempt against fixed-window counters and counts it, in one
/// step (see `super::counters`). Every counter is read first, raised to its
/// floor: the attempt is refused if any has reached its limit. Then each
/// adds one if the attempt was let through, or if it counts refusals too.
/// A window starts with its counter's first count; a counter Redis lost
/// (restarted empty, expired) while the floor kept counting is made again
/// with the floor's own window left, not a new one, so a replica's count
/// cannot lengthen a lockout; a counter left without an expiry gets one.
/// KEYS: counters; ARGV: (window in ms, limit, floor, 1 if refusals count,
/// ms left of the floor's window) per counter. Returns (count, ms until the
/// window ends, 1 if it refused) per counter.
const RESERVE: &str = r"
local counts, refused = {}, false
for i = 1, #KEYS do
  local stored = tonumber(redis.call('GET', KEYS[i]) or '0')
  counts[i] = math.max(stored, tonumber(ARGV[5 * i - 2]))
  if counts[i] >= tonumber(ARGV[5 * i - 3]) then refused = true end
end
local out = {}
for i = 1, #KEYS do
  local n = counts[i]
  local over = n >= tonumber(ARGV[5 * i - 3])
  if not refused or ARGV[5 * i - 1] == '1' then n = n + 1 end
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl <= 0 then
    ttl = tonumber(ARGV[5 * i - 4])
    local floor_left = tonumber(ARGV[5 * i])
    if tonumber(ARGV[5 * i - 2]) > 0 and floor_left > 0 then ttl = floor_left end
  end
  if n > 0 then redis.call('SET', KEYS[i], n, 'PX', ttl) end
  out[#out + 1] = n
  out[#out + 1] = ttl
  out[#out + 1] = over and 1 or 0
end
return out
";

/// Gives back one count of a counter, never below zero. KEYS: the counter.
/// Returns the count left.
const RELEASE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
";

/// Opens after a failure; lets one probe through per interval.
pub struct Breaker {
    started: Instant,
    /// Nanoseconds since `started` until which calls are refused; 0 = closed.
    open_until: AtomicU64,
    interval: Duration,
}

impl Breaker {
    /// A closed breaker that, once opened, refuses calls for `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            started: Instant::now(),
            open_until: AtomicU64::new(0),
            interval,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go to Redis now. While open, the first caller after
    /// each interval gets through as the probe.
    pub fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now();
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    now + self.interval.as_nanos() as u64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// Returns whether this closed an open breaker.
    pub fn success(&self) -> bool {
        self.open_until.swap(0, Ordering::AcqRel) != 0
    }

    /// Returns whether this opened a closed breaker.
    pub fn failure(&self) -> bool {
        let until = self.now() + self.interval.as_nanos() as u64;
        self.open_until.swap(until.max(1), Ordering::AcqRel) == 0
    }

    /// Whether Redis answered the last call; part of [`Store::is_up`].
    pub fn is_closed(&self) -> bool {
        self.open_until.load(Ordering::Acquire) == 0
    }
}

/// One entry to fill: its key, the guard key and the value it held before
/// the load, its TTL and bytes.
pub struct Fill {
    /// Where the encoded value goes.
    pub key: String,
    /// The entry's **version** key, or the **sequence** for a row primed from a
    /// list query.
    pub guard: String,
    /// What the guard held before the load read anything (empty if unset): the
    /// fill lands only if it still does.
    pub expected: Bytes,
    /// Jittered by the caller, so entries filled together do not expire
    /// together.
    pub ttl: Duration,
    /// The value as [`codec`](super::codec) encoded it.
    pub bytes: Vec<u8>,
}

/// What an MGET of (entry, version) pairs found for one key.
pub struct Found {
    /// The encoded entry; `None` is a miss.
    pub bytes: Option<Bytes>,
    /// The entry's **version** as read with it: the `expected` of its [`Fill`]
    /// if the entry must be loaded.
    pub version: Option<Bytes>,
}

/// L2: the Redis tier, the breaker in front of it and the two scripts that
/// guard its fills and invalidations. A failed call is a miss, never an error.
pub struct Store {
    /// MGET and GET: never held up behind a paused write.
    reads: Client,
    /// Fills, invalidations and heartbeats.
    writes: Client,
    /// On Sentinel, a client per sentinel: which primary they name.
    sentinels: Vec<Client>,
    /// On Sentinel, the service the sentinels monitor.
    service: String,
    /// Keeps the connections' supervisors ([`keep_connected`]) going.
    _alive: Arc<()>,
    keys: Keys,
    breaker: Breaker,
    metrics: Arc<Metrics>,
    fill: Script,
    invalidate: Script,
    heartbeat: Script,
    reserve: Script,
    release: Script,
    primary: Script,
    remove: Script,
    announce: Script,
    record_lsn: Script,
    /// Single server, Sentinel or Cluster: whether a failover can roll the
    /// dataset back (see `PRIMARY`), and whether a call must be split by
    /// hash slot.
    topology: Topology,
    /// How long version and generation counters outlive the entries they guard.
    counter_ttl: Duration,
    /// With read replicas, the database whose horizon every MGET of
    /// versions and every read of the sequence raises to the LSN key's
    /// value (see `db::replicas`); `None` without them.
    horizon: Option<crate::db::Db>,
}

/// Whether a call is made for a request (counted as a round trip, refused
/// while the breaker is open) or by the background tasks (heartbeats,
/// replays: never refused, since they are how recovery is noticed, and not
/// counted, so tests can count a request's round trips).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    Request,
    Background,
}

/// How to reach Redis, shared by the L2 store and the bus subscriber.
pub struct Connection {
    /// The Redis URL, e.g. `redis://127.0.0.1:6379`.
    pub url: String,
    /// The CA certificates (PEM) a `rediss://` server must chain to; `None`:
    /// the system's trusted roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// How long one call may take; see [`Settings`](super::Settings).
    pub command_timeout: Duration,
    /// How long the breaker stays open; see [`Settings`](super::Settings).
    pub breaker_interval: Duration,
}

/// A fred config for `connection` with our timeouts and an endless reconnect
/// policy.
pub fn builder(connection: &Connection) -> Result<Builder, Error> {
    Ok(builder_for(config(connection)?, connection))
}

/// A fred builder for `config` with `connection`'s timeouts. One attempt per
/// command (a command that fails is a miss, not something to wait for),
/// except on a Cluster: following an `ASK` redirection (a slot being
/// migrated) takes an attempt of its own, and fred ends the connection task
/// when it finds none left.
fn builder_for(config: Config, connection: &Connection) -> Builder {
    let attempts = match topology_of(connection) {
        Topology::Cluster => 3,
        Topology::Single | Topology::Sentinel => 1,
    };
    let mut builder = Builder::from_config(config);
    builder
        .with_config(|config| config.fail_fast = false)
        .with_performance_config(|perf| {
            perf.default_command_timeout = connection.command_timeout;
        })
        .with_connection_config(|conn| {
            conn.connection_timeout = connection.command_timeout.max(Duration::from_millis(200));
            conn.internal_command_timeout =
                connection.command_timeout.max(Duration::from_millis(200));
            conn.max_command_attempts = attempts;
        })
        .set_policy(ReconnectPolicy::new_constant(0, 200));
    builder
}

/// Connects `client`, and connects it again whenever its connection task
/// ends other than by `QUIT`: fred ends it on errors it does not retry (a
/// failed `ASKING` during resharding, for one), after which every call
/// would fail until the process restarts. Stops once `alive` is gone.
pub(super) fn keep_connected(client: Client, alive: std::sync::Weak<()>) {
    tokio::spawn(async move {
        loop {
            let ended = client.connect().await;
            if alive.strong_count() == 0 {
                return;
            }
            match ended {
                Ok(Ok(())) => return,
                Ok(Err(err)) => tracing::warn!(
                    error = %err,
                    "redis: a connection task ended on an error; connecting again"
                ),
                Err(err) => tracing::warn!(
                    error = %err,
                    "redis: a connection task failed; connecting again"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// The sentinels of a Sentinel `connection`, each a client of its own, and
/// the service they monitor: asked on every heartbeat which primary they
/// name (see [`Store::primary_disputed`]). Empty for other topologies.
fn sentinels(connection: &Connection) -> Result<(Vec<Client>, String), Error> {
    let config = config(connection)?;
    let fred::types::config::ServerConfig::Sentinel {
        hosts,
        service_name,
        username,
        password,
    } = config.server.clone()
    else {
        return Ok((Vec::new(), String::new()));
    };
    let clients = hosts
        .into_iter()
        .map(|host| {
            let sentinel = Config {
                server: fred::types::config::ServerConfig::Centralized { server: host },
                username: username.clone(),
                password: password.clone(),
                tls: config.tls.clone(),
                ..Config::default()
            };
            builder_for(sentinel, connection).build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((clients, service_name))
}

/// The server and TLS settings of `connection`'s URL, for the topology its
/// scheme names ([`Topology`]). Only `redis://`, `redis-sentinel://` and
/// `redis-cluster://` are plaintext; their `rediss` forms are TLS through
/// rustls (to the sentinels and to the primary alike, or to every cluster
/// node); anything else is refused rather than read as plaintext. Errors
/// show the URL with its passwords masked.
fn config(connection: &Connection) -> Result<Config, Error> {
    let refuse = |message: String| Err(Error::new(ErrorKind::Config, message));
    let Scheme { topology, tls } = Scheme::of(&connection.url)?;
    let mut config = match topology {
        Topology::Single => Config::from_url_centralized(&connection.url).map_err(|err| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "--redis-url {} is malformed ({}): expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], \
                     or rediss://... for TLS",
                    crate::redact::url(&connection.url),
                    err.details()
                ),
            )
        })?,
        Topology::Sentinel => topology::sentinel_config(&connection.url)?,
        Topology::Cluster => topology::cluster_config(&connection.url)?,
    };
    match (&connection.ca_file, tls) {
        (Some(ca_file), true) => config.tls = Some(trusting(ca_file)?.into()),
        (Some(_), false) => return refuse(
            "--redis-ca-file is given but --redis-url is not TLS (rediss://, rediss-sentinel:// \
             or rediss-cluster://)"
                .into(),
        ),
        // fred verifies against the system's roots.
        (None, true) => debug_assert!(config.tls.is_some(), "TLS is compiled in"),
        (None, false) => {}
    }
    Ok(config)
}

/// The topology `connection`'s URL names; `Single` for a URL [`config`]
/// refuses (which start-up has refused already).
pub fn topology_of(connection: &Connection) -> Topology {
    Scheme::of(&connection.url).map_or(Topology::Single, |scheme| scheme.topology)
}

/// Refuses, without connecting, what [`config`] would refuse: for start-up,
/// so a malformed `--redis-url` is reported before anything is touched.
pub fn check(connection: &Connection) -> Result<(), Error> {
    config(connection).map(drop)
}

/// A rustls client that trusts the CA certificates in `ca_file` only.
fn trusting(ca_file: &std::path::Path) -> Result<fred::rustls::ClientConfig, Error> {
    use fred::rustls::pki_types::pem::PemObject;
    use fred::rustls::pki_types::CertificateDer;
    let unreadable = |err: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Config,
            format!("--redis-ca-file {}: {err}", ca_file.display()),
        )
    };
    let mut roots = fred::rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file).map_err(|err| unreadable(&err))? {
        let certificate = certificate.map_err(|err| unreadable(&err))?;
        roots.add(certificate).map_err(|err| unreadable(&err))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no certificate in it"));
    }
    Ok(fred::rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Store {
    /// Connects in the background: a Redis that is down at start is a cache
    /// outage like any other, not a reason not to start.
    pub fn connect(
        connection: &Connection,
        keys: Keys,
        metrics: Arc<Metrics>,
        counter_ttl: Duration,
    ) -> Result<Self, Error> {
        let reads = builder(connection)?.build()?;
        let writes = builder(connection)?.build()?;
        let (sentinels, service) = sentinels(connection)?;
        let alive = Arc::new(());
        for client in [&reads, &writes].into_iter().chain(&sentinels) {
            keep_connected(client.clone(), Arc::downgrade(&alive));
        }
        Ok(Self {
            reads,
            writes,
            sentinels,
            service,
            _alive: alive,
            keys,
            breaker: Breaker::new(connection.breaker_interval),
            metrics,
            fill: Script::from_lua(FILL),
            invalidate: Script::from_lua(format!("{NAMESPACE}{INVALIDATE}")),
            heartbeat: Script::from_lua(format!("{NAMESPACE}{HEARTBEAT}")),
            reserve: Script::from_lua(RESERVE),
            release: Script::from_lua(RELEASE),
            primary: Script::from_lua(format!("{NAMESPACE}{PRIMARY}")),
            remove: Script::from_lua(REMOVE),
            announce: Script::from_lua(format!("{NAMESPACE}{ANNOUNCE}")),
            record_lsn: Script::from_lua(RECORD_LSN),
            topology: topology_of(connection),
            counter_ttl,
            horizon: None,
        })
    }

    /// Makes reads of versions and of the sequence raise `db`'s horizon to
    /// the highest LSN an invalidation was published with, if `db` sends
    /// reads to replicas.
    pub fn follow_lsns(mut self, db: Option<crate::db::Db>) -> Self {
        self.horizon = db.filter(|db| db.read_replicas().is_some());
        self
    }

    /// Records `position` in Redis as an invalidation would (a known LSN
    /// in the LSN key if it is higher than the one there, an unknown one's
    /// token in the unknown-position key): for a clear, whose readers must
    /// not fill from a replica behind the changes it clears for. Returns
    /// whether Redis answered.
    pub async fn record_position(&self, position: Position) -> bool {
        let (lsn, unknown) = position_texts(Some(position));
        let recorded: Option<i64> = self
            .background_write("record lsn", |writes| {
                self.record_lsn.evalsha_with_reload(
                    writes,
                    vec![self.keys.lsn(), self.keys.unknown_position()],
                    vec![lsn, unknown],
                )
            })
            .await;
        recorded.is_some()
    }

    /// The keys every MGET of versions (and read of the sequence) reads
    /// after its own, with read replicas: the LSN key and the
    /// unknown-position key.
    fn position_keys(&self) -> [String; 2] {
        [self.keys.lsn(), self.keys.unknown_position()]
    }

    /// Raises the horizon to the LSN key's value and notices the unknown
    /// position named in the unknown-position key, both read with others.
    fn learn_position(&self, lsn: Option<&Value>, unknown: Option<&Value>) {
        let Some(db) = &self.horizon else {
            return;
        };
        let number = |value: Option<&Value>| {
            value
                .and_then(Value::as_str)
                .and_then(|text| u64::from_str_radix(&text, 16).ok())
        };
        if let Some(lsn) = number(lsn) {
            db.learn_lsn(lsn);
        }
        if let Some(token) = number(unknown) {
            db.notice_unknown_position(token);
        }
    }

    /// Waits up to `within` for the first connection to Redis; the reason
    /// when it fails or does not come, for the warning at start.
    pub async fn first_contact(&self, within: Duration) -> Result<(), String> {
        // Subscribed before looking, so an attempt failing in between is heard.
        let mut errors = self.reads.error_rx();
        if self.reads.is_connected() {
            return Ok(());
        }
        let reason = tokio::select! {
            connected = tokio::time::timeout(within, self.reads.wait_for_connect()) => match connected {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(err)) => err.to_string(),
                Err(_) => format!("no connection within {} ms", within.as_millis()),
            },
            Ok((err, _)) = errors.recv() => err.to_string(),
        };
        match self.sentinels_say().await {
            Some(diagnosis) => Err(format!("{reason}; {diagnosis}")),
            None => Err(reason),
        }
    }

    /// On Sentinel, what the sentinels say of the service, worded for the
    /// operator: none answers, none monitors it, or the primary they name.
    async fn sentinels_say(&self) -> Option<String> {
        if self.sentinels.is_empty() {
            return None;
        }
        let asked = self.sentinels.iter().map(|sentinel| {
            sentinel.custom::<Option<Vec<String>>, _>(
                fred::types::CustomCommand::new_static("SENTINEL", None::<u16>, false),
                vec!["get-master-addr-by-name".to_owned(), self.service.clone()],
            )
        });
        let answers = futures_util::future::join_all(asked).await;
        let named = answers.iter().find_map(|answer| match answer {
            Ok(Some(address)) if address.len() == 2 => {
                Some(format!("{}:{}", address[0], address[1]))
            }
            _ => None,
        });
        let service = &self.service;
        Some(match named {
            Some(primary) => format!(
                "the sentinels name {primary} as the primary of {service:?}, which does not \
                 answer"
            ),
            None if answers.iter().any(Result::is_ok) => format!(
                "the sentinels answer but monitor no service named {service:?}: check \
                 sentinelServiceName= in --redis-url (the NAME of `sentinel monitor NAME ...`)"
            ),
            None => {
                let hosts: Vec<String> = self
                    .sentinels
                    .iter()
                    .filter_map(|sentinel| match &sentinel.client_config().server {
                        fred::types::config::ServerConfig::Centralized { server } => {
                            Some(format!("{}:{}", server.host, server.port))
                        }
                        _ => None,
                    })
                    .collect();
                format!(
                    "none of the sentinels ({}) answers: check their hosts and ports in \
                     --redis-url (a sentinel listens on 26379 by default, not on the primary's \
                     port) and sentinelPassword= if they require one",
                    hosts.join(", ")
                )
            }
        })
    }

    /// Whether Redis answered the last call.
    pub fn is_up(&self) -> bool {
        self.breaker.is_closed() && self.reads.is_connected() && self.writes.is_connected()
    }

    /// Whether the breaker is open: requests skip Redis until a probe
    /// gets through.
    pub fn breaker_open(&self) -> bool {
        !self.breaker.is_closed()
    }

    /// Runs one round trip for a request through the breaker; `None` if
    /// refused or failed.
    async fn call<T, F>(&self, what: &str, call: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        self.run(Caller::Request, what, call).await
    }

    async fn run<T, F>(&self, caller: Caller, what: &str, call: F) -> Option<T>
    where
        F: std::future::Future<Output = Result<T, Error>>,
    {
        if caller == Caller::Request {
            if !self.breaker.allow() {
                return None;
            }
            self.metrics.redis_round_trip();
        }
        let result = call.await;
        self.metrics.redis_call(
            what,
            match &result {
                Ok(_) => Outcome::Answered,
                Err(err) if *err.kind() == ErrorKind::Timeout => Outcome::TimedOut,
                Err(_) => Outcome::Failed,
            },
        );
        match result {
            Ok(value) => {
                if self.breaker.success() {
                    tracing::info!("redis answers again: cache tier L2 restored");
                }
                Some(value)
            }
            // Redis refusing a command (a script error, say) is a bug here,
            // not an outage: it must not take the tier offline.
            Err(err)
                if !matches!(
                    err.kind(),
                    ErrorKind::IO
                        | ErrorKind::Timeout
                        | ErrorKind::Canceled
                        | ErrorKind::Backpressure
                ) =>
            {
                tracing::error!(error = %err, during = what, "redis refused a command");
                None
            }
            // A background call that fails (a heartbeat timing out on a
            // saturated machine, say) does not open the breaker: requests
            // find out for themselves, and the bus's silence already stops
            // trusting L2.
            Err(err) if caller == Caller::Background => {
                tracing::debug!(error = %err, during = what, "redis call failed");
                None
            }
            Err(err) => {
                if self.breaker.failure() {
                    tracing::warn!(error = %err, during = what, "redis unreachable: serving from L1 and the database");
                } else {
                    tracing::debug!(error = %err, during = what, "redis call failed");
                }
                None
            }
        }
    }

    /// Runs `work` on the reads connection as a background call: not counted
    /// as a request's round trip, and never opening the breaker.
    pub(super) async fn background<'a, T, F, Fut>(&'a self, what: &str, work: F) -> Option<T>
    where
        F: FnOnce(&'a Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        self.run(Caller::Background, what, work(&self.reads)).await
    }

    /// [`Store::background`] on the writes connection.
    pub(super) async fn background_write<'a, T, F, Fut>(&'a self, what: &str, work: F) -> Option<T>
    where
        F: FnOnce(&'a Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        self.run(Caller::Background, what, work(&self.writes)).await
    }

    /// Entries and their versions for `keys`, in one MGET.
    pub async fn get_many(&self, keys: &[&str]) -> Option<Vec<Found>> {
        if keys.is_empty() {
            return Some(Vec::new());
        }
        let mut request: Vec<String> = Vec::with_capacity(keys.len() * 2 + 1);
        for key in keys {
            request.push((*key).to_owned());
            request.push(self.keys.version(key));
        }
        if self.horizon.is_some() {
            request.extend(self.position_keys());
        }
        let mut values = self
            .call("mget", mget(self.topology, &self.reads, request))
            .await?;
        if self.horizon.is_some() {
            let unknown = values.pop();
            let lsn = values.pop();
            self.learn_position(lsn.as_ref(), unknown.as_ref());
        }
        Some(
            values
                .chunks(2)
                .map(|pair| Found {
                    bytes: pair.first().and_then(value_bytes),
                    version: pair.get(1).and_then(value_bytes),
                })
                .collect(),
        )
    }

    /// Stores entries in one script call; an entry whose version moved since
    /// it was read (a write invalidated it meanwhile) is skipped.
    pub async fn fill(&self, fills: Vec<Fill>) {
        if fills.is_empty() {
            return;
        }
        let asked = fills.len();
        let calls = by_slot(self.topology, fills, |fill| &fill.key)
            .into_iter()
            .map(|fills| {
                let mut keys: Vec<String> = Vec::with_capacity(fills.len() * 2);
                let mut args: Vec<Value> = Vec::with_capacity(fills.len() * 3);
                for fill in fills {
                    // On a Cluster a guard in another slot than its entry
                    // (the sequence, guarding rows primed from a list
                    // query) cannot be checked in the same step: such an
                    // entry is not filled, and counts as refused.
                    if self.topology == Topology::Cluster
                        && Keys::slot(&fill.guard) != Keys::slot(&fill.key)
                    {
                        continue;
                    }
                    keys.push(fill.key);
                    keys.push(fill.guard);
                    args.push(Value::Bytes(fill.expected));
                    args.push(Value::from(fill.ttl.as_millis().max(1) as i64));
                    args.push(Value::Bytes(Bytes::from(fill.bytes)));
                }
                async move {
                    if keys.is_empty() {
                        return Ok((0, 0));
                    }
                    self.fill
                        .evalsha_with_reload::<(u64, u64), _, _>(&self.writes, keys, args)
                        .await
                }
            });
        let stored: Option<(u64, u64)> = self
            .call("fill", async move {
                let stored = futures_util::future::try_join_all(calls).await?;
                Ok(stored
                    .into_iter()
                    .fold((0, 0), |(n, b), (entries, bytes)| (n + entries, b + bytes)))
            })
            .await;
        if let Some((entries, bytes)) = stored {
            self.metrics.l2_filled(entries, bytes);
            self.metrics.fills_refused(
                FillTier::L2,
                asked.saturating_sub(usize::try_from(entries).unwrap_or(0)),
            );
        }
    }

    /// The global invalidation sequence, bumped by every invalidation.
    pub async fn sequence(&self) -> Option<Bytes> {
        if self.horizon.is_some() {
            let [lsn, unknown] = self.position_keys();
            let values: Vec<Value> = self
                .call(
                    "get sequence",
                    self.reads.mget(vec![self.keys.sequence(), lsn, unknown]),
                )
                .await?;
            self.learn_position(values.get(1), values.get(2));
            return Some(
                values
                    .first()
                    .and_then(Value::as_bytes)
                    .map(Bytes::copy_from_slice)
                    .unwrap_or_default(),
            );
        }
        let value: Option<Option<Bytes>> = self
            .call("get sequence", self.reads.get(self.keys.sequence()))
            .await;
        value.map(Option::unwrap_or_default)
    }

    /// A group's current generation (0 if it never moved).
    pub async fn generation(&self, group: &Group) -> Option<u64> {
        let value: Option<Option<u64>> = self
            .call(
                "get generation",
                self.reads.get(self.keys.generation(group)),
            )
            .await;
        value.map(Option::unwrap_or_default)
    }

    /// Deletes the entries, moves `groups` and publishes the event naming
    /// them, in one script call, if `namespace` is still current. `None` if
    /// Redis did not answer (the caller keeps the invalidation pending).
    pub async fn invalidate(
        &self,
        origin: &str,
        namespace: u64,
        invalidation: &Invalidation,
        position: Option<Position>,
    ) -> Option<Invalidated> {
        self.run_invalidate(Caller::Request, origin, namespace, invalidation, position)
            .await
    }

    /// [`Store::invalidate`] for invalidations replayed after an outage.
    pub async fn replay(
        &self,
        origin: &str,
        namespace: u64,
        invalidation: &Invalidation,
        position: Option<Position>,
    ) -> Option<Invalidated> {
        self.run_invalidate(
            Caller::Background,
            origin,
            namespace,
            invalidation,
            position,
        )
        .await
    }

    /// Runs `INVALIDATE`: the groups a move names get new generations like
    /// the others (L2 cannot evict by range), and the moves travel in the
    /// event so that replicas evict only what they meet.
    async fn run_invalidate(
        &self,
        caller: Caller,
        origin: &str,
        namespace: u64,
        invalidation: &Invalidation,
        position: Option<Position>,
    ) -> Option<Invalidated> {
        let entries = &invalidation.entries;
        let groups: Vec<Group> = invalidation
            .groups
            .iter()
            .copied()
            .chain(invalidation.ranged_groups())
            .collect();
        let moves = if invalidation.moves.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&invalidation.moves).expect("moves serialise")
        };
        let keys: Vec<String> = entries
            .iter()
            .map(|(kind, id)| self.keys.entity_in(namespace, *kind, *id))
            .collect();
        if self.topology == Topology::Cluster {
            let announced = Announced {
                groups: &groups,
                moves,
                position,
            };
            return self
                .invalidate_by_slot(caller, origin, namespace, keys, announced)
                .await;
        }
        let versions: Vec<String> = keys.iter().map(|key| self.keys.version(key)).collect();
        let mut script_keys: Vec<String> = Vec::with_capacity(1 + keys.len() * 2 + groups.len());
        script_keys.push(self.keys.namespace_counter());
        script_keys.extend(keys);
        script_keys.extend(versions);
        script_keys.extend(groups.iter().map(|group| self.keys.generation(group)));
        let mut args: Vec<Value> = vec![
            Value::from(entries.len() as i64),
            Value::from(self.counter_ttl.as_millis() as i64),
            Value::from(self.counter_ttl.as_secs().max(1) as i64),
            Value::from(self.keys.channel()),
            Value::from(origin),
            Value::from(namespace as i64),
        ];
        args.extend(groups.iter().map(|group| Value::from(group.name())));
        args.push(Value::from(moves));
        args.push(Value::from(super::bus::wall_clock_micros().to_string()));
        args.push(Value::from(self.keys.sequence()));
        let (lsn, unknown) = position_texts(position);
        args.push(Value::from(self.keys.lsn()));
        args.push(Value::from(lsn));
        args.push(Value::from(self.keys.unknown_position()));
        args.push(Value::from(unknown));
        let (current, reply): (u64, String) = self
            .run(
                caller,
                "invalidate",
                self.invalidate
                    .evalsha_with_reload(&self.writes, script_keys, args),
            )
            .await?;
        Some(if current == namespace {
            Invalidated::Done(parse_generations(&reply))
        } else {
            Invalidated::Cleared(current)
        })
    }

    /// `INVALIDATE` on a Cluster, where the entries are in many slots: the
    /// entries of each slot are removed (`REMOVE`, every slot at once),
    /// then the groups are moved and the event published (`ANNOUNCE`).
    /// If any slot did not answer, nothing is announced and the caller
    /// keeps the invalidation pending, as when Redis is down: its replay
    /// removes again, which only bumps the versions once more.
    async fn invalidate_by_slot(
        &self,
        caller: Caller,
        origin: &str,
        namespace: u64,
        keys: Vec<String>,
        announced: Announced<'_>,
    ) -> Option<Invalidated> {
        let Announced {
            groups,
            moves,
            position,
        } = announced;
        let (lsn, unknown) = position_texts(position);
        let ttl = Value::from(self.counter_ttl.as_millis() as i64);
        let removals = by_slot(self.topology, keys.clone(), |key| key)
            .into_iter()
            .map(|entries| {
                let versions = entries.iter().map(|key| self.keys.version(key));
                let script_keys: Vec<String> = entries.iter().cloned().chain(versions).collect();
                self.remove
                    .evalsha_with_reload::<i64, _, _>(&self.writes, script_keys, ttl.clone())
            });
        let mut script_keys: Vec<String> = Vec::with_capacity(4 + groups.len());
        script_keys.push(self.keys.namespace_counter());
        script_keys.push(self.keys.sequence());
        script_keys.push(self.keys.lsn());
        script_keys.push(self.keys.unknown_position());
        script_keys.extend(groups.iter().map(|group| self.keys.generation(group)));
        let mut args: Vec<Value> = vec![
            Value::from(groups.len() as i64),
            Value::from(self.counter_ttl.as_secs().max(1) as i64),
            Value::from(self.keys.channel()),
            Value::from(origin),
            Value::from(namespace as i64),
            Value::from(moves),
            Value::from(super::bus::wall_clock_micros().to_string()),
            Value::from(lsn),
            Value::from(unknown),
        ];
        args.extend(groups.iter().map(|group| Value::from(group.name())));
        args.extend(keys.into_iter().map(Value::from));
        let (current, reply): (u64, String) = self
            .run(caller, "invalidate", async move {
                futures_util::future::try_join_all(removals).await?;
                self.announce
                    .evalsha_with_reload(&self.writes, script_keys, args)
                    .await
            })
            .await?;
        Some(if current == namespace {
            Invalidated::Done(parse_generations(&reply))
        } else {
            Invalidated::Cleared(current)
        })
    }

    /// Judges and counts an attempt against the fixed-window counters
    /// `keys` in one script call (see `RESERVE`; `args` are its ARGV per
    /// key): (count, time until its window ends, whether it refused) per
    /// key, or `None` if Redis did not answer.
    pub async fn reserve(
        &self,
        keys: Vec<String>,
        args: &[[u64; 5]],
    ) -> Option<Vec<(u64, Duration, bool)>> {
        let args: Vec<Value> = args
            .iter()
            .flatten()
            .map(|arg| Value::from(i64::try_from(*arg).unwrap_or(i64::MAX)))
            .collect();
        let reply: Vec<i64> = self
            .call(
                "count",
                self.reserve.evalsha_with_reload(&self.writes, keys, args),
            )
            .await?;
        Some(
            reply
                .chunks(3)
                .map(|triple| {
                    let at = |i: usize| triple.get(i).copied().unwrap_or(0).max(0) as u64;
                    (at(0), Duration::from_millis(at(1)), at(2) == 1)
                })
                .collect(),
        )
    }

    /// Gives back one count of the counter `key` (see `RELEASE`);
    /// `false` if Redis did not answer.
    pub async fn release(&self, key: String) -> bool {
        self.call::<i64, _>(
            "count",
            self.release
                .evalsha_with_reload(&self.writes, vec![key], Vec::<Value>::new()),
        )
        .await
        .is_some()
    }

    /// Publishes a heartbeat (see [`Event::heartbeat_head`](super::bus::Event::heartbeat_head))
    /// carrying the current namespace, restored to `namespace` if Redis lost it.
    /// How many subscribers it reached (every replica's bus, this one's
    /// included), or `None` if Redis did not take it.
    pub async fn heartbeat(&self, head: String, namespace: u64) -> Option<u64> {
        let args: Vec<Value> = vec![
            Value::from(self.keys.channel()),
            Value::from(head),
            Value::from(namespace as i64),
        ];
        self.run::<i64, _>(
            Caller::Background,
            "heartbeat",
            self.heartbeat.evalsha_with_reload(
                &self.writes,
                vec![self.keys.namespace_counter(), self.keys.last_heartbeat()],
                args,
            ),
        )
        .await
        .map(|reached| reached.max(0) as u64)
    }

    /// After a silence, before the bus is trusted again: on Sentinel, makes
    /// sure the dataset is the one the cache worked on, moving the namespace
    /// if a failover promoted another (see `PRIMARY`). The namespace current
    /// (at least `namespace`) and whether this call moved it; on a single
    /// server, `namespace` unchanged. `None` if Redis did not answer.
    pub async fn settle_primary(&self, namespace: u64) -> Option<(u64, bool)> {
        let mut args = vec![Value::from(namespace as i64)];
        match self.topology {
            Topology::Single => return Some((namespace, false)),
            Topology::Sentinel => {}
            Topology::Cluster => args.push(Value::from(self.primaries().await?)),
        }
        let (current, moved): (u64, u8) = self
            .run(
                Caller::Background,
                "primary",
                self.primary.evalsha_with_reload(
                    &self.writes,
                    vec![self.keys.namespace_counter(), self.keys.primary_marker()],
                    args,
                ),
            )
            .await?;
        Some((current, moved == 1))
    }

    /// On a Cluster, the replication ids of every primary, sorted and
    /// joined: what `PRIMARY` records. `None` if any primary did not
    /// answer, or the slots are not known yet.
    async fn primaries(&self) -> Option<String> {
        let state = self.writes.cached_cluster_state()?;
        let asked = state.unique_primary_nodes().into_iter().map(|server| {
            let client = self.writes.with_cluster_node(server);
            async move {
                let info: String = client
                    .info(Some(fred::types::InfoKind::Replication))
                    .await?;
                info.lines()
                    .find_map(|line| line.strip_prefix("master_replid:"))
                    .map(|id| id.trim().to_owned())
                    .ok_or_else(|| {
                        Error::new(ErrorKind::Unknown, "no master_replid in INFO replication")
                    })
            }
        });
        let Some(mut ids) = self
            .run(
                Caller::Background,
                "primary",
                futures_util::future::try_join_all(asked),
            )
            .await
        else {
            // A primary that does not answer may have been replaced: ask
            // the cluster for its slots again before the next try.
            let _ = self.writes.sync_cluster().await;
            return None;
        };
        if ids.is_empty() {
            return None;
        }
        ids.sort();
        Some(ids.join(","))
    }

    /// Single server, Sentinel or Cluster.
    pub(super) fn topology(&self) -> Topology {
        self.topology
    }

    /// The primaries this replica's commands go to, as `host:port`: on a
    /// Cluster every primary of the slot map it last read, elsewhere the
    /// one server (on Sentinel, the primary the sentinels named).
    pub(super) fn primary_addresses(&self) -> Vec<String> {
        let mut servers = match (self.topology, self.writes.cached_cluster_state()) {
            (Topology::Cluster, Some(state)) => state.unique_primary_nodes(),
            _ => self.writes.active_connections(),
        };
        let mut primaries: Vec<String> = servers
            .drain(..)
            .map(|server| format!("{}:{}", server.host, server.port))
            .collect();
        primaries.sort();
        primaries.dedup();
        primaries
    }

    /// On Sentinel, whether this replica's connections disagree about the
    /// primary, among themselves (reads, writes and `subscriber`, the bus
    /// subscriber's node) or with a sentinel that answers. After a
    /// `SENTINEL FAILOVER` the old primary keeps answering until the
    /// sentinels demote it (seconds later): a replica still on it hears its
    /// own heartbeats but not the events published on the new one. Always
    /// `false` on other topologies, and when no sentinel answers (the
    /// heartbeat tells whether Redis does).
    pub(super) async fn primary_disputed(&self, subscriber: Option<String>) -> bool {
        if self.topology != Topology::Sentinel {
            return false;
        }
        let mut ours: Vec<String> = [&self.reads, &self.writes]
            .into_iter()
            .flat_map(Client::active_connections)
            .map(|server| format!("{}:{}", server.host, server.port))
            .chain(subscriber)
            .collect();
        ours.sort();
        ours.dedup();
        if ours.len() > 1 {
            return true;
        }
        let asked = self
            .sentinels
            .iter()
            .filter(|sentinel| sentinel.is_connected())
            .map(|sentinel| {
                sentinel.custom::<Vec<String>, _>(
                    fred::types::CustomCommand::new_static("SENTINEL", None::<u16>, false),
                    vec!["get-master-addr-by-name".to_owned(), self.service.clone()],
                )
            });
        let named = futures_util::future::join_all(asked).await;
        named.into_iter().any(|answer| match answer {
            Ok(address) if address.len() == 2 => {
                let named = format!("{}:{}", address[0], address[1]);
                ours.first().is_some_and(|ours| *ours != named)
            }
            _ => false,
        })
    }

    /// Every key matching `pattern`, page by page: on a Cluster, of every
    /// primary.
    pub(super) fn scan(
        &self,
        pattern: String,
        count: u32,
    ) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<ScanResult, Error>> + Send>> {
        match self.topology {
            Topology::Cluster => Box::pin(self.writes.scan_cluster(pattern, Some(count), None)),
            _ => Box::pin(self.writes.scan(pattern, Some(count), None)),
        }
    }

    /// UNLINKs `keys`, one call per slot on a Cluster (a multi-slot UNLINK
    /// is refused there); how many existed. A background call.
    pub(super) async fn unlink(&self, keys: Vec<String>) -> Option<u64> {
        let calls = by_slot(self.topology, keys, |key| key)
            .into_iter()
            .map(|keys| self.writes.unlink::<u64, _>(keys));
        let unlinked = self
            .background_write("unlink", |_| futures_util::future::try_join_all(calls))
            .await?;
        Some(unlinked.into_iter().sum())
    }
}

/// A value MGET read, as bytes; `None` for a missing key.
fn value_bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::Null => None,
        Value::Bytes(bytes) => Some(bytes.clone()),
        other => other.as_bytes().map(Bytes::copy_from_slice),
    }
}

/// `items` in one batch, or on a Cluster in one batch per hash slot of
/// their keys (a command or script whose keys span slots is refused
/// there), each in the order given.
pub(super) fn by_slot<T>(
    topology: Topology,
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
) -> Vec<Vec<T>> {
    if topology != Topology::Cluster {
        return if items.is_empty() {
            Vec::new()
        } else {
            vec![items]
        };
    }
    let mut slots: std::collections::BTreeMap<u16, Vec<T>> = std::collections::BTreeMap::new();
    for item in items {
        slots.entry(Keys::slot(key(&item))).or_default().push(item);
    }
    slots.into_values().collect()
}

/// The values at `keys`, in their order: one MGET, or on a Cluster one per
/// slot, all sent at once.
pub(super) async fn mget(
    topology: Topology,
    client: &Client,
    keys: Vec<String>,
) -> Result<Vec<Value>, Error> {
    if topology != Topology::Cluster {
        return client.mget(keys).await;
    }
    let indexed: Vec<(usize, String)> = keys.into_iter().enumerate().collect();
    let batches = by_slot(topology, indexed, |(_, key)| key);
    let calls = batches.iter().map(|batch| {
        let keys: Vec<String> = batch.iter().map(|(_, key)| key.clone()).collect();
        client.mget::<Vec<Value>, _>(keys)
    });
    let answers = futures_util::future::try_join_all(calls).await?;
    let mut values = vec![Value::Null; batches.iter().map(Vec::len).sum()];
    for (batch, answer) in batches.iter().zip(answers) {
        for ((index, _), value) in batch.iter().zip(answer) {
            values[*index] = value;
        }
    }
    Ok(values)
}

/// What the invalidation script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidated {
    /// Done; the groups' new generations.
    Done(Vec<(Group, u64)>),
    /// Nothing: the cache was cleared since the caller learnt its namespace.
    /// This is the current one; the caller learns it and tries again.
    Cleared(u64),
}

/// What `ANNOUNCE` publishes besides the removed entries' keys.
struct Announced<'a> {
    groups: &'a [Group],
    moves: String,
    position: Option<Position>,
}

/// An LSN as the scripts compare it: 16 hex digits, so that the order of
/// strings is the order of positions. Unknown positions' tokens are written
/// the same way.
pub(super) fn lsn_text(lsn: u64) -> String {
    format!("{lsn:016x}")
}

/// The scripts' two arguments for `position`: the LSN and the unknown
/// position's token, each empty when it does not apply.
fn position_texts(position: Option<Position>) -> (String, String) {
    match position {
        None => (String::new(), String::new()),
        Some(Position::At(lsn)) => (lsn_text(lsn), String::new()),
        Some(Position::Unknown(token)) => (String::new(), lsn_text(token)),
    }
}

/// The script's list of (group name, generation); Lua's cjson writes an
/// empty list as `{}`.
fn parse_generations(reply: &str) -> Vec<(Group, u64)> {
    let pairs: Vec<(String, u64)> = serde_json::from_str(reply).unwrap_or_default();
    pairs
        .into_iter()
        .filter_map(|(name, generation)| Some((Group::parse(&name)?, generation)))
        .collect()
}

impl Store {
    /// The values at `keys`, in one MGET. For values no write changes
    /// (persisted documents, named by their hash), which carry no version.
    pub async fn get_values(&self, keys: Vec<String>) -> Option<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Some(Vec::new());
        }
        let values = self
            .call("mget values", mget(self.topology, &self.reads, keys))
            .await?;
        Some(values.iter().map(value_bytes).collect())
    }

    /// Stores `bytes` at `key` for `ttl`, unguarded: only for values that
    /// no write changes, so no fill can race an invalidation. Whether Redis
    /// took it.
    pub async fn set_value(&self, key: String, bytes: Bytes, ttl: Duration) -> bool {
        let expire = Expiration::PX(ttl.as_millis().max(1) as i64);
        self.call::<(), _>(
            "set value",
            self.writes.set(key, bytes, Some(expire), None, false),
        )
        .await
        .is_some()
    }
}

/// Persisted documents in the shared tier, for `graphql::persisted`. They
/// skip the bus-trust check that guards every other L2 read: a document's
/// text is fixed by its id, so no missed invalidation can make a copy stale.
impl super::Cache {
    /// What Redis holds for each of `documents`, in order, in one round
    /// trip; `None` if Redis did not answer or this cache has no Redis tier.
    pub async fn persisted(
        &self,
        documents: &[super::keys::Persisted<'_>],
    ) -> Option<Vec<Option<Bytes>>> {
        let l2 = self.inner.l2.as_ref()?;
        let keys = documents
            .iter()
            .map(|document| self.inner.keys.persisted(*document))
            .collect();
        l2.get_values(keys).await
    }

    /// Stores `document`'s text in Redis for `ttl`; whether Redis took it.
    pub async fn store_persisted(
        &self,
        document: super::keys::Persisted<'_>,
        text: &str,
        ttl: Duration,
    ) -> bool {
        let Some(l2) = self.inner.l2.as_ref() else {
            return false;
        };
        let key = self.inner.keys.persisted(document);
        l2.set_value(key, Bytes::copy_from_slice(text.as_bytes()), ttl)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_as_the_scripts_compare_them_order_as_wal_positions() {
        let positions = [0, 9, 0x10, 0x1_0000_0000, 0x16_B374_D848, u64::MAX >> 1];
        for pair in positions.windows(2) {
            assert!(lsn_text(pair[0]) < lsn_text(pair[1]), "{pair:x?}");
        }
        assert_eq!(lsn_text(0x16_B374_D848), "00000016b374d848");
    }

    #[test]
    fn generations_parse_and_empty_lua_tables_are_empty() {
        assert_eq!(
            parse_generations(r#"[["statistics",4]]"#),
            vec![(Group::Statistics, 4)]
        );
        assert!(parse_generations("{}").is_empty());
    }

    #[test]
    fn the_breaker_refuses_calls_until_the_interval_passes_then_lets_one_probe_through() {
        let breaker = Breaker::new(Duration::from_millis(30));
        assert!(breaker.allow());
        assert!(breaker.failure(), "the first failure opens it");
        assert!(!breaker.failure(), "already open");
        assert!(!breaker.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow(), "one probe after the interval");
        assert!(!breaker.allow(), "and only one");
        assert!(breaker.success());
        assert!(breaker.allow());
        assert!(breaker.is_closed());
    }
}
